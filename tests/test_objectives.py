"""xentc.objectives: gradient-boosting objectives, checked by training real LightGBM and XGBoost
models against the libraries' built-in objectives, and against the longdouble reference."""

import pathlib
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference as ref  # noqa: E402

from xentc.objectives import BinaryCrossEntropy, BinaryFocal, MulticlassFocal, Softmax  # noqa: E402

N, D, K, ROUNDS = 500, 5, 3, 20


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N, D))
    yb = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=N) > 0.3).astype(np.float64)
    ym = np.argmax(X[:, :K] + rng.normal(size=(N, K)), axis=1).astype(np.float64)
    w = rng.integers(1, 5, N) / 2
    return X, yb, ym, w


def imbalanced(rng, n, multiclass):
    """A set where the rare class (about 5-10%) is predictable from the features."""
    X = rng.normal(size=(n, D))
    if multiclass:
        s = np.stack([np.full(n, 2.5), X[:, 0] * 2, X[:, 1] * 2 - 1], axis=1)
        y = np.argmax(s + rng.gumbel(size=(n, 3)), axis=1).astype(np.float64)
    else:
        y = (2 * X[:, 0] - X[:, 1] + rng.logistic(size=n) > 3.5).astype(np.float64)
    return X, y


# ----------------------------------------------------------------------------------------
# derivatives: layout, dtype and values against the reference
# ----------------------------------------------------------------------------------------
OBJECTIVES = {
    "bce": (lambda: BinaryCrossEntropy(pos_weight=2.5),
            lambda y, z, w: ref.binary_cross_entropy(y, z, from_logits=True, pos_weight=2.5,
                                                     sample_weight=w, reduction="none")),
    "binary_focal": (lambda: BinaryFocal(gamma=2.0, alpha=0.25, min_hessian=0.0),
                     lambda y, z, w: ref.binary_focal_loss(y, z, gamma=2.0, alpha=0.25, from_logits=True,
                                                           sample_weight=w, reduction="none")),
    "softmax": (lambda: Softmax(),
                lambda y, z, w: ref.cross_entropy(y, z, from_logits=True, sample_weight=w, reduction="none")),
    "focal": (lambda: MulticlassFocal(gamma=1.5, min_hessian=0.0),
              lambda y, z, w: ref.focal_loss(y, z, gamma=1.5, from_logits=True, sample_weight=w,
                                             reduction="none")),
}


@pytest.mark.parametrize("name", OBJECTIVES)
def test_grad_hess_against_reference(name, data):
    X, yb, ym, w = data
    make, reference = OBJECTIVES[name]
    obj = make()
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (N, K) if obj.multiclass else N)
    y = ym.astype(np.int64) if obj.multiclass else yb
    g, h = obj.grad_hess(y, z, w)
    _, g_ref, h_ref = reference(y, z, w)
    assert g.dtype == h.dtype == np.float64 and g.shape == h.shape == z.shape
    assert_allclose(g, g_ref.astype(np.float64), rtol=1e-12, atol=1e-14)
    assert_allclose(h, h_ref.astype(np.float64), rtol=1e-12, atol=1e-14)


class FakeLgbDataset:
    """Stands in for lightgbm.Dataset: the adapters only read labels and weights."""

    def __init__(self, y, w):
        self.y, self.w = y, w

    def get_label(self):
        return np.asarray(self.y, dtype=np.float32)

    def get_weight(self):
        return self.w


def test_adapters_layout_and_dtype(data):
    _, yb, ym, w = data
    z2 = np.random.default_rng(2).normal(size=(N, K))
    for adapter in ("lightgbm", "xgboost"):
        g, h = getattr(Softmax(), adapter)(z2, FakeLgbDataset(ym, w))
        assert g.shape == h.shape == (N, K) and g.dtype == h.dtype == np.float32
        g64, h64 = Softmax().grad_hess(ym, z2, w)
        assert_allclose(g, g64.astype(np.float32), rtol=0, atol=0)
        g, h = getattr(BinaryCrossEntropy(), adapter)(z2[:, 0], FakeLgbDataset(yb, np.array([])))
        assert g.shape == (N,) and g.dtype == np.float32
        assert_allclose(g, BinaryCrossEntropy().grad_hess(yb, z2[:, 0])[0].astype(np.float32), rtol=0, atol=0)


def test_hessian_floor_and_scale():
    y = np.array([1.0, 1.0])
    z = np.array([-4.0, 3.0])  # the first is confidently wrong: negative exact focal Hessian
    _, h_exact = BinaryFocal(min_hessian=0.0).grad_hess(y, z)
    assert h_exact[0] < 0 < h_exact[1]
    _, h = BinaryFocal(min_hessian=1e-4).grad_hess(y, z)
    assert h[0] == 1e-4 and h[1] == h_exact[1] > 1e-4
    zz = np.array([[0.3, -1.0, 2.0]])
    _, h1 = Softmax().grad_hess(np.array([1]), zz)
    _, h2 = Softmax(hessian_scale=2.0).grad_hess(np.array([1]), zz)
    assert_allclose(h2, 2 * h1, rtol=0, atol=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="hessian_scale"):
        Softmax(hessian_scale=0.0)
    with pytest.raises(ValueError, match="min_hessian"):
        BinaryFocal(min_hessian=-1.0)
    with pytest.raises(TypeError, match="pos_weight"):
        BinaryCrossEntropy(pos_weight="2")
    with pytest.raises(ValueError, match="raw_score"):
        Softmax().grad_hess(np.array([0, 1]), np.zeros(2))
    with pytest.raises(ValueError, match="y_true: multiclass labels"):
        Softmax().grad_hess(np.array([0.5, 1.0]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="y_true: label 3"):
        Softmax().grad_hess(np.array([0, 3]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="infinite"):
        BinaryCrossEntropy().init_score(np.zeros(4))
    for Obj in (Softmax, MulticlassFocal):   # a label past num_class: an error, not K + 1 scores
        with pytest.raises(ValueError, match=r"y_true: label 2 is outside \[0, 2\)"):
            Obj().init_score(np.array([0, 1, 2]), num_class=2)
        with pytest.raises(ValueError, match=r"y_true: label -1"):
            Obj().init_score(np.array([0, -1, 1]), num_class=2)
    for obj in (BinaryCrossEntropy(), BinaryFocal(), Softmax(), MulticlassFocal()):   # no labels: said, no warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match="^y_true: no labels"):
                obj.init_score(np.array([], dtype=np.int64))


# ----------------------------------------------------------------------------------------
# init_score: the best constant, against closed forms and a numerical minimiser
# ----------------------------------------------------------------------------------------
def test_init_score_cross_entropy(data):
    _, yb, ym, w = data
    c = BinaryCrossEntropy(pos_weight=3.0).init_score(yb, w)
    assert c == pytest.approx(np.log(3.0 * np.sum(w * yb) / np.sum(w * (1 - yb))), rel=1e-14)
    c = Softmax().init_score(ym, w, num_class=K)
    freq = np.array([np.sum(w[ym == k]) for k in range(K)])
    assert_allclose(c, np.log(freq) - np.log(freq).mean(), rtol=1e-13)


def test_init_score_focal(data):
    scipy_opt = pytest.importorskip("scipy.optimize")
    _, yb, ym, w = data
    c = BinaryFocal(gamma=2.0, alpha=0.25).init_score(yb, w)

    def total_b(t):
        z = np.full(N, float(np.ravel(t)[0]))
        return float(ref.binary_focal_loss(yb, z, gamma=2.0, alpha=0.25, from_logits=True, sample_weight=w,
                                           reduction="sum")[0])

    best = scipy_opt.minimize_scalar(total_b, bracket=(-3, 0, 3), tol=1e-12).x
    assert c == pytest.approx(best, abs=1e-5)
    assert total_b(c) <= total_b(best) * (1 + 1e-12)

    cm = MulticlassFocal(gamma=2.0).init_score(ym, w)

    def total_m(t):
        z = np.tile(np.asarray(t, dtype=np.float64), (N, 1))
        return float(ref.focal_loss(ym.astype(np.int64), z, gamma=2.0, from_logits=True, sample_weight=w,
                                    reduction="sum")[0])

    res = scipy_opt.minimize(total_m, np.zeros(K), method="Nelder-Mead",
                             options=dict(xatol=1e-9, fatol=1e-12, maxiter=4000))
    assert total_m(cm) <= res.fun * (1 + 1e-10)
    assert_allclose(cm, res.x - res.x.mean(), atol=1e-4)


# ----------------------------------------------------------------------------------------
# LightGBM
# ----------------------------------------------------------------------------------------
LGB_PARAMS = dict(num_leaves=7, learning_rate=0.1, verbose=-1, deterministic=True, num_threads=1,
                  force_row_wise=True, seed=0)


def test_lightgbm_binary_matches_builtin(data):
    lgb = pytest.importorskip("lightgbm")
    X, yb, _, w = data
    # the built-in starts from the mean log-odds unless told not to; a custom objective from 0
    params = dict(LGB_PARAMS, boost_from_average=False)
    builtin = lgb.train(dict(params, objective="binary", scale_pos_weight=3.0), lgb.Dataset(X, yb, weight=w), ROUNDS)
    custom = lgb.train(dict(params, objective=BinaryCrossEntropy(pos_weight=3.0).lightgbm),
                       lgb.Dataset(X, yb, weight=w), ROUNDS)
    raw_b, raw_c = builtin.predict(X, raw_score=True), custom.predict(X, raw_score=True)
    assert np.ptp(raw_b) > 1.0  # the model learnt something
    assert_allclose(raw_c, raw_b, rtol=1e-6, atol=1e-6)


def test_lightgbm_softmax_matches_builtin(data):
    lgb = pytest.importorskip("lightgbm")
    X, _, ym, w = data
    params = dict(LGB_PARAMS, boost_from_average=False, num_class=K)
    builtin = lgb.train(dict(params, objective="multiclass"), lgb.Dataset(X, ym, weight=w), ROUNDS)
    # LightGBM scales the softmax Hessian diagonal by K / (K - 1); mirror it
    custom = lgb.train(dict(params, objective=Softmax(hessian_scale=K / (K - 1)).lightgbm),
                       lgb.Dataset(X, ym, weight=w), ROUNDS)
    raw_b, raw_c = builtin.predict(X, raw_score=True), custom.predict(X, raw_score=True)
    assert raw_c.shape == (N, K) and np.ptp(raw_b) > 1.0
    assert_allclose(raw_c, raw_b, rtol=1e-6, atol=1e-6)
    # with the exact Hessian the steps are larger, so the models differ (the factor matters)
    exact = lgb.train(dict(params, objective=Softmax().lightgbm), lgb.Dataset(X, ym, weight=w), ROUNDS)
    assert np.max(np.abs(exact.predict(X, raw_score=True) - raw_b)) > 0.05


# ----------------------------------------------------------------------------------------
# XGBoost
# ----------------------------------------------------------------------------------------
XGB_PARAMS = dict(max_depth=3, eta=0.1, nthread=1, seed=0, tree_method="hist")


def test_xgboost_binary_matches_builtin(data):
    xgb = pytest.importorskip("xgboost")
    X, yb, _, w = data
    # base_margin makes both start from raw score 0 (the built-in would estimate base_score)
    dtrain = xgb.DMatrix(X, yb, weight=w, base_margin=np.zeros(N))
    dpred = xgb.DMatrix(X, base_margin=np.zeros(N))
    builtin = xgb.train(dict(XGB_PARAMS, objective="binary:logistic", scale_pos_weight=3.0), dtrain, ROUNDS)
    custom = xgb.train(dict(XGB_PARAMS, disable_default_eval_metric=1), dtrain, ROUNDS,
                       obj=BinaryCrossEntropy(pos_weight=3.0).xgboost)
    raw_b = builtin.predict(dpred, output_margin=True)
    raw_c = custom.predict(dpred, output_margin=True)
    assert np.ptp(raw_b) > 1.0
    assert_allclose(raw_c, raw_b, rtol=1e-5, atol=1e-5)  # XGBoost sums leaf values in float32


def test_xgboost_softmax_matches_builtin(data):
    xgb = pytest.importorskip("xgboost")
    X, _, ym, w = data
    dtrain = xgb.DMatrix(X, ym, weight=w, base_margin=np.zeros((N, K)))
    dpred = xgb.DMatrix(X, base_margin=np.zeros((N, K)))
    builtin = xgb.train(dict(XGB_PARAMS, objective="multi:softprob", num_class=K), dtrain, ROUNDS)
    # XGBoost's multi:softprob uses 2 p (1 - p) as the Hessian; mirror it
    custom = xgb.train(dict(XGB_PARAMS, num_class=K, disable_default_eval_metric=1), dtrain, ROUNDS,
                       obj=Softmax(hessian_scale=2.0).xgboost)
    raw_b = builtin.predict(dpred, output_margin=True)
    raw_c = custom.predict(dpred, output_margin=True)
    assert raw_c.shape == (N, K) and np.ptp(raw_b) > 1.0
    assert_allclose(raw_c, raw_b, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------
# focal objectives: they train, and beat the best constant model on held-out imbalanced data
# ----------------------------------------------------------------------------------------
def held_out_focal(obj, y, raw):
    """Mean focal loss of raw scores, from the independent reference."""
    if obj.multiclass:
        return float(ref.focal_loss(y.astype(np.int64), raw, gamma=obj.gamma, alpha=obj.alpha,
                                    from_logits=True)[0])
    return float(ref.binary_focal_loss(y, raw, gamma=obj.gamma, alpha=obj.alpha, from_logits=True)[0])


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
@pytest.mark.parametrize("multiclass", [False, True])
def test_focal_beats_constant(library, multiclass):
    lib = pytest.importorskip(library)
    rng = np.random.default_rng(11)
    X, y = imbalanced(rng, 4000, multiclass)
    n_train = 3000
    rare = np.min(np.bincount(y.astype(np.int64))) / len(y)
    assert rare < 0.12  # the set is imbalanced
    obj = MulticlassFocal(gamma=2.0) if multiclass else BinaryFocal(gamma=2.0, alpha=0.75)
    c = obj.init_score(y[:n_train])
    k = 3 if multiclass else 1
    start = np.tile(c, (n_train, 1)) if multiclass else np.full(n_train, c)
    if library == "lightgbm":
        params = dict(LGB_PARAMS, objective=obj.lightgbm, **({"num_class": k} if multiclass else {}))
        model = lib.train(params, lib.Dataset(X[:n_train], y[:n_train], init_score=start), 60)
        raw = model.predict(X[n_train:], raw_score=True) + c  # predictions exclude init_score
    else:
        params = dict(XGB_PARAMS, disable_default_eval_metric=1, min_child_weight=0.01,
                      **({"num_class": k} if multiclass else {}))
        model = lib.train(params, lib.DMatrix(X[:n_train], y[:n_train], base_margin=start), 60, obj=obj.xgboost)
        test_start = np.tile(c, (len(y) - n_train, 1)) if multiclass else np.full(len(y) - n_train, c)
        raw = model.predict(lib.DMatrix(X[n_train:], base_margin=test_start), output_margin=True)
    assert np.all(np.isfinite(raw))
    y_test = y[n_train:]
    const = np.broadcast_to(c, raw.shape)
    model_loss, const_loss = held_out_focal(obj, y_test, raw), held_out_focal(obj, y_test, const)
    assert model_loss < 0.8 * const_loss, (model_loss, const_loss)
