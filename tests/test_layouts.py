"""Any memory layout gives the bits of the contiguous call, and inputs are never modified."""

import pathlib
import sys
import zlib

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import xentc

FUNCS = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]
BINARY = {"binary_cross_entropy", "binary_focal_loss"}
LAYOUTS = ["contiguous", "strided", "negative", "fortran", "transposed_copy", "readonly",
           "memmap", "bigendian", "unaligned", "strided_negative_2d"]


def relayout(a, layout, tmp_path=None, tag="a"):
    """An array with the logical values of ``a`` in another memory layout."""
    a = np.asarray(a)
    if layout == "contiguous":
        return np.ascontiguousarray(a)
    if layout == "strided":
        big = np.zeros((a.shape[0] * 3,) + a.shape[1:], dtype=a.dtype) if a.ndim else None
        if big is None:
            return a
        big[1::3] = a
        out = big[1::3]
        assert not out.flags.c_contiguous or a.shape[0] <= 1
        return out
    if layout == "negative":
        if a.ndim == 0:
            return a
        rev = np.ascontiguousarray(a[::-1])
        return rev[::-1]
    if layout == "strided_negative_2d":
        if a.ndim < 2:
            return relayout(a, "negative")
        big = np.zeros((a.shape[0] * 2,) + (a.shape[1] * 2,) + a.shape[2:], dtype=a.dtype)
        big[::2, ::2] = a[::-1, ::-1]
        return big[::2, ::2][::-1, ::-1]
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "transposed_copy":
        return np.ascontiguousarray(a.T).T
    if layout == "readonly":
        out = a.copy()
        out.setflags(write=False)
        return out
    if layout == "memmap":
        path = tmp_path / f"{tag}.dat"
        mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape if a.shape else (1,))
        mm[...] = a if a.shape else a.reshape(1)
        mm.flush()
        del mm
        out = np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape if a.shape else (1,))
        return out if a.shape else out.reshape(())
    if layout == "bigendian":
        if a.dtype.kind == "b" or a.dtype.itemsize == 1:
            return a.copy()
        return a.astype(a.dtype.newbyteorder(">"))
    if layout == "unaligned":
        if a.dtype.itemsize == 1:
            return a.copy()
        buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
        view = np.ndarray(a.shape, dtype=a.dtype, buffer=buf, offset=1)
        view[...] = a
        assert not view.flags.aligned
        return view
    raise ValueError(layout)


def make_inputs(name, dtype, rng, from_logits, n=37):
    if name in BINARY:
        shape = (n, 3)
        x = rng.normal(0, 2, shape) if from_logits else rng.uniform(0.02, 0.98, shape)
        y = rng.integers(0, 5, shape) / 4
        kw = {"sample_weight": rng.integers(0, 5, shape) / 2}
        if name == "binary_cross_entropy":
            kw["pos_weight"] = np.array([0.5, 1.0, 2.0])
    else:
        shape = (n, 5)
        x = rng.normal(0, 2, shape) if from_logits else rng.dirichlet(np.ones(5), n)
        y = rng.integers(0, 5, n)
        y[[3, 9]] = -1
        kw = {"sample_weight": rng.integers(0, 5, n) / 2, "class_weight": np.arange(1, 6) / 2,
              "ignore_index": -1}
        if name == "focal_loss":
            kw["alpha"] = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    return y.astype(dtype) if y.dtype.kind == "f" else y, x.astype(dtype), kw


def call(name, y, x, kw, **extra):
    return getattr(xentc, name)(y, x, grad=True, hess=True, **kw, **extra)


def assert_same(a, b):
    assert type(a.loss) is type(b.loss)
    assert_array_equal(a.loss, b.loss)
    # (a byte-swapped y_pred may give byte-swapped or native results of the same type)
    assert a.grad.dtype.newbyteorder("=") == b.grad.dtype
    assert a.hess.dtype.newbyteorder("=") == b.hess.dtype
    assert_array_equal(a.grad, b.grad)
    assert_array_equal(a.hess, b.hess)
    assert a.grad.flags.writeable and a.hess.flags.writeable


def snapshot(*arrays):
    return [None if a is None else np.array(a, copy=True) for a in arrays]


def assert_unchanged(before, after):
    for b, a in zip(before, after):
        if b is None:
            continue
        assert np.asarray(a).dtype == b.dtype
        assert_array_equal(np.asarray(a), b)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", FUNCS)
def test_layout_gives_same_bits(name, layout, dtype, from_logits, reduction, tmp_path):
    rng = np.random.default_rng(zlib.crc32(f"{name}{from_logits}".encode()))
    y, x, kw = make_inputs(name, dtype, rng, from_logits)
    ref = call(name, y, x, kw, from_logits=from_logits, reduction=reduction)
    # every array argument in the layout at once
    y2 = relayout(y, layout, tmp_path, "y")
    x2 = relayout(x, layout, tmp_path, "x")
    kw2 = {k: relayout(v, layout, tmp_path, k) if isinstance(v, np.ndarray) else v
           for k, v in kw.items()}
    before = snapshot(y2, x2, *kw2.values())
    got = call(name, y2, x2, kw2, from_logits=from_logits, reduction=reduction)
    assert_same(got, ref)
    assert_unchanged(before, [y2, x2, *kw2.values()])
    assert not np.shares_memory(got.grad, x2) and not np.shares_memory(got.hess, x2)
    # only y_pred in the layout
    got = call(name, y, x2, kw, from_logits=from_logits, reduction=reduction)
    assert_same(got, ref)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "negative", "unaligned"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_long_rows_each_as_if_alone(name, dtype, layout, n_threads):
    """Rows of the per-row path (more classes than the group path takes) that span several blocks
    (a block is 16384 // (3 C) rows: 18 here) come out as each row's call on its own, in any row
    stride: the kernel asks for the next row's cache lines ahead of time, also across the ends of
    blocks, and that must never change what a row computes."""
    C = 300
    rng = np.random.default_rng(7)
    x = rng.normal(0, 3, (50, C)).astype(dtype)
    x[10, 5] = x[10, 9] = x[10].max() + 1   # a tie at the maximum
    x[17, :] = -1e30                         # the last row of a block: every class far below 0
    y = rng.integers(0, C, 50)
    x2 = relayout(x, layout)
    got = call(name, y, x2, {}, from_logits=True, reduction="none", n_threads=n_threads)
    for i in range(50):
        one = call(name, y[i:i + 1], np.ascontiguousarray(x[i:i + 1]), {}, from_logits=True, reduction="none",
                   n_threads=1)
        assert_array_equal(got.loss[i:i + 1], one.loss)
        assert_array_equal(got.grad[i:i + 1], one.grad)
        assert_array_equal(got.hess[i:i + 1], one.hess)


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("layout", ["strided", "negative", "fortran", "bigendian", "unaligned"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_kdim_layouts(name, layout, from_logits, tmp_path):
    rng = np.random.default_rng(7)
    shape = (3, 4, 5, 6)  # class axis 1
    x = rng.normal(0, 2, shape) if from_logits else rng.dirichlet(np.ones(4), (3, 5, 6)).transpose(
        0, 3, 1, 2)
    x = np.ascontiguousarray(x)
    y = rng.integers(0, 4, (3, 5, 6))
    ysoft = rng.integers(0, 5, shape) / 4
    kw = {"axis": 1, "sample_weight": rng.integers(0, 4, (5, 6)) / 2, "from_logits": from_logits,
          "reduction": "none"}
    for labels in (y, ysoft):
        ref = call(name, labels, x, kw)
        got = call(name, relayout(labels, layout, tmp_path, "y"),
                   relayout(x, layout, tmp_path, "x"),
                   {**kw, "sample_weight": relayout(kw["sample_weight"], layout, tmp_path, "s")})
        assert_same(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name, kw", [("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.2}),
                                      ("focal_loss", {"gamma": 2.0}), ("focal_loss", {"gamma": 0.5})])
def test_rows_with_classes_apart(name, kw, dtype):
    """Logit rows whose classes are not adjacent (Fortran order, every other column, reversed
    columns), with more classes than the few-class path takes: rows are moved a tile at a time
    into contiguous scratch and computed as contiguous rows, so the bits are the contiguous call's."""
    rng = np.random.default_rng(11)
    n, C = 23, 300
    x = (rng.standard_normal((n, 2 * C)) * 4).astype(dtype)
    x[3, 7] = np.inf
    x[4, 11] = np.nan
    y = rng.integers(0, C, n)
    soft = rng.dirichlet(np.ones(C), n).astype(dtype)
    args = {"from_logits": True, "grad": True, "hess": True, "reduction": "none", **kw}
    for view in (np.asfortranarray(x[:, :C]), x[:, ::2], x[:, ::-1][:, C:]):
        ref = np.ascontiguousarray(view)
        for labels in (y, soft):
            a = getattr(xentc, name)(labels, view, **args)
            b = getattr(xentc, name)(labels, ref, **args)
            assert_array_equal(a.loss, b.loss)
            assert_array_equal(a.grad, b.grad)
            assert_array_equal(a.hess, b.hess)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("C", [3, 21, 64])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_channels_first_equals_channels_last(name, C, dtype):
    """(N, C, H, W) with axis=1, the segmentation layout, gives the bits of the same data moved to
    channels-last: groups of 16 pixels side by side are read and written as whole vectors, groups
    that cross into the next image or past the last pixel element by element (inner = 37 has
    both), and each pixel's result is that of its contiguous row. Labels: integer (with an
    ignored pixel), soft, and float rows with special values."""
    rng = np.random.default_rng(C)
    n, h, w = 3, 1, 37
    x = (rng.standard_normal((n, C, h, w)) * 3).astype(dtype)
    x[0, :, 0, 5] = np.inf                   # ties at +inf
    x[1, 1 % C, 0, 20] = np.nan              # a NaN row: redone by the per-row code
    y = rng.integers(0, C, (n, h, w))
    y[2, 0, 30] = -100
    soft = rng.dirichlet(np.ones(C), (n, h, w)).astype(dtype)
    sw = rng.integers(0, 4, (n, h, w)) / 2
    kw = {"from_logits": True, "grad": True, "hess": True, "reduction": "none", "sample_weight": sw,
          "class_weight": rng.integers(1, 5, C) / 2}
    last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for labels, extra in ((y, {"ignore_index": -100}), (soft, {})):
        first_labels = np.ascontiguousarray(np.moveaxis(labels, -1, 1)) if labels.ndim == 4 else labels
        a = getattr(xentc, name)(first_labels, x, axis=1, **kw, **extra)
        b = getattr(xentc, name)(labels, last, **kw, **extra)
        assert_array_equal(a.loss, b.loss)
        assert_array_equal(a.grad, np.moveaxis(b.grad, -1, 1))
        assert_array_equal(a.hess, np.moveaxis(b.hess, -1, 1))
    assert np.isnan(a.loss[1, 0, 20]) and np.isfinite(a.loss[0, 0, 4])


TILED = ["fortran", "axis0", "nchw", "reversed"]


def tiled(a, kind):
    """(array, axis): rows of ``a`` ((n, C), or per-row (n,)) in a layout whose classes lie apart
    in memory; per-row arrays in the matching sample shape. nchw: 3 images of n/3 pixels."""
    n = a.shape[0]
    if a.ndim == 1:
        return (np.ascontiguousarray(a.reshape(3, n // 3)), 1) if kind == "nchw" else (a, -1)
    if kind == "fortran":
        return np.asfortranarray(a), -1
    if kind == "axis0":
        return np.ascontiguousarray(a.T), 0
    if kind == "nchw":
        return np.ascontiguousarray(a.reshape(3, n // 3, a.shape[1]).transpose(0, 2, 1)), 1
    if kind == "reversed":   # class stride -1
        return a[:, ::-1].copy()[:, ::-1], -1
    raise ValueError(kind)


def untiled(a, kind):
    """A result of the tiled layout's shape in the (n, C) order of the contiguous call."""
    if kind == "axis0":
        return a.T
    if kind == "nchw":
        return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])
    return a


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("C", [65, 150, 700])
@pytest.mark.parametrize("name, kw", [("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.1}),
                                      ("focal_loss", {"gamma": 2.0}), ("focal_loss", {"gamma": 6.0})])
def test_row_tiles_give_contiguous_bits(name, kw, C, from_logits, dtype, monkeypatch):
    """Rows whose classes lie apart go through tiles of neighbouring rows (up to 64, fewer where
    the scratch or the thread count asks): Fortran order, (C, N) with axis 0, (N, C, H, W) with
    axis 1 (111 pixels an image: tiles end at every image's edge), reversed classes. Every
    reduction; labels integer (ignored and weighted rows) or soft, in the same layout or
    contiguous; one and two threads: the bits of the contiguous call, and of the rows read in
    place (the path where the tile's scratch cannot be had). At C = 700 a block holds fewer rows
    than a tile, so one call fills the results of several blocks."""
    rng = np.random.default_rng(C + 7 * from_logits)
    n = 333
    if from_logits:
        x = (rng.standard_normal((n, C)) * 3).astype(dtype)
        x[5, 3] = np.inf
        x[40, 1] = np.nan
    else:
        x = rng.dirichlet(np.ones(C) * 0.3, n).astype(dtype)
    y = rng.integers(0, C, n)
    y[[0, 17, 200]] = -100
    soft = rng.dirichlet(np.ones(C), n).astype(dtype)
    sw = rng.integers(0, 4, n) / 2
    f = getattr(xentc, name)
    for reduction in ("none", "sum", "mean"):
        args = dict(from_logits=from_logits, grad=True, hess=True, reduction=reduction, **kw)

        def check(got, ref, kind):
            loss = got.loss.reshape(n) if reduction == "none" else got.loss
            assert_array_equal(loss, ref.loss)
            assert_array_equal(untiled(got.grad, kind), ref.grad)
            assert_array_equal(untiled(got.hess, kind), ref.hess)

        for labels, extra in ((y, {"ignore_index": -100, "sample_weight": sw}), (soft, {})):
            ref = f(labels, x, **args, **extra)
            for kind in TILED:
                xv, axis = tiled(x, kind)
                lv, _ = tiled(labels, kind)
                ex = {k: tiled(v, kind)[0] if isinstance(v, np.ndarray) else v for k, v in extra.items()}
                for threads in (1, 2):
                    check(f(lv, xv, axis=axis, n_threads=threads, **args, **ex), ref, kind)
                monkeypatch.setattr(xentc._kernels, "ROW_TILES", False)
                check(f(lv, xv, axis=axis, **args, **ex), ref, kind)
                monkeypatch.setattr(xentc._kernels, "ROW_TILES", True)
                if labels.ndim == 2 and axis == -1:
                    # soft labels apart beside a contiguous y_pred, and contiguous beside apart
                    check(f(lv, x, **args), ref, "contiguous")
                    check(f(labels, xv, **args), ref, kind)


@pytest.mark.parametrize("kind", ["fortran", "axis0", "nchw"])
def test_row_tiles_report_the_first_bad_entry(kind):
    """A bad probability or soft label in rows read through tiles is reported as the contiguous
    call reports it: the first in row order (not the first a tile or thread reads), at its index
    in the array as given."""
    rng = np.random.default_rng(5)
    n, C = 96, 400
    x = rng.dirichlet(np.ones(C), n)
    x[70, 9] = 1.5
    x[30, 399] = -0.25
    soft = rng.dirichlet(np.ones(C), n)
    soft[50, 2] = 2.0
    soft[20, 0] = -1.0
    xv, axis = tiled(x, kind)
    for labels, what, row, col in ((np.zeros(n, dtype=np.int64), "y_pred: probability -0.25", 30, 399),
                                   (soft, "y_true: label -1.0", 20, 0)):
        # the entry's index in the tiled array: where untiled() would have taken it from
        probe = np.zeros((n, C), dtype=np.int64)
        probe[row, col] = 1
        flat = int(np.flatnonzero(tiled(probe, kind)[0])[0])
        bad = x if labels.ndim == 1 else np.clip(x, 0, 1)
        for threads in (1, 2):
            with pytest.raises(ValueError, match=f"^{what} at index {flat} "):
                xentc.cross_entropy(tiled(labels, kind)[0], tiled(bad, kind)[0], axis=axis, grad=True,
                                    n_threads=threads)


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_transposed_with_axis0(name, from_logits):
    """A (C, N) transposed view with axis=0 equals the (N, C) call (same per-sample order)."""
    rng = np.random.default_rng(8)
    y, x, kw = make_inputs(name, np.float64, rng, from_logits, n=50)
    ref = call(name, y, x, kw, from_logits=from_logits, reduction="none")
    got = call(name, y, x.T, kw, from_logits=from_logits, reduction="none", axis=0)
    np.testing.assert_allclose(got.loss, ref.loss, rtol=4e-16, atol=0)
    np.testing.assert_allclose(got.grad, ref.grad.T, rtol=4e-16, atol=1e-300)
    np.testing.assert_allclose(got.hess, ref.hess.T, rtol=4e-16, atol=1e-300)
    for reduction in ("sum", "mean"):
        a = call(name, y, x, kw, from_logits=from_logits, reduction=reduction)
        b = call(name, y, np.ascontiguousarray(x.T), kw, from_logits=from_logits,
                 reduction=reduction, axis=0)
        np.testing.assert_allclose(b.loss, a.loss, rtol=1e-15)


@pytest.mark.parametrize("name", FUNCS)
def test_broadcast_zero_stride_inputs(name):
    rng = np.random.default_rng(9)
    if name in BINARY:
        row = rng.uniform(0.1, 0.9, 4)
        x = np.broadcast_to(row, (20, 4))
        y = np.broadcast_to(np.array([1.0, 0.0, 0.5, 1.0]), (20, 4))
    else:
        row = rng.dirichlet(np.ones(4))
        x = np.broadcast_to(row, (20, 4))
        y = np.broadcast_to(np.array(2), (20,))
    sw = np.broadcast_to(np.array(1.5), x.shape if name in BINARY else (20,))
    got = call(name, y, x, {"sample_weight": sw})
    ref = call(name, np.array(y), np.array(x), {"sample_weight": np.array(sw)})
    assert_same(got, ref)


@pytest.mark.parametrize("layout", ["strided", "negative", "readonly", "bigendian"])
@pytest.mark.parametrize("name", FUNCS)
def test_float16_layouts(name, layout, tmp_path):
    rng = np.random.default_rng(10)
    y, x, kw = make_inputs(name, np.float16, rng, True)
    ref = call(name, y, x, kw, from_logits=True)
    got = call(name, relayout(y, layout), relayout(x, layout), kw, from_logits=True)
    assert got.grad.dtype == np.float16
    assert_same(got, ref)


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.intp, np.dtype(">i4"), np.dtype(">i8"), np.dtype(">u2")]


@pytest.mark.parametrize("ldtype", INT_DTYPES, ids=lambda d: np.dtype(d).str)
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_integer_label_dtypes(name, ldtype):
    rng = np.random.default_rng(11)
    y = rng.integers(0, 5, 40)
    x = rng.normal(0, 2, (40, 5))
    ref = call(name, y, x, {"class_weight": np.arange(1, 6.0)}, from_logits=True)
    yl = y.astype(ldtype)
    before = snapshot(yl)
    got = call(name, yl, x, {"class_weight": np.arange(1, 6.0)}, from_logits=True)
    assert_same(got, ref)
    assert_unchanged(before, [yl])
    got = call(name, yl[::-1][::-1], x, {"class_weight": np.arange(1, 6.0)}, from_logits=True)
    assert_same(got, ref)


@pytest.mark.parametrize("ldtype", INT_DTYPES[:4], ids=lambda d: np.dtype(d).str)
def test_integer_labels_with_negative_ignore_index(ldtype):
    rng = np.random.default_rng(12)
    y = rng.integers(0, 5, 40)
    y[[0, 7, 13]] = -3
    x = rng.normal(0, 2, (40, 5))
    ref = call("cross_entropy", y, x, {"ignore_index": -3}, from_logits=True)
    got = call("cross_entropy", y.astype(ldtype), x, {"ignore_index": -3}, from_logits=True)
    assert_same(got, ref)


@pytest.mark.parametrize("ldtype", [np.bool_, np.int8, np.uint8, np.int32, np.int64, np.uint64,
                                    np.float16, np.float32, np.dtype(">f8"), np.dtype(">i2")],
                         ids=lambda d: np.dtype(d).str)
@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_focal_loss"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_binary_label_dtypes(name, ldtype, dtype):
    rng = np.random.default_rng(13)
    y = rng.integers(0, 2, (30, 2))
    x = rng.normal(0, 2, (30, 2)).astype(dtype)
    ref = call(name, y.astype(dtype), x, {}, from_logits=True, reduction="none")
    yl = y.astype(ldtype)
    before = snapshot(yl)
    got = call(name, yl, x, {}, from_logits=True, reduction="none")
    assert_same(got, ref)
    assert_unchanged(before, [yl])


LONG_LABEL_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                     np.float32, np.float64]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("ldtype", LONG_LABEL_DTYPES, ids=lambda d: np.dtype(d).str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_binary_labels_read_in_their_dtype(dtype, ldtype, from_logits, n_threads):
    """Binary labels of another dtype than y_pred are read as they are, a piece at a time, not
    cast whole: the results are the bits of the labels cast first, in arrays long enough for many
    pieces and blocks (n = 3 * 70001), with every option that meets them (per-label pos_weight,
    sample weights, smoothing, focal gamma), and soft labels where the dtype has them."""
    rng = np.random.default_rng(16)
    shape = (70_001, 3)
    y = rng.integers(0, 2, shape)
    if np.dtype(ldtype).kind == "f":
        y = np.where(rng.random(shape) < 0.3, rng.random(shape), y)   # some soft labels
    yl = y.astype(ldtype)
    yc = yl.astype(dtype)
    x = (rng.normal(0, 2, shape) if from_logits else rng.uniform(0.02, 0.98, shape)).astype(dtype)
    sw = rng.integers(0, 4, shape) / 2
    for name, kw in (("binary_cross_entropy", {"pos_weight": np.array([0.5, 1.0, 2.0]), "sample_weight": sw}),
                     ("binary_cross_entropy", {"label_smoothing": 0.1}),
                     ("binary_focal_loss", {"gamma": 2.0, "alpha": 0.25}),
                     ("binary_focal_loss", {"gamma": 1.5, "sample_weight": sw})):
        for reduction in ("none", "mean"):
            before = snapshot(yl)
            got = call(name, yl, x, kw, from_logits=from_logits, reduction=reduction, n_threads=n_threads)
            assert_same(got, call(name, yc, x, kw, from_logits=from_logits, reduction=reduction,
                                  n_threads=n_threads))
            assert_unchanged(before, [yl])
        # labels, predictions or both with their elements apart (gathered a piece at a time, the
        # labels read in their dtype): the same bits
        ys, xs = np.repeat(yl, 2, axis=1)[:, ::2], np.repeat(x, 2, axis=1)[:, ::2]
        want = call(name, yl, x, kw, from_logits=from_logits, reduction="none", n_threads=n_threads)
        for yy, xx in ((ys, xs), (ys, x), (yl, xs), (yl[::-1][::-1], x[::-1][::-1])):
            assert_same(call(name, yy, xx, kw, from_logits=from_logits, reduction="none", n_threads=n_threads),
                        want)


@pytest.mark.parametrize("ldtype", [np.bool_, np.int32, np.int64, np.float32, np.float64],
                         ids=lambda d: np.dtype(d).str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_binary_labels_off_their_element_grid(dtype, ldtype):
    """Labels that are a field of a record array lie a stride apart that is no multiple of their
    size (9 bytes for int64 after an int8): they are converted, not read by element index, and give
    the bits of the contiguous labels (a stride of 1 element read them as the wrong bytes)."""
    n = 5000
    rec = np.zeros(n, dtype=[("pad", np.int8), ("y", ldtype)])
    rec["y"] = (np.arange(n) % 3 == 0).astype(ldtype)
    y = rec["y"]
    x = np.linspace(-4, 4, n).astype(dtype)
    want = call("binary_cross_entropy", np.ascontiguousarray(y), x, {}, from_logits=True, reduction="none")
    for yy in (y, y[::2]):
        xx = x if yy is y else x[::2]
        ref = want if yy is y else call("binary_cross_entropy", np.ascontiguousarray(yy), xx, {}, from_logits=True,
                                        reduction="none")
        assert_same(call("binary_cross_entropy", yy, xx, {}, from_logits=True, reduction="none"), ref)


@pytest.mark.parametrize("ldtype", [np.bool_, np.int8, np.int64, np.float64, np.float32],
                         ids=lambda d: np.dtype(d).str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_binary_strided_labels_are_not_copied(dtype, ldtype):
    """A column of a label matrix of any dtype (and of y_pred's) beside a column of y_pred is read
    at its stride: no array of the elements' size is made for either, and the results are the bits
    of the columns copied out and converted first."""
    import tracemalloc
    rng = np.random.default_rng(19)
    n = 400_000
    Y = (rng.random((n, 2)) < 0.4).astype(ldtype)
    X = rng.normal(0, 2, (n, 2)).astype(dtype)
    y, x = Y[:, 1], X[:, 0]
    want = call("binary_cross_entropy", np.ascontiguousarray(y).astype(dtype), np.ascontiguousarray(x), {},
                from_logits=True)
    assert_same(call("binary_cross_entropy", y, x, {}, from_logits=True), want)
    tracemalloc.start()
    try:
        xentc.binary_cross_entropy(y, x, from_logits=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * np.dtype(dtype).itemsize // 8, peak


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_binary_strided_1d_sums_equal_contiguous(dtype, from_logits):
    """A 1-D strided y_pred (and labels) are gathered a piece at a time into the contiguous loop,
    which sums the loss in the same chunks from the block's start: the reduced loss has the bits of
    the contiguous call. ((n, 3) arrays do not test this: reshape(-1) copies them.) It differed in
    1 ulp of float64 sums in 2% of random cases when a scalar strided loop added each element with
    its own compensated step."""
    rng = np.random.default_rng(17)
    sizes = list(rng.integers(1, 300, 60)) + [4095, 4097, 200_003]
    for n in sizes:
        x = (rng.normal(0, 3, n) if from_logits else rng.random(n)).astype(dtype)
        y = (rng.random(n) < 0.5).astype(dtype)
        sw = rng.random(n).astype(dtype)
        for name, kw in (("binary_cross_entropy", {}), ("binary_focal_loss", {"sample_weight": sw})):
            for reduction in ("sum", "mean"):
                want = getattr(xentc, name)(y, x, from_logits=from_logits, reduction=reduction, **kw)
                for ys, xs in ((y, np.repeat(x, 2)[::2]), (np.repeat(y, 3)[::3], x[::-1].copy()[::-1])):
                    got = getattr(xentc, name)(ys, xs, from_logits=from_logits, reduction=reduction, **kw)
                    assert got == want and type(got) is type(want), (name, n, reduction, got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("wshape", [(), (1,), (2,), (3001, 1, 1), (3001, 4, 1), (1, 4, 1), (4, 1), (1, 1, 2)],
                         ids=str)
def test_repeating_sample_weights_equal_the_broadcast_array(dtype, wshape):
    """Sample weights that repeat over the elements (a scalar, one per row, per label, any
    broadcast of one block) are read as they are, a piece at a time: the results are the bits of
    the same weights broadcast to a full array first, for both binary losses, every reduction,
    1 and 2 threads, from logits and probabilities, and with out=. Shapes (3001, 4, 2): many
    pieces and blocks."""
    rng = np.random.default_rng(18)
    shape = (3001, 4, 2)
    x = rng.normal(0, 2, shape).astype(dtype)
    p = rng.uniform(0.01, 0.99, shape).astype(dtype)
    y = (rng.random(shape) < 0.4).astype(dtype)
    w = rng.integers(0, 5, wshape) / 2 if wshape else 1.5
    full = np.ascontiguousarray(np.broadcast_to(w, shape))
    for name, kw in (("binary_cross_entropy", {"pos_weight": np.array([0.5, 2.0])}),
                     ("binary_focal_loss", {"gamma": 2.0, "alpha": 0.3})):
        for pred, from_logits in ((x, True), (p, False)):
            for reduction in ("none", "sum", "mean"):
                for n_threads in (1, 2):
                    args = dict(from_logits=from_logits, reduction=reduction, n_threads=n_threads, **kw)
                    assert_same(call(name, y, pred, {**args, "sample_weight": w}),
                                call(name, y, pred, {**args, "sample_weight": full}))
            g = np.empty_like(pred)
            got = getattr(xentc, name)(y, pred, sample_weight=w, from_logits=from_logits, grad=True,
                                       out=(None, g, None), **kw)
            assert got.grad is g
            assert_array_equal(g, call(name, y, pred, {"sample_weight": full, "from_logits": from_logits,
                                                        **kw}).grad)


@pytest.mark.parametrize("form", ["element", "row", "scalar"])
def test_weight_sums_that_overflow_float64(form):
    """Finite float64 weights whose sum overflows (1e306 each, 15000 elements): the weight pass
    gives inf, not NaN (its Kahan lanes turn NaN past an overflow: weight_lanes_finish), on 1 and
    2 threads, so the mean takes a power of two out of the weights: the mean and its gradient are
    those of the weights divided by 2^20, bit for bit."""
    from xentc import _kernels

    shape = (5000, 3)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 2, shape)
    y = (rng.random(shape) < 0.5).astype(float)
    w = {"element": rng.uniform(0.5, 1, shape) * 1e306, "row": rng.uniform(0.5, 1, (5000, 1)) * 1e306,
         "scalar": 1e306}[form]
    full = np.ascontiguousarray(np.broadcast_to(w, shape)).reshape(-1)
    for n_threads in (1, 2):
        assert _kernels.weight_sum(None, full, None, 0, 0, False, full.size, True, n_threads)[0] == np.inf
        block = np.atleast_1d(np.asarray(w, dtype=float)).reshape(-1)
        rep = full.size // block.size
        assert _kernels.weight_sum(None, block, None, 0, 0, False, full.size, True, n_threads, rep,
                                   block.size)[0] == np.inf
        got = call("binary_cross_entropy", y, x, {"sample_weight": w, "n_threads": n_threads}, from_logits=True)
        want = call("binary_cross_entropy", y, x, {"sample_weight": np.ldexp(w, -20), "n_threads": n_threads},
                    from_logits=True)
        assert np.isfinite(got.loss)
        assert_same(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("L", [3, 15, 16, 17, 40])
def test_weight_per_row_of_any_length(dtype, L):
    """A weight per row of (N, L) binary labels, runs of L elements on either side of the short
    runs staged by one fixed-length store (WEIGHT_RUN = 16 in xentc/_xent_rows.h), with runs cut
    by pieces and blocks: the bits of the broadcast weights."""
    rng = np.random.default_rng(L)
    N = 20011 // L
    x = rng.normal(0, 2, (N, L)).astype(dtype)
    y = (rng.random((N, L)) < 0.4).astype(dtype)
    w = rng.uniform(0.1, 3, (N, 1))
    full = np.ascontiguousarray(np.broadcast_to(w, x.shape))
    for name, kw in (("binary_cross_entropy", {}), ("binary_focal_loss", {"gamma": 2.0})):
        for reduction in ("none", "mean"):
            for n_threads in (1, 2):
                args = dict(from_logits=True, reduction=reduction, n_threads=n_threads, **kw)
                assert_same(call(name, y, x, {**args, "sample_weight": w}),
                            call(name, y, x, {**args, "sample_weight": full}))


def test_repeating_sample_weights_errors_and_extremes():
    """A bad weight of a repeating block is reported at the first element that takes it (the flat
    index of the broadcast shape), with its value; extreme weights, rescaled for the mean, give
    the results of the broadcast array."""
    shape = (5000, 3)
    x = np.linspace(-3, 3, 15000).reshape(shape)
    y = (np.arange(15000) % 2).reshape(shape).astype(float)
    w = np.ones((5000, 1))
    w[4321, 0] = -0.5
    with pytest.raises(ValueError, match=r"^sample_weight: weight -0\.5 at index 12963 "):
        xentc.binary_cross_entropy(y, x, from_logits=True, sample_weight=w)
    w = np.ones(3)
    w[2] = np.nan
    with pytest.raises(ValueError, match=r"^sample_weight: weight nan at index 2 "):
        xentc.binary_focal_loss(y, x, from_logits=True, sample_weight=w)
    # float64 weights beside float32 y_pred are checked before the narrowing cast, in Python: the
    # same index (of the broadcast shape, not of the block)
    for bad, what in ((np.nan, "nan"), (1e300, "1e\\+300"), (-1.0, "-1\\.0")):
        w = np.ones((5000, 1))
        w[4321, 0] = bad
        with pytest.raises(ValueError, match=rf"^sample_weight: weight {what} at index 12963 "):
            xentc.binary_cross_entropy(y.astype(np.float32), x.astype(np.float32), from_logits=True,
                                       sample_weight=w)
    for dtype, tiny in ((np.float64, 1e-310), (np.float32, 1e-40), (np.float64, 1e300)):
        for w in (tiny, np.full((5000, 1), tiny)):
            got = call("binary_cross_entropy", y.astype(dtype), x.astype(dtype), {"sample_weight": w},
                       from_logits=True)
            want = call("binary_cross_entropy", y.astype(dtype), x.astype(dtype),
                        {"sample_weight": np.ascontiguousarray(np.broadcast_to(w, shape))}, from_logits=True)
            assert_same(got, want)
            assert np.isfinite(got.loss) and got.loss > 0
    # and no array of the elements' size is made for them (NumPy's allocations are traced)
    import tracemalloc
    x, y = np.zeros(1_000_000), np.ones(1_000_000)
    for w in (2.0, np.full((1000, 1), 2.0)):
        tracemalloc.start()
        try:
            xentc.binary_cross_entropy(y.reshape(1000, 1000), x.reshape(1000, 1000), from_logits=True,
                                       sample_weight=w)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < x.nbytes // 8, peak


def _weight_dtype_pairs():
    pairs = [(np.float32, np.float64), (np.float64, np.float32), (np.float32, np.float16), (np.float64, np.float16)]
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
        return pairs
    return pairs + [(np.float32, ml_dtypes.bfloat16), (np.float64, ml_dtypes.bfloat16)]


@pytest.mark.parametrize("dtype,wdtype", _weight_dtype_pairs(),
                         ids=lambda d: np.dtype(d).name)
def test_binary_weights_of_the_other_float_dtype(dtype, wdtype):
    """Binary sample weights of another float dtype (float64 beside float32 y_pred, float32
    beside float64, float16 or bfloat16 beside either) are read as they are: the bits of the call
    with the weights converted first,
    in the contiguous loops (logits, probabilities, focal, a weight per element, per row or one for
    all), the strided loop, and the weight pass on 1 and 2 threads; and no array of the elements'
    size is made for them."""
    rng = np.random.default_rng(17)
    n = 3 * 4096 + 5   # several of the kernels' pieces and blocks, and a partial one
    x = rng.normal(0, 2, (n // 5, 5)).astype(dtype)
    p = rng.uniform(0.01, 0.99, x.shape).astype(dtype)
    y = rng.uniform(0, 1, x.shape).astype(dtype)
    for w in (rng.uniform(0.1, 3, x.shape).astype(wdtype), rng.uniform(0.1, 3, (x.shape[0], 1)).astype(wdtype),
              np.asarray(1.3, dtype=wdtype)):
        conv = w.astype(dtype)
        for name, pred, kw in (("binary_cross_entropy", x, {"from_logits": True, "label_smoothing": 0.1}),
                               ("binary_cross_entropy", p, {"from_logits": False}),
                               ("binary_focal_loss", x, {"from_logits": True, "gamma": 2.0}),
                               ("binary_focal_loss", p[::-1, ::2], {"from_logits": False, "gamma": 1.5})):
            yy = y[: pred.shape[0], : pred.shape[1]]
            ww = w if w.ndim < 2 or w.shape[1] == 1 else w[: pred.shape[0], : pred.shape[1]]
            cc = conv if conv.ndim < 2 or conv.shape[1] == 1 else conv[: pred.shape[0], : pred.shape[1]]
            for reduction in ("none", "mean"):
                for n_threads in (1, 2):
                    args = dict(reduction=reduction, n_threads=n_threads, **kw)
                    assert_same(call(name, yy, pred, {**args, "sample_weight": ww}),
                                call(name, yy, pred, {**args, "sample_weight": cc}))
    import tracemalloc
    x, y, w = np.zeros(1_000_000, dtype), np.ones(1_000_000, dtype), np.full(1_000_000, 2.0, wdtype)
    xentc.binary_cross_entropy(y, x, from_logits=True, sample_weight=w)   # (first-call allocations)
    tracemalloc.start()
    try:
        xentc.binary_cross_entropy(y, x, from_logits=True, sample_weight=w)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 8, peak

def test_bool_labels_read_as_numpy_reads_them():
    """A bool array whose bytes are not 0 or 1 (a view of other bytes) holds True wherever a byte
    is nonzero, for NumPy and so for the kernels."""
    raw = np.tile(np.array([0, 1, 2, 255], dtype=np.uint8), 1000)
    yb = raw.view(np.bool_)
    x = np.linspace(-3, 3, raw.size)
    ref = call("binary_cross_entropy", (raw != 0).astype(np.float64), x, {}, from_logits=True, reduction="none")
    assert_same(call("binary_cross_entropy", yb, x, {}, from_logits=True, reduction="none"), ref)


@pytest.mark.parametrize("wdtype", [np.int64, np.int8, np.uint8, np.float16, np.float32,
                                    np.dtype(">f8"), np.bool_], ids=lambda d: np.dtype(d).str)
@pytest.mark.parametrize("name", FUNCS)
def test_weight_dtypes(name, wdtype):
    rng = np.random.default_rng(14)
    y, x, kw = make_inputs(name, np.float64, rng, True)
    sw = rng.integers(0, 2, kw["sample_weight"].shape)
    ref = call(name, y, x, {**kw, "sample_weight": sw.astype(np.float64)}, from_logits=True)
    got = call(name, y, x, {**kw, "sample_weight": sw.astype(wdtype)}, from_logits=True)
    assert_same(got, ref)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_inputs_never_modified(name, from_logits):
    rng = np.random.default_rng(15)
    y, x, kw = make_inputs(name, np.float64, rng, from_logits)
    before = snapshot(y, x, *kw.values())
    for reduction in ("none", "sum", "mean"):
        for g, h in ((False, False), (True, False), (False, True), (True, True)):
            res = getattr(xentc, name)(y, x, from_logits=from_logits, reduction=reduction,
                                       grad=g, hess=h, **kw)
            if g or h:
                for arr in (res.grad, res.hess):
                    if arr is not None:
                        assert not np.shares_memory(arr, x)
                        assert not np.shares_memory(arr, y)
    assert_unchanged(before, [y, x, *kw.values()])
    # returned arrays are fresh: writing to them does not change a later call's result
    r1 = getattr(xentc, name)(y, x, from_logits=from_logits, grad=True, hess=True, **kw)
    g_copy = r1.grad.copy()
    r1.grad[...] = 123.0
    r2 = getattr(xentc, name)(y, x, from_logits=from_logits, grad=True, hess=True, **kw)
    assert_array_equal(r2.grad, g_copy)


@pytest.mark.parametrize("seed", range(4))
def test_random_calls_in_any_layout(seed):
    """Random calls (tests/inputs.py's random_call: every function, option and reduction, labels
    of several dtypes, weights at the edges of the range, a few bad values) with y_pred, y_true
    and sample_weight in random layouts: the contiguous call's error, or its bits (the reduced
    loss within 4 ulp: a tiled layout may add in another order)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from inputs import outcome, random_call

    rng = np.random.default_rng(500 + seed)
    layouts = [lay for lay in LAYOUTS if lay != "memmap"]

    def moved(a, layout):   # (0-d and empty arrays as they are: relayout is for others)
        return a if np.ndim(a) == 0 or np.size(a) == 0 else relayout(a, layout)
    for _ in range(100):
        f, y, x, kw, _ = random_call(rng)
        lay = [layouts[i] for i in rng.integers(len(layouts), size=3)]
        kw2 = dict(kw)
        if "sample_weight" in kw:
            kw2["sample_weight"] = moved(kw["sample_weight"], lay[2])
        want, got = outcome(f, y, x, **kw), outcome(f, moved(y, lay[0]), moved(x, lay[1]), **kw2)
        what = (f.__name__, x.shape, lay, kw)
        if isinstance(want, Exception) or isinstance(got, Exception):
            assert type(got) is type(want) and str(got) == str(want), (what, got, want)
            continue
        for i, (a, b) in enumerate(zip(got if isinstance(got, tuple) else (got,),
                                       want if isinstance(want, tuple) else (want,))):
            if b is None:
                assert a is None, what
                continue
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype and a.shape == b.shape, what
            if i == 0 and kw["reduction"] != "none" and not np.array_equal(a, b, equal_nan=True):
                assert abs(float(a) - float(b)) <= 4 * np.spacing(abs(b)), (what, a, b)
            else:
                assert_array_equal(a, b, err_msg=str(what))
