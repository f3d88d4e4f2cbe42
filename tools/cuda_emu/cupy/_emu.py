"""Build and launch: the "NVRTC" and "driver" of the emulator.

compile_source() turns CUDA source plus name expressions into a shared library built by g++: the
source with emu.h forced in front (-include) and -DXENT_EMU=1, and a generated file with, per
name expression i, ``emu_launch_i`` (runs the kernel over a grid, see emu.h) and ``emu_sig_i``
(its parameter kinds and sizes). Libraries are cached on disk by a hash of everything that goes
into them. Kernel.__call__ checks the arguments against the signature (a NumPy scalar of the
wrong size or kind is a real bug on a GPU too: the kernel would read other bytes) and launches.

Environment (see run.sh):
  XENTC_EMU_CACHE     folder of built libraries (default ~/.cache/xentc-emu)
  XENTC_EMU_OPT       g++ optimisation flag (default -O1)
  XENTC_EMU_FMA       1: contract a*b+c into fused multiply-adds as nvcc does by default (needs a
                      host with FMA); 0 (default): no contraction
  XENTC_EMU_ASAN      1: build with AddressSanitizer (libasan must be preloaded: run.sh does it)
  XENTC_EMU_STRICT    0: allow divergent __syncthreads call sites and shuffles from exited lanes
  XENTC_EMU_ORDER     forward (default) | reverse | shuffle: order of threads between barriers
                      and of blocks in the grid
  XENTC_EMU_SOURCE    a .cu file (or "HEAD" for git HEAD's xentc/_xent.cu) compiled instead of
                      the source the caller passes; _xent_math.h is pasted from beside it
  XENTC_EMU_SMEM_FILL the byte shared memory starts as (default 0xff: NaN); 0x4b gives finite
                      stale values, for code that must mask what it did not write
  XENTC_EMU_VERBOSE   1: say on stderr when a library is built
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # tools/cuda_emu
EMU_H = os.path.join(HERE, "emu.h")

_launch_lock = threading.Lock()
_build_lock = threading.Lock()


class CompileError(Exception):
    pass


class LaunchConfigError(Exception):
    """The launch a real device would refuse (grid, block, shared memory, cluster shape)."""


class KernelFault(Exception):
    """Something went wrong inside the kernel (deadlock, undefined behaviour the emulator checks)."""


def _env_flag(name: str, default: bool = False) -> bool:
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    return v not in ("0", "false", "no", "off")


def asan() -> bool:
    return _env_flag("XENTC_EMU_ASAN")


def _fma() -> bool:
    return _env_flag("XENTC_EMU_FMA")


def _opt() -> str:
    return os.environ.get("XENTC_EMU_OPT", "-O1")


def cache_dir() -> str:
    d = os.environ.get("XENTC_EMU_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "xentc-emu")
    os.makedirs(d, exist_ok=True)
    return d


def _gxx() -> str:
    return os.environ.get("CXX", "g++")


_gxx_version: Optional[str] = None


def _compiler_id() -> str:
    global _gxx_version
    if _gxx_version is None:
        try:
            _gxx_version = subprocess.run([_gxx(), "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        except OSError:
            _gxx_version = "?"
    return _gxx_version


def build_flags(nvrtc_options) -> Tuple[List[str], List[str]]:
    """(g++ flags, what was ignored) from NVRTC-style options."""
    flags = ["-std=c++17", "-fPIC", "-shared", "-fvisibility=hidden", _opt(), "-fno-math-errno", "-fno-strict-aliasing",
             "-DXENT_EMU=1", "-Wno-attributes", "-Wno-unused", "-fno-plt"]
    contract = _fma()
    ignored = []
    for o in nvrtc_options:
        o = o.decode() if isinstance(o, bytes) else str(o)
        if o.startswith("-D") or o.startswith("-I") or o.startswith("-U"):
            flags.append(o)
        elif o.startswith("--define-macro="):
            flags.append("-D" + o.split("=", 1)[1])
        elif o.startswith("--include-path="):
            flags.append("-I" + o.split("=", 1)[1])
        elif o in ("-fmad=false", "--fmad=false"):
            contract = False
        else:
            ignored.append(o)     # -std (always c++17 here), -arch, -ftz, -lineinfo, ...
    if contract:
        flags += ["-mfma", "-ffp-contract=fast"]
    else:
        flags += ["-ffp-contract=off"]
    if asan():
        flags += ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]
    return flags, ignored


def emu_fingerprint() -> str:
    """What, besides the kernel source and options, decides the built library."""
    h = hashlib.sha256()
    for p in (EMU_H, os.path.abspath(__file__)):
        with open(p, "rb") as f:
            h.update(f.read())
    h.update(repr((_opt(), _fma(), asan(), _compiler_id(), sys.platform)).encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Source substitution (XENTC_EMU_SOURCE)
# ----------------------------------------------------------------------------------------------
def _paste_header(code: str, header: str) -> str:
    inc = '#include "_xent_math.h"'
    if inc not in code:
        return code
    pos = code.index(inc)
    line = code.count("\n", 0, pos) + 1
    pasted = f'#line 1 "_xent_math.h"\n{header}\n#line {line + 1} "_xent.cu"\n'
    return code[:pos] + pasted + code[pos + len(inc):]


def substitute_source() -> Optional[str]:
    spec = os.environ.get("XENTC_EMU_SOURCE")
    if not spec:
        return None
    if spec == "HEAD" or spec.startswith("git:"):
        rev = "HEAD" if spec == "HEAD" else spec[4:]
        repo = os.path.dirname(os.path.dirname(HERE))

        def show(path):
            return subprocess.run(["git", "-C", repo, "show", f"{rev}:{path}"], capture_output=True, text=True,
                                  check=True).stdout
        return _paste_header(show("xentc/_xent.cu"), show("xentc/_xent_math.h"))
    with open(spec, encoding="utf-8") as f:
        code = f.read()
    hdr = os.path.join(os.path.dirname(os.path.abspath(spec)), "_xent_math.h")
    if not os.path.exists(hdr):
        import xentc
        hdr = os.path.join(os.path.dirname(xentc.__file__), "_xent_math.h")
    with open(hdr, encoding="utf-8") as f:
        return _paste_header(code, f.read())


# ----------------------------------------------------------------------------------------------
# Kernel attributes read from the source: __cluster_dims__ and __launch_bounds__
# ----------------------------------------------------------------------------------------------
_IDENT = re.compile(r"[A-Za-z_]\w*(?:\s*::\s*[A-Za-z_]\w*)*")


def _skip_space(code: str, pos: int) -> int:
    while pos < len(code):
        if code[pos].isspace():
            pos += 1
        elif code.startswith("//", pos):
            e = code.find("\n", pos)
            pos = len(code) if e < 0 else e + 1
        elif code.startswith("/*", pos):
            e = code.find("*/", pos + 2)
            pos = len(code) if e < 0 else e + 2
        elif code.startswith("\\\n", pos):
            pos += 2
        else:
            break
    return pos


def _balanced(code: str, pos: int, open_="(", close=")") -> Tuple[str, int]:
    """The text inside the bracket at code[pos] and the position after its partner."""
    depth = 0
    for i in range(pos, len(code)):
        c = code[i]
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return code[pos + 1:i], i + 1
    raise ValueError("unbalanced")


def _split_top(text: str) -> List[str]:
    """Split at commas outside (), <>, [] and {}."""
    out, depth, cur = [], 0, []
    for c in text:
        if c in "(<[{":
            depth += 1
        elif c in ")>]}":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _param_name(p: str) -> Optional[str]:
    p = p.split("=", 1)[0].strip()
    m = re.search(r"([A-Za-z_]\w*)\s*$", p)
    return m.group(1) if m else None


def kernel_attributes(code: str) -> Dict[str, List[dict]]:
    """{kernel name: [{'tparams': [...], 'defaults': [default argument or None, ...], 'cluster': [x, y, z] or
    None, 'bounds': expr or None}]}"""
    out: Dict[str, List[dict]] = {}
    for m in re.finditer(r"\b__global__\b", code):
        tparams: List[str] = []
        defaults: List[Optional[str]] = []
        before = code[:m.start()].rstrip()
        if before.endswith(">"):
            depth, i = 0, len(before) - 1
            while i >= 0:
                if before[i] == ">":
                    depth += 1
                elif before[i] == "<":
                    depth -= 1
                    if depth == 0:
                        break
                i -= 1
            if i > 0 and before[:i].rstrip().endswith("template"):
                decls = _split_top(before[i + 1:-1])
                tparams = [_param_name(p) or "" for p in decls]
                defaults = [p.split("=", 1)[1].strip() if "=" in p else None for p in decls]
        pos, cluster, bounds, name = m.end(), None, None, None
        try:
            while True:
                pos = _skip_space(code, pos)
                im = _IDENT.match(code, pos)
                if not im:
                    break
                ident, pos = im.group(0), im.end()
                pos = _skip_space(code, pos)
                if pos < len(code) and code[pos] == "(":
                    if ident in ("__cluster_dims__", "__launch_bounds__", "__maxnreg__", "__attribute__", "alignas",
                                 "__align__"):
                        args, pos = _balanced(code, pos)
                        if ident == "__cluster_dims__":
                            cluster = (_split_top(args) + ["1", "1", "1"])[:3]
                        elif ident == "__launch_bounds__":
                            bounds = _split_top(args)[0]
                        continue
                    name = ident
                    break
                # a type or qualifier before the name (void, static, ...): go on
        except ValueError:
            name = None
        if name:
            out.setdefault(name, []).append({"tparams": tparams, "defaults": defaults, "cluster": cluster,
                                             "bounds": bounds})
    return out


def _substitute(expr: str, mapping: Dict[str, str]) -> str:
    return re.sub(r"(?<![\w:])([A-Za-z_]\w*)\b",
                  lambda mm: f"({mapping[mm.group(1)]})" if mm.group(1) in mapping else mm.group(1), expr)


def launch_constants(attrs: Dict[str, List[dict]], name_expr: str) -> Tuple[str, str, str, str]:
    """C++ expressions (cluster x, y, z, launch bound) for one name expression."""
    base, targs = name_expr.strip(), []
    if "<" in base:
        i = base.index("<")
        inner, _ = _balanced(base, i, "<", ">")
        base, targs = base[:i].strip(), _split_top(inner)
    cands = attrs.get(base.split("::")[-1], [])
    entry = None
    for c in cands:   # the template whose parameters take these arguments (the rest by default)
        n = len(targs)
        if len(c["tparams"]) >= n and all(d is not None for d in c.get("defaults", [])[n:len(c["tparams"])]):
            entry = c
            break
    if entry is None:
        return "1", "1", "1", "0"
    mapping = {p: a for p, a in zip(entry["tparams"], targs) if p}
    for p, d in list(zip(entry["tparams"], entry.get("defaults", [])))[len(targs):]:
        if p:
            mapping[p] = _substitute(d, mapping)
    cl = entry["cluster"] or ["1", "1", "1"]
    cx, cy, cz = (_substitute(e, mapping) for e in cl)
    b = _substitute(entry["bounds"], mapping) if entry["bounds"] else "0"
    return cx, cy, cz, b


# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------
def _launcher_source(code_file: str, names: List[str], attrs) -> str:
    lines = [f'#include "{code_file}"', "", "/* generated by tools/cuda_emu/cupy/_emu.py */"]
    for i, n in enumerate(names):
        cx, cy, cz, b = launch_constants(attrs, n)
        q = n.replace("\\", "\\\\").replace('"', '\\"')
        lines += [
            f'extern "C" EMU_EXPORT int emu_launch_{i}(const emu::LaunchArgs* a) {{',
            f'    return emu::launch(a, &emu::body< &{n} >, "{q}", long({cx}), long({cy}), long({cz}), long({b}));',
            "}",
            f'extern "C" EMU_EXPORT const char* emu_sig_{i}() {{',
            f"    static const std::string s = emu::signature_of(&{n});",
            "    return s.c_str();",
            "}",
            f'extern "C" EMU_EXPORT const char* emu_name_{i}() {{ return "{q}"; }}',
        ]
    return "\n".join(lines) + "\n"


def compile_source(code: str, options, filename: str, names) -> Tuple[bytes, Dict[str, str]]:
    """Build the library for these kernels: (its bytes, {name expression: launcher symbol})."""
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    sub = substitute_source()
    if sub is not None:
        code = sub
    flags, _ = build_flags(options)
    filename = os.path.basename(filename or "kernel.cu")
    key = hashlib.sha256(repr((code, flags, names, filename, emu_fingerprint())).encode()).hexdigest()[:32]
    mapping = {n: f"emu_launch_{i}" for i, n in enumerate(names)}
    d = cache_dir()
    so = os.path.join(d, f"build-{key}.so")
    with _build_lock:
        if not os.path.exists(so):
            t0 = time.perf_counter()
            work = tempfile.mkdtemp(prefix="build-", dir=d)
            try:
                with open(os.path.join(work, filename), "w", encoding="utf-8") as f:
                    f.write(code)
                main = os.path.join(work, "emu_launchers.cpp")
                with open(main, "w", encoding="utf-8") as f:
                    f.write(_launcher_source(filename, names, kernel_attributes(code)))
                tmp_so = os.path.join(work, "out.so")
                cmd = [_gxx(), *flags, "-include", EMU_H, "-I" + work, main, "-o", tmp_so]
                r = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
                if r.returncode != 0:
                    log = r.stderr
                    if len(log) > 20000:
                        log = log[:20000] + "\n... (log cut)"
                    raise CompileError(f"g++ failed (exit {r.returncode}) building the emulated kernels:\n"
                                       f"{' '.join(cmd)}\n{log}")
                os.replace(tmp_so, so)
            finally:
                for fn in os.listdir(work):
                    try:
                        os.remove(os.path.join(work, fn))
                    except OSError:
                        pass
                try:
                    os.rmdir(work)
                except OSError:
                    pass
            if _env_flag("XENTC_EMU_VERBOSE"):
                print(f"[cuda_emu] built {len(names)} kernels in {time.perf_counter() - t0:.1f} s: {so}",
                      file=sys.stderr)
    with open(so, "rb") as f:
        data = f.read()
    return data, mapping


# ----------------------------------------------------------------------------------------------
# Loading and launching
# ----------------------------------------------------------------------------------------------
class _LaunchArgs(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3), ("dyn_smem", ctypes.c_ulonglong),
                ("max_dyn", ctypes.c_ulonglong), ("params", ctypes.POINTER(ctypes.c_void_p)), ("strict", ctypes.c_int),
                ("order", ctypes.c_int), ("seed", ctypes.c_ulonglong), ("err", ctypes.c_char_p),
                ("errcap", ctypes.c_ulonglong), ("fill", ctypes.c_uint)]


_libs: Dict[str, ctypes.CDLL] = {}
_stack_pool: list = []   # the first module's pool of thread stacks, shared with every later one (emu.h)


def load_library(data: bytes) -> ctypes.CDLL:
    h = hashlib.sha256(data).hexdigest()[:32]
    lib = _libs.get(h)
    if lib is not None:
        return lib
    path = os.path.join(cache_dir(), f"mod-{h}.so")
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(dir=cache_dir(), suffix=".so")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    lib = ctypes.CDLL(path, mode=os.RTLD_LOCAL | os.RTLD_NOW)
    if hasattr(lib, "emu_stack_pool"):   # one pool of stacks for all modules (mappings: emu.h's StackPool)
        if _stack_pool:
            lib.emu_share_stack_pool.argtypes = [ctypes.c_void_p]
            lib.emu_share_stack_pool(_stack_pool[0])
        else:
            lib.emu_stack_pool.restype = ctypes.c_void_p
            _stack_pool.append(lib.emu_stack_pool())
    _libs[h] = lib
    return lib


_ORDERS = {"forward": 0, "": 0, "reverse": 1, "shuffle": 2, "random": 2}
_seed_counter = [0]


def _dims(v) -> Tuple[int, int, int]:
    if isinstance(v, (int, np.integer)):
        v = (int(v),)
    v = tuple(int(x) for x in v)
    if not 1 <= len(v) <= 3:
        raise ValueError(f"grid/block must have 1 to 3 dimensions, got {v}")
    return v + (1,) * (3 - len(v))


def _c_value(arg, code: str, i: int, kname: str):
    """The ctypes object holding argument i for a parameter of kind/size `code` (emu.h)."""
    kind, size = code[0], int(code[1:])
    from . import ndarray   # the fake cupy array

    def bad(what):
        return TypeError(f"argument {i} of {kname}: the kernel parameter is {_describe(code)}, but {what} was "
                         "passed (on a GPU the kernel would read the wrong bytes)")

    if isinstance(arg, ndarray):
        if kind != "p":
            raise bad("a cupy.ndarray (a pointer)")
        return ctypes.c_uint64(arg.data.ptr)
    if isinstance(arg, np.generic):
        dt = arg.dtype
        if kind == "p":
            if dt.kind in "iu" and dt.itemsize == 8:
                return ctypes.c_uint64(int(arg) & (2**64 - 1))
            raise bad(f"a NumPy {dt} scalar")
        if kind in "iu" and dt.kind in "iu" and dt.itemsize == size:
            return ctypes.c_uint64(int(arg) & (2**64 - 1)) if size == 8 else \
                {1: ctypes.c_uint8, 2: ctypes.c_uint16, 4: ctypes.c_uint32}[size](int(arg) & (2**(8 * size) - 1))
        if kind == "b" and dt.kind == "b":
            return ctypes.c_bool(bool(arg))
        if kind == "f" and dt.kind == "f" and dt.itemsize == size:
            return ctypes.c_double(float(arg)) if size == 8 else ctypes.c_float(float(arg))
        raise bad(f"a NumPy {dt} scalar")
    if isinstance(arg, bool):
        if kind == "b":
            return ctypes.c_bool(arg)
        raise bad("a Python bool")
    if isinstance(arg, int):
        # CuPy passes a Python int as a 64-bit integer
        if (kind in "iu" and size == 8) or kind == "p":
            return ctypes.c_uint64(arg & (2**64 - 1))
        raise bad("a Python int (passed as 8 bytes)")
    if isinstance(arg, float):
        if kind == "f" and size == 8:
            return ctypes.c_double(arg)
        raise bad("a Python float (passed as a double)")
    if arg is None and kind == "p":
        return ctypes.c_uint64(0)
    raise bad(f"an object of type {type(arg).__name__}")


def _describe(code: str) -> str:
    kind, size = code[0], code[1:]
    return {"p": "a pointer", "i": f"a {size}-byte signed integer", "u": f"a {size}-byte unsigned integer",
            "f": f"a {size}-byte float", "b": "a bool"}.get(kind, f"a {size}-byte value") + f" ({code})"


class Kernel:
    """One kernel instance of a loaded library."""

    def __init__(self, lib: ctypes.CDLL, symbol: str, name: str):
        self.lib, self.symbol, self.name = lib, symbol, name
        self._fn = getattr(lib, symbol)
        self._fn.argtypes = [ctypes.POINTER(_LaunchArgs)]
        self._fn.restype = ctypes.c_int
        sig_fn = getattr(lib, symbol.replace("emu_launch_", "emu_sig_"))
        sig_fn.restype = ctypes.c_char_p
        sig_fn.argtypes = []
        s = sig_fn().decode()
        name_fn = getattr(lib, symbol.replace("emu_launch_", "emu_name_"), None)
        if name_fn is not None:
            name_fn.restype = ctypes.c_char_p
            name_fn.argtypes = []
            self.name = name_fn().decode()
        self.signature = s.split(",") if s else []
        self.max_dynamic_shared_size_bytes = 0     # 0: the default 48 KiB
        self.preferred_shared_memory_carveout = -1

    def __call__(self, grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
        g, b = _dims(grid), _dims(block)
        args = tuple(args)
        if len(args) != len(self.signature):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.signature)} kernel parameters "
                            f"({','.join(self.signature)})")
        vals = [_c_value(a, c, i, self.name) for i, (a, c) in enumerate(zip(args, self.signature))]
        params = (ctypes.c_void_p * max(1, len(vals)))(*[ctypes.addressof(v) for v in vals])
        err = ctypes.create_string_buffer(4096)
        order = os.environ.get("XENTC_EMU_ORDER", "forward").lower()
        if order not in _ORDERS:
            raise ValueError(f"XENTC_EMU_ORDER={order!r}: expected forward, reverse or shuffle")
        _seed_counter[0] += 1
        la = _LaunchArgs()
        la.grid[:] = g
        la.block[:] = b
        la.dyn_smem = int(shared_mem)
        la.max_dyn = int(self.max_dynamic_shared_size_bytes)
        la.params = ctypes.cast(params, ctypes.POINTER(ctypes.c_void_p))
        la.strict = 1 if _env_flag("XENTC_EMU_STRICT", True) else 0
        la.order = _ORDERS[order]
        la.seed = (int(os.environ.get("XENTC_EMU_SEED", "12345")) * 1000003 + _seed_counter[0]) & (2**64 - 1)
        la.err = ctypes.cast(err, ctypes.c_char_p)
        la.errcap = len(err)
        la.fill = int(os.environ.get("XENTC_EMU_SMEM_FILL", "0xff"), 0) & 0xFF
        with _launch_lock:
            rc = self._fn(ctypes.byref(la))
        if rc == 0:
            return
        msg = err.value.decode(errors="replace")
        if rc == 1:
            raise LaunchConfigError(msg)
        raise KernelFault(msg)
