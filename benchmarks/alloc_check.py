"""How much of an allocating xentc call is the first touch of its new gradient array.

    python benchmarks/alloc_check.py            # NumPy's default (huge-page advice on)
    python benchmarks/alloc_check.py --no-huge  # NumPy's huge-page advice switched off

Times the binary CE call from logits at n = 1e7 (the benchmark's case) three times, as the
benchmark does (median of 3 after a warm-up), allocating and with ``out=``, for float32 and
float64. The allocating time minus the out= time is what the new array cost.
"""
import argparse

import numpy as np

from xentc import _bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-huge", action="store_true", help="switch off NumPy's madvise(MADV_HUGEPAGE)")
    args = ap.parse_args()
    if args.no_huge:
        np._core.multiarray._set_madvise_hugepage(False)
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        y, x = _bench.make_inputs("bce", (10_000_000,), dtype, rng)
        grad = np.empty_like(x)
        alloc = [_bench.median_ms(lambda: _bench.run_xentc("bce", y, x), 3) for _ in range(3)]
        out = _bench.median_ms(lambda: _bench.run_xentc("bce", y, x, out=(None, grad, None)), 3)
        print(f"{np.dtype(dtype).name}: allocating {', '.join(f'{t:.1f}' for t in alloc)} ms; out= {out:.1f} ms")


if __name__ == "__main__":
    main()
