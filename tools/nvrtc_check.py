"""Compile xentc's CUDA kernels with NVRTC, as xentc._cuda does on a GPU, but without one.

NVRTC is the compiler CuPy uses at run time, and it differs from nvcc (no host headers, its own
predefined macros, its own warnings), so an nvcc compile check does not prove that the kernels
build where they are used. NVRTC itself needs no GPU: this script loads libnvrtc through ctypes,
hands it the same source, options and name expressions as ``_cuda._Module`` (route "noftz") for
several architectures, and fails if a compile fails, a name expression has no lowered name, or
NVRTC prints a warning.

    pip install nvidia-cuda-nvrtc          # libnvrtc.so.13 in site-packages/nvidia/cu13/lib
    python tools/nvrtc_check.py [--arch 75 80 90 100] [--lib /path/to/libnvrtc.so] [--cubin-dir D]

With --cubin-dir the compiled images are written there (sm_XX.cubin), for ``cuobjdump``;
--resources prints what ptxas reports of each kernel instance (registers, stack frame, spill
bytes: static sizes of the spill instructions, not traffic).
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import os
import re
import sys
import time


def source_cuda():
    """xentc._cuda of this source tree, imported without running xentc/__init__.py (which needs the
    compiled extension); the package spec is real, so importlib.resources finds the .cu source."""
    import importlib.util

    if "xentc._cuda" in sys.modules:
        return sys.modules["xentc._cuda"]
    d = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "xentc"))
    pspec = importlib.util.spec_from_file_location("xentc", os.path.join(d, "__init__.py"),
                                                   submodule_search_locations=[d])
    sys.modules["xentc"] = importlib.util.module_from_spec(pspec)   # not executed
    spec = importlib.util.spec_from_file_location("xentc._cuda", os.path.join(d, "_cuda.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["xentc._cuda"] = mod
    spec.loader.exec_module(mod)
    return mod


def find_libnvrtc(explicit: str | None) -> str:
    if explicit:
        return explicit
    cands = []
    for p in sys.path:
        cands += glob.glob(os.path.join(p, "nvidia", "cu1*", "lib", "libnvrtc.so.*"))
        cands += glob.glob(os.path.join(p, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.*"))
    for root in ("/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu"):
        cands += glob.glob(os.path.join(root, "libnvrtc.so*"))
    cands = [c for c in cands if "builtins" not in c and "alt" not in os.path.basename(c)]
    if not cands:
        raise SystemExit("nvrtc_check: libnvrtc not found (pip install nvidia-cuda-nvrtc, or --lib PATH)")
    return sorted(cands)[-1]


class NVRTC:
    def __init__(self, path: str):
        # NVRTC opens its builtins library by name at the first compile: load it from beside
        # libnvrtc first (a pip-installed NVRTC is not on the loader's path)
        for b in sorted(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so.*"))):
            if ".alt." not in b:
                ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
        self.lib = ctypes.CDLL(path)
        L = self.lib
        L.nvrtcGetErrorString.restype = ctypes.c_char_p
        self.version = self._version()

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise RuntimeError(f"{what}: {self.lib.nvrtcGetErrorString(rc).decode()}")

    def _version(self) -> tuple:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return major.value, minor.value

    def compile(self, code: str, options: list, names: list):
        """(ok, log, cubin bytes, {name: lowered name})."""
        L = self.lib
        prog = ctypes.c_void_p()
        self._check(L.nvrtcCreateProgram(ctypes.byref(prog), code.encode(), b"xentc_kernels.cu", 0,
                                         None, None), "nvrtcCreateProgram")
        try:
            for n in names:
                self._check(L.nvrtcAddNameExpression(prog, n.encode()), f"nvrtcAddNameExpression({n})")
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            rc = L.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            self._check(L.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "nvrtcGetProgramLogSize")
            buf = ctypes.create_string_buffer(size.value)
            self._check(L.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
            log = buf.value.decode(errors="replace").strip()
            if rc != 0:
                return False, log, b"", {}
            self._check(L.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
            cubin = ctypes.create_string_buffer(size.value)
            self._check(L.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
            lowered = {}
            for n in names:
                p = ctypes.c_char_p()
                self._check(L.nvrtcGetLoweredName(prog, n.encode(), ctypes.byref(p)), f"lowered name of {n}")
                lowered[n] = p.value.decode()
            return True, log, cubin.raw, lowered
        finally:
            L.nvrtcDestroyProgram(ctypes.byref(prog))


def nvrtc_options(_cuda, nv: "NVRTC", cc: int, cluster: bool) -> list:
    """What _cuda._Module passes (route "noftz") and what CuPy's compile_using_nvrtc adds."""
    opts = list(_cuda._module_options(cluster)) + ["-ftz=false", f"--gpu-architecture=sm_{cc}"]
    if nv.version[0] >= 12:   # CuPy adds this for NVRTC 12 and later
        opts.append("--device-as-default-execution-space")
    return opts


def split_ptxas_info(log: str, lowered: dict):
    """({name: (registers, stack bytes, spill store bytes, spill load bytes)}, the rest of the log):
    the lines of --ptxas-options=-v taken out, so that what remains are warnings and errors."""
    by_mangled = {v: k for k, v in lowered.items()}
    usage, rest, current = {}, [], None
    for line in log.splitlines():
        if not line.startswith("ptxas"):
            rest.append(line)
            continue
        m = re.search(r"entry function '([^']+)'", line)
        if m:
            current = by_mangled.get(m.group(1), m.group(1).split("(")[0])
            usage[current] = [0, 0, 0, 0]
        elif current is not None:
            m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if m:
                usage[current][1:] = [int(v) for v in m.groups()]
            m = re.search(r"Used (\d+) registers", line)
            if m:
                usage[current][0] = int(m.group(1))
    return usage, "\n".join(rest).strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", nargs="+", type=int, default=[75, 80, 90, 100],
                    help="compute capabilities to build for (cluster kernels from 90 on)")
    ap.add_argument("--lib", help="path of libnvrtc.so")
    ap.add_argument("--cubin-dir", help="write each compiled image here as sm_XX.cubin")
    ap.add_argument("--resources", action="store_true",
                    help="print registers, stack frame and spill bytes of every kernel instance")
    ap.add_argument("--part", default="all",
                    help="the kernel instances to build, as _cuda.name_expressions takes them: all (default), "
                         "base (a device's first call), xentk::xhalf or xentk::xbf16 (a 16-bit dtype's first call), "
                         "soft-y:<labels>:<y_pred> or binary-y:<labels>:<y_pred> (dtype names: the first call "
                         "with labels of one dtype beside y_pred of another, e.g. soft-y:float64:float32)")
    args = ap.parse_args()

    _cuda = source_cuda()   # needs neither CuPy nor a GPU nor the compiled extension

    nv = NVRTC(find_libnvrtc(args.lib))
    print(f"NVRTC {nv.version[0]}.{nv.version[1]}")
    code = _cuda.kernel_source()
    failed = 0
    for cc in args.arch:
        cluster = cc >= 90
        names = _cuda.name_expressions(cluster, args.part)
        # what _Module passes (route "noftz"), and what CuPy's compile_using_nvrtc adds
        opts = nvrtc_options(_cuda, nv, cc, cluster)
        if args.resources:
            opts.append("--ptxas-options=-v")
        t = time.perf_counter()
        ok, log, cubin, lowered = nv.compile(code, opts, names)
        dt = time.perf_counter() - t
        missing = [n for n in names if not lowered.get(n)]
        usage, log = split_ptxas_info(log, lowered)
        status = "ok" if ok and not log and not missing else "FAILED"
        print(f"sm_{cc}: {status} ({len(names)} kernel instances, cluster={cluster}, "
              f"{len(cubin)} bytes, {dt:.1f} s)")
        if log:
            print("\n".join("    " + line for line in log.splitlines()[:60]))
        for n in missing:
            print(f"    no lowered name for {n}")
        for n in sorted(usage, key=lambda n: (usage[n][2], usage[n][0], n)):
            regs, stack, spill_st, spill_ld = usage[n]
            print(f"    {regs:4d} registers {stack:4d} B stack {spill_st:4d}/{spill_ld:<4d} B spill st/ld  {n}")
        if status != "ok":
            failed += 1
        elif args.cubin_dir:
            os.makedirs(args.cubin_dir, exist_ok=True)
            with open(os.path.join(args.cubin_dir, f"sm_{cc}.cubin"), "wb") as f:
                f.write(cubin)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
