"""Host time of one xentc call on CuPy arrays, and how much of it is xentc's own Python.

On a GPU the whole-call time of a small problem is mostly host work (argument checks, kernel
choice, allocations, launches, the one synchronising read), which is what issue 4's 0.1 ms target
for 1048576x10 leaves little room for. This times many calls of tiny problems back to back, then
profiles them and splits the profiled time by where it is spent (xentc, CuPy, the rest).

    python benchmarks/host_overhead.py                       # on a GPU with CuPy
    python benchmarks/host_overhead.py --stamps              # the same calls step by step
    python benchmarks/host_overhead.py --weighted            # calls with a weight pre-pass: one
        # wait for the device against two (xentc._cuda.DEVICE_DENOMINATOR off)
    PYTHONPATH=tools/cuda_emu python benchmarks/host_overhead.py --stub-kernels
        # anywhere: the CUDA emulator's cupy with the kernel launches replaced by no-ops, so the
        # time is xentc's Python plus the stand-in CuPy's (the xentc part is what carries over)
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--stub-kernels", action="store_true",
                    help="replace kernel launches by no-ops (for the emulator's cupy)")
    ap.add_argument("--phases", action="store_true",
                    help="for issue 4's large cases: where a whole call's time goes (host before the "
                         "launches, waiting for the device, host after it), instead of the small calls")
    ap.add_argument("--tiny", action="store_true", help="--phases on small shapes (a dry run on the emulator)")
    ap.add_argument("--top", type=int, default=0, help="also print the N functions of most own time a call")
    ap.add_argument("--weighted", action="store_true",
                    help="instead: small calls that need the weight pre-pass (ignore_index, sample weights), "
                         "its sum left on the device against waited for")
    ap.add_argument("--stamps", action="store_true",
                    help="instead: the median time between the steps of a small call (entries and exits of "
                         "xentc's functions on its path, cupy.empty), step by step")
    args = ap.parse_args()

    import cupy

    import xentc

    if args.phases:
        phases(cupy, xentc, tiny=args.tiny)
        return
    rng = np.random.default_rng(0)
    x = cupy.asarray(rng.normal(size=(4096, 10)).astype(np.float32))
    y = cupy.asarray(rng.integers(0, 10, 4096))
    xb = cupy.asarray(rng.normal(size=4096).astype(np.float32))
    yb = (xb > 0).astype(np.float32)
    g, gb = cupy.empty_like(x), cupy.empty_like(xb)   # out= arrays a loop reuses
    cases = {
        "cross_entropy 4096x10, grad": lambda: xentc.cross_entropy(y, x, from_logits=True, grad=True),
        "binary_cross_entropy 4096, grad": lambda: xentc.binary_cross_entropy(yb, xb, from_logits=True, grad=True),
        "cross_entropy 4096x10, grad, out=":
            lambda: xentc.cross_entropy(y, x, from_logits=True, grad=True, out=(None, g, None)),
        "binary_cross_entropy 4096, grad, out=":
            lambda: xentc.binary_cross_entropy(yb, xb, from_logits=True, grad=True, out=(None, gb, None)),
    }
    if args.weighted:
        sw, swb = cupy.asarray(rng.random(4096)), cupy.asarray(rng.random(4096).astype(np.float32))
        cw = cupy.asarray(rng.random(10))
        cases = {
            "cross_entropy 4096x10, ignore_index, mean, grad":
                lambda: xentc.cross_entropy(y, x, from_logits=True, grad=True, ignore_index=3),
            "cross_entropy 4096x10, sample_weight, mean, grad":
                lambda: xentc.cross_entropy(y, x, from_logits=True, grad=True, sample_weight=sw),
            "cross_entropy 4096x10, class_weight, mean, grad":
                lambda: xentc.cross_entropy(y, x, from_logits=True, grad=True, class_weight=cw),
            "binary_cross_entropy 4096, sample_weight, mean, grad":
                lambda: xentc.binary_cross_entropy(yb, xb, from_logits=True, grad=True, sample_weight=swb),
        }
    for call in cases.values():   # build the kernels, warm the memory pool
        call()
    if args.weighted:
        weighted(cupy, cases, args.calls, args.stub_kernels)
        return
    launches: list = []
    if args.stub_kernels:
        from cupy.cuda import function

        function.Function.__call__ = lambda self, *a, **k: launches.append(time.perf_counter())
    if args.stamps:
        stamps(cupy, cases, args.calls, args.stub_kernels)
        return
    for name, call in cases.items():
        for _ in range(100):
            call()
        cupy.cuda.Device().synchronize()
        t = time.perf_counter()
        for _ in range(args.calls):
            call()
        cupy.cuda.Device().synchronize()
        us = (time.perf_counter() - t) / args.calls * 1e6
        before = ""
        if args.stub_kernels:   # host time up to the main kernel's launch, the part a GPU waits for
            pre = []
            for _ in range(args.calls):
                del launches[:]
                t = time.perf_counter()
                call()
                pre.append(launches[0] - t)
            before = f" ({np.median(pre) * 1e6:.1f} us before the launch, median)"
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(args.calls):
            call()
        pr.disable()
        split: collections.Counter = collections.Counter()
        own_calls = 0
        for (fn, _ln, _f), (_cc, nc, tt, _ct, _callers) in pstats.Stats(pr).stats.items():
            key = ("xentc" if "/xentc/" in fn else "cupy" if "cupy" in fn else "builtins" if fn.startswith("~")
                   else "other")
            split[key] += tt
            own_calls += nc if key == "xentc" else 0
        total = sum(split.values())
        shares = ", ".join(f"{k} {v / total:.0%}" for k, v in split.most_common())
        hook = _allocation_counter()
        with hook:
            call()
        print(f"{name}: {us:.1f} us a call{before}{' (kernels stubbed)' if args.stub_kernels else ''}; "
              f"profiled time: {shares}; xentc's own: {split['xentc'] / args.calls * 1e6:.1f} us a call "
              f"profiled, {own_calls / args.calls:.0f} Python function calls; {hook.n} device allocations")
        if args.top:
            rows = sorted(pstats.Stats(pr).stats.items(), key=lambda kv: -kv[1][2])[:args.top]
            for (fn, ln, f), (_cc, nc, tt, ct, _callers) in rows:
                print(f"    {tt / args.calls * 1e6:7.2f} us own {ct / args.calls * 1e6:7.2f} us with callees "
                      f"{nc / args.calls:5.1f} calls  {fn.rsplit('/', 2)[-1] if '/' in fn else fn}:{ln}({f})")


def weighted(cupy, cases: dict, calls: int, stubbed: bool) -> None:
    """Each case's whole call (host time to the return, which waits for the device), with the weight
    pre-pass's sum left on the device (one wait) and waited for first (two: DEVICE_DENOMINATOR
    off), in alternating rounds: the median over 5 rounds of each."""
    from xentc import _cuda

    if stubbed:
        from cupy.cuda import function

        function.Function.__call__ = lambda self, *a, **k: None
    saved = _cuda.DEVICE_DENOMINATOR
    try:
        for name, call in cases.items():
            times: dict = {True: [], False: []}
            for _ in range(5):
                for flag in (True, False):
                    _cuda.DEVICE_DENOMINATOR = flag
                    for _ in range(20):
                        call()
                    cupy.cuda.Device().synchronize()
                    t = time.perf_counter()
                    for _ in range(calls):
                        call()
                    times[flag].append((time.perf_counter() - t) / calls * 1e6)
            print(f"{name}: {np.median(times[True]):.1f} us a call waiting once, {np.median(times[False]):.1f} us "
                  f"waiting twice{' (kernels stubbed)' if stubbed else ''}")
    finally:
        _cuda.DEVICE_DENOMINATOR = saved


def phases(cupy, xentc, repeat: int = 20, tiny: bool = False) -> None:
    """Whole calls of issue 4's cases split into: host time up to the end of the main kernel's
    launch (_Scratch.finish entered), the wait in finish (the device's work not yet done, the
    finalize kernel and the result's copy), and host time after it; beside the whole call timed with
    CUDA events, as benchmarks/bench_gpu.py times it."""
    from xentc import _cuda

    stamps = {}
    real_finish = _cuda._Scratch.finish

    def finish(self, *a, **k):
        stamps["launched"] = time.perf_counter()
        r = real_finish(self, *a, **k)
        stamps["synced"] = time.perf_counter()
        return r

    _cuda._Scratch.finish = finish
    rng = cupy.random.default_rng(1)
    n10, nb, n32, n128 = (1000, 5000, 16, 4) if tiny else (1048576, 2**27, 65536, 8192)
    cases = {
        "softmax 1048576x10": (lambda: rng.integers(0, 10, n10), lambda: rng.standard_normal((n10, 10), dtype=cupy.float32), xentc.cross_entropy),
        "binary 2^27": (lambda: (rng.random(nb, dtype=cupy.float32) < 0.5).astype(cupy.float32),
                        lambda: rng.standard_normal(nb, dtype=cupy.float32), xentc.binary_cross_entropy),
        "softmax 65536x32000": (lambda: rng.integers(0, 32000, n32), lambda: rng.standard_normal((n32, 32000), dtype=cupy.float32), xentc.cross_entropy),
        "softmax 8192x128256": (lambda: rng.integers(0, 128256, n128), lambda: rng.standard_normal((n128, 128256), dtype=cupy.float32), xentc.cross_entropy),
    }
    for name, (make_y, make_x, f) in cases.items():
        y, x = make_y(), make_x()
        call = lambda: f(y, x, from_logits=True, grad=True)   # noqa: E731
        for _ in range(3):
            call()
        cupy.cuda.Device().synchronize()
        pre, wait, post, ev = [], [], [], []
        a, b = cupy.cuda.Event(), cupy.cuda.Event()
        for _ in range(repeat):
            a.record()
            t0 = time.perf_counter()
            r = call()
            t1 = time.perf_counter()
            b.record()
            b.synchronize()
            ev.append(cupy.cuda.get_elapsed_time(a, b) * 1e3)
            pre.append((stamps["launched"] - t0) * 1e6)
            wait.append((stamps["synced"] - stamps["launched"]) * 1e6)
            post.append((t1 - stamps["synced"]) * 1e6)
            del r
        med = lambda v: float(np.median(v))   # noqa: E731
        # the launches alone, queued back to back (no synchronisation): host time of each
        N = y.shape[0] if x.ndim == 1 else x.shape[0]
        if x.ndim == 1:
            g = cupy.empty_like(x)
            enqueue = lambda: _cuda._binary_enqueue(y, x, None, None, 1.0, 0.0, 0.0, 1.0 / N, None, True, None, g,  # noqa: E731
                                                    None, False)
        else:
            x3, g = x.reshape(N, x.shape[1], 1), cupy.empty((N, x.shape[1], 1), dtype=x.dtype)
            enqueue = lambda: _cuda._softmax_enqueue(x3, y, None, None, None, -1, False, 0.0, 0.0, 1.0 / N,  # noqa: E731
                                                     None, True, None, g, None, False)
        enqueue()
        cupy.cuda.Device().synchronize()
        launch = []
        for _ in range(5):
            t = time.perf_counter()
            enqueue()
            launch.append((time.perf_counter() - t) * 1e6)
        cupy.cuda.Device().synchronize()
        del g
        print(f"{name}: whole call {med(ev):.1f} us (CUDA events); host before the launch ended {med(pre):.1f} us, "
              f"waiting in finish {med(wait):.1f} us, host after {med(post):.1f} us; the launch alone "
              f"(_*_enqueue, queued) {med(launch):.1f} us of host time", flush=True)
        del y, x
    _cuda._Scratch.finish = real_finish


# The steps stamped by --stamps: xentc's functions on a small call's path (module, name)
_STAMPED = (("_api", "_categorical_args"), ("_api", "_categorical_plain"), ("_api", "_binary_plain"),
            ("_api", "_plain_backend"), ("_cuda", "softmax"), ("_cuda", "binary"), ("_cuda", "_softmax_enqueue"),
            ("_cuda", "_binary_enqueue"), ("_cuda", "_softmax_kernel_choice"), ("_cuda", "_launch_small"),
            ("_cuda", "_scratch"), ("_cuda", "_launch_blocks"), ("_api", "_plain_result"))


def stamps(cupy, cases: dict, calls: int, stubbed: bool) -> None:
    """Each case's call with a time stamp at the entry and the exit of the functions of _STAMPED,
    of cupy.empty, of _Scratch.finish and (stubbed) of each kernel launch: the median time from one
    stamp to the next over `calls` calls. A stamp costs its wrapper some 0.3 us, which the
    interval after it includes; the main kernel's launch is inside _launch_blocks."""
    from xentc import _api, _cuda

    mods = {"_api": _api, "_cuda": _cuda}
    events: list = []
    clock = time.perf_counter

    def wrap(owner, name):
        f = getattr(owner, name)

        def w(*a, **k):
            events.append((name + " >", clock()))
            r = f(*a, **k)
            events.append(("< " + name, clock()))
            return r

        setattr(owner, name, w)
        return owner, name, f

    saved = [wrap(mods[m], n) for m, n in _STAMPED if hasattr(mods[m], n)]
    saved += [wrap(cupy, "empty"), wrap(_cuda._Scratch, "finish")]
    try:
        for label, call in cases.items():
            steps: dict = collections.defaultdict(list)
            whole = []
            for _ in range(calls):
                del events[:]
                t0 = clock()
                call()
                t1 = clock()
                prev = t0
                for i, (what, t) in enumerate(events):
                    steps[(i, what)].append(t - prev)
                    prev = t
                steps[(len(events), "return")].append(t1 - prev)
                whole.append(t1 - t0)
            print(f"{label}: {np.median(whole) * 1e6:.1f} us a call with the stamps"
                  f"{' (kernels stubbed)' if stubbed else ''}; median us from the stamp before:")
            for (i, what), v in sorted(steps.items()):
                if len(v) == calls:   # steps every call took
                    print(f"    {i:3d} {what:28s} {np.median(v) * 1e6:7.2f}")
    finally:
        for owner, name, f in saved:
            setattr(owner, name, f)


def _allocation_counter():
    """A CuPy memory hook counting the device arrays a call allocates."""
    import cupy

    class Count(cupy.cuda.MemoryHook):
        name = "xentc_host_overhead"

        def __init__(self):
            super().__init__()
            self.n = 0

        def malloc_preprocess(self, **kwargs):
            self.n += 1

    return Count()


if __name__ == "__main__":
    main()
