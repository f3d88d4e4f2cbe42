"""16-bit y_pred on the CPU, one thread: float16 against float32 y_pred through binary CE from
logits (n = 1e7) and softmax CE (4096 x 8000), loss + gradient into out=, and the kernels' 16-bit
loads and stores alone (xentc._kernels.load16 / store16, 1e7 values). Times in ms, median of
--repeat calls after a warm-up.

    python benchmarks/half_convert.py [--repeat 15]
"""
import argparse

import numpy as np

import xentc
from option_paths import median_ms   # (this folder is on the path when the script runs)
from xentc import _kernels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    rep = ap.parse_args().repeat
    rng = np.random.default_rng(0)
    n = 10**7
    print(f"xentc {xentc.__version__}, kernel variant {_kernels.kernel_variant()}, one thread, ms")
    for dt in (np.float16, np.float32):
        x = rng.standard_normal(n).astype(dt)
        y = (rng.random(n) < 0.5).astype(dt)
        g = np.empty_like(x)
        t_bce = median_ms(lambda: xentc.binary_cross_entropy(y, x, from_logits=True, grad=True, out=(None, g, None),
                                                             n_threads=1), rep)
        X = rng.standard_normal((4096, 8000)).astype(dt)
        L = rng.integers(0, 8000, 4096)
        G = np.empty_like(X)
        t_ce = median_ms(lambda: xentc.cross_entropy(L, X, from_logits=True, grad=True, out=(None, G, None),
                                                     n_threads=1), max(3, rep // 2))
        print(f"{np.dtype(dt).name:8s} binary CE logits n=1e7 {t_bce:7.1f}   softmax CE 4096x8000 {t_ce:7.1f}")
    h = rng.standard_normal(n).astype(np.float16)
    f = np.empty(n, np.float32)
    print(f"load16 of 1e7 float16 {median_ms(lambda: _kernels.load16(h, f, False, 1), rep):7.2f}   "
          f"store16 of 1e7 float32 {median_ms(lambda: _kernels.store16(f, h, False, 1), rep):7.2f}")


if __name__ == "__main__":
    main()
