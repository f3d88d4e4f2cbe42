"""NaN and ±inf in y_pred, for every function, input form and float dtype (docs/semantics.md,
"Non-finite y_pred"). Expected values are the exact limits, worked out by hand below; the
hard-label cases and the probability end points are in test_options.py."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import xentc

INF, NAN = np.inf, np.nan
DTYPES = [np.float16, np.float32, np.float64]
IDS = ["f16", "f32", "f64"]


def _check(res, loss, grad, hess, rtol):
    """Non-finite and zero entries exactly; finite non-zero ones to rtol."""
    for got, want in ((res.loss, loss), (res.grad, grad), (res.hess, hess)):
        got = np.asarray(got, dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        assert got.shape == want.shape
        exact = ~np.isfinite(want) | (want == 0)
        assert_array_equal(got[exact], want[exact])
        np.testing.assert_allclose(got[~exact], want[~exact], rtol=rtol)


RTOL = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-14}


# --------------------------------------------------------------------------------------
# binary: soft labels at infinite logits
# --------------------------------------------------------------------------------------
# l = c1 softplus-side + c0 other side; as z -> +inf, p -> 1: the negative side's loss grows like
# c0 * z (inf), its gradient tends to c0 and the Hessian to 0; the positive side vanishes. For
# z -> -inf the mirror image: loss inf (c1 > 0), gradient -c1, Hessian 0. Focal: the factor
# p^gamma -> 1 on the growing side, so the same limits hold for every gamma.


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("gamma", [None, 0.0, 0.5, 2.0])
def test_binary_soft_labels_at_infinite_logits(gamma, dtype):
    y = np.array([0.5, 0.5, 0.25, 0.25, 0.0, 1.0], dtype=dtype)
    z = np.array([INF, -INF, INF, -INF, INF, INF], dtype=dtype)
    if gamma is None:
        res = xentc.binary_cross_entropy(y, z, from_logits=True, pos_weight=2.0,
                                         reduction="none", grad=True, hess=True)
        c1, c0 = 2.0 * y.astype(float), 1 - y.astype(float)
    else:
        res = xentc.binary_focal_loss(y, z, from_logits=True, gamma=gamma, alpha=0.25,
                                      reduction="none", grad=True, hess=True)
        c1, c0 = 0.25 * y.astype(float), 0.75 * (1 - y.astype(float))
    pos = z > 0
    loss = np.where(np.where(pos, c0, c1) > 0, INF, 0.0)
    grad = np.where(pos, c0, -c1)
    _check(res, loss, grad, np.zeros(6), RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_focal_loss"])
def test_binary_nan_with_infinities(name, dtype):
    """NaN gives NaN in its own element only, also next to infinite logits and in a mean."""
    y = np.array([1.0, 0.0, 1.0, 0.5], dtype=dtype)
    z = np.array([NAN, INF, -INF, 0.0], dtype=dtype)
    fn = getattr(xentc, name)
    r = fn(y, z, from_logits=True, reduction="none", grad=True, hess=True)
    assert np.isnan(r.loss[0]) and np.isnan(r.grad[0]) and np.isnan(r.hess[0])
    assert not np.isnan(r.loss[1:]).any() and not np.isnan(r.grad[1:]).any()
    m = fn(y, z, from_logits=True, grad=True, hess=True)
    assert np.isnan(m.loss)
    assert not np.isnan(m.grad[1:]).any() and not np.isnan(m.hess[1:]).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
def test_binary_nan_logit_gives_itself(gamma, dtype):
    """A NaN logit gives that NaN (its sign too) in loss, gradient and Hessian, in every place of a
    vector, for every label and alpha, whether or not its label weights are 0 (focal: the sign used
    to depend on the instruction set and the element's place; with both coefficients 0 the loss
    was 0, not NaN)."""
    n = 70
    z = np.full(n, NAN, dtype=dtype)
    z[::3] = -z[::3]
    y = np.tile(np.array([0.0, 1.0, 0.25, 0.0, 1.0], dtype=dtype), n)[:n]
    for alpha in (None, 0.25, 1.0, 0.0):
        r = xentc.binary_focal_loss(y, z, gamma=gamma, alpha=alpha, from_logits=True, reduction="none", grad=True,
                                    hess=True)
        for got in (r.loss, r.grad, r.hess):
            assert np.isnan(got).all()
            if gamma > 0:
                assert_array_equal(np.signbit(got), np.signbit(z))


# --------------------------------------------------------------------------------------
# categorical: soft labels and mixed infinities in a logit row
# --------------------------------------------------------------------------------------
# Row [+inf, -inf, 5]: P = (1, 0, 0). With row label weight S = sum_j Y_j the CE gradient is
# S P - Y and the Hessian S P (1 - P) = 0; the loss is inf unless all label weight sits on the
# +inf class. Focal: every class with P -> 0 behaves like CE (1 - P -> 1), the class with
# P -> 1 adds 0, so loss, gradient and Hessian have the same limits.

CAT_ROWS = [
    # (logit row, soft labels, loss, grad)
    ([INF, 0.0, 1.0], [0.7, 0.3, 0.0], INF, [0.3, -0.3, 0.0]),
    ([INF, -INF, 5.0], [0.0, 0.0, 1.0], INF, [1.0, 0.0, -1.0]),
    ([INF, -INF, 5.0], [1.0, 0.0, 0.0], 0.0, [0.0, 0.0, 0.0]),
    ([-INF, INF, -INF], [0.25, 0.5, 0.0], INF, [-0.25, 0.25, 0.0]),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("gamma", [None, 0.5, 2.0])
def test_categorical_soft_labels_at_infinite_logits(gamma, dtype):
    X = np.array([r[0] for r in CAT_ROWS], dtype=dtype)
    Y = np.array([r[1] for r in CAT_ROWS], dtype=dtype)
    if gamma is None:
        res = xentc.cross_entropy(Y, X, from_logits=True, reduction="none", grad=True, hess=True)
    else:
        res = xentc.focal_loss(Y, X, from_logits=True, gamma=gamma, reduction="none", grad=True,
                               hess=True)
    _check(res, [r[2] for r in CAT_ROWS], [r[3] for r in CAT_ROWS], np.zeros(X.shape),
           RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_categorical_nan_next_to_infinities(name, dtype):
    """NaN anywhere in a logit row (even beside ±inf) makes that row NaN, and only that row,
    for every reduction."""
    X = np.array([[INF, -INF, NAN], [NAN, 0.0, 0.0], [INF, 0.0, 0.0], [1.0, 2.0, 3.0]],
                 dtype=dtype)
    y = np.array([0, 1, 0, 2])
    fn = getattr(xentc, name)
    r = fn(y, X, from_logits=True, reduction="none", grad=True, hess=True)
    assert np.isnan(r.loss[:2]).all() and np.isnan(r.grad[:2]).all() and np.isnan(r.hess[:2]).all()
    assert not np.isnan(r.loss[2:]).any() and not np.isnan(r.grad[2:]).any()
    assert not np.isnan(r.hess[2:]).any()
    for reduction in ("mean", "sum"):
        m = fn(y, X, from_logits=True, reduction=reduction, grad=True, hess=True)
        assert np.isnan(m.loss)
        assert not np.isnan(m.grad[2:]).any() and not np.isnan(m.hess[2:]).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_nan_probability_of_an_unlabelled_class(name, dtype):
    """From probabilities each entry is its own input: a NaN entry makes its own gradient and
    Hessian NaN and the row's loss NaN, even where its label weight is 0; the other entries
    keep their values."""
    P = np.array([[0.5, 0.25, NAN], [0.5, 0.25, 0.25]], dtype=dtype)
    Y = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    fn = getattr(xentc, name)
    r = fn(Y, P, reduction="none", grad=True, hess=True)
    assert np.isnan(r.loss[0]) and not np.isnan(r.loss[1])
    assert np.isnan(r.grad[0, 2]) and np.isnan(r.hess[0, 2])
    assert_array_equal(r.grad[0, :2], r.grad[1, :2])
    assert_array_equal(r.hess[0, :2], r.hess[1, :2])


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_focal_loss", "cross_entropy",
                                  "focal_loss"])
def test_infinite_probabilities_are_errors(name):
    """±inf is not a probability: an error naming y_pred (NaN is not an error: it propagates)."""
    binary = name.startswith("binary")
    for bad in (INF, -INF):
        x = np.array([0.5, bad]) if binary else np.array([[0.5, 0.5], [bad, 0.5]])
        y = np.array([1.0, 0.0]) if binary else np.array([0, 1])
        with pytest.raises(ValueError, match=r"^y_pred: probability -?inf at index (1|2) "):
            getattr(xentc, name)(y, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_losses_are_positive_zero(dtype):
    """A zero loss is +0.0, never -0.0 (found by an audit in the binary losses at p = 1, y = 1 and
    saturated focal logits), on the vector paths too (4099 elements)."""
    n = 4099
    one, zero = np.ones(n, dtype), np.zeros(n, dtype)
    calls = [
        lambda: xentc.binary_cross_entropy(one, one, reduction="none"),
        lambda: xentc.binary_cross_entropy(zero, zero, reduction="none"),
        lambda: xentc.binary_focal_loss(one, one, reduction="none"),
        lambda: xentc.binary_focal_loss(one, np.full(n, 800.0, dtype), from_logits=True, reduction="none"),
        lambda: xentc.binary_focal_loss(one, np.full(n, np.inf, dtype), from_logits=True, reduction="none"),
        lambda: xentc.focal_loss(np.zeros(n, int), np.tile(np.eye(3, dtype=dtype)[0], (n, 1)), reduction="none"),
        lambda: xentc.cross_entropy(np.zeros(n, int), np.tile(np.array([np.inf, 0, 0], dtype), (n, 1)),
                                    from_logits=True, reduction="none"),
    ]
    for call in calls:
        loss = call()
        assert (loss == 0).all() and not np.signbit(loss).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("gamma", [None, 0.5, 2.0, 3.0])
@pytest.mark.parametrize("kind", ["binary", "categorical"])
def test_negative_zero_probability_is_zero(kind, gamma, dtype):
    """-0.0 equals 0, so it is a valid probability, and it gives what +0.0 gives: the gradient of
    -log p at p = 0 is -inf (it was +inf, and NaN for focal losses, from the sign of 1 / -0).
    Vector paths too: 4099 binary elements, categorical rows of 3 (the few-class groups) and 300
    classes (the row path)."""
    if kind == "binary":
        fn = xentc.binary_cross_entropy if gamma is None else xentc.binary_focal_loss
        n = 4099
        x = np.zeros(n, dtype)
        x[1::2] = 0.5
        y = np.tile(np.array([1.0, 0.0, 0.3, 1.0], dtype), n)[:n]
        cases = [(y, x)]
    else:
        fn = xentc.cross_entropy if gamma is None else xentc.focal_loss
        cases = []
        for C in (3, 300):
            rows = 40
            x = np.zeros((rows, C), dtype)
            x[:, 1] = 1.0
            x[1::2, 1] = 0.5
            x[1::2, 2] = 0.5
            labels = np.arange(rows) % 3
            soft = np.zeros((rows, C), dtype)
            soft[:, 0] = 0.5
            soft[:, 1] = 0.5
            cases += [(labels, x), (soft, x)]
    kw = {"reduction": "none", "grad": True, "hess": True}
    if gamma is not None:
        kw["gamma"] = gamma
    for y, x in cases:
        neg = np.where(x == 0, -np.zeros_like(x), x)
        assert np.signbit(neg).any()
        a = fn(y, neg, **kw)
        b = fn(y, x, **kw)
        for got, want in zip(a, b):
            assert_array_equal(got, want)
        assert np.isneginf(b.grad).any()   # the case tested: a label on p = 0


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
def test_ignored_sample_adds_nothing_even_nan(name, from_logits, dtype):
    """An ignored sample (ignore_index) adds nothing at all, NaN in its row included: loss,
    gradient and Hessian 0, and the mean is that of the other samples (a sample weight of 0, by
    contrast, leaves NaN as NaN: test_options' zero-weight tests)."""
    fn = getattr(xentc, name)
    x = np.array([[NAN, 0.5, 0.5], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]], dtype)
    if from_logits:
        x[1:] = np.log(x[1:])
    y = np.array([-1, 2, 1])
    kw = {"from_logits": from_logits, "ignore_index": -1, "grad": True, "hess": True}
    r = fn(y, x, reduction="none", **kw)
    assert r.loss[0] == 0 and not np.signbit(r.loss[0])
    assert (r.grad[0] == 0).all() and (r.hess[0] == 0).all()
    m = fn(y, x, reduction="mean", **kw)
    alone = fn(y[1:], x[1:], reduction="mean", **kw)
    assert m.loss == alone.loss
    assert_array_equal(m.grad[1:], alone.grad)
    assert_array_equal(m.hess[1:], alone.hess)
