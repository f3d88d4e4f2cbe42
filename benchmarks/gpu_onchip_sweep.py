"""GPU: the on-chip cross-entropy kernels (one row, or a slice of it, a block) against the shared
memory a block may hold and the thread-block cluster sizes, on the large-vocabulary cases of
bench_gpu.py. The defaults of _cuda.py (_ONCHIP_MAX_BYTES, config["cluster"]) should follow
what this measures; kernel time only (bench_gpu.kernel_only_ms), float32 loss + gradient unless
named.

    python benchmarks/gpu_onchip_sweep.py [--caps 48 64 96 ...] [--repeat 10] [--quick]

Each shared-memory cap gets a fresh kernel module (_cuda._Module: from the kernel disk cache
after the first), so the settings of one do not leak into the next.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gpu import kernel_only_ms  # noqa: E402

CASES = [("65536x32000", 65536, 32000, "float32"), ("8192x128256", 8192, 128256, "float32"),
         ("8192x128256 bf16", 8192, 128256, "bfloat16")]
QUICK = [("256x32000", 256, 32000, "float32"), ("64x128256", 64, 128256, "float32")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--caps", nargs="+", type=int, default=[32, 48, 64, 96, 112, 160, 220],
                    help="shared memory a block may hold, KiB")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="small cases (a dry run)")
    args = ap.parse_args()

    import cupy

    from xentc import _cuda

    dev = cupy.cuda.Device().id
    rng = cupy.random.default_rng(7)
    data = {}
    for name, N, C, dt in (QUICK if args.quick else CASES):
        x = rng.standard_normal((N, C), dtype=cupy.float32) * 2
        if dt == "bfloat16":
            try:
                import ml_dtypes
            except ImportError:
                print(f"{name}: skipped (no ml_dtypes)")
                continue
            x = x.astype(ml_dtypes.bfloat16)
        data[name] = (x, rng.integers(0, C, N, dtype=cupy.int64), C)
    saved_cap = _cuda._ONCHIP_MAX_BYTES
    print(f"{'case':20s} {'cap KiB':>8s} {'clusters':>8s} {'ms':>8s}  kernel")
    try:
        for cap in args.caps:
            _cuda._ONCHIP_MAX_BYTES = cap * 1024
            mod = _cuda._Module(dev)
            _cuda._modules[dev] = mod
            for cluster in (True, False):
                for name, (x, y, C) in data.items():
                    _cuda.config.update(cluster=cluster, pipeline=False, log=[])
                    try:
                        ms = kernel_only_ms("softmax", x, y, args.repeat)
                        used = [kw for k, kw in _cuda.config["log"] if k == "softmax"][-1:]
                        print(f"{name:20s} {mod.onchip_cap // 1024:8d} {str(cluster):>8s} {ms:8.3f}  "
                              f"{used[0] if used else '?'}", flush=True)
                    except Exception as exc:  # noqa: BLE001 - report, go on with the next setting
                        print(f"{name:20s} {cap:8d} {str(cluster):>8s}   failed: {type(exc).__name__}: {exc}",
                              flush=True)
    finally:
        _cuda._ONCHIP_MAX_BYTES = saved_cap
        _cuda._modules.pop(dev, None)
        _cuda.config.update(cluster=True, log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
