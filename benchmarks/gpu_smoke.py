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
    ]
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
            rtol = 1e-5 if dtype == np.float32 else 1e-12
            ok = (abs(float(gpu.loss) - float(cpu.loss)) <= rtol * abs(float(cpu.loss))
                  and np.allclose(cupy.asnumpy(gpu.grad), cpu.grad, rtol=rtol,
                                  atol=rtol * float(np.abs(cpu.grad).max())))
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
