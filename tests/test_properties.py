"""Property tests (Hypothesis): invariants that hold for any valid input."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_array_equal

import xentc

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _floats(lo, hi, width=64):
    if width == 32:
        lo, hi = float(np.float32(lo)), float(np.float32(hi))
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=width)


# weights: exact zeros or moderate values (subnormal weights only test underflow)
_weights = st.just(0.0) | _floats(1 / 64, 4)


def _close(a, b, rtol, what="", scale=0.0, units=4):
    """a == b within rtol of the largest |b| (or of `scale`, the size of the terms b is made of,
    where those can cancel to about 0), or within `units` of the smallest subnormal step."""
    a = np.asarray(a)
    # results that are subnormal carry no relative accuracy: allow a few of the smallest steps
    floor = units * np.finfo(a.dtype if a.dtype.kind == "f" else np.float64).smallest_subnormal
    a = a.astype(np.float64)
    b = np.asarray(b, dtype=np.float64)
    finite = b[np.isfinite(b)]
    atol = max(rtol * max(np.abs(finite).max() if finite.size else 0.0, scale), float(floor))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


@st.composite
def binary_cases(draw, *, logit_range=20.0, p_range=(0.0, 1.0), dtype=np.float64,
                 options=True):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=6))
    from_logits = draw(st.booleans())
    if from_logits:
        x = draw(hnp.arrays(dtype, shape, elements=_floats(-logit_range, logit_range,
                                                           np.dtype(dtype).itemsize * 8)))
    else:
        x = draw(hnp.arrays(dtype, shape, elements=_floats(*p_range, np.dtype(dtype).itemsize * 8)))
    if draw(st.booleans()):
        y = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0])))
    else:
        y = draw(hnp.arrays(np.float64, shape, elements=_floats(0, 1)))
    kw = {"from_logits": from_logits}
    if options:
        if draw(st.booleans()):
            kw["sample_weight"] = draw(hnp.arrays(np.float64, shape, elements=_weights))
        if draw(st.booleans()):
            kw["label_smoothing"] = draw(_floats(0, 0.5))
    return y, x.astype(dtype), kw


@st.composite
def categorical_cases(draw, *, logit_range=20.0, p_range=(0.0, 1.0), dtype=np.float64,
                      options=True, soft=None):
    n = draw(st.integers(1, 6))
    C = draw(st.integers(2, 6))
    from_logits = draw(st.booleans())
    w = np.dtype(dtype).itemsize * 8
    if from_logits:
        x = draw(hnp.arrays(dtype, (n, C), elements=_floats(-logit_range, logit_range, w)))
    else:
        x = draw(hnp.arrays(dtype, (n, C), elements=_floats(*p_range, w)))
    soft = draw(st.booleans()) if soft is None else soft
    if soft:
        y = draw(hnp.arrays(np.float64, (n, C), elements=_floats(0, 1)))
    else:
        y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, C - 1)))
    kw = {"from_logits": from_logits}
    if options:
        if draw(st.booleans()):
            kw["sample_weight"] = draw(hnp.arrays(np.float64, (n,), elements=_weights))
        if draw(st.booleans()):
            kw["class_weight"] = draw(hnp.arrays(np.float64, (C,), elements=_weights))
        if draw(st.booleans()):
            kw["label_smoothing"] = draw(_floats(0, 0.5))
        if not soft and draw(st.booleans()):
            kw["ignore_index"] = draw(st.integers(-1, C - 1))
    return y, x.astype(dtype), kw


def _focal_opts(draw, C=None):
    kw = {"gamma": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]) | _floats(0, 5))}
    choice = draw(st.integers(0, 2))
    if choice == 1:
        kw["alpha"] = draw(_floats(0, 1))
    elif choice == 2 and C is not None:
        kw["alpha"] = np.array(draw(st.lists(_floats(0, 1), min_size=C, max_size=C)))
    return kw


# --------------------------------------------------------------------------------------


@SETTINGS
@given(case=binary_cases(), data=st.data())
def test_binary_loss_nonnegative(case, data):
    y, x, kw = case
    for name in ("binary_cross_entropy", "binary_focal_loss"):
        extra = _focal_opts(data.draw) if name == "binary_focal_loss" else {}
        if name == "binary_cross_entropy" and data.draw(st.booleans()):
            extra["pos_weight"] = data.draw(_weights)
        res = getattr(xentc, name)(y, x, reduction="none", grad=True, hess=True, **kw, **extra)
        assert res.loss.shape == x.shape
        assert np.all(res.loss >= 0), (name, res.loss)  # NaN fails too
        assert not np.any(np.isnan(res.grad)) and not np.any(np.isnan(res.hess))


@SETTINGS
@given(case=categorical_cases(), data=st.data())
def test_categorical_loss_nonnegative(case, data):
    y, x, kw = case
    for name in ("cross_entropy", "focal_loss"):
        extra = _focal_opts(data.draw, x.shape[1]) if name == "focal_loss" else {}
        res = getattr(xentc, name)(y, x, reduction="none", grad=True, hess=True, **kw, **extra)
        assert np.all(res.loss >= 0), (name, res.loss)
        assert not np.any(np.isnan(res.grad)) and not np.any(np.isnan(res.hess))


@SETTINGS
@given(case=categorical_cases(), reduction=st.sampled_from(["none", "sum", "mean"]))
def test_focal_gamma0_equals_ce(case, reduction):
    y, x, kw = case
    a = xentc.focal_loss(y, x, gamma=0.0, reduction=reduction, grad=True, hess=True, **kw)
    b = xentc.cross_entropy(y, x, reduction=reduction, grad=True, hess=True, **kw)
    assert_array_equal(a.loss, b.loss)
    assert_array_equal(a.grad, b.grad)
    assert_array_equal(a.hess, b.hess)


@SETTINGS
@given(case=binary_cases(), reduction=st.sampled_from(["none", "sum", "mean"]))
def test_binary_focal_gamma0_equals_bce(case, reduction):
    y, x, kw = case
    a = xentc.binary_focal_loss(y, x, gamma=0.0, reduction=reduction, grad=True, hess=True, **kw)
    b = xentc.binary_cross_entropy(y, x, reduction=reduction, grad=True, hess=True, **kw)
    assert_array_equal(a.loss, b.loss)
    assert_array_equal(a.grad, b.grad)
    assert_array_equal(a.hess, b.hess)


@SETTINGS
@given(case=binary_cases(logit_range=30.0), data=st.data(),
       reduction=st.sampled_from(["none", "sum", "mean"]))
def test_binary_equals_two_class_softmax(case, data, reduction):
    y, z, kw = case
    if not kw["from_logits"]:
        return
    Z = np.stack([z, np.zeros_like(z)], axis=-1)
    Y = np.stack([y, 1 - y], axis=-1)
    focal = data.draw(st.booleans())
    if focal:
        f = _focal_opts(data.draw)
        a = xentc.binary_focal_loss(y, z, reduction=reduction, grad=True, hess=True, **kw, **f)
        if "alpha" in f:
            f["alpha"] = np.array([f["alpha"], 1 - f["alpha"]])
        b = xentc.focal_loss(Y, Z, reduction=reduction, grad=True, hess=True, **kw, **f)
    else:
        pw = data.draw(st.none() | _weights)
        a = xentc.binary_cross_entropy(y, z, pos_weight=pw, reduction=reduction, grad=True,
                                       hess=True, **kw)
        cw = None if pw is None else np.array([pw, 1.0])
        b = xentc.cross_entropy(Y, Z, class_weight=cw, reduction=reduction, grad=True, hess=True,
                                **kw)
    _close(a.loss, b.loss, 1e-12, "loss")
    _close(a.grad, b.grad[..., 0], 1e-11, "grad")
    _close(a.hess, b.hess[..., 0], 1e-11, "hess")
    if not focal:
        # with hard labels too: class 0 is the positive class
        if np.all((y == 0) | (y == 1)) and "label_smoothing" not in kw and reduction != "mean":
            lab = (1 - y).astype(np.int64)
            c = xentc.cross_entropy(lab, Z, class_weight=cw, reduction=reduction, grad=True,
                                    **kw)
            _close(a.loss, c.loss, 1e-12, "loss, hard labels")
            _close(a.grad, c.grad[..., 0], 1e-11, "grad, hard labels")


@SETTINGS
@given(data=st.data(), which=st.sampled_from(["binary", "categorical"]))
def test_sample_weight_scales_per_sample_losses(data, which):
    if which == "binary":
        y, x, kw = data.draw(binary_cases(p_range=(1e-3, 1 - 1e-3), options=False))
        names = ["binary_cross_entropy", "binary_focal_loss"]
        sshape = x.shape
    else:
        y, x, kw = data.draw(categorical_cases(p_range=(1e-3, 1), options=False))
        names = ["cross_entropy", "focal_loss"]
        sshape = x.shape[:1]
    sw = data.draw(hnp.arrays(np.float64, sshape, elements=_weights))
    for name in names:
        fn = getattr(xentc, name)
        a = fn(y, x, sample_weight=sw, reduction="none", grad=True, hess=True, **kw)
        b = fn(y, x, reduction="none", grad=True, hess=True, **kw)
        swg = sw if which == "binary" else sw[:, None]
        gscale = hscale = 0.0
        if which == "binary":
            # a binary derivative is the difference of its two sides' terms, which can cancel to 0
            # exactly without weights and to an ulp of the terms with them (y = p = 0.75: the
            # gradient -w y / p + w (1 - y) / (1 - p)): compare against the size of those terms
            one, zero = (fn(np.full_like(y, v), x, reduction="none", grad=True, hess=True, **kw) for v in (1, 0))
            gscale = float(np.max(sw * (y * np.abs(one.grad) + (1 - y) * np.abs(zero.grad))))
            hscale = float(np.max(sw * (y * np.abs(one.hess) + (1 - y) * np.abs(zero.hess))))
        _close(a.loss, sw * b.loss, 1e-13, name)
        _close(a.grad, swg * b.grad, 1e-13, name, scale=gscale)
        _close(a.hess, swg * b.hess, 1e-13, name, scale=hscale)
        # the sum is the weighted sum; the mean divides by the total weight
        s = fn(y, x, sample_weight=sw, reduction="sum", **kw)
        # each per-sample loss may be its 4 smallest steps off (above), so the sum that many times
        # (Hypothesis found 2 rows of subnormal labels 6 steps apart: 3e-323 against 6e-323)
        _close(s, np.sum(sw * b.loss), 1e-12, name, units=4 * max(b.loss.size, 1))


def _term_scale(y, kw):
    """A bound on sample_weight * sum_j c_j over the rows: the size of the terms S P_j and c_j whose
    difference is a gradient entry (they cancel to ~0 when every class is alike, and then which class
    carries the last rounding error depends on the class order)."""
    w = float(np.max(np.abs(kw["sample_weight"]))) if "sample_weight" in kw else 1.0
    cw = float(np.max(kw["class_weight"])) if "class_weight" in kw else 1.0
    ysum = float(np.max(np.sum(np.abs(y), axis=1))) if y.ndim == 2 else 1.0
    return w * cw * (max(ysum, 1.0) + 1.0)


@SETTINGS
@given(case=categorical_cases(), data=st.data())
def test_permuting_classes_permutes_results(case, data):
    y, x, kw = case
    C = x.shape[1]
    perm = np.array(data.draw(st.permutations(range(C))))
    inv = np.argsort(perm)
    xp = x[:, perm]
    kwp = dict(kw)
    if y.ndim == 1:
        yp = inv[y]
        if "ignore_index" in kw and kw["ignore_index"] >= 0:
            # an in-range ignored class is renamed like the labels
            kwp["ignore_index"] = int(inv[kw["ignore_index"]])
    else:
        yp = y[:, perm]
    if "class_weight" in kw:
        kwp["class_weight"] = kw["class_weight"][perm]
    for name in ("cross_entropy", "focal_loss"):
        extra = _focal_opts(data.draw, C) if name == "focal_loss" else {}
        extrap = dict(extra)
        if isinstance(extra.get("alpha"), np.ndarray):
            extrap["alpha"] = extra["alpha"][perm]
        fn = getattr(xentc, name)
        a = fn(y, x, reduction="none", grad=True, hess=True, **kw, **extra)
        b = fn(yp, xp, reduction="none", grad=True, hess=True, **kwp, **extrap)
        _close(b.loss, a.loss, 1e-13, name)
        _close(b.grad, a.grad[:, perm], 1e-12, name, scale=_term_scale(y, kw))
        _close(b.hess, a.hess[:, perm], 1e-12, name, scale=_term_scale(y, kw))


@SETTINGS
@given(data=st.data(), which=st.sampled_from(["binary", "categorical"]))
def test_float32_agrees_with_float64(data, which):
    if which == "binary":
        y, x, kw = data.draw(binary_cases(logit_range=10.0, p_range=(1e-2, 1 - 1e-2),
                                          dtype=np.float32))
        names = ["binary_cross_entropy", "binary_focal_loss"]
    else:
        y, x, kw = data.draw(categorical_cases(logit_range=10.0, p_range=(1e-2, 1),
                                               dtype=np.float32))
        names = ["cross_entropy", "focal_loss"]
    if y.dtype.kind == "f":
        # float32 computation rounds soft labels to float32 (a label of 5e-324 becomes 0): give
        # the float64 call the same label values, so only the computation differs
        y = y.astype(np.float32)
    for name in names:
        fn = getattr(xentc, name)
        for reduction in ("none", "mean"):
            a = fn(y, x, reduction=reduction, grad=True, hess=True, **kw)
            b = fn(y, x.astype(np.float64), reduction=reduction, grad=True, hess=True, **kw)
            assert np.asarray(a.loss).dtype == np.float32 and a.grad.dtype == np.float32
            # the float64 answer as float32 can hold it (a label_smoothing of 1e-192 only shows in float64)
            b = type(b)(*(np.asarray(v).astype(np.float32) for v in b))
            _close(a.loss, b.loss, 2e-5, name)
            # float32 rounds each term: allow for cancellation between terms of the size
            # of the Hessian/gradient scale (a zero gradient at y == p, for instance)
            scale = 1 + np.max(np.abs(b.grad)) + np.max(np.abs(b.hess))
            np.testing.assert_allclose(a.grad, b.grad, rtol=2e-5, atol=2e-6 * scale,
                                       err_msg=name)
            np.testing.assert_allclose(a.hess, b.hess, rtol=5e-5, atol=5e-6 * scale,
                                       err_msg=name)


def _fd_check(fn, y, x, kw, per_row):
    """Compare grad and hess with float64 central differences of the loss (and grad)."""
    res = fn(y, x, reduction="none", grad=True, hess=True, **kw)
    g_fd = np.empty_like(x)
    h_fd = np.empty_like(x)
    h = 1e-6
    flat_positions = range(x.shape[-1]) if per_row else [None]
    for j in flat_positions:
        e = np.zeros_like(x)
        if per_row:
            e[..., j] = h
        else:
            e[...] = h
        lp = fn(y, x + e, reduction="none", grad=True, **kw)
        lm = fn(y, x - e, reduction="none", grad=True, **kw)
        sel = (Ellipsis, j) if per_row else (Ellipsis,)
        dl = (lp.loss - lm.loss) / (2 * h)
        g_fd[sel] = dl
        h_fd[sel] = ((lp.grad - lm.grad) / (2 * h))[sel]
    # differences lose about eps * |value| / h to rounding: allow for it
    scale_g = 1 + np.max(np.abs(res.loss))
    scale_h = 1 + np.max(np.abs(res.grad)) + np.max(np.abs(res.hess))
    np.testing.assert_allclose(res.grad, g_fd, rtol=1e-6, atol=1e-8 * scale_g,
                               err_msg="grad vs differences of the loss")
    np.testing.assert_allclose(res.hess, h_fd, rtol=1e-6, atol=1e-8 * scale_h,
                               err_msg="hess vs differences of the gradient")
    return res


@SETTINGS
@given(case=binary_cases(logit_range=8.0, p_range=(0.05, 0.95)), data=st.data())
def test_binary_derivatives_match_differences(case, data):
    y, x, kw = case
    for name in ("binary_cross_entropy", "binary_focal_loss"):
        extra = _focal_opts(data.draw) if name == "binary_focal_loss" else {}
        _fd_check(getattr(xentc, name), y, x, {**kw, **extra}, per_row=False)


@SETTINGS
@given(case=categorical_cases(logit_range=8.0, p_range=(0.05, 0.95)), data=st.data())
def test_categorical_derivatives_match_differences(case, data):
    y, x, kw = case
    for name in ("cross_entropy", "focal_loss"):
        extra = _focal_opts(data.draw, x.shape[1]) if name == "focal_loss" else {}
        _fd_check(getattr(xentc, name), y, x, {**kw, **extra}, per_row=True)


@SETTINGS
@given(data=st.data(), which=st.sampled_from(["binary", "categorical"]))
def test_mean_is_sum_over_total_weight(data, which):
    if which == "binary":
        y, x, kw = data.draw(binary_cases(p_range=(1e-3, 1 - 1e-3)))
        names = ["binary_cross_entropy", "binary_focal_loss"]
    else:
        y, x, kw = data.draw(categorical_cases(p_range=(1e-3, 1)))
        names = ["cross_entropy", "focal_loss"]
    for name in names:
        fn = getattr(xentc, name)
        s = fn(y, x, reduction="sum", grad=True, hess=True, **kw)
        m = fn(y, x, reduction="mean", grad=True, hess=True, **kw)
        if which == "binary":
            sw = np.broadcast_to(kw.get("sample_weight", 1.0), x.shape)
            W = sw.sum()
        else:
            sw = np.broadcast_to(kw.get("sample_weight", 1.0), x.shape[:1])
            if y.ndim == 1:
                cw = np.asarray(kw.get("class_weight", np.ones(x.shape[1])))
                keep = y != kw.get("ignore_index", -10**9)
                W = (sw * cw[y] * keep).sum()
            else:
                W = sw.sum()
        if W == 0:
            continue
        _close(m.loss, s.loss / W, 1e-13, name)
        # a derivative is a difference of parts of the size of the weights (and, from
        # probabilities, of the Hessian): where they cancel (y == p) the mean and the sum round
        # their parts differently, so the tolerance counts the parts, not only the result
        parts = np.max(np.abs(m.hess)) + np.max(sw) / W
        np.testing.assert_allclose(m.grad, s.grad / W, rtol=1e-13,
                                   atol=1e-13 * np.max(np.abs(s.grad / W)) + 1e-14 * parts, err_msg=name)
        _close(m.hess, s.hess / W, 1e-13, name)
        none = fn(y, x, reduction="none", **kw)
        _close(s.loss, none.sum(), 1e-12, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_of_many_float32_losses_is_accurate(dtype):
    # reductions are pairwise/wide: the mean of 10^6 losses is within a few ulp
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 1_000_000).astype(dtype)
    y = rng.uniform(0, 1, 1_000_000).astype(dtype)
    per = xentc.binary_cross_entropy(y, z, from_logits=True, reduction="none")
    m = xentc.binary_cross_entropy(y, z, from_logits=True)
    exact = np.sum(per.astype(np.longdouble)) / len(z)
    eps = np.finfo(dtype).eps
    assert abs(float(m) - float(exact)) <= 8 * eps * float(exact)


@pytest.mark.parametrize("gamma", [5e-324, 1e-310, 1e-300])
@pytest.mark.parametrize("sample_weight", [0.5, 1e-10])
def test_focal_probability_zero_with_tiny_gamma(gamma, sample_weight):
    """p = 0 for the true class: the gradient is -inf, not NaN. (weight * gamma underflowed to 0
    and met log(0) / 1 = -inf when it was multiplied first; Hypothesis found gamma = 5e-324.)"""
    r = xentc.focal_loss(np.array([0]), np.array([[0.0, 0.0]]), gamma=gamma, sample_weight=np.array([sample_weight]),
                         reduction="none", grad=True, hess=True)
    assert r.loss[0] == np.inf
    assert r.grad[0, 0] == -np.inf and r.grad[0, 1] == 0
    assert r.hess[0, 0] == np.inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [2, 7, 64, 67, 1000])
@pytest.mark.parametrize("name, gamma", [("cross_entropy", None), ("focal_loss", 2.0), ("focal_loss", 0.7)])
def test_integer_labels_equal_one_hot_labels(dtype, C, name, gamma):
    """Integer labels and their one-hot rows give the same bits: the kernels take a shortcut for
    integer labels (focal: only the label's class has a coefficient) that must not change results.
    Rows include ties for the maximum, infinite logits and a label at the maximum."""
    rng = np.random.default_rng(C)
    n = 40
    x = (rng.standard_normal((n, C)) * 3).astype(dtype)
    y = rng.integers(0, C, n)
    x[0, :] = 1.5                                   # every class ties
    x[1, y[1]] = x[1].max() + 1                     # the label is the maximum
    x[2, (y[2] + 1) % C] = np.inf                   # +inf elsewhere than the label
    x[3, :] = -np.inf
    x[3, y[3]] = 0.0                                # one finite class
    x[4, y[4]] = -np.inf                            # the label has probability 0
    kw = {"from_logits": True, "grad": True, "hess": True, "class_weight": rng.integers(1, 9, C) / 4}
    _assert_labels_equal_one_hot(name, y, x, kw, gamma)


def _assert_labels_equal_one_hot(name, y, x, kw, gamma):
    if gamma is not None:
        kw = {**kw, "gamma": gamma}
    onehot = np.eye(x.shape[1], dtype=x.dtype)[y]
    for reduction in ("none", "sum"):
        a = getattr(xentc, name)(y, x, reduction=reduction, **kw)
        b = getattr(xentc, name)(onehot, x, reduction=reduction, **kw)
        assert_array_equal(a.loss, b.loss)
        assert_array_equal(a.grad, b.grad)
        assert_array_equal(a.hess, b.hess)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [2, 7, 64, 67, 1000])
@pytest.mark.parametrize("name, gamma", [("cross_entropy", None), ("focal_loss", 2.0), ("focal_loss", 0.7)])
def test_integer_labels_equal_one_hot_labels_from_probabilities(dtype, C, name, gamma):
    """From probabilities, integer labels without smoothing take a shortcut (only the label's class
    is computed, every other class gets the zeros of a zero coefficient, except in rows with a
    NaN); one-hot rows go through the loop over every class. Same bits, including rows with
    probability 0 or 1 at the label, zeros elsewhere, a NaN beside or at the label, and rows
    longer than the 64 classes a loop takes at a time."""
    rng = np.random.default_rng(C + 1)
    n = 40
    x = rng.dirichlet(np.full(C, 0.5), n)
    y = rng.integers(0, C, n)
    x[0, :] = 0.0
    x[0, y[0]] = 1.0                                # certain and right
    x[1, y[1]] = 0.0                                # the label has probability 0: inf loss
    x[2, (y[2] + 1) % C] = np.nan                   # NaN beside the label
    x[3, y[3]] = np.nan                             # NaN at the label
    x[4, :] = 1.0 / C
    x = x.astype(dtype)
    sw = rng.integers(0, 4, n) / 2
    sw[:5] = 1.0
    kw = {"grad": True, "hess": True, "class_weight": rng.integers(1, 9, C) / 4, "sample_weight": sw}
    _assert_labels_equal_one_hot(name, y, x, kw, gamma)
    if gamma is not None:
        kw["gamma"] = gamma
    r = getattr(xentc, name)(y, x, reduction="none", **kw)
    assert np.isnan(r.loss[2]) and np.isnan(r.loss[3])
    assert np.isnan(r.grad[2, (y[2] + 1) % C]) and r.grad[2, y[2]] != 0
    assert np.isinf(r.loss[1]) and r.loss[0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", ["binary", "sample_weight", "class_weight"])
@pytest.mark.parametrize("shift", ["tiny", "huge"])
def test_mean_is_unchanged_by_a_power_of_two_in_the_weights(dtype, which, shift):
    """The mean and its derivatives do not change when every weight is multiplied by the same power
    of two, also where the weights' sum is so small or so large that 1/sum is no normal number of
    the dtype (an audit found -inf gradients, NaN at zero weights and a silent 0.0 loss there).
    Compared bit for bit with the same call on weights of moderate size."""
    rng = np.random.default_rng(7)
    fi = np.finfo(dtype)
    # 2**e times weights in [1/4, 2]: the sum's inverse overflows (tiny) or underflows (huge) the dtype
    e = {"tiny": fi.minexp - 3, "huge": fi.maxexp - 4}[shift]
    w = rng.integers(0, 9, 12) / 4
    x = rng.normal(0, 2, (12, 4)).astype(dtype)
    if which == "binary":
        y = (rng.random(12) < 0.5).astype(dtype)
        call = lambda **kw: xentc.binary_cross_entropy(y, x[:, 0], from_logits=True, grad=True, hess=True, **kw)  # noqa: E731
        big = dict(sample_weight=np.ldexp(w, e).astype(dtype))
        ref = dict(sample_weight=w.astype(dtype))
    else:
        y = rng.integers(0, 3, 12)   # class 3 never a label
        call = lambda **kw: xentc.cross_entropy(y, x, from_logits=True, grad=True, hess=True,  # noqa: E731
                                                label_smoothing=0.1, **kw)
        if which == "sample_weight":
            big, ref = dict(sample_weight=np.ldexp(w, e).astype(dtype)), dict(sample_weight=w.astype(dtype))
        else:
            cw = np.array([0.25, 1.5, 2.0, 1.0])
            big, ref = dict(class_weight=np.ldexp(cw, e)), dict(class_weight=cw)
    with np.errstate(all="raise"):
        got, want = call(**big), call(**ref)
    assert np.isfinite(want.loss) and want.loss > 0
    assert_array_equal(got.loss, want.loss)
    assert_array_equal(got.grad, want.grad)
    assert_array_equal(got.hess, want.hess)


@pytest.mark.parametrize("gamma", [None, 2.0])
@pytest.mark.parametrize("which", ["binary", "categorical", "categorical_class_weight"])
@pytest.mark.parametrize("e", [-166, -140, -110])
def test_float64_weights_below_float32_range(which, gamma, e):
    """float64 sample weights beside float32 y_pred are taken in float32 by the kernels; weights
    of 2**-166 (all of them zeros in float32) gave a mean of 0.0 and zero derivatives, and weights
    of 2**-140 (float32 subnormals) lost bits. The mean only sees their ratios, so such weights
    are brought into range first: the result has the bits of the same call with weights of
    moderate size, as in test_mean_is_unchanged_by_a_power_of_two_in_the_weights."""
    rng = np.random.default_rng(11)
    w = rng.integers(0, 9, 12) / 4 + np.array([1.0] + [0.0] * 11)   # not all zero
    x = rng.normal(0, 2, (12, 4)).astype(np.float32)
    kw = {"grad": True, "hess": True, "from_logits": True}
    if which == "binary":
        fn = xentc.binary_cross_entropy if gamma is None else xentc.binary_focal_loss
        y = (rng.random(12) < 0.5).astype(np.float32)
        x = x[:, 0]
    else:
        fn = xentc.cross_entropy if gamma is None else xentc.focal_loss
        y = rng.integers(0, 4, 12)
        kw["label_smoothing"] = 0.1
        if which == "categorical_class_weight":
            kw["class_weight"] = np.array([0.25, 1.5, 2.0, 1.0])
    if gamma is not None:
        kw["gamma"] = gamma
    got = fn(y, x, sample_weight=np.ldexp(w, e), **kw)
    want = fn(y, x, sample_weight=w, **kw)
    assert np.isfinite(want.loss) and want.loss > 0
    assert_array_equal(got.loss, want.loss)
    assert_array_equal(got.grad, want.grad)
    assert_array_equal(got.hess, want.hess)
    # the sum of such terms is below float32's range: 0, as float32 holds it
    assert fn(y, x, sample_weight=np.ldexp(w, -166), reduction="sum", **kw).loss == 0


@pytest.mark.parametrize("focal", [False, True])
@pytest.mark.parametrize("sample_weight", [None, "moderate", "tiny"])
@pytest.mark.parametrize("e", [-166, -140, -110])
def test_float64_class_weights_below_float32_range(focal, sample_weight, e):
    """float64 class weights beside float32 y_pred, all of them zeros (2**-166) or subnormals
    (2**-140) in float32, or with float32 bits below 2**-126 (2**-110 times weights down to 1/8):
    with integer labels they are on both sides of the mean, which only sees their ratios, so they
    are brought into range before they are narrowed, as sample weights are
    (test_float64_weights_below_float32_range); the mean of 2**-166 ones was 0.0 with zero
    derivatives. The bits of the same call with class weights of moderate size, beside sample
    weights of moderate size or of 2**-150 (both lifted). With soft labels the mean divides by the
    sample weights alone, and its terms stay below float32's range: 0."""
    rng = np.random.default_rng(17)
    C, n = 5, 12
    x = rng.normal(0, 3, (n, C)).astype(np.float32)
    y = rng.integers(0, C, n)
    y[::4] = -100
    cw = np.array([1.0, 0.125, 1.75, 0.0, 1.5])
    kw = {"from_logits": True, "grad": True, "hess": True, "ignore_index": -100, "label_smoothing": 0.1}
    if focal:
        kw.update(gamma=2.0, alpha=np.linspace(0.2, 1.0, C))
    sw = rng.integers(1, 9, n) / 4
    if sample_weight is not None:
        kw["sample_weight"] = sw * 2.0 ** -150 if sample_weight == "tiny" else sw
    fn = xentc.focal_loss if focal else xentc.cross_entropy
    got = fn(y, x, class_weight=np.ldexp(cw, e), **kw)
    want = fn(y, x, class_weight=cw, **dict(kw, sample_weight=None if sample_weight is None else sw))
    assert np.isfinite(want.loss) and want.loss > 0
    assert_array_equal(got.loss, want.loss)
    assert_array_equal(got.grad, want.grad)
    assert_array_equal(got.hess, want.hess)
    assert not got.grad[::4].any() and not got.hess[::4].any()
    if e == -166:   # every term of the sum and of each loss below float32's range: zeros
        assert fn(y, x, class_weight=np.ldexp(cw, e), reduction="sum", **kw).loss == 0
        assert not fn(y, x, class_weight=np.ldexp(cw, e), reduction="none", **kw).loss.any()
        del kw["ignore_index"]
        r = fn(np.eye(C)[np.where(y < 0, 0, y)], x, class_weight=np.ldexp(cw, e), **kw)
        assert r.loss == 0 and not r.grad.any()


@pytest.mark.parametrize("focal", [False, True])
@pytest.mark.parametrize("e", [-146, -140, -132])
def test_mean_with_class_weights_below_float32_range_beside_sample_weights(focal, e):
    """float32 class weights of 2**e beside sample weights of moderate size: their products are
    float32 subnormals (bits lost) or zeros, and taking the power of two out of the sample weights
    would overflow them. The mean takes it out of the class weights then, and counts the
    denominator again from the scaled weights; an audit found NaN in the derivatives of ignored
    rows, inf and NaN in the others and the loss 5e-4 off. The bits of the same call with class
    weights of moderate size."""
    rng = np.random.default_rng(13)
    C, n = 5, 12
    x = rng.normal(0, 3, (n, C)).astype(np.float32)
    y = rng.integers(0, C, n)
    y[::4] = -100
    cw = rng.random(C) + 0.5
    kw = {"from_logits": True, "grad": True, "hess": True, "ignore_index": -100,
          "sample_weight": (rng.random(n) * 4 + 0.1).astype(np.float32)}
    fn = xentc.focal_loss if focal else xentc.cross_entropy
    got = fn(y, x, class_weight=np.ldexp(cw, e).astype(np.float32).astype(np.float64), **kw)
    # the reference: the same float32 class weights (subnormal ones keep fewer bits), moved into range
    want = fn(y, x, class_weight=np.ldexp(np.ldexp(cw, e).astype(np.float32).astype(np.float64), -e), **kw)
    assert np.isfinite(want.loss) and want.loss > 0
    assert_array_equal(got.loss, want.loss)
    assert_array_equal(got.grad, want.grad)
    assert_array_equal(got.hess, want.hess)
    assert not got.grad[::4].any() and not got.hess[::4].any()


def test_weighted_sum_of_subnormal_losses():
    """The case Hypothesis found: labels of 5e-324 against p = 1/2, weights 2. Each element's
    product rounds to a subnormal step on its own, so the weighted sum and the sum of weighted
    per-sample losses differ by up to a few steps a sample (cross entropy: 3e-323 against 6e-323),
    no more."""
    y = np.full((2, 3), 5e-324)
    p = np.full((2, 3), 0.5)
    sw = np.array([2.0, 2.0])
    for name in ("cross_entropy", "focal_loss"):
        fn = getattr(xentc, name)
        per = fn(y, p, from_logits=False, reduction="none")
        s = fn(y, p, from_logits=False, sample_weight=sw, reduction="sum")
        _close(s, np.sum(sw * per), 1e-12, name, units=4 * per.size)


def test_reduced_loss_past_float32_is_inf_without_a_warning():
    """A float32 sum of weighted losses past float32's range is inf, with no RuntimeWarning (NumPy
    warned "overflow encountered in cast" when the double sum was cast: an error under -W error),
    on the plain and the general path; a double sum that rounds to float32's largest number is
    that number."""
    import warnings

    x = np.zeros(4, np.float32)
    y = np.ones(4, np.float32)
    yc = np.zeros(4, np.int64)
    xc = np.zeros((4, 3), np.float32)
    big = np.full(4, 3e38, np.float32)
    top = float(np.finfo(np.float32).max)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for sw in (big, big[:1]):   # the plain path, and broadcast weights (categorical: the general path)
            assert xentc.binary_cross_entropy(y, x, from_logits=True, sample_weight=sw, reduction="sum") == np.inf
            assert xentc.cross_entropy(yc, xc, from_logits=True, sample_weight=sw, reduction="sum") == np.inf
            r = xentc.cross_entropy(yc, xc, from_logits=True, sample_weight=sw, reduction="sum", grad=True)
            assert r.loss == np.inf and r.loss.dtype == np.float32 and np.isfinite(r.grad).all()
        # per-sample losses near float32's largest number (logits of -3e38 at label 1): their sum
        # is inf, their mean the float32 loss
        far = np.full(3, -3e38, np.float32)
        assert xentc.binary_cross_entropy(y[:3], far, from_logits=True, reduction="sum") == np.inf
        assert xentc.binary_cross_entropy(y[:3], far, from_logits=True) == np.float32(3e38)
        # the cast itself (xentc._api._loss_scalar): a double just below the midpoint between
        # float32's largest number and 2**128 rounds down to that number, the midpoint to inf
        from xentc import _api

        bound = 2.0 ** 128 - 2.0 ** 103
        for value, want in ((np.nextafter(bound, 0.0), top), (bound, np.inf), (-bound, -np.inf), (1e300, np.inf),
                            (np.nan, np.nan), (top, top), (1.5, 1.5)):
            got = _api._loss_scalar(float(value), np.dtype(np.float32))
            assert type(got) is np.float32 and (got == want or (np.isnan(got) and np.isnan(want))), value
        assert _api._loss_scalar(1e300, np.dtype(np.float64)) == 1e300
