"""GPU benchmark of xentc: loss + gradient in one call, float32, on the cases of design section 4
(and three 16-bit cases, `_f16` and `_bf16`, without a target).

For each case: xentc (CuPy arrays), PyTorch CUDA (forward + backward), Liger-Kernel (if
importable), and the copy-speed roofline (bytes the case must move / measured device-to-device
copy bandwidth). Times are medians over repeated runs measured with CUDA events around the whole
call (so host work inside the call counts). Each timed case is also checked against PyTorch in
float64 (loss, and the gradient on a sample of rows).

    python benchmarks/bench_gpu.py [--quick] [--repeat N] [--cases a,b,...] [--json FILE]

Cases run smallest first; a failure in one case is reported and the others still run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import numpy as np

CASES = {
    # name: (kind, N, C)  -- kind "softmax": N x C logits, int labels; "binary": n logits, 0/1 labels
    "softmax_1048576x10": ("softmax", 1048576, 10),
    "binary_2^27": ("binary", 2**27, None),
    "softmax_65536x32000": ("softmax", 65536, 32000),
    "softmax_8192x128256": ("softmax", 8192, 128256),
    # 16-bit logits (read and written as they are by xentc, PyTorch and Liger-Kernel alike): no
    # target; bfloat16 needs ml_dtypes (CuPy 14 takes bfloat16 with it)
    "softmax_8192x128256_f16": ("softmax", 8192, 128256),
    "softmax_8192x128256_bf16": ("softmax", 8192, 128256),
    # GPT-2's odd vocabulary: 16-bit rows that start inside a 4-byte word every other row (last:
    # where gpu_check runs out of time, this case goes first)
    "softmax_8192x50257_bf16": ("softmax", 8192, 50257),
}
TARGET_MS = {"softmax_8192x128256": 2.3, "softmax_65536x32000": 4.6, "softmax_1048576x10": 0.1,
             "binary_2^27": 0.45}
TINY = {"softmax_1048576x10": ("softmax", 1000, 10), "binary_2^27": ("binary", 5000, None),
        "softmax_65536x32000": ("softmax", 16, 3000), "softmax_8192x128256": ("softmax", 4, 20000),
        "softmax_8192x128256_f16": ("softmax", 4, 20000), "softmax_8192x128256_bf16": ("softmax", 4, 20000),
        "softmax_8192x50257_bf16": ("softmax", 4, 20001)}
QUICK = {"softmax_1048576x10": ("softmax", 65536, 10), "binary_2^27": ("binary", 2**22, None),
         "softmax_65536x32000": ("softmax", 2048, 32000), "softmax_8192x128256": ("softmax", 256, 128256),
         "softmax_8192x128256_f16": ("softmax", 256, 128256), "softmax_8192x128256_bf16": ("softmax", 256, 128256),
         "softmax_8192x50257_bf16": ("softmax", 256, 50257)}
# Kernel variants timed (kernel only) beside the default choice, as _cuda.config settings: which
# one is fastest on a given GPU is what the defaults of _cuda.py should follow.
VARIANTS = {
    "softmax_small": [("few-classes kernel, exact C", {"small": True, "few": True}),
                      ("few-classes kernel, CMAX", {"small": True, "few": False}),
                      ("tile kernel", {"small": False})],
    "softmax_large": [("pipelined", {"pipeline": True}), ("one row a block", {"pipeline": False}),
                      ("pipelined, 32 KiB slices", {"pipeline": True, "onchip_cap": 32768}),
                      ("one row a block, 32 KiB slices", {"pipeline": False, "onchip_cap": 32768})],
    # 16-bit rows: wide slices (exponentials kept in float, clusters twice the size) or narrow ones
    # (the logits alone, each exponential computed again for the gradient); rows that are not whole
    # 16-byte vectors (50257 classes) in vectors with their edges class by class, or a class at a time
    "softmax_16bit": [("wide 16-bit slices", {"wide16": True}), ("narrow 16-bit slices", {"wide16": False}),
                      ("odd rows a class at a time", {"ragged": False})],
    "binary": [("16-byte packs, rounds from n", {}), ("16-byte packs, 1 round a block", {"binary_vec_rounds": 1}),
               ("16-byte packs, 2 rounds a block", {"binary_vec_rounds": 2}),
               ("16-byte packs, 4 rounds a block", {"binary_vec_rounds": 4}),
               ("general kernel", {"binary_vec": False})],
}


def log(*a):
    print(*a, flush=True)


def gpu_time_ms(fn, repeat, warmup=3):
    """Median and min wall time of fn() on the GPU (CUDA events on the current stream)."""
    import cupy

    for _ in range(warmup):
        fn()
    cupy.cuda.Device().synchronize()
    times = []
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    for _ in range(repeat):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return float(np.median(times)), float(np.min(times))


def copy_bandwidth(nbytes, repeat):
    """Device-to-device copy bandwidth (bytes read + written per second) on nbytes."""
    import cupy

    n = nbytes // 4
    src = cupy.ones(n, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    med, _ = gpu_time_ms(lambda: cupy.copyto(dst, src), repeat)
    del src, dst
    return 2 * n * 4 / (med * 1e-3)


def kernel_only_ms(kind, x, y, repeat):
    """GPU time of the main kernel alone (no argument checks, no label pre-pass, no host
    synchronisation): `repeat` launches queued back to back between two events."""
    import cupy

    from xentc import _cuda

    N = x.shape[0]
    if kind == "softmax":
        x3 = x.reshape(N, x.shape[1], 1)
        g = cupy.empty(x3.shape, dtype=x.dtype)

        def launch():
            _cuda._softmax_enqueue(x3, y, None, None, None, -1, False, 0.0, 0.0, 1.0 / N, None, True, None, g,
                                   None, False)
    else:
        g = cupy.empty(x.shape, dtype=x.dtype)

        def launch():
            _cuda._binary_enqueue(y, x, None, None, 1.0, 0.0, 0.0, 1.0 / N, None, True, None, g, None, False)
    launch()
    cupy.cuda.Device().synchronize()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(repeat):
        launch()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) / repeat


def torch_or_none():
    try:
        import torch

        if torch.cuda.is_available():
            return torch
    except Exception as exc:  # noqa: BLE001
        log(f"  (PyTorch unavailable: {type(exc).__name__}: {exc})")
    return None


def liger_or_none():
    try:
        from liger_kernel.ops.cross_entropy import LigerCrossEntropyFunction

        return LigerCrossEntropyFunction
    except Exception as exc:  # noqa: BLE001
        log(f"  (Liger-Kernel unavailable: {type(exc).__name__}: {exc})")
    return None


def time_variants(kind, x, y, repeat, C):
    """Kernel-only time of each variant of VARIANTS for this case: {label: ms}."""
    from xentc import _cuda

    out = {}
    group = ("binary" if kind == "binary" else "softmax_small" if C <= 32
             else "softmax_16bit" if x.itemsize == 2 else "softmax_large")
    for label, settings in VARIANTS[group]:
        saved = dict(_cuda.config)
        try:
            _cuda.config.update(settings)
            _cuda.config["log"] = []
            ms = kernel_only_ms(kind, x, y, max(3, repeat // 2))
            used = [kw for k, kw in _cuda.config["log"] if k == kind][-1:]
            out[label] = {"ms": round(ms, 4), "kernel": used[0] if used else None}
        except Exception as exc:  # noqa: BLE001
            out[label] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            _cuda.config.clear()
            _cuda.config.update(saved)
        log(f"   variant {label}: {out[label]}")
    return out


def host_profile(call, n=20, top=12):
    """Where the host time of a whole call goes (cProfile over n calls; the device work shows up
    as time in the synchronising device-to-host reads)."""
    import cProfile
    import io
    import pstats

    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        call()
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def run_case(name, kind, N, C, repeat, bw, torch, liger, xentc, variants=False):
    import cupy

    rng = cupy.random.default_rng(1234)
    row = {"case": name, "shape": f"{N}x{C}" if C else f"{N}"}
    half = name.rsplit("_", 1)[-1] if name.endswith(("_f16", "_bf16")) else None
    if kind == "softmax":
        x = rng.standard_normal((N, C), dtype=cupy.float32) * 2
        if half == "f16":
            x = x.astype(cupy.float16)
        elif half == "bf16":
            import ml_dtypes

            x = x.astype(ml_dtypes.bfloat16)
        y = rng.integers(0, C, N, dtype=cupy.int64)
        nbytes = 2 * x.nbytes                       # read the logits, write the gradient

        def call():
            return xentc.cross_entropy(y, x, from_logits=True, grad=True)
    else:
        x = rng.standard_normal(N, dtype=cupy.float32) * 2
        y = (rng.random(N, dtype=cupy.float32) < 0.5).astype(cupy.float32)
        nbytes = 3 * x.nbytes                       # read labels and logits, write the gradient

        def call():
            return xentc.binary_cross_entropy(y, x, from_logits=True, grad=True)

    row["roofline_ms"] = nbytes / bw * 1e3
    if variants:
        row["variants"] = time_variants(kind, x, y, repeat, C)
    res = call()
    cupy.cuda.Device().synchronize()
    row["xentc_ms"], row["xentc_min_ms"] = gpu_time_ms(call, repeat)
    try:
        row["xentc_kernel_ms"] = kernel_only_ms(kind, x, y, repeat)
    except Exception as exc:  # noqa: BLE001
        row["xentc_kernel_ms"] = None
        row["kernel_only_error"] = f"{type(exc).__name__}: {exc}"
    try:
        from xentc import _cuda

        _cuda.config["log"] = []
        call()
        row["xentc_kernel"] = [kw for k, kw in _cuda.config["log"] if k in ("softmax", "binary")][-1:]
        _cuda.config["log"] = None
    except Exception:  # noqa: BLE001
        pass
    if variants and not half:
        log("   host profile of 20 whole calls (tottime):\n" + host_profile(call))

    # ---- correctness against PyTorch float64 ------------------------------------------------
    if torch is not None:
        try:
            row.update(check_against_torch64(kind, x, y, res, torch))
        except Exception as exc:  # noqa: BLE001
            row["check"] = f"failed: {type(exc).__name__}: {exc}"
            traceback.print_exc()
    del res
    cupy.get_default_memory_pool().free_all_blocks()

    # ---- PyTorch ------------------------------------------------------------------------------
    if torch is not None:
        try:
            F = torch.nn.functional
            xt = _torch_view(torch, x).detach().requires_grad_(True)   # shares x; PyTorch does not write it
            yt = torch.from_dlpack(y)

            def tcall():
                xt.grad = None
                if kind == "softmax":
                    loss = F.cross_entropy(xt, yt)
                else:
                    loss = F.binary_cross_entropy_with_logits(xt, yt)
                loss.backward()

            row["torch_ms"], _ = torch_time_ms(torch, tcall, repeat)
            del xt
        except Exception as exc:  # noqa: BLE001
            row["torch_ms"] = None
            row["torch_error"] = f"{type(exc).__name__}: {exc}"
        torch.cuda.empty_cache()

    # ---- Liger-Kernel -------------------------------------------------------------------------
    if torch is not None and liger is not None and kind == "softmax":
        try:
            xl = _torch_view(torch, x).detach().clone().requires_grad_(True)   # Liger writes into it
            yl = torch.from_dlpack(y)

            largs = liger_args(liger, xl, yl)

            def lcall():
                out = liger.apply(*largs)
                loss = out[0] if isinstance(out, tuple) else out
                loss.backward()

            row["liger_ms"], _ = torch_time_ms(torch, lcall, repeat)
            del xl
        except Exception as exc:  # noqa: BLE001
            row["liger_ms"] = None
            row["liger_error"] = f"{type(exc).__name__}: {exc}"
        torch.cuda.empty_cache()
    del x, y
    cupy.get_default_memory_pool().free_all_blocks()
    return row


def _torch_view(torch, a):
    """A CuPy array as a tensor sharing its memory (bfloat16 through an int16 view: DLPack export of
    CuPy's bfloat16 is recent)."""
    if a.dtype.name == "bfloat16":
        import cupy

        return torch.from_dlpack(a.view(cupy.int16)).view(torch.bfloat16)
    return torch.from_dlpack(a)


def liger_args(liger, xl, yl):
    """Positional arguments of LigerCrossEntropyFunction.forward for plain mean cross entropy (the
    signature differs between Liger versions)."""
    import inspect

    known = {"_input": xl, "input": xl, "target": yl, "weight": None, "ignore_index": -100,
             "lse_square_scale": 0.0, "label_smoothing": 0.0, "reduction": "mean", "softcap": None,
             "return_z_loss": False}
    args = []
    for i, (pname, p) in enumerate(inspect.signature(liger.forward).parameters.items()):
        if i == 0:
            continue   # ctx
        if pname in known:
            args.append(known[pname])
        elif p.default is not inspect.Parameter.empty:
            args.append(p.default)
        else:
            args.append(None)
    return args


def torch_time_ms(torch, fn, repeat, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeat):
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return float(np.median(times)), float(np.min(times))


def check_against_torch64(kind, x, y, res, torch):
    """Loss over all rows (float64, in chunks) and the gradient on a sample of rows."""
    import cupy

    F = torch.nn.functional
    xt = _torch_view(torch, x)
    yt = torch.from_dlpack(y)
    N = x.shape[0]
    total = 0.0
    chunk = max(1, (1 << 26) // (x.shape[1] if x.ndim == 2 else 1))
    for s in range(0, N, chunk):
        xs = xt[s:s + chunk].double()
        if kind == "softmax":
            total += float(F.cross_entropy(xs, yt[s:s + chunk], reduction="sum"))
        else:
            total += float(F.binary_cross_entropy_with_logits(xs, yt[s:s + chunk].double(), reduction="sum"))
    ref_loss = total / N
    got_loss = float(res.loss)
    out = {"loss": got_loss, "loss_rel_err": abs(got_loss - ref_loss) / abs(ref_loss)}
    idx = np.unique(np.concatenate([np.arange(min(N, 64)), np.linspace(0, N - 1, 64).astype(np.int64)]))
    idx_t = torch.as_tensor(idx, device=xt.device)
    xs = xt[idx_t].double().requires_grad_(True)
    if kind == "softmax":
        F.cross_entropy(xs, yt[idx_t], reduction="sum").backward()
    else:
        F.binary_cross_entropy_with_logits(xs, yt[idx_t].double(), reduction="sum").backward()
    ref_g = xs.grad.cpu().numpy() / N
    got_g = cupy.asnumpy(res.grad[cupy.asarray(idx)]).astype(np.float64)
    scale = max(np.abs(ref_g).max(), 1e-300)
    out["grad_max_err_rel_to_max"] = float(np.abs(got_g - ref_g).max() / scale)
    # a 16-bit gradient is the float32 one rounded once: half an ulp of 2^-11 (float16) or 2^-8 (bfloat16)
    gtol = 1e-5 if res.grad.dtype.itemsize > 2 else 1e-3 if res.grad.dtype == np.float16 else 8e-3
    out["check"] = "ok" if (out["loss_rel_err"] < 1e-5 and out["grad_max_err_rel_to_max"] < gtol) else "MISMATCH"
    return out


def fmt(v):
    return "-" if v is None else f"{v:.3f} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (a dry run of this script)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--variants", action="store_true",
                    help="also time the kernel variants of VARIANTS and profile the host side of a call")
    args = ap.parse_args(argv)

    import cupy

    import xentc
    from xentc import _cuda

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    dev_name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    log(f"device: {dev_name} (compute capability {dev.compute_capability}), CuPy {cupy.__version__}")
    t0 = time.perf_counter()
    inf = _cuda.info()
    log(f"xentc kernels: {json.dumps(inf)} (first use {time.perf_counter() - t0:.1f} s)")
    torch = torch_or_none()
    if torch is not None:
        log(f"PyTorch {torch.__version__}")
    liger = liger_or_none() if torch is not None else None

    bw = copy_bandwidth(1 << 20 if args.tiny else 1 << 30, max(5, args.repeat // 2))
    log(f"copy bandwidth (read + write): {bw / 1e12:.2f} TB/s")

    table = TINY if args.tiny else QUICK if args.quick else CASES
    rows = []
    for name in args.cases.split(","):
        name = name.strip()
        if name not in table:
            log(f"unknown case {name!r}; known: {', '.join(table)}")
            continue
        kind, N, C = table[name]
        log(f"-- {name} ({N}{'x' + str(C) if C else ''}) ...")
        try:
            row = run_case(name, kind, N, C, args.repeat, bw, torch, liger, xentc, variants=args.variants)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            row = {"case": name, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        log("   " + json.dumps(row))

    log("")
    log(f"GPU: {dev_name}; float32 (16-bit where the case says _f16 / _bf16), loss + gradient in one call, "
        f"median of {args.repeat} runs")
    head = f"| case | 1 read + 1 write at copy speed | xentc (whole call) | xentc kernel only | target " \
           f"| PyTorch {getattr(torch, '__version__', '-')} | Liger-Kernel | check vs torch float64 |"
    log(head)
    log("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            log(f"| {r['case']} | - | ERROR: {r['error']} | | | | | |")
            continue
        tgt = TARGET_MS.get(r["case"]) if not (args.quick or args.tiny) else None
        ok = "" if tgt is None else (" (met)" if r["xentc_ms"] <= tgt else " (MISSED)")
        chk = r.get("check", "-")
        if "loss_rel_err" in r:
            chk += f" (loss {r['loss_rel_err']:.1e}, grad {r['grad_max_err_rel_to_max']:.1e})"
        log(f"| {r['case']} ({r['shape']}) | {fmt(r['roofline_ms'])} | {fmt(r['xentc_ms'])} | "
            f"{fmt(r.get('xentc_kernel_ms'))} | {'-' if tgt is None else f'{tgt} ms'}{ok} | "
            f"{fmt(r.get('torch_ms'))} | {fmt(r.get('liger_ms'))} | {chk} |")
    if any("variants" in r for r in rows):
        log("")
        log("kernel variants (kernel only, ms):")
        for r in rows:
            for label, v in r.get("variants", {}).items():
                what = v.get("error") or f"{v['ms']:.3f} ms  {v.get('kernel')}"
                log(f"  {r['case']:24s} {label:32s} {what}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": dev_name, "info": inf, "copy_bw": bw, "rows": rows}, f, indent=1)
    bad = [r for r in rows if "error" in r or r.get("check") not in (None, "ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
