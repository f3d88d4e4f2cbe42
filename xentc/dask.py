"""xentc's four losses on Dask arrays, chunk by chunk.

Each chunk goes through the compiled kernel once (loss, and gradient/Hessian when asked). The
results are lazy Dask arrays:

* ``"mean"``/``"sum"``: a 0-d array. Every chunk reports the kernel's double-precision loss sum
  and the mean's denominator (sample weights, class weights of the labels, ignored samples
  left out) before any rounding; those are added with ``math.fsum`` (correctly rounded), so the
  result agrees with the in-memory one to a few units in the last place however the data are
  chunked.
* ``"none"``: the per-sample losses, chunked like the samples of ``y_pred``.
* ``grad``/``hess``: arrays with the shape, dtype and chunks of ``y_pred``. With ``"mean"``
  every chunk is scaled by ``1 / (total weight)``, a lazy scalar of the whole array.

For the categorical losses a softmax needs whole rows: ``y_pred`` is rechunked to one chunk
along the class axis for the computation (the last axis likewise for a 1-D ``pos_weight``), and
the gradient rechunked back to the chunks of ``y_pred``. ``y_true`` and ``sample_weight`` may be Dask or NumPy arrays; they are chunked to
match ``y_pred``. ``from_npy`` opens a ``.npy`` file as a Dask array that each task reads
through a memory map, so arrays larger than memory are scored chunk by chunk.
"""
from __future__ import annotations

import math
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


def _block(y_pred, y_true, sample_weight, *, loss_name, options, reduction, grad, hess, ndim_out):
    """One chunk through the kernel; the result travels as a 1-element object array."""
    func = getattr(_api, loss_name)
    red = "none" if reduction == "none" else "sum"
    res, total, denom = _api._call_with_sums(func, y_true, y_pred, sample_weight=sample_weight, reduction=red,
                                             grad=grad, hess=hess, **options)
    loss, g, h = res if (grad or hess) else (res, None, None)
    out = np.empty((1,) * ndim_out, dtype=object)
    out[(0,) * ndim_out] = (loss if red == "none" else None, g, h, total, denom)
    return out


def _field(obj, scale=None, *, index):
    """Field ``index`` of a chunk's result (0 loss, 1 grad, 2 hess, 3 the (sum, denominator) row),
    derivatives scaled by the whole array's mean factor where one is given."""
    loss, g, h, total, denom = obj[(0,) * obj.ndim]
    if index == 3:
        return np.array([total, denom]).reshape((1,) * obj.ndim + (2,))
    value = (loss, g, h)[index]
    if scale is not None:
        value = (value * np.float64(scale[()])).astype(value.dtype)
    return value


def _combine(parts, *, reduction):
    """(sum, denominator) rows of every chunk -> the reduced loss and the gradient scale."""
    rows = parts.reshape(-1, 2)
    total, denom = math.fsum(rows[:, 0].tolist()), math.fsum(rows[:, 1].tolist())
    value = total if reduction == "sum" else _api._mean_value(total, denom)
    return np.array([value, _api._mean_scale(denom) if reduction == "mean" else 1.0])


def _compute_dtype(dtype) -> np.dtype:
    return _api._compute_dtype(np.empty(0, dtype=dtype))


def _apply(name: str, y_true, y_pred, *, categorical: bool, sample_weight=None, reduction="mean",
           grad=False, hess=False, axis=-1, **options):
    reduction = _api._check_reduction(reduction)
    grad, hess = _api._check_flag("grad", grad), _api._check_flag("hess", hess)
    y_pred = da.asarray(y_pred)
    nd = y_pred.ndim
    letters = string.ascii_lowercase[:nd]
    original_chunks = y_pred.chunks
    if categorical:
        if nd == 0:
            raise ValueError("y_pred: expected an array with a class axis, got a 0-d array")
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -nd <= axis < nd:
            raise ValueError(f"axis: {axis!r} is out of range for y_pred with {nd} dimensions")
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
    int_labels = categorical and y_true.dtype.kind in "iu"
    want = sample_shape if int_labels else y_pred.shape
    if y_true.shape != want:
        raise ValueError(f"y_true: shape {y_true.shape} does not match the expected {want} "
                         f"({'integer labels: y_pred without the class axis' if int_labels else 'the shape of y_pred'})")
    sample_chunks = tuple(c for i, c in enumerate(y_pred.chunks) if i != ax)
    y_true = y_true.rechunk(sample_chunks if int_labels else y_pred.chunks)
    args = [y_pred, letters, y_true, sample_letters if int_labels else letters]
    if sample_weight is not None:
        sw = da.asarray(sample_weight)
        try:
            sw = da.broadcast_to(sw, sample_shape)
        except ValueError:
            raise ValueError(f"sample_weight: shape {sw.shape} does not broadcast to the per-sample shape "
                             f"{sample_shape}") from None
        args += [sw.rechunk(sample_chunks), sample_letters]
    else:
        args += [None, None]
    k = len(sample_letters)
    objs = da.blockwise(_block, sample_letters, *args, dtype=object, concatenate=True,
                        adjust_chunks={c: (lambda n: 1) for c in sample_letters},
                        meta=np.empty((0,) * k, dtype=object),
                        loss_name=name, options=options, reduction=reduction, grad=grad, hess=hess, ndim_out=k)
    cdt = _compute_dtype(y_pred.dtype)
    pred_dtype = y_pred.dtype if (y_pred.dtype.kind == "f" and y_pred.dtype.itemsize == 2) else cdt

    scale = None
    if reduction == "none":
        loss = objs.map_blocks(_field, index=0, chunks=sample_chunks, dtype=cdt, meta=np.empty((0,) * k, cdt))
    else:
        parts = objs.map_blocks(_field, index=3, chunks=tuple((1,) * len(c) for c in objs.chunks) + ((2,),),
                                new_axis=k, dtype=np.float64, meta=np.empty((0,) * (k + 1), np.float64))
        reduced = parts.rechunk(-1).map_blocks(_combine, reduction=reduction, dtype=np.float64,
                                               drop_axis=list(range(k + 1)), new_axis=0, chunks=((2,),),
                                               meta=np.empty((0,), np.float64))
        loss = reduced[0].astype(cdt)
        if reduction == "mean":
            scale = reduced[1]
    if not (grad or hess):
        return loss

    def derivative(index):
        extra = [] if scale is None else [scale]
        out = objs.map_blocks(_field, *extra, index=index, chunks=y_pred.chunks, dtype=pred_dtype,
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
