"""The four public loss functions: argument checks, dtype/layout normalisation, dispatch to the
CPU kernels (NumPy arrays) or the CUDA kernels (CuPy arrays), and result assembly.

Data checks that need a pass over the arrays (label ranges, probabilities, sample weights) run
inside the kernels; this module only turns the error code they return into a message naming the
argument. Choices the contract leaves open are recorded in docs/semantics.md.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import numbers
import operator
import sys
from typing import Any, Literal, NamedTuple, Optional, overload

import numpy as np
import numpy.typing as npt

from . import _kernels, _memory
from ._dtypes import dtype_name

__all__ = [
    "LossResult",
    "binary_cross_entropy",
    "binary_focal_loss",
    "cross_entropy",
    "focal_loss",
]


class LossResult(NamedTuple):
    """Loss with its derivatives, returned when ``grad`` or ``hess`` is requested.

    Attributes
    ----------
    loss : scalar or array
        The reduced loss (a scalar of the computation dtype) or, with ``reduction="none"``,
        the per-sample losses.
    grad : array or None
        d loss / d y_pred, with the shape and dtype of ``y_pred``; None if not requested.
    hess : array or None
        The diagonal of the Hessian of the loss with respect to ``y_pred``; None if not
        requested.
    """

    loss: Any
    grad: Any
    hess: Any


# Typing of the four functions: each has three @overload signatures so that a type checker knows
# that grad=True or hess=True returns a LossResult; otherwise the loss comes back alone (a NumPy
# scalar or array, or a CuPy array: typed Any).

_REDUCTIONS = ("mean", "sum", "none")

# Error codes of _xent_rows.h
_ERR_LABEL_RANGE, _ERR_LABEL_NAN, _ERR_LABEL_UNIT, _ERR_PROB, _ERR_WEIGHT = 1, 2, 3, 4, 5


# --------------------------------------------------------------------------------------------
# Scalar arguments
# --------------------------------------------------------------------------------------------
def _check_flag(name: str, value: Any) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")


def _check_real(name: str, value: Any) -> float:
    """A real scalar: a Python or NumPy number, or a 0-d real array (not a bool)."""
    if type(value) is float or type(value) is int:   # the usual case, without the getattr misses below (~1 us each)
        return float(value)
    if getattr(value, "ndim", None) == 0 and getattr(getattr(value, "dtype", None), "kind", "") in "fiu":
        return float(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _check_reduction(reduction: Any) -> str:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_n_threads(n_threads: Any) -> Optional[int]:
    if n_threads is None:
        return None
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads: expected None or a positive int, got {n_threads!r}")
    if not 1 <= n_threads <= 2**31 - 1:
        raise ValueError(f"n_threads: expected None or a positive int below 2**31, got {n_threads!r}")
    return int(n_threads)


def _check_smoothing(eps: Any) -> float:
    e = _check_real("label_smoothing", eps)
    if not 0.0 <= e < 1.0:
        raise ValueError(f"label_smoothing: expected a value in [0, 1), got {eps!r}")
    return e


def _check_gamma(gamma: Any) -> float:
    g = _check_real("gamma", gamma)
    if not (g >= 0.0 and np.isfinite(g)):
        raise ValueError(f"gamma: expected a finite value >= 0, got {gamma!r}")
    return g


def _gamma_in(g: float, cdt) -> float:
    """gamma as a computation in dtype cdt uses it: rounded to float32 for float32 (and 16-bit)
    y_pred, as docs/semantics.md says, decided once here for every backend, so that the kernels'
    choices follow the value they compute with: a gamma that rounds to 0 takes the cross-entropy
    path (the general power with a zero float exponent gave NaN at p = 0 and 1), one that rounds
    to 2 the square."""
    if not g or cdt != _F32:
        return g
    if g < 3.0e38:   # (inside float32's range: no overflow, and no errstate's 3 us a call)
        return float(np.float32(g))
    with np.errstate(over="ignore"):   # past float32's range: inf, as the kernels' float(gamma) was
        return float(np.float32(g))


def _check_ignore_index(ignore_index: Any) -> Optional[int]:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index: expected None or an int, got {ignore_index!r}")
    if not -2**63 <= ignore_index < 2**63:
        raise ValueError(f"ignore_index: {ignore_index!r} is outside the range of int64, the labels' dtype")
    return int(ignore_index)


# --------------------------------------------------------------------------------------------
# Arrays: namespace, dtype and layout
# --------------------------------------------------------------------------------------------
def _is_cupy(a: Any) -> bool:
    if type(a) is np.ndarray:   # the usual case, without the string tests (small calls: ~0.5 us each)
        return False
    m = type(a).__module__
    return m.startswith("cupy.") or m == "cupy"


def _namespace(**arrays: Any):
    """numpy or cupy, from the array arguments; mixing the two is a TypeError."""
    for a in arrays.values():   # the common case, without _is_cupy's string tests (small calls: a few us each)
        if a is not None and type(a) is not np.ndarray:
            break
    else:
        return np
    cupy_names = [n for n, a in arrays.items() if _is_cupy(a)]
    if not cupy_names:
        return np
    for name, a in arrays.items():
        if isinstance(a, np.ndarray) or (a is not None and not _is_cupy(a) and hasattr(a, "__array__")
                                         and not isinstance(a, numbers.Number)):
            raise TypeError(
                f"{name}: a NumPy array cannot be mixed with CuPy arrays "
                f"({', '.join(cupy_names)}); move it to the GPU with cupy.asarray")
    import cupy

    return cupy


def _real_array(name: str, a: Any, xp) -> Any:
    """a as an array of a real numeric dtype (no copy where it already is one)."""
    try:
        arr = xp.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a numeric array, got {type(a).__name__} ({exc})") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name}: complex input is not supported (dtype {arr.dtype})")
    if kind not in "fiub" and not _is_bfloat16(arr.dtype) and not _is_ml_float(arr.dtype):
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if _misaligned(arr):
        arr = _aligned_copy(arr)
    return arr


def _is_ml_float(dt: np.dtype) -> bool:
    """An ml_dtypes float other than bfloat16 (float8_e4m3fn and the like: kind 'V', though
    float8_e5m2 says 'f'): real input, converted to float64 like other real dtypes."""
    return dt.kind == "V" and getattr(dt.type, "__module__", "").startswith("ml_dtypes") and \
        dtype_name(dt).startswith("float")


def _is_bfloat16(dt: np.dtype) -> bool:
    """ml_dtypes.bfloat16 (a NumPy extension dtype of kind 'V'; JAX's and, with ml_dtypes, CuPy's
    bfloat16), which is computed in float32 like float16."""
    return dt.kind == "V" and dt.itemsize == 2 and dtype_name(dt) == "bfloat16"


def _is_half(dt: np.dtype) -> bool:
    """A 16-bit float: float16 (any byte order) or bfloat16."""
    return (dt.kind == "f" and dt.itemsize == 2) or _is_bfloat16(dt)


_F32, _F64, _I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)


def _compute_dtype(y_pred) -> np.dtype:
    dt = y_pred.dtype
    if (dt.kind == "f" and dt.itemsize in (2, 4)) or _is_bfloat16(dt):  # float16/32 (any byte order), bfloat16
        return _F32
    return _F64


def _capability(backend, name: str, default: Any) -> Any:
    """What a backend module's kernels can do: its attribute `name`, `default` where it has none.
    A dictionary lookup: getattr with a default raises and catches an AttributeError for each flag
    a backend lacks, about 1 us, several times a call."""
    return backend.__dict__.get(name, default)


def _storage_dtype(backend, pred, cdt) -> np.dtype:
    """The dtype y_pred is read in and the gradient and Hessian are written in: float16 or bfloat16
    as it is where the backend's kernels read and write them themselves (CUDA: computed in float32,
    with no float32 copy of y_pred and no float32 gradient to convert), else the compute dtype."""
    if _capability(backend, "HALF_STORAGE", False) and _is_half(pred.dtype):
        return _result_dtype(pred.dtype, cdt)
    return cdt


def _soft_label_dtypes(backend, ydt, sdt, cdt):
    """(soft labels' dtype, y_pred's dtype) as the backend's kernels read them, for soft labels of
    dtype ydt beside y_pred stored in sdt (computed in cdt). A backend that reads soft labels of
    any float dtype beside y_pred of any other (SOFT_LABEL_DTYPES, by name: the CUDA kernels) takes
    them as they are, where they are in native byte order. Else soft labels are never rounded to 16
    bits: beside 16-bit y_pred they stay 16-bit if they are of its dtype, else they are read in the
    compute dtype where the backend can (SOFT_LABELS_IN_COMPUTE_DTYPE), or the whole call is in the
    compute dtype; labels of another dtype beside y_pred of its compute dtype are converted to it."""
    if ydt.isnative and dtype_name(ydt) in _capability(backend, "SOFT_LABEL_DTYPES", ()):
        return ydt, sdt
    if sdt != cdt:
        if ydt == sdt:
            return sdt, sdt
        if _capability(backend, "SOFT_LABELS_IN_COMPUTE_DTYPE", False):
            return cdt, sdt
        return cdt, cdt
    return cdt, sdt


def _misaligned(a) -> bool:
    """A CuPy array with elements off its element size's grid: a first element not at a multiple
    of the size (a view of a byte buffer at an odd offset, say) or a stride that is not (a field of
    a record array). GPU loads of such elements fault and spoil the CUDA context, CuPy's own
    kernels' too: _real_array copies such inputs as bytes (_aligned_copy), out= arrays are
    refused. The CPU kernels read unaligned NumPy arrays as they are."""
    return _is_cupy(a) and a.size > 0 and (a.data.ptr % a.itemsize != 0
                                           or any(s % a.itemsize for s in a.strides))


def _aligned_copy(a):
    """A C-contiguous copy of a misaligned CuPy array, moved as bytes (a one-byte load is never
    misaligned, and any element-wise CuPy operation on `a` would fault)."""
    import cupy

    flip = tuple(slice(None, None, -1 if s < 0 else None) for s in a.strides)
    a = a[flip]   # positive strides for the byte view (reversed axes are restored below)
    raw = cupy.ndarray(a.shape + (a.itemsize,), dtype=np.uint8, memptr=a.data, strides=a.strides + (1,))
    return cupy.ascontiguousarray(raw.copy().view(a.dtype).reshape(a.shape)[flip])


def _as_compute(a, dtype, xp):
    """a in the compute dtype, native byte order and element-aligned strides (copy only if needed;
    misaligned CuPy arrays were copied by _real_array)."""
    if a.dtype != dtype or not a.dtype.isnative:
        a = a.astype(dtype)
    if not a.flags.c_contiguous and any(s % a.itemsize for s in a.strides):
        a = xp.ascontiguousarray(a)
    return a


def _to_host(a) -> np.ndarray:
    return a.get() if _is_cupy(a) else np.asarray(a)


def _small_weights(name: str, w: Any, length: Optional[int], xp, *, upper: Optional[float] = None,
                   what: str = "finite and non-negative"):
    """A scalar or 1-D weight vector (pos_weight, class_weight, alpha), checked on the host."""
    if w is None:
        return None
    if isinstance(w, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a real number or a 1-D array, got bool {w!r}")
    arr = _to_host(_real_array(name, w, xp)).astype(np.float64)
    if arr.ndim > 1:
        raise ValueError(f"{name}: expected a scalar or a 1-D array, got shape {arr.shape}")
    if arr.ndim == 1 and length is not None and arr.shape[0] != length:
        raise ValueError(f"{name}: expected length {length}, got {arr.shape[0]}")
    flat = arr.reshape(-1)
    top = np.inf if upper is None else upper
    # a scalar checked in Python, a vector by two reductions (a NaN makes the largest NaN); the
    # five NumPy calls of the mask below (about 6 us) only to find a bad value
    if flat.size == 1:
        v = float(flat[0])
        if math.isfinite(v) and 0.0 <= v <= top:
            return arr
    elif flat.size:
        hi = float(np.maximum.reduce(flat))
        if math.isfinite(hi) and hi <= top and float(np.minimum.reduce(flat)) >= 0.0:
            return arr
    else:
        return arr
    bad = ~(np.isfinite(flat) & (flat >= 0) & (flat <= top))
    if bad.any():
        i = int(np.argmax(bad))
        where = f" at index {i}" if arr.ndim else ""
        raise ValueError(f"{name}: value {float(flat[i])!r}{where} must be {what}")
    return arr


def _sample_weight(sw: Any, shape: tuple, dtype, xp, backend, binary: bool, n_threads=None):
    """sample_weight broadcast to the per-sample shape, flat and contiguous (values are checked
    by the kernels), and {}; for the binary kernels of a backend that reads weights that repeat
    (SAMPLE_WEIGHT_PATTERNS), such weights (a scalar, a weight per row or per label, any broadcast
    that repeats one block of the shape) are returned once, with the kernels' keywords that say
    how element i finds its weight: {"sw_rep": R, "sw_len": M}, element i taking weight
    (i // R) % M (the kernels read them a piece at a time: no array of the per-sample size).
    Weights of a dtype the kernels read beside any y_pred (_weights_read_as_they_are) keep their
    dtype, contiguous or repeating, and are checked by the kernels in that dtype; the rest are
    converted to the compute dtype."""
    if sw is None:
        return None, {}
    compact = binary and _capability(backend, "SAMPLE_WEIGHT_PATTERNS", False)
    arr = _real_array("sample_weight", sw, xp)
    try:
        arr = xp.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(
            f"sample_weight: shape {arr.shape} does not broadcast to the per-sample shape {shape}") from None
    pattern = _repeating_block(arr) if compact else None
    block = arr if pattern is None else pattern[0]
    # (a copy either way: the narrower one)
    own = _weights_read_as_they_are(arr.dtype, backend, binary) and (pattern is not None or arr.flags.c_contiguous)
    if own:
        return xp.ascontiguousarray(block).reshape(-1), ({} if pattern is None else
                                                         {"sw_rep": pattern[1], "sw_len": block.size})
    if pattern is not None:
        part, rep = pattern
        try:
            _check_narrowed("sample_weight", part, dtype, xp)
        except ValueError:   # named at the first element that takes the bad weight, not in the block
            _check_narrowed("sample_weight", arr, dtype, xp)
            raise
        block = xp.ascontiguousarray(_as_compute(part, dtype, xp)).reshape(-1)
        return block, {"sw_rep": rep, "sw_len": block.size}
    return xp.ascontiguousarray(_narrowed("sample_weight", arr, dtype, xp, n_threads)).reshape(-1), {}


def _weights_read_as_they_are(dt, backend, binary: bool) -> bool:
    """Whether the backend's kernels (binary or categorical) read sample weights of dtype dt as they
    are beside y_pred of any dtype: a dtype of _weight_dtypes in native byte order."""
    return dt.isnative and dtype_name(dt) in _weight_dtypes(backend, binary)


def _weight_dtypes(backend, binary: bool) -> frozenset:
    """The sample-weight dtypes (by name) a backend's kernels read as they are beside y_pred of any
    dtype: SAMPLE_WEIGHT_DTYPES for all of them (the CUDA kernels), BINARY_SAMPLE_WEIGHT_DTYPES
    for the binary ones only (the CPU kernels)."""
    kinds = _capability(backend, "SAMPLE_WEIGHT_DTYPES", frozenset())
    return kinds | _capability(backend, "BINARY_SAMPLE_WEIGHT_DTYPES", frozenset()) if binary else kinds


def _narrowed(name: str, a, dtype, xp, n_threads):
    """a in the compute dtype (_as_compute), checked first where casting to a narrower float could
    hide a bad value (_check_narrowed). Contiguous float64 NumPy arrays bound for float32 (soft
    labels, categorical sample weights; binary weights are read as they are) are checked and
    converted in one pass of the kernels (binary CE of 10^7 float32 logits with float64 weights,
    when they took this path: 17.3 -> 11.5 ms, benchmarks/RESULTS.md); the message of a bad value
    is _check_narrowed's."""
    if (xp is np and a.dtype == _F64 and dtype == _F32 and a.flags.c_contiguous
            and a.dtype.isnative and a.size):
        out = np.empty(a.shape, np.float32)
        top = 1.0 if name == "y_true" else _F32_TOP
        if _kernels.narrow(a.reshape(-1), out.reshape(-1), top, n_threads) >= 0:
            _check_narrowed(name, a, dtype, xp)   # raises, naming the first bad value
        return out
    _check_narrowed(name, a, dtype, xp)
    return _as_compute(a, dtype, xp)


def _repeating_block(b):
    """For an array b broadcast to its shape: (block, R) where its flat element i equals
    block.flat[(i // R) % block.size], with block a view of the dimensions b does not repeat, if
    those are consecutive (dimensions of length 1 between them aside) and fewer than all elements;
    else None."""
    if b.size <= 1:
        return None
    run = _repeat_run(b.shape, [d for d, (n, st) in enumerate(zip(b.shape, b.strides)) if n > 1 and st != 0])
    if run is None:
        return None
    d0, d1, rep = run
    if d0 == d1:
        return b[(slice(0, 1),) * b.ndim], rep
    block = b[tuple(slice(None) if d0 <= d < d1 else 0 for d in range(b.ndim))]
    return None if block.size == b.size else (block, rep)


def _repeat_run(shape: tuple, live: list):
    """Weights of `shape` (as broadcast) that vary only along the dimensions `live` (ascending,
    each longer than 1): (d0, d1, R) where they vary along dimensions d0 .. d1 - 1 alone, so that
    flat element i takes block.flat[(i // R) % block.size] of the block of those dimensions (d0 ==
    d1: one weight for all, R the whole size); None where the live dimensions are not one run
    (dimensions of length 1 between them aside). The rule of _repeating_block (the general path, a
    broadcast view) and _plain_weight_pattern (a plain call, from the shapes)."""
    if not live:
        return 0, 0, math.prod(shape)
    d0, d1 = live[0], live[-1] + 1
    if any(shape[d] > 1 and d not in live for d in range(d0, d1)):
        return None
    return d0, d1, math.prod(shape[d1:])


def _index(flat: int, shape: tuple) -> tuple:
    """The multi-index of a flat C-order index (to read the offending value)."""
    return tuple(int(i) for i in np.unravel_index(int(flat), shape)) if shape else ()


def _backend(xp, pred):
    """The kernels for this call: CUDA for CuPy arrays; on the CPU, the float32 kernels a chunk at
    a time for float16 and bfloat16 y_pred (_half_cpu: no full-size float32 copies), else the
    kernels of the compute dtype."""
    if xp is np:
        if _is_half(pred.dtype):
            from . import _half_cpu

            return _half_cpu
        return _kernels   # imported at the top: an import statement a call cost about 1 us
    return _cuda_backend()


_CUDA: Any = None   # xentc._cuda, once a call on CuPy arrays has imported it (`import xentc` does not)


def _cuda_backend():
    """The CUDA backend module, imported on the first call that needs it and kept (an import
    statement costs a call about a microsecond even when the module is loaded)."""
    global _CUDA
    if _CUDA is None:
        from . import _cuda

        _CUDA = _cuda
    return _CUDA


# --------------------------------------------------------------------------------------------
# Errors reported by the kernels
# --------------------------------------------------------------------------------------------
def _value_at(a, idx) -> str:
    """The value of a[idx] for a message: an integer as it is (2**64 - 1 is not 1.8e19), the rest
    as a Python float, or as NumPy writes it where a Python float cannot hold it (a long double
    past float64's range, which item() leaves a NumPy scalar)."""
    v = a[idx]
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, int) and not isinstance(v, bool):
        return repr(v)
    f = float(v)
    return str(v) if math.isinf(f) and not np.isinf(v) else repr(f)


def _check_narrowed(name: str, a, dtype, xp) -> None:
    """Labels or weights about to be cast to a narrower float dtype (float64 labels beside float32
    y_pred, say), checked on their own values where the cast could hide an error: 1 + 1e-10 rounds
    to a valid 1.0 in float32, -1e-50 to -0.0, and 1e300 to inf. The kernels check the rest."""
    if not (a.dtype.kind == "f" and a.dtype.itemsize > np.dtype(dtype).itemsize and a.size):
        return
    top = 1.0 if name == "y_true" else _weight_top(a.dtype, np.dtype(dtype))
    # two reductions without temporaries (a NaN makes both comparisons false); the mask below, four
    # passes and two temporaries, only to locate a bad value (float64 labels of float32 y_pred,
    # n = 1e7: 10 ms of a 17 ms call)
    if bool(a.min() >= 0) and bool(a.max() <= top):
        return
    bad = ~((a >= 0) & (a <= top))
    if not bool(bad.any()):
        return
    i = int(bad.reshape(-1).argmax())
    if name != "y_true":
        raise _weight_error(a, _index(i, a.shape), i, dtype)
    v = float(a[_index(i, a.shape)])
    if math.isnan(v):
        raise ValueError(f"y_true: NaN label at index {i}")
    raise ValueError(f"y_true: label {v!r} at index {i} is outside [0, 1]")


def _weight_error(sw, idx, i: int, cdt) -> ValueError:
    """The error of a bad sample weight sw[idx] (flat index i): negative, NaN or infinite, or,
    when finite and positive, too large for the compute dtype cdt."""
    v = sw[idx]
    v = v.item() if hasattr(v, "item") else v
    if not np.isinf(v) and v > 0:   # (positive, not NaN: too large; in its own type, for a long double)
        return ValueError(f"sample_weight: weight {_value_at(sw, idx)} at index {i} overflows "
                          f"{np.dtype(cdt).name}, the computation dtype of y_pred")
    return ValueError(f"sample_weight: weight {_value_at(sw, idx)} at index {i} must be finite and non-negative")


def _raise_binary(err: int, i: int, y_true, y_pred, sw_full) -> None:
    # messages give the flat C-order index (docs/semantics.md)
    idx = _index(i, y_pred.shape)
    if err == _ERR_LABEL_NAN:
        raise ValueError(f"y_true: NaN label at index {i}")
    if err == _ERR_LABEL_UNIT:
        raise ValueError(f"y_true: label {_value_at(y_true, idx)} at index {i} is outside [0, 1]")
    if err == _ERR_PROB:
        raise ValueError(f"y_pred: probability {_value_at(y_pred, idx)} at index {i} is outside [0, 1]")
    if err == _ERR_WEIGHT:
        raise _weight_error(sw_full, idx, i, _compute_dtype(y_pred))
    raise RuntimeError(f"xentc: unknown kernel error code {err}")


def _full_weights(xp, sample_weight, shape, err: int):
    """The sample weights as broadcast to the samples' shape, for a weight error's message (the
    only error that reads them); None otherwise."""
    if err != _ERR_WEIGHT or sample_weight is None:
        return None
    return xp.broadcast_to(xp.asarray(sample_weight), shape)


def _weight_error_first(xp, sample_weight, shape: tuple, cdt, err: int) -> None:
    """Before a categorical GPU call raises an error other than a weight's: the sample weights'
    error where the CPU would name it first. The CUDA kernels read sample weights wider than the
    compute dtype (float64 beside float32) as they are and check them with the labels, in index
    order; the CPU narrows them first (_narrowed), naming a negative, NaN or too large weight
    before it reads a label. _check_narrowed raises that error as the CPU does."""
    if xp is np or sample_weight is None or err == _ERR_WEIGHT:
        return
    arr = xp.asarray(sample_weight)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > cdt.itemsize:
        _check_narrowed("sample_weight", xp.broadcast_to(arr, shape), cdt, xp)


def _raise_categorical(err: int, i: int, j: int, y_true, y_pred, axis: int, sw_full) -> None:
    # messages give flat C-order indices (docs/semantics.md): i is the row (sample), j the class
    sample_shape = y_pred.shape[:axis] + y_pred.shape[axis + 1:]
    if err == _ERR_LABEL_RANGE:
        C = y_pred.shape[axis]
        raise ValueError(f"y_true: label {j} at index {i} is outside [0, {C})")
    if err == _ERR_WEIGHT:
        raise _weight_error(sw_full, _index(i, sample_shape), i, _compute_dtype(y_pred))
    row = _index(i, sample_shape)
    idx = row[:axis] + (int(j),) + row[axis:]
    flat = int(np.ravel_multi_index(idx, y_pred.shape))
    if err == _ERR_LABEL_NAN:
        raise ValueError(f"y_true: NaN label at index {flat}")
    if err == _ERR_LABEL_UNIT:
        raise ValueError(f"y_true: label {_value_at(y_true, idx)} at index {flat} is outside [0, 1]")
    if err == _ERR_PROB:
        raise ValueError(f"y_pred: probability {_value_at(y_pred, idx)} at index {flat} is outside [0, 1]")
    raise RuntimeError(f"xentc: unknown kernel error code {err}")


# --------------------------------------------------------------------------------------------
# Result assembly
# --------------------------------------------------------------------------------------------
class _Sums(list):
    """The (loss sum, denominator) rows of _call_with_sums. for_mean: the caller forms a mean from
    them (xentc.dask's chunks of a mean without derivatives), so only their ratio counts
    (_only_ratios_count); else they are a sum of the caller's."""
    for_mean = False


# The unrounded kernel sums of the current call go here when a caller asks for them (see
# _call_with_sums); None otherwise.
_SUMS_SINK: contextvars.ContextVar[Optional[_Sums]] = contextvars.ContextVar("xentc_sums_sink", default=None)
# The mean's denominator to scale the derivatives with, instead of the call's own (xentc.dask: that
# of the whole array, for each chunk); None otherwise.
_MEAN_DENOM: contextvars.ContextVar[Optional[float]] = contextvars.ContextVar("xentc_mean_denom", default=None)
# Set: a call checks its arguments, runs the weight pre-pass, reports (0.0, denominator) to the sums
# sink and returns None, reading nothing of y_pred but its shape and dtype (xentc.dask).
_DENOM_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("xentc_denom_only", default=False)


def _mean_scale(denom: float) -> float:
    """The factor that turns sums into the weighted mean: 1/denom, and 0 when nothing counts."""
    return 1.0 / denom if denom != 0 else 0.0


def _mean_value(total: float, denom: float) -> float:
    """The weighted mean loss from its two sums; 0.0 (not NaN) when nothing counts."""
    return total / denom if denom != 0 else 0.0


def _mean_weight_exponent(denom: float, cdt) -> int:
    """k such that weights times 2**-k sum to about 1, where their sum `denom` is so small or so
    large that the kernels, which work in the compute dtype, would lose the mean's factor 1/denom
    (no normal number of the dtype) or the weighted terms (below the normal range, or past the
    largest number); 0 for sums in the wide range where neither happens. Scaling every weight by a
    power of two leaves the mean and its derivatives as they are, and is exact for all but weights
    that then fall below the dtype's normal range (whose share of the mean is below its precision)."""
    if denom == 0:
        return 0
    if math.isinf(denom):   # float64 weights whose sum overflows: bring them down, then look again
        return 64
    lo, hi = _mean_denom_range(np.dtype(cdt))
    return 0 if lo <= denom <= hi else math.frexp(denom)[1] - 1


@functools.lru_cache(maxsize=None)
def _mean_denom_range(cdt: np.dtype) -> tuple:
    """The sums of weights _mean_weight_exponent leaves as they are in compute dtype cdt (np.finfo
    looked up once, not on every call)."""
    fi = np.finfo(cdt)
    return math.ldexp(1.0, int(fi.minexp) + int(fi.nmant) + 8), math.ldexp(1.0, int(fi.maxexp) - 16)


def _weight_lift(sample_weight, denom: float, cdt, xp, reduction: str, derivs: bool):
    """(k, weights): float64 (or wider) sample weights so small that the float32 kernels, which
    take each weight in float32, would see zeros or subnormals (all of them 1e-50, say: a mean of
    0.0, the 0/0 of no weight at all) are multiplied by 2**-k first (k < 0, exact in float64), where
    only their ratios count: the mean, and for xentc.dask the denominator-only pass and the chunk
    sums of a loss without derivatives (the sums sink takes them back by 2**k); else (0, None).
    Looked for only where the weight pre-pass found a sum below the range _mean_weight_exponent
    leaves as it is (so calls with ordinary weights pay nothing), and taken where the largest
    weight is below 2**-100, under which float32 drops bits of it."""
    if cdt != _F32 or not denom < _mean_denom_range(cdt)[0] or not _only_ratios_count(reduction, derivs):
        return 0, None
    arr = _real_array("sample_weight", sample_weight, xp)
    if arr.dtype.kind != "f" or arr.dtype.itemsize <= 4 or not arr.size:
        return 0, None
    k = _lift_exponent(float(arr.max()))
    return (k, xp.ldexp(arr.astype(np.float64), -k)) if k else (0, None)


def _class_weight_lift(cw, cdt, reduction: str, derivs: bool, integer_labels: bool):
    """(k, class weights): _weight_lift's rule for checked float64 class weights (a host array, or
    None), which the kernels take in float32 too. Only with integer labels, where the class weights
    are in the mean's denominator as well (soft labels divide by the sample weights alone)."""
    if cw is None or cdt != _F32 or not integer_labels or not cw.size or not _only_ratios_count(reduction, derivs):
        return 0, cw
    k = _lift_exponent(float(np.maximum.reduce(cw, axis=None)))   # (cw.max() takes a microsecond more)
    return (k, np.ldexp(cw, -k)) if k else (0, cw)


def _only_ratios_count(reduction: str, derivs: bool) -> bool:
    """Whether a call's weights count only by their ratios, so that a power of two taken out of
    them, which the caller gets back, changes nothing: a mean; xentc.dask's denominator-only pass;
    a chunk's sums of a mean without derivatives (the sums sink takes them back by 2**k). Not so
    the losses of reduction "none", which the caller gets as they are, nor a chunk's sums of a
    sum: lifted, weights that float32 holds as zeros would count where the in-memory sum has them
    add nothing (an infinite loss times such a weight: inf, where the sum in memory is 0)."""
    if reduction == "mean" or _DENOM_ONLY.get():
        return True
    sink = _SUMS_SINK.get()
    return reduction == "sum" and not derivs and sink is not None and sink.for_mean


def _lift_exponent(top: float) -> int:
    """k with top * 2**-k in [1, 2), for the largest weight `top` of float64 weights so small that
    float32 drops bits of them (below 2**-100); 0 for any other (zero: no weight to lift)."""
    return math.frexp(top)[1] - 1 if 0.0 < top < 2.0 ** -100 else 0


def _mean_weights(xp, reduction: str, denom: float, cdt, weights: tuple, recount, lift: int = 0):
    """(denominator, weights, wexp) the kernels use for the mean: the call's own denominator, or
    _MEAN_DENOM's; where _mean_weight_exponent finds it too small or too large for the compute
    dtype, the weights (sample weights, or class weights) divided by 2**wexp, unless one of them
    would then overflow, with the denominator likewise (recount(*weights): the weight pre-pass
    again, where the sum itself had overflowed or was formed below the normal range). lift: the
    weights (and denom with them) were divided by 2**lift already (_weight_lift,
    _class_weight_lift); it counts into wexp, and a given denominator is divided by it too."""
    if reduction != "mean":
        return denom, weights, lift
    given = _MEAN_DENOM.get()
    if given is not None:
        denom = math.ldexp(given, -lift)
    if not weights:
        return denom, weights, lift
    wexp = lift
    for _ in range(4):
        k = _mean_weight_exponent(denom, cdt)
        if not k or (given is not None and math.isinf(denom)):
            break
        with np.errstate(over="ignore"):   # (weights of another dtype than cdt: in cdt first, as the kernels read them)
            new = tuple(_ldexp_weights(w.astype(cdt, copy=False), -k, xp) for w in weights)
        if not all(bool(xp.isfinite(w).all()) for w in new):
            break
        weights, wexp = new, wexp + k
        # the sum again where it was formed below the normal range (weights whose products, sample
        # times class weight, lost bits there: the scaled ones keep them) or overflowed; else its
        # power of two is exact
        if given is None and (k < 0 or not math.isfinite(denom)):
            denom = recount(*weights)
        else:
            denom = math.ldexp(denom, -k)
    return denom, weights, wexp


def _ldexp_weights(w, k: int, xp):
    """w * 2**k, for _mean_weights. CuPy compiles its own kernels with flush-to-zero, so float32
    weights that are subnormal (the ones that need scaling up) would read as 0 there, and the mean
    with them (an H200 gave 0.0 for 3.65): on CuPy a float32 w is rebuilt from its bits in float64
    (significand and exponent fields: integer work, no float32 arithmetic) and scaled there. Weights
    are finite and non-negative (the weight pre-pass checked them)."""
    if xp is np or w.dtype != _F32:
        return xp.ldexp(w, k)
    bits = w.view(np.uint32)
    field = (bits >> 23) & 0xFF
    sig = xp.where(field > 0, (bits & 0x7FFFFF) | 0x800000, bits & 0x7FFFFF).astype(np.float64)
    return xp.ldexp(sig, xp.maximum(field, 1).astype(np.int32) + (k - 150)).astype(_F32)


def _fits(w: Optional[np.ndarray], cdt) -> bool:
    """Whether _check_fits passes w (a float64 host array)."""
    return w is None or not w.size or not float(np.maximum.reduce(w, axis=None)) > _weight_top(_F64, np.dtype(cdt))


@functools.lru_cache(maxsize=None)
def _weight_top(src: np.dtype, dst: np.dtype):
    """The largest weight of dtype src that dtype dst holds: the largest src value that rounds to a
    finite dst (to dst's largest number), past which a weight overflows dst. The midpoint between
    that number and the next power of two 2**e rounds to even, the power, so the top is the src
    value just below the midpoint (float64 for float32: 2**128 - 2**103 - 2**75). The kernels that
    read a wider weight as it is check it the same way: converted, it must not be inf. A float
    for float64 src (NumPy and CuPy compare it alike), a src scalar for wider ones (long double)."""
    fi = np.finfo(dst)
    e, m = int(fi.maxexp), int(fi.nmant)
    one = np.ones((), src)
    with np.errstate(over="ignore"):   # (2**1024 in float64: inf, whose step down is float64's largest)
        top = np.nextafter(np.ldexp(one, e) - np.ldexp(one, e - m - 2), np.zeros((), src))
    return float(top) if src.itemsize <= 8 else top


_F32_TOP = _weight_top(_F64, _F32)   # the largest double that rounds to a finite float32 (_loss_scalar)


def _check_fits(name: str, w: Optional[np.ndarray], cdt) -> None:
    """A weight checked in float64 must also be finite in the compute dtype it is used in."""
    if w is not None and not _fits(w, cdt):
        i = int(np.argmax(w.reshape(-1)))
        where = f" at index {i}" if w.ndim else ""
        raise ValueError(f"{name}: value {float(w.reshape(-1)[i])!r}{where} overflows {np.dtype(cdt).name}, the "
                         f"computation dtype of y_pred")


def _call_with_sums(func, *args, for_mean: bool = False, **kwargs):
    """Call one of the four loss functions and also return the double-precision sums its kernels
    computed before any rounding to the result dtype: ``(result, weighted loss sum, mean's
    denominator)``. For callers that combine partial results exactly (xentc.dask). for_mean: the
    caller divides the sums into a mean (see _Sums)."""
    sink = _Sums()
    sink.for_mean = for_mean
    token = _SUMS_SINK.set(sink)
    try:
        result = func(*args, **kwargs)
    finally:
        _SUMS_SINK.reset(token)
    total, denom = sink[-1]
    return result, total, denom


# --------------------------------------------------------------------------------------------
# Output buffers (the out= argument)
# --------------------------------------------------------------------------------------------
class _Out(NamedTuple):
    loss: Any
    grad: Any
    hess: Any


_NO_OUT = _Out(None, None, None)


def _output_buffers(out: Any, xp, *, reduction: str, grad: bool, hess: bool, loss_shape: tuple,
                    shape: tuple, cdt, res_dtype, inputs: tuple) -> _Out:
    """The caller's out= arrays, checked before any work is done: each entry None or an array the
    kernels can write directly (the exact shape and dtype of that result, C-contiguous, writeable,
    sharing no memory with an input or another entry)."""
    if out is None:
        return _NO_OUT
    if not isinstance(out, tuple):
        raise TypeError(f"out: expected a tuple (loss, grad, hess) such as a LossResult, got {type(out).__name__}")
    if len(out) != 3:
        raise TypeError(f"out: expected a tuple of 3 entries (loss, grad, hess), each an array or None, "
                        f"got {len(out)} entries")
    loss_buf, grad_buf, hess_buf = out
    if loss_buf is not None and reduction != "none":
        if getattr(loss_buf, "ndim", 0) != 0:
            raise ValueError(f"out: a loss array is only written with reduction='none', not {reduction!r}")
        loss_buf = None  # the scalar of a previous result
    specs = (("loss", loss_buf, True, loss_shape, cdt),
             ("grad", grad_buf, grad, shape, res_dtype),
             ("hess", hess_buf, hess, shape, res_dtype))
    kept: list = []
    for name, buf, wanted, want_shape, want_dtype in specs:
        if buf is None:
            kept.append(None)
            continue
        if not wanted:
            raise ValueError(f"out: a {name} array was given but {name}=False")
        if xp is np and not isinstance(buf, np.ndarray):
            raise TypeError(f"out: the {name} entry must be a NumPy array, got {type(buf).__name__}")
        if xp is not np and not _is_cupy(buf):
            raise TypeError(f"out: the {name} entry must be a CuPy array like y_pred, got {type(buf).__name__}")
        if buf.shape != want_shape:
            raise ValueError(f"out: the {name} array has shape {buf.shape}, expected {want_shape}")
        if buf.dtype != want_dtype:
            raise ValueError(f"out: the {name} array has dtype {buf.dtype}, expected {np.dtype(want_dtype)}")
        if not buf.flags.c_contiguous:
            raise ValueError(f"out: the {name} array must be C-contiguous")
        if not getattr(buf.flags, "writeable", True):
            raise ValueError(f"out: the {name} array is read-only")
        if _misaligned(buf):
            raise ValueError(f"out: the {name} array starts at an address that is not a multiple of its "
                             f"element size ({buf.itemsize} bytes), which the GPU cannot write")
        for other_name, other in inputs + tuple(zip(("loss", "grad"), kept)):
            if other is not None and xp.may_share_memory(buf, other):
                raise ValueError(f"out: the {name} array shares memory with {other_name}")
        kept.append(buf)
    return _Out(*kept)


def _caller_array(a: Any) -> Any:
    """The caller's own array (NumPy or CuPy, not converted or broadcast), for the out= overlap
    checks; None for anything else (a list or a scalar has no memory an out= array could share)."""
    return a if isinstance(a, np.ndarray) or _is_cupy(a) else None


def _buffer(xp, buf, shape: tuple, dtype):
    """An output array for a kernel: the caller's buffer viewed with the kernel's shape when it has
    the dtype the kernels write, else a new array (_finish then stores it into the caller's); on
    the CPU its memory may be recycled from a freed result (xentc._memory)."""
    if buf is not None and buf.dtype == dtype:
        return buf.reshape(shape)
    if xp is np:
        return _memory.empty(shape, dtype)
    return xp.empty(shape, dtype=dtype)


def _device_scalar(xp, reduction: str, cdt, denom: float) -> dict:
    """On the GPU, the backend's keyword argument that has its last kernel write the reduced loss
    into a new 0-d device array (the value _finish would form on the host, so no copy to the
    device is needed): {"scalar": [dtype, mean?, denom]}, the backend putting the array in place of
    the dtype (after its main launch); nothing on the CPU or for 'none'."""
    if xp is np or reduction == "none":
        return {}
    return {"scalar": [cdt, reduction == "mean", float(denom)]}


def _finish_denom(denom: float) -> None:
    """A _DENOM_ONLY call's end: the denominator to the sums sink."""
    sink = _SUMS_SINK.get()
    if sink is not None:
        sink.append((0.0, float(denom)))
    return None


def _finish(xp, total: float, denom: float, reduction: str, loss_arr, sample_shape, grad_arr, hess_arr,
            pred_shape, pred_dtype, cdt, want_grad: bool, want_hess: bool, bufs: _Out = _NO_OUT,
            scalar: Optional[dict] = None, wexp: int = 0, own_denom: Optional[float] = None):
    """The result as returned. wexp: the weights were divided by 2**wexp for the mean (total and
    denom with them); own_denom: the call's own denominator, where denom is another (_MEAN_DENOM)."""
    sink = _SUMS_SINK.get()
    if sink is not None:
        sink.append((math.ldexp(float(total), wexp),
                     float(own_denom) if own_denom is not None else math.ldexp(float(denom), wexp)))
    if reduction == "none":
        loss = bufs.loss if bufs.loss is not None else loss_arr.reshape(sample_shape)
    elif scalar:
        loss = scalar["scalar"][0]   # written on the device from the same sum (_device_scalar)
    else:
        value = math.ldexp(total, wexp) if reduction == "sum" else _mean_value(total, denom)
        loss = _loss_scalar(value, cdt) if reduction == "sum" else cdt.type(value)
        if xp is not np:
            loss = xp.asarray(loss)   # (a 0-d array of cdt on the device)
    if not (want_grad or want_hess):
        return loss
    out_dtype = _result_dtype(pred_dtype, cdt)  # float16 / bfloat16 in: the same out, any byte order

    def shaped(a, buf):
        if a is None:
            return None
        if buf is not None:  # the caller's array: written by the kernel, or here from float32
            if buf.dtype != a.dtype:
                xp.copyto(buf, a.reshape(pred_shape), casting="same_kind")
            return buf
        a = a.reshape(pred_shape)
        return a.astype(out_dtype) if a.dtype != out_dtype else a

    return LossResult(loss, shaped(grad_arr, bufs.grad), shaped(hess_arr, bufs.hess))


def _loss_scalar(value: float, cdt):
    """A summed loss (a double) as a NumPy scalar of the compute dtype cdt, rounded once: past
    float32's range inf, without the "overflow encountered in cast" RuntimeWarning NumPy gives
    for that cast (an error under -W error). The kernels' per-sample losses overflow to inf
    silently, as IEEE arithmetic does, and so does the GPU's device scalar. (A mean needs no such
    care: it is at most the largest per-sample loss, a float32 number or inf.)"""
    if cdt is _F32 and not -_F32_TOP <= value <= _F32_TOP and value == value:
        return cdt.type(math.copysign(math.inf, value))
    return cdt.type(value)


def _result_dtype(pred_dtype, cdt):
    """The dtype of grad and hess: float16 / bfloat16 for such input (computed in float32; native
    byte order), else cdt."""
    if _is_bfloat16(pred_dtype):
        return pred_dtype
    return np.dtype(np.float16) if pred_dtype.kind == "f" and pred_dtype.itemsize == 2 else cdt


def _labels_checked_in_kernel(backend, cw, ignore_index, from_logits: bool, reduction: str) -> bool:
    """Whether the weight pre-pass over integer labels can be left out: nothing needs its sum (the
    mean's denominator is the sample count, with no class weights and nothing ignored, or the
    reduction is no mean and no one asked for the denominator: xentc.dask's sums sink or
    denominator-only pass) and the backend's softmax kernels report labels outside [0, C)
    themselves (every kernel skips an ignored row and checks the others' labels by the pre-pass's
    rule). Only from logits, where a label is the only input those kernels can reject, so the
    first error reported is the same as with the pre-pass. The CUDA backend saves a launch and a
    host synchronisation this way, the CPU ones a pass over the labels and a kernel call."""
    if not (from_logits and _capability(backend, "LABELS_CHECKED_IN_KERNEL", False)):
        return False
    if cw is None and ignore_index is None:
        return True
    return reduction != "mean" and _plain_context()


def _device_denominator(backend, n: int, bufs) -> bool:
    """Whether a call that needs the weight pre-pass (sample weights; class weights, ignore_index
    or probabilities with a categorical mean) can start its main kernels without waiting for it (a
    backend with DEVICE_DENOMINATOR: the GPU's), the pass's sum left on the device for them to
    divide by where the reduction is a mean, its checks read back with the call's result: the call
    waits for the device once, not twice. Into new arrays only (the main kernels run before the
    pass's error is known, and must not write into the caller's `out=` then) and outside
    xentc.dask's context. Weights whose sum the mean must scale first (_mean_weight_exponent,
    _weight_lift) are found afterwards, and the call is made again the other way."""
    return n > 0 and bufs is _NO_OUT and _capability(backend, "DEVICE_DENOMINATOR", False) and _plain_context()


def _mean_scales_weights(denom: float, reduction: str, cdt, sample_weight, xp) -> bool:
    """Whether a mean whose weights sum to denom (the weight pre-pass's sum, the weights taken in
    the compute dtype) must scale them first, as the general path does once it knows the sum: by a
    power of two (_mean_weight_exponent), or, for the caller's sample_weight where it is wider than
    the compute dtype and so small that the kernels read zeros or subnormals, by _weight_lift's. A
    call that ran its kernels before it knew the sum (a plain call; on the GPU, _device_denominator)
    is then made again by the general path, which waits for the sum first."""
    if reduction != "mean":
        return False
    lo, hi = _mean_denom_range(cdt)
    if lo <= denom <= hi:   # the usual sum, which neither rule scales (two function calls less)
        return False
    return bool(_mean_weight_exponent(denom, cdt)) or (
        sample_weight is not None and _weight_lift(sample_weight, denom, cdt, xp, reduction, True)[0] != 0)


def _weight_total(backend, labels, sw, cw, C, ignore_index, n, cdt, n_threads, **swkw):
    """Run the weight pre-pass (checks labels and sample weights): (mean's denominator, err, i, j).
    swkw: how repeating sample weights are laid out (_sample_weight)."""
    return backend.weight_sum(labels, sw, cw, C, -1 if ignore_index is None else ignore_index,
                              ignore_index is not None, n, cdt == _F64, n_threads, **swkw)


# --------------------------------------------------------------------------------------------
# Plain calls
# --------------------------------------------------------------------------------------------
# A call on C-contiguous float32 or float64 NumPy arrays, with integer labels (int64, or another
# integer dtype but uint64, converted to int64 as the general path converts them) or binary labels
# of a dtype the kernels read as they are, sample weights (if any) of the per-sample shape that the
# kernels read as they are (_plain_weights), out= arrays (if any) the kernels write as they are
# (_plain_out; on the GPU a weight pre-pass then waits, as on the general path) and no xentc.dask
# context (ignore_index, class weights, pos_weight and alpha allowed: small host arrays, checked as
# the general path checks them), needs none of the general path's other conversions: its kernel
# call, the mean's denominator (the element or row count, or the weight pre-pass's sum) and the
# result are those of _binary_here and _categorical_here. _binary_plain and _categorical_plain
# recognise such calls and make them directly (4x16 cross entropy, Zen 3: 14 -> 5 us;
# benchmarks/call_overhead.py on a Xeon: with ignore_index 11-12.6 -> 6.1-6.6 us, with sample
# weights 21-22.4 -> 6.1-6.3 us, with class weights 26-28 -> 11 us, into out= arrays 12.6-13.0 ->
# 7.0-7.1 us); they decide nothing of their own: anything else, any error a kernel, the pre-pass or
# a weight's check reports and weights whose sum a mean must scale go to the general path, which
# makes the call again (and raises the error). The same holds for such CuPy arrays on the current
# device with aligned elements (categorical: from logits only, where the kernels check the labels
# themselves), whose whole-call time on a GPU is mostly this host work. tests/test_plain_calls.py
# holds both to the general path's bits.
def _plain_type(a) -> bool:
    """Whether y_pred may make a plain call: a NumPy array, or a CuPy array where CuPy is already
    imported (so a call never imports it)."""
    t = type(a)
    if t is np.ndarray:
        return True
    cp = sys.modules.get("cupy")
    return cp is not None and t is getattr(cp, "ndarray", None)


def _plain_context() -> bool:
    """No xentc.dask context: no denominator-only call, no given mean denominator, no sums sink."""
    return not _DENOM_ONLY.get() and _MEAN_DENOM.get() is None and _SUMS_SINK.get() is None


def _plain_result(total: float, denom: float, reduction: str, cdt, loss_arr, sample_shape, grad_arr, hess_arr,
                  shape: tuple, scalar: dict, bufs: _Out):
    """_finish's result for a plain call (no sink, results in the storage dtype; bufs: _plain_out's,
    the caller's arrays, which the kernels wrote through the views loss_arr, grad_arr, hess_arr)."""
    if reduction == "none":
        loss = bufs.loss if bufs.loss is not None else loss_arr if loss_arr.shape == sample_shape else \
            loss_arr.reshape(sample_shape)
    elif scalar:
        loss = scalar["scalar"][0]   # written on the device (_device_scalar)
    else:
        loss = _loss_scalar(total, cdt) if reduction == "sum" else cdt.type(_mean_value(total, denom))
    if grad_arr is None and hess_arr is None:
        return loss
    if bufs is not _NO_OUT:   # the caller's arrays (the kernels wrote them through the views)
        grad_arr = grad_arr if bufs.grad is None else bufs.grad
        hess_arr = hess_arr if bufs.hess is None else bufs.hess
    return LossResult(loss, grad_arr if grad_arr is None or grad_arr.shape == shape else grad_arr.reshape(shape),
                      hess_arr if hess_arr is None or hess_arr.shape == shape else hess_arr.reshape(shape))


def _plain_out(out, xp, reduction: str, grad: bool, hess: bool, loss_shape: tuple, shape: tuple, cdt, sdt,
               inputs: tuple) -> Optional[_Out]:
    """A plain call's out= (not None): the caller's arrays as _output_buffers passes them (the loss
    in the compute dtype, grad and hess in the storage dtype, a plain call's result dtype; inputs:
    its (name, array) pairs), on the GPU each on the current device; None for anything else, which
    the general path then refuses with _output_buffers' error, before any work."""
    try:
        bufs = _output_buffers(out, xp, reduction=reduction, grad=grad, hess=hess, loss_shape=loss_shape, shape=shape,
                               cdt=cdt, res_dtype=sdt, inputs=inputs)
    except (TypeError, ValueError):
        return None
    if xp is not np:   # (the general path's CUDA backend checks the device of each)
        dev = xp.cuda.runtime.getDevice()
        if any(b is not None and b.data.device_id != dev for b in bufs):
            return None
    return bufs


def _into(buf, empty, shape: tuple, dtype):
    """A plain call's output array for its kernels: new (buf None), or the caller's out= array buf
    viewed with that shape."""
    return empty(shape, dtype) if buf is None else buf if buf.shape == shape else buf.reshape(shape)


_NO_KW: dict = {}
_PLAIN_CUDA_KW = {"plain": True}   # _binary_plain's; _categorical_plain gives the view's dims instead


def _plain_backend(y_true, y_pred, sw=None):
    """(backend, allocator, array module, the backend's extra keyword arguments) of a plain call on
    these C-contiguous arrays of one type (sample weights sw: None or one more): the CPU kernels for
    NumPy arrays; for CuPy arrays the CUDA kernels where all lie on the current device and none is
    misaligned (told so with `plain`: they skip the device switch and the checks of what the caller
    has checked); else None (the general path's case)."""
    if type(y_pred) is np.ndarray:
        return _kernels, _memory.empty, np, _NO_KW
    cupy = sys.modules["cupy"]   # imported: _plain_type found its ndarray there
    dev = cupy.cuda.runtime.getDevice()
    for a in (y_true, y_pred) if sw is None else (y_true, y_pred, sw):
        mp = a.data
        # C-contiguous (the callers' test): every stride is whole elements, so the first
        # element's address alone says whether the array is misaligned (_misaligned)
        if mp.device_id != dev or mp.ptr % a.itemsize:
            return None
    return _cuda_backend(), cupy.empty, cupy, _PLAIN_CUDA_KW


def _plain_dtypes(y_pred):
    """(compute dtype, storage dtype) of a plain call's y_pred: float32 or float64, both its own; on
    the GPU also float16 or bfloat16, computed in float32 and read, with the derivatives written,
    in its own dtype, as the general path has the CUDA kernels do (_storage_dtype; its _finish then
    keeps them as they are); None for any other dtype."""
    dt = y_pred.dtype
    if dt is _F64 or dt is _F32:
        return dt, dt
    if type(y_pred) is not np.ndarray and _is_half(dt) and dt.isnative:
        return _F32, dt
    return None


def _plain_weights(sw, y_pred, shape: tuple) -> bool:
    """Whether sample weights sw (None: none) may go to a plain call's kernels: an array of y_pred's
    type, of the per-sample shape itself (no broadcast) and C-contiguous, which _sample_weight
    would hand on as it is, flattened (its dtype: _plain_weight_dtype, once the backend is known)."""
    return sw is None or (type(sw) is type(y_pred) and sw.shape == shape and sw.flags.c_contiguous)


def _plain_weight_pattern(sw, y_pred, shape: tuple):
    """The binary kernels' keywords for sample weights sw of a plain call that _plain_weights does
    not take as they are: {"sw_rep": R, "sw_len": sw.size} for a C-contiguous array of y_pred's
    type that broadcasts to `shape` as one block repeated (a weight a row of (N, K) labels, a
    weight a label, one weight for all): element i takes sw.flat[(i // R) % sw.size], R by
    _repeat_run as the general path's _repeating_block finds it, from the shapes (no broadcast
    view: its two functions took 6 us of a 21 us call); {} for weights in order of another shape
    ((16,) for (1, 16)); None for any other (a broadcast that is no single block, or no
    broadcast: the general path's error)."""
    if type(sw) is not type(y_pred) or not sw.flags.c_contiguous:
        return None
    k = len(shape) - sw.ndim
    if k < 0:
        return None
    live = []   # the dimensions the weights do not repeat over
    for d, m in enumerate(sw.shape, k):
        if m != 1:
            if m != shape[d]:
                return None
            live.append(d)
    n = math.prod(shape)
    if not n:
        return None
    if sw.size == n:   # (a shape with other ones, (16,) for (1, 16): the weights in order as they are)
        return _NO_KW
    run = _repeat_run(shape, live)
    return None if run is None else {"sw_rep": run[2], "sw_len": sw.size}


def _plain_weight_dtype(sw, cdt, backend, binary: bool) -> bool:
    """Whether _sample_weight would hand the kernels sample weights of sw's dtype as they are (the
    compute dtype, or one _weights_read_as_they_are)."""
    return sw.dtype == cdt or _weights_read_as_they_are(sw.dtype, backend, binary)


def _plain_weights_converted(sw, cdt, n_threads):
    """NumPy sample weights of a float dtype (native byte order) that the categorical CPU kernels do
    not read as it is, in the compute dtype cdt as _sample_weight converts them (_narrowed: float64
    for float32 checked and narrowed in one pass, narrower floats widened); None for a bad value
    (the general path names it) and any other dtype."""
    if sw.dtype.kind != "f" or not sw.dtype.isnative:
        return None
    try:
        return _narrowed("sample_weight", sw, cdt, np, n_threads)
    except ValueError:
        return None


def _plain_weight_pass(backend, labels, sw, cw, C: int, ignore_index, n: int, cdt, reduction: str, n_threads,
                       bkw: dict, bufs: _Out, sample_weight, xp):
    """The weight pre-pass of a plain call with sample weights sw as the kernels read them (the
    caller's: sample_weight, of array module xp; binary: labels and class weights cw None, C 0)
    or, for a mean, class weights or ignore_index, as the general path runs it: (the
    mean's denominator, the backend's keyword arguments), these with the pass as `pre` where it
    runs on the device without waiting (_device_denominator, which out= arrays bufs rule out as on
    the general path: the caller takes pre.denom afterwards, and where _mean_scales_weights says so
    makes the call again on the general path, waiting for the pass: device_denominator False); None
    where the pass reports an error or the mean must scale the weights (_mean_scales_weights, of
    the caller's sample_weight): the general path's cases."""
    ii, has_ig = (-1, False) if ignore_index is None else (ignore_index, True)
    rep, ln = bkw.get("sw_rep", 1), bkw.get("sw_len", -1)   # (binary weights that repeat)
    if _device_denominator(backend, n, bufs):
        return float(n), dict(bkw, pre=backend.weight_sum_enqueue(labels, sw, cw, C, ii, has_ig, n, cdt is _F64,
                                                                  rep, ln, mean=reduction == "mean"))
    denom, err, _, _ = backend.weight_sum(labels, sw, cw, C, ii, has_ig, n, cdt is _F64, n_threads, rep, ln)
    if err or _mean_scales_weights(denom, reduction, cdt, sample_weight, xp):
        return None
    return denom, bkw


def _binary_plain(y_true, y_pred, sample_weight, w1, w0: float, from_logits: bool, gamma: float, eps: float,
                  reduction: str, grad: bool, hess: bool, n_threads, out):
    """_binary_here's result for a plain call (y_pred of _plain_type, checked by the caller; sample
    weights as _plain_weights or _plain_weight_pattern says; out= as _plain_out says; w1, w0 as
    _binary_here takes them: w1 None or a float64 host array the caller has checked, pos_weight's
    or alpha's), None for any other call or a call that fails (w1 past the compute dtype's range
    included). The labels have y_pred's dtype (_plain_dtypes: on the GPU also float16 or
    bfloat16), or one that _binary_here hands the kernels as it is (the compute dtype; a dtype of
    _native_binary_labels: int64, bool, ...)."""
    dts = _plain_dtypes(y_pred)
    if dts is None:
        return None
    cdt, sdt = dts
    shape = y_pred.shape
    if not (type(y_true) is type(y_pred) and y_true.shape == shape and y_pred.flags.c_contiguous
            and y_true.flags.c_contiguous and _plain_context()):
        return None
    if sample_weight is not None and not _plain_weights(sample_weight, y_pred, shape):
        swkw = _plain_weight_pattern(sample_weight, y_pred, shape)
        if swkw is None:
            return None
    else:
        swkw = _NO_KW
    found = _plain_backend(y_true, y_pred, sample_weight)
    if found is None:
        return None
    backend, empty, xp, bkw = found
    if swkw:   # (the backend's keywords, with the weights' pattern: for the pre-pass and the main kernel)
        bkw = {**bkw, **swkw}
    bufs = _NO_OUT if out is None else _plain_out(out, xp, reduction, grad, hess, shape, shape, cdt, sdt, (
        ("y_true", y_true), ("y_pred", y_pred), ("sample_weight", sample_weight)))
    if bufs is None:
        return None
    yd = y_true.dtype
    if not (yd is sdt or yd == sdt):   # labels the general path hands on as they are, or none
        ydt = _binary_label_dtype(yd, sdt, cdt)
        if not (yd == ydt or _native_binary_labels(backend, y_true, y_pred, ydt)):
            return None
    w1c = None
    if w1 is not None:
        if not _fits(w1, cdt):
            return None
        w1c = _small_on_device(w1.reshape(-1), cdt, xp)
    n = y_pred.size
    denom = float(n)
    sw = None
    if sample_weight is not None:
        if not _plain_weight_dtype(sample_weight, cdt, backend, True):
            return None
        sw = sample_weight if sample_weight.ndim == 1 else sample_weight.reshape(-1)
        passed = _plain_weight_pass(backend, None, sw, None, 0, None, n, cdt, reduction, n_threads, bkw, bufs,
                                    sample_weight, xp)
        if passed is None:
            return None
        denom, bkw = passed
    # the CUDA kernels take the arrays in any shape (`plain`); the CPU ones 1-D, and a reshape that
    # changes nothing still costs CuPy a microsecond or two
    flat = len(shape) == 1 or "plain" in bkw
    oshape = shape if flat else (n,)
    loss_arr = _into(bufs.loss, empty, oshape, cdt) if reduction == "none" else None
    grad_arr = _into(bufs.grad, empty, oshape, sdt) if grad else None
    hess_arr = _into(bufs.hess, empty, oshape, sdt) if hess else None
    scalar = _device_scalar(xp, reduction, cdt, denom)
    total, err, _, _ = backend.binary(y_true if flat else y_true.reshape(-1), y_pred if flat else y_pred.reshape(-1),
                                      sw, w1c, w0, eps,
                                      _gamma_in(gamma, cdt), _mean_scale(denom) if reduction == "mean" else 1.0,
                                      from_logits,
                                      loss_arr, grad_arr, hess_arr, cdt is _F64, n_threads, **scalar, **bkw)
    if err:
        return None
    if "pre" in bkw:
        if _mean_scales_weights(bkw["pre"].denom, reduction, cdt, sample_weight, xp):   # again, waiting
            return _binary_here(y_true, y_pred, from_logits=from_logits, w1=w1, w0=w0, gamma=gamma,
                                sample_weight=sample_weight, label_smoothing=eps, reduction=reduction, grad=grad,
                                hess=hess, n_threads=n_threads, device_denominator=False)
        denom = bkw["pre"].denom
    return _plain_result(total, denom, reduction, cdt, loss_arr, shape, grad_arr, hess_arr, shape, scalar, bufs)


def _categorical_plain(y_true, y_pred, sample_weight, class_weight, alpha, axis, gamma: float, kw: dict, out):
    """_categorical_here's result for a plain call (y_pred of _plain_type, checked by the caller;
    kw: _categorical_args, any ignore_index; sample weights as _plain_weights says; out= as
    _plain_out says; class weights as the caller passed them, taken where _small_weights takes them;
    alpha None or as focal_loss checked it; integer labels, in int64 for the kernels), None for any
    other call or a call that fails (dtypes: _plain_dtypes). Sample weights, and a mean with class
    weights or ignore_index, take the general path's weight pre-pass (_plain_weight_pass)."""
    dts = _plain_dtypes(y_pred)
    if dts is None:
        return None
    cdt, sdt = dts
    ld = y_true.dtype if type(y_true) is type(y_pred) else None
    # integer labels: int64 as they are; those of another integer dtype (int32, uint8, ...) as the
    # general path converts them (uint64 past int64 aside: its own check)
    if not ((ld is _I64 or (ld is not None and ld.kind in "iu" and not (ld.kind == "u" and ld.itemsize == 8)))
            and type(axis) is int and y_pred.size
            and y_pred.flags.c_contiguous and y_true.flags.c_contiguous and _plain_context()):
        return None
    shape = y_pred.shape
    nd = len(shape)
    if not -nd <= axis < nd:
        return None
    ax = axis % nd
    C = shape[ax]
    sample_shape = shape[:ax] + shape[ax + 1:]
    if y_true.shape != sample_shape or not _plain_weights(sample_weight, y_pred, sample_shape):
        return None
    found = _plain_backend(y_true, y_pred, sample_weight)
    if found is None or (found[2] is not np and not kw["from_logits"]):
        return None   # on the GPU from probabilities the general path checks the labels first
    backend, empty, xp, bkw = found
    reduction, grad, hess = kw["reduction"], kw["grad"], kw["hess"]
    bufs = _NO_OUT if out is None else _plain_out(out, xp, reduction, grad, hess, sample_shape, shape, cdt, sdt, (
        ("y_true", y_true), ("y_pred", y_pred), ("sample_weight", sample_weight)))
    if bufs is None:
        return None
    swk = sample_weight   # as the kernels read them: as they are, or (CPU) in the compute dtype
    if swk is not None and not _plain_weight_dtype(swk, cdt, backend, False):
        swk = _plain_weights_converted(swk, cdt, kw["n_threads"]) if xp is np else None
        if swk is None:
            return None
    if ld is not _I64:   # (after _plain_backend's look at their alignment: CuPy faults on misaligned elements)
        y_true = y_true.astype(np.int64)
    cwd = cwa = None
    if class_weight is not None or alpha is not None:
        try:   # (any error: the general path's, raised there in its order)
            if _namespace(y_pred=y_pred, class_weight=class_weight) is not xp:
                return None
            cw = _class_weights(class_weight, C, cdt, xp)
        except (TypeError, ValueError):
            return None
        # (a lifted mean's sums are both 2**-k of the caller's: their ratio is the mean; no sums sink here)
        cwd, cwa = _class_weight_arrays(_class_weight_lift(cw, cdt, reduction, grad or hess, True)[1], alpha, C,
                                        cdt, xp)
    n = y_pred.size // C
    inner = 1 if ax == nd - 1 else math.prod(shape[ax + 1:])
    dims = (n // inner, C, inner)
    if bkw:   # CUDA: y_pred and the derivatives as they are, with the view's dims (no reshape before or after)
        x3, gshape, bkw = y_pred, shape, {"plain": dims}
    else:
        x3, gshape = y_pred.reshape(dims), dims
    ignore_index = kw["ignore_index"]
    labels = y_true if y_true.ndim == 1 or bkw else y_true.reshape(-1)   # CUDA: any shape (`plain`)
    denom = float(n)
    sw = None if swk is None else swk if swk.ndim == 1 else swk.reshape(-1)
    if sw is not None or (reduction == "mean" and (ignore_index is not None or cwd is not None)):   # what counts
        passed = _plain_weight_pass(backend, labels if labels.ndim == 1 else labels.reshape(-1), sw, cwd, C,
                                    ignore_index, n, cdt, reduction, kw["n_threads"], bkw, bufs, sample_weight, xp)
        if passed is None:
            return None
        denom, bkw = passed
    loss_arr = _into(bufs.loss, empty, (n,), cdt) if reduction == "none" else None
    grad_arr = _into(bufs.grad, empty, gshape, sdt) if grad else None
    hess_arr = _into(bufs.hess, empty, gshape, sdt) if hess else None
    scalar = _device_scalar(xp, reduction, cdt, denom)
    total, err, _, _ = backend.softmax(x3, labels, None, sw, cwa, -1 if ignore_index is None else ignore_index,
                                       ignore_index is not None, kw["label_smoothing"], _gamma_in(gamma, cdt),
                                       _mean_scale(denom) if reduction == "mean" else 1.0, kw["from_logits"],
                                       loss_arr, grad_arr, hess_arr, cdt is _F64, kw["n_threads"], **scalar,
                                       **bkw)
    if err:
        return None
    if "pre" in bkw:
        if _mean_scales_weights(bkw["pre"].denom, reduction, cdt, sample_weight, xp):   # again, waiting
            return _categorical_here(y_true, y_pred, axis=axis, class_weight=class_weight, alpha=alpha,
                                     gamma=gamma, sample_weight=sample_weight, device_denominator=False, **kw)
        denom = bkw["pre"].denom
    return _plain_result(total, denom, reduction, cdt, loss_arr, sample_shape, grad_arr, hess_arr, shape, scalar,
                         bufs)


# --------------------------------------------------------------------------------------------
# Binary losses
# --------------------------------------------------------------------------------------------
_NO_DEVICE = contextlib.nullcontext()   # reusable: it holds nothing


def _on_device(y_pred):
    """The device context a call on CuPy arrays runs in: that of y_pred's data, so that its results
    and scratch arrays are made there, whichever device is current (nothing for other input)."""
    return y_pred.device if _is_cupy(y_pred) else _NO_DEVICE


def _binary_label_dtype(label_dtype, sdt, cdt):
    """The dtype binary labels are read in beside y_pred of storage dtype sdt and compute dtype cdt:
    16-bit beside 16-bit storage when that loses nothing (the same dtype, or integer and bool
    labels, whose values stay outside [0, 1] where they were), else the compute dtype (labels of
    another dtype are converted to it, unless the kernels read them as they are:
    _native_binary_labels)."""
    return sdt if sdt != cdt and (label_dtype == sdt or label_dtype.kind in "biu") else cdt


def _native_binary_labels(backend, yt, x, ydt) -> bool:
    """Whether the kernels read binary labels yt of another dtype than ydt as they are: a backend
    that can (BINARY_LABEL_DTYPES: the CPU kernels, the 16-bit backend, which hands them on a
    chunk at a time, and the CUDA kernels), a dtype it reads, and labels and y_pred both laid out
    with unit stride once flattened; for STRIDED_BINARY_LABELS (the CPU and CUDA kernels) also
    labels of one stride, which flatten to a view (a column of a matrix, y[::2])."""
    kinds = _capability(backend, "BINARY_LABEL_DTYPES", None)
    if not kinds or yt.dtype == ydt or yt.dtype not in kinds or not yt.dtype.isnative:
        return False
    if any(s % yt.itemsize for s in yt.strides):
        return False   # off their own elements' grid (a field of a record array): the kernels index by element
    if all(a.flags.c_contiguous for a in (yt, x)):
        return True
    return _capability(backend, "STRIDED_BINARY_LABELS", False) and _flattens_to_view(yt)


def _flattens_to_view(a) -> bool:
    """Whether a's elements lie one stride apart in C order (a column of a matrix, y[::2], the
    even columns of a matrix): then a.reshape(-1) is a view, not a copy."""
    dims = [(n, s) for n, s in zip(a.shape, a.strides) if n > 1]
    return all(s == s1 * n1 for (_, s), (n1, s1) in zip(dims, dims[1:]))


def _binary(y_true, y_pred, **kw):
    with _on_device(y_pred):
        return _binary_here(y_true, y_pred, **kw)


def _binary_here(y_true, y_pred, *, from_logits, w1, w0, gamma, sample_weight, label_smoothing, reduction,
                 grad, hess, n_threads, out=None, device_denominator=True):
    """device_denominator: as for _categorical_here."""
    xp = _namespace(y_true=y_true, y_pred=y_pred, sample_weight=sample_weight)
    pred = _real_array("y_pred", y_pred, xp)
    cdt = _compute_dtype(pred)
    gamma = _gamma_in(gamma, cdt)
    backend = _backend(xp, pred)
    sdt = _storage_dtype(backend, pred, cdt)
    x = _as_compute(pred, sdt, xp)
    yt = _real_array("y_true", y_true, xp)
    if yt.shape != pred.shape:
        raise ValueError(f"y_true: shape {yt.shape} does not match y_pred's shape {pred.shape}")
    ydt = _binary_label_dtype(yt.dtype, sdt, cdt)
    if _native_binary_labels(backend, yt, x, ydt):
        y = yt   # read as they are by the kernels (no cast of the whole array; no narrowing to check)
    else:
        y = _narrowed("y_true", yt, ydt, xp, n_threads)
    shape = pred.shape
    n = math.prod(shape)
    sw, swkw = _sample_weight(sample_weight, shape, cdt, xp, backend, binary=True, n_threads=n_threads)
    bufs = _NO_OUT if out is None else _output_buffers(
        out, xp, reduction=reduction, grad=grad, hess=hess, loss_shape=shape, shape=shape, cdt=cdt,
        res_dtype=_result_dtype(pred.dtype, cdt), inputs=(("y_true", yt), ("y_pred", pred), ("sample_weight", sw),
                                                          ("sample_weight", _caller_array(sample_weight))))
    denom = float(n)
    lift = 0
    pre = None
    if (sw is not None and device_denominator and _device_denominator(backend, n, bufs)
            and _fits(w1, cdt)):   # (else pos_weight's error, after the weights' own as below)
        pre = backend.weight_sum_enqueue(None, sw, None, 0, -1, False, n, cdt == _F64, mean=reduction == "mean",
                                         **swkw)
    elif sw is not None:
        denom, err, i, _ = _weight_total(backend, None, sw, None, 0, None, n, cdt, n_threads, **swkw)
        if err:
            _raise_binary(err, i, yt, pred, _full_weights(xp, sample_weight, shape, err))
        lift, lifted = _weight_lift(sample_weight, denom, cdt, xp, reduction, grad or hess)
        if lift:
            sw, swkw = _sample_weight(lifted, shape, cdt, xp, backend, binary=True, n_threads=n_threads)
            denom = _weight_total(backend, None, sw, None, 0, None, n, cdt, n_threads, **swkw)[0]
    _check_fits("pos_weight", w1, cdt)
    if _DENOM_ONLY.get():
        return _finish_denom(math.ldexp(denom, lift))
    own = math.ldexp(denom, lift)
    if pre is None:
        denom, ws, wexp = _mean_weights(xp, reduction, denom, cdt, () if sw is None else (sw,),
                                        lambda w: _weight_total(backend, None, w, None, 0, None, n, cdt, n_threads,
                                                                **swkw)[0], lift)
        sw = ws[0] if ws else sw
    else:
        wexp = 0   # (checked below, once the denominator is known)
    w1c = None if w1 is None else _small_on_device(w1.reshape(-1), cdt, xp)
    dscale = _mean_scale(denom) if reduction == "mean" else 1.0
    loss_arr = _buffer(xp, bufs.loss, (n,), cdt) if reduction == "none" else None
    grad_arr = _buffer(xp, bufs.grad, (n,), sdt) if grad else None
    hess_arr = _buffer(xp, bufs.hess, (n,), sdt) if hess else None
    scalar = _device_scalar(xp, reduction, cdt, denom)
    total, err, i, _ = backend.binary(y.reshape(-1), x.reshape(-1), sw, w1c, w0, label_smoothing, gamma,
                                      dscale, from_logits, loss_arr, grad_arr, hess_arr,
                                      cdt == _F64, n_threads, **scalar, **swkw, **({} if pre is None else {"pre": pre}))
    if err:
        _raise_binary(err, i, yt, pred, _full_weights(xp, sample_weight, shape, err))
    if pre is not None:
        denom = own = pre.denom
        if _mean_scales_weights(pre.denom, reduction, cdt, sample_weight, xp):
            return _binary_here(y_true, y_pred, from_logits=from_logits, w1=w1, w0=w0, gamma=gamma,
                                sample_weight=sample_weight, label_smoothing=label_smoothing, reduction=reduction,
                                grad=grad, hess=hess, n_threads=n_threads, out=out, device_denominator=False)
    return _finish(xp, total, denom, reduction, loss_arr, shape, grad_arr, hess_arr, shape, pred.dtype, cdt,
                   grad, hess, bufs, scalar, wexp, own)


@overload
def binary_cross_entropy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, from_logits: bool = ...,
                         pos_weight: Optional[npt.ArrayLike] = ...,
                         sample_weight: Optional[npt.ArrayLike] = ..., label_smoothing: float = ...,
                         reduction: str = ..., grad: Literal[True], hess: bool = ...,
                         n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> LossResult: ...
@overload
def binary_cross_entropy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, from_logits: bool = ...,
                         pos_weight: Optional[npt.ArrayLike] = ...,
                         sample_weight: Optional[npt.ArrayLike] = ..., label_smoothing: float = ...,
                         reduction: str = ..., grad: bool = ..., hess: Literal[True],
                         n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> LossResult: ...
@overload
def binary_cross_entropy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, from_logits: bool = ...,
                         pos_weight: Optional[npt.ArrayLike] = ...,
                         sample_weight: Optional[npt.ArrayLike] = ..., label_smoothing: float = ...,
                         reduction: str = ..., grad: bool = ..., hess: bool = ...,
                         n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> Any: ...
def binary_cross_entropy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, from_logits: bool = False,
                         pos_weight: Optional[npt.ArrayLike] = None,
                         sample_weight: Optional[npt.ArrayLike] = None, label_smoothing: float = 0.0,
                         reduction: str = "mean", grad: bool = False, hess: bool = False,
                         n_threads: Optional[int] = None,
        out: Optional[tuple] = None) -> Any:
    r"""Binary cross entropy, with its gradient and Hessian diagonal on request.

    Per element, with p the predicted probability (``sigmoid(y_pred)`` with ``from_logits``,
    computed in log space) and y the label,

    .. math:: l = -[\,w_+ \, y \log p + (1 - y) \log(1 - p)\,]

    where :math:`w_+` is ``pos_weight``. No clamping: p = 0 with y = 1 gives ``inf``.

    Parameters
    ----------
    y_true : array_like
        Labels in [0, 1] (hard or soft), the shape of ``y_pred``. Float, int or bool;
        bool, integer, float32 and float64 labels are read in their own dtype, without a
        converted copy, contiguous or strided in one dimension (a column of a matrix) (on the GPU
        beside float32 and float64 ``y_pred``; on the CPU beside float16 and bfloat16 too).
    y_pred : array_like
        Probabilities in [0, 1], or logits with ``from_logits=True``. float32 and float64 are
        computed natively, float16 and bfloat16 (``ml_dtypes.bfloat16``) in float32, anything
        else in float64.
    from_logits : bool, default False
        Whether ``y_pred`` holds logits.
    pos_weight : float or 1-D array, optional
        Weight of the positive term; a 1-D array has the length of ``y_pred.shape[-1]``
        (one weight per label of a multi-label problem).
    sample_weight : array_like, optional
        Per-element weights, broadcastable to ``y_pred.shape``. Weights that repeat (a
        scalar, one per row, one per label) are read as given, not broadcast to an array of
        ``y_pred``'s size (CPU and GPU).
    label_smoothing : float, default 0.0
        In [0, 1): labels become ``y * (1 - eps) + eps / 2``.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" is ``sum_i l_i / sum_i sample_weight_i``; "none" returns each element's
        weighted loss.
    grad, hess : bool, default False
        Also return the gradient / Hessian diagonal of the returned loss with respect to
        ``y_pred`` (including the ``1 / sum w`` factor of "mean").
    n_threads : int, optional
        Number of OpenMP threads; None uses the OpenMP default (``OMP_NUM_THREADS``).
    out : tuple (loss, grad, hess), optional
        Arrays to write the results into instead of new ones, in the order of
        :class:`LossResult` (so a previous result can be passed back); an entry is None, or an
        array of the result's shape and dtype, C-contiguous, writeable and not overlapping any
        input or other entry. The loss entry is used with ``reduction="none"`` only (with "mean"
        and "sum" it must be None or a scalar, which is ignored); the grad / hess entries need
        ``grad`` / ``hess``. The returned arrays are these objects. Without it, large results
        reuse the memory of results freed earlier (see :func:`buffer_cache`). See
        docs/semantics.md.

    Returns
    -------
    loss or LossResult
        The loss (NumPy scalar, or array with "none"); with ``grad`` or ``hess`` a
        :class:`LossResult` ``(loss, grad, hess)``.

    See Also
    --------
    binary_focal_loss : The same with the focal factor.
    cross_entropy : One class out of C (softmax).

    Examples
    --------
    >>> import numpy as np, xentc
    >>> y = np.array([1.0, 0.0, 1.0])
    >>> z = np.array([2.0, -1.0, -40.0])  # logits

    From logits the loss is softplus(-z) for a positive, softplus(z) for a negative:

    >>> loss = xentc.binary_cross_entropy(y, z, from_logits=True, reduction="none")
    >>> loss
    array([ 0.12692801,  0.31326169, 40.        ])
    >>> bool(np.allclose(loss, np.logaddexp(0, np.where(y == 1, -z, z))))
    True

    The gradient with respect to the logits is sigmoid(z) - y:

    >>> r = xentc.binary_cross_entropy(y, z, from_logits=True, reduction="none", grad=True)
    >>> r.grad
    array([-0.11920292,  0.26894142, -1.        ])

    A probability of 0 for a positive label is an infinite loss, not a clamped one:

    >>> xentc.binary_cross_entropy(np.array([1.0]), np.array([0.0]))
    np.float64(inf)
    """
    from_logits = _check_flag("from_logits", from_logits)
    grad = _check_flag("grad", grad)
    hess = _check_flag("hess", hess)
    reduction = _check_reduction(reduction)
    n_threads = _check_n_threads(n_threads)
    eps = _check_smoothing(label_smoothing)
    pw = None
    if pos_weight is not None:   # (y_pred's own checks are _binary's)
        xp = _namespace(y_true=y_true, y_pred=y_pred, pos_weight=pos_weight, sample_weight=sample_weight)
        last = _real_array("y_pred", y_pred, xp).shape[-1:] or (1,)
        pw = _small_weights("pos_weight", pos_weight, last[0], xp)
    if _plain_type(y_pred):
        r = _binary_plain(y_true, y_pred, sample_weight, pw, 1.0, from_logits, 0.0, eps, reduction, grad, hess,
                          n_threads, out)
        if r is not None:
            return r
    return _binary(y_true, y_pred, from_logits=from_logits, w1=pw, w0=1.0, gamma=0.0,
                   sample_weight=sample_weight, label_smoothing=eps, reduction=reduction, grad=grad, hess=hess,
                   n_threads=n_threads, out=out)


@overload
def binary_focal_loss(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, gamma: float = ...,
                      alpha: Optional[float] = ..., from_logits: bool = ...,
                      sample_weight: Optional[npt.ArrayLike] = ..., label_smoothing: float = ...,
                      reduction: str = ..., grad: Literal[True], hess: bool = ...,
                      n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> LossResult: ...
@overload
def binary_focal_loss(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, gamma: float = ...,
                      alpha: Optional[float] = ..., from_logits: bool = ...,
                      sample_weight: Optional[npt.ArrayLike] = ..., label_smoothing: float = ...,
                      reduction: str = ..., grad: bool = ..., hess: Literal[True],
                      n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> LossResult: ...
@overload
def binary_focal_loss(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, gamma: float = ...,
                      alpha: Optional[float] = ..., from_logits: bool = ...,
                      sample_weight: Optional[npt.ArrayLike] = ..., label_smoothing: float = ...,
                      reduction: str = ..., grad: bool = ..., hess: bool = ..., n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> Any: ...
def binary_focal_loss(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, gamma: float = 2.0,
                      alpha: Optional[float] = None, from_logits: bool = False,
                      sample_weight: Optional[npt.ArrayLike] = None, label_smoothing: float = 0.0,
                      reduction: str = "mean", grad: bool = False, hess: bool = False,
                      n_threads: Optional[int] = None,
        out: Optional[tuple] = None) -> Any:
    r"""Binary focal loss (Lin et al. 2017), with its gradient and Hessian diagonal on request.

    .. math:: l = -[\,a\, y (1-p)^\gamma \log p + (1-a)(1-y)\, p^\gamma \log(1-p)\,]

    With ``alpha=None`` both sides have weight 1. ``gamma=0`` reproduces
    :func:`binary_cross_entropy` bit for bit.

    Parameters
    ----------
    y_true, y_pred : array_like
        As in :func:`binary_cross_entropy`.
    gamma : float, default 2.0
        Focusing parameter, finite and >= 0.
    alpha : float, optional
        Weight of the positive side in [0, 1]; the negative side gets ``1 - alpha``.
    from_logits, sample_weight, label_smoothing, reduction, grad, hess, n_threads, out
        As in :func:`binary_cross_entropy`.

    Returns
    -------
    loss or LossResult
        As in :func:`binary_cross_entropy`.

    See Also
    --------
    binary_cross_entropy : The ``gamma=0`` case.
    focal_loss : The categorical focal loss.

    Examples
    --------
    >>> import numpy as np, xentc
    >>> y = np.array([1.0, 0.0])
    >>> p = np.array([0.9, 0.2])  # probabilities
    >>> loss = xentc.binary_focal_loss(y, p, gamma=2.0, reduction="none")
    >>> loss
    array([0.00105361, 0.00892574])
    >>> bool(np.allclose(loss, [-(1 - 0.9)**2 * np.log(0.9), -0.2**2 * np.log(1 - 0.2)]))
    True
    >>> bool(xentc.binary_focal_loss(y, p, gamma=0.0) == xentc.binary_cross_entropy(y, p))
    True
    """
    from_logits = _check_flag("from_logits", from_logits)
    grad = _check_flag("grad", grad)
    hess = _check_flag("hess", hess)
    reduction = _check_reduction(reduction)
    n_threads = _check_n_threads(n_threads)
    eps = _check_smoothing(label_smoothing)
    g = _check_gamma(gamma)
    if alpha is None:
        w1, w0 = None, 1.0
    else:
        a = _check_real("alpha", alpha)
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {alpha!r}")
        w1, w0 = np.array([a]), 1.0 - a
    if _plain_type(y_pred):
        r = _binary_plain(y_true, y_pred, sample_weight, w1, w0, from_logits, g, eps, reduction, grad, hess, n_threads,
                          out)
        if r is not None:
            return r
    return _binary(y_true, y_pred, from_logits=from_logits, w1=w1, w0=w0, gamma=g, sample_weight=sample_weight,
                   label_smoothing=eps, reduction=reduction, grad=grad, hess=hess, n_threads=n_threads, out=out)


# --------------------------------------------------------------------------------------------
# Categorical losses
# --------------------------------------------------------------------------------------------
def _categorical(y_true, y_pred, **kw):
    with _on_device(y_pred):
        return _categorical_here(y_true, y_pred, **kw)


def _categorical_here(y_true, y_pred, *, from_logits, axis, class_weight, alpha, gamma, sample_weight,
                      ignore_index, label_smoothing, reduction, grad, hess, n_threads, out=None,
                      device_denominator=True):
    """device_denominator: the weight pre-pass may leave its sum on the device (_device_denominator);
    False for the call again where the mean needs the weights scaled."""
    xp = _namespace(y_true=y_true, y_pred=y_pred, class_weight=class_weight, sample_weight=sample_weight)
    pred = _real_array("y_pred", y_pred, xp)
    if pred.ndim == 0:
        raise ValueError("y_pred: expected an array with a class axis, got a 0-d array")
    try:
        if isinstance(axis, (bool, np.bool_)):
            raise TypeError
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis: expected an int, got {axis!r}") from None
    if not -pred.ndim <= ax < pred.ndim:
        raise ValueError(f"axis: {axis} is out of range for y_pred with {pred.ndim} dimensions")
    ax %= pred.ndim
    shape = pred.shape
    C = shape[ax]
    if C == 0:
        raise ValueError("y_pred: the class axis has length 0")
    sample_shape = shape[:ax] + shape[ax + 1:]
    outer = math.prod(shape[:ax])
    inner = math.prod(shape[ax + 1:])
    cdt = _compute_dtype(pred)
    gamma = _gamma_in(gamma, cdt)
    backend = _backend(xp, pred)
    sdt = _storage_dtype(backend, pred, cdt)
    yt = _real_array("y_true", y_true, xp)
    if yt.dtype.kind in "iu":
        if yt.shape != sample_shape:
            raise ValueError(f"y_true: integer labels must have shape {sample_shape} (y_pred's shape without "
                             f"axis {ax}), got {yt.shape}")
        if yt.dtype.kind == "u" and yt.dtype.itemsize == 8 and yt.size:   # past int64: no cast may wrap them
            big = (yt > np.iinfo(np.int64).max).reshape(-1)
            if bool(big.any()):
                i = int(big.argmax())
                raise ValueError(f"y_true: label {int(yt.reshape(-1)[i])} at index {i} is outside [0, {C})")
        labels = xp.ascontiguousarray(yt.astype(np.int64) if yt.dtype != _I64 or not yt.dtype.isnative
                                      else yt).reshape(-1)
        ysoft = None
    else:
        if yt.shape != shape:
            if yt.shape == sample_shape:
                raise TypeError(f"y_true: class labels of shape {sample_shape} must have an integer dtype, "
                                f"got {yt.dtype}")
            raise ValueError(f"y_true: shape {yt.shape} matches neither y_pred's shape {shape} (soft labels) "
                             f"nor {sample_shape} (integer labels)")
        if ignore_index is not None:
            raise ValueError("ignore_index: only valid with integer labels, got soft labels")
        labels = None
        ydt, sdt = _soft_label_dtypes(backend, yt.dtype, sdt, cdt)
        ysoft = _narrowed("y_true", yt, ydt, xp, n_threads).reshape(outer, C, inner)
    x3 = _as_compute(pred, sdt, xp).reshape(outer, C, inner)
    lift, cw = _class_weight_lift(_class_weights(class_weight, C, cdt, xp), cdt, reduction, grad or hess,
                                  labels is not None)
    cwd, cwa = _class_weight_arrays(cw, alpha, C, cdt, xp)
    n = outer * inner
    sw, _ = _sample_weight(sample_weight, sample_shape, cdt, xp, backend, binary=False, n_threads=n_threads)
    bufs = _NO_OUT if out is None else _output_buffers(
        out, xp, reduction=reduction, grad=grad, hess=hess, loss_shape=sample_shape, shape=shape, cdt=cdt,
        res_dtype=_result_dtype(pred.dtype, cdt), inputs=(("y_true", yt), ("y_pred", pred), ("sample_weight", sw),
                                                          ("sample_weight", _caller_array(sample_weight))))
    denom = float(n)
    pre = None
    if sw is not None or (labels is not None and not _labels_checked_in_kernel(backend, cwd, ignore_index,
                                                                               from_logits, reduction)):
        if device_denominator and _device_denominator(backend, n, bufs):
            pre = backend.weight_sum_enqueue(labels, sw, cwd, C, -1 if ignore_index is None else ignore_index,
                                             ignore_index is not None, n, cdt == _F64, mean=reduction == "mean")
        else:
            denom, err, i, j = _weight_total(backend, labels, sw, cwd, C, ignore_index, n, cdt, n_threads)
            if err:
                _weight_error_first(xp, sample_weight, sample_shape, cdt, err)
                _raise_categorical(err, i, j, yt, pred, ax, _full_weights(xp, sample_weight, sample_shape, err))
    if sw is not None and pre is None:
        slift, lifted = _weight_lift(sample_weight, denom, cdt, xp, reduction, grad or hess)
        if slift:
            sw, _ = _sample_weight(lifted, sample_shape, cdt, xp, backend, binary=False, n_threads=n_threads)
            denom = _weight_total(backend, labels, sw, cwd, C, ignore_index, n, cdt, n_threads)[0]
            lift += slift
    if _DENOM_ONLY.get():
        return _finish_denom(math.ldexp(denom, lift))
    own = math.ldexp(denom, lift)
    # extreme weights: a power of two out of the sample weights, else out of the class weights (both
    # sides of the mean have them), also where the sample weights cannot give it (one would
    # overflow: subnormal class weights beside ordinary sample weights)
    if pre is not None:
        wexp = lift   # (the sum's own scaling checked below, once it is known)
    elif sw is not None:
        denom, ws, wexp = _mean_weights(xp, reduction, denom, cdt, (sw,), lambda w: _weight_total(
            backend, labels, w, cwd, C, ignore_index, n, cdt, n_threads)[0], lift)
        sw = ws[0]
        if reduction == "mean" and cwd is not None and _mean_weight_exponent(denom, cdt):
            denom, ws, wexp = _mean_weights(xp, reduction, denom, cdt, (cwd, cwa), lambda w, _: _weight_total(
                backend, labels, sw, w, C, ignore_index, n, cdt, n_threads)[0], wexp)
            cwd, cwa = ws
    else:
        denom, ws, wexp = _mean_weights(xp, reduction, denom, cdt, () if cwd is None else (cwd, cwa),
                                        lambda w, _: _weight_total(backend, labels, None, w, C, ignore_index, n,
                                                                   cdt, n_threads)[0], lift)
        cwd, cwa = ws if ws else (cwd, cwa)
    dscale = _mean_scale(denom) if reduction == "mean" else 1.0
    loss_arr = _buffer(xp, bufs.loss, (n,), cdt) if reduction == "none" else None
    grad_arr = _buffer(xp, bufs.grad, (outer, C, inner), sdt) if grad else None
    hess_arr = _buffer(xp, bufs.hess, (outer, C, inner), sdt) if hess else None
    scalar = _device_scalar(xp, reduction, cdt, denom)
    total, err, i, j = backend.softmax(x3, labels, ysoft, sw, cwa, -1 if ignore_index is None else ignore_index,
                                       ignore_index is not None, label_smoothing, gamma, dscale, from_logits,
                                       loss_arr, grad_arr, hess_arr, cdt == _F64, n_threads, **scalar,
                                       **({} if pre is None else {"pre": pre}))
    if err:
        _weight_error_first(xp, sample_weight, sample_shape, cdt, err)
        _raise_categorical(err, i, j, yt, pred, ax, _full_weights(xp, sample_weight, sample_shape, err))
    if pre is not None:
        denom = pre.denom
        own = math.ldexp(denom, lift)
        if _mean_scales_weights(pre.denom, reduction, cdt, sample_weight, xp):
            return _categorical_here(y_true, y_pred, from_logits=from_logits, axis=axis, class_weight=class_weight,
                                     alpha=alpha, gamma=gamma, sample_weight=sample_weight,
                                     ignore_index=ignore_index, label_smoothing=label_smoothing,
                                     reduction=reduction, grad=grad, hess=hess, n_threads=n_threads, out=out,
                                     device_denominator=False)
    return _finish(xp, total, denom, reduction, loss_arr, sample_shape, grad_arr, hess_arr, shape, pred.dtype,
                   cdt, grad, hess, bufs, scalar, wexp, own)


def _class_weights(class_weight, C: int, cdt, xp):
    """class_weight as a checked float64 host array (None for none): a 1-D array of length C,
    finite and non-negative (_small_weights) and finite in the compute dtype (_check_fits)."""
    cw = _small_weights("class_weight", class_weight, C, xp)
    if cw is not None and cw.ndim == 0:
        raise ValueError(f"class_weight: expected a 1-D array of length {C}, got a scalar")
    _check_fits("class_weight", cw, cdt)
    return cw


def _class_weight_arrays(cw, alpha, C: int, cdt, xp):
    """(class weights, class weights times alpha) as the kernels take them, in the compute dtype on
    xp's device, from checked float64 host arrays (cw: None or of length C; alpha: None, a scalar
    or of length C): the weight pre-pass's and the softmax kernels'; (None, None) for neither, and
    one array for both where there is no alpha (the kernels only read them)."""
    if cw is None and alpha is None:
        return None, None
    if alpha is None:
        cwd = _small_on_device(cw, cdt, xp)
        return cwd, cwd
    cwa = alpha if cw is None else cw * alpha
    if cwa.shape != (C,):   # a scalar alpha (np.full: a microsecond; np.broadcast_to takes four)
        cwa = np.full(C, cwa)
    return None if cw is None else _small_on_device(cw, cdt, xp), _small_on_device(cwa, cdt, xp)


def _small_on_device(w, cdt, xp):
    """A checked float64 host weight vector (pos_weight, class weights) as the kernels read it: in
    the compute dtype, contiguous, on xp's current device."""
    return xp.asarray(np.ascontiguousarray(w, dtype=cdt))


def _categorical_args(from_logits, reduction, grad, hess, n_threads, label_smoothing, ignore_index):
    return dict(from_logits=_check_flag("from_logits", from_logits), grad=_check_flag("grad", grad),
                hess=_check_flag("hess", hess), reduction=_check_reduction(reduction),
                n_threads=_check_n_threads(n_threads), label_smoothing=_check_smoothing(label_smoothing),
                ignore_index=_check_ignore_index(ignore_index))


@overload
def cross_entropy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, from_logits: bool = ..., axis: int = ...,
                  class_weight: Optional[npt.ArrayLike] = ..., sample_weight: Optional[npt.ArrayLike] = ...,
                  ignore_index: Optional[int] = ..., label_smoothing: float = ..., reduction: str = ...,
                  grad: Literal[True], hess: bool = ..., n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> LossResult: ...
@overload
def cross_entropy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, from_logits: bool = ..., axis: int = ...,
                  class_weight: Optional[npt.ArrayLike] = ..., sample_weight: Optional[npt.ArrayLike] = ...,
                  ignore_index: Optional[int] = ..., label_smoothing: float = ..., reduction: str = ...,
                  grad: bool = ..., hess: Literal[True], n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> LossResult: ...
@overload
def cross_entropy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, from_logits: bool = ..., axis: int = ...,
                  class_weight: Optional[npt.ArrayLike] = ..., sample_weight: Optional[npt.ArrayLike] = ...,
                  ignore_index: Optional[int] = ..., label_smoothing: float = ..., reduction: str = ...,
                  grad: bool = ..., hess: bool = ..., n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> Any: ...
def cross_entropy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, from_logits: bool = False, axis: int = -1,
                  class_weight: Optional[npt.ArrayLike] = None, sample_weight: Optional[npt.ArrayLike] = None,
                  ignore_index: Optional[int] = None, label_smoothing: float = 0.0, reduction: str = "mean",
                  grad: bool = False, hess: bool = False, n_threads: Optional[int] = None,
        out: Optional[tuple] = None) -> Any:
    r"""Categorical cross entropy, with its gradient and Hessian diagonal on request.

    Per sample, with P the predicted class probabilities (``softmax(y_pred)`` along ``axis``
    with ``from_logits``, computed in log space) and Y the labels (one-hot for integer labels),

    .. math:: l_i = -\sum_j cw_j \, Y_{ij} \log P_{ij}

    Parameters
    ----------
    y_true : array_like
        Integer class indices with the shape of ``y_pred`` without ``axis``, or float (soft,
        one-hot) labels in [0, 1] with the shape of ``y_pred``.
    y_pred : array_like
        Probabilities in [0, 1], or logits with ``from_logits=True``; classes along ``axis``.
    from_logits : bool, default False
        Whether ``y_pred`` holds logits (softmax along ``axis`` is applied in log space).
    axis : int, default -1
        The class axis; ``(N, C, H, W)`` inputs take ``axis=1``.
    class_weight : 1-D array of length C, optional
        Weight of each class, finite and >= 0.
    sample_weight : array_like, optional
        Per-sample weights, broadcastable to the shape of ``y_pred`` without ``axis``.
    ignore_index : int, optional
        With integer labels: samples with this label add nothing to the loss, gradient or the
        mean's denominator.
    label_smoothing : float, default 0.0
        In [0, 1): labels become ``Y * (1 - eps) + eps / C``.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" divides by ``sum_i sample_weight_i * class_weight[y_i]`` (integer labels) or
        ``sum_i sample_weight_i`` (soft labels), over samples not ignored; 0.0 if that is 0.
    grad, hess : bool, default False
        Also return the gradient / Hessian diagonal with respect to ``y_pred``.
    n_threads : int, optional
        Number of OpenMP threads; None uses the OpenMP default.
    out : tuple (loss, grad, hess), optional
        As in :func:`binary_cross_entropy` (shapes and dtype those of this call's results).

    Returns
    -------
    loss or LossResult
        The loss (NumPy scalar, or with "none" an array of the shape of ``y_pred`` without
        ``axis``); with ``grad`` or ``hess`` a :class:`LossResult` ``(loss, grad, hess)``
        whose ``grad`` and ``hess`` have the shape of ``y_pred``.

    See Also
    --------
    focal_loss : The same with the focal factor.
    binary_cross_entropy : Two classes, or independent labels.

    Examples
    --------
    >>> import numpy as np, xentc
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    >>> labels = np.array([0, 2])

    Each sample's loss is log-sum-exp of its logits minus the logit of its class:

    >>> loss = xentc.cross_entropy(labels, logits, from_logits=True, reduction="none")
    >>> loss
    array([0.2413113 , 0.09492296])
    >>> bool(np.allclose(loss, np.log(np.exp(logits).sum(axis=1)) - logits[[0, 1], labels]))
    True

    The gradient of the summed loss with respect to the logits is softmax minus one-hot:

    >>> r = xentc.cross_entropy(labels, logits, from_logits=True, reduction="sum", grad=True)
    >>> softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    >>> bool(np.allclose(r.grad, softmax - np.eye(3)[labels]))
    True
    """
    kw = _categorical_args(from_logits, reduction, grad, hess, n_threads, label_smoothing, ignore_index)
    if _plain_type(y_pred):
        r = _categorical_plain(y_true, y_pred, sample_weight, class_weight, None, axis, 0.0, kw, out)
        if r is not None:
            return r
    return _categorical(y_true, y_pred, axis=axis, class_weight=class_weight, alpha=None, gamma=0.0,
                        sample_weight=sample_weight, out=out, **kw)


@overload
def focal_loss(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, gamma: float = ...,
               alpha: Optional[npt.ArrayLike] = ..., from_logits: bool = ..., axis: int = ...,
               class_weight: Optional[npt.ArrayLike] = ..., sample_weight: Optional[npt.ArrayLike] = ...,
               ignore_index: Optional[int] = ..., label_smoothing: float = ..., reduction: str = ...,
               grad: Literal[True], hess: bool = ..., n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> LossResult: ...
@overload
def focal_loss(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, gamma: float = ...,
               alpha: Optional[npt.ArrayLike] = ..., from_logits: bool = ..., axis: int = ...,
               class_weight: Optional[npt.ArrayLike] = ..., sample_weight: Optional[npt.ArrayLike] = ...,
               ignore_index: Optional[int] = ..., label_smoothing: float = ..., reduction: str = ...,
               grad: bool = ..., hess: Literal[True], n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> LossResult: ...
@overload
def focal_loss(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, gamma: float = ...,
               alpha: Optional[npt.ArrayLike] = ..., from_logits: bool = ..., axis: int = ...,
               class_weight: Optional[npt.ArrayLike] = ..., sample_weight: Optional[npt.ArrayLike] = ...,
               ignore_index: Optional[int] = ..., label_smoothing: float = ..., reduction: str = ...,
               grad: bool = ..., hess: bool = ..., n_threads: Optional[int] = ...,
        out: Optional[tuple] = ...) -> Any: ...
def focal_loss(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, gamma: float = 2.0,
               alpha: Optional[npt.ArrayLike] = None, from_logits: bool = False, axis: int = -1,
               class_weight: Optional[npt.ArrayLike] = None, sample_weight: Optional[npt.ArrayLike] = None,
               ignore_index: Optional[int] = None, label_smoothing: float = 0.0, reduction: str = "mean",
               grad: bool = False, hess: bool = False, n_threads: Optional[int] = None,
        out: Optional[tuple] = None) -> Any:
    r"""Categorical focal loss, with its gradient and Hessian diagonal on request.

    .. math:: l_i = -\sum_j a_j \, cw_j \, Y_{ij} (1 - P_{ij})^\gamma \log P_{ij}

    ``gamma=0`` (with ``alpha=None``) reproduces :func:`cross_entropy` bit for bit.

    Parameters
    ----------
    y_true, y_pred : array_like
        As in :func:`cross_entropy`.
    gamma : float, default 2.0
        Focusing parameter, finite and >= 0.
    alpha : float or 1-D array of length C, optional
        Per-class weight in [0, 1] (a scalar weights every class alike). Unlike
        ``class_weight`` it does not enter the mean's denominator.
    from_logits, axis, class_weight, sample_weight, ignore_index
        As in :func:`cross_entropy`.
    label_smoothing, reduction, grad, hess, n_threads, out
        As in :func:`cross_entropy`.

    Returns
    -------
    loss or LossResult
        As in :func:`cross_entropy`.

    See Also
    --------
    cross_entropy : The ``gamma=0`` case.
    binary_focal_loss : Two classes, or independent labels.

    Examples
    --------
    >>> import numpy as np, xentc
    >>> P = np.array([[0.7, 0.2, 0.1]])  # probabilities of 3 classes
    >>> loss = xentc.focal_loss(np.array([0]), P, gamma=2.0, reduction="none")
    >>> loss
    array([0.03210074])
    >>> bool(np.allclose(loss, -(1 - 0.7)**2 * np.log(0.7)))
    True
    >>> bool(xentc.focal_loss(np.array([0]), P, gamma=0.0) == xentc.cross_entropy(np.array([0]), P))
    True
    """
    kw = _categorical_args(from_logits, reduction, grad, hess, n_threads, label_smoothing, ignore_index)
    g = _check_gamma(gamma)
    a = None
    if alpha is not None:
        xp = _namespace(y_true=y_true, y_pred=y_pred, alpha=alpha)
        pred = _real_array("y_pred", y_pred, xp)
        if pred.ndim == 0:
            raise ValueError("y_pred: expected an array with a class axis, got a 0-d array")
        try:
            C = pred.shape[operator.index(axis)]
        except (TypeError, IndexError):
            C = None  # reported by the axis check
        a = _small_weights("alpha", alpha, C, xp, upper=1.0, what="in [0, 1]")
    if _plain_type(y_pred):
        r = _categorical_plain(y_true, y_pred, sample_weight, class_weight, a, axis, g, kw, out)
        if r is not None:
            return r
    return _categorical(y_true, y_pred, axis=axis, class_weight=class_weight, alpha=a, gamma=g,
                        sample_weight=sample_weight, out=out, **kw)
