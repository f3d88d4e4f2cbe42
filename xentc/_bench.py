"""CPU benchmark of xentc against NumPy, PyTorch (CPU, autograd) and scikit-learn's ``_loss``.

Run as ``python -m xentc bench`` or ``python benchmarks/bench_cpu.py``. Every case times
loss + gradient in one call (``reduction="mean"``), median of repeats after a warm-up (at least
``--repeat`` of them, more for short calls: each column is timed for at least 0.25 s), in one
process, and prints for each: xentc with all threads as a user calls it (allocating its gradient),
xentc writing into a preallocated gradient (``out=``) with all threads and with one, each peer that
is installed, the ratio of the fastest peer's time to xentc's (both allocating), a ``numpy.copyto``
of the logits into a preallocated array (the memory roofline) and the ``out=`` time's ratio to it
(both write into existing memory), and the peak memory xentc allocated beyond its outputs.
Every peer's result is checked against xentc's before it is timed.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

import xentc

GAMMA = 2.0

# (name, kind, shape): kind picks the functions below
CASES: List[Tuple[str, str, Tuple[int, ...]]] = [
    ("binary CE logits n=1e7", "bce", (10_000_000,)),
    ("binary focal logits n=1e7", "bfocal", (10_000_000,)),
    ("softmax CE 65536x10", "ce", (65536, 10)),
    ("softmax CE 4096x32000", "ce", (4096, 32000)),
    ("softmax CE 2048x128256", "ce", (2048, 128256)),
    ("softmax focal 65536x10", "focal", (65536, 10)),
    ("softmax focal 4096x32000", "focal", (4096, 32000)),
    ("softmax focal 2048x128256", "focal", (2048, 128256)),
    ("soft-label CE 4096x32000", "softce", (4096, 32000)),
    ("smoothed CE 4096x32000", "smoothce", (4096, 32000)),
    ("binary CE probs n=1e7", "bceprob", (10_000_000,)),
    ("softmax CE probs 4096x32000", "ceprob", (4096, 32000)),
]
SMOOTHING = 0.1
QUICK_CASES = [
    ("binary CE logits n=1e6", "bce", (1_000_000,)),
    ("softmax CE 65536x10", "ce", (65536, 10)),
    ("softmax CE 512x32000", "ce", (512, 32000)),
]


# --------------------------------------------------------------------------------------------
# Inputs and the xentc call
# --------------------------------------------------------------------------------------------
def make_inputs(kind: str, shape, dtype, rng):
    if kind in ("bce", "bfocal", "bceprob"):
        z = rng.standard_normal(shape) * 3
        y = (rng.random(shape) < 0.3).astype(dtype)
        if kind == "bceprob":   # probabilities kept off exact 0 and 1, where the peers clamp the log
            return y, np.clip(1 / (1 + np.exp(-z)), 1e-6, 1 - 1e-6).astype(dtype)
        return y, z.astype(dtype)
    n, c = shape
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    if kind == "ceprob":
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return rng.integers(0, c, n), (e / e.sum(axis=1, keepdims=True)).astype(dtype)
    if kind == "softce":
        y = rng.random(shape).astype(dtype)
        y /= y.sum(axis=1, keepdims=True)
        return y, x
    return rng.integers(0, c, n), x


def run_xentc(kind, y, x, n_threads=None, out=None):
    kw = dict(from_logits=not kind.endswith("prob"), grad=True, n_threads=n_threads, out=out)
    if kind in ("bce", "bceprob"):
        return xentc.binary_cross_entropy(y, x, **kw)
    if kind == "bfocal":
        return xentc.binary_focal_loss(y, x, gamma=GAMMA, **kw)
    if kind in ("ce", "softce", "ceprob"):
        return xentc.cross_entropy(y, x, **kw)
    if kind == "smoothce":
        return xentc.cross_entropy(y, x, label_smoothing=SMOOTHING, **kw)
    return xentc.focal_loss(y, x, gamma=GAMMA, **kw)


# --------------------------------------------------------------------------------------------
# Peers: (loss, grad) of the mean loss, each written the way a user of that library would
# --------------------------------------------------------------------------------------------
def numpy_peer(kind, y, x):
    if kind == "bceprob":
        loss = -(y * np.log(x) + (1 - y) * np.log1p(-x))
        return loss.mean(), (x - y) / (x * (1 - x)) / x.size
    if kind == "ceprob":
        n = x.shape[0]
        rows = np.arange(n)
        py = x[rows, y]
        grad = np.zeros_like(x)
        grad[rows, y] = -1 / (py * n)
        return -np.log(py).mean(), grad
    if kind in ("bce", "bfocal"):
        n = x.size
        sp_pos = np.logaddexp(0, x)          # softplus(z) = -log(1 - p)
        sp_neg = sp_pos - x                   # softplus(-z) = -log p
        p = 1 / (1 + np.exp(-x))
        if kind == "bce":
            return np.mean(y * sp_neg + (1 - y) * sp_pos), (p - y) / n
        q = 1 - p
        g = GAMMA
        loss = y * q ** g * sp_neg + (1 - y) * p ** g * sp_pos
        # d/dz of q^g log p is q^g (q - g p log p); of p^g log q it is -p^g (p - g q log q)
        dpos = q ** g * (q + g * p * sp_neg)
        dneg = -(p ** g) * (p + g * q * sp_pos)
        return loss.mean(), (-(y * dpos) - (1 - y) * dneg) / n
    n, c = x.shape
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    logp = x - m - np.log(s)
    p = e / s
    if kind == "softce":
        loss = -(y * logp).sum(axis=1)
        return loss.mean(), (p * y.sum(axis=1, keepdims=True) - y) / n
    rows = np.arange(n)
    if kind == "smoothce":
        eps = SMOOTHING
        loss = -(1 - eps) * logp[rows, y] - eps / c * logp.sum(axis=1)
        grad = p - eps / c
        grad[rows, y] -= 1 - eps
        return loss.mean(), grad / n
    lpy = logp[rows, y]
    if kind == "ce":
        grad = p
        grad[rows, y] -= 1
        return -lpy.mean(), grad / n
    py = np.exp(lpy)
    qy = 1 - py
    g = GAMMA
    loss = -(qy ** g) * lpy
    G = qy ** g - g * py * qy ** (g - 1) * lpy       # P dF/dP of F = (1-P)^g log P, at the label
    grad = p * G[:, None]
    grad[rows, y] -= G
    return loss.mean(), grad / n


def torch_peer(kind, y, x):
    import torch
    import torch.nn.functional as F

    xt = torch.from_numpy(x).requires_grad_(True)
    yt = torch.from_numpy(y)
    if kind == "bce":
        loss = F.binary_cross_entropy_with_logits(xt, yt)
    elif kind == "bceprob":
        loss = F.binary_cross_entropy(xt, yt)
    elif kind == "ceprob":
        loss = F.nll_loss(torch.log(xt), yt)
    elif kind == "smoothce":
        loss = F.cross_entropy(xt, yt, label_smoothing=SMOOTHING)
    elif kind == "bfocal":
        p = torch.sigmoid(xt)
        ce = F.binary_cross_entropy_with_logits(xt, yt, reduction="none")
        p_t = p * yt + (1 - p) * (1 - yt)
        loss = (ce * (1 - p_t) ** GAMMA).mean()
    elif kind in ("ce", "softce"):
        loss = F.cross_entropy(xt, yt)
    else:
        logp = F.log_softmax(xt, dim=1).gather(1, yt[:, None])[:, 0]
        loss = (-(1 - logp.exp()) ** GAMMA * logp).mean()
    loss.backward()
    return loss.detach().numpy(), xt.grad.numpy()


def sklearn_peer(kind, y, x, n_threads):
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss

    if kind == "bce":
        loss, grad = HalfBinomialLoss().loss_gradient(y_true=y, raw_prediction=x, n_threads=n_threads)
        return loss.mean(), grad / x.size
    if kind == "ce":
        n, c = x.shape
        yf = y.astype(x.dtype)
        loss, grad = HalfMultinomialLoss(n_classes=c).loss_gradient(y_true=yf, raw_prediction=x,
                                                                    n_threads=n_threads)
        return loss.mean(), grad / n
    return None


def available_peers(kind) -> Dict[str, Callable]:
    peers: Dict[str, Callable] = {"NumPy": numpy_peer}
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        peers["PyTorch"] = torch_peer
    except ImportError:
        pass
    if kind in ("bce", "ce"):
        try:
            import sklearn._loss.loss  # noqa: F401

            peers["sklearn"] = lambda k, y, x: sklearn_peer(k, y, x, os.cpu_count() or 1)
        except ImportError:
            pass
    return peers


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
MIN_TIME_S = 0.25   # each column of a case is timed for at least this long


def median_ms(fn, repeat: int, min_time: float = MIN_TIME_S) -> float:
    """Median wall time of ``fn`` in ms: after a warm-up, at least ``repeat`` calls, and more where
    ``repeat`` calls would take less than ``min_time`` seconds (at most 1000): a sub-millisecond
    call's median of 7 is dominated by the first calls after the other columns ran (threads that
    went to sleep, cold caches), which said 2.5x where 100 calls said 3.4x."""
    t0 = time.perf_counter()
    fn()  # warm-up (and page faults of the outputs)
    first = time.perf_counter() - t0
    if first * repeat < min_time:
        repeat = min(1000, max(repeat, int(min_time / max(first, 1e-6))))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def extra_peak_mb(kind, y, x) -> float:
    """Peak bytes xentc allocates beyond its gradient output, in MB (NumPy allocations are traced)."""
    gc.collect()
    tracemalloc.start()
    try:
        r = run_xentc(kind, y, x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return max(0, peak - r.grad.nbytes) / 1e6


def check(name, ours, theirs, dtype) -> None:
    tol = 2e-3 if dtype == np.float32 else 1e-6
    loss_ok = np.isclose(float(ours.loss), float(theirs[0]), rtol=tol, atol=0)
    scale = np.abs(ours.grad).max()
    grad_ok = np.abs(ours.grad - np.asarray(theirs[1], dtype=ours.grad.dtype)).max() <= tol * scale
    if not (loss_ok and grad_ok):
        raise AssertionError(f"{name} disagrees with xentc (loss {float(theirs[0])} vs {float(ours.loss)})")


def bench(cases, dtypes, repeat: int, peers_on: bool = True, n_threads: Optional[int] = None,
          out=sys.stdout) -> List[dict]:
    rng = np.random.default_rng(0)
    nt = n_threads or xentc._kernels.openmp_info()[1]
    print(f"xentc {xentc.__version__}, kernel variant {xentc._kernels.kernel_variant()}, "
          f"{nt} OpenMP threads; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; NumPy {np.__version__}; buffer cache limit "
          f"{xentc.buffer_cache().limit / 2**20:.0f} MiB", file=out)
    rows = []
    for name, kind, shape in cases:
        for dtype in dtypes:
            y, x = make_inputs(kind, shape, dtype, rng)
            reps = repeat if x.size < 5e7 else max(3, repeat // 3)
            ours = run_xentc(kind, y, x)
            row = {"case": name, "dtype": np.dtype(dtype).name}
            row["xentc"] = median_ms(lambda: run_xentc(kind, y, x, n_threads), reps)
            limit = xentc.buffer_cache().limit   # the same with the buffer cache off: fresh pages each call
            xentc.buffer_cache(0)
            try:
                row["xentc_fresh"] = median_ms(lambda: run_xentc(kind, y, x, n_threads), reps)
            finally:
                xentc.buffer_cache(limit)
            prev = (None, np.empty_like(x), None)
            row["xentc_out"] = median_ms(lambda: run_xentc(kind, y, x, n_threads, out=prev), reps)
            row["xentc_out_1t"] = median_ms(lambda: run_xentc(kind, y, x, n_threads=1, out=prev), reps)
            dst = np.empty_like(x)
            row["copy"] = median_ms(lambda: np.copyto(dst, x), reps)
            del dst, prev
            row["extra_mb"] = extra_peak_mb(kind, y, x)
            best = None
            if peers_on and np.dtype(dtype).itemsize > 2:   # the peers compute 16-bit input in 16 bits
                for pname, fn in available_peers(kind).items():
                    try:
                        res = fn(kind, y, x)
                    except (TypeError, ValueError, RuntimeError) as exc:  # peer lacks this dtype/case
                        row[pname] = None
                        print(f"  ({pname} skipped for {name} {row['dtype']}: {exc})", file=out)
                        continue
                    if res is None:
                        continue
                    check(pname, ours, res, dtype)
                    del res
                    row[pname] = median_ms(lambda: fn(kind, y, x), reps)
                    best = row[pname] if best is None else min(best, row[pname])
                    gc.collect()
            row["best_peer"] = best
            rows.append(row)
            print_row(row, out)
            del y, x, ours
            gc.collect()
    return rows


HEADER = (f"{'case':<27} {'dtype':<8} {'xentc':>9} {'fresh':>9} {'NumPy':>9} {'PyTorch':>9} {'sklearn':>9} {'vs best':>8} "
          f"{'out=':>9} {'1 thread':>9} {'scale':>6} {'copy':>8} {'/copy':>6} {'extra MB':>9}")


def _ms(v: Optional[float]) -> str:
    return "—" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def print_row(r: dict, out=sys.stdout) -> None:
    if not getattr(print_row, "_header_done", False):
        print(HEADER + "\n" + "-" * len(HEADER), file=out)
        print_row._header_done = True
    vs = "—" if r["best_peer"] is None else f"{r['best_peer'] / r['xentc']:.1f}x"
    print(f"{r['case']:<27} {r['dtype']:<8} {_ms(r['xentc']):>9} {_ms(r.get('xentc_fresh')):>9} {_ms(r.get('NumPy')):>9} "
          f"{_ms(r.get('PyTorch')):>9} {_ms(r.get('sklearn')):>9} {vs:>8} {_ms(r['xentc_out']):>9} "
          f"{_ms(r['xentc_out_1t']):>9} {r['xentc_out_1t'] / r['xentc_out']:>5.2f}x {_ms(r['copy']):>8} "
          f"{r['xentc_out'] / r['copy']:>5.1f}x {r['extra_mb']:>9.1f}", file=out, flush=True)


def machine_description() -> dict:
    """What the numbers were measured on: CPU, kernel variant, threads and library versions."""
    desc = {"xentc": xentc.__version__, "kernel_variant": xentc._kernels.kernel_variant(),
            "openmp_threads": xentc._kernels.openmp_info()[1], "cpus": os.cpu_count(),
            "processor": _cpu_model(), "numpy": np.__version__}
    for mod in ("torch", "sklearn"):
        try:
            desc[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return desc


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path: str, rows: List[dict], repeat: int) -> None:
    """Rows as ``bench`` returns them (times in ms, None where a peer could not run)."""
    import json
    import time
    doc = {"date": time.strftime("%Y-%m-%d"), "repeat": repeat, "machine": machine_description(),
           "rows": rows}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def main(argv=None, prog: str = "xentc bench") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (seconds)")
    ap.add_argument("--dtype", choices=["float32", "float64", "both", "float16", "bfloat16"], default="both",
                    help="both: float32 and float64; the 16-bit ones (bfloat16 needs ml_dtypes) time xentc alone")
    ap.add_argument("--repeat", type=_positive_int, default=7, help="timed repeats per case and column (median); short calls repeat until 0.25 s")
    ap.add_argument("--threads", type=_positive_int, default=None,
                    help="OpenMP threads for xentc's main column (default: the OpenMP default)")
    ap.add_argument("--no-peers", action="store_true", help="time xentc and the copy roofline only")
    ap.add_argument("--case", action="append", default=None,
                    help="only cases whose name contains this text (repeatable)")
    ap.add_argument("--json", metavar="PATH", default=None,
                    help="also write the rows (times in ms) and the machine description to PATH as JSON")
    args = ap.parse_args(argv)
    if args.json:   # before the timing, not after it
        folder = os.path.dirname(os.path.abspath(args.json))
        if os.path.isdir(args.json) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            ap.error(f"--json: cannot write {args.json!r}")
    cases = QUICK_CASES if args.quick else CASES
    if args.case:
        cases = [c for c in cases if any(s.lower() in c[0].lower() for s in args.case)]
        if not cases:
            names = ", ".join(c[0] for c in (QUICK_CASES if args.quick else CASES))
            ap.error(f"--case: no case name contains {' or '.join(map(repr, args.case))}; the cases: {names}")
    if args.dtype == "both":
        dtypes = [np.float32, np.float64]
    elif args.dtype == "bfloat16":
        import ml_dtypes

        dtypes = [np.dtype(ml_dtypes.bfloat16)]
    else:
        dtypes = [np.dtype(args.dtype).type]
    print_row._header_done = False
    rows = bench(cases, dtypes, args.repeat, peers_on=not args.no_peers, n_threads=args.threads)
    if args.json:
        write_json(args.json, rows, args.repeat)
    print("\nTimes in ms (median). 'xentc' allocates its gradient, like the peers (its memory recycled from "
          "the result dropped before, see xentc.buffer_cache); 'fresh' = the same with the buffer cache off "
          "(new pages every call, as the peers get); 'vs best' = fastest peer's time / xentc's. 'out=' writes into a preallocated gradient (all threads, then one): 'scale' = "
          "1-thread time / all-threads time, '/copy' = out= time / numpy.copyto of the logits into a "
          "preallocated array. 'extra MB' = peak allocation beyond the gradient.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
