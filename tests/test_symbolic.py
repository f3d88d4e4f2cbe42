"""The kernels against SymPy-derived derivatives, evaluated with mpmath.

Every loss x input form (probabilities, logits) x label form x option x dtype: the
per-sample loss, gradient and Hessian diagonal (``reduction="none"``) at >= 200 points
over all magnitudes must lie within 16 ulp of the exact value (design notes,
section 3; the scale of the bar is described in ``xentc/_symbolic.py``), and
``reduction="mean"/"sum"`` must equal the weighted mean/sum of the reference.

The reference is checked too: SymPy's derivatives against mpmath's numerical
differentiation, and the fast mixed-precision evaluation against a plain
evaluation of the unmodified expressions at high precision.
"""

import math
import os

import numpy as np
import pytest

sympy = pytest.importorskip("sympy")
mpmath = pytest.importorskip("mpmath")

import xentc  # noqa: E402,F401  (the installed package)
from xentc import _symbolic as S  # noqa: E402

COMBOS = S.combinations()
REDUCTION_COMBOS = S.reduction_combinations()


# ---------------------------------------------------------------------------------------
# the reference itself
# ---------------------------------------------------------------------------------------


def _plain(formula_args, binary, xs, pvals, gamma, dps):
    """Loss and derivatives by mpmath.diff of the plain (unrewritten) SymPy loss."""
    if binary:
        loss, vs, params, g = S._binary_formula(*formula_args)
    else:
        loss, vs, params, g = S._categorical_formula(*formula_args)
    f = sympy.lambdify(vs + params + (g,), loss, "mpmath")
    with mpmath.workdps(dps):
        xm = [mpmath.mpf(x) for x in xs]
        pm = [mpmath.mpf(v) for v in pvals]
        gm = mpmath.mpf(gamma)
        value = f(*xm, *pm, gm)
        grads, hess = [], []
        for k in range(len(xs)):
            def h(t, k=k):
                xx = list(xm)
                xx[k] = t
                return f(*xx, *pm, gm)
            grads.append(mpmath.diff(h, xm[k], 1))
            hess.append(mpmath.diff(h, xm[k], 2))
    return value, grads, hess


def _symbolic_only(formula_args, binary, xs, pvals, gamma, dps):
    """Loss and SymPy derivatives of the plain expressions, evaluated at ``dps``."""
    if binary:
        loss, vs, params, g = S._binary_formula(*formula_args)
    else:
        loss, vs, params, g = S._categorical_formula(*formula_args)
    exprs = [loss] + [sympy.diff(loss, v) for v in vs] + [sympy.diff(loss, v, 2)
                                                           for v in vs]
    f = sympy.lambdify(vs + params + (g,), exprs, "mpmath")
    with mpmath.workdps(dps):
        out = f(*[mpmath.mpf(x) for x in xs], *[mpmath.mpf(v) for v in pvals],
                mpmath.mpf(gamma))
    n = len(vs)
    return out[0], out[1:1 + n], out[1 + n:]


def _rel(a, b):
    return abs(a - b) / max(abs(b), mpmath.mpf("1e-300"))


REF_CASES = [
    # (binary?, formula args, xs, params by name, gamma)
    (True, ("ce", True, False), [2.5], dict(y=0.3, eps=0.1, pw=2.0, sw=1.5), 0.0),
    (True, ("ce", False, False), [0.37], dict(y=0.8, eps=0.0, pw=0.5, sw=1.0), 0.0),
    (True, ("focal", True, True), [-3.25], dict(y=0.6, eps=0.1, sw=0.7, a=0.25), 0.5),
    (True, ("focal", False, False), [0.61], dict(y=1.0, eps=0.2, sw=1.0, a=0.0), 2.0),
    (False, ("ce", True, 3), [0.5, -1.25, 3.0],
     dict(Y0=0.2, Y1=0.5, Y2=0.3, cw0=1.0, cw1=2.0, cw2=0.5, eps=0.1, sw=1.0), 0.0),
    (False, ("focal", True, 3), [4.0, -1.0, 0.25],
     dict(Y0=0.0, Y1=1.0, Y2=0.5, cw0=1.0, cw1=1.5, cw2=0.5, a0=0.25, a1=0.5, a2=1.0,
          eps=0.05, sw=2.0), 1.5),
    (False, ("focal", False, 3), [0.2, 0.7, 0.05],
     dict(Y0=0.1, Y1=0.6, Y2=0.3, cw0=1.0, cw1=1.0, cw2=1.0, a0=1.0, a1=0.5, a2=1.0,
          eps=0.0, sw=1.0), 5.0),
]


def _formula(binary, args):
    return S.binary_formula(*args) if binary else S.categorical_formula(*args)


@pytest.mark.parametrize("case", REF_CASES, ids=lambda c: f"{c[1]}-{c[2]}")
def test_reference_matches_numerical_differentiation(case):
    """SymPy's derivatives agree with mpmath's numerical differentiation."""
    binary, args, xs, params, gamma = case
    formula = _formula(binary, args)
    pvals = [params.get(s.name, 0.0) for s in formula.params]
    ref = formula.evaluate(xs, pvals, gamma)
    value, grads, hess = _plain(args, binary, xs, pvals, gamma, 60)
    assert _rel(ref.loss, value) < 1e-40
    for a, b in zip(ref.grad, grads):
        assert _rel(a, b) < 1e-30
    for a, b in zip(ref.hess, hess):
        assert _rel(a, b) < 1e-25


@pytest.mark.parametrize("case", [
    # large logits: the plain expressions need about |z|/ln(10) digits
    (True, ("ce", True, False), [-700.5], dict(y=1.0, eps=0.0, pw=1.0, sw=1.0), 0.0),
    (True, ("ce", True, False), [745.25], dict(y=0.25, eps=0.1, pw=3.0, sw=1.0), 0.0),
    (True, ("focal", True, True), [300.0], dict(y=1.0, eps=0.0, sw=1.0, a=0.75), 0.5),
    (True, ("focal", True, False), [-250.0], dict(y=0.0, eps=0.0, sw=1.0), 5.0),
    (True, ("focal", True, True), [1e4], dict(y=0.3, eps=0.1, sw=1.0, a=0.25), 0.5),
    (False, ("ce", True, 3), [400.0, -10.0, 0.0],
     dict(Y0=1.0, cw0=1.0, cw1=1.0, cw2=1.0, eps=0.0, sw=1.0), 0.0),
    (False, ("focal", True, 3), [600.0, 1.0, -600.0],
     dict(Y0=0.7, Y1=0.2, Y2=0.1, cw0=1.0, cw1=1.0, cw2=1.0, a0=1.0, a1=1.0, a2=1.0,
          eps=0.1, sw=1.0), 0.5),
    (False, ("focal", True, 3), [-10.0, 700.0, 650.0],
     dict(Y0=0.0, Y1=1.0, Y2=0.0, cw0=1.0, cw1=1.0, cw2=1.0, a0=1.0, a1=1.0, a2=1.0,
          eps=0.0, sw=1.0), 2.0),
    (False, ("focal", False, 3), [1e-300, 1 - 2.0 ** -53, 1e-30],
     dict(Y0=0.5, Y1=1.0, Y2=0.25, cw0=1.0, cw1=1.0, cw2=1.0, a0=1.0, a1=1.0, a2=1.0,
          eps=0.0, sw=1.0), 0.5),
    (True, ("ce", False, False), [2.2250738585072014e-308],
     dict(y=0.0, eps=0.0, pw=1.0, sw=1.0), 0.0),
], ids=lambda c: f"{c[1]}-{c[2]}")
def test_fast_evaluation_matches_plain_high_precision(case):
    """The rewritten (cancellation-free) evaluation equals the plain expressions."""
    binary, args, xs, params, gamma = case
    formula = _formula(binary, args)
    pvals = [params.get(s.name, 0.0) for s in formula.params]
    ref = formula.evaluate(xs, pvals, gamma)
    spread = max(abs(x) for x in xs) * (2 if len(xs) > 1 else 1)
    dps = 120 + int(2 * spread / math.log(10)) + 330
    value, grads, hess = _symbolic_only(args, binary, xs, pvals, gamma, dps)
    tiny = mpmath.mpf("1e-60")
    assert abs(ref.loss - value) <= tiny * abs(value) + mpmath.mpf("1e-400")
    for a, b, s in zip(ref.grad, grads, ref.gscale):
        assert abs(a - b) <= tiny * max(abs(b), s)
    for a, b, s in zip(ref.hess, hess, ref.hscale):
        assert abs(a - b) <= tiny * max(abs(b), s)


def test_ulp_error():
    f32, f64 = "float32", "float64"
    one = mpmath.mpf(1)
    assert S.ulp_error(1.0, one, 0, f64) == 0.0
    assert S.ulp_error(1.0 + 2.0 ** -52, one, 0, f64) == 1.0
    assert S.ulp_error(np.float32(1 + 2.0 ** -23), one, 0, f32) == 1.0
    # measured against the scale where the exact value is small
    assert S.ulp_error(2.0 ** -52, mpmath.mpf(0), one, f64) == 1.0
    # overflow: the exact value beyond the range needs inf of the right sign
    big = mpmath.mpf(10) ** 400
    assert S.ulp_error(math.inf, big, 0, f64) == 0.0
    assert S.ulp_error(-math.inf, big, 0, f64) == math.inf
    assert S.ulp_error(np.float32(np.inf), mpmath.mpf("1e39"), 0, f32) == 0.0
    assert S.ulp_error(math.inf, mpmath.mpf(1), 0, f64) > 1e300
    assert S.ulp_error(math.nan, mpmath.mpf(1), 0, f64) == math.inf
    assert S.ulp_error(math.nan, mpmath.mpf("nan"), 0, f64) == 0.0
    assert S.ulp_error(math.inf, mpmath.mpf("inf"), 0, f64) == 0.0
    # subnormal results: the ulp is the smallest subnormal
    assert S.ulp_error(0.0, mpmath.mpf(2) ** -1074, 0, f64) == 1.0
    assert S.ulp_error(0.0, mpmath.mpf("1e-4000"), 0, f64) < 1e-300


# ---------------------------------------------------------------------------------------
# the kernels
# ---------------------------------------------------------------------------------------


class _Prebuilt:
    """The references of the selected combinations, built ahead by worker processes.

    Building the mpmath references is the slow part and pure Python, so worker
    processes (forked once the formulas are compiled) build them in test order
    while this process calls the kernels.
    """

    def __init__(self, combos):
        processes = min(os.cpu_count() or 1, 4)
        self._iter = S._cases_in_parallel(combos, processes)
        self._ready = {}

    def cases(self, combo):
        while combo not in self._ready:
            try:
                built, cases = next(self._iter)
            except StopIteration:
                return None
            self._ready[built] = cases
        return self._ready.pop(combo)

    def close(self):
        self._iter.close()


@pytest.fixture(scope="module")
def prebuilt(request):
    selected = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if (callspec is not None and "combo" in callspec.params
                and str(getattr(item, "path", "")) == __file__):
            selected.append(callspec.params["combo"])
    S._warm_up(selected)
    pre = _Prebuilt(selected)
    yield pre
    pre.close()


def _fail(result):
    pytest.fail("\n" + result.report(), pytrace=False)


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_per_sample_within_bar(combo, prebuilt):
    result = S.check(combo, prebuilt.cases(combo))
    if not result.passed:
        _fail(result)


@pytest.mark.parametrize("combo", REDUCTION_COMBOS, ids=str)
def test_reductions_match_weighted_reference(combo, prebuilt):
    result = S.check_reduction(combo, prebuilt.cases(combo))
    if not result.passed:
        _fail(result)


@pytest.mark.parametrize("field, ulps", [("loss", 40), ("grad", 40), ("hess", 200)])
@pytest.mark.parametrize("func", ["binary_cross_entropy", "focal_loss"])
def test_harness_catches_a_perturbed_kernel(monkeypatch, func, field, ulps):
    """The harness fails a kernel whose results are off by tens of ulp (hess: of 1)."""
    real = getattr(xentc, func)

    def perturbed(*args, **kwargs):
        res = real(*args, **kwargs)
        arr = getattr(res, field)
        eps = np.finfo(arr.dtype).eps
        arr = np.where(np.abs(arr) > 0.1, arr * (1 + ulps * eps), arr).astype(arr.dtype)
        return res._replace(**{field: arr})

    monkeypatch.setattr(xentc, func, perturbed)
    short = "bce" if func == "binary_cross_entropy" else "focal"
    labels = "soft"
    combo = S.Combo(short, True, labels, "none" if short == "bce" else "gamma=2", "float64",
                    n=40, classes=(3,))
    result = S.check(combo)
    assert not result.passed
    assert getattr(result, field).error > 16


def test_verify_quick_table():
    rows = S.verify(quick=True, dtypes=("float32",))
    assert rows and all(len(r) == 6 for r in rows)
    table = S.format_table(rows)
    assert "combination" in table and rows[0][0] in table
