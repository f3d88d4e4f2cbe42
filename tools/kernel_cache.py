"""Build xentc's CUDA kernels with NVRTC on a machine without a GPU, and seed a GPU machine's kernel
disk cache with them.

A GPU lease is short, and NVRTC takes minutes of one core for all the lazily built parts of the
kernels (``_cuda._parts``: the base module, the 16-bit storage types, the mixed label dtypes).
The binaries depend only on the source, the options, the kernel names, the NVRTC version and the
architecture, so they can be built here and carried along:

    pip install "nvidia-cuda-nvrtc==13.0.*"          # the NVRTC version of the GPU machine
    python tools/kernel_cache.py build --arch 90 --out .whl/kernels [--jobs 2]
    # on the GPU machine, with xentc and CuPy installed (benchmarks/gpu_check.sh does this):
    python tools/kernel_cache.py seed .whl/kernels

``seed`` stores a part under the name ``_cuda._compile_noftz`` looks up (``_cuda._cache_key``)
only where the installed xentc's kernel source, the device's compute capability and CuPy's NVRTC
version are the ones the part was built with; any other part is left to be compiled there as
usual. It prints what it seeded and what it skipped, and why.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _file_name(part: str, cc: int) -> str:
    return "sm%d_%s.bin.gz" % (cc, "".join(c if c.isalnum() else "_" for c in part))


def _build_one(job):
    lib, cc, part, out = job
    sys.path.insert(0, HERE)
    import nvrtc_check

    _cuda = nvrtc_check.source_cuda()
    nv = nvrtc_check.NVRTC(lib)
    cluster = cc >= 90
    names = _cuda.name_expressions(cluster, part)
    code = _cuda.kernel_source()
    t = time.perf_counter()
    ok, log, cubin, lowered = nv.compile(code, nvrtc_check.nvrtc_options(_cuda, nv, cc, cluster), names)
    dt = time.perf_counter() - t
    if not ok or any(not lowered.get(n) for n in names):
        return {"part": part, "cc": cc, "error": log or "missing lowered names", "seconds": dt}
    fname = _file_name(part, cc)
    with gzip.open(os.path.join(out, fname), "wb") as f:   # a quarter of the size to carry
        f.write(cubin)
    return {"part": part, "cc": cc, "cluster": cluster, "nvrtc": list(nv.version), "code_sha256": _sha(code),
            "names": names, "mapping": lowered, "file": fname,
            "sha256": hashlib.sha256(cubin).hexdigest(), "seconds": round(dt, 1), "warnings": log}


def build(args) -> int:
    sys.path.insert(0, HERE)
    import nvrtc_check

    lib = nvrtc_check.find_libnvrtc(args.lib)
    _cuda = nvrtc_check.source_cuda()
    parts = list(_cuda._parts()) if args.parts == ["all"] else args.parts
    os.makedirs(args.out, exist_ok=True)
    jobs = [(lib, cc, p, args.out) for cc in args.arch for p in parts]
    entries, failed = [], 0
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for r in pool.map(_build_one, jobs):
            if "error" in r:
                failed += 1
                print(f"sm_{r['cc']} {r['part']}: FAILED\n{r['error']}", flush=True)
            else:
                entries.append(r)
                print(f"sm_{r['cc']} {r['part']}: {len(r['names'])} kernels, {r['seconds']} s", flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=1)
    print(f"{len(entries)} parts built, {failed} failed, {time.perf_counter() - t0:.0f} s wall")
    return 1 if failed else 0


def seed(args) -> int:
    import cupy

    from xentc import _cuda   # the installed package: its source and its cache directory

    if _cuda._cache_dir() is None:
        print("kernel_cache: the disk cache is off (XENTC_CACHE_DIR); nothing seeded")
        return 1
    with open(os.path.join(args.dir, "manifest.json"), encoding="utf-8") as f:
        entries = json.load(f)
    code = _cuda.kernel_source()
    cc = str(cupy.cuda.Device().compute_capability)
    nvrtc = list(cupy.cuda.nvrtc.getVersion())
    seeded, skipped = 0, {}
    for e in entries:
        why = None
        if str(e["cc"]) != cc:
            why = f"built for sm_{e['cc']}, device is sm_{cc}"
        elif e["code_sha256"] != _sha(code):
            why = "kernel source differs from the installed xentc's"
        elif e["nvrtc"] != nvrtc:
            why = f"built by NVRTC {e['nvrtc']}, CuPy uses {nvrtc}"
        elif e["names"] != _cuda.name_expressions(e["cluster"], e["part"]):
            why = "kernel names differ"
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        with gzip.open(os.path.join(args.dir, e["file"]), "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != e["sha256"]:
            skipped["binary damaged"] = skipped.get("binary damaged", 0) + 1
            continue
        opts = _cuda._module_options(e["cluster"]) + ("-ftz=false",)
        _cuda._cache_store(_cuda._cache_key(cupy, code, opts, e["names"], cc), data, e["mapping"])
        seeded += 1
    print(f"kernel_cache: seeded {seeded} of {len(entries)} parts into {_cuda._cache_dir()} "
          f"(sm_{cc}, NVRTC {nvrtc[0]}.{nvrtc[1]}, CuPy {cupy.__version__})")
    for why, n in skipped.items():
        print(f"    skipped {n}: {why} (compiled on first use instead)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the kernel parts with NVRTC (no GPU needed)")
    b.add_argument("--arch", nargs="+", type=int, default=[90])
    b.add_argument("--out", required=True)
    b.add_argument("--parts", nargs="+", default=["all"], help="parts of _cuda._parts(), or all")
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    b.add_argument("--lib", help="path of libnvrtc.so")
    s = sub.add_parser("seed", help="store built parts in this GPU machine's kernel disk cache")
    s.add_argument("dir")
    args = ap.parse_args()
    return build(args) if args.cmd == "build" else seed(args)


if __name__ == "__main__":
    sys.exit(main())
