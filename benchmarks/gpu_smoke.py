"""One small call through each CUDA kernel family, against the CPU path, each reported as it
finishes: the first step of a GPU check after the kernels compile, so that a kernel that fails or
hangs on the device is named before the test suite and the benchmark run into it.

    python benchmarks/gpu_smoke.py          # exit status 0 if every case agrees with the CPU

benchmarks/gpu_check.sh runs it with a time limit and, if it fails, runs the rest with
XENTC_CUDA_NO_PIPELINE=1 (the pipelined on-chip kernels off).
"""
from __future__ import annotations

import sys
import time

import numpy as np


def main() -> int:
    import cupy

    import xentc
    from xentc import _cuda

    rng = np.random.default_rng(7)
    # (label, function, settings of _cuda.config, (N, C) or n, dtype)
    cases = [
        ("few classes (small)", "cross_entropy", {}, (1000, 10), np.float32),
        ("tile", "cross_entropy", {"small": False}, (1000, 10), np.float32),
        ("on-chip, one row a block", "cross_entropy", {"pipeline": False}, (300, 3000), np.float32),
        ("on-chip, pipelined", "cross_entropy", {"pipeline": True}, (300, 3000), np.float32),
        ("on-chip cluster", "cross_entropy", {"pipeline": False, "onchip_cap": 4096}, (64, 3000), np.float32),
        ("on-chip cluster, pipelined", "cross_entropy", {"pipeline": True, "onchip_cap": 4096}, (64, 3000),
         np.float32),
        ("on-chip, pipelined, float64", "cross_entropy", {"pipeline": True}, (300, 3000), np.float64),
        ("binary fast path", "binary_cross_entropy", {}, 100003, np.float32),
        ("binary general", "binary_cross_entropy", {"binary_vec": False}, 100003, np.float32),
        ("few classes, float16", "cross_entropy", {}, (1000, 10), np.float16),
        ("on-chip, pipelined, float16", "cross_entropy", {"pipeline": True}, (300, 3000), np.float16),
        ("binary fast path, float16", "binary_cross_entropy", {}, 100003, np.float16),
    ]
    try:   # bfloat16 where CuPy takes it (CuPy 14 with ml_dtypes)
        import ml_dtypes

        bf = np.dtype(ml_dtypes.bfloat16)
        cupy.asarray(np.zeros(2, bf))
        cases += [("on-chip, pipelined, bfloat16", "cross_entropy", {"pipeline": True}, (300, 3000), bf),
                  ("binary fast path, bfloat16", "binary_cross_entropy", {}, 100003, bf)]
    except Exception as exc:  # noqa: BLE001
        print(f"(no bfloat16 cases: {type(exc).__name__}: {exc})", flush=True)
    failed = 0
    for label, name, settings, shape, dtype in cases:
        saved = dict(_cuda.config)
        try:
            _cuda.config.update(settings)
            _cuda.config["log"] = []
            if name == "binary_cross_entropy":
                x = rng.normal(0, 3, shape).astype(dtype)
                y = (rng.random(shape) < 0.5).astype(dtype)
            else:
                x = rng.normal(0, 3, shape).astype(dtype)
                y = rng.integers(0, shape[1], shape[0])
            fn = getattr(xentc, name)
            cpu = fn(y, x, from_logits=True, grad=True)
            t = time.perf_counter()
            gpu = fn(cupy.asarray(y), cupy.asarray(x), from_logits=True, grad=True)
            cupy.cuda.Device().synchronize()
            dt = time.perf_counter() - t
            used = [kw for k, kw in _cuda.config["log"] if k in ("softmax", "binary")][-1:]
            # 16-bit gradients: one rounding of the float32 one (2^-11 float16, 2^-8 bfloat16)
            isz = np.dtype(dtype).itemsize
            rtol = 1e-12 if isz == 8 else 1e-5 if isz == 4 else 1e-3 if dtype == np.float16 else 8e-3
            g_gpu, g_cpu = cupy.asnumpy(gpu.grad).astype(np.float64), cpu.grad.astype(np.float64)
            ok = (abs(float(gpu.loss) - float(cpu.loss)) <= min(rtol, 1e-5) * abs(float(cpu.loss))
                  and np.allclose(g_gpu, g_cpu, rtol=rtol, atol=rtol * float(np.abs(g_cpu).max())))
            print(f"{'ok  ' if ok else 'FAIL'} {label:32s} {dt * 1e3:8.2f} ms  {used}", flush=True)
            failed += not ok
        except Exception as exc:  # noqa: BLE001 - report every case
            print(f"FAIL {label:32s} {type(exc).__name__}: {exc}", flush=True)
            failed += 1
        finally:
            _cuda.config.clear()
            _cuda.config.update(saved)
    print(f"{len(cases) - failed} of {len(cases)} kernel families agree with the CPU")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
