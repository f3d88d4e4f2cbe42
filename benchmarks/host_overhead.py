"""Host time of one xentc call on CuPy arrays, and how much of it is xentc's own Python.

On a GPU the whole-call time of a small problem is mostly host work (argument checks, kernel
choice, allocations, launches, the one synchronising read), which is what issue 4's 0.1 ms target
for 1048576x10 leaves little room for. This times many calls of tiny problems back to back, then
profiles them and splits the profiled time by where it is spent (xentc, CuPy, the rest).

    python benchmarks/host_overhead.py                       # on a GPU with CuPy
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
    args = ap.parse_args()

    import cupy

    import xentc

    rng = np.random.default_rng(0)
    x = cupy.asarray(rng.normal(size=(4096, 10)).astype(np.float32))
    y = cupy.asarray(rng.integers(0, 10, 4096))
    xb = cupy.asarray(rng.normal(size=4096).astype(np.float32))
    yb = (xb > 0).astype(np.float32)
    cases = {
        "cross_entropy 4096x10, grad": lambda: xentc.cross_entropy(y, x, from_logits=True, grad=True),
        "binary_cross_entropy 4096, grad": lambda: xentc.binary_cross_entropy(yb, xb, from_logits=True, grad=True),
    }
    for call in cases.values():   # build the kernels, warm the memory pool
        call()
    if args.stub_kernels:
        from cupy.cuda import function

        function.Function.__call__ = lambda self, *a, **k: None
    for name, call in cases.items():
        for _ in range(100):
            call()
        cupy.cuda.Device().synchronize()
        t = time.perf_counter()
        for _ in range(args.calls):
            call()
        cupy.cuda.Device().synchronize()
        us = (time.perf_counter() - t) / args.calls * 1e6
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
        print(f"{name}: {us:.1f} us a call{' (kernels stubbed)' if args.stub_kernels else ''}; "
              f"profiled time: {shares}; xentc's own: {split['xentc'] / args.calls * 1e6:.1f} us a call "
              f"profiled, {own_calls / args.calls:.0f} Python function calls; {hook.n} device allocations")


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
