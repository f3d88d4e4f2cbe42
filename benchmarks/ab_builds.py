"""Two or more builds of xentc timed against each other on a noisy machine: the same calls in fresh
processes, the builds taking turns for --rounds rounds, each call's time the CPU time of the
calling thread (time.thread_time, so time the virtual machine gives to others does not count),
the best of --repeat calls a round and of all rounds. One thread, cross entropy's mean loss alone
("CE loss"), then loss and gradient into a preallocated gradient (out=) of cross entropy and focal
loss (gamma 2), then the same with label_smoothing 0.1, focal loss also with gamma 0.5 and with the
Hessian (gamma 2), 65536 rows of 10 classes from logits (the few-class group path) unless --rows /
--classes say otherwise. With --threads N > 1 a call's time is wall-clock time (time.perf_counter;
the calling thread's CPU time would miss the other threads' work), which the machine's other load
does move.

A build is `current` (the xentc this Python imports) or a directory holding a copy of the xentc
package with its compiled modules, for instance a copy made before a rebuild:

    mkdir -p /tmp/before && cp -r xentc /tmp/before/ && cp build/cp311/*.so /tmp/before/xentc/
    python benchmarks/ab_builds.py /tmp/before current [--rounds 4] [--repeat 150]
"""
import argparse
import ast
import subprocess
import sys

_CHILD = r'''
import sys, time
build, rows, classes, repeat, nt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
clock = time.thread_time if nt == 1 else time.perf_counter
if build != "current":
    sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, build)
import numpy as np
import xentc
rng = np.random.default_rng(0)
out = {}
for dt in (np.float32, np.float64):
    x = rng.standard_normal((rows, classes)).astype(dt)
    y = rng.integers(0, classes, rows)
    g = np.empty_like(x)
    h = np.empty_like(x)
    calls = {
        "CE loss": lambda: xentc.cross_entropy(y, x, from_logits=True, n_threads=nt),
        "CE": lambda: xentc.cross_entropy(y, x, from_logits=True, grad=True, n_threads=nt, out=(None, g, None)),
        "focal g=2": lambda: xentc.focal_loss(y, x, gamma=2.0, from_logits=True, grad=True, n_threads=nt,
                                              out=(None, g, None)),
        "smoothed CE": lambda: xentc.cross_entropy(y, x, from_logits=True, label_smoothing=0.1, grad=True,
                                                   n_threads=nt, out=(None, g, None)),
        "smoothed focal": lambda: xentc.focal_loss(y, x, gamma=2.0, from_logits=True, label_smoothing=0.1,
                                                   grad=True, n_threads=nt, out=(None, g, None)),
        "smoothed focal g=0.5": lambda: xentc.focal_loss(y, x, gamma=0.5, from_logits=True, label_smoothing=0.1,
                                                         grad=True, n_threads=nt, out=(None, g, None)),
        "smoothed focal g+h": lambda: xentc.focal_loss(y, x, gamma=2.0, from_logits=True, label_smoothing=0.1,
                                                       grad=True, hess=True, n_threads=nt, out=(None, g, h)),
    }
    for name, fn in calls.items():
        fn()
        best = float("inf")
        for _ in range(repeat):
            t0 = clock()
            fn()
            best = min(best, clock() - t0)
        out[f"{name} {np.dtype(dt).name}"] = best * 1e3
assert xentc.__file__.startswith(build) or build == "current", xentc.__file__
print(repr(out))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+", help="'current' or a directory holding a copy of the xentc package")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=150)
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="n_threads of the calls (default 1)")
    args = ap.parse_args()
    runs = {b: [] for b in args.builds}
    for r in range(args.rounds):
        for b in args.builds:
            p = subprocess.run([sys.executable, "-c", _CHILD, b, str(args.rows), str(args.classes), str(args.repeat),
                                str(args.threads)],
                               capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"build {b}: the timing process failed:\n{p.stderr}")
            runs[b].append(ast.literal_eval(p.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr)
    cases = list(runs[args.builds[0]][0])
    how = "one thread, thread CPU time" if args.threads == 1 else f"{args.threads} threads, wall-clock time"
    print(f"ms a call, best of {args.rounds} rounds x {args.repeat} calls; {args.rows}x{args.classes}, {how}")
    print(f"{'case':18s}" + "".join(f"{b[-24:]:>26s}" for b in args.builds))
    for c in cases:
        print(f"{c:18s}" + "".join(f"{min(r[c] for r in runs[b]):26.3f}" for b in args.builds))


if __name__ == "__main__":
    main()
