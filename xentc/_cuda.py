"""CUDA backend of xentc: the same three functions as the CPU kernels (``_kernels``), on CuPy arrays.

``_api`` calls ``weight_sum``, ``binary`` and ``softmax`` with exactly the arguments it gives the
CPU backend (outputs already allocated) and gets back ``(sum, error code, index, value)``.

The kernels live in ``_xent.cu`` (with the per-element formulas of ``_xent_math.h``), read with
importlib.resources and compiled once per device with NVRTC; the compiled module is cached per
device id in this process and, on disk, per source/options/compiler/architecture.

Compilation route. CuPy's ``RawModule`` appends ``-ftz=true`` to every NVRTC compile, which
flushes float32 subnormals to zero: float32 results that are subnormal (softplus(-100), a
probability of 1e-40) would then differ from the CPU path. So the kernels are compiled with
``-ftz=false`` through ``cupy.cuda.compiler.compile_using_nvrtc`` when this CuPy provides it; if
that fails for any reason, ``cupy.RawModule`` (with flush-to-zero) is used instead. ``info()``
says which route was taken. Neither route uses fast math: NaN and inf behave as on the CPU.

Every reduction is deterministic: each block writes its partial sum (and its first error) to a
fixed slot, and a second small kernel adds the slots in order. The only device-to-host transfer
per call is those 16 bytes (sum and first-error key).

CuPy is imported lazily, so that this module (and its name lists) can be imported without it;
``import xentc`` never imports this module at all.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from importlib import resources
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ._dtypes import dtype_name

__all__ = ["weight_sum", "weight_sum_enqueue", "binary", "softmax", "info", "name_expressions", "kernel_source", "nvcc_check_source"]

# Error codes of _xent_rows.h
_ERR_LABEL_RANGE = 1
# Every categorical kernel reports integer labels outside [0, C) itself (as ERR_LABEL_RANGE at the
# row's first class), so _api may skip the weight pre-pass where it only checks labels
LABELS_CHECKED_IN_KERNEL = True
# The kernels read float16 and bfloat16 y_pred (and soft labels) and write such gradients and
# Hessians as they are, computing in float32 (the xhalf / xbf16 storage types of _xent.cu), so
# _api converts nothing
HALF_STORAGE = True
# The weight pre-pass can leave the mean's denominator on the device for the kernels that follow it
# (weight_sum_enqueue, softmax's `pre`), so that a call waits for the device once
DEVICE_DENOMINATOR = True
# The storage-type template argument of the kernels for 16-bit float arrays, by dtype name
# (bfloat16: ml_dtypes.bfloat16, which CuPy 14 takes)
_STORAGE = {"float16": "xentk::xhalf", "bfloat16": "xentk::xbf16"}
# Soft labels the generic categorical kernels read in their own dtype beside y_pred of any other
# (SL of _xent.cu), by dtype name: their C type. _api passes them uncast (no device array of
# y_pred's size); the kernels of each (labels, y_pred) pair are built on its first call
_SOFT_LABEL_TYPES = {"float32": "float", "float64": "double", "float16": "xentk::xhalf", "bfloat16": "xentk::xbf16"}
SOFT_LABEL_DTYPES = frozenset(_SOFT_LABEL_TYPES)
# others (byte-swapped) are converted to the compute dtype, beside 16-bit y_pred too
SOFT_LABELS_IN_COMPUTE_DTYPE = True
# Sample weights every kernel reads in their own dtype beside y_pred of any other (sw_kind of
# _xent.cu: the value passed beside the pointer), by dtype name. _api passes them unconverted and
# unchecked (native byte order): the weight pass checks each in its own dtype
_WEIGHT_KINDS = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}
SAMPLE_WEIGHT_DTYPES = frozenset(_WEIGHT_KINDS)
# Binary labels the kernels read in their own dtype (SY of the binary kernels, label_widen of
# _xent.cu), by dtype name: their C type. _api passes them uncast where labels and y_pred are both
# contiguous, or the labels strided in one dimension (STRIDED_BINARY_LABELS: the general kernel
# reads them at their stride); the kernels of each (labels, y_pred) pair are built on its first call
_LABEL_TYPES = {"bool": "xentk::xbool", "int8": "xentk::xi8", "uint8": "xentk::xu8", "int16": "xentk::xi16",
                "uint16": "xentk::xu16", "int32": "xentk::xi32", "uint32": "xentk::xu32", "int64": "xi64",
                "uint64": "xu64", "float32": "float", "float64": "double", **_STORAGE}
_PRED_DTYPES = ("float32", "float64", "float16", "bfloat16")   # y_pred as the kernels read it


def _dtypes_by_name(names) -> dict:
    """{np.dtype: C type} for dtype names (bfloat16 where ml_dtypes, which CuPy needs for it, is there)."""
    out = {np.dtype(k): v for k, v in names.items() if k != "bfloat16"}
    if "bfloat16" in names:
        try:
            import ml_dtypes
        except ImportError:
            pass
        else:
            out[np.dtype(ml_dtypes.bfloat16)] = names["bfloat16"]
    return out


BINARY_LABEL_DTYPES = _dtypes_by_name(_LABEL_TYPES)
STRIDED_BINARY_LABELS = True
# Binary sample weights that repeat are passed once with (sw_rep, sw_len) (_api's _sample_weight;
# WeightIndex of _xent.cu): no device array of y_pred's size for a weight per row of (N, L)
SAMPLE_WEIGHT_PATTERNS = True
_NO_ERR = 0xFFFFFFFFFFFFFFFF

# Work per block of the elementwise kernels (NT * IT in _xent.cu)
_BINARY_PER_BLOCK = 2048
# xent_binary_vec: 16-byte packs per round of a block (NT * U), at most this many rounds per block:
# one, as on one H200 a block a round took 4-5% less time than 4 rounds a block for 2^27 float32
# logits in each of three runs (0.373-0.381 vs 0.391-0.398 ms, bench_gpu.py --variants); more
# rounds stay for experiments (config["binary_vec_rounds"]) and other GPUs
_BINARY_VEC_PACKS = 1024
_BINARY_VEC_MAX_ROUNDS = 1
_WEIGHT_PER_BLOCK = 2048
# Rows per block of the categorical kernels
_THREAD_ROWS, _TILE_ROWS, _WARP_ROWS = 128, 128, 8
_TILE_MAX_BYTES = 44 * 1024      # dynamic shared memory; the kernel also has static scratch, and 48 KiB is the total limit
# Contiguous cross entropy from logits uses the on-chip kernel from this many classes on
_ONCHIP_MIN_C = 512
# shared memory per block holding a row slice: on one H200, 64 KiB (three blocks a multiprocessor)
# took 17-27% less time than 32-48 KiB or 160-220 KiB on rows of 32000 and 128256 classes
# (benchmarks/gpu_onchip_sweep.py, RESULTS.md)
_ONCHIP_MAX_BYTES = 64 * 1024
_PIPE_THREADS = 1024                # the pipelined on-chip kernels: one block per SM, two slice buffers
_CLUSTER_SIZES = (2, 4, 8)
# Cross entropy from logits on contiguous rows of at most 32 classes uses the few-classes kernel,
# compiled for these bounds on C (its per-row registers: float64 rows of more than 16 classes take
# the tile kernel; ptxas already reports spill code of 48-112 bytes a thread for the CMAX 16 and 32
# instances, `python tools/nvrtc_check.py --resources`); 8 warps of 32 rows per block, each row
# taking an odd number of shared-memory slots (C | 1): at most 34 KiB, under the 48 KiB a block
# gets without opting in
_SMALL_CMAX = {False: (8, 16, 32), True: (8, 16)}
_SMALL_ROWS = 256
# the bound of each C (0..32), None past the largest
_SMALL_CMAX_OF = {d: tuple(next((cm for cm in b if c <= cm), None) for c in range(33)) for d, b in _SMALL_CMAX.items()}
# These calls take the few-classes kernel compiled for their exact C (xent_softmax_few: straight
# code, no spill but float64 C = 15, 16; for 10 classes, gradient alone, a warp of 32 rows runs
# about 900 SASS instructions, against 1861 that ncu counted for xent_softmax_small<float, 16>,
# RESULTS.md); the instances are built per dtype on the first call that needs one (the part
# "few:<dtype>", 4-12 s of NVRTC). xent_softmax_small, the kernel compiled for these bounds,
# stays as the variant (config "few" off) until a GPU has timed both on every option.
_FEW_PART = "few:"
_MAX_GRID = 2**31 - 1

# Kernel choice, for tests and experiments: "onchip"/"small"/"tile"/"cluster" can be switched off,
# "pipeline" on (the persistent double-buffered on-chip kernels: off by default, as on one H200
# they took 1.8-2.4x the time of one row a block, 10.67 vs 5.88 ms for 65536 x 32000 and 8.54 vs
# 3.59 ms for 8192 x 128256 float32, benchmarks/bench_gpu.py --variants, RESULTS.md),
# "force" names one categorical kernel ("thread", "tile", "warp", "block", "onchip", "small": the
# few-classes kernel compiled for a bound on C, "few": the one compiled for the exact C), "few"
# can be switched off (the calls of at most 32 classes then take the "small" kernel),
# "onchip_cap" lowers the shared memory (bytes) an on-chip block may hold, so that small rows
# take the cluster path, "wide16" can be switched off (16-bit rows then take narrow slices, which
# hold the logits alone and compute each exponential again for the gradient: half the shared
# memory, so clusters half the size), "ragged" can be switched off (rows that are not whole aligned
# vectors, an odd C say, are then taken a class at a time by the on-chip kernels, as before), and
# "log" (a list) records each launch's choice.
config: Dict[str, Any] = {"onchip": True, "pipeline": False, "small": True, "few": True, "tile": True, "cluster": True,
                          "wide16": True, "ragged": True, "force": None,
                          "onchip_cap": None, "log": None}

_modules: Dict[int, "_Module"] = {}
_lock = threading.Lock()


# ----------------------------------------------------------------------------------------------
# Source and names (no CuPy needed)
# ----------------------------------------------------------------------------------------------
def _package_dir() -> str:
    # not str(resources.files(...)): under an editable install that is not a path
    return os.path.dirname(os.path.abspath(__file__))


def kernel_source() -> str:
    """The CUDA source as compiled: _xent.cu with _xent_math.h pasted in place of its #include
    (so that a cached binary can never outlive a change of the header)."""
    pkg = resources.files(__package__ or "xentc")
    code = pkg.joinpath("_xent.cu").read_text(encoding="utf-8")
    header = pkg.joinpath("_xent_math.h").read_text(encoding="utf-8")
    inc = '#include "_xent_math.h"'
    if inc not in code:
        raise RuntimeError("xentc: _xent.cu does not include _xent_math.h")
    pos = code.index(inc)
    line = code.count("\n", 0, pos) + 1
    pasted = f'#line 1 "_xent_math.h"\n{header}\n#line {line + 1} "_xent.cu"\n'
    return code[:pos] + pasted + code[pos + len(inc):]


def _tname(double_: bool) -> str:
    return "double" if double_ else "float"


def _sname(store: str, same_y: bool = False) -> str:
    """The storage-type template arguments of a kernel instance: `store` ("" for the default, T, or
    a value of _STORAGE: 16-bit arrays read and written as they are, computed in float); same_y:
    the binary kernels' labels are stored the same way (they may be float32 beside 16-bit y_pred)."""
    if not store:
        return ""
    return f", {store}, {store}" if same_y else f", {store}"


def _storage(a) -> str:
    """The storage-type template argument for array a (y_pred, or binary labels): "" when it has
    its compute dtype, else that of its 16-bit float dtype."""
    return _STORAGE.get(dtype_name(a.dtype), "") if a.itemsize == 2 else ""


def _vec(double_: bool, store: str = "") -> int:
    """Elements in the 16-byte vectors of the on-chip and binary fast paths."""
    return 8 if store else 2 if double_ else 4


def _label_sname(double_: bool, store: str, same_y: bool, label: str) -> str:
    """The S, SY template arguments of a binary kernel: label, a value of _LABEL_TYPES for labels
    read in their own dtype (other than y_pred's, and not float32 beside 16-bit y_pred, which SY's
    default T reads)."""
    if label and label != (store or _tname(double_)):
        return f", {store or _tname(double_)}, {label}"
    return _sname(store, same_y)


@functools.lru_cache(maxsize=None)   # a call's kernel name: no string formatting a call
def _binary_name(double_: bool, from_logits: bool, ce: bool, store: str = "", same_y: bool = False,
                 label: str = "") -> str:
    b = lambda v: "true" if v else "false"  # noqa: E731
    return f"xent_binary<{_tname(double_)}, {b(from_logits)}, {b(ce)}{_label_sname(double_, store, same_y, label)}>"


@functools.lru_cache(maxsize=None)   # a call's kernel name: no string formatting a call
def _binary_vec_name(double_: bool, with_sw: bool, store: str = "", same_y: bool = False, label: str = "") -> str:
    return (f"xent_binary_vec<{_tname(double_)}, {'true' if with_sw else 'false'}"
            f"{_label_sname(double_, store, same_y, label)}>")


@functools.lru_cache(maxsize=None)   # a call's kernel name: no string formatting a call
def _onchip_name(double_: bool, K: int, vec: int, pipe: bool = False, store: str = "", wide: bool = False) -> str:
    """wide: a wide 16-bit slice (its exponentials kept in float, _onchip_smem)."""
    base = "xent_onchip_pipe" if pipe else "xent_onchip"
    tail = _sname(store) + (", true" if wide else "")
    if K == 1:
        return f"{base}<{_tname(double_)}, {vec}{tail}>"
    return f"{base}_cl<{_tname(double_)}, {K}, {vec}{tail}>"


@functools.lru_cache(maxsize=None)   # a call's kernel name: no string formatting a call
def _small_name(double_: bool, cmax: int, store: str = "") -> str:
    return f"xent_softmax_small<{_tname(double_)}, {cmax}{_sname(store)}>"


@functools.lru_cache(maxsize=None)   # a call's kernel name: no string formatting a call
def _few_name(double_: bool, C: int, store: str = "") -> str:
    return f"xent_softmax_few<{_tname(double_)}, {C}{_sname(store)}>"


@functools.lru_cache(maxsize=None)   # a call's kernel name: no string formatting a call
def _generic_name(kind: str, double_: bool, store: str = "", label_store: Optional[str] = None) -> str:
    """label_store: the soft labels' storage type where it is not y_pred's (a value of
    _SOFT_LABEL_TYPES)."""
    t = _tname(double_)
    if label_store is None or label_store == (store or t):
        return f"xent_softmax_{kind}<{t}{_sname(store)}>"
    return f"xent_softmax_{kind}<{t}, {store or t}, {label_store}>"


def _onchip_smem(chunk: int, vec: int, itemsize: int, wide: bool = False, ragged: bool = False) -> int:
    """Bytes of shared memory an on-chip block holds its slice of `chunk` classes in (a stage of the
    pipelined kernels, which are always sized as ragged): the slice as stored, in vectors of `vec`,
    one more where slices may start inside a vector (ragged: OnchipSlice of _xent.cu), but 16-bit
    slices taken an element at a time, which are copied as 4-byte words at their offset within a
    word, so take two more elements, an even number (onchip_stage). A wide 16-bit slice holds a
    float for each class, in segments of 32 vectors (1 KiB for 8 classes a vector: wide_at)."""
    packs = chunk // vec + (1 if ragged and vec > 1 else 0)
    if wide:
        return -(-packs // 32) * 32 * vec * 4
    return ((chunk + 2) & ~1 if itemsize == 2 and vec == 1 else packs * vec) * itemsize


def _small_smem(C: int, itemsize: int) -> int:
    return _SMALL_ROWS * (C | 1) * itemsize


_GENERIC_KINDS = ("thread", "tile", "warp", "block")
_SOFT_LABELS_PART = "soft-y:"       # prefix of the parts of soft labels stored otherwise than y_pred
_BINARY_LABELS_PART = "binary-y:"   # prefix of the parts of binary labels read in their own dtype


def _labels_part(prefix: str, label: str, pred: str) -> str:
    """The part holding the kernels (prefix: _SOFT_LABELS_PART or _BINARY_LABELS_PART) that read
    labels of dtype name `label` beside y_pred of dtype name `pred`, as it is read (its storage)."""
    return f"{prefix}{label}:{pred}"


def _label_pairs(names, binary: bool) -> list:
    """(labels, y_pred) dtype names of the kernels reading labels of `names` in their own dtype:
    other than y_pred's, and for binary labels not float32 beside 16-bit y_pred (the storage type's
    own binary kernels read those, their SY being T)."""
    return [(k, p) for p in _PRED_DTYPES for k in names
            if k != p and not (binary and k == "float32" and p in _STORAGE)]


def _parts() -> tuple:
    """The sets of kernel instances built together: "base", each 16-bit storage type, the exact-C
    few-classes kernels of each y_pred dtype, and for each pair of (labels, y_pred) dtypes of
    _label_pairs the generic kernels of such soft labels and the binary kernels of such labels."""
    soft = tuple(_labels_part(_SOFT_LABELS_PART, k, p) for k, p in _label_pairs(_SOFT_LABEL_TYPES, False))
    binary = tuple(_labels_part(_BINARY_LABELS_PART, k, p) for k, p in _label_pairs(_LABEL_TYPES, True))
    few = tuple(_FEW_PART + p for p in _PRED_DTYPES)
    return ("base",) + tuple(_STORAGE.values()) + few + soft + binary


def name_expressions(cluster: bool, part: str = "all") -> list:
    """Every kernel instance the loader asks NVRTC for (cluster kernels need sm_90), by part:
    "base" (float and double, built on a device's first use); a storage type of _STORAGE (the
    kernels for float16 or bfloat16 arrays, built on the first call that needs them, so that other
    calls do not wait for them); "few:<y_pred>" (xent_softmax_few for each C of a y_pred dtype,
    built on the first call of so few classes); "soft-y:<labels>:<y_pred>" (the generic
    kernels for soft labels of one dtype beside y_pred of another) and "binary-y:<labels>:<y_pred>"
    (the binary kernels for such labels), each built on the first call that needs one; or "all"."""
    if part != "all" and part not in _parts():
        raise ValueError(f"name_expressions: unknown part {part!r}")
    if part == "all":
        return [n for p in _parts() for n in name_expressions(cluster, p)]
    if part.startswith(_FEW_PART):
        pdt = part[len(_FEW_PART):]
        d = pdt == "float64"
        return [_few_name(d, C, _STORAGE.get(pdt, "")) for C in range(1, _SMALL_CMAX[d][-1] + 1)]
    if part.startswith((_BINARY_LABELS_PART, _SOFT_LABELS_PART)):
        _, ydt, pdt = part.split(":")
        d, store = pdt == "float64", _STORAGE.get(pdt, "")
        if part.startswith(_SOFT_LABELS_PART):
            return [_generic_name(k, d, store, _SOFT_LABEL_TYPES[ydt]) for k in _GENERIC_KINDS]
        lab = _LABEL_TYPES[ydt]
        return ([_binary_name(d, lg, ce, store, label=lab) for lg in (False, True) for ce in (False, True)]
                + [_binary_vec_name(d, w, store, label=lab) for w in (False, True)])
    out = ["xent_finalize", "xent_probe"] if part == "base" else []
    kinds = [(False, ""), (True, "")] if part == "base" else [(False, part)]
    for d, h in kinds:   # (double, storage type)
        if not h:
            out.append(f"xent_weight<{_tname(d)}>")
        for hy in ((False, True) if h else (False,)):
            out += [_binary_name(d, lg, ce, h, hy) for lg in (False, True) for ce in (False, True)]
            out += [_binary_vec_name(d, w, h, hy) for w in (False, True)]
        out += [_generic_name(k, d, h) for k in _GENERIC_KINDS]
        out += [_onchip_name(d, 1, v, pipe, h) for v in (1, _vec(d, h)) for pipe in (False, True)]
        if h:   # wide 16-bit slices: one row a block (or cluster), 16-byte vectors
            out += [_onchip_name(d, K, _vec(d, h), False, h, True)
                    for K in (1,) + (_CLUSTER_SIZES if cluster else ())]
        out += [_small_name(d, cm, h) for cm in _SMALL_CMAX[d]]
        if cluster:
            out += [_onchip_name(d, K, v, pipe, h) for K in _CLUSTER_SIZES for v in (1, _vec(d, h))
                    for pipe in (False, True)]
    return out


_PART_OF: Dict[str, str] = {}


def _part_of(name: str) -> Optional[str]:
    """The lazily built part (not "base") that holds kernel instance `name`, or None."""
    if not _PART_OF:
        _PART_OF.update({n: part for part in _parts()[1:] for n in name_expressions(True, part)})
    return _PART_OF.get(name)


def nvcc_check_source(cluster: bool = True) -> str:
    """The kernel source plus a table taking the address of every kernel instance, for an offline
    compile check without a GPU or CuPy:

        python -c "from xentc import _cuda; print(_cuda.nvcc_check_source())" > /tmp/xent_check.cu
        nvcc -std=c++17 -arch=sm_90 -DXENT_WANT_CLUSTER=1 --ptx /tmp/xent_check.cu -o /tmp/xent_check.ptx
        nvcc -std=c++17 -arch=sm_80 --ptx /tmp/xent_check.cu -o /tmp/xent_check80.ptx   (cluster=False)
    """
    table = "".join(f"    (void*)&{n},\n" for n in name_expressions(cluster))
    return kernel_source() + "\nvoid* xent_all_kernels[] = {\n" + table + "};\n"


# ----------------------------------------------------------------------------------------------
# Compilation and the per-device module
# ----------------------------------------------------------------------------------------------
_CUPY: Any = None


def _cupy():
    """The cupy module, imported on first use and kept (an import statement costs a call about a
    microsecond even when the module is loaded)."""
    global _CUPY
    if _CUPY is None:
        try:
            import cupy
        except ImportError as exc:  # pragma: no cover - only reached without CuPy
            raise ImportError("xentc: CuPy arrays need the cupy package (pip install cupy-cuda12x or "
                              "cupy-cuda13x)") from exc
        _CUPY = cupy
    return _CUPY


def _cache_dir() -> Optional[str]:
    d = os.environ.get("XENTC_CACHE_DIR")
    if d is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "xentc")
    if d in ("", "0", "none"):
        return None
    return d


def _cache_load(key: str):
    d = _cache_dir()
    if d is None:
        return None
    try:
        with open(os.path.join(d, key + ".json"), "r", encoding="utf-8") as f:
            meta = json.load(f)
        with open(os.path.join(d, key + ".bin"), "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            return None
        return data, meta["mapping"]
    except (OSError, ValueError, KeyError):
        return None


def _cache_store(key: str, data: bytes, mapping: dict) -> None:
    d = _cache_dir()
    if d is None:
        return
    try:
        os.makedirs(d, exist_ok=True)
        for suffix, payload in ((".bin", data),
                                (".json", json.dumps({"sha256": hashlib.sha256(data).hexdigest(),
                                                      "mapping": mapping}).encode())):
            fd, tmp = tempfile.mkstemp(dir=d)
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, os.path.join(d, key + suffix))
    except OSError:
        pass


def _module_options(cluster: bool) -> tuple:
    """The NVRTC options of a module (route "noftz" adds -ftz=false; CuPy adds the architecture)."""
    return ("-std=c++17", f"-I{_package_dir()}") + (("-DXENT_WANT_CLUSTER=1",) if cluster else ())


def _cache_key(cupy, code: str, options: tuple, names: list, cc: str) -> str:
    """The disk-cache name of a compiled part: everything that shapes the binary (source, options,
    kernel names, NVRTC and CuPy versions, compute capability). tools/kernel_cache.py seeds the
    cache under this name with binaries NVRTC built elsewhere for the same inputs."""
    try:
        nvrtc_ver = tuple(cupy.cuda.nvrtc.getVersion())
    except Exception:  # noqa: BLE001
        nvrtc_ver = ()
    return hashlib.sha256(repr((code, options, names, nvrtc_ver, cc, getattr(cupy, "__version__", ""),
                                "v1")).encode()).hexdigest()[:32]


def _compile_note(text: str) -> None:
    """A line on stderr about a kernel build that takes a while (seconds to a minute of NVRTC, once
    per machine and part), where stderr is a terminal: a first call does not look hung."""
    stream = sys.stderr
    try:
        if stream is not None and stream.isatty():
            stream.write(f"xentc: {text}\n")
            stream.flush()
    except (AttributeError, ValueError, OSError):   # a closed or unusual stream: no note
        pass


def _compile_noftz(cupy, code: str, options: tuple, names: list, cc: str, what: str = "base"):
    """NVRTC with -ftz=false (CuPy's compile_using_nvrtc, which adds the architecture and, from NVRTC
    12 on, --device-as-default-execution-space: tools/nvrtc_check.py builds the same way without a
    GPU); the binary is cached on disk. what: the part's name, for the note on stderr."""
    from cupy.cuda import compiler, function

    options = options + ("-ftz=false",)
    key = _cache_key(cupy, code, options, names, cc)
    cached = _cache_load(key)
    hit = cached is not None
    if cached is None:
        t0 = time.perf_counter()
        where = _cache_dir()
        count = f"{len(names)} instance{'' if len(names) == 1 else 's'}"
        _compile_note(f"building the CUDA kernels ({what}, {count}) for sm_{cc} with NVRTC"
                      + (f"; once, then read from {where}" if where else " (the disk cache is off)"))
        data, mapping = compiler.compile_using_nvrtc(code, options, None, "xentc_kernels.cu",
                                                     name_expressions=tuple(names))
        _compile_note(f"built the CUDA kernels ({what}) in {time.perf_counter() - t0:.1f} s")
        if isinstance(data, str):
            data = data.encode()
        mapping = {str(k): (v.decode() if isinstance(v, bytes) else str(v)) for k, v in mapping.items()}
        _cache_store(key, data, mapping)
    else:
        data, mapping = cached
    module = function.Module()
    module.load(data)
    funcs = {n: module.get_function(mapping[n]) for n in names}
    return funcs, ("nvrtc (-ftz=false, disk cache hit)" if hit else "nvrtc (-ftz=false)"), module


def _compile_rawmodule(cupy, code: str, options: tuple, names: list):
    mod = cupy.RawModule(code=code, options=options, name_expressions=names)
    funcs = {n: mod.get_function(n) for n in names}
    for f in funcs.values():   # compile now, so that errors surface here
        getattr(f, "kernel", None)
    return funcs, "cupy.RawModule (-ftz=true)", mod


def _set_attribute(f, attr: int, value: int) -> None:
    """Set a CUfunction attribute (8: max dynamic shared memory, 9: preferred carveout)."""
    cupy = _cupy()
    if attr == 8 and hasattr(f, "max_dynamic_shared_size_bytes"):
        f.max_dynamic_shared_size_bytes = value
        return
    if attr == 9 and hasattr(f, "preferred_shared_memory_carveout"):
        f.preferred_shared_memory_carveout = value
        return
    cupy.cuda.driver.funcSetAttribute(f.ptr, attr, value)


class _Funcs(dict):
    """A module's kernels by name expression; asking for a kernel of a lazily built part (see
    name_expressions) before it was built compiles that part (the first float16 or bfloat16 call on
    the device, say)."""

    def __init__(self, module: "_Module", funcs: dict):
        super().__init__(funcs)
        self._module = module

    def __missing__(self, name: str):
        part = _part_of(name)
        if part is None or part in self._module.storage_seconds:
            raise KeyError(name)
        self._module.build_storage(part)
        return dict.__getitem__(self, name)


class _Module:
    """The compiled kernels of one device."""

    def __init__(self, dev_id: int):
        cupy = _cupy()
        t0 = time.perf_counter()
        self.dev_id = dev_id
        dev = cupy.cuda.Device(dev_id)
        self.cc = str(dev.compute_capability)
        want_cluster = int(self.cc) >= 90 and not os.environ.get("XENTC_CUDA_NO_CLUSTER")
        code = kernel_source()
        errors = []
        self.funcs = None
        routes = [] if os.environ.get("XENTC_CUDA_RAWMODULE") else ["noftz"]
        routes.append("rawmodule")
        for route in routes:
            for cluster in ((True, False) if want_cluster else (False,)):
                names = name_expressions(cluster, "base")
                opts = _module_options(cluster)
                try:
                    if route == "noftz":
                        funcs, how, keep = _compile_noftz(cupy, code, opts, names, self.cc)
                    else:
                        funcs, how, keep = _compile_rawmodule(cupy, code, opts, names)
                    # what was compiled: the architecture and whether the cluster kernels exist
                    probe = cupy.zeros(2, dtype=np.int32)
                    funcs["xent_probe"]((1,), (32,), (np.uint64(probe.data.ptr),))
                    arch, has_cluster = (int(v) for v in probe.get())
                except Exception as exc:  # noqa: BLE001 - try the next variant, report all at the end
                    errors.append(f"[{route}, cluster={cluster}] {type(exc).__name__}: {exc}")
                    if "Compile" in type(exc).__name__ or "NVRTC" in str(exc):
                        continue   # the source did not compile this way: try without clusters
                    break          # this CuPy lacks the route: try the next one
                self.funcs, self.route, self._keep = _Funcs(self, funcs), how, [keep]
                self.arch, self.cluster, self.names = arch, bool(has_cluster) and cluster, names
                self._build = (route, code, opts, cluster)   # the way that worked, for the float16 kernels
                break
            if self.funcs is not None:
                break
        if self.funcs is None:
            raise RuntimeError("xentc: could not build the CUDA kernels (_xent.cu):\n" + "\n".join(errors))
        self.compile_errors = errors
        names = self.names
        # shared memory for the on-chip kernels: 64 KiB per block where the device allows it
        try:
            optin = int(cupy.cuda.runtime.deviceGetAttribute(97, dev_id))  # MaxSharedMemoryPerBlockOptin
        except Exception:  # noqa: BLE001
            optin = 48 * 1024
        cap = min(_ONCHIP_MAX_BYTES, optin - 2048) // 16 * 16
        try:
            self.sm_count = int(cupy.cuda.runtime.deviceGetAttribute(16, dev_id))  # MultiProcessorCount
        except Exception:  # noqa: BLE001
            self.sm_count = 0
        self.onchip_cap = 0
        self.pipe_cap = 0   # shared memory of a pipelined block: two slices
        if cap >= 16 * 1024:
            try:
                self._set_onchip_attributes(names, cap, 0)
                self.onchip_cap = cap
            except Exception as exc:  # noqa: BLE001
                errors.append(f"[onchip attributes] {type(exc).__name__}: {exc}")
                self.onchip_cap = min(cap, 48 * 1024)
        pipe_cap = (optin - 4096) // 32 * 32   # the kernel's static scratch (~2.3 KiB) comes on top
        if (self.onchip_cap > 0 and self.sm_count > 0 and pipe_cap >= 64 * 1024
                and not os.environ.get("XENTC_CUDA_NO_PIPELINE")):
            try:
                self._set_onchip_attributes(names, 0, pipe_cap)
                self.pipe_cap = pipe_cap
            except Exception as exc:  # noqa: BLE001
                errors.append(f"[pipelined onchip attributes] {type(exc).__name__}: {exc}")
        self.compile_seconds = time.perf_counter() - t0
        self.storage_seconds: Dict[str, float] = {}   # lazily built parts (16-bit kernels): compile seconds

    def _set_onchip_attributes(self, names, cap: int, pipe_cap: int) -> None:
        """The on-chip kernels' shared memory: with `cap`, a preference for shared memory over L1
        for all of them and `cap` bytes (past the default 48 KiB) for the one-row-a-block ones;
        with `pipe_cap`, that many bytes for the pipelined ones (0: leave as they are)."""
        for n in names:
            if not n.startswith("xent_onchip"):
                continue
            pipe = n.startswith("xent_onchip_pipe")
            if cap:
                if cap > 48 * 1024 and not pipe:
                    _set_attribute(self.funcs[n], 8, cap)
                try:
                    _set_attribute(self.funcs[n], 9, 100)   # prefer shared memory over L1
                except Exception:  # noqa: BLE001 - a hint only
                    pass
            if pipe_cap and pipe:
                _set_attribute(self.funcs[n], 8, pipe_cap)

    def build_storage(self, store: str) -> None:
        """Compile a lazily built part of the kernels (`store`: a 16-bit storage type, for the first
        float16 or bfloat16 call on this device, or its "/labels" part), the same way the others
        were built, with the same shared-memory settings."""
        with _lock:
            if store in self.storage_seconds:
                return
            cupy = _cupy()
            t0 = time.perf_counter()
            route, code, opts, cluster = self._build
            names = name_expressions(cluster, store)
            with cupy.cuda.Device(self.dev_id):
                if route == "noftz":
                    funcs, _, keep = _compile_noftz(cupy, code, opts, names, self.cc, store)
                else:
                    funcs, _, keep = _compile_rawmodule(cupy, code, opts, names)
                self._keep.append(keep)
                dict.update(self.funcs, funcs)
                try:
                    self._set_onchip_attributes(names, self.onchip_cap, self.pipe_cap)
                except Exception as exc:  # noqa: BLE001 - the on-chip kernels then stay unused
                    self.compile_errors.append(f"[{store} onchip attributes] {type(exc).__name__}: {exc}")
                    self.onchip_cap = self.pipe_cap = 0
            self.names = self.names + names
            self.storage_seconds[store] = time.perf_counter() - t0

    def disable_onchip(self, K: int, exc: Exception, pipe: bool = False) -> None:
        """The device refused an on-chip launch: stop using the pipelined kernels (pipe), the cluster
        kernels (K > 1) or the on-chip kernels altogether (K == 1), and say so once."""
        import warnings

        what = "pipelined on-chip" if pipe else "thread-block-cluster" if K > 1 else "on-chip"
        self.compile_errors.append(f"[{what} launch refused, disabled] {type(exc).__name__}: {exc}")
        warnings.warn(f"xentc: the GPU refused the {what} cross-entropy kernel ({exc}); using "
                      f"{'the other on-chip kernels' if pipe else 'the generic kernels'} instead",
                      RuntimeWarning, stacklevel=3)
        if pipe:
            self.pipe_cap = 0
        elif K > 1:
            self.cluster = False
        else:
            self.onchip_cap = 0
            self.pipe_cap = 0

    def info(self) -> dict:
        return {"device": self.dev_id, "compute_capability": self.cc, "arch": self.arch,
                "route": self.route, "cluster_kernels": self.cluster, "onchip_smem_bytes": self.onchip_cap,
                "pipelined_smem_bytes": self.pipe_cap, "multiprocessors": self.sm_count,
                "compile_seconds": round(self.compile_seconds, 3), "kernels": len(self.funcs),
                "storage_compile_seconds": {k: round(v, 3) for k, v in self.storage_seconds.items()},
                "fallback_errors": list(self.compile_errors)}


def _module(dev_id: int) -> _Module:
    m = _modules.get(dev_id)
    if m is None:
        with _lock:
            m = _modules.get(dev_id)
            if m is None:
                m = _Module(dev_id)
                _modules[dev_id] = m
    return m


def info(device: Optional[int] = None) -> dict:
    """How the kernels were built for a device (compiling them if needed)."""
    cupy = _cupy()
    dev = cupy.cuda.Device(device) if device is not None else cupy.cuda.Device()
    with dev:
        return _module(dev.id).info()


# ----------------------------------------------------------------------------------------------
# Launch helpers
# ----------------------------------------------------------------------------------------------
def _stride(a, axis: int) -> int:
    return a.strides[axis] // a.itemsize


def _check(name: str, a, dtype, dev_id: int, contiguous: bool = False, ndim: Optional[int] = None) -> None:
    """Internal consistency of what _api passes (a failure here is a bug in xentc), and the device of
    each array (a ValueError for the caller): one quick test a call per array, _check_failed says
    what is wrong."""
    if a is None:
        return
    isz = a.itemsize
    if (a.dtype != dtype or (ndim is not None and a.ndim != ndim) or a.data.device_id != dev_id
            or (a.data.ptr % isz and a.size)
            or (not a.flags.c_contiguous and (contiguous or any(st % isz for st in a.strides)))):
        _check_failed(name, a, dtype, dev_id, contiguous, ndim)


def _check_failed(name: str, a, dtype, dev_id: int, contiguous: bool, ndim: Optional[int]) -> None:
    if a.dtype != dtype:
        raise RuntimeError(f"xentc (CUDA): {name} has dtype {a.dtype}, expected {np.dtype(dtype)}")
    if ndim is not None and a.ndim != ndim:
        raise RuntimeError(f"xentc (CUDA): {name} has {a.ndim} dimensions, expected {ndim}")
    if contiguous and not a.flags.c_contiguous:
        raise RuntimeError(f"xentc (CUDA): {name} is not contiguous")
    if any(st % a.itemsize for st in a.strides):
        raise RuntimeError(f"xentc (CUDA): {name} has strides {a.strides} that are not whole elements")
    if a.size and a.data.ptr % a.itemsize:
        raise RuntimeError(f"xentc (CUDA): {name} starts at an address that is not a multiple of its element size")
    d = a.data.device_id
    if d != dev_id:
        raise ValueError(f"{name}: array is on GPU {d} but y_pred is on GPU {dev_id}; put every array on "
                         f"the same device (and call under `with cupy.cuda.Device({dev_id}):`)")
    raise AssertionError(f"xentc (CUDA): _check of {name} failed for no reason found")   # pragma: no cover


_tls = threading.local()


def _host_words() -> Tuple[np.ndarray, np.ndarray, int]:
    """This thread's four-word host buffer for a call's result (see _Scratch.out), the same viewed
    as float64 (made once), and its address (each call reads
    it after its own synchronisation, before returning). Page-locked where CuPy can allocate such
    memory: a copy into pageable memory is staged by the driver and blocks the host until the
    stream has run up to it."""
    words = getattr(_tls, "words", None)
    if words is None:
        try:
            mem = _cupy().cuda.alloc_pinned_memory(32)
            buf = np.frombuffer(mem, dtype=np.uint64, count=4)
            _tls.pinned = mem   # keeps the page-locked block alive with the view
        except Exception:  # noqa: BLE001 - no page-locked memory (the emulator's stand-in CuPy)
            buf = np.zeros(4, dtype=np.uint64)
        words = _tls.words = (buf, buf.view(np.float64), buf.ctypes.data)
    return words


# A scratch of up to this many partial sums is kept for the next call of the same thread on the
# same device (16 MiB); larger ones are allocated per call.
_SCRATCH_KEEP_PARTS = 1 << 20


class _Scratch:
    """Per-block partial sums (double) and first-error keys, the result words, and a row counter
    (for the pipelined kernels, which zero it). `n` of the `cap` slots are in use. The result words
    (out): the sum's bits and the first error key, then, where the call's kernels took the mean's
    denominator from a weight pre-pass left on the device (`pre`), that pass's two words."""

    def __init__(self, cupy, cap: int, dev_id: int, slot: int = 0):
        self.cupy = cupy
        self.cap = self.n = cap
        self.dev_id, self.slot = dev_id, slot   # (slot: _scratch's cache key beside the device)
        self.buf = cupy.empty(2 * cap + 5, dtype=np.uint64)
        base = self.buf.data.ptr
        self.sums = np.uint64(base)
        self.errs = np.uint64(base + 8 * cap)
        self.out = np.uint64(base + 16 * cap)
        self.counter = np.uint64(base + 16 * cap + 32)

    def reduce(self, mod: _Module, has_err: bool, scalar=None, pre: Optional["_Pre"] = None) -> None:
        """Enqueue xent_finalize: the sum and first error key into out (with `pre`, also the
        pre-pass's words, whose sum is then the mean's denominator); `scalar` (see _fill_scalar)
        also gets the reduced loss, on the device."""
        loss, kind, denom = np.uint64(0), 0, 0.0
        if scalar is not None:
            arr = _scalar_array(self.cupy, scalar)
            loss, kind, denom = arr, (1 if arr.dtype == np.float64 else 0) | (2 if scalar[1] else 0), scalar[2]
        mod.funcs["xent_finalize"]((1,), (1024,), (self.sums, self.errs if has_err else np.uint64(0),
                                                   np.int64(self.n), self.out, loss, np.int32(kind),
                                                   np.float64(denom), np.uint64(0) if pre is None else pre.sc.out))

    def finish(self, mod: _Module, has_err: bool, scalar=None, pre: Optional["_Pre"] = None) -> Tuple[float, int]:
        """reduce, then read."""
        self.reduce(mod, has_err, scalar, pre)
        return self.read(has_err, pre)

    def read(self, has_err: bool, pre: Optional["_Pre"] = None) -> Tuple[float, int]:
        """The sum and the first error key of the finalize enqueued (one host synchronisation;
        with `pre`, its denominator and error key are set too). Then the scratch goes back to this
        thread's cache (_scratch), and pre's too: no kernel uses them any more."""
        # the result words, copied on the current stream (where the kernels ran) into this
        # thread's host buffer: no device slice and no new host array a call
        res, res_f64, addr = _host_words()
        stream = self.cupy.cuda.get_current_stream()
        self.cupy.cuda.runtime.memcpyAsync(addr, int(self.out), 32 if pre else 16, 2, stream.ptr)   # 2: device to host
        stream.synchronize()
        total = float(res_f64[0])
        key = int(res[1]) if has_err else _NO_ERR
        if pre is not None:
            pre.denom, pre.key = float(res_f64[2]), int(res[3])
            pre.sc.release()
        self.release()
        return total, key

    def release(self) -> None:
        if self.cap <= _SCRATCH_KEEP_PARTS:
            _tls.__dict__.setdefault("scratch", {})[(self.dev_id, self.slot)] = self


_PRE_SLOT = 1   # _scratch's slot for a weight pre-pass whose words a later kernel reads


def _scratch(cupy, nparts: int, dev_id: int, slot: int = 0) -> _Scratch:
    """A scratch for nparts partial sums on device dev_id: this thread's kept one of that slot (a
    call may hold one of each at once) where it is large enough (taken out of the cache until its
    call's read() hands it back, so a call that never gets there leaves it to no one), else a new
    one."""
    cache = _tls.__dict__.get("scratch")
    sc = cache.pop((dev_id, slot), None) if cache else None
    if sc is None or sc.cap < nparts:
        sc = _Scratch(cupy, nparts, dev_id, slot)
    sc.n = nparts
    return sc


class _Pre:
    """A weight pre-pass enqueued without a wait (weight_sum_enqueue): its scratch, whose result
    words the main call's finalize reads on the device (and its kernels, for a mean: `at`), and,
    once the main call's finish() has synchronised, the denominator and its first error key."""

    def __init__(self, sc: _Scratch, labels, mean: bool):
        self.sc, self.labels = sc, labels
        self.at = sc.out if mean else None   # what the main kernels take as `pre`
        self.denom, self.key = 0.0, _NO_ERR

    def error(self) -> Tuple[int, int, int]:
        """(code, index, label) of its first error, as weight_sum reports it; (0, 0, 0) if none."""
        return _weight_error(self.key, self.labels)


def _log(kind: str, **kw) -> None:
    if config.get("log") is not None:
        config["log"].append((kind, kw))


def _launch_blocks(f, nblocks: int, threads: int, args_head: tuple, smem: int = 0) -> None:
    """Launch nblocks blocks in grids of at most 2^31 - 1, passing the block offset last."""
    off = 0
    while off < nblocks:
        g = min(_MAX_GRID, nblocks - off)
        f((g,), (threads,), args_head + (np.int64(off),), shared_mem=smem)
        off += g


# ----------------------------------------------------------------------------------------------
# The three backend functions (same signatures as xentc._kernels)
# ----------------------------------------------------------------------------------------------
def _weight_pattern(sw, rep: int, length: int, n: int) -> Tuple[int, int]:
    """(rep, len) of sample weights sw for n elements (element i takes sw[(i // rep) % len]); by
    default one weight an element."""
    rep, length = (1, n) if length < 0 else (int(rep), int(length))
    if sw is not None and (rep < 1 or length < 1 or int(sw.shape[0]) != length or (rep == 1 and length > n)):
        raise ValueError(f"sample weights: {sw.shape[0]} of them, repeating {rep} x {length}, for {n} elements")
    return rep, length


_COMPUTE = {False: np.dtype(np.float32), True: np.dtype(np.float64)}   # the compute dtype, by double_
_NO_WEIGHTS = (None, np.int32(0))   # _weights of no sample weights


def _weights(sw, dt, dev_id: int) -> tuple:
    """(sw, sw_kind): sample weights as the kernels take them (any dtype of _WEIGHT_KINDS in native
    byte order as it is; anything else must be in the compute dtype dt)."""
    if sw is None:
        return _NO_WEIGHTS
    kind = _WEIGHT_KINDS.get(dtype_name(sw.dtype)) if sw.dtype.isnative else None
    _check("sample_weight", sw, dt if kind is None else sw.dtype, dev_id, contiguous=True, ndim=1)
    return sw, np.int32(_WEIGHT_KINDS[dtype_name(dt)] if kind is None else kind)


def weight_sum(labels, sw, cw, C, ignore_index, has_ignore, n, double_, n_threads, sw_rep=1, sw_len=-1):
    """Sum of sample_weight * class_weight[label] over non-ignored samples, checking both. Element i
    takes sample weight sw[(i // sw_rep) % sw_len] (by default sw[i])."""
    n = int(n)
    if n == 0:
        return 0.0, 0, 0, 0
    if labels is None and sw is None:
        return float(n), 0, 0, 0
    pre = weight_sum_enqueue(labels, sw, cw, C, ignore_index, has_ignore, n, double_, sw_rep, sw_len)
    with _cupy().cuda.Device(pre.sc.dev_id):
        total, key = pre.sc.read(True)
    return (total,) + _weight_error(key, labels)


def weight_sum_enqueue(labels, sw, cw, C, ignore_index, has_ignore, n, double_, sw_rep=1, sw_len=-1,
                       mean=True) -> _Pre:
    """weight_sum's kernels, enqueued without waiting for them (n > 0, labels or sw given): the
    _Pre to pass to softmax or binary, whose kernels then take the mean's denominator from the
    device (`mean`; else only its checks count, read back with the call's result)."""
    n = int(n)
    sw_rep, sw_len = _weight_pattern(sw, sw_rep, sw_len, n)
    ref = labels if labels is not None else sw
    cupy = _cupy()
    dev_id = ref.data.device_id
    dt = np.dtype(np.float64 if double_ else np.float32)
    _check("y_true", labels, np.int64, dev_id, contiguous=True, ndim=1)
    swa = _weights(sw, dt, dev_id)
    _check("class_weight", cw, dt, dev_id, contiguous=True, ndim=1)
    with cupy.cuda.Device(dev_id):
        mod = _module(dev_id)
        nblocks = -(-n // _WEIGHT_PER_BLOCK)
        sc = _scratch(cupy, nblocks, dev_id, _PRE_SLOT)
        f = mod.funcs[f"xent_weight<{_tname(double_)}>"]
        _log("weight", blocks=nblocks)
        _launch_blocks(f, nblocks, 256, (labels, *swa, np.int64(sw_rep), np.int64(sw_len), cw, np.int64(C),
                                         np.int64(ignore_index),
                                         np.int32(1 if has_ignore else 0), np.int64(n), sc.sums, sc.errs))
        sc.reduce(mod, True)
    return _Pre(sc, labels, mean)


def _weight_error(key: int, labels) -> Tuple[int, int, int]:
    """(code, index, label) of the weight pass's first error key (the label only for a label
    outside [0, C)); (0, 0, 0) for none."""
    if key == _NO_ERR:
        return 0, 0, 0
    code, i = key & 15, key >> 4
    j = int(labels[i]) if (code == _ERR_LABEL_RANGE and labels is not None) else 0
    return code, i, j


def _scalar_array(cupy, scalar):
    """The 0-d device array of `scalar` ([array or its dtype, mean?, denominator], from _api's
    _device_scalar), made here where _api passed the dtype: after the main kernel's launch, so
    that its allocation is not host time before the device starts."""
    if isinstance(scalar[0], np.dtype):
        scalar[0] = cupy.empty((), dtype=scalar[0])
    return scalar[0]


def _fill_scalar(scalar) -> None:
    """The reduced loss of a call with nothing to add up: 0 (as _api's _finish gives)."""
    if scalar is not None:
        _scalar_array(_cupy(), scalar).fill(0)


def binary(y, x, sw, w1, w0, eps, gamma, dscale, from_logits, loss, grad, hess, double_, n_threads, scalar=None,
           sw_rep=1, sw_len=-1, plain=False, pre=None):
    """Binary CE / focal over 1-D y (labels) and x (probabilities or logits); element i takes
    sample weight sw[(i // sw_rep) % sw_len] (by default sw[i]). `scalar`, CUDA only: a list
    [the compute dtype (replaced by the 0-d array made for it, see _scalar_array) or that array,
    mean?, the mean's denominator] to receive the reduced loss on the device, so that _api needs
    no host-to-device copy for it. `plain`: a plain call of _api (_binary_plain), whose arrays are
    on the current device, C-contiguous and aligned, labels in y_pred's dtype, all of one shape
    (any: the elements in C order), the outputs new: no device switch, no _check of them and no
    reshape. `pre`: as for softmax (its sample weights' pre-pass)."""
    if x.size == 0:
        _fill_scalar(scalar)
        return 0.0, 0, 0, 0
    pre_at = None if pre is None else pre.at
    if plain:   # (no `with nullcontext()` for both: its two Python calls are half a microsecond)
        mod, sc = _binary_enqueue(y, x, sw, w1, w0, eps, gamma, dscale, pre_at, from_logits, loss, grad, hess,
                                  double_, sw_rep, sw_len, checked=True)
        total, key = sc.finish(mod, True, scalar, pre)
    else:
        with _cupy().cuda.Device(x.data.device_id):
            mod, sc = _binary_enqueue(y, x, sw, w1, w0, eps, gamma, dscale, pre_at, from_logits, loss, grad, hess,
                                      double_, sw_rep, sw_len)
            total, key = sc.finish(mod, True, scalar, pre)
    if pre is not None and pre.key != _NO_ERR:
        return (total,) + pre.error()
    if key == _NO_ERR:
        return total, 0, 0, 0
    return total, key & 15, key >> 4, 0


def _binary_enqueue(y, x, sw, w1, w0, eps, gamma, dscale, pre_at, from_logits, loss, grad, hess, double_,
                    sw_rep=1, sw_len=-1, checked=False):
    """Launch the binary kernel (no synchronisation); returns (module, scratch) for finish().
    checked: the arrays are known to be what _check would pass (binary's `plain`)."""
    cupy = _cupy()
    n = x.size   # 1-D, or any shape where checked (C-contiguous: unit strides in C order)
    sy, sx = (1, 1) if checked else (_stride(y, 0), _stride(x, 0))
    dev_id = x.data.device_id
    dt = _COMPUTE[double_]
    store = _storage(x)
    same_y = bool(store) and y.dtype == x.dtype   # else the labels are in the compute dtype, or their own
    st = x.dtype if store else dt   # y_pred, grad and hess
    # labels of another dtype than y_pred's (and than float32 beside 16-bit y_pred): read as they
    # are, at any stride (the fast kernel takes unit strides only)
    label = "" if y.dtype in (st, dt) else BINARY_LABEL_DTYPES.get(y.dtype, "")
    sw_rep, sw_len = _weight_pattern(sw, sw_rep, sw_len, n)
    if not checked:
        _check("y_pred", x, st, dev_id, ndim=1)
        _check("y_true", y, y.dtype if label else st if same_y else dt, dev_id, ndim=1)
        if y.shape[0] != n:
            raise RuntimeError("xentc (CUDA): y_true and y_pred lengths differ")
        _check("pos_weight", w1, dt, dev_id, contiguous=True, ndim=1)
        for name, out, t in (("loss", loss, dt), ("grad", grad, st), ("hess", hess, st)):
            _check(name, out, t, dev_id, contiguous=True, ndim=1)
    swa = _weights(sw, dt, dev_id)
    nw1 = 1 if w1 is None else int(w1.shape[0])
    mod = _module(dev_id)
    vec = _vec(double_, store)
    if (config.get("binary_vec", True) and from_logits and float(gamma) == 0.0 and nw1 == 1
            and (sw is None or sw_len == 1 or (sw_rep == 1 and sw_len == n))   # else the general kernel
            and sy == 1 and sx == 1
            # arrays the fast kernel reads or writes in packs (weights of another dtype: one by
            # one), each at a multiple of its pack's size: an element for each of y_pred's
            # 16-byte vector, at most 16 bytes (BinPack of _xent.cu)
            and all(a.data.ptr % min(16, a.itemsize * vec) == 0
                    for a in (y, x, sw if sw is not None and sw.dtype == dt else None, loss, grad, hess)
                    if a is not None)):
        # fast path: 16-byte packs, a block covers `rounds` rounds (chosen from n alone, so that
        # the partial sums, and so the result, depend on n only)
        per_round = _BINARY_VEC_PACKS * vec
        rounds = (config.get("binary_vec_rounds")   # tests: force the rounds per block
                  or max(1, min(_BINARY_VEC_MAX_ROUNDS, n // (per_round * 2048))))
        nblocks = -(-n // (per_round * rounds))
        sc = _scratch(cupy, nblocks, dev_id)
        f = mod.funcs[_binary_vec_name(double_, sw is not None, store, same_y, label)]
        _log("binary", blocks=nblocks, kernel="vec", rounds=rounds)
        _launch_blocks(f, nblocks, 256, (
            y, x, np.int64(n), *swa, np.int32(sw is not None and sw_len == 1), w1, np.float64(w0), np.float64(eps),
            np.float64(dscale), pre_at, loss, grad, hess, sc.sums, sc.errs, np.int32(rounds)))
        return mod, sc
    nblocks = -(-n // _BINARY_PER_BLOCK)
    sc = _scratch(cupy, nblocks, dev_id)
    f = mod.funcs[_binary_name(double_, bool(from_logits), float(gamma) == 0.0, store, same_y, label)]
    _log("binary", blocks=nblocks, kernel="general")
    _launch_blocks(f, nblocks, 256, (
        y, np.int64(sy), x, np.int64(sx), np.int64(n),
        *swa, np.int64(sw_rep), np.int64(sw_len), w1, np.int64(nw1), np.float64(w0), np.float64(eps), np.float64(gamma),
        np.float64(dscale), pre_at, loss, grad, hess, sc.sums, sc.errs))
    return mod, sc


def _softmax_kernel_choice(mod: _Module, x, dims: tuple, sx: tuple, ysoft, labels, gamma, from_logits, grad, hess,
                           double_):
    """(kind, extra) for a categorical call on x viewed as dims (outer, C, inner) with strides sx (in
    elements); kind in onchip/small/tile/thread/warp/block. extra: (K, vec, chunk, pipelined, wide,
    ragged) for onchip, the class bound CMAX for small, the shared memory for tile."""
    outer, C, inner = dims
    isz = x.itemsize             # the on-chip kernels hold the row as stored
    csz = 8 if double_ else 4    # the tile and few-classes kernels stage it in the compute type
    sx_o, sx_c = sx[0], sx[1]
    force = config.get("force")
    onchip = None
    if ((C >= _ONCHIP_MIN_C or force == "onchip") and (config.get("onchip", True) or force == "onchip")
            and from_logits and labels is not None and ysoft is None and float(gamma) == 0.0 and inner == 1
            and sx_c == 1 and C < 2**31 and mod.onchip_cap > 0):
        vec = _vec(double_, _storage(x))
        # 16-byte vectors: rows of whole aligned vectors, or (ragged) rows whose gradient and Hessian
        # rows have x's places within a vector (their slices' first and last vectors taken class by
        # class); else a class at a time
        xp = x.data.ptr
        outs = [o.data.ptr for o in (grad, hess) if o is not None]
        ragged = not (xp % 16 == 0 and sx_o % vec == 0 and C % vec == 0 and all(o % 16 == 0 for o in outs))
        v = vec if not ragged or (config.get("ragged", True) and (sx_o - C) % vec == 0
                                  and all((o - xp) % 16 == 0 for o in outs)) else 1
        ragged = ragged and v > 1
        sizes = (1,) + (_CLUSTER_SIZES if (mod.cluster and config.get("cluster", True)) else ())
        # the pipelined kernels (two slices a block) where they fit, else a slice a block: for
        # 16-bit rows in 16-byte vectors a wide slice (exponentials kept in float, twice the
        # shared memory) where one fits, else the narrow one (logits only)
        wide = isz == 2 and v > 1 and config.get("wide16", True)
        for pipe, wd, cap_bytes in ((True, False, mod.pipe_cap // 2 if config.get("pipeline", False) else 0),
                                    (False, True, mod.onchip_cap if wide else 0), (False, False, mod.onchip_cap)):
            if config.get("onchip_cap"):
                cap_bytes = min(cap_bytes, int(config["onchip_cap"]))
            if cap_bytes <= 0:
                continue
            for K in sizes:
                chunk = -(-C // K)
                chunk = -(-chunk // v) * v
                if _onchip_smem(chunk, v, isz, wd, ragged or pipe) <= cap_bytes:
                    onchip = (K, v, chunk, pipe, wd, ragged)
                    break
            if onchip is not None:
                break
    if force == "onchip" and onchip is not None:
        return "onchip", onchip
    cmax = _SMALL_CMAX_OF[bool(double_)][C] if C <= 32 else None
    small = (from_logits and labels is not None and ysoft is None and float(gamma) == 0.0 and inner == 1
             and sx_c == 1 and sx_o == C and cmax is not None)
    if small and (force in ("small", "few") or (force is None and config.get("small", True))):
        return "small", cmax
    if force in ("thread", "warp", "block"):
        return force, None
    tile_ok = (inner == 1 and sx_c == 1 and sx_o == C
               and (ysoft is None or (_stride(ysoft, 1) == 1 and _stride(ysoft, 0) == C)))
    ntiles = 1 + (ysoft is not None) + (grad is not None) + (hess is not None)
    tile_bytes = ntiles * _TILE_ROWS * C * csz
    if force == "tile" and tile_ok and tile_bytes <= _TILE_MAX_BYTES:
        return "tile", tile_bytes
    if force is None:
        if onchip is not None:
            return "onchip", onchip
        if config.get("tile", True) and tile_ok and tile_bytes <= _TILE_MAX_BYTES:
            return "tile", tile_bytes
    if inner > 1:
        return ("thread", None) if C <= 4096 else ("block", None)
    if C <= 32:
        return "thread", None
    if C <= 1024:
        return "warp", None
    return "block", None


def _is_launch_config_error(exc: Exception) -> bool:
    """A launch the device refused before running (bad configuration or resources); such a launch
    leaves the context usable, unlike a fault inside a kernel."""
    text = f"{type(exc).__name__}: {exc}"
    return any(k in text for k in ("CLUSTER", "Cluster", "cluster", "INVALID_VALUE", "OUT_OF_RESOURCES",
                                   "LAUNCH_OUT_OF_RESOURCES", "too many resources", "invalid argument",
                                   "INVALID_CONFIGURATION", "invalid configuration"))


def _launch_onchip(cupy, mod, extra, x, sx_o, C, rows, labels, swa, cwa, ignore_index, has_ignore, eps, dscale,
                   pre_at, loss, grad, hess, double_):
    K, v, chunk, pipe, wide, ragged = extra
    sc = _scratch(cupy, rows, x.data.device_id)
    f = mod.funcs[_onchip_name(double_, K, v, pipe, _storage(x), wide)]
    _log("softmax", kernel="onchip", K=K, vec=v, chunk=chunk, pipe=pipe, wide=wide, ragged=ragged)
    head = (x, np.int64(sx_o), np.int32(C), np.int32(chunk), labels, *swa, cwa,
            np.int64(ignore_index), np.int32(1 if has_ignore else 0), np.float64(eps), np.float64(dscale),
            pre_at, loss, grad, hess, sc.sums, sc.errs)
    if pipe:
        # persistent: a block (cluster) per K multiprocessors takes rows from a counter, zeroed here
        cupy.cuda.runtime.memsetAsync(int(sc.counter), 0, 8, cupy.cuda.get_current_stream().ptr)
        clusters = max(1, min(rows, mod.sm_count // K))
        f((clusters * K,), (_PIPE_THREADS,), head + (np.int64(rows), sc.counter),
          shared_mem=2 * _onchip_smem(chunk, v, x.itemsize, ragged=True))
        return sc
    max_rows = _MAX_GRID // K
    off = 0
    while off < rows:
        nr = min(max_rows, rows - off)
        f((nr * K,), (256,), head + (np.int64(off),), shared_mem=_onchip_smem(chunk, v, x.itemsize, wide, ragged))
        off += nr
    return sc


def _launch_small(cupy, mod, cmax, x, C, rows, labels, swa, cwa, ignore_index, has_ignore, eps, dscale, pre_at, loss,
                  grad, hess, double_):
    nblocks = -(-rows // _SMALL_ROWS)
    sc = _scratch(cupy, nblocks, x.data.device_id)
    if config.get("few", True) and config.get("force") != "small":
        f = mod.funcs[_few_name(double_, C, _storage(x))]
        _log("softmax", kernel="few", blocks=nblocks)
        _launch_blocks(f, nblocks, 256, (
            x, np.int64(rows), labels, *swa, cwa, np.int64(ignore_index), np.int32(1 if has_ignore else 0),
            np.float64(eps), np.float64(dscale), pre_at, loss, grad, hess, sc.sums, sc.errs),
            smem=_small_smem(C, 8 if double_ else 4))
        return sc
    f = mod.funcs[_small_name(double_, cmax, _storage(x))]
    _log("softmax", kernel="small", cmax=cmax, blocks=nblocks)
    _launch_blocks(f, nblocks, 256, (
        x, np.int32(C), np.int64(rows), labels, *swa, cwa, np.int64(ignore_index),
        np.int32(1 if has_ignore else 0), np.float64(eps), np.float64(dscale), pre_at, loss, grad, hess,
        sc.sums, sc.errs), smem=_small_smem(C, 8 if double_ else 4))
    return sc


def softmax(x, labels, ysoft, sw, cwa, ignore_index, has_ignore, eps, gamma, dscale, from_logits, loss, grad,
            hess, double_, n_threads, scalar=None, plain=None, pre=None):
    """Categorical CE / focal over x viewed as (outer, C, inner); `scalar` as for binary. `plain`:
    _categorical_plain's call (integer labels, no class weights; its arrays as binary's `plain` says),
    with (outer, C, inner): x, grad and hess are then C-contiguous arrays of any shape, taken as
    that view without a reshape, and the labels of any shape, their outer * inner in C order.
    `pre`: a weight pre-pass of these rows enqueued by weight_sum_enqueue (rows > 0), whose sum the
    kernels take as the mean's denominator in place of dscale's (for a mean); the error returned is
    its first where it has one (as weight_sum would have reported it before this call), and
    pre.denom holds the denominator afterwards."""
    outer, C, inner = plain or x.shape
    if outer * inner == 0 or C == 0:
        _fill_scalar(scalar)
        return 0.0, 0, 0, 0
    pre_at = None if pre is None else pre.at
    if plain:   # (as in binary)
        mod, sc, has_err = _softmax_enqueue(x, labels, ysoft, sw, cwa, ignore_index, has_ignore, eps, gamma,
                                            dscale, pre_at, from_logits, loss, grad, hess, double_, checked=plain)
        total, key = sc.finish(mod, has_err, scalar, pre)
    else:
        with _cupy().cuda.Device(x.data.device_id):
            mod, sc, has_err = _softmax_enqueue(x, labels, ysoft, sw, cwa, ignore_index, has_ignore, eps, gamma,
                                                dscale, pre_at, from_logits, loss, grad, hess, double_)
            total, key = sc.finish(mod, has_err, scalar, pre)
    if pre is not None and pre.key != _NO_ERR:
        return (total,) + pre.error()
    if key == _NO_ERR:
        return total, 0, 0, 0
    flat, code = key >> 4, key & 15
    if code == _ERR_LABEL_RANGE:   # reported at the row's first class: the message wants the label
        return total, code, flat // C, int(labels.reshape(-1)[flat // C])   # (a plain call's: any shape)
    return total, code, flat // C, flat % C


def _softmax_enqueue(x, labels, ysoft, sw, cwa, ignore_index, has_ignore, eps, gamma, dscale, pre_at, from_logits,
                     loss, grad, hess, double_, checked=None):
    """Launch the categorical kernel (no synchronisation); returns (module, scratch, has_err).
    checked: softmax's `plain` (outer, C, inner), the arrays known to be what _check would pass."""
    cupy = _cupy()
    if checked:
        dims = outer, C, inner = checked
        sx = (C * inner, inner, 1)   # C-contiguous
    else:
        dims = outer, C, inner = x.shape
        sx = (_stride(x, 0), _stride(x, 1), _stride(x, 2))
    rows = outer * inner
    dev_id = x.data.device_id
    dt = _COMPUTE[double_]
    if not checked:
        st = x.dtype if _storage(x) else dt   # y_pred, soft labels, grad and hess
        _check("y_pred", x, st, dev_id, ndim=3)
        _check("y_true", labels, np.int64, dev_id, contiguous=True, ndim=1)
        if ysoft is not None:   # soft labels: any dtype of _SOFT_LABEL_TYPES
            own = dtype_name(ysoft.dtype) in _SOFT_LABEL_TYPES and ysoft.dtype.isnative
            _check("y_true", ysoft, ysoft.dtype if own else dt, dev_id, ndim=3)
        if ysoft is not None and tuple(ysoft.shape) != tuple(x.shape):
            raise RuntimeError("xentc (CUDA): soft labels and y_pred shapes differ")
        _check("class_weight", cwa, dt, dev_id, contiguous=True, ndim=1)
        _check("loss", loss, dt, dev_id, contiguous=True)
        _check("grad", grad, st, dev_id, contiguous=True)
        _check("hess", hess, st, dev_id, contiguous=True)
    swa = _weights(sw, dt, dev_id)
    mod = _module(dev_id)
    kind, extra = _softmax_kernel_choice(mod, x, dims, sx, ysoft, labels, gamma, from_logits, grad, hess, double_)
    while kind == "onchip":   # a refused launch turns that family off; the next choice may be on-chip again
        try:
            sc = _launch_onchip(cupy, mod, extra, x, sx[0], C, rows, labels, swa, cwa, ignore_index, has_ignore,
                                eps, dscale, pre_at, loss, grad, hess, double_)
            return mod, sc, True
        except Exception as exc:  # noqa: BLE001 - a launch the device refuses: use other kernels
            if not _is_launch_config_error(exc):
                raise
            mod.disable_onchip(extra[0], exc, pipe=extra[3])
            kind, extra = _softmax_kernel_choice(mod, x, dims, sx, ysoft, labels, gamma, from_logits, grad, hess,
                                                 double_)
    if kind == "small":
        sc = _launch_small(cupy, mod, extra, x, C, rows, labels, swa, cwa, ignore_index, has_ignore, eps, dscale,
                           pre_at, loss, grad, hess, double_)
        return mod, sc, True
    per, threads, smem = {"thread": (_THREAD_ROWS, 128, 0), "tile": (_TILE_ROWS, 128, extra or 0),
                          "warp": (_WARP_ROWS, 256, 0), "block": (1, 256, 0)}[kind]
    nblocks = -(-rows // per)
    sc = _scratch(cupy, nblocks, dev_id)
    label_store = None if ysoft is None else _SOFT_LABEL_TYPES[dtype_name(ysoft.dtype)]
    f = mod.funcs[_generic_name(kind, double_, _storage(x), label_store)]
    _log("softmax", kernel=kind, blocks=nblocks)
    sy = (_stride(ysoft, 0), _stride(ysoft, 1), _stride(ysoft, 2)) if ysoft is not None else (0, 0, 0)
    _launch_blocks(f, nblocks, threads, (
        x, np.int64(sx[0]), np.int64(sx[1]), np.int64(sx[2]),
        np.int64(C), np.int64(inner), np.int64(rows), labels, ysoft,
        np.int64(sy[0]), np.int64(sy[1]), np.int64(sy[2]), *swa, cwa,
        np.int64(ignore_index), np.int32(1 if has_ignore else 0), np.float64(eps), np.float64(gamma),
        np.float64(dscale), pre_at, np.int32(1 if from_logits else 0), loss, grad, hess,
        sc.sums, sc.errs), smem=smem)
    return mod, sc, True
