"""How much of an allocating xentc call is the first touch of its new gradient array, and what the
buffer cache (xentc.buffer_cache) saves of it.

    python benchmarks/alloc_check.py            # NumPy's default (huge-page advice on)
    python benchmarks/alloc_check.py --no-huge  # NumPy's huge-page advice switched off

Times the binary CE call from logits at n = 1e7 (the benchmark's case) as the benchmark does
(median of 3 after a warm-up), three times each: allocating with the buffer cache switched off
(every call writes fresh pages), allocating with the cache on (the default: each call reuses the
memory of the result dropped before it), and with ``out=``; float32 and float64. Allocating
without the cache minus out= is what fresh pages cost.
"""
import argparse

import numpy as np

import xentc
from xentc import _bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-huge", action="store_true", help="switch off NumPy's madvise(MADV_HUGEPAGE)")
    args = ap.parse_args()
    if args.no_huge:
        np._core.multiarray._set_madvise_hugepage(False)
    rng = np.random.default_rng(0)
    limit = xentc.buffer_cache().limit

    def three(fn):
        return ", ".join(f"{_bench.median_ms(fn, 3):.1f}" for _ in range(3))

    for dtype in (np.float32, np.float64):
        y, x = _bench.make_inputs("bce", (10_000_000,), dtype, rng)
        grad = np.empty_like(x)
        xentc.buffer_cache(0)
        fresh = three(lambda: _bench.run_xentc("bce", y, x))
        xentc.buffer_cache(limit)
        cached = three(lambda: _bench.run_xentc("bce", y, x))
        out = three(lambda: _bench.run_xentc("bce", y, x, out=(None, grad, None)))
        print(f"{np.dtype(dtype).name}: allocating, cache off {fresh} ms; cache on {cached} ms; out= {out} ms")


if __name__ == "__main__":
    main()
