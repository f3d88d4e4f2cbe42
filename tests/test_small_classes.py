"""Softmax rows with few classes from logits, the path that works on groups of rows at a time
(``softmax_small_group`` in ``xentc/_xent_rows.h``, taken for C up to a threshold per dtype,
``xentc._kernels.SMALL_CLASSES``: 127 in float32, 64 in float64); one class more runs
the same checks on the per-row path, which the other tests now reach only with more classes.
Rows from probabilities of fewer classes than a chunk (``prob_chunk_at``, and pieces of such rows
at a time: ``softmax_prob_piece``) are checked here too.

Many rows per call (the other categorical tests mostly use a handful), C on both sides of the
threshold and of the vector widths, every option, against the extended-precision reference
``tests/reference.py`` row by row; special values against limits worked out by hand; and the
bits of a row against the same row computed alone, in another block position or layout.
"""

import pathlib
import sys
import zlib

import numpy as np
import pytest
from numpy.testing import assert_array_equal

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference as ref  # noqa: E402
from inputs import make_categorical, weights  # noqa: E402

import xentc  # noqa: E402

THRESHOLDS = sorted(set(xentc._kernels.SMALL_CLASSES.values()))   # small_c<T>() in _xent_rows.h
SMALL_C = THRESHOLDS[-1]
CLASSES = [1, 2, 3, 7, 8, 9, 15, 16, 17, 33] + [c + d for c in THRESHOLDS for d in (0, 1)]
DTYPES = [np.float32, np.float64]
IDS = ["f32", "f64"]
N = 1000
ULPS = 16                         # the accuracy bar of the design notes
INF, NAN = np.inf, np.nan
# (function, gamma): cross entropy, and focal with each power policy of the kernels
# (integer gamma: PowInt; 0.5: PowViaDouble for float32, the libm pow for float64)
LOSSES = [("cross_entropy", None), ("focal_loss", 2.0), ("focal_loss", 0.5), ("focal_loss", 3.0)]
LOSS_IDS = ["ce", "focal2", "focal0.5", "focal3"]


def _seed(*parts):
    return zlib.crc32(repr(parts).encode())


def _options(rng, C, label_form, name, which):
    """Keyword arguments for one option set: "plain" or "all" options at once."""
    if which == "plain":
        return {}
    kw = {"sample_weight": weights(rng, (N,)), "class_weight": weights(rng, (C,), lo=1),
          "label_smoothing": 0.1}
    if label_form == "int":
        kw["ignore_index"] = -100
    if name == "focal_loss":
        kw["alpha"] = rng.uniform(0.1, 0.9, C)
    return kw


def _labels(rng, y, label_form, kw):
    if label_form == "int" and "ignore_index" in kw:
        y = y.copy()
        y[rng.choice(N, 50, replace=False)] = kw["ignore_index"]
    return y


def _call(name, gamma, y, x, **kw):
    extra = {} if gamma is None else {"gamma": gamma}
    return getattr(xentc, name)(y, x, from_logits=True, **extra, **kw)


def _ref(name, gamma, y, x, **kw):
    extra = {} if gamma is None else {"gamma": gamma}
    return ref.FUNCTIONS[name](y, x, from_logits=True, **extra, **kw)


def _row_mass(y, C, kw):
    """Per row: sample weight times the sum of the class coefficients c_j = cw_j a_j Y'_j (Y' the
    smoothed label), the natural scale of a row's gradient and Hessian entries (the gradient is
    S P_j - c_j: two terms up to S that cancel where P_j is close to c_j / S)."""
    y = np.asarray(y)
    eps = kw.get("label_smoothing", 0.0)
    if y.ndim == 1:
        Y = (np.arange(C) == y[:, None]).astype(np.float64)
        if "ignore_index" in kw:
            Y[y == kw["ignore_index"]] = 0.0
        Y = Y * (1 - eps) + eps / C * (Y.sum(1, keepdims=True) > 0)
    else:
        Y = y.astype(np.float64) * (1 - eps) + eps / C
    c = Y * kw.get("class_weight", 1.0) * kw.get("alpha", 1.0)
    return c.sum(1) * kw.get("sample_weight", 1.0)


def _assert_rows_close(got, want, dtype, what, mass=None):
    """Per row: the loss within ULPS ulp of itself; gradient and Hessian within ULPS ulp of the
    row's coefficient mass (``_row_mass``)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    w2 = want.reshape(want.shape[0], -1)
    g2 = got.reshape(w2.shape)
    scale = np.abs(w2) if mass is None else np.asarray(mass, dtype=np.float64)[:, None]
    err = np.abs(g2 - w2) / (np.finfo(dtype).eps * np.maximum(scale, np.finfo(dtype).tiny))
    err[g2 == w2] = 0.0
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err.max() <= ULPS, f"{what}: {err.max():.3g} ulp at row {worst[0]}: got {g2[worst]!r}, want {w2[worst]!r}"


def _assert_matches_reference(res, y, x, name, gamma, dtype, kw, what=""):
    rl, rg, rh = _ref(name, gamma, y, x, reduction="none", **kw)
    mass = _row_mass(y, x.shape[1], kw)
    _assert_rows_close(res.loss, rl, dtype, what + "loss")
    _assert_rows_close(res.grad, rg, dtype, what + "grad", mass)
    _assert_rows_close(res.hess, rh, dtype, what + "hess", mass)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("which", ["plain", "all"])
@pytest.mark.parametrize("label_form", ["int", "soft"])
@pytest.mark.parametrize("loss", LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("C", CLASSES)
def test_many_rows_against_reference(C, loss, label_form, which, dtype):
    name, gamma = loss
    rng = np.random.default_rng(_seed("ref", C, name, gamma, label_form, which, np.dtype(dtype).name))
    y, x = make_categorical(rng, (N, C), dtype, True, label_form)
    kw = _options(rng, C, label_form, name, which)
    y = _labels(rng, y, label_form, kw)
    res = _call(name, gamma, y, x, reduction="none", grad=True, hess=True, **kw)
    if C == 1:
        # one class: P = 1 whatever the logit, so the loss is 0 and its derivatives are 0 (the
        # reference's focal closed forms evaluate 0^(gamma - 1) there and give NaN)
        for a in res:
            assert_array_equal(a, 0.0)
        return
    _assert_matches_reference(res, y, x, name, gamma, dtype, kw)
    if "ignore_index" in kw:
        gone = y == kw["ignore_index"]
        assert_array_equal(res.loss[gone], 0.0)
        assert_array_equal(res.grad[gone], 0.0)
        assert_array_equal(res.hess[gone], 0.0)
    # the reductions are the sums of the same rows
    for reduction in ("sum", "mean"):
        tot = _call(name, gamma, y, x, reduction=reduction, **kw)
        want = _ref(name, gamma, y, x, reduction=reduction, **kw)[0]
        np.testing.assert_allclose(float(tot), float(want), rtol=ULPS * np.finfo(dtype).eps * 4,
                                   err_msg=reduction)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("loss", LOSSES[:2], ids=LOSS_IDS[:2])
@pytest.mark.parametrize("C", [2, 9, SMALL_C])
def test_outputs_asked_for_do_not_change_bits(C, loss, dtype):
    """Loss only, gradient only, Hessian only: the same bits as when all three are computed."""
    name, gamma = loss
    rng = np.random.default_rng(_seed("flags", C, name))
    for label_form in ("int", "soft"):
        y, x = make_categorical(rng, (N, C), dtype, True, label_form)
        kw = _options(rng, C, label_form, name, "all")
        y = _labels(rng, y, label_form, kw)
        full = _call(name, gamma, y, x, reduction="none", grad=True, hess=True, **kw)
        assert_array_equal(_call(name, gamma, y, x, reduction="none", **kw), full.loss)
        g = _call(name, gamma, y, x, reduction="none", grad=True, **kw)
        assert_array_equal(g.loss, full.loss)
        assert_array_equal(g.grad, full.grad)
        h = _call(name, gamma, y, x, reduction="none", hess=True, **kw)
        assert_array_equal(h.hess, full.hess)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("loss", LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("C", [3, 10, SMALL_C])
def test_row_alone_gives_the_same_bits(C, loss, dtype):
    """A row's result does not depend on the rows grouped with it: a slice of one row, and slices
    starting anywhere, give the bits of the full call."""
    name, gamma = loss
    rng = np.random.default_rng(_seed("alone", C, name, gamma))
    y, x = make_categorical(rng, (N, C), dtype, True, "int")
    kw = _options(rng, C, "int", name, "all")
    y = _labels(rng, y, "int", kw)
    sw = kw.pop("sample_weight")
    full = _call(name, gamma, y, x, reduction="none", grad=True, hess=True, sample_weight=sw, **kw)
    for i in list(rng.choice(N, 12, replace=False)) + [0, 31, 32, 33, N - 1]:
        one = _call(name, gamma, y[i:i + 1], x[i:i + 1], reduction="none", grad=True, hess=True,
                    sample_weight=sw[i:i + 1], **kw)
        assert_array_equal(one.loss, full.loss[i:i + 1])
        assert_array_equal(one.grad, full.grad[i:i + 1])
        assert_array_equal(one.hess, full.hess[i:i + 1])
    for start in (1, 5, 17, 31):
        part = _call(name, gamma, y[start:], x[start:], reduction="none", grad=True, hess=True,
                     sample_weight=sw[start:], **kw)
        assert_array_equal(part.loss, full.loss[start:])
        assert_array_equal(part.grad, full.grad[start:])
        assert_array_equal(part.hess, full.hess[start:])
    # many rows, so that the call is split into blocks run on different threads
    big_y = np.tile(y, 40)
    big_x = np.tile(x, (40, 1))
    big_w = np.tile(sw, 40)
    for nt in (1, 2, 3):
        big = _call(name, gamma, big_y, big_x, reduction="none", grad=True, hess=True,
                    sample_weight=big_w, n_threads=nt, **kw)
        assert_array_equal(big.loss, np.tile(full.loss, 40))
        assert_array_equal(big.grad, np.tile(full.grad, (40, 1)))


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1], ids=["hard", "smoothed"])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("loss", LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("C", [2, 10, SMALL_C])
def test_ignored_rows_among_kept_ones(C, loss, dtype, smoothing, from_logits):
    """Ignored rows scattered at random (the group and piece paths take them without a branch on
    the label): each is +0.0 in the loss, gradient and Hessian, also where it holds NaN (or, from
    logits, +-inf); the kept rows have the bits of the call without the ignored ones. An
    ignore_index outside [0, C) and one inside; with and without class weights."""
    name, gamma = loss
    rng = np.random.default_rng(_seed("ignored", C, name, gamma, smoothing, from_logits))
    y, x = make_categorical(rng, (N, C), dtype, from_logits, "int")
    gone = rng.random(N) < 0.3
    special = rng.choice(np.flatnonzero(gone), 5, replace=False)
    x[special[0], 0] = NAN
    x[special[1]] = NAN
    if from_logits:
        x[special[2], C - 1] = INF
        x[special[3]] = -INF
        x[special[4], 0] = -INF
    else:
        x[special[2], C - 1] = 0.0
        x[special[3]] = 1.0
        x[special[4], 0] = 1.0
    sw = weights(rng, (N,))
    fn = getattr(xentc, name)
    common = {"from_logits": from_logits, "label_smoothing": smoothing, **({} if gamma is None else {"gamma": gamma})}
    for ign, cw in ((-100, None), (C - 1, weights(rng, (C,), lo=1))):
        y = np.where(y == ign, 0, y)
        y[gone] = ign
        kw = dict(common, class_weight=cw)
        for nt in (1, 2):
            a = fn(y, x, ignore_index=ign, reduction="none", grad=True, hess=True, sample_weight=sw,
                   n_threads=nt, **kw)
            b = fn(y[~gone], x[~gone], reduction="none", grad=True, hess=True, sample_weight=sw[~gone],
                   n_threads=nt, **kw)
            for got, kept in ((a.loss, b.loss), (a.grad, b.grad), (a.hess, b.hess)):
                assert_array_equal(got[~gone], kept)
                assert_array_equal(got[gone], 0.0)
                assert not np.signbit(got[gone]).any()
            mean = fn(y, x, ignore_index=ign, sample_weight=sw, n_threads=nt, **kw)
            want = fn(y[~gone], x[~gone], sample_weight=sw[~gone], n_threads=nt, **kw)
            np.testing.assert_allclose(mean, want, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("loss", LOSSES[:2], ids=LOSS_IDS[:2])
@pytest.mark.parametrize("C", [3, SMALL_C])
def test_layouts_give_the_contiguous_bits(C, loss, dtype):
    """Strided, Fortran-order and class-axis-in-the-middle inputs go through the same path."""
    name, gamma = loss
    rng = np.random.default_rng(_seed("layout", C, name))
    y, x = make_categorical(rng, (N, C), dtype, True, "soft")
    full = _call(name, gamma, y, x, reduction="none", grad=True, hess=True)
    for xx, yy in ((np.asfortranarray(x), np.asfortranarray(y)), (np.repeat(x, 2, axis=0)[::2], y)):
        r = _call(name, gamma, yy, xx, reduction="none", grad=True, hess=True)
        assert_array_equal(r.loss, full.loss)
        assert_array_equal(r.grad, full.grad)
        assert_array_equal(r.hess, full.hess)
    # (N, C) as (10, C, 100) with axis=1: the rows are (o, k) pairs with classes 100 apart
    x3 = np.ascontiguousarray(x.reshape(10, 100, C).transpose(0, 2, 1))
    y3 = np.ascontiguousarray(y.reshape(10, 100, C).transpose(0, 2, 1))
    r = _call(name, gamma, y3, x3, axis=1, reduction="none", grad=True, hess=True)
    assert_array_equal(r.loss, full.loss.reshape(10, 100))
    assert_array_equal(r.grad, full.grad.reshape(10, 100, C).transpose(0, 2, 1))
    assert_array_equal(r.hess, full.hess.reshape(10, 100, C).transpose(0, 2, 1))


# --------------------------------------------------------------------------------------
# special values among ordinary rows
# --------------------------------------------------------------------------------------


def _special_rows(C, rng):
    """(logit row, label, loss, grad, hess) with exact limits, for hard labels and C >= 2.

    A +inf logit at k takes all the probability: loss 0 when k is the label, else inf; gradient
    P - onehot = e_k - e_y; Hessian P (1 - P) = 0 (focal: the same limits, see test_nonfinite.py).
    An all -inf row, or all logits equal, is uniform: loss log C, gradient 1/C - onehot, Hessian
    (1/C)(1 - 1/C) for cross entropy."""
    rows = []
    k = int(rng.integers(0, C))
    y = (k + 1) % C
    row = rng.normal(0, 2, C)
    row[k] = INF
    g = np.zeros(C)
    rows.append((row.copy(), k, 0.0, g.copy(), np.zeros(C)))
    g[k], g[y] = 1.0, -1.0
    rows.append((row.copy(), y, INF, g, np.zeros(C)))
    u = 1.0 / C
    for fill in (-INF, 3.25):
        g = np.full(C, u)
        g[y] -= 1.0
        rows.append((np.full(C, fill), y, np.log(C), g, np.full(C, u * (1 - u))))
    return rows


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("C", [2, 3, 8, 9, SMALL_C, SMALL_C + 1])
def test_special_values_among_ordinary_rows(C, dtype):
    rng = np.random.default_rng(_seed("special", C))
    y, x = make_categorical(rng, (N, C), dtype, True, "int")
    rows = _special_rows(C, rng)
    at = rng.choice(np.arange(1, N - 1), len(rows) + 3, replace=False)
    for i, (row, lab, *_rest) in zip(at, rows):
        x[i] = row
        y[i] = lab
    nan_rows = at[len(rows):]
    x[nan_rows[0], 0] = NAN
    x[nan_rows[1], C - 1] = NAN
    x[nan_rows[2]] = INF
    x[nan_rows[2], 0] = NAN      # NaN beside infinities
    # ties for the maximum, and one class at -inf (its gradient and Hessian are exact zeros)
    tie, minus = 0, N - 1
    x[tie] = rng.normal(0, 2, C)
    x[tie, [0, C - 1]] = 4.5
    if C >= 3:
        x[minus, 1] = -INF
        y[minus] = 0
    res = xentc.cross_entropy(y, x, from_logits=True, reduction="none", grad=True, hess=True)
    rtol = 4 * np.finfo(dtype).eps
    for i, (row, lab, loss, grad, hess) in zip(at, rows):
        for got, want in ((res.loss[i], loss), (res.grad[i], grad), (res.hess[i], hess)):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=f"row {row}, label {lab}")
            assert_array_equal(np.isinf(got), np.isinf(want))
    assert np.isnan(res.loss[nan_rows]).all()
    assert np.isnan(res.grad[nan_rows]).all() and np.isnan(res.hess[nan_rows]).all()
    ok = np.setdiff1d(np.arange(N), at)
    assert not np.isnan(res.loss[ok]).any() and not np.isnan(res.grad[ok]).any()
    # the finite rows against the reference (the tie row and the -inf class included)
    if C >= 3:
        assert res.grad[minus, 1] == 0.0 and res.hess[minus, 1] == 0.0
        keep = np.arange(C) != 1
        row = xentc.LossResult(res.loss[minus:minus + 1], res.grad[minus:minus + 1, keep],
                               res.hess[minus:minus + 1, keep])
        _assert_matches_reference(row, y[minus:minus + 1], x[minus:minus + 1, keep], "cross_entropy", None,
                                  dtype, {}, "-inf class: ")
    fin = np.setdiff1d(ok, [minus])
    _assert_matches_reference(xentc.LossResult(res.loss[fin], res.grad[fin], res.hess[fin]), y[fin], x[fin],
                              "cross_entropy", None, dtype, {})
    # focal: NaN rows stay NaN, the +inf rows have the cross-entropy limits
    for gamma in (0.5, 2.0):
        fr = xentc.focal_loss(y, x, from_logits=True, gamma=gamma, reduction="none", grad=True, hess=True)
        assert np.isnan(fr.loss[nan_rows]).all() and np.isnan(fr.grad[nan_rows]).all()
        assert not np.isnan(fr.loss[ok]).any() and not np.isnan(fr.hess[ok]).any()
        for i, (row, lab, loss, grad, hess) in zip(at[:2], rows[:2]):
            np.testing.assert_allclose(fr.loss[i], loss, rtol=rtol, atol=rtol)
            np.testing.assert_allclose(fr.grad[i], grad, rtol=rtol, atol=rtol)
            np.testing.assert_allclose(fr.hess[i], hess, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("C", [1, 4, SMALL_C])
def test_large_logits_and_extreme_gaps(C, dtype):
    """Softmax is unchanged by adding a constant to a row. Logits on a grid of 2^-10 plus a large
    row offset are exact in the dtype, and so is each gap m - x_j, so the offset rows must give the
    bits of the rows without it. The spread includes gaps where exp(-gap) underflows."""
    rng = np.random.default_rng(_seed("large", C))
    y, x = make_categorical(rng, (N, C), dtype, True, "int")
    x = np.round(x.astype(np.float64) * rng.choice([1.0, 10.0, 60.0], (N, 1)) * 1024) / 1024
    big = 3000 if dtype == np.float32 else 1e8
    shifted = (x + np.round(rng.uniform(-big, big, (N, 1)))).astype(dtype)
    x = x.astype(dtype)
    assert_array_equal(shifted.astype(np.float64) - np.round(shifted.astype(np.float64) - x), x)
    for name, gamma in LOSSES:
        a = _call(name, gamma, y, x, reduction="none", grad=True, hess=True)
        b = _call(name, gamma, y, shifted, reduction="none", grad=True, hess=True)
        assert_array_equal(a.loss, b.loss)
        assert_array_equal(a.grad, b.grad)
        assert_array_equal(a.hess, b.hess)
        assert np.all(a.loss >= 0) and np.isfinite(a.grad).all() and np.isfinite(a.hess).all()


@pytest.mark.parametrize("C", [3, SMALL_C])
def test_bad_soft_label_is_reported_at_its_index(C):
    rng = np.random.default_rng(_seed("bad", C))
    y, x = make_categorical(rng, (N, C), np.float64, True, "soft")
    y[700, C - 1] = 1.5
    y[900, 0] = -0.25
    with pytest.raises(ValueError, match=rf"^y_true: label 1.5 at index {700 * C + C - 1} is outside \[0, 1\]"):
        xentc.cross_entropy(y, x, from_logits=True, grad=True)
    y[700, C - 1] = NAN
    with pytest.raises(ValueError, match=rf"^y_true: NaN label at index {700 * C + C - 1}"):
        xentc.focal_loss(y, x, from_logits=True, hess=True, reduction="none")


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("C", [64, 100, 127, 128])
def test_tiny_probabilities_every_element(C, dtype):
    """Focal loss (gamma 2) from logits with the label at the row's maximum and the other classes
    20..70 below it: every gradient and Hessian element within the bar of a closed form evaluated
    with mpmath. Errors of the row's sum of exponentials show here in full (the group path's
    class-order sum reached 17 ulp in float64 at C = 127, which is why float64 rows of more than
    64 classes take the row path)."""
    import mpmath as mp

    rng = np.random.default_rng(5)   # (tests/test_cuda.py's rows; float64, C = 127: 17 ulp there)
    n, g = 8, 2
    x = rng.uniform(-70, -20, (n, C)).astype(dtype)
    x[:, 0] = rng.uniform(3, 4, n).astype(dtype)
    y = np.zeros(n, np.int64)
    res = xentc.focal_loss(y, x, gamma=float(g), from_logits=True, reduction="sum", grad=True, hess=True)
    with mp.workdps(50):
        for r in range(n):
            z = [mp.mpf(float(v)) for v in x[r]]
            e = [mp.exp(v - z[0]) for v in z]
            s = mp.fsum(e)
            P = [v / s for v in e]
            Q, P0 = mp.fsum(P[1:]), P[0]
            lp = mp.log(P0)
            for k in range(1, C):
                Pk = P[k]
                # loss -Q^g log P0; dP0 = -P0 Pk, dPk = Pk (1 - Pk), dQ = P0 Pk, dlp = -Pk along z_k
                gk = -g * Q**(g - 1) * P0 * Pk * lp + Q**g * Pk
                hk = (-g * ((g - 1) * Q**(g - 2) * P0 * Pk * P0 * Pk * lp
                            + Q**(g - 1) * (-P0 * Pk * Pk * lp + P0 * Pk * (1 - Pk) * lp - P0 * Pk * Pk))
                      + g * Q**(g - 1) * P0 * Pk * Pk + Q**g * Pk * (1 - Pk))
                for got, want in ((res.grad[r, k], gk), (res.hess[r, k], hk)):
                    ulp = float(np.spacing(np.abs(dtype(float(want)))))
                    assert float(abs(mp.mpf(float(got)) - want)) <= ULPS * ulp, (r, k, float(got), float(want))


PROB_CLASSES = [2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]   # the short chunks' sizes (8, 16, 32) and 64


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("label_form", ["int", "soft"])
@pytest.mark.parametrize("loss", LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("C", PROB_CLASSES)
def test_probability_rows_against_reference(C, loss, label_form, dtype):
    """Rows from probabilities with fewer classes than a whole chunk take a chunk of 8, 16 or 32
    entries (``prob_chunk_at``): every element against the reference, with every option, and loss
    only, gradient only and Hessian only with the bits of all three."""
    name, gamma = loss
    rng = np.random.default_rng(_seed("probs", C, name, gamma, label_form, np.dtype(dtype).name))
    y, p = make_categorical(rng, (N, C), dtype, False, label_form)
    kw = _options(rng, C, label_form, name, "all")
    y = _labels(rng, y, label_form, kw)
    extra = {} if gamma is None else {"gamma": gamma}
    fn = getattr(xentc, name)
    full = fn(y, p, from_logits=False, reduction="none", grad=True, hess=True, **extra, **kw)
    want = ref.FUNCTIONS[name](y, p, from_logits=False, reduction="none", **extra, **kw)
    for got, exp, what in zip(full, want, ("loss", "grad", "hess")):
        _assert_rows_close(got, exp, dtype, what)
    assert_array_equal(fn(y, p, from_logits=False, reduction="none", **extra, **kw), full.loss)
    assert_array_equal(fn(y, p, from_logits=False, reduction="none", grad=True, **extra, **kw).grad, full.grad)
    assert_array_equal(fn(y, p, from_logits=False, reduction="none", hess=True, **extra, **kw).hess, full.hess)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("label_form", ["int", "smoothed", "soft"])
@pytest.mark.parametrize("loss", LOSSES[:3], ids=LOSS_IDS[:3])
@pytest.mark.parametrize("C", [1, 2, 3, 10, 16, 17, 33, 64])
def test_probability_rows_in_pieces_give_the_row_bits(C, loss, label_form, dtype, monkeypatch):
    """Rows of at most 64 classes from probabilities are computed pieces of rows at a time
    (``softmax_prob_piece``: 1024 elements' worth, or a tile's 64 rows where the classes lie
    apart, as in Fortran order); with ``_kernels.PROB_PIECES`` off they go one at a time through
    ``softmax_row_from_probs``. All three must give the same bits: every output, the sum, with
    sample and class weights, ignored rows, NaN rows (which send their piece to the per-row path
    where only the label's class would be computed) and exact 0 and 1, over enough rows for several
    pieces; and a bad probability is reported at the same index."""
    name, gamma = loss
    rng = np.random.default_rng(_seed("pieces", C, name, label_form, np.dtype(dtype).name))
    n = 4000
    y, p = make_categorical(rng, (n, C), dtype, False, "soft" if label_form == "soft" else "int")
    p = p.copy()
    p[::37, 0] = 0.0
    p[5::41, -1] = 1.0
    p[1234, C // 2] = np.nan
    extra = {} if gamma is None else {"gamma": gamma}
    kw = {"sample_weight": weights(rng, (n,))}
    if name == "focal_loss":
        kw["alpha"] = rng.uniform(0.1, 0.9, C).astype(dtype)
    else:
        kw["class_weight"] = weights(rng, (C,), lo=1)
    yk = y
    if label_form != "soft":
        yk = y.copy()
        yk[rng.choice(np.delete(np.arange(n), 1234), 100, replace=False)] = -100
        kw["ignore_index"] = -100
    if label_form == "smoothed":
        kw["label_smoothing"] = 0.1
    fn = getattr(xentc, name)
    for labels, opts in ((y, {}), (yk, kw)):
        labels_f = np.asfortranarray(labels) if label_form == "soft" else labels
        for red in ("none", "sum"):
            got = fn(labels, p, from_logits=False, reduction=red, grad=True, hess=True, **extra, **opts)
            tiled = fn(labels_f, np.asfortranarray(p), from_logits=False, reduction=red, grad=True, hess=True,
                       **extra, **opts)
            monkeypatch.setattr(xentc._kernels, "PROB_PIECES", False)
            rows = fn(labels, p, from_logits=False, reduction=red, grad=True, hess=True, **extra, **opts)
            monkeypatch.setattr(xentc._kernels, "PROB_PIECES", True)
            for want in (tiled, rows):
                for g, w in zip(got, want):
                    assert_array_equal(np.asarray(g), np.asarray(w))
            assert np.isnan(got.loss[1234] if red == "none" else got.loss)
            if red == "none":
                assert np.isnan(got.loss).sum() == 1
                assert_array_equal(fn(labels, p, from_logits=False, reduction="none", **extra, **opts), got.loss)
    bad = p.copy()
    bad[2500, C - 1] = 1.5
    with pytest.raises(ValueError) as e1:
        fn(y, bad, from_logits=False, **extra)
    with pytest.raises(ValueError) as e2:
        fn(np.asfortranarray(y) if label_form == "soft" else y, np.asfortranarray(bad), from_logits=False,
           **extra)
    assert str(e1.value) == str(e2.value)
    assert f"at index {2500 * C + C - 1} is" in str(e1.value)   # flat C-order index
