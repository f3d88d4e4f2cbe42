"""xentc's four losses on Dask arrays, chunk by chunk.

Each chunk goes through the compiled kernel once (loss, and gradient/Hessian when asked). The
results are lazy Dask arrays:

* ``"mean"``/``"sum"``: a 0-d array. Every chunk reports the kernel's double-precision loss sum
  and the mean's denominator (sample weights, class weights of the labels, ignored samples
  left out) before any rounding; those are added with ``math.fsum`` (correctly rounded), so the
  result agrees with the in-memory one to a few units in the last place however the data are
  chunked.
* ``"none"``: the per-sample losses, chunked like the samples of ``y_pred``.
* ``grad``/``hess``: arrays with the shape, dtype and chunks of ``y_pred``. With ``"mean"`` the
  kernel scales every chunk's derivatives by ``1 / (total weight)`` of the whole array, as in
  memory (so no chunk sum overflows and nothing is rounded twice): the number of samples, or,
  with weights or ignored samples, a lazy sum from a first pass over the labels and weights
  (``y_pred`` is not read in it).
* Errors name the flat index in the whole argument, as the in-memory call does.

For the categorical losses a softmax needs whole rows: ``y_pred`` is rechunked to one chunk
along the class axis for the computation (the last axis likewise for a 1-D ``pos_weight``), and
the gradient rechunked back to the chunks of ``y_pred``. ``y_true`` and ``sample_weight`` may be Dask or NumPy arrays; they are chunked to
match ``y_pred``. ``from_npy`` opens a ``.npy`` file as a Dask array that each task reads
through a memory map, so arrays larger than memory are scored chunk by chunk.
"""
from __future__ import annotations

import math
import re
import string
from typing import Any

import dask.array as da
import numpy as np

from xentc import _api

__all__ = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss", "from_npy"]


class _NpySlices:
    """A .npy file that reads only the slices asked for, through a memory map opened per read.

    Pickling it sends the path, not the data, so workers of a cluster read their own chunks.
    """

    def __init__(self, path: str):
        self.path = str(path)
        m = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = m.shape, m.dtype, m.ndim

    def __getitem__(self, index):
        return np.array(np.load(self.path, mmap_mode="r")[index])  # copy, then unmap


def from_npy(path, chunks="auto") -> da.Array:
    """A Dask array over a ``.npy`` file, read chunk by chunk through a memory map.

    Parameters
    ----------
    path : str or path-like
        A file written by ``numpy.save`` (or ``numpy.lib.format.open_memmap``).
    chunks : see :func:`dask.array.from_array`

    Returns
    -------
    dask.array.Array
    """
    src = _NpySlices(path)
    return da.from_array(src, chunks=chunks, meta=np.empty((0,) * src.ndim, dtype=src.dtype))


def _offsets(index_arrays) -> list:
    """A chunk's start along each sample dimension, from its slices of the aranges _apply passes."""
    return [int(a[0]) if a.size else 0 for a in index_arrays]


def _global_message(msg: str, offsets: list, chunk_shapes: dict, full_shapes: dict, axis) -> str:
    """A loss function's error for one chunk, with the flat index counted in the whole argument
    (as the in-memory call reports it) instead of in the chunk."""
    name, sep, _ = msg.partition(": ")
    if not sep or name not in chunk_shapes:
        return msg
    shape, full = chunk_shapes[name], full_shapes[name]
    offs = list(offsets)
    if len(full) == len(offs) + 1:   # an array with the class axis, which is never split
        offs.insert(axis, 0)

    def move(m):
        if not full:
            return "at index 0"
        local = np.unravel_index(int(m.group(1)), shape)
        return f"at index {int(np.ravel_multi_index(tuple(int(i) + o for i, o in zip(local, offs)), full))}"

    return re.sub(r"at index (\d+)", move, msg, count=1)


def _call(func, y_true, y_pred, sample_weight, index_arrays, errors, **kwargs):
    """func on one chunk (through _api._call_with_sums), errors with whole-array indices."""
    try:
        return _api._call_with_sums(func, y_true, y_pred, sample_weight=sample_weight, **kwargs)
    except (ValueError, TypeError) as exc:
        chunk_shapes = {"y_pred": np.shape(y_pred), "y_true": np.shape(y_true),
                        "sample_weight": np.shape(sample_weight)}
        msg = _global_message(str(exc), _offsets(index_arrays), chunk_shapes, **errors)
        if msg == str(exc):
            raise
        raise type(exc)(msg) from None


def _block_denom(y_true, sample_weight, *index_arrays, loss_name, options, pred_dtype, C, axis, errors,
                 ndim_out):
    """The mean's denominator of one chunk, from its labels and weights alone (y_pred stands in as a
    broadcast zero of the chunk's shape: not read)."""
    shape = np.shape(y_true)
    if C is not None:   # integer labels: y_pred has the class axis too
        shape = shape[:axis] + (C,) + shape[axis:]
    y_pred = np.broadcast_to(np.zeros((), dtype=pred_dtype), shape)
    token = _api._DENOM_ONLY.set(True)
    try:
        _, _, denom = _call(getattr(_api, loss_name), y_true, y_pred, sample_weight, index_arrays, errors,
                            reduction="sum", **options)
    finally:
        _api._DENOM_ONLY.reset(token)
    return np.full((1,) * ndim_out, denom, dtype=np.float64)


def _block(y_pred, y_true, sample_weight, denom, *index_arrays, loss_name, options, reduction, grad, hess,
           errors, ndim_out):
    """One chunk through the kernel; the result travels as a 1-element object array. With a
    mean's derivatives, `denom` is the whole array's denominator, which scales them in the kernel
    (as in memory: no second rounding, no overflow of a chunk's sum)."""
    red = "none" if reduction == "none" else "mean" if denom is not None else "sum"
    token = _api._MEAN_DENOM.set(None if denom is None else float(np.asarray(denom).reshape(-1)[0]))
    try:
        res, total, own = _call(getattr(_api, loss_name), y_true, y_pred, sample_weight, index_arrays, errors,
                                reduction=red, grad=grad, hess=hess, for_mean=reduction == "mean", **options)
    finally:
        _api._MEAN_DENOM.reset(token)
    loss, g, h = res if (grad or hess) else (res, None, None)
    out = np.empty((1,) * ndim_out, dtype=object)
    out[(0,) * ndim_out] = (loss if red == "none" else None, g, h, total, own)
    return out


def _field(obj, *, index):
    """Field ``index`` of a chunk's result (0 loss, 1 grad, 2 hess, 3 the (sum, denominator) row)."""
    loss, g, h, total, denom = obj[(0,) * obj.ndim]
    if index == 3:
        return np.array([total, denom]).reshape((1,) * obj.ndim + (2,))
    return (loss, g, h)[index]


def _sum(values) -> float:
    """math.fsum of the chunks' double sums (losses or weights: never negative); inf where they
    add past the largest double."""
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def _denominator(values) -> float:
    """The whole array's total weight, from the chunks' (double) sums, where the mean of the
    chunks can be formed exactly: in memory a call takes a power of two out of weights whose sum
    is extreme, but the chunks' sums are doubles already, so a sum past the largest double or near
    its smallest normal is refused with what to do instead."""
    denom = _sum(values)
    if _api._mean_weight_exponent(denom, np.float64):
        raise ValueError(f"sample_weight: the total weight ({denom!r}) is too {'large' if denom > 1 else 'small'} "
                         "for xentc.dask to combine the chunks' sums exactly in float64; multiply the weights by "
                         "a power of two to bring their sum near 1 (the mean and its derivatives do not change)")
    return denom


def _combine(parts, *, reduction):
    """(sum, denominator) rows of every chunk -> the reduced loss."""
    rows = parts.reshape(-1, 2)
    total = _sum(rows[:, 0].tolist())
    if reduction == "sum":
        return np.array([total])
    return np.array([_api._mean_value(total, _denominator(rows[:, 1].tolist()))])


def _total_weight(parts):
    return np.array(_denominator(parts.reshape(-1).tolist()))


def _compute_dtype(dtype) -> np.dtype:
    return _api._compute_dtype(np.empty(0, dtype=dtype))


def _known_chunks(name: str, a: da.Array) -> None:
    if any(math.isnan(c) for cs in a.chunks for c in cs):
        raise ValueError(f"{name}: its chunk sizes are unknown (NaN); call .compute_chunk_sizes() on it first")


def _apply(name: str, y_true, y_pred, *, categorical: bool, sample_weight=None, reduction="mean",
           grad=False, hess=False, axis=-1, **options):
    reduction = _api._check_reduction(reduction)
    grad, hess = _api._check_flag("grad", grad), _api._check_flag("hess", hess)
    y_pred = da.asarray(y_pred)
    _known_chunks("y_pred", y_pred)
    nd = y_pred.ndim
    letters = string.ascii_lowercase[:nd]
    original_chunks = y_pred.chunks
    if categorical:
        if nd == 0:
            raise ValueError("y_pred: expected an array with a class axis, got a 0-d array")
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"axis: expected an int, got {axis!r}")
        if not -nd <= axis < nd:
            raise ValueError(f"axis: {axis} is out of range for y_pred with {nd} dimensions")
        ax = int(axis) % nd
        options["axis"] = ax
        if y_pred.numblocks[ax] > 1:
            y_pred = y_pred.rechunk({ax: -1})
        sample_letters = letters[:ax] + letters[ax + 1:]
        sample_shape = y_pred.shape[:ax] + y_pred.shape[ax + 1:]
    else:
        ax = None
        sample_letters, sample_shape = letters, y_pred.shape
        if np.ndim(options.get("pos_weight")) == 1 and nd and y_pred.numblocks[-1] > 1:
            y_pred = y_pred.rechunk({nd - 1: -1})  # one weight per column: chunks take whole rows
    y_true = da.asarray(y_true)
    _known_chunks("y_true", y_true)
    int_labels = categorical and y_true.dtype.kind in "iu"
    want = sample_shape if int_labels else y_pred.shape
    if y_true.shape != want:
        if categorical and y_true.shape == sample_shape:
            raise TypeError(f"y_true: class labels of shape {sample_shape} must have an integer dtype, "
                            f"got {y_true.dtype}")
        raise ValueError(f"y_true: shape {y_true.shape} does not match the expected {want} "
                         f"({'integer labels: y_pred without the class axis' if int_labels else 'the shape of y_pred'})")
    sample_chunks = tuple(c for i, c in enumerate(y_pred.chunks) if i != ax)
    y_true = y_true.rechunk(sample_chunks if int_labels else y_pred.chunks)
    y_true_letters = sample_letters if int_labels else letters
    sw, sw_args = None, [None, None]
    if sample_weight is not None:
        sw = da.asarray(sample_weight)
        _known_chunks("sample_weight", sw)
        try:
            sw = da.broadcast_to(sw, sample_shape)
        except ValueError:
            raise ValueError(f"sample_weight: shape {sw.shape} does not broadcast to the per-sample shape "
                             f"{sample_shape}") from None
        sw = sw.rechunk(sample_chunks)
        sw_args = [sw, sample_letters]
    # each chunk's start along each sample dimension (its slice of an arange), for error messages
    index_args = []
    for d, c in enumerate(sample_chunks):
        index_args += [da.arange(sum(c), chunks=(c,)), sample_letters[d]]
    errors = {"full_shapes": {"y_pred": y_pred.shape, "y_true": y_true.shape, "sample_weight": sample_shape},
              "axis": ax}
    k = len(sample_letters)
    cdt = _compute_dtype(y_pred.dtype)
    pred_dtype = _api._result_dtype(y_pred.dtype, cdt)   # float16 / bfloat16 in and out
    one = {c: (lambda n: 1) for c in sample_letters}

    # a mean's derivatives are scaled in the kernel by the whole array's denominator: the number of
    # samples, or the weights' sum, from a first pass over the labels and weights (not y_pred)
    denom = None
    if reduction == "mean" and (grad or hess):
        weighted = sample_weight is not None or (int_labels and (options.get("class_weight") is not None
                                                                 or options.get("ignore_index") is not None))
        if not weighted:
            denom = float(math.prod(sample_shape) if categorical else math.prod(y_pred.shape))
        else:
            parts = da.blockwise(_block_denom, sample_letters, y_true, y_true_letters, *sw_args, *index_args,
                                 dtype=np.float64, concatenate=True, adjust_chunks=one,
                                 meta=np.empty((0,) * k, np.float64), loss_name=name, options=options,
                                 pred_dtype=y_pred.dtype, C=y_pred.shape[ax] if int_labels else None, axis=ax,
                                 errors=errors, ndim_out=k)
            denom = parts.rechunk(-1).map_blocks(_total_weight, dtype=np.float64, drop_axis=list(range(k)),
                                                 chunks=(), meta=np.empty((), np.float64))
    args = [y_pred, letters, y_true, y_true_letters, *sw_args,
            denom, None if not isinstance(denom, da.Array) else (), *index_args]
    objs = da.blockwise(_block, sample_letters, *args, dtype=object, concatenate=True, adjust_chunks=one,
                        meta=np.empty((0,) * k, dtype=object), loss_name=name, options=options,
                        reduction=reduction, grad=grad, hess=hess, errors=errors, ndim_out=k)

    if reduction == "none":
        loss = objs.map_blocks(_field, index=0, chunks=sample_chunks, dtype=cdt, meta=np.empty((0,) * k, cdt))
    else:
        parts = objs.map_blocks(_field, index=3, chunks=tuple((1,) * len(c) for c in objs.chunks) + ((2,),),
                                new_axis=k, dtype=np.float64, meta=np.empty((0,) * (k + 1), np.float64))
        reduced = parts.rechunk(-1).map_blocks(_combine, reduction=reduction, dtype=np.float64,
                                               drop_axis=list(range(k + 1)), new_axis=0, chunks=((1,),),
                                               meta=np.empty((0,), np.float64))
        loss = reduced[0].astype(cdt)
    if not (grad or hess):
        return loss

    def derivative(index):
        out = objs.map_blocks(_field, index=index, chunks=y_pred.chunks, dtype=pred_dtype,
                              new_axis=[ax] if categorical else None, meta=np.empty((0,) * nd, pred_dtype))
        return out.rechunk(original_chunks) if out.chunks != original_chunks else out

    return _api.LossResult(loss, derivative(1) if grad else None, derivative(2) if hess else None)


def binary_cross_entropy(y_true, y_pred, **options) -> Any:
    """:func:`xentc.binary_cross_entropy` on Dask arrays (see the module notes).

    Parameters
    ----------
    y_true, y_pred : dask.array.Array or array_like
        As in :func:`xentc.binary_cross_entropy`; ``y_true`` is rechunked like ``y_pred``.
    **options
        The keyword arguments of :func:`xentc.binary_cross_entropy`; ``sample_weight`` may be
        a Dask array.

    Returns
    -------
    dask.array.Array or LossResult of Dask arrays
        The loss (0-d for ``"mean"``/``"sum"``); with ``grad``/``hess`` a
        :class:`xentc.LossResult` whose ``grad``/``hess`` have the chunks of ``y_pred``.

    Examples
    --------
    >>> import dask.array as da, numpy as np, xentc.dask
    >>> z = da.from_array(np.array([2.0, -1.0, 0.5, 3.0]), chunks=2)
    >>> y = np.array([1.0, 0.0, 1.0, 1.0])
    >>> r = xentc.dask.binary_cross_entropy(y, z, from_logits=True, grad=True)
    >>> round(float(r.loss.compute()), 6), r.grad.chunks
    (0.240714, ((2, 2),))
    """
    return _apply("binary_cross_entropy", y_true, y_pred, categorical=False, **options)


def binary_focal_loss(y_true, y_pred, **options) -> Any:
    """:func:`xentc.binary_focal_loss` on Dask arrays; see :func:`binary_cross_entropy`."""
    return _apply("binary_focal_loss", y_true, y_pred, categorical=False, **options)


def cross_entropy(y_true, y_pred, **options) -> Any:
    """:func:`xentc.cross_entropy` on Dask arrays; see :func:`binary_cross_entropy`.

    Integer labels have the shape of ``y_pred`` without ``axis``. The class axis is merged into
    one chunk for the computation; the gradient comes back with the chunks of ``y_pred``.
    """
    return _apply("cross_entropy", y_true, y_pred, categorical=True, **options)


def focal_loss(y_true, y_pred, **options) -> Any:
    """:func:`xentc.focal_loss` on Dask arrays; see :func:`cross_entropy`."""
    return _apply("focal_loss", y_true, y_pred, categorical=True, **options)
