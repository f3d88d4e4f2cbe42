"""Every loss x input form x label form x option x dtype x reduction x grad/hess, against
the longdouble reference in ``reference.py``; return types; special shapes and values."""

import pathlib
import sys
import zlib

import numpy as np
import pytest
from numpy.testing import assert_array_equal

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference as ref  # noqa: E402
from inputs import make_binary, make_categorical, weights  # noqa: E402

import xentc  # noqa: E402

FUNCS = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]
BINARY = {"binary_cross_entropy", "binary_focal_loss"}
DTYPES = [np.float32, np.float64]
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
REDUCTIONS = ["none", "sum", "mean"]
FLAGS = [(False, False), (True, False), (False, True), (True, True)]

BIN_SHAPE = (6, 3)   # binary: multi-label (N, K)
CAT_SHAPE = (7, 5)   # categorical: (N, C)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def comp_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype in (np.float16, np.float32):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _atol(expected, rtol):
    e = np.asarray(expected, dtype=np.float64)
    finite = e[np.isfinite(e)]
    return rtol * float(np.max(np.abs(finite))) if finite.size else 0.0


def assert_close(actual, expected, rtol, what=""):
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, (what, a.shape, e.shape)
    np.testing.assert_allclose(a, e, rtol=rtol, atol=_atol(e, rtol), equal_nan=True,
                               err_msg=what)


def check_loss_type(loss, reduction, dtype, per_sample_shape):
    cd = comp_dtype(dtype)
    if reduction == "none":
        if per_sample_shape == ():
            # a 0-d array (or a NumPy scalar) of the computation dtype
            assert isinstance(loss, (np.ndarray, np.floating)), type(loss)
            assert np.asarray(loss).shape == ()
        else:
            assert isinstance(loss, np.ndarray), type(loss)
            assert loss.shape == per_sample_shape
        assert np.asarray(loss).dtype == cd
    else:
        assert not isinstance(loss, np.ndarray), type(loss)
        assert isinstance(loss, np.floating), type(loss)
        assert type(loss) is cd.type, (type(loss), cd)


def split_result(res, grad, hess, y_pred):
    """Check the returned structure; return (loss, grad, hess) with None where not asked."""
    y_pred = np.asarray(y_pred)
    if not (grad or hess):
        assert not isinstance(res, tuple), type(res)
        return res, None, None
    assert type(res) is xentc.LossResult, type(res)
    assert res._fields == ("loss", "grad", "hess")
    loss, g, h = res
    for asked, arr, name in ((grad, g, "grad"), (hess, h, "hess")):
        if not asked:
            assert arr is None, name
        else:
            assert isinstance(arr, np.ndarray), (name, type(arr))
            assert arr.shape == y_pred.shape, (name, arr.shape, y_pred.shape)
            exp_dtype = y_pred.dtype if y_pred.dtype.kind == "f" and y_pred.dtype.itemsize <= 8 \
                else np.dtype(np.float64)
            assert arr.dtype == exp_dtype, (name, arr.dtype)
    return loss, g, h


def run_and_check(name, y_true, y_pred, kwargs, *, reduction, grad, hess, rtol,
                  per_sample_shape):
    fn = getattr(xentc, name)
    res = fn(y_true, y_pred, reduction=reduction, grad=grad, hess=hess, **kwargs)
    loss, g, h = split_result(res, grad, hess, y_pred)
    check_loss_type(loss, reduction, np.asarray(y_pred).dtype, per_sample_shape)
    rl, rg, rh = ref.FUNCTIONS[name](y_true, y_pred, reduction=reduction, **kwargs)
    assert_close(loss, rl, rtol, "loss")
    if grad:
        assert_close(g, rg, rtol, "grad")
    if hess:
        assert_close(h, rh, rtol, "hess")
    return res


# Options: name -> builder(rng, label_form, dims) -> kwargs or None (not applicable).
# dims = (per_sample_shape, n_classes_or_K)
def _opt_table():
    def sw_full(rng, lf, d):
        return {"sample_weight": weights(rng, d[0])}

    def sw_bcast(rng, lf, d):
        shp = d[0]
        return {"sample_weight": weights(rng, shp[:1] + (1,) * (len(shp) - 1), lo=1)}

    def sw_scalar(rng, lf, d):
        return {"sample_weight": 1.75}

    def ls(rng, lf, d):
        return {"label_smoothing": 0.1}

    def cw(rng, lf, d):
        return {"class_weight": weights(rng, (d[1],), lo=1)}

    def ign_neg(rng, lf, d):
        return {"ignore_index": -100} if lf == "int" else None

    def ign_class(rng, lf, d):
        return {"ignore_index": 1} if lf == "int" else None

    binary = {
        "plain": lambda r, lf, d: {},
        "pos_weight_scalar": lambda r, lf, d: {"pos_weight": 2.5},
        "pos_weight_vector": lambda r, lf, d: {"pos_weight": weights(r, (d[1],), lo=1)},
        "sample_weight": sw_full,
        "sample_weight_bcast": sw_bcast,
        "sample_weight_scalar": sw_scalar,
        "label_smoothing": ls,
        "combo": lambda r, lf, d: {"pos_weight": weights(r, (d[1],), lo=1), **sw_full(r, lf, d),
                                   "label_smoothing": 0.25},
    }
    bfocal = {
        "plain": lambda r, lf, d: {},
        "gamma0": lambda r, lf, d: {"gamma": 0.0},
        "gamma0.5": lambda r, lf, d: {"gamma": 0.5},
        "gamma1": lambda r, lf, d: {"gamma": 1.0},
        "gamma3.5": lambda r, lf, d: {"gamma": 3.5},
        "alpha": lambda r, lf, d: {"alpha": 0.25},
        "alpha0": lambda r, lf, d: {"alpha": 0.0},
        "sample_weight": sw_full,
        "sample_weight_bcast": sw_bcast,
        "label_smoothing": ls,
        "combo": lambda r, lf, d: {"gamma": 1.5, "alpha": 0.75, **sw_full(r, lf, d),
                                   "label_smoothing": 0.2},
    }
    cat = {
        "plain": lambda r, lf, d: {},
        "class_weight": cw,
        "sample_weight": sw_full,
        "sample_weight_scalar": sw_scalar,
        "ignore_index_neg": ign_neg,
        "ignore_index_class": ign_class,
        "label_smoothing": ls,
        "combo": lambda r, lf, d: {**cw(r, lf, d), **sw_full(r, lf, d), "label_smoothing": 0.2,
                                   **(ign_neg(r, lf, d) or {})},
    }
    cfocal = {
        "plain": lambda r, lf, d: {},
        "gamma0": lambda r, lf, d: {"gamma": 0.0},
        "gamma0.5": lambda r, lf, d: {"gamma": 0.5},
        "gamma1": lambda r, lf, d: {"gamma": 1.0},
        "gamma3.5": lambda r, lf, d: {"gamma": 3.5},
        "alpha_scalar": lambda r, lf, d: {"alpha": 0.25},
        "alpha_vector": lambda r, lf, d: {"alpha": r.integers(0, 9, d[1]) / 8},
        "class_weight": cw,
        "sample_weight": sw_full,
        "ignore_index_neg": ign_neg,
        "ignore_index_class": ign_class,
        "label_smoothing": ls,
        "combo": lambda r, lf, d: {"gamma": 1.5, "alpha": r.integers(0, 9, d[1]) / 8,
                                   **cw(r, lf, d), **sw_full(r, lf, d), "label_smoothing": 0.2,
                                   **(ign_class(r, lf, d) or {})},
    }
    return {"binary_cross_entropy": binary, "binary_focal_loss": bfocal,
            "cross_entropy": cat, "focal_loss": cfocal}


OPTIONS = _opt_table()


def _cases():
    for name in FUNCS:
        label_forms = ["hard", "soft"] if name in BINARY else ["int", "soft"]
        for opt in OPTIONS[name]:
            for lf in label_forms:
                if opt.startswith("ignore_index") and lf != "int":
                    continue
                for from_logits in (False, True):
                    form = "logits" if from_logits else "probs"
                    yield pytest.param(name, opt, lf, from_logits,
                                       id=f"{name}-{opt}-{lf}-{form}")


def _seed(*parts):
    return zlib.crc32("|".join(map(str, parts)).encode())


@pytest.mark.parametrize("grad,hess", FLAGS, ids=["loss", "grad", "hess", "grad+hess"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,opt,label_form,from_logits", list(_cases()))
def test_against_reference(name, opt, label_form, from_logits, dtype, reduction, grad, hess):
    rng = np.random.default_rng(_seed(name, opt, label_form, from_logits, np.dtype(dtype).name))
    if name in BINARY:
        y, x = make_binary(rng, BIN_SHAPE, dtype, from_logits, label_form)
        dims = (BIN_SHAPE, BIN_SHAPE[-1])
        per_sample = BIN_SHAPE
    else:
        y, x = make_categorical(rng, CAT_SHAPE, dtype, from_logits, label_form)
        dims = (CAT_SHAPE[:-1], CAT_SHAPE[-1])
        per_sample = CAT_SHAPE[:-1]
    kwargs = OPTIONS[name][opt](rng, label_form, dims)
    if "ignore_index" in kwargs:
        y = y.copy()
        y[[0, 3]] = kwargs["ignore_index"]
    run_and_check(name, y, x, dict(kwargs, from_logits=from_logits), reduction=reduction,
                  grad=grad, hess=hess, rtol=RTOL[np.dtype(dtype)], per_sample_shape=per_sample)


# --------------------------------------------------------------------------------------
# the reference itself
# --------------------------------------------------------------------------------------


def test_reference_derivatives_match_mpmath_differences():
    for g in (0.0, 0.5, 2.0):
        assert ref._self_check(gamma=g) < 1e-15


def test_reference_matches_scipy():
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(5)
    z = rng.normal(0, 3, (6, 4))
    y = rng.integers(0, 4, 6)
    cw = np.array([0.5, 1.0, 2.0, 1.5])
    lsm = special.log_softmax(z, axis=-1)
    loss, _, _ = ref.cross_entropy(y, z, from_logits=True, class_weight=cw)
    expect = -(cw[y] * lsm[np.arange(6), y]).sum() / cw[y].sum()
    assert abs(float(loss) - expect) < 1e-14
    zz = rng.normal(0, 3, 9)
    yy = rng.uniform(0, 1, 9)
    loss, g, _ = ref.binary_cross_entropy(yy, zz, from_logits=True, reduction="none")
    expect = -(yy * special.log_expit(zz) + (1 - yy) * special.log_expit(-zz))
    np.testing.assert_allclose(loss.astype(float), expect, rtol=1e-14)
    np.testing.assert_allclose(g.astype(float), special.expit(zz) - yy, rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------------------
# K-dimensional inputs, axis, single rows
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [1, -3, 0, 2, 3, -1])
@pytest.mark.parametrize("label_form", ["int", "soft"])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_kdim_axis(name, from_logits, label_form, axis, dtype):
    shape = (2, 4, 3, 5)
    rng = np.random.default_rng(_seed("kdim", name, from_logits, label_form, axis))
    y, x = make_categorical(rng, shape, dtype, from_logits, label_form, axis=axis)
    ax = axis % 4
    C = shape[ax]
    per_sample = shape[:ax] + shape[ax + 1:]
    kwargs = {"from_logits": from_logits, "axis": axis, "class_weight": weights(rng, (C,), lo=1),
              "sample_weight": weights(rng, per_sample[-1:], lo=1)}
    if label_form == "int":
        y = y.copy()
        y.flat[[1, 7]] = -1
        kwargs["ignore_index"] = -1
    for reduction in REDUCTIONS:
        run_and_check(name, y, x, kwargs, reduction=reduction, grad=True, hess=True,
                      rtol=RTOL[np.dtype(dtype)], per_sample_shape=per_sample)
    # the same as moving the class axis last
    a = getattr(xentc, name)(y, x, reduction="none", grad=True, hess=True, **kwargs)
    yl = y if label_form == "int" else np.moveaxis(y, axis, -1)
    b = getattr(xentc, name)(yl, np.moveaxis(x, axis, -1), reduction="none", grad=True, hess=True,
                             **dict(kwargs, axis=-1))
    rt = RTOL[np.dtype(dtype)]
    assert_close(a.loss, b.loss, rt)
    assert_close(a.grad, np.moveaxis(b.grad, -1, axis), rt)
    assert_close(a.hess, np.moveaxis(b.hess, -1, axis), rt)


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_single_row(name, from_logits, dtype):
    rng = np.random.default_rng(_seed("row", name, from_logits))
    _, x = make_categorical(rng, (1, 6), dtype, from_logits, "int")
    x = x[0]
    rt = RTOL[np.dtype(dtype)]
    for label in (np.array(2), np.int64(2), 2):
        for reduction in REDUCTIONS:
            run_and_check(name, label, x, {"from_logits": from_logits}, reduction=reduction,
                          grad=True, hess=True, rtol=rt, per_sample_shape=())
    soft = np.array([0, 0.25, 0.5, 0, 0.25, 0], dtype=dtype)
    for reduction in REDUCTIONS:
        run_and_check(name, soft, x, {"from_logits": from_logits, "label_smoothing": 0.1},
                      reduction=reduction, grad=True, hess=True, rtol=rt, per_sample_shape=())
    # one row equals the first row of a batch of one
    a = getattr(xentc, name)(2, x, from_logits=from_logits, grad=True, hess=True, reduction="sum")
    b = getattr(xentc, name)(np.array([2]), x[None], from_logits=from_logits, grad=True, hess=True,
                             reduction="sum")
    assert_array_equal(a.loss, b.loss)
    assert_array_equal(a.grad, b.grad[0])
    assert_array_equal(a.hess, b.hess[0])


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_focal_loss"])
def test_binary_zero_dim_and_1d(name):
    fn = getattr(xentc, name)
    r0 = fn(np.array(1.0), np.array(0.3), grad=True, hess=True, reduction="none")
    r1 = fn(np.array([1.0]), np.array([0.3]), grad=True, hess=True, reduction="none")
    assert np.asarray(r0.loss).shape == ()
    assert np.asarray(r0.grad).shape == ()
    assert_array_equal(np.asarray(r0.loss), r1.loss[0])
    assert_array_equal(np.asarray(r0.grad), r1.grad[0])
    assert_array_equal(np.asarray(r0.hess), r1.hess[0])
    assert type(fn(1.0, 0.3)) is np.float64


# --------------------------------------------------------------------------------------
# empty inputs, all ignored
# --------------------------------------------------------------------------------------


def _empty_cases():
    yield "binary_cross_entropy", np.zeros(0), np.zeros(0), (0,)
    yield "binary_focal_loss", np.zeros((0, 3)), np.zeros((0, 3)), (0, 3)
    yield "cross_entropy", np.zeros(0, dtype=np.int64), np.zeros((0, 4)), (0,)
    yield "cross_entropy", np.zeros((0, 4)), np.zeros((0, 4)), (0,)
    yield "focal_loss", np.zeros(0, dtype=np.int64), np.zeros((0, 4)), (0,)
    yield "focal_loss", np.zeros((2, 0, 5), dtype=np.int64), np.zeros((2, 3, 0, 5)), (2, 0, 5)


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,y,x,per_sample", list(_empty_cases()))
def test_empty(name, y, x, per_sample, dtype, from_logits):
    fn = getattr(xentc, name)
    x = x.astype(dtype)
    if y.dtype.kind == "f":
        y = y.astype(dtype)
    kw = {"from_logits": from_logits}
    if x.ndim == 4:
        kw["axis"] = 1
    for reduction in ("mean", "sum"):
        res = fn(y, x, reduction=reduction, grad=True, hess=True, **kw)
        check_loss_type(res.loss, reduction, dtype, per_sample)
        assert res.loss == 0.0 and not np.signbit(res.loss)
        assert res.grad.shape == x.shape and res.grad.dtype == x.dtype
        assert res.hess.shape == x.shape and res.hess.dtype == x.dtype
        loss = fn(y, x, reduction=reduction, **kw)
        check_loss_type(loss, reduction, dtype, per_sample)
        assert loss == 0.0
    res = fn(y, x, reduction="none", grad=True, hess=True, **kw)
    check_loss_type(res.loss, "none", dtype, per_sample)
    assert res.grad.shape == x.shape


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_all_ignored(name, from_logits, dtype):
    rng = np.random.default_rng(3)
    _, x = make_categorical(rng, (5, 4), dtype, from_logits, "int")
    y = np.full(5, -100)
    fn = getattr(xentc, name)
    res = fn(y, x, ignore_index=-100, from_logits=from_logits, grad=True, hess=True,
             class_weight=[1.0, 2.0, 3.0, 4.0], sample_weight=np.arange(1, 6.0))
    assert type(res.loss) is np.dtype(dtype).type
    assert res.loss == 0.0 and not np.isnan(res.loss)
    assert_array_equal(res.grad, np.zeros_like(x))
    assert_array_equal(res.hess, np.zeros_like(x))
    assert fn(y, x, ignore_index=-100, from_logits=from_logits, reduction="sum") == 0.0
    assert_array_equal(fn(y, x, ignore_index=-100, from_logits=from_logits, reduction="none"),
                       np.zeros(5, dtype=dtype))
    # labels that all equal an in-range ignore_index
    res = fn(np.full(5, 2), x, ignore_index=2, from_logits=from_logits, grad=True)
    assert res.loss == 0.0
    assert_array_equal(res.grad, np.zeros_like(x))


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_ignored_samples_contribute_nothing(name, from_logits):
    rng = np.random.default_rng(4)
    y, x = make_categorical(rng, (9, 4), np.float64, from_logits, "int")
    y = y.copy()
    y[[2, 5]] = -7
    fn = getattr(xentc, name)
    a = fn(y, x, ignore_index=-7, from_logits=from_logits, grad=True, hess=True)
    keep = np.ones(9, bool)
    keep[[2, 5]] = False
    b = fn(y[keep], x[keep], from_logits=from_logits, grad=True, hess=True)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-14)
    np.testing.assert_allclose(a.grad[keep], b.grad, rtol=1e-14, atol=1e-17)
    assert_array_equal(a.grad[~keep], 0.0)
    assert_array_equal(a.hess[~keep], 0.0)
    none = fn(y, x, ignore_index=-7, from_logits=from_logits, reduction="none")
    assert_array_equal(none[~keep], 0.0)


# --------------------------------------------------------------------------------------
# gamma = 0 focal is cross entropy, bit for bit
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("label_form", ["int", "soft"])
def test_focal_gamma0_is_ce_bitwise(label_form, dtype, from_logits, reduction):
    rng = np.random.default_rng(_seed("g0", label_form, from_logits))
    y, x = make_categorical(rng, (33, 7), dtype, from_logits, label_form)
    kw = {"from_logits": from_logits, "reduction": reduction, "grad": True, "hess": True}
    opts = [{}, {"class_weight": weights(rng, (7,), lo=1)}, {"sample_weight": weights(rng, (33,))},
            {"label_smoothing": 0.15}]
    if label_form == "int":
        opts.append({"ignore_index": -100, "class_weight": weights(rng, (7,), lo=1)})
    for o in opts:
        yy = y
        if "ignore_index" in o:
            yy = y.copy()
            yy[[1, 4]] = -100
        a = xentc.focal_loss(yy, x, gamma=0.0, **kw, **o)
        b = xentc.cross_entropy(yy, x, **kw, **o)
        assert_array_equal(a.loss, b.loss)
        assert_array_equal(a.grad, b.grad)
        assert_array_equal(a.hess, b.hess)
        assert np.asarray(a.loss).dtype == np.asarray(b.loss).dtype
    for o in [{}, {"sample_weight": weights(rng, (33,))}, {"label_smoothing": 0.15}]:
        a = xentc.focal_loss(y, x, gamma=0, **kw, **o)  # an int gamma too
        b = xentc.cross_entropy(y, x, **kw, **o)
        assert_array_equal(a.loss, b.loss)
        assert_array_equal(a.grad, b.grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("label_form", ["hard", "soft"])
def test_binary_focal_gamma0_is_bce_bitwise(label_form, dtype, from_logits, reduction):
    rng = np.random.default_rng(_seed("bg0", label_form, from_logits))
    y, x = make_binary(rng, (41, 3), dtype, from_logits, label_form)
    kw = {"from_logits": from_logits, "reduction": reduction, "grad": True, "hess": True}
    for o in [{}, {"sample_weight": weights(rng, (41, 3))}, {"label_smoothing": 0.15}]:
        a = xentc.binary_focal_loss(y, x, gamma=0.0, **kw, **o)
        b = xentc.binary_cross_entropy(y, x, **kw, **o)
        assert_array_equal(a.loss, b.loss)
        assert_array_equal(a.grad, b.grad)
        assert_array_equal(a.hess, b.hess)


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", ["binary_focal_loss", "focal_loss"])
def test_float32_gamma_is_the_rounded_gamma(name, from_logits):
    """A float32 computation uses gamma rounded to float32 (docs/semantics.md): a gamma that
    rounds to 0 is cross entropy, bit for bit, at the end points too (p = 0 and 1, infinite
    logits: the general power with a zero float exponent gave NaN there), and one that rounds to
    2 is gamma 2."""
    fn = getattr(xentc, name)
    ends = [-np.inf, np.inf] if from_logits else [0.0, 1.0]
    if name == "binary_focal_loss":
        y = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 1.0], np.float32)
        x = np.array(ends + ends[::-1] + [0.25, 0.75], np.float32)
    else:
        y = np.array([0, 1, 2, 1])
        x = np.array([ends + [0.5], ends[::-1] + [0.5], [0.25, 0.5, 0.25], [0.5, 0.25, 0.25]], np.float32)
    kw = {"from_logits": from_logits, "reduction": "none", "grad": True, "hess": True}
    for tiny, plain in ((1e-46, 0.0), (5e-324, 0.0), (2.0 + 1e-12, 2.0)):
        a = fn(y, x, gamma=tiny, **kw)
        b = fn(y, x, gamma=plain, **kw)
        for got, want in zip(a, b):
            assert_array_equal(got, want)
        assert not np.isnan(a.loss).any() and not np.isnan(a.grad).any()


# --------------------------------------------------------------------------------------
# zero weights, infinities, limits, NaN
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_zero_sample_weight_on_infinite_loss(name, from_logits, dtype):
    fn = getattr(xentc, name)
    bad = -np.inf if from_logits else 0.0
    if name in BINARY:
        y = np.array([1.0, 0.0, 1.0, 0.0], dtype=dtype)
        x = np.array([bad, 0.3 if not from_logits else 0.5, 0.6 if not from_logits else -1.0,
                      0.2 if not from_logits else 2.0], dtype=dtype)
        sw = np.array([0.0, 1.0, 2.0, 1.0])
        sel = (0,)
    else:
        y = np.array([1, 0, 2])
        x = np.array([[0.5, bad, 0.5], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]], dtype=dtype)
        if from_logits:
            x = np.array([[0.5, bad, 0.5], [0.2, -1.3, 0.5], [0.1, 2.6, 0.3]], dtype=dtype)
        sw = np.array([0.0, 1.0, 2.0])
        sel = (0,)
    res = fn(y, x, from_logits=from_logits, sample_weight=sw, reduction="none", grad=True,
             hess=True)
    assert res.loss[sel] == 0.0
    assert_array_equal(res.grad[sel], 0.0)
    assert_array_equal(res.hess[sel], 0.0)
    assert np.all(np.isfinite(res.loss)) and np.all(np.isfinite(res.grad))
    for reduction in ("sum", "mean"):
        r = fn(y, x, from_logits=from_logits, sample_weight=sw, reduction=reduction, grad=True,
               hess=True)
        assert np.isfinite(r.loss)
        assert np.all(np.isfinite(r.grad)) and np.all(np.isfinite(r.hess))
        assert_array_equal(r.grad[sel], 0.0)
        # the rest equals the call without the zero-weight sample
        keep = np.arange(len(y)) != 0
        r2 = fn(y[keep], x[keep], from_logits=from_logits, sample_weight=sw[keep],
                reduction=reduction, grad=True)
        rt = RTOL[np.dtype(dtype)]
        assert_close(r.loss, r2.loss, rt)
        assert_close(r.grad[keep], r2.grad, rt)
    # without the zero weight the loss is infinite
    assert np.isposinf(fn(y, x, from_logits=from_logits, reduction="sum"))


INF = np.inf


# (y, z, loss, grad, hess) for binary CE from logits, exact limits
BCE_LOGIT_LIMITS = [
    (1.0, INF, 0.0, 0.0, 0.0),
    (0.0, INF, INF, 1.0, 0.0),
    (1.0, -INF, INF, -1.0, 0.0),
    (0.0, -INF, 0.0, 0.0, 0.0),
    (0.5, INF, INF, 0.5, 0.0),
    (0.5, -INF, INF, -0.5, 0.0),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bce_infinite_logits(dtype):
    y = np.array([c[0] for c in BCE_LOGIT_LIMITS], dtype=dtype)
    z = np.array([c[1] for c in BCE_LOGIT_LIMITS], dtype=dtype)
    res = xentc.binary_cross_entropy(y, z, from_logits=True, reduction="none", grad=True,
                                     hess=True)
    assert_array_equal(res.loss, [c[2] for c in BCE_LOGIT_LIMITS])
    assert_array_equal(res.grad, [c[3] for c in BCE_LOGIT_LIMITS])
    assert_array_equal(res.hess, [c[4] for c in BCE_LOGIT_LIMITS])
    # pos_weight scales the positive side's limit
    r = xentc.binary_cross_entropy(np.array([1.0, 1.0], dtype), np.array([-INF, INF], dtype),
                                   from_logits=True, pos_weight=3.0, reduction="none", grad=True,
                                   hess=True)
    assert_array_equal(r.loss, [INF, 0.0])
    assert_array_equal(r.grad, [-3.0, 0.0])
    assert_array_equal(r.hess, [0.0, 0.0])


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_binary_focal_infinite_logits(dtype, gamma):
    cases = [  # any gamma > 0, alpha None
        (1.0, INF, 0.0, 0.0, 0.0),
        (0.0, -INF, 0.0, 0.0, 0.0),
        (1.0, -INF, INF, -1.0, 0.0),
        (0.0, INF, INF, 1.0, 0.0),
    ]
    y = np.array([c[0] for c in cases], dtype=dtype)
    z = np.array([c[1] for c in cases], dtype=dtype)
    res = xentc.binary_focal_loss(y, z, from_logits=True, gamma=gamma, reduction="none",
                                  grad=True, hess=True)
    assert_array_equal(res.loss, [c[2] for c in cases])
    assert_array_equal(res.grad, [c[3] for c in cases])
    assert_array_equal(res.hess, [c[4] for c in cases])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_binary_large_finite_logits(dtype):
    z = np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    res = xentc.binary_cross_entropy(y, z, from_logits=True, reduction="none", grad=True,
                                     hess=True)
    assert_array_equal(res.loss, [1e4, 1e4, 0.0, 0.0])
    assert_array_equal(res.grad, [1.0, -1.0, 0.0, 0.0])
    assert_array_equal(res.hess, [0.0, 0.0, 0.0, 0.0])


CE_LOGIT_LIMITS = [
    # (row, label, loss, grad, hess)
    ([INF, 0.0, 1.0], 0, 0.0, [0, 0, 0], [0, 0, 0]),
    ([INF, 0.0, 1.0], 1, INF, [1, -1, 0], [0, 0, 0]),
    ([-INF, -INF, -INF], 0, np.log(3.0), [1 / 3 - 1, 1 / 3, 1 / 3], [2 / 9, 2 / 9, 2 / 9]),
    ([INF, INF, 0.0], 0, np.log(2.0), [-0.5, 0.5, 0], [0.25, 0.25, 0]),
    ([INF, INF, INF], 2, np.log(3.0), [1 / 3, 1 / 3, 1 / 3 - 1], [2 / 9, 2 / 9, 2 / 9]),
    ([-INF, 0.0, 0.0], 0, INF, [-1, 0.5, 0.5], [0, 0.25, 0.25]),
    ([-INF, 0.0, 0.0], 1, np.log(2.0), [0, -0.5, 0.5], [0, 0.25, 0.25]),
    ([-INF, 5.0, -INF], 1, 0.0, [0, 0, 0], [0, 0, 0]),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_ce_infinite_logits(dtype):
    X = np.array([c[0] for c in CE_LOGIT_LIMITS], dtype=dtype)
    y = np.array([c[1] for c in CE_LOGIT_LIMITS])
    res = xentc.cross_entropy(y, X, from_logits=True, reduction="none", grad=True, hess=True)
    rt = RTOL[np.dtype(dtype)] / 10
    exp_loss = np.array([c[2] for c in CE_LOGIT_LIMITS])
    np.testing.assert_allclose(res.loss, exp_loss, rtol=rt, atol=0)
    np.testing.assert_allclose(res.grad, np.array([c[3] for c in CE_LOGIT_LIMITS]), rtol=rt,
                               atol=rt)
    np.testing.assert_allclose(res.hess, np.array([c[4] for c in CE_LOGIT_LIMITS]), rtol=rt,
                               atol=rt)
    # exactly zero where the limit is exactly zero
    for i, c in enumerate(CE_LOGIT_LIMITS):
        for j in range(3):
            if c[3][j] == 0:
                assert res.grad[i, j] == 0, (i, j, res.grad[i, j])
            if c[4][j] == 0:
                assert res.hess[i, j] == 0, (i, j, res.hess[i, j])


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_focal_infinite_logits(dtype, gamma):
    cases = [  # any gamma > 0
        ([INF, 0.0, 1.0], 0, 0.0, [0, 0, 0], [0, 0, 0]),
        ([-INF, 0.0, 0.0], 0, INF, [-1, 0.5, 0.5], [0, 0.25, 0.25]),
        ([-INF, 5.0, -INF], 1, 0.0, [0, 0, 0], [0, 0, 0]),
    ]
    X = np.array([c[0] for c in cases], dtype=dtype)
    y = np.array([c[1] for c in cases])
    res = xentc.focal_loss(y, X, from_logits=True, gamma=gamma, reduction="none", grad=True,
                           hess=True)
    rt = RTOL[np.dtype(dtype)] / 10
    np.testing.assert_allclose(res.loss, [c[2] for c in cases], rtol=rt, atol=0)
    np.testing.assert_allclose(res.grad, [c[3] for c in cases], rtol=rt, atol=rt)
    np.testing.assert_allclose(res.hess, [c[4] for c in cases], rtol=rt, atol=rt)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_focal_loss"])
def test_binary_probability_endpoints(name, dtype):
    fn = getattr(xentc, name)
    y = np.array([1.0, 0.0, 1.0, 0.0, 0.5], dtype=dtype)
    p = np.array([1.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype)
    res = fn(y, p, reduction="none", grad=True, hess=True)
    if name == "binary_cross_entropy":
        assert_array_equal(res.loss, [0.0, 0.0, INF, INF, INF])
        assert_array_equal(res.grad, [-1.0, 1.0, -INF, INF, -INF])
        assert_array_equal(res.hess, [1.0, 1.0, INF, INF, INF])
    else:  # gamma = 2
        assert_array_equal(res.loss, [0.0, 0.0, INF, INF, INF])
        assert_array_equal(res.grad[:2], [0.0, 0.0])
        assert_array_equal(res.hess[:2], [0.0, 0.0])
        assert res.grad[2] == -INF and res.grad[3] == INF


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_ce_probability_endpoints(dtype):
    P = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.2, 0.0, 0.8]], dtype=dtype)
    y = np.array([0, 0, 2])
    res = xentc.cross_entropy(y, P, reduction="none", grad=True, hess=True)
    assert res.loss[0] == 0.0
    assert res.loss[1] == INF
    assert_array_equal(res.grad[0], [-1.0, 0.0, 0.0])
    assert_array_equal(res.hess[0], [1.0, 0.0, 0.0])
    assert_array_equal(res.grad[1], [-INF, 0.0, 0.0])
    assert_array_equal(res.hess[1], [INF, 0.0, 0.0])
    # a zero probability on a class with zero label adds nothing (0 log 0 = 0)
    assert np.isfinite(res.loss[2]) and res.grad[2, 1] == 0.0 and res.hess[2, 1] == 0.0
    np.testing.assert_allclose(res.loss[2], -np.log(dtype(0.8)), rtol=RTOL[np.dtype(dtype)])
    rf = xentc.focal_loss(y, P, reduction="none", grad=True, hess=True)
    assert rf.loss[0] == 0.0 and rf.loss[1] == INF
    assert_array_equal(rf.grad[0], 0.0)
    assert_array_equal(rf.hess[0], 0.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_focal_loss"])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_binary_nan_propagates(name, from_logits, dtype):
    fn = getattr(xentc, name)
    y = np.array([1.0, 0.0, 1.0, 0.5], dtype=dtype)
    x = np.array([0.3, np.nan, 0.6, np.nan], dtype=dtype)
    sw = np.array([1.0, 1.0, 1.0, 0.0])  # weight 0 does not hide the NaN
    res = fn(y, x, from_logits=from_logits, sample_weight=sw, reduction="none", grad=True,
             hess=True)
    nan = np.isnan(x)
    assert np.all(np.isnan(res.loss[nan])) and np.all(np.isfinite(res.loss[~nan]))
    assert np.all(np.isnan(res.grad[nan])) and np.all(np.isfinite(res.grad[~nan]))
    assert np.all(np.isnan(res.hess[nan])) and np.all(np.isfinite(res.hess[~nan]))
    for reduction in ("sum", "mean"):
        r = fn(y, x, from_logits=from_logits, sample_weight=sw, reduction=reduction, grad=True)
        assert np.isnan(r.loss)
        assert np.all(np.isfinite(r.grad[~nan]))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_categorical_nan_logit_row(name, dtype):
    fn = getattr(xentc, name)
    X = np.array([[0.1, 0.2, 0.3], [0.1, np.nan, 0.3], [1.0, -1.0, 0.0]], dtype=dtype)
    y = np.array([0, 0, 2])
    res = fn(y, X, from_logits=True, reduction="none", grad=True, hess=True)
    assert np.isnan(res.loss[1]) and np.all(np.isfinite(res.loss[[0, 2]]))
    assert np.all(np.isnan(res.grad[1])) and np.all(np.isnan(res.hess[1]))
    assert np.all(np.isfinite(res.grad[[0, 2]])) and np.all(np.isfinite(res.hess[[0, 2]]))
    r = fn(y, X, from_logits=True, sample_weight=[1.0, 0.0, 1.0], reduction="none", grad=True)
    assert np.isnan(r.loss[1]) and np.all(np.isnan(r.grad[1]))
    assert np.isnan(fn(y, X, from_logits=True))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_categorical_nan_probability(name, dtype):
    fn = getattr(xentc, name)
    P = np.array([[0.2, 0.3, 0.5], [np.nan, 0.5, 0.5], [0.3, 0.3, np.nan]], dtype=dtype)
    y = np.array([0, 1, 2])
    res = fn(y, P, reduction="none", grad=True, hess=True)
    assert np.isfinite(res.loss[0])
    assert np.isnan(res.loss[1]) and np.isnan(res.loss[2])
    assert np.isnan(res.grad[1, 0]) and np.isnan(res.grad[2, 2])
    assert np.isnan(res.hess[1, 0]) and np.isnan(res.hess[2, 2])
    assert np.all(np.isfinite(res.grad[0])) and np.isfinite(res.grad[1, 1])
    assert np.isfinite(res.grad[2, 0])


# --------------------------------------------------------------------------------------
# dtypes: float16, integers, mixed
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", FUNCS)
def test_float16_computed_in_float32(name, from_logits):
    rng = np.random.default_rng(_seed("f16", name, from_logits))
    if name in BINARY:
        y, x = make_binary(rng, (20, 3), np.float16, from_logits, "soft")
    else:
        y, x = make_categorical(rng, (20, 5), np.float16, from_logits, "int")
    fn = getattr(xentc, name)
    x32 = x.astype(np.float32)
    y32 = y.astype(np.float32) if y.dtype == np.float16 else y
    for reduction in REDUCTIONS:
        a = fn(y, x, from_logits=from_logits, reduction=reduction, grad=True, hess=True)
        b = fn(y32, x32, from_logits=from_logits, reduction=reduction, grad=True, hess=True)
        assert a.grad.dtype == np.float16 and a.hess.dtype == np.float16
        assert np.asarray(a.loss).dtype == np.float32
        if reduction != "none":
            assert type(a.loss) is np.float32
        assert_array_equal(a.loss, b.loss)
        assert_array_equal(a.grad, b.grad.astype(np.float16))
        assert_array_equal(a.hess, b.hess.astype(np.float16))


@pytest.mark.parametrize("xdtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64])
def test_integer_logits_computed_in_float64(xdtype):
    rng = np.random.default_rng(8)
    lo = 0 if np.dtype(xdtype).kind == "u" else -5
    z = rng.integers(lo, 6, (10, 4)).astype(xdtype)
    y = rng.integers(0, 4, 10)
    a = xentc.cross_entropy(y, z, from_logits=True, grad=True, hess=True)
    b = xentc.cross_entropy(y, z.astype(np.float64), from_logits=True, grad=True, hess=True)
    assert type(a.loss) is np.float64
    assert a.grad.dtype == np.float64 and a.hess.dtype == np.float64
    assert_array_equal(a.loss, b.loss)
    assert_array_equal(a.grad, b.grad)
    assert_array_equal(a.hess, b.hess)
    yb = rng.integers(0, 2, (10, 4)).astype(np.float64)
    a = xentc.binary_cross_entropy(yb, z, from_logits=True, grad=True, reduction="none")
    b = xentc.binary_cross_entropy(yb, z.astype(np.float64), from_logits=True, grad=True,
                                   reduction="none")
    assert a.loss.dtype == np.float64 and a.grad.dtype == np.float64
    assert_array_equal(a.loss, b.loss)
    assert_array_equal(a.grad, b.grad)


def test_longdouble_computed_in_float64():
    rng = np.random.default_rng(18)
    z = rng.normal(size=(6, 3))
    y = rng.integers(0, 3, 6)
    a = xentc.cross_entropy(y, z.astype(np.longdouble), from_logits=True, grad=True)
    b = xentc.cross_entropy(y, z, from_logits=True, grad=True)
    assert type(a.loss) is np.float64 and a.grad.dtype == np.float64
    assert_array_equal(a.loss, b.loss)
    assert_array_equal(a.grad, b.grad)


@pytest.mark.parametrize("p", [np.array([1, 0, 1]), np.array([True, False, True])],
                         ids=["int", "bool"])
def test_integer_and_bool_probabilities(p):
    y = np.array([1.0, 0.0, 1.0])
    r = xentc.binary_cross_entropy(y, p, grad=True, reduction="none")
    assert r.loss.dtype == np.float64 and r.grad.dtype == np.float64
    assert_array_equal(r.loss, 0.0)


def test_computation_dtype_follows_y_pred():
    rng = np.random.default_rng(9)
    y, x = make_categorical(rng, (6, 4), np.float64, True, "soft")
    a = xentc.cross_entropy(y, x.astype(np.float32), from_logits=True, grad=True,
                            sample_weight=np.ones(6))
    assert type(a.loss) is np.float32 and a.grad.dtype == np.float32
    b = xentc.cross_entropy(y.astype(np.float32), x, from_logits=True, grad=True)
    assert type(b.loss) is np.float64 and b.grad.dtype == np.float64


def test_lists_accepted():
    a = xentc.cross_entropy([0, 2], [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], grad=True)
    b = xentc.cross_entropy(np.array([0, 2]), np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]),
                            grad=True)
    assert_array_equal(a.loss, b.loss)
    assert_array_equal(a.grad, b.grad)
    c = xentc.binary_cross_entropy([1, 0, 1], [0.7, 0.2, 0.9], sample_weight=[1, 2, 3],
                                   reduction="none")
    d = xentc.binary_cross_entropy(np.array([1.0, 0, 1]), np.array([0.7, 0.2, 0.9]),
                                   sample_weight=np.array([1.0, 2, 3]), reduction="none")
    assert_array_equal(c, d)


# --------------------------------------------------------------------------------------
# flags accept NumPy bools; n_threads values; the reductions' relations
# --------------------------------------------------------------------------------------


def test_numpy_bool_flags_and_int_like_n_threads():
    rng = np.random.default_rng(10)
    y, x = make_categorical(rng, (8, 3), np.float64, True, "int")
    a = xentc.cross_entropy(y, x, from_logits=np.True_, grad=np.True_, hess=np.False_,
                            n_threads=np.int64(2))
    b = xentc.cross_entropy(y, x, from_logits=True, grad=True, hess=False, n_threads=1)
    assert a.hess is None
    assert_array_equal(a.loss, b.loss)
    assert_array_equal(a.grad, b.grad)


@pytest.mark.parametrize("name", FUNCS)
def test_sum_of_none_is_sum(name):
    rng = np.random.default_rng(_seed("sumnone", name))
    if name in BINARY:
        y, x = make_binary(rng, (50,), np.float64, True, "soft")
        kw = {"sample_weight": weights(rng, (50,))}
    else:
        y, x = make_categorical(rng, (50, 4), np.float64, True, "int")
        kw = {"sample_weight": weights(rng, (50,)), "class_weight": [1.0, 2.0, 0.5, 0.0]}
    fn = getattr(xentc, name)
    none = fn(y, x, from_logits=True, reduction="none", **kw)
    s = fn(y, x, from_logits=True, reduction="sum", **kw)
    m = fn(y, x, from_logits=True, reduction="mean", **kw)
    np.testing.assert_allclose(none.sum(), s, rtol=1e-14)
    if name in BINARY:
        W = kw["sample_weight"].sum()
    else:
        W = (kw["sample_weight"] * np.asarray(kw["class_weight"])[y]).sum()
    np.testing.assert_allclose(m, s / W, rtol=1e-14)


# --------------------------------------------------------------------------------------
# tiny losses keep their relative accuracy (no cancellation in log space)
# --------------------------------------------------------------------------------------


def test_tiny_losses_relative_accuracy():
    import math

    z = np.array([40.0, -40.0, 700.0, 30.0])
    y = np.array([1.0, 0.0, 1.0, 1.0])
    loss = xentc.binary_cross_entropy(y, z, from_logits=True, reduction="none")
    expect = np.array([math.log1p(math.exp(-40.0)), math.log1p(math.exp(-40.0)),
                       math.log1p(math.exp(-700.0)), math.log1p(math.exp(-30.0))])
    np.testing.assert_allclose(loss, expect, rtol=16 * np.finfo(np.float64).eps, atol=0)
    l32 = xentc.binary_cross_entropy(y.astype(np.float32), np.array([20.0, -20.0, 80.0, 15.0],
                                     dtype=np.float32), from_logits=True, reduction="none")
    e32 = np.array([math.log1p(math.exp(-t)) for t in (20.0, 20.0, 80.0, 15.0)])
    np.testing.assert_allclose(l32, e32, rtol=16 * np.finfo(np.float32).eps, atol=0)
    # confident-correct softmax rows: lse - x_y = log1p(sum_{j != y} exp(x_j - x_y))
    X = np.array([[50.0, 0.0, 0.0], [0.0, 45.0, 1.0], [-3.0, -3.0, 30.0]])
    lab = np.array([0, 1, 2])
    loss = xentc.cross_entropy(lab, X, from_logits=True, reduction="none")
    expect = np.array([math.log1p(2 * math.exp(-50.0)),
                       math.log1p(math.exp(-45.0) + math.exp(-44.0)),
                       math.log1p(2 * math.exp(-33.0))])
    np.testing.assert_allclose(loss, expect, rtol=16 * np.finfo(np.float64).eps, atol=0)
    fl = xentc.focal_loss(lab, X, from_logits=True, gamma=0.0, reduction="none")
    np.testing.assert_allclose(fl, expect, rtol=16 * np.finfo(np.float64).eps, atol=0)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_focal_probability_endpoint_limits(gamma, dtype):
    """Exact limits of F(x) = (1-x)^g log x and its derivatives at x = 0 and x = 1:
    loss inf / 0, grad -inf / (-1 if g == 0 else 0),
    hess +inf / (1 if g == 0, +inf if 0 < g < 1, 2 if g == 1, 0 if g > 1)."""
    if gamma == 0:
        g1, h1 = -1.0, 1.0
    elif gamma < 1:
        g1, h1 = 0.0, INF
    elif gamma == 1:
        g1, h1 = 0.0, 2.0
    else:
        g1, h1 = 0.0, 0.0
    P = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=dtype)
    res = xentc.focal_loss([0, 1], P, gamma=gamma, reduction="none", grad=True, hess=True)
    assert_array_equal(res.loss, [INF, 0.0])
    assert_array_equal(res.grad, [[-INF, 0.0], [0.0, g1]])
    assert_array_equal(res.hess, [[INF, 0.0], [0.0, h1]])
    # binary: y = 1 at p = 0 and 1; y = 0 at p = 1 and 0 (mirror images)
    y = np.array([1.0, 1.0, 0.0, 0.0], dtype=dtype)
    p = np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    res = xentc.binary_focal_loss(y, p, gamma=gamma, reduction="none", grad=True, hess=True)
    assert_array_equal(res.loss, [INF, 0.0, INF, 0.0])
    assert_array_equal(res.grad, [-INF, g1, INF, -g1])
    assert_array_equal(res.hess, [INF, h1, INF, h1])
