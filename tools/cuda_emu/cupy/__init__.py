"""A fake ``cupy`` for the xentc CUDA emulator (tools/cuda_emu): never install it.

Arrays live in host memory: ``cupy.ndarray`` wraps a NumPy array (not a subclass: xentc tells
NumPy from CuPy arrays with isinstance(a, numpy.ndarray), which a subclass would pass), and
``a.data.ptr`` is the address of its first element, which the emulated kernels read and write.
As with the real CuPy, a NumPy array is never converted implicitly (``numpy.asarray(a)`` raises
TypeError: use ``a.get()`` or ``cupy.asnumpy``), NumPy and CuPy arrays do not mix in arithmetic,
indexing gives 0-d arrays rather than scalars, and new arrays are 256-byte aligned.

Kernels: cupy.cuda.compiler.compile_using_nvrtc builds them with g++ against emu.h (see
cupy/_emu.py); cupy.cuda.function.Module loads the result; cupy.RawModule does both.
"""
from __future__ import annotations

import math
import operator
import weakref
from typing import Any

import numpy

from . import _emu

# the emulator's identity goes into the version, which xentc's disk cache key includes
__version__ = "13.9.0+xentcemu." + _emu.emu_fingerprint()

_ALIGN = 256


# ----------------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------------
class MemoryPointer:
    __slots__ = ("ptr", "mem", "device_id")

    def __init__(self, ptr: int, mem=None):
        self.ptr = int(ptr)
        self.mem = mem
        self.device_id = 0

    def __int__(self):
        return self.ptr

    def __repr__(self):
        return f"<MemoryPointer 0x{self.ptr:x} (host memory, emulated device 0)>"


# Arrays already reported to memory hooks (cupy.cuda.MemoryHook): while a hook is active, every
# new device array is reported once, whether made by _alloc or by a NumPy operation behind a
# CuPy one (an array that owns its data, seen for the first time in _from_numpy).
_reported: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()   # id -> array


def _report_new(a: numpy.ndarray) -> None:
    from .cuda import memory_hook

    if memory_hook._active() and _reported.get(id(a)) is not a:
        _reported[id(a)] = a
        memory_hook.report(a.nbytes)


def _alloc(shape, dtype, order="C") -> numpy.ndarray:
    """A new host array standing in for device memory: 256-byte aligned like CuPy's pool (under
    AddressSanitizer exactly sized, so that the red zones sit right after the data)."""
    dtype = numpy.dtype(dtype)
    if isinstance(shape, (int, numpy.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    order = "F" if order == "F" else "C"
    if _emu.asan():
        out = numpy.empty(shape, dtype, order=order)
    else:
        nbytes = math.prod(shape) * dtype.itemsize
        raw = numpy.empty(nbytes + _ALIGN, numpy.uint8)
        off = (-raw.ctypes.data) % _ALIGN
        out = numpy.ndarray(shape, dtype=dtype, buffer=raw, offset=off, order=order)
    _report_new(out)
    return out


def _fresh_copy(a: numpy.ndarray, dtype=None, order="K") -> numpy.ndarray:
    """A copy of a host array in new 'device' memory."""
    dtype = a.dtype if dtype is None else numpy.dtype(dtype)
    if order == "K":
        order = "F" if (a.flags.f_contiguous and not a.flags.c_contiguous and a.ndim > 1) else "C"
    elif order == "A":
        order = "F" if (a.flags.f_contiguous and not a.flags.c_contiguous) else "C"
    out = _alloc(a.shape, dtype, order)
    numpy.copyto(out, a, casting="unsafe")
    return out


def _unwrap(v):
    if isinstance(v, ndarray):
        return v._a
    if isinstance(v, (list, tuple)):
        return type(v)(_unwrap(x) for x in v)
    if isinstance(v, dict):
        return {k: _unwrap(x) for k, x in v.items()}
    return v


def _wrap(v):
    if isinstance(v, numpy.ndarray):
        return ndarray._from_numpy(v)
    if isinstance(v, numpy.generic):
        return ndarray._from_numpy(numpy.asarray(v))
    if isinstance(v, tuple):
        return tuple(_wrap(x) for x in v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


def _reject_numpy(args, what):
    for a in args:
        if isinstance(a, numpy.ndarray) and not isinstance(a, ndarray):
            raise TypeError(f"Unsupported type {type(a)} in {what}: NumPy and CuPy arrays cannot be mixed "
                            "(cupy.asarray moves an array to the device)")
        if isinstance(a, (list, tuple)):
            _reject_numpy(a, what)


class _Flags:
    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = a

    @property
    def c_contiguous(self):
        return bool(self._a.flags.c_contiguous)

    @property
    def f_contiguous(self):
        return bool(self._a.flags.f_contiguous)

    @property
    def owndata(self):
        return bool(self._a.flags.owndata)

    def __getitem__(self, k):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[k]

    def __repr__(self):
        return f"  C_CONTIGUOUS : {self.c_contiguous}\n  F_CONTIGUOUS : {self.f_contiguous}\n  OWNDATA : {self.owndata}"


# ----------------------------------------------------------------------------------------------
# The array
# ----------------------------------------------------------------------------------------------
class ndarray:
    """An array on the emulated device (host memory)."""

    __slots__ = ("_a", "_mp", "__weakref__")   # _mp: the MemoryPointer of .data, made once
    __array_priority__ = 100.0
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is None:
            if strides is not None:
                raise NotImplementedError("cupy emulator: ndarray(strides=...) without memptr is not supported")
            self._a = _alloc(shape, dtype, order)
            return
        # a view of the memory memptr points into (the array behind it: MemoryPointer.mem)
        owner = memptr.mem
        if not isinstance(owner, numpy.ndarray):
            raise NotImplementedError("cupy emulator: ndarray(memptr=...) needs a pointer from an array's .data")
        while isinstance(owner.base, numpy.ndarray):
            owner = owner.base
        start = owner.__array_interface__["data"][0]
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self._a = numpy.ndarray(shape, dtype=dtype, buffer=owner, offset=memptr.ptr - start, strides=strides)

    @classmethod
    def _from_numpy(cls, a: numpy.ndarray) -> "ndarray":
        obj = cls.__new__(cls)
        obj._a = a
        if a.flags.owndata:
            _report_new(a)
        return obj

    # --- attributes ----------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    strides = property(lambda self: self._a.strides)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: _Flags(self._a))
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(numpy.swapaxes(self._a, -1, -2)))
    real = property(lambda self: _wrap(self._a.real))
    imag = property(lambda self: _wrap(self._a.imag))

    @property
    def base(self):
        return None if self._a.base is None else _wrap(self._a.base)

    @property
    def data(self) -> MemoryPointer:
        # made once an array, as CuPy keeps its own (a new one each time made the emulator's
        # attribute 20x CuPy's, which skewed benchmarks/host_overhead.py's --stub-kernels times)
        try:
            return self._mp
        except AttributeError:
            self._mp = MemoryPointer(self._a.__array_interface__["data"][0], self._a)
            return self._mp

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    @property
    def __cuda_array_interface__(self):
        d = dict(self._a.__array_interface__)
        d["version"] = 3
        d["stream"] = 1
        return d

    # --- conversions ---------------------------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            numpy.copyto(out, self._a)
            return out
        return numpy.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        numpy.copyto(self._a, numpy.asarray(arr))

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        "a NumPy array explicitly.")

    def item(self, *args):
        return self._a.item(*args)

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return operator.index(self._a)

    def __complex__(self):
        return complex(self._a)

    def __bool__(self):
        return bool(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __repr__(self):
        return repr(self._a).replace("array(", "array(", 1)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a, spec) if self._a.ndim == 0 else str(self)

    # --- copies and views ----------------------------------------------------------------------
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        dtype = numpy.dtype(dtype)
        if not copy and dtype == self.dtype:
            return self
        if casting is not None:
            if not numpy.can_cast(self.dtype, dtype, casting):
                raise TypeError(f"Cannot cast array data from {self.dtype} to {dtype} according to the rule "
                                f"'{casting}'")
        return _wrap(_fresh_copy(self._a, dtype, order))

    def copy(self, order="C"):
        return _wrap(_fresh_copy(self._a, None, order))

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _wrap(self._a.reshape(shape, order=order))

    def view(self, dtype=None):
        return _wrap(self._a.view() if dtype is None else self._a.view(dtype))

    def ravel(self, order="C"):
        return _wrap(self._a.ravel(order))

    def flatten(self, order="C"):
        return _wrap(_fresh_copy(self._a.reshape(-1, order=order) if order != "K" else self._a.ravel("K")))

    def transpose(self, *axes):
        return _wrap(self._a.transpose(*axes))

    def fill(self, value):
        self._a.fill(_unwrap(value))

    def __getitem__(self, idx):
        r = self._a[_unwrap(idx)]
        return _wrap(r)

    def __setitem__(self, idx, value):
        self._a[_unwrap(idx)] = _unwrap(value)

    # --- NumPy protocols -------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _reject_numpy(inputs, f"{ufunc.__name__}")
        if "out" in kwargs:
            _reject_numpy(kwargs["out"], f"{ufunc.__name__}")
        r = getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs))
        if "out" in kwargs and method == "__call__":
            outs = kwargs["out"]
            return outs[0] if isinstance(outs, tuple) and len(outs) == 1 else outs
        return _wrap(r)

    def __array_function__(self, func, types, args, kwargs):
        if func is numpy.may_share_memory or func is numpy.shares_memory:
            return func(*_unwrap(args), **_unwrap(kwargs))
        _reject_numpy(args, func.__name__)
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # --- everything else (sum, max, any, argmax, ...): NumPy's method, results as arrays --------
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            def method(*args, **kwargs):
                _reject_numpy(args, name)
                return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
            method.__name__ = name
            return method
        return _wrap(attr)


def _binop(op):
    def f(self, other):
        if isinstance(other, numpy.ndarray) and not isinstance(other, ndarray) and other.ndim > 0:
            raise TypeError(f"Unsupported type {type(other)}: NumPy and CuPy arrays cannot be mixed")
        return _wrap(op(self._a, _unwrap(other)))
    return f


def _rbinop(op):
    def f(self, other):
        if isinstance(other, numpy.ndarray) and not isinstance(other, ndarray) and other.ndim > 0:
            raise TypeError(f"Unsupported type {type(other)}: NumPy and CuPy arrays cannot be mixed")
        return _wrap(op(_unwrap(other), self._a))
    return f


def _ibinop(op):
    def f(self, other):
        op(self._a, _unwrap(other))   # in place on the host array
        return self
    return f


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "lshift", "rshift",
           "matmul"):
    _op = getattr(operator, _n + "_" if _n in ("and", "or") else _n)
    setattr(ndarray, f"__{_n}__", _binop(_op))
    setattr(ndarray, f"__r{_n}__", _rbinop(_op))
    setattr(ndarray, f"__i{_n}__", _ibinop(getattr(operator, f"i{_n}")))
for _n in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(ndarray, f"__{_n}__", _binop(getattr(operator, _n)))
for _n in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_n}__", (lambda op: lambda self: _wrap(op(self._a)))(getattr(operator, _n)))
setattr(ndarray, "__divmod__", _binop(divmod))


# ----------------------------------------------------------------------------------------------
# Module functions
# ----------------------------------------------------------------------------------------------
def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    r = numpy.asarray(a, order=None if order == "K" else order)
    if out is not None:
        numpy.copyto(out, r)
        return out
    return r


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    if isinstance(obj, ndarray):
        host = obj._a
        if not copy and (dtype is None or numpy.dtype(dtype) == obj.dtype) and host.ndim >= ndmin:
            return obj
    else:
        host = numpy.asarray(obj)   # Python objects and NumPy arrays: an upload
    if ndmin > host.ndim:
        host = host.reshape((1,) * (ndmin - host.ndim) + host.shape)
    return _wrap(_fresh_copy(host, dtype, order))


def asarray(a, dtype=None, order=None, blocking=False):
    if isinstance(a, ndarray):
        if (dtype is None or numpy.dtype(dtype) == a.dtype) and (
                order in (None, "K", "A") or (order == "C" and a.flags.c_contiguous)
                or (order == "F" and a.flags.f_contiguous)):
            return a
        return _wrap(_fresh_copy(a._a, dtype, order or "K"))
    return array(a, dtype=dtype, copy=True, order=order or "K")


asanyarray = asarray


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray) and a.flags.c_contiguous and (dtype is None or numpy.dtype(dtype) == a.dtype):
        return a
    host = a._a if isinstance(a, ndarray) else numpy.asarray(a)
    if host.ndim == 0:
        host = host.reshape(1) if not isinstance(a, ndarray) else host
    return _wrap(_fresh_copy(host, dtype, "C"))


def asfortranarray(a, dtype=None):
    if isinstance(a, ndarray) and a.flags.f_contiguous and (dtype is None or numpy.dtype(dtype) == a.dtype):
        return a
    host = a._a if isinstance(a, ndarray) else numpy.asarray(a)
    return _wrap(_fresh_copy(host, dtype, "F"))


def empty(shape, dtype=float, order="C"):
    return _wrap(_alloc(shape, dtype, order))


def zeros(shape, dtype=float, order="C"):
    a = _alloc(shape, dtype, order)
    a.fill(0)
    return _wrap(a)


def ones(shape, dtype=float, order="C"):
    a = _alloc(shape, dtype, order)
    a.fill(1)
    return _wrap(a)


def full(shape, fill_value, dtype=None, order="C"):
    fill_value = _unwrap(fill_value)
    if dtype is None:
        dtype = numpy.asarray(fill_value).dtype
    a = _alloc(shape, dtype, order)
    a.fill(fill_value)
    return _wrap(a)


def _like_order(a, order):
    if order in ("K", "A"):
        return "F" if (a.flags.f_contiguous and not a.flags.c_contiguous) else "C"
    return order


def empty_like(a, dtype=None, order="K", subok=None, shape=None):
    return empty(a.shape if shape is None else shape, a.dtype if dtype is None else dtype, _like_order(a, order))


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    return zeros(a.shape if shape is None else shape, a.dtype if dtype is None else dtype, _like_order(a, order))


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    return ones(a.shape if shape is None else shape, a.dtype if dtype is None else dtype, _like_order(a, order))


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    return full(a.shape if shape is None else shape, fill_value, a.dtype if dtype is None else dtype,
                _like_order(a, order))


def broadcast_to(a, shape):
    if not isinstance(a, ndarray):
        a = asarray(a)
    return _wrap(numpy.broadcast_to(a._a, shape))


def copyto(dst, src, casting="same_kind", where=True):
    if not isinstance(dst, ndarray):
        raise TypeError(f"copyto: dst must be a cupy.ndarray, got {type(dst).__name__}")
    if isinstance(src, numpy.ndarray) and not isinstance(src, ndarray) and src.ndim > 0:
        raise TypeError("copyto: src is a NumPy array; NumPy and CuPy arrays cannot be mixed")
    numpy.copyto(dst._a, _unwrap(src), casting=casting, where=_unwrap(where))


def may_share_memory(a, b, max_work=None):
    if not (isinstance(a, ndarray) and isinstance(b, ndarray)):
        return False       # host and device memory never overlap
    return bool(numpy.may_share_memory(a._a, b._a))


def shares_memory(a, b, max_work=None):
    if not (isinstance(a, ndarray) and isinstance(b, ndarray)):
        return False
    return bool(numpy.shares_memory(a._a, b._a))


def get_array_module(*args):
    import numpy as _np
    return __import__(__name__) if any(isinstance(a, ndarray) for a in args) else _np


def isscalar(x):
    return numpy.isscalar(x)


def get_default_memory_pool():
    class _Pool:
        def free_all_blocks(self):
            pass

        def used_bytes(self):
            return 0

        def total_bytes(self):
            return 0
    return _Pool()


get_default_pinned_memory_pool = get_default_memory_pool


def RawModule(code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False, *,
              enable_cooperative_groups=False, name_expressions=None, jitify=False):
    """Compiles at construction (the real one compiles lazily); name_expressions are required."""
    from .cuda import function
    if code is None:
        with open(path, encoding="utf-8") as f:
            code = f.read()
    if not name_expressions:
        raise NotImplementedError("cupy emulator: RawModule needs name_expressions")
    from .cuda.compiler import compile_using_nvrtc
    data, mapping = compile_using_nvrtc(code, tuple(options), None, "kernel.cu",
                                        name_expressions=tuple(name_expressions))
    mod = function.Module()
    mod.load(data)
    return function._NamedModule(mod, mapping)


def RawKernel(code, name, options=(), backend="nvrtc", translate_cucomplex=False, *, enable_cooperative_groups=False,
              jitify=False):
    return RawModule(code=code, options=options, name_expressions=(name,)).get_function(name)


from . import cuda  # noqa: E402  (after ndarray: cuda.function refers back to it)


class _WrapResults:
    """An object whose methods return device arrays (NumPy's random generators, for
    cupy.random)."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def func(*args, **kwargs):
            return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))

        return func


class _Random(_WrapResults):
    """cupy.random: NumPy's, with device arrays out (default_rng gives such a generator)."""

    def default_rng(self, seed=None):
        return _WrapResults(numpy.random.default_rng(seed))


random = _Random(numpy.random)


def __getattr__(name: str) -> Any:
    """Everything else from NumPy: types and constants as they are, functions with their array
    results as device arrays (and NumPy array arguments refused, as CuPy does)."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        attr = getattr(numpy, name)
    except AttributeError:
        raise AttributeError(f"module 'cupy' (emulator) has no attribute {name!r}") from None
    if isinstance(attr, type) or not callable(attr):
        return attr

    def func(*args, **kwargs):
        _reject_numpy(args, name)
        return _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))

    func.__name__ = name
    func.__qualname__ = name
    return func

