"""Accuracy where naive code breaks, against exact values (design notes, section 3 bar).

The broad sweep over every combination is ``test_symbolic.py``; this module adds the inputs
it does not draw: subnormal probabilities and the largest probabilities below 1, logits on both
sides of each switch point of the stable formulas (and of the vectorised exp/log), rows whose
loss is below 1e-15 (asserted explicitly), rows of 10^3..10^5 classes, and reductions over 10^6+
elements against an exactly rounded sum.

Exact values: the SymPy-derived formulas of ``xentc/_symbolic.py`` evaluated with mpmath for
points with few classes; for rows of many classes the loss is summed directly in mpmath and the
gradient/Hessian come from the extended-precision reference ``tests/reference.py`` (itself
checked against mpmath differences); reductions are ``math.fsum`` of that reference.
"""

import math
import pathlib
import sys

import numpy as np
import pytest

mpmath = pytest.importorskip("mpmath")
pytest.importorskip("sympy")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference as ref  # noqa: E402
from inputs import focal_prob_minimum  # noqa: E402

import xentc  # noqa: E402
from xentc import _symbolic as S  # noqa: E402

DTYPES = ["float32", "float64"]
GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
# Non-integer gammas take exp(g log x) (float32 in double, float64 in double-double: PowDD); at the
# extreme probabilities |g log x| reaches hundreds, where a plain double log would cost as many ulp.
# 0.3 and float32's 0.3: g - 1 rounds (in double, in float), which the Hessian's x^(g - 1) must not
# take on (pw_below); float32 runs only the gammas float32 holds exactly (the reference takes gamma
# as given, the float32 kernels rounded to float32)
FRACTIONAL_GAMMAS = [0.3, float(np.float32(0.3)), 2.5, 7.75, 33.25]
BAR = S.ULP_BAR


def _npdt(dt):
    return np.dtype(dt).type


class _Worst:
    """Collects ulp errors and reports the worst few points on failure."""

    def __init__(self):
        self.bad = []
        self.count = 0

    def add(self, what, got, exact, scale, dt, where):
        self.count += 1
        err = S.ulp_error(got, exact, scale, dt)
        if not err <= BAR:
            self.bad.append((err, what, float(got), mpmath.nstr(exact, 17), where))

    def check(self):
        assert self.count > 0
        if self.bad:
            self.bad.sort(key=lambda t: -t[0] if t[0] == t[0] else -math.inf)
            lines = [f"{len(self.bad)} of {self.count} values beyond {BAR} ulp; worst:"]
            lines += [f"  {e:.3g} ulp {w}: got {g!r} exact {x} at {at}"
                      for e, w, g, x, at in self.bad[:8]]
            pytest.fail("\n".join(lines), pytrace=False)


# --------------------------------------------------------------------------------------
# binary losses, one point at a time through the symbolic reference
# --------------------------------------------------------------------------------------


def _binary_check(worst, func, from_logits, x, y, dt, gamma, alpha=None):
    """Every element of x (with labels y) against the SymPy/mpmath reference."""
    npdt = _npdt(dt)
    x = np.asarray(x, dtype=npdt)
    y = np.asarray(y, dtype=npdt)
    kw = {} if func == "ce" else {"gamma": gamma, "alpha": alpha}
    fn = xentc.binary_cross_entropy if func == "ce" else xentc.binary_focal_loss
    res = fn(y, x, from_logits=from_logits, reduction="none", grad=True, hess=True, **kw)
    formula = S.binary_formula(func, from_logits, alpha is not None)
    for i in range(x.size):
        vals = {"y": float(y[i]), "eps": 0.0, "pw": 1.0, "sw": 1.0,
                "a": 0.0 if alpha is None else alpha}
        r = formula.evaluate([float(x[i])], [vals[s.name] for s in formula.params], gamma)
        where = f"{func} gamma={gamma} alpha={alpha} y={float(y[i])!r} x={float(x[i])!r} {dt}"
        worst.add("loss", res.loss[i], r.loss, abs(r.loss), dt, where)
        worst.add("grad", res.grad[i], r.grad[0], r.gscale[0], dt, where)
        worst.add("hess", res.hess[i], r.hess[0], r.hscale[0], dt, where)


def _both_sides(values, npdt):
    """Each value, its float neighbours on both sides, and the negatives of all of them."""
    out = set()
    for v in values:
        v = npdt(v)
        for w in (v, np.nextafter(v, npdt(np.inf)), np.nextafter(v, npdt(-np.inf))):
            if np.isfinite(w):
                out.add(float(w))
                out.add(float(-w))
    return sorted(out)


def _logit_switch_points(dt):
    """Logits where a stable formula or the vectorised exp/log changes regime."""
    npdt = _npdt(dt)
    fi = np.finfo(npdt)
    eps, tiny = float(fi.eps), float(fi.tiny)
    sub = float(np.nextafter(npdt(0), npdt(1)))
    return _both_sides([
        0.0, sub, tiny, eps,                 # sign of z: which side is computed as 1/(1+e)
        1.0,
        -math.log(eps),                      # 1 + exp(-|z|) rounds to 1: the log1p shortcut
        -math.log(eps / 2),
        -math.log(tiny),                     # exp(-|z|) becomes subnormal
        -math.log(sub),                      # exp(-|z|) underflows to 0
        math.log(float(fi.max)),             # exp(|z|) would overflow
        1e3, 1e4,
    ], npdt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("func,gamma,alpha", [("ce", 0.0, None)]
                         + [("focal", g, None) for g in GAMMAS] + [("focal", 2.0, 0.25)])
def test_binary_logits_at_switch_points(func, gamma, alpha, dt):
    worst = _Worst()
    z = _logit_switch_points(dt)
    for y in (0.0, 1.0, 0.3):
        _binary_check(worst, func, True, z, [y] * len(z), dt, gamma, alpha)
    worst.check()


def _extreme_probabilities(dt):
    npdt = _npdt(dt)
    fi = np.finfo(npdt)
    one = npdt(1)
    sub = np.nextafter(npdt(0), one)
    tiny = npdt(fi.tiny)
    return [float(v) for v in (
        sub, 2 * sub, 3 * sub, tiny / npdt(3), tiny / npdt(1024),    # subnormal
        np.nextafter(tiny, npdt(0)), tiny, np.nextafter(tiny, one),  # smallest normal
        npdt(1e-30), npdt(0.5),
        npdt(math.sqrt(0.5)), np.nextafter(npdt(math.sqrt(0.5)), one),  # vlog's mantissa split
        one - npdt(fi.eps), one - npdt(fi.eps) / 2,                  # up to 1 - eps/2
    )]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("func,gamma,alpha", [("ce", 0.0, None)]
                         + [("focal", g, None) for g in GAMMAS + FRACTIONAL_GAMMAS] + [("focal", 1.5, 0.75)])
def test_binary_extreme_probabilities(func, gamma, alpha, dt):
    if float(_npdt(dt)(gamma)) != gamma:
        pytest.skip("gamma rounds in this dtype")
    worst = _Worst()
    p = _extreme_probabilities(dt)
    for y in (0.0, 1.0, 0.3, 1e-3):
        _binary_check(worst, func, False, p, [y] * len(p), dt, gamma, alpha)
        # the mirror image: 1 - p is then the tiny one
        q = [float(_npdt(dt)(1) - _npdt(dt)(v)) for v in p]
        q = [v for v in q if 0 < v < 1]      # 1 - subnormal rounds to 1: an endpoint, not here
        _binary_check(worst, func, False, q, [y] * len(q), dt, gamma, alpha)
    worst.check()


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("gamma", [2.0**-8, 0.01, 0.03])
def test_focal_from_probabilities_gamma_near_zero(gamma, dt):
    """gamma just above 0: the Hessian's p^(gamma - 1) passes the largest double at subnormal p
    (p < 1.2e-309 for gamma 2^-8), where the exact Hessian overflows too; it must come out as
    inf, not as the NaN of inf + inf * (negative) in the power's correction (hypothesis found
    p = 2.2e-313, gamma 2^-8: a Hessian of NaN). Subnormal p and their mirror images 1 - p."""
    worst = _Worst()
    npdt = _npdt(dt)
    p = _extreme_probabilities(dt) + [float(npdt(v)) for v in (1e-320, 2.22507386e-313, 1e-310, 1e-300)]
    p = [v for v in p if v > 0]
    for y in (0.0, 1.0, 0.3):
        _binary_check(worst, "focal", False, p, [y] * len(p), dt, gamma)
        q = [w for w in (float(npdt(1) - npdt(v)) for v in p) if 0 < w < 1]
        _binary_check(worst, "focal", False, q, [y] * len(q), dt, gamma)
    worst.check()


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("gamma", [10.0, 20.5, 31.0, 50.0])
def test_focal_from_probabilities_large_gamma(gamma, dt):
    """From probabilities the focal factor (1 - p)^gamma is corrected for the rounding of 1 - p
    (which c^gamma multiplies by gamma: 48 ulp at gamma = 50 before), so large non-integer gammas
    stay within the bar too; binary and categorical, p in (0.01, 0.6), where (1 - p)^gamma and its
    derivatives stay normal numbers in float32 (subnormal results carry no relative accuracy)."""
    npdt = _npdt(dt)
    p = np.random.default_rng(int(gamma * 10)).uniform(0.01, 0.6, 60).astype(npdt)
    worst = _Worst()
    for y in (1.0, 0.3):
        _binary_check(worst, "focal", False, p, [y] * len(p), dt, gamma)
    rows = np.stack([p, (npdt(1) - p) * npdt(0.75), (npdt(1) - p) * npdt(0.25)], axis=1)
    _categorical_check(worst, "focal", False, rows, np.zeros(len(p), dtype=np.int64), dt, gamma)
    worst.check()


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("gamma", [10.0, 20.5, 27.0, 30.0, 31.0, 50.0])
def test_focal_from_logits_large_gamma(gamma, dt):
    """From logits the base sigmoid(-z) of the focal factor carries the roundings of exp, 1 + e
    and the division, which q^gamma multiplies by gamma (float64: 24 ulp at gamma = 10, 128 at
    50, when q was simply rounded). Double keeps those errors and corrects the power, float forms
    q and q^gamma in double: binary focal within the bar at large gammas, on both sides (y = 1,
    0 and fractional), for logits in (-3, 3), wider ones and the switch points. Integer gammas up to
    31 take the powers by repeated squaring, whose own roundings reached 19 ulp at 31 before they
    were carried in extended precision (an audit's finding)."""
    npdt = _npdt(dt)
    rng = np.random.default_rng(int(gamma * 10) + 1)
    z = np.concatenate([rng.uniform(-3, 3, 60), rng.uniform(-40, 40, 20), _logit_switch_points(dt)])
    worst = _Worst()
    for y in (1.0, 0.0, 0.3):
        _binary_check(worst, "focal", True, z.astype(npdt), [y] * len(z), dt, gamma)
    _binary_check(worst, "focal", True, z[:40].astype(npdt), [1.0] * 40, dt, gamma, alpha=0.25)
    worst.check()


# --------------------------------------------------------------------------------------
# categorical rows of three classes through the symbolic reference
# --------------------------------------------------------------------------------------


def _categorical_check(worst, func, from_logits, X, Y, dt, gamma):
    """Every row of X (labels Y: int per row or soft rows) against the SymPy/mpmath reference."""
    npdt = _npdt(dt)
    X = np.asarray(X, dtype=npdt)
    n, C = X.shape
    Y = np.asarray(Y)
    soft = Y.ndim == 2
    yt = Y.astype(npdt) if soft else Y.astype(np.int64)
    Yf = Y.astype(npdt).astype(np.float64) if soft else np.eye(C)[Y]
    kw = {} if func == "ce" else {"gamma": gamma}
    fn = xentc.cross_entropy if func == "ce" else xentc.focal_loss
    res = fn(yt, X, from_logits=from_logits, reduction="none", grad=True, hess=True, **kw)
    formula = S.categorical_formula(func, from_logits, C)
    for i in range(n):
        vals = {"eps": 0.0, "sw": 1.0}
        for j in range(C):
            vals[f"Y{j}"], vals[f"cw{j}"], vals[f"a{j}"] = Yf[i, j], 1.0, 1.0
        r = formula.evaluate([float(v) for v in X[i]], [vals[s.name] for s in formula.params],
                             gamma)
        where = (f"{func} gamma={gamma} y={yt[i].tolist()} x={[float(v) for v in X[i]]} {dt}")
        worst.add("loss", res.loss[i], r.loss, abs(r.loss), dt, where)
        for j in range(C):
            worst.add(f"grad[{j}]", res.grad[i, j], r.grad[j], r.gscale[j], dt, where)
            worst.add(f"hess[{j}]", res.hess[i, j], r.hess[j], r.hscale[j], dt, where)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("gamma", [10.0, 20.5, 31.0, 50.0])
def test_categorical_focal_from_logits_large_gamma(gamma, dt):
    """Q_j^gamma multiplies the relative error of Q_j = 1 - P_j by gamma, and Q_j carried the
    roundings of the row's exps, their sum, 1/s, P_j and 1 - P_j: 25 ulp of the float64 loss at
    gamma = 20 and 69 at 50 before s_rest was summed in double-double and Q's error was corrected.
    Rows of three classes (the grouped path) with the label on the largest entry, on another, near
    ties (P = 1/2 on both sides) and soft labels, against the SymPy/mpmath reference; rows of 100
    classes (the per-row path) against mpmath (loss) and the extended-precision reference (gradient
    and Hessian, at scale 1)."""
    npdt = _npdt(dt)
    rng = np.random.default_rng(int(gamma * 10) + 2)
    worst = _Worst()
    X = rng.uniform(-3, 3, (40, 3))
    ties = np.array([[0.0, -d, -d - 1.0] for d in (0.0, 1e-6, 1e-3, 0.05, 0.3)])
    # the other exps near the bottom of the range (a float row's sum once lost them: NaN Hessians)
    under = np.array([[0.0, -d, -d] for d in ((80.0, 87.0, 100.0) if dt == "float32" else (700.0, 740.0))])
    X = np.concatenate([X, ties, ties[:, [1, 0, 2]], under]).astype(npdt)
    for y in (np.zeros(len(X), np.int64), np.argmax(X, axis=1), np.ones(len(X), np.int64)):
        _categorical_check(worst, "focal", True, X, y, dt, gamma)
    _categorical_check(worst, "focal", True, X, rng.dirichlet(np.ones(3), len(X)), dt, gamma)
    C = 100
    X = (rng.standard_normal((6, C)) * np.array([[1.0], [3.0], [3.0], [0.3], [1.0], [3.0]])).astype(npdt)
    X[1, 7] = X[1].max() + np.log(C)        # label 7 at the maximum, P near 1/2
    y = np.array([C - 1, 7, int(np.argmax(X[2])), int(np.argsort(X[3])[-2]), 3, 5])
    Ys = [np.eye(C)[y], rng.dirichlet(np.full(C, 0.3), len(X))]
    for Y, yt in ((Ys[0], y), (Ys[1], Ys[1].astype(npdt))):
        res = xentc.focal_loss(yt, X, gamma=gamma, from_logits=True, reduction="none", grad=True, hess=True)
        _, g_ref, h_ref = ref.focal_loss(yt, X, gamma=gamma, from_logits=True, reduction="none")
        for i in range(len(X)):
            exact = _mp_row_loss(X[i], Y[i].astype(npdt).astype(np.float64), gamma, True)
            where = f"row {i} of C={C}, gamma={gamma} {dt}"
            worst.add("loss", res.loss[i], exact, abs(exact), dt, where)
            for j in np.unique(np.concatenate([np.flatnonzero(Y[i] > 0.01), np.argsort(X[i])[-5:]])):
                ge, he = ref._mpf(g_ref[i, j]), ref._mpf(h_ref[i, j])
                # scale 1, as test_rows_of_many_classes (the symbolic scales need few classes)
                worst.add(f"grad[{j}]", res.grad[i, j], ge, max(abs(ge), 1), dt, where)
                worst.add(f"hess[{j}]", res.hess[i, j], he, max(abs(he), 1), dt, where)
    worst.check()


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("func,gamma", [("ce", 0.0)] + [("focal", g) for g in GAMMAS[1:] + FRACTIONAL_GAMMAS])
def test_softmax_rows_at_switch_points(func, gamma, dt):
    """Rows [0, -d, -d - t] with the gap d on both sides of each switch point, ties, and
    near-ties; labels on the largest entry (confident correct), on another, and soft."""
    if float(_npdt(dt)(gamma)) != gamma:
        pytest.skip("gamma rounds in this dtype")
    npdt = _npdt(dt)
    gaps = [d for d in _logit_switch_points(dt) if d >= 0] + [30.0, 36.7, 40.0]
    rows = []
    for d in gaps:
        rows.append([0.0, -d, -d])
        rows.append([0.0, -d, -2 * d])
    for a in (0.0, 40.0, -1e4, 1e4):                   # ties and near-ties at any offset
        b = float(np.nextafter(npdt(a), npdt(-np.inf)))
        rows += [[a, a, a], [a, a, b], [a, b, b], [a, a, a - 1]]
    X = np.array(rows, dtype=npdt)
    worst = _Worst()
    n = len(X)
    _categorical_check(worst, func, True, X, np.zeros(n, dtype=np.int64), dt, gamma)
    _categorical_check(worst, func, True, X, np.full(n, 1, dtype=np.int64), dt, gamma)
    soft = np.tile(np.array([[0.7, 0.2, 0.1]]), (n, 1))
    _categorical_check(worst, func, True, X, soft, dt, gamma)
    worst.check()


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("func,gamma", [("ce", 0.0)] + [("focal", g) for g in GAMMAS[1:] + FRACTIONAL_GAMMAS])
def test_categorical_extreme_probabilities(func, gamma, dt):
    """Probabilities from subnormal to 1 - eps/2 in rows of three, with integer labels (one power a
    row: the math library's pow for non-integer gammas in float64) and soft labels (a power every
    class: PowDD)."""
    if float(_npdt(dt)(gamma)) != gamma:
        pytest.skip("gamma rounds in this dtype")
    npdt = _npdt(dt)
    ps = _extreme_probabilities(dt)
    rows = []
    for p in ps:
        q = float(npdt(1) - npdt(p))
        rows.append([p, p, p])
        if q < 1:                  # rows with an exact 1 are endpoints, tested in test_options
            rows += [[p, q, 0.5], [q, p, p]]
    X = np.array(rows, dtype=npdt)
    n = len(X)
    worst = _Worst()
    for lab in (0, 1):
        _categorical_check(worst, func, False, X, np.full(n, lab, dtype=np.int64), dt, gamma)
    soft = np.tile(np.array([[0.6, 0.3, 0.1]]), (n, 1))
    _categorical_check(worst, func, False, X, soft, dt, gamma)
    worst.check()


# --------------------------------------------------------------------------------------
# confident-correct predictions: losses below 1e-15 keep their relative accuracy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", DTYPES)
def test_confident_correct_losses_below_1e_15(dt):
    npdt = _npdt(dt)
    tiny_loss = 1e-15
    worst = _Worst()
    z = [36.0, 40.0, 50.0, 80.0, 100.0]
    for func, gamma in (("ce", 0.0), ("focal", 0.5), ("focal", 2.0)):
        fn = xentc.binary_cross_entropy if func == "ce" else xentc.binary_focal_loss
        kw = {} if func == "ce" else {"gamma": gamma}
        # y = 1 with z > 0, and the mirror y = 0 with z < 0
        zz = np.array(z + [-v for v in z], dtype=npdt)
        yy = np.array([1.0] * len(z) + [0.0] * len(z), dtype=npdt)
        loss = fn(yy, zz, from_logits=True, reduction="none", **kw)
        assert np.all(loss < tiny_loss), (func, gamma, loss)
        if gamma == 0:   # softplus(-z) >= 3.7e-44 here: not flushed to 0 (focal may underflow)
            assert np.all(loss > 0), (func, loss)
        _binary_check(worst, func, True, zz, yy, dt, gamma)
        # from probabilities: 1 - p = eps/2 is the closest to 1 a float gets
        p = np.array([1 - float(np.finfo(npdt).eps) / 2], dtype=npdt)
        _binary_check(worst, func, False, p, np.ones(1), dt, gamma)
    for func, gamma in (("ce", 0.0), ("focal", 1.0), ("focal", 5.0)):
        X = np.array([[40.0, 0.0, -3.0], [0.0, 38.5, 1.0], [-5.0, -5.0, 60.0],
                      [1e4, 1e4 - 36.0, 1e4 - 37.0], [-1e4 + 45.0, -1e4, -1e4]], dtype=npdt)
        lab = np.array([0, 1, 2, 0, 0])
        fn = xentc.cross_entropy if func == "ce" else xentc.focal_loss
        kw = {} if func == "ce" else {"gamma": gamma}
        loss = fn(lab, X, from_logits=True, reduction="none", **kw)
        assert np.all(loss < tiny_loss), (func, gamma, loss)
        if gamma == 0:
            assert np.all(loss > 0), (func, loss)
        _categorical_check(worst, func, True, X, lab, dt, gamma)
    worst.check()


# --------------------------------------------------------------------------------------
# rows of 10^3 .. 10^5 classes
# --------------------------------------------------------------------------------------


def _mp_row_loss(x, Y, gamma, from_logits):
    """-sum_j Y_j (1 - P_j)^gamma log P_j of one row, straight from the definition in mpmath."""
    with mpmath.workdps(40):
        xs = [mpmath.mpf(float(v)) for v in x]
        if from_logits:
            m = max(xs)
            lse = m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in xs))
            logP = [v - lse for v in xs]
        else:
            logP = [mpmath.log(v) if v > 0 else mpmath.ninf for v in xs]
        g = mpmath.mpf(gamma)
        terms = []
        for yj, lp in zip(Y, logP):
            if yj == 0:
                continue
            q = -mpmath.expm1(lp) if mpmath.isfinite(lp) else mpmath.mpf(1)
            terms.append(-mpmath.mpf(float(yj)) * (q ** g if g else 1) * lp)
        return mpmath.fsum(terms)


LARGE_C = [
    # (func, gamma, from_logits, labels, C)
    ("ce", 0.0, True, "int", 100_000),
    ("ce", 0.0, True, "soft", 10_000),
    ("ce", 0.0, False, "soft", 100_000),
    ("ce", 0.0, False, "int", 1_000),
    ("focal", 2.0, True, "int", 100_000),
    ("focal", 0.5, True, "soft", 1_000),
    ("focal", 5.0, False, "soft", 10_000),
    ("focal", 1.0, True, "int", 1_000),
]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("func,gamma,from_logits,labels,C", LARGE_C,
                         ids=[f"{c[0]}-g{c[1]}-{'logits' if c[2] else 'probs'}-{c[3]}-C{c[4]}"
                              for c in LARGE_C])
def test_rows_of_many_classes(func, gamma, from_logits, labels, C, dt):
    npdt = _npdt(dt)
    rng = np.random.default_rng(C + int(10 * gamma) + from_logits)
    n = 2
    if from_logits:
        X = rng.standard_normal((n, C)) * np.array([[3.0], [30.0]])
        X[1, 7] = X[1].max() + 5.0          # a confident row
    else:
        X = rng.dirichlet(np.full(C, 0.5), n)
        X[1, 7] = 0.9                         # one large entry, the rest tiny
        X[1, np.arange(C) != 7] *= 0.1 / X[1, np.arange(C) != 7].sum()
    X = X.astype(npdt)
    if labels == "int":
        y = np.array([C - 1, 7])
        Y = np.eye(1, C, C - 1).repeat(n, 0)
        Y[1] = np.eye(1, C, 7)
    else:
        Y = (rng.uniform(0, 1, (n, C)) * (rng.uniform(0, 1, (n, C)) < 0.05)).astype(npdt)
        Y[:, 7] = 0.5
        y = Y
    fn = xentc.cross_entropy if func == "ce" else xentc.focal_loss
    kw = {} if func == "ce" else {"gamma": gamma}
    res = fn(y, X, from_logits=from_logits, reduction="none", grad=True, hess=True, **kw)
    reference = ref.cross_entropy if func == "ce" else ref.focal_loss
    _, g_ref, h_ref = reference(y, X, from_logits=from_logits, reduction="none", **kw)
    worst = _Worst()
    for i in range(n):
        exact = _mp_row_loss(X[i], Y[i].astype(np.float64), gamma, from_logits)
        where = f"row {i} of C={C}"
        worst.add("loss", res.loss[i], exact, abs(exact), dt, where)
        # grad/hess: scale 1 from logits (the bar), |exact| from probabilities; checked on the
        # labelled classes and the largest entries, where the values are largest
        cols = np.unique(np.concatenate([np.flatnonzero(Y[i])[:50], np.argsort(X[i])[-20:],
                                         np.arange(0, C, C // 50)]))
        floor = 1 if from_logits else 0
        for j in cols:
            ge, he = ref._mpf(g_ref[i, j]), ref._mpf(h_ref[i, j])
            worst.add(f"grad[{j}]", res.grad[i, j], ge, max(abs(ge), floor), dt, where)
            worst.add(f"hess[{j}]", res.hess[i, j], he, max(abs(he), floor), dt, where)
    worst.check()


@pytest.mark.parametrize("labels", ["smoothed", "soft"])
@pytest.mark.parametrize("func,gamma", [("ce", 0.0), ("focal", 0.5), ("focal", 1.0), ("focal", 2.0)])
def test_one_large_coefficient_among_many_small(func, gamma, labels):
    """float64 rows of C = 1000 classes where one coefficient is near 1 and the other 999 are
    1e-7 (label smoothing 1e-4, or the same soft labels), from logits spread wide: the row's sums
    of the coefficient-weighted terms meet one large term and many small ones in each vector lane.
    Plain lane sums lost up to 26 ulp of the largest class's gradient; with their rounding errors
    kept (Kahan steps) the row is within the bar."""
    C, eps = 1000, 1e-4
    worst = _Worst()
    for seed in range(3, 7):
        rng = np.random.default_rng(seed)
        x = (rng.standard_normal(C) * 15)[None]
        k = int(np.argmax(x))
        y = np.array([0 if k else 1])
        Y = np.full((1, C), eps / C)
        Y[0, y[0]] += 1 - eps
        lab, kw = (y, {"label_smoothing": eps}) if labels == "smoothed" else (Y, {})
        if func == "focal":
            kw["gamma"] = gamma
        fn, reference = (xentc.cross_entropy, ref.cross_entropy) if func == "ce" else (xentc.focal_loss,
                                                                                       ref.focal_loss)
        res = fn(lab, x, from_logits=True, reduction="none", grad=True, **kw)
        _, g_ref, _ = reference(lab, x, from_logits=True, reduction="none", **kw)
        exact = _mp_row_loss(x[0], Y[0], gamma, True)
        where = f"seed {seed} {labels} {func} gamma={gamma} argmax {k}"
        worst.add("loss", res.loss[0], exact, abs(exact), "float64", where)
        for j in (k, int(y[0]), (k + 1) % C):
            ge = ref._mpf(g_ref[0, j])
            worst.add(f"grad[{j}]", res.grad[0, j], ge, max(abs(ge), 1), "float64", where)
    worst.check()


def _mp_ce_row(x, Y):
    """Loss and gradient of one cross-entropy row of soft labels Y, in mpmath (40 digits)."""
    with mpmath.workdps(40):
        xs = [mpmath.mpf(float(v)) for v in x]
        m = max(xs)
        es = [mpmath.exp(v - m) for v in xs]
        s = mpmath.fsum(es)
        Ym = [mpmath.mpf(float(v)) for v in Y]
        loss = -mpmath.fsum(c * mpmath.log(e / s) for c, e in zip(Ym, es))
        S = mpmath.fsum(Ym)
        return loss, [S * e / s - c for c, e in zip(Ym, es)]


@pytest.mark.parametrize("C", [16, 64, 65, 2000])
def test_soft_label_rows_of_any_sum(C):
    """float64 soft-label rows from logits spread wide: labels of a large sum (uniform in [0, 1]:
    the row sums to C/2; the gradient at the largest logit lost up to 100 ulp, formed as
    S_rest - S Q_jm), and one coefficient near 1 among small ones in the few-class loops (C <= 64,
    whose plain sums lost 28 ulp of the loss); the row of 2000 classes 52 ulp before."""
    worst = _Worst()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, C)) * 30
    Y = rng.uniform(0, 1, (500, C))
    Y[1::2] = 1e-7
    Y[1::2, 0] = 1 - (C - 1) * 1e-7
    res = xentc.cross_entropy(Y, x, from_logits=True, reduction="none", grad=True)
    rows = list(range(0, 500, 50 if C > 100 else 10)) + list(range(1, 500, 50 if C > 100 else 10))
    if C == 64:
        rows.append(490)   # the audit's row: 28 ulp of the loss in the few-class loop
    for i in rows:
        loss, grad = _mp_ce_row(x[i], Y[i])
        where = f"row {i} of C={C}"
        worst.add("loss", res.loss[i], loss, abs(loss), "float64", where)
        for j in {int(np.argmax(x[i])), 0, C - 1}:
            worst.add(f"grad[{j}]", res.grad[i, j], grad[j], max(abs(grad[j]), 1), "float64", where)
    worst.check()


# --------------------------------------------------------------------------------------
# reductions over 10^6+ elements against an exactly rounded sum
# --------------------------------------------------------------------------------------


def _large_case(name, dt, from_logits, rng):
    npdt = _npdt(dt)
    if name.startswith("binary"):
        shape = (1 << 20,)
        x = rng.normal(0, 4, shape) if from_logits else rng.uniform(1e-6, 1 - 1e-6, shape)
        y = rng.uniform(0, 1, shape)
        y[::3] = np.round(y[::3])
        sw = rng.uniform(0, 2, shape)
    else:
        shape = (1 << 18, 4)                  # 2^20 elements
        x = rng.normal(0, 4, shape) if from_logits else rng.dirichlet(np.ones(4), shape[0])
        y = rng.integers(0, 4, shape[0])
        sw = rng.uniform(0, 2, shape[0])
    return y.astype(npdt) if name.startswith("binary") else y, x.astype(npdt), sw.astype(npdt)


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", sorted(ref.FUNCTIONS))
def test_reductions_over_a_million_elements(name, dt, from_logits):
    rng = np.random.default_rng(len(name) * 7 + from_logits)
    y, x, sw = _large_case(name, dt, from_logits, rng)
    fn = getattr(xentc, name)
    kw = {"gamma": 2.0} if "focal" in name else {}
    eps = float(np.finfo(np.dtype(dt)).eps)
    for weights in (None, sw):
        per, _, _ = ref.FUNCTIONS[name](y, x, from_logits=from_logits, sample_weight=weights,
                                        reduction="none", **kw)
        exact_sum = math.fsum(float(v) for v in per.ravel())
        W = float(x.shape[0]) if weights is None else math.fsum(weights.astype(float))
        got_sum = fn(y, x, from_logits=from_logits, sample_weight=weights, reduction="sum", **kw)
        got_mean = fn(y, x, from_logits=from_logits, sample_weight=weights, **kw)
        # the float64 fsum of longdouble terms is exact to well below a float32/float64 ulp
        assert abs(float(got_sum) - exact_sum) <= 4 * eps * exact_sum, (float(got_sum), exact_sum)
        assert abs(float(got_mean) - exact_sum / W) <= 4 * eps * exact_sum / W, \
            (float(got_mean), exact_sum / W)


# --------------------------------------------------------------------------------------
# dense sweeps: every regime of the vectorised exp/log in one vectorised comparison
# --------------------------------------------------------------------------------------


def _ulps(got, exact, dtype):
    """|got - exact| in ulps of dtype at |exact| (at least the smallest normal number)."""
    fi = np.finfo(dtype)
    exact = np.asarray(exact, dtype=np.longdouble)
    mag = np.maximum(np.abs(exact), np.longdouble(fi.tiny))
    ulp = np.longdouble(2.0) ** (np.floor(np.log2(mag)) - (fi.nmant))
    return np.abs(np.asarray(got, dtype=np.longdouble) - exact) / ulp


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("y", [0.0, 1.0, 0.3])
def test_binary_logits_dense_sweep(dt, y):
    """Binary cross entropy from 2^18 logits spread over every regime (|z| up to 120, where
    exp(-|z|) is subnormal or zero in float32) against the longdouble reference: loss and
    gradient within the bar in relative terms, i.e. also where they are tiny."""
    npdt = _npdt(dt)
    n = 1 << 18
    rng = np.random.default_rng(7)
    z = np.concatenate([np.linspace(-120, 120, n // 2), rng.standard_normal(n // 2) * 10]).astype(npdt)
    yy = np.full(n, y, dtype=npdt)
    res = xentc.binary_cross_entropy(yy, z, from_logits=True, reduction="none", grad=True)
    # reference in longdouble, in forms that keep relative accuracy (softplus(t) = max(t, 0) +
    # log1p(exp(-|t|)), sigmoid(z) = 1 / (1 + exp(-z))); tests/reference.py goes through
    # log-softmax, exact only to about 1e-19 absolute, too coarse for the tiny losses here
    zl = z.astype(np.longdouble)
    yl = np.longdouble(npdt(y))

    def softplus(t):
        return np.maximum(t, 0) + np.log1p(np.exp(-np.abs(t)))

    loss = yl * softplus(-zl) + (1 - yl) * softplus(zl)
    grad = (1 - yl) / (1 + np.exp(-zl)) - yl / (1 + np.exp(zl))
    worst_loss = float(_ulps(res.loss, loss, npdt).max())
    # the gradient sigma(z) - y is compared relative to its size where y is 0 or 1 (both terms
    # are then computed without cancellation) and relative to 1 for the soft label
    gerr = _ulps(res.grad, grad, npdt) if y in (0.0, 1.0) else \
        np.abs(res.grad.astype(np.longdouble) - grad) / np.longdouble(np.finfo(npdt).eps)
    worst_grad = float(gerr.max())
    print(f"{dt} y={y}: worst loss {worst_loss:.2f} ulp, worst grad {worst_grad:.2f} ulp")
    assert worst_loss <= BAR, (worst_loss, float(z[np.argmax(_ulps(res.loss, loss, npdt))]))
    assert worst_grad <= BAR, (worst_grad, float(z[np.argmax(gerr)]))


def _near_label_points(y, eps, dt):
    """Probabilities at and around the smoothed label y_s = y (1 - eps) + eps/2 (_points_around)."""
    with mpmath.workdps(60):
        ys = mpmath.mpf(float(y)) * (1 - mpmath.mpf(float(eps))) + mpmath.mpf(float(eps)) / 2
    return _points_around(ys, dt)


def _points_around(c, dt, factors=()):
    """Probabilities at and around c (an mpf in (0, 1)): its rounding and neighbours 1, 2, 5 and
    1000 ulps away on both sides, c (1 +- 1e-3), and c times each of `factors`."""
    npdt = _npdt(dt)
    with mpmath.workdps(60):
        ds = [mpmath.mpf("-1e-3"), 0, mpmath.mpf("1e-3")] + [mpmath.mpf(f) - 1 for f in factors]
        out = {float(npdt(float(c * (1 + d)))) for d in ds}
    base = npdt(float(c))
    for k in (1, 2, 5, 1000):
        for toward in (0.0, 2.0):
            p = base
            for _ in range(k):
                p = np.nextafter(p, npdt(toward))
            out.add(float(p))
    return sorted(v for v in out if 0.0 < v < 1.0)


def _near_label_labels(dt):
    npdt = _npdt(dt)
    tiny = [1e-300, 3e-310] if dt == "float64" else [1e-35, 3e-40]   # below 2^-960 / 2^-100 too
    return [float(npdt(v)) for v in [0.0, 1.0, 0.3, 0.1, 0.7, 1e-3, 0.25, 0.5, 1 / 3, 0.9999] + tiny]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.05])
@pytest.mark.parametrize("option", ["plain", "pos_weight_1", "pos_weight_array_1", "focal_g0", "focal_g0_alpha_half"])
def test_binary_gradient_from_probabilities_near_the_label(dt, eps, option):
    """Cross entropy from probabilities with both sides weighted alike: the gradient
    (1 - y_s)/(1 - p) - y_s/p is within the bar of its own magnitude (not only of its terms'),
    also as p nears the (smoothed, soft) label and the two terms cancel."""
    npdt = _npdt(dt)
    eps = float(npdt(eps))
    ys, ps = [], []
    for y in _near_label_labels(dt):
        pts = _near_label_points(y, eps, dt)
        ys += [y] * len(pts)
        ps += pts
    n = len(ps)
    y = np.array(ys, dtype=npdt).reshape(n, 1).repeat(2, axis=1)   # two labels a row: a per-label weight
    x = np.array(ps, dtype=npdt).reshape(n, 1).repeat(2, axis=1)
    sw = np.resize(np.array([1.0, 0.375, 3.0], dtype=npdt), (n, 2))
    if option.startswith("focal"):
        alpha = 0.5 if option.endswith("half") else None
        res = xentc.binary_focal_loss(y, x, gamma=0.0, alpha=alpha, label_smoothing=eps, sample_weight=sw,
                                      reduction="none", grad=True)
        formula, a = S.binary_formula("focal", False, alpha is not None), alpha or 0.0
    else:
        pw = {"plain": None, "pos_weight_1": 1.0, "pos_weight_array_1": np.ones(2, dtype=npdt)}[option]
        res = xentc.binary_cross_entropy(y, x, pos_weight=pw, label_smoothing=eps, sample_weight=sw,
                                         reduction="none", grad=True)
        formula, a = S.binary_formula("ce", False), 0.0
    worst = _Worst()
    for i in range(n):
        for j in range(2):
            vals = {"y": float(y[i, j]), "eps": eps, "pw": 1.0, "sw": float(sw[i, j]), "a": a}
            r = formula.evaluate([float(x[i, j])], [vals[s.name] for s in formula.params], 0.0)
            # the bar at |exact|; where p equals y_s the exact 0 comes back from mpmath as a residual
            # far below the terms' size (1e-100 of it), which stands for 0
            worst.add("grad", res.grad[i, j], r.grad[0], max(abs(r.grad[0]), r.gscale[0] * mpmath.mpf("1e-60")), dt,
                      f"{option} eps={eps} y={float(y[i, j])!r} p={float(x[i, j])!r} sw={float(sw[i, j])} {dt}")
    worst.check()


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("option", ["pos_weight_2", "pos_weight_0.3", "pos_weight_array", "pos_weight_1e-3",
                                    "focal_g0_alpha_0.25", "focal_g0_alpha_0.8125"])
def test_binary_gradient_from_probabilities_near_the_minimum(dt, eps, option):
    """Cross entropy from probabilities with the sides weighted differently (pos_weight, focal
    gamma 0 with alpha other than 0.5): the gradient c0/(1 - p) - c1/p vanishes at
    p* = c1/(c0 + c1), and around p*, where its terms cancel, it is within the bar of
    max(|exact|, the terms' size times the dtype's epsilon), and far from p* too. The floor is
    what a sum of two floats can hold: the exact value can lie closer to 0 than an ulp of the
    terms, where p is within a fraction of an ulp of p* (float32, y = 0.1, eps = 0.1, alpha 0.25,
    p = 0.05147059: the gradient is 1/25 of that ulp, and the result 30 ulp of it off)."""
    npdt = _npdt(dt)
    eps = float(npdt(eps))
    if option.startswith("focal"):
        a = float(option.rsplit("_", 1)[1])
        w1, w0 = [a, a], 1.0 - a
    elif option == "pos_weight_array":
        w1, w0 = [float(npdt(2.0)), float(npdt(0.7))], 1.0
    else:
        w1, w0 = [float(npdt(float(option.rsplit("_", 1)[1])))] * 2, 1.0
    ys, ps = [[], []], [[], []]
    for j in range(2):
        for y in _near_label_labels(dt):
            with mpmath.workdps(60):
                s = mpmath.mpf(y) * (1 - mpmath.mpf(eps)) + mpmath.mpf(eps) / 2
                c1, c0 = w1[j] * s, w0 * (1 - s)
                if c1 == 0 or c0 == 0:
                    continue
                pstar = c1 / (c0 + c1)
            pts = _points_around(pstar, dt, factors=(0.1, 0.5, 0.9, 1.5, 3.0))
            ys[j] += [y] * len(pts)
            ps[j] += pts
    n = min(len(ps[0]), len(ps[1]))
    y = np.array([ys[0][:n], ys[1][:n]], dtype=npdt).T.copy()   # two labels a row: a per-label weight
    x = np.array([ps[0][:n], ps[1][:n]], dtype=npdt).T.copy()
    sw = np.resize(np.array([1.0, 0.375, 3.0], dtype=npdt), (n, 2))
    if option.startswith("focal"):
        res = xentc.binary_focal_loss(y, x, gamma=0.0, alpha=w1[0], label_smoothing=eps, sample_weight=sw,
                                      reduction="none", grad=True)
        formula = S.binary_formula("focal", False, True)
    else:
        pw = np.array(w1, dtype=npdt) if option == "pos_weight_array" else w1[0]
        res = xentc.binary_cross_entropy(y, x, pos_weight=pw, label_smoothing=eps, sample_weight=sw,
                                         reduction="none", grad=True)
        formula = S.binary_formula("ce", False)
    worst = _Worst()
    tiny = mpmath.mpf(float(np.finfo(npdt).eps))
    for i in range(n):
        for j in range(2):
            vals = {"y": float(y[i, j]), "eps": eps, "pw": w1[j], "sw": float(sw[i, j]), "a": w1[j]}
            r = formula.evaluate([float(x[i, j])], [vals[s.name] for s in formula.params], 0.0)
            worst.add("grad", res.grad[i, j], r.grad[0], max(abs(r.grad[0]), r.gscale[0] * tiny), dt,
                      f"{option} eps={eps} y={float(y[i, j])!r} p={float(x[i, j])!r} sw={float(sw[i, j])} {dt}")
    worst.check()


@pytest.mark.parametrize("gamma", [2.0, 2.5, 0.5, 7.0])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_focal_gradient_from_probabilities_near_the_minimum(gamma, eps, alpha):
    """float32 binary focal loss (gamma != 0) from probabilities with soft or smoothed labels: its
    gradient's two terms cancel around a minimum p* of no closed form, and there (and away from
    it) the gradient is within the bar of max(|exact|, the terms' size times float32's epsilon),
    as cross entropy's is (test_binary_gradient_from_probabilities_near_the_minimum). Computed in
    float, the two terms were up to 2.6e8 ulp of |exact| off near p*. float64 is not held to
    this yet: its terms would need double-double (benchmarks/RESULTS.md)."""
    npdt = np.float32
    e = float(npdt(eps))
    a1, a0 = (1.0, 1.0) if alpha is None else (float(npdt(alpha)), 1 - float(npdt(alpha)))
    labels = [float(npdt(v)) for v in [0.3, 0.1, 0.7, 0.5, 1e-3, 0.9999, 1 / 3, 1e-30]] + ([0.0, 1.0] if e else [])
    ys = [float(np.float64(v) * (1 - e) + e / 2) for v in labels]
    pstar = focal_prob_minimum(ys, a1, a0, gamma)
    yy, ps = [], []
    for y, c in zip(labels, pstar):
        pts = _points_around(mpmath.mpf(float(c)), "float32", factors=(0.1, 0.5, 0.9, 1.5, 3.0))
        yy += [y] * len(pts)
        ps += pts
    n = len(ps)
    y = np.array(yy, dtype=npdt)
    x = np.array(ps, dtype=npdt)
    sw = np.resize(np.array([1.0, 0.375, 3.0], dtype=npdt), n)
    res = xentc.binary_focal_loss(y, x, gamma=gamma, alpha=alpha, label_smoothing=eps, sample_weight=sw,
                                  reduction="none", grad=True)
    formula = S.binary_formula("focal", False, alpha is not None)
    worst = _Worst()
    tiny = mpmath.mpf(float(np.finfo(npdt).eps))
    for i in range(n):
        vals = {"y": float(y[i]), "eps": e, "sw": float(sw[i]), "a": a1}
        r = formula.evaluate([float(x[i])], [vals[s.name] for s in formula.params], gamma)
        worst.add("grad", res.grad[i], r.grad[0], max(abs(r.grad[0]), r.gscale[0] * tiny), "float32",
                  f"gamma={gamma} alpha={alpha} eps={e} y={float(y[i])!r} p={float(x[i])!r} sw={float(sw[i])}")
    worst.check()
