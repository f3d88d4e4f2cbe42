"""One call of each issue-4 case, for a profiler (ncu) to catch the main kernels:

    ncu --clock-control none --set full -k regex:'xent_(softmax_small|softmax_few|onchip|binary_vec)' \
        python benchmarks/gpu_profile.py [--cases small,binary,c32000,c128256]

and, with --micro, timings of stand-alone kernels for 1048576 rows of 10 classes (what a row a
thread reaches with plain loads, against a device copy of the same bytes), to tell how far the
few-classes kernel is from what the memory allows.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

CASES = {"small": (1048576, 10), "binary": (2**27, None), "c32000": (65536, 32000), "c128256": (8192, 128256)}

MICRO = r"""
extern "C" __global__ void rows_plain(const float* __restrict__ x, const long long* __restrict__ y, long long n,
                                      float* __restrict__ g, double* __restrict__ part) {
    const long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    double l = 0.0;
    if (r < n) {
        float v[CC];
        const float* xr = x + r * CC;
#pragma unroll
        for (int k = 0; k < CC; ++k) v[k] = xr[k];
        const long long t = y[r];
        float m = v[0];
#pragma unroll
        for (int k = 1; k < CC; ++k) m = fmaxf(m, v[k]);
        float s = 0.f, xt = 0.f;
#pragma unroll
        for (int k = 0; k < CC; ++k) { v[k] = __expf(v[k] - m); s += v[k]; if (k == t) xt = v[k]; }
        const float inv = 1.f / s;
        l = (double)(logf(s) - logf(xt));
        float* gr = g + r * CC;
#pragma unroll
        for (int k = 0; k < CC; ++k) gr[k] = v[k] * inv - (k == t ? 1.f : 0.f);
    }
    // block sum (warp shuffles, then one atomic-free partial a block)
    __shared__ double ws[32];
    for (int o = 16; o; o >>= 1) l += __shfl_down_sync(0xffffffffu, l, o);
    if ((threadIdx.x & 31) == 0) ws[threadIdx.x >> 5] = l;
    __syncthreads();
    if (threadIdx.x == 0) { double a = 0; for (int w = 0; w < (int)(blockDim.x >> 5); ++w) a += ws[w]; part[blockIdx.x] = a; }
}
"""


def ev_ms(fn, repeat=50):
    import cupy

    fn()
    cupy.cuda.Device().synchronize()
    a, b = cupy.cuda.Event(), cupy.cuda.Event()
    a.record()
    for _ in range(repeat):
        fn()
    b.record()
    b.synchronize()
    return cupy.cuda.get_elapsed_time(a, b) / repeat


def micro():
    import cupy

    n, C = CASES["small"]
    x = cupy.random.default_rng(1).standard_normal((n, C), dtype=cupy.float32)
    y = cupy.random.default_rng(2).integers(0, C, n).astype(cupy.int64)
    g = cupy.empty_like(x)
    nbytes = x.nbytes * 2 + y.nbytes
    src = cupy.empty(nbytes // 8, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    t = ev_ms(lambda: cupy.copyto(dst, src))
    print(f"copy of the same bytes ({nbytes / 1e6:.0f} MB read + written as half each): {t:.4f} ms")
    for threads in (128, 256, 512):
        mod = cupy.RawModule(code=MICRO, options=("-DCC=%d" % C, "-std=c++17"))
        f = mod.get_function("rows_plain")
        nb = -(-n // threads)
        part = cupy.empty(nb, dtype=cupy.float64)
        t = ev_ms(lambda: f((nb,), (threads,), (x, y, np.int64(n), g, part)))
        print(f"rows_plain, a row a thread, {threads} threads a block: {t:.4f} ms")
    import xentc

    r = xentc.cross_entropy(y, x, from_logits=True, grad=True)
    print("check vs xentc: loss", float(part.sum()) / n, float(r.loss), "grad max diff",
          float(abs(g - r.grad * n).max()))
    t = ev_ms(lambda: xentc.cross_entropy(y, x, from_logits=True, grad=True), 20)
    print(f"xentc whole call: {t:.4f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--micro", action="store_true")
    args = ap.parse_args()
    import cupy

    import xentc

    if args.micro:
        micro()
        return
    rng = cupy.random.default_rng(1234)
    for name in args.cases.split(","):
        n, C = CASES[name]
        t = time.perf_counter()
        if C is None:
            x = rng.standard_normal(n, dtype=cupy.float32)
            y = (rng.random(n, dtype=cupy.float32) < 0.5).astype(cupy.float32)
            r = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True)
        else:
            x = rng.standard_normal((n, C), dtype=cupy.float32) * 2
            y = rng.integers(0, C, n).astype(cupy.int64)
            r = xentc.cross_entropy(y, x, from_logits=True, grad=True)
        print(f"{name}: loss {float(r.loss):.6f} ({time.perf_counter() - t:.2f} s)", flush=True)
        del x, y, r


if __name__ == "__main__":
    main()
