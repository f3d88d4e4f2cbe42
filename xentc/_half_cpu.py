"""The CPU backend for float16 and bfloat16 y_pred: the float32 kernels of xentc._kernels, a chunk
of rows at a time.

Each chunk of y_pred (and of 16-bit labels) is converted into a float32 scratch buffer, the
kernels run on it, and the chunk's gradient and Hessian are rounded into the 16-bit results. So a
call never holds a float32 copy of the whole of y_pred or a float32 gradient of its size: about
4 bytes an element (the 16-bit input and gradient) plus a scratch of at most CHUNK_ELEMS float32
elements a buffer, where converting everything first took 12 (2 + 4 + 4 + 2). Each row's results
are the bits converting first gave (rows are independent); the reduced loss adds the chunks'
sums in order, compensated as the kernels add their blocks'. Same signatures as xentc._kernels;
arrays of another dtype go straight to it.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _kernels, _memory

# y_pred is read and the gradient and Hessian are written in their 16-bit dtype (see _api); soft
# labels of another dtype come in the compute dtype (float32), as a chunk is converted anyway
HALF_STORAGE = True
SOFT_LABELS_IN_COMPUTE_DTYPE = True
CHUNK_ELEMS = 1 << 20   # y_pred elements a chunk: 4 MiB of float32 scratch for x, grad and hess each
MIN_ROWS = 64           # and at least this many rows a chunk, for the threads to share

weight_sum = _kernels.weight_sum
# binary sample weights: repeating ones come once (a scalar, a weight per row, ...: the chunks take
# their place in the pattern by sw_off), and those of BINARY_SAMPLE_WEIGHT_DTYPES (16-bit ones
# too) as they are, so that no weight array of y_pred's size is made
SAMPLE_WEIGHT_PATTERNS = True
BINARY_SAMPLE_WEIGHT_DTYPES = _kernels.BINARY_SAMPLE_WEIGHT_DTYPES
# binary labels of these dtypes (bool, integers, float32, float64) go to the float32 kernels a chunk
# at a time as they are: the kernels read them in their dtype (and check float64 ones as given), so
# nothing of y_pred's size is cast first (_api._native_binary_labels)
BINARY_LABEL_DTYPES = _kernels.BINARY_LABEL_DTYPES
# and at any stride, as the float32 kernels read them (a column of a label matrix)
STRIDED_BINARY_LABELS = _kernels.STRIDED_BINARY_LABELS
# integer labels are checked by the float32 kernels a chunk at a time (the first bad one of the
# first chunk that has one: the first of all, chunks going in row order)
LABELS_CHECKED_IN_KERNEL = _kernels.LABELS_CHECKED_IN_KERNEL


class _Sum:
    """The chunks' sums added in order, compensated (Neumaier) while finite, as _kernels adds its
    blocks' sums."""

    def __init__(self) -> None:
        self.total, self.comp = 0.0, 0.0

    def add(self, v: float) -> None:
        t = self.total + v
        if t - t == 0.0:
            if abs(self.total) >= abs(v):
                self.comp += (self.total - t) + v
            else:
                self.comp += (v - t) + self.total
        self.total = t

    def value(self) -> float:
        return self.total + self.comp if self.total - self.total == 0.0 else self.total


def _scratch(shape: tuple, wanted: bool = True) -> Optional[np.ndarray]:
    """A float32 scratch buffer, from the recycled memory of xentc._memory (it goes back there)."""
    return _memory.empty(shape, np.float32) if wanted else None


def _into(buf: Optional[np.ndarray], src: np.ndarray, n_threads) -> np.ndarray:
    """src (a chunk) as float32: converted into the front of the flat scratch buf (16-bit values
    by the kernels' load16, exactly), or, without one, src itself."""
    if buf is None:
        return src
    dst = buf[:src.size].reshape(src.shape)
    if src.itemsize == 2 and src.dtype.isnative:   # float16 (kind "f") or bfloat16 (kind "V")
        _kernels.load16(np.ascontiguousarray(src), dst, src.dtype.kind != "f", n_threads)
    else:
        np.copyto(dst, src, casting="unsafe")
    return dst


def _part(a: Optional[np.ndarray], lo: int, hi: int) -> Optional[np.ndarray]:
    return None if a is None else a[lo:hi]


def _store(dst: np.ndarray, src: np.ndarray, n_threads) -> None:
    """dst[...] = src (a float32 chunk), rounded to nearest even by the kernels' store16, which
    vectorises; NumPy's cast of float16 subnormals (a mean's gradients are small) costs tens of
    nanoseconds an element. A part of a row (dst not contiguous) goes through a 16-bit copy."""
    bfloat = dst.dtype.kind != "f"   # the results are native float16 or bfloat16 (see _api._result_dtype)
    if dst.flags.c_contiguous:
        _kernels.store16(src, dst, bfloat, n_threads)
    else:
        tmp = np.empty(src.shape, dtype=dst.dtype)
        _kernels.store16(src, tmp, bfloat, n_threads)
        dst[...] = tmp


def binary(y, x, sw, w1, w0, eps, gamma, dscale, from_logits, loss, grad, hess, double_,
           n_threads, sw_rep: int = 1, sw_len: int = -1) -> Tuple[float, int, int, int]:
    """Binary CE / focal over 1-D y and x (see _kernels.binary), x float16 or bfloat16; element i
    takes the sample weight sw[(i // sw_rep) % sw_len] (by default sw[i])."""
    if x.itemsize != 2:
        return _kernels.binary(y, x, sw, w1, w0, eps, gamma, dscale, from_logits, loss, grad, hess, double_,
                               n_threads, sw_rep, sw_len)
    n = int(x.shape[0])
    nw1 = 1 if w1 is None else max(1, int(w1.shape[0]))   # a zero-length w1 only comes with n = 0
    step = max(nw1, CHUNK_ELEMS // nw1 * nw1)   # a multiple of nw1: element i takes w1[i % nw1]
    m = min(n, step)
    # 16-bit labels are converted into scratch; the kernels read those of BINARY_LABEL_DTYPES
    xb, yb = _scratch((m,)), _scratch((m,), y.dtype not in BINARY_LABEL_DTYPES)
    gb, hb = _scratch((m,), grad is not None), _scratch((m,), hess is not None)
    total = _Sum()
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        gc, hc = _part(gb, 0, i1 - i0), _part(hb, 0, i1 - i0)
        # weights of one per element: the chunk's part; a pattern: all of it, the chunk placed by sw_off
        swc, wkw = (_part(sw, i0, i1), {}) if sw_len < 0 else (sw, {"sw_rep": sw_rep, "sw_len": sw_len, "sw_off": i0})
        t, err, i, j = _kernels.binary(_into(yb, y[i0:i1], n_threads), _into(xb, x[i0:i1], n_threads), swc, w1, w0,
                                       eps, gamma, dscale, from_logits, _part(loss, i0, i1), gc, hc, False, n_threads,
                                       **wkw)
        total.add(t)
        if err:
            return total.value(), err, i + i0, j
        if gc is not None:
            _store(grad[i0:i1], gc, n_threads)
        if hc is not None:
            _store(hess[i0:i1], hc, n_threads)
    return total.value(), 0, 0, 0


def _tiles(outer: int, C: int, inner: int):
    """The chunks of rows (o, k), k fastest, of at most max(MIN_ROWS, CHUNK_ELEMS // C) rows: whole
    outer slices (o0, o1, 0, inner) where they fit, else parts of one (o, o + 1, k0, k1)."""
    rows = max(MIN_ROWS, CHUNK_ELEMS // C, 1)
    if inner <= rows:
        per = max(1, rows // inner)
        for o0 in range(0, outer, per):
            yield o0, min(outer, o0 + per), 0, inner
    else:
        for o in range(outer):
            for k0 in range(0, inner, rows):
                yield o, o + 1, k0, min(inner, k0 + rows)


def softmax(x, labels, ysoft, sw, cwa, ignore_index, has_ignore, eps, gamma, dscale, from_logits, loss, grad, hess,
            double_, n_threads) -> Tuple[float, int, int, int]:
    """Categorical CE / focal over x viewed as (outer, C, inner) (see _kernels.softmax), x float16 or
    bfloat16; soft labels of any float dtype (converted a chunk at a time: never rounded to 16
    bits); grad and hess (outer, C, inner) like x."""
    if x.itemsize != 2:
        return _kernels.softmax(x, labels, ysoft, sw, cwa, ignore_index, has_ignore, eps, gamma, dscale,
                                from_logits, loss, grad, hess, double_, n_threads)
    outer, C, inner = (int(v) for v in x.shape)
    if outer * C * inner == 0:
        return 0.0, 0, 0, 0
    size = min(outer * inner, max(MIN_ROWS, CHUNK_ELEMS // C, 1)) * C   # scratch elements
    xb, yb = _scratch((size,)), _scratch((size,), ysoft is not None and ysoft.dtype != np.float32)
    gb, hb = _scratch((size,), grad is not None), _scratch((size,), hess is not None)
    total = _Sum()
    for o0, o1, k0, k1 in _tiles(outer, C, inner):
        shape = (o1 - o0, C, k1 - k0)
        n = shape[0] * C * shape[2]
        r0, r1 = o0 * inner + k0, (o1 - 1) * inner + k1   # the tile's rows (o, k): contiguous row numbers
        gc = None if gb is None else gb[:n].reshape(shape)
        hc = None if hb is None else hb[:n].reshape(shape)
        t, err, i, j = _kernels.softmax(_into(xb, x[o0:o1, :, k0:k1], n_threads), _part(labels, r0, r1),
                                        None if ysoft is None else _into(yb, ysoft[o0:o1, :, k0:k1], n_threads),
                                        _part(sw, r0, r1), cwa, ignore_index, has_ignore, eps, gamma, dscale,
                                        from_logits, _part(loss, r0, r1), gc, hc, False, n_threads)
        total.add(t)
        if err:
            return total.value(), err, i + r0, j   # j: a class, or the bad label itself
        if gc is not None:
            _store(grad[o0:o1, :, k0:k1], gc, n_threads)
        if hc is not None:
            _store(hess[o0:o1, :, k0:k1], hc, n_threads)
    return total.value(), 0, 0, 0
