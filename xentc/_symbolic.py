"""Symbolic verification harness: SymPy derivations checked against the kernels.

The per-sample formulas of the contract (design notes, section 1) are written here
in SymPy, straight from the definitions in ``seed/cross-entropy.md``; every
gradient and Hessian diagonal is obtained with ``sympy.diff`` -- there is no
hand-written derivative in this module.  The expressions are evaluated with
mpmath at high precision at points drawn in the target dtype, and the compiled
kernels (called through the public API only) are compared with them in units in
the last place (ulp) of the output dtype.

This module imports SymPy and mpmath; ``import xentc`` never imports it.  It is
used by ``tests/test_symbolic.py`` and by ``python -m xentc verify``, which calls
:func:`verify` and :func:`format_table`.

Evaluation scheme
-----------------
From logits, the composed expressions contain differences such as
``1 - 1/(1 + exp(-z))`` or ``P - P**2`` that cancel catastrophically at large
logits; evaluated as written they would need thousands of digits at ``|z| = 1e4``
(slow in pure-Python mpmath).  Instead, before lambdifying, each SymPy expression
is rewritten by exact identities only:

* ``exp(sum_k c_k x_k)`` (integer ``c_k``) becomes ``prod_k E_k**c_k`` with
  ``E_k = exp(x_k)`` computed once per point (mpf exponents are unbounded);
* every sum becomes one fraction with an expanded numerator (``together`` +
  ``expand``), so ``1 - E0/(E0 + E1)`` is ``E1/(E0 + E1)`` and the cancellation
  happens symbolically, not in floating point;
* ``log(u)`` becomes ``xlog(u, u - 1)`` (``log1p(u - 1)`` near 1) and ``b**g``
  with a non-integer exponent ``xpow(b, b - 1, g) = exp(g*xlog(b, b - 1))``, both
  arguments in the cancellation-free form above.

Transcendental functions run at ``_LOW_DPS`` (50) digits and the rational
arithmetic a few guard digits above.  Every point is evaluated twice, at two
different precisions, and both results must agree to 30 digits (relative to the
scale of the bar) and be finite; otherwise the precision is raised -- up to the
digits that resolve any cancellation among the inputs' exponentials, then
doubled -- so a precision shortfall is detected rather than trusted.  The tests
also compare this evaluation with a plain one of the unmodified expressions at
hundreds of digits, and the derivatives with ``mpmath.diff``.

The ``0*log(0) = 0`` convention: the loss is split (by SymPy, with
``as_independent``) into terms ``coef_j * f_j(y_pred)`` whose coefficients
(labels, weights, alpha, smoothing) do not depend on ``y_pred``; a term whose
coefficient is exactly zero contributes nothing, to the loss or its
derivatives.  Derivatives are taken of each ``f_j`` by SymPy, which is the
derivative of the full formula by linearity.

Accuracy bar (design notes, section 3), see :func:`ulp_error`: loss within 16 ulp
of the exact value; gradient and Hessian diagonal within 16 ulp of
``max(|exact|, floor, sum|terms|)``, where ``floor`` is the weighted analogue of
1 from logits (``sum_j |coef_j|``, which is 1 for unweighted labels) and 0 from
probabilities, and ``terms`` are the top-level ``Add`` arguments of the SymPy
derivative expressions (a condition-number-aware scale).
"""

from __future__ import annotations

import functools
import math
import time
import zlib
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

__all__ = [
    "ULP_BAR",
    "Combo",
    "CheckResult",
    "VerifyRow",
    "combinations",
    "reduction_combinations",
    "check",
    "check_reduction",
    "ulp_error",
    "verify",
    "format_table",
]

#: Accuracy bar of design section 3, in ulps of the output dtype.
ULP_BAR = 16.0

#: Digits for transcendental functions (exp, log, log1p); rational arithmetic
#: runs at a higher precision chosen per point.
_LOW_DPS = 50

_FLOAT_FORMATS = {
    # name: (numpy dtype, mantissa bits incl. hidden, emin, emax)
    "float32": (np.float32, 24, -126, 127),
    "float64": (np.float64, 53, -1022, 1023),
}

_LN10 = math.log(10.0)


# ---------------------------------------------------------------------------
# ulp arithmetic
# ---------------------------------------------------------------------------


def _ulp(x, dtype):
    """ulp of the dtype at magnitude ``x`` (an mpf >= 0); subnormal ulp below."""
    _, p, emin, emax = _FLOAT_FORMATS[dtype]
    if x == 0 or not mpmath.isfinite(x):
        e = emin if x == 0 else emax
    else:
        _, e2 = mpmath.frexp(x)  # x = m * 2**e2, 0.5 <= m < 1
        e = min(max(int(e2) - 1, emin), emax)
    return mpmath.ldexp(mpmath.mpf(1), e - p + 1)


def _max_finite(dtype):
    _, p, _, emax = _FLOAT_FORMATS[dtype]
    return mpmath.ldexp(mpmath.mpf(2) - mpmath.ldexp(mpmath.mpf(1), 1 - p), emax)


def ulp_error(got, exact_mpf, scale_mpf, dtype):
    """Error of ``got`` in ulps of the dtype at ``max(|exact|, |scale|)``.

    Parameters
    ----------
    got : float or NumPy scalar
        The kernel's value.
    exact_mpf : mpmath.mpf
        The exact value (may be ``±inf``, NaN, or beyond the dtype's range).
    scale_mpf : mpmath.mpf
        The magnitude the error is measured against (e.g. ``1`` for gradients from
        logits, or the sum of the absolute values of the terms of the exact
        expression); the ulp is taken at ``max(|exact|, |scale|)``.
    dtype : {"float32", "float64"}

    Returns
    -------
    float
        ``|got - exact| / ulp(max(|exact|, |scale|))``.  ``0.0`` when both are NaN,
        or when ``exact`` is infinite or overflows the dtype and ``got`` is the
        infinity of the same sign; ``inf`` for NaN against a number or a wrong
        infinity.  A finite ``got`` against an overflowing ``exact`` is measured
        against the largest finite number's ulp; an infinite ``got`` against a
        finite ``exact`` counts as ``±2**(emax+1)`` (what rounding to infinity
        stands for).
    """
    _, _, _, emax = _FLOAT_FORMATS[dtype]
    with mpmath.workdps(60):
        exact = mpmath.mpf(exact_mpf)
        scale = abs(mpmath.mpf(scale_mpf))
        g = float(got)
        if mpmath.isnan(exact):
            return 0.0 if math.isnan(g) else math.inf
        if math.isnan(g):
            return math.inf
        maxf = _max_finite(dtype)
        if mpmath.isinf(exact) or abs(exact) > maxf:
            if math.isinf(g) and (g > 0) == (exact > 0):
                return 0.0
            if mpmath.isinf(exact):
                return math.inf
        if math.isinf(g) and exact != 0 and (g > 0) != (exact > 0):
            return math.inf
        if math.isinf(g):
            gm = mpmath.ldexp(mpmath.mpf(1 if g > 0 else -1), emax + 1)
        else:
            gm = mpmath.mpf(g)
        mag = max(abs(exact), scale)
        if mpmath.isinf(mag):
            mag = maxf
        return float(abs(gm - exact) / _ulp(mag, dtype))


# ---------------------------------------------------------------------------
# the formulas (SymPy), straight from the seed's definitions
# ---------------------------------------------------------------------------

_xlog = sp.Function("xlog")
_xpow = sp.Function("xpow")
_xexp = sp.Function("xexp")


def _binary_formula(family, logits, alpha_given):
    """Per-sample binary loss; returns (loss, variable, parameter symbols)."""
    v = sp.Symbol("z" if logits else "p", real=True)
    y, eps, pw, sw, a = sp.symbols("y eps pw sw a", real=True)
    g = sp.Symbol("gamma", real=True)
    p = 1 / (1 + sp.exp(-v)) if logits else v
    ys = y * (1 - eps) + eps / 2  # label smoothing
    if family == "ce":
        loss = -(pw * ys * sp.log(p) + (1 - ys) * sp.log(1 - p))
        params = (y, eps, pw, sw)
    else:
        a_pos, a_neg = (a, 1 - a) if alpha_given else (1, 1)
        loss = -(a_pos * ys * (1 - p) ** g * sp.log(p)
                 + a_neg * (1 - ys) * p ** g * sp.log(1 - p))
        params = (y, eps, sw, a)
    return sw * loss, (v,), params, g


def _categorical_formula(family, logits, C):
    """Per-row categorical loss over C classes; returns (loss, vars, params, gamma)."""
    vs = sp.symbols(f"{'x' if logits else 'P'}0:{C}", real=True)
    Y = sp.symbols(f"Y0:{C}", real=True)
    cw = sp.symbols(f"cw0:{C}", real=True)
    al = sp.symbols(f"a0:{C}", real=True)
    eps, sw = sp.symbols("eps sw", real=True)
    g = sp.Symbol("gamma", real=True)
    if logits:
        S = sum(sp.exp(x) for x in vs)
        P = [sp.exp(x) / S for x in vs]
    else:
        P = list(vs)
    Ys = [Y[j] * (1 - eps) + eps / C for j in range(C)]  # label smoothing
    if family == "ce":
        loss = -sum(cw[j] * Ys[j] * sp.log(P[j]) for j in range(C))
        params = Y + cw + (eps, sw)
    else:
        loss = -sum(al[j] * cw[j] * Ys[j] * (1 - P[j]) ** g * sp.log(P[j])
                    for j in range(C))
        params = Y + cw + al + (eps, sw)
    return sw * loss, tuple(vs), params, g


def _split_terms(expr, variables):
    """Split ``expr`` into [(coef, f)] with ``coef`` free of the variables."""
    if expr.is_Add:
        out = []
        for arg in expr.args:
            out.extend(_split_terms(arg, variables))
        return out
    coef, dep = expr.as_independent(*variables, as_Add=False)
    if dep.is_Add:
        return [(coef * c, f) for c, f in _split_terms(dep, variables)]
    return [(coef, dep)]


def _rational_form(e):
    """``e`` as one fraction with an expanded numerator (an exact identity).

    Terms such as ``1 - E0/(E0 + E1)`` or ``E0/S - E0**2/S**2`` cancel
    symbolically here (to ``E1/(E0 + E1)``, ``E0*(S - E0)/S**2`` expanded), so the
    numerical evaluation never subtracts nearly equal numbers to get them.
    ``xlog``/``xpow``/``xexp`` values are opaque generators.
    """
    if e.is_Atom:
        return e
    n, d = sp.fraction(sp.together(e))
    return sp.expand(n) / d


def _rewrite_for_eval(expr, xs, Es):
    """Rewrite an expression, by exact identities, for the evaluation (module doc)."""
    def exp_to_E(arg):
        arg = sp.expand(arg)
        coeffs = [arg.coeff(x) for x in xs]
        rest = sp.expand(arg - sum(c * x for c, x in zip(coeffs, xs)))
        if rest == 0 and all(c.is_Integer for c in coeffs):
            return sp.Mul(*[E ** c for E, c in zip(Es, coeffs)])
        return _xexp(arg)

    if xs:
        expr = expr.replace(lambda e: isinstance(e, sp.exp),
                            lambda e: exp_to_E(e.args[0]))
    # every sum as one fraction with its cancellations done (replace works from the
    # leaves up); log(u) -> xlog(u, u - 1) and b**g -> xpow(b, b - 1, g), with the
    # distance from 1 also in cancellation-free form
    expr = expr.replace(lambda e: e.is_Add, _rational_form)
    expr = expr.replace(
        lambda e: isinstance(e, sp.log),
        lambda e: _xlog(e.args[0], _rational_form(e.args[0] - 1)))
    expr = expr.replace(
        lambda e: e.is_Pow and not e.exp.is_Integer,
        lambda e: _xpow(e.base, _rational_form(e.base - 1), e.exp))
    return expr


def _mp_xlog(u, d):
    """log(u) given u and d = u - 1, each computed without cancellation."""
    if u == 0:
        return mpmath.mpf("-inf")
    if u < 0:
        raise ValueError("log of a negative number")
    with mpmath.workdps(_LOW_DPS + 10):
        if abs(d) < 0.5:
            return mpmath.log1p(d)
        return mpmath.log(u)


def _mp_xpow(b, d, e):
    """b**e given b and d = b - 1 (non-integer e)."""
    if b == 0:
        if e > 0:
            return mpmath.mpf(0)
        if e == 0:
            return mpmath.mpf(1)
        raise ZeroDivisionError("0 to a negative power")
    lb = _mp_xlog(b, d)
    with mpmath.workdps(_LOW_DPS + 10 + int(mpmath.log10(abs(lb * e) + 1))):
        return mpmath.exp(e * lb)


def _mp_xexp(a):
    with mpmath.workdps(_LOW_DPS + 10 + int(mpmath.log10(abs(a) + 1))):
        return mpmath.exp(a)


_MODULES = [{"xlog": _mp_xlog, "xpow": _mp_xpow, "xexp": _mp_xexp}, "mpmath"]


class _TermsEval:
    """Terms ``f_j(vars; gamma)``: values, derivatives (by SymPy) and their Add args.

    One lambdified function (with common subexpressions shared) returns, for each
    ``f_j``, its value and the top-level ``Add`` arguments of ``d f_j / d v_k`` and
    ``d^2 f_j / d v_k^2`` for every variable ``v_k``.
    """

    def __init__(self, fs, variables, gamma, logits):
        Es = sp.symbols(f"E0:{len(variables)}", positive=True) if logits else ()
        outputs = []
        self.layout = []  # per f: (index of f, [(d1 args range, d2 args range) per var])
        for f in fs:
            outs, per_var = _term_outputs(f, variables, logits)
            base = len(outputs)
            outputs.extend(outs)
            self.layout.append((base, [((a + base, b + base), (c + base, d + base))
                                       for (a, b), (c, d) in per_var]))
        self.fn = sp.lambdify(tuple(variables) + tuple(Es) + (gamma,), outputs,
                              modules=_MODULES, cse=True)


@functools.lru_cache(maxsize=None)
def _term_outputs(f, variables, logits):
    """f, and the Add args of its first and second derivatives, rewritten for eval."""
    Es = sp.symbols(f"E0:{len(variables)}", positive=True) if logits else ()
    xs = variables if logits else ()
    outputs = [f]
    per_var = []
    for v in variables:
        d1 = sp.diff(f, v)
        d2 = sp.diff(d1, v)
        sl = []
        for d in (d1, d2):
            args = [] if d == 0 else list(sp.Add.make_args(d))
            sl.append((len(outputs), len(outputs) + len(args)))
            outputs.extend(args)
        per_var.append(tuple(sl))
    return [_rewrite_for_eval(o, xs, Es) for o in outputs], per_var


@functools.lru_cache(maxsize=None)
def _terms_eval(fs, variables, gamma, logits):
    return _TermsEval(fs, variables, gamma, logits)


class _Formula:
    """A per-sample loss, split into terms, with compiled derivative evaluators."""

    def __init__(self, loss, variables, params, gamma, logits):
        self.loss = loss
        self.variables = variables
        self.params = params
        self.gamma = gamma
        self.logits = logits
        split = _split_terms(loss, variables)
        self.coefs = [sp.lambdify(params, c, modules="mpmath") for c, _ in split]
        fs = tuple(f for _, f in split)
        # one evaluator per term (few active terms), and one for all of them at once
        # (soft labels from logits share the softmax between the terms)
        self.single = [_terms_eval((f,), variables, gamma, logits) for f in fs]
        self.joint = _terms_eval(fs, variables, gamma, logits) if logits else None

    def _evaluate_once(self, xs, pvals, gamma, low, high):
        global _LOW_DPS
        saved = _LOW_DPS
        _LOW_DPS = low
        try:
            with mpmath.workdps(high):
                mpf = mpmath.mpf
                xm = [mpf(x) for x in xs]
                if self.logits:
                    with mpmath.workdps(low + 10 + int(max(math.log10(abs(x) + 1)
                                                           for x in xs))):
                        Es = [mpmath.exp(x) for x in xm]
                else:
                    Es = []
                gm = mpf(gamma)
                n = len(xs)
                zero = mpf(0)
                loss = zero
                grad = [zero] * n
                hess = [zero] * n
                gterms = [zero] * n
                hterms = [zero] * n
                weight = zero
                coefs = [c(*pvals) for c in self.coefs]
                # 0 * log(0) = 0: a term whose weight is exactly 0 adds nothing
                active = [j for j, c in enumerate(coefs) if c != 0]
                if len(active) > 1 and self.joint is not None:
                    out = self.joint.fn(*xm, *Es, gm)
                    jobs = [(coefs[j], out, self.joint.layout[j]) for j in active]
                else:
                    jobs = []
                    for j in active:
                        te = self.single[j]
                        jobs.append((coefs[j], te.fn(*xm, *Es, gm), te.layout[0]))
                for c, out, (index, per_var) in jobs:
                    ac = abs(c)
                    weight += ac
                    loss += c * out[index]
                    for k, ((a, b), (d, e)) in enumerate(per_var):
                        a1 = out[a:b]
                        a2 = out[d:e]
                        if a1:
                            grad[k] += c * sum(a1, zero)
                            gterms[k] += ac * sum([abs(t) for t in a1], zero)
                        if a2:
                            hess[k] += c * sum(a2, zero)
                            hterms[k] += ac * sum([abs(t) for t in a2], zero)
                floor = weight if self.logits else zero
                gscale = [max(t, floor) for t in gterms]
                hscale = [max(t, floor) for t in hterms]
                return _Reference(loss, grad, gscale, hess, hscale)
        finally:
            _LOW_DPS = saved

    def evaluate(self, xs, pvals, gamma=0.0):
        """Exact loss/grad/hess at the float inputs ``xs`` (see module docstring)."""
        xs = [float(x) for x in xs]
        pvals = [mpmath.mpf(float(v)) for v in pvals]
        if self.logits:
            spread = (max(xs) - min(xs)) if len(xs) > 1 else abs(xs[0])
        else:
            tiny = min([abs(x) for x in xs if x != 0] or [1.0])
            spread = -math.log(tiny) if tiny < 1 else 0.0
        extra = int(spread / _LN10) + 1
        # Usually the rational forms need no more than a few guard digits; should two
        # precisions disagree (or give NaN, or fail), retry with enough digits to
        # resolve any cancellation among the inputs' exponentials, then keep doubling.
        schedule = [(_LOW_DPS, _LOW_DPS + 25), (_LOW_DPS, _LOW_DPS + 25 + extra)]
        schedule += [(_LOW_DPS * 2 ** k, (_LOW_DPS + 25 + extra) * 2 ** k)
                     for k in range(1, 4)]
        for low, high in schedule:
            try:
                r1 = self._evaluate_once(xs, pvals, gamma, low, high)
                r2 = self._evaluate_once(xs, pvals, gamma, low + 15,
                                         high + 25 + extra // 4)
            except (ZeroDivisionError, ValueError):
                continue
            if r1.agrees(r2):
                return r2
        raise RuntimeError(
            f"reference did not converge at {xs!r} params {pvals!r} gamma {gamma!r}")


@dataclass
class _Reference:
    loss: object
    grad: list
    gscale: list
    hess: list
    hscale: list

    def agrees(self, other, rel=mpmath.mpf("1e-30"), tiny=mpmath.mpf("1e-360")):
        def close(a, b, s):
            # finite inputs have finite exact values here: NaN/inf mean a precision
            # shortfall (e.g. 1 - P rounded to 0 in a removable singularity)
            if not (mpmath.isfinite(a) and mpmath.isfinite(b) and mpmath.isfinite(s)):
                return False
            return abs(a - b) <= rel * max(abs(a), abs(b), abs(s)) + tiny
        if not close(self.loss, other.loss, 0):
            return False
        for a, b, s in zip(self.grad, other.grad, other.gscale):
            if not close(a, b, s):
                return False
        for a, b, s in zip(self.hess, other.hess, other.hscale):
            if not close(a, b, s):
                return False
        return True


@functools.lru_cache(maxsize=None)
def binary_formula(family, logits, alpha_given=False):
    """Compiled binary formula; ``family`` is ``"ce"`` or ``"focal"``."""
    loss, vs, params, g = _binary_formula(family, logits, alpha_given)
    return _Formula(loss, vs, params, g, logits)


@functools.lru_cache(maxsize=None)
def categorical_formula(family, logits, C):
    """Compiled categorical formula over C classes; ``family`` ``"ce"``/``"focal"``."""
    loss, vs, params, g = _categorical_formula(family, logits, C)
    return _Formula(loss, vs, params, g, logits)


# ---------------------------------------------------------------------------
# combinations and point sets
# ---------------------------------------------------------------------------

_FUNCS = {
    "bce": "binary_cross_entropy",
    "ce": "cross_entropy",
    "bfocal": "binary_focal_loss",
    "focal": "focal_loss",
}

_BCE_OPTIONS = ("none", "pos_weight", "pos_weight_per_label", "sample_weight",
                "label_smoothing")
_CE_OPTIONS = ("none", "class_weight", "sample_weight", "label_smoothing")
_BFOCAL_OPTIONS = ("gamma=0", "gamma=0.5", "gamma=1", "gamma=2", "gamma=5",
                   "alpha", "sample_weight", "label_smoothing", "all")
_FOCAL_OPTIONS = ("gamma=0", "gamma=0.5", "gamma=1", "gamma=2", "gamma=5",
                  "alpha", "alpha_vector", "class_weight", "sample_weight",
                  "label_smoothing", "all")


@dataclass(frozen=True)
class Combo:
    """One combination: loss x input form x labels x option x dtype."""

    func: str            # "bce", "ce", "bfocal", "focal"
    logits: bool
    labels: str          # binary: "hard"/"soft"; categorical: "int"/"soft"
    option: str
    dtype: str
    n: int = 200         # points (binary elements, categorical rows)
    classes: tuple = (3, 5)

    @property
    def name(self):
        form = "logits" if self.logits else "probs"
        return f"{_FUNCS[self.func]}-{form}-{self.labels}-{self.option}-{self.dtype}"

    def __str__(self):
        return self.name


def _check_dtypes(dtypes):
    if isinstance(dtypes, str):
        raise TypeError("dtypes: expected a sequence of dtype names, got a string")
    for dt in dtypes:
        if dt not in _FLOAT_FORMATS:
            raise ValueError(f"dtypes: {dt!r} is not one of {sorted(_FLOAT_FORMATS)}")


def combinations(quick=False, dtypes=("float32", "float64")):
    """The combinations checked by :func:`verify` (and the tests)."""
    _check_dtypes(dtypes)
    out = []
    if quick:
        picks = [
            ("bce", True, "soft", "label_smoothing"),
            ("bce", False, "hard", "pos_weight_per_label"),
            ("ce", True, "int", "class_weight"),
            ("ce", False, "soft", "none"),
            ("bfocal", True, "soft", "all"),
            ("bfocal", False, "hard", "gamma=0.5"),
            ("focal", True, "soft", "all"),
            ("focal", False, "int", "alpha_vector"),
        ]
        for dt in dtypes:
            for func, logits, labels, opt in picks:
                out.append(Combo(func, logits, labels, opt, dt, n=40, classes=(3,)))
        return out
    for dt in dtypes:
        for func, opts, label_kinds in (
                ("bce", _BCE_OPTIONS, ("hard", "soft")),
                ("ce", _CE_OPTIONS + ("ignore_index",), ("int", "soft")),
                ("bfocal", _BFOCAL_OPTIONS, ("hard", "soft")),
                ("focal", _FOCAL_OPTIONS + ("ignore_index",), ("int", "soft"))):
            for logits in (False, True):
                for labels in label_kinds:
                    for opt in opts:
                        if opt == "ignore_index" and labels != "int":
                            continue
                        out.append(Combo(func, logits, labels, opt, dt))
    return out


def reduction_combinations(quick=False, dtypes=("float32", "float64")):
    """Combinations for the mean/sum check (fewer points)."""
    _check_dtypes(dtypes)
    out = []
    for dt in dtypes:
        for func, labels, opt in (("bce", "soft", "sample_weight"),
                                  ("ce", "int", "all_weights"),
                                  ("bfocal", "soft", "all"),
                                  ("focal", "int", "all")):
            for logits in ((True,) if quick else (False, True)):
                out.append(Combo(func, logits, labels, opt, dt,
                                 n=20 if quick else 60, classes=(3,)))
    return out


def _seed(name):
    return zlib.crc32(name.encode())


def _log_uniform(rng, lo, hi, size):
    return 10.0 ** rng.uniform(math.log10(lo), math.log10(hi), size)


def _binary_logits(rng, n, dt):
    npdt = _FLOAT_FORMATS[dt][0]
    special = [0.0, 1e-8, -1e-8, 1e-30, -1e-30, 1.0, -1.0, 17.0, -17.0, 36.7, -36.7,
               40.0, -40.0, 88.7, -88.7, 100.0, -100.0, 709.8, -709.8, 745.2, -745.2,
               1e3, -1e3, 1e4, -1e4]
    special = list(rng.permutation(special)[:n // 2])
    m = n - len(special)
    sign = rng.choice([-1.0, 1.0], m)
    mags = np.concatenate([
        _log_uniform(rng, 1e-10, 1e4, m // 2),
        rng.uniform(0, 40, m // 4),
        _log_uniform(rng, 40, 1e4, m - m // 2 - m // 4),
    ])
    z = np.concatenate([special, sign * mags])
    return z.astype(npdt)


def _binary_probs(rng, n, dt):
    npdt = _FLOAT_FORMATS[dt][0]
    fi = np.finfo(npdt)
    tiny, eps = float(fi.tiny), float(fi.eps)
    one = npdt(1)
    special = np.array([tiny, 2 * tiny, 1e-30, 1e-10, 1e-5, 0.25, 0.5, 0.75],
                       dtype=npdt)
    near_one = one - np.array([eps / 2, eps, 2 * eps, 1e-5, 1e-3], dtype=npdt)
    if n < 40:
        special, near_one = special[::3], near_one[::2]
    m = n - len(special) - len(near_one)
    low = _log_uniform(rng, tiny, 0.5, m // 3).astype(npdt)
    high = one - _log_uniform(rng, eps / 2, 0.5, m // 3).astype(npdt)
    mid = rng.uniform(0, 1, m - 2 * (m // 3)).astype(npdt)
    p = np.concatenate([special, near_one, low, high, mid]).astype(npdt)
    return np.clip(p, npdt(tiny), np.nextafter(one, npdt(0)))


def _binary_labels(rng, n, dt, kind):
    npdt = _FLOAT_FORMATS[dt][0]
    if kind == "hard":
        return rng.integers(0, 2, n).astype(npdt)
    eps = float(np.finfo(npdt).eps)
    special = [0.0, 1.0, 0.5, 1e-3, 1 - 1e-3, 1e-8, 1 - eps, 0.1, 0.9]
    y = np.concatenate([special, rng.uniform(0, 1, n - len(special))])
    rng.shuffle(y)
    return y.astype(npdt)


def _logit_rows(rng, n, C, dt):
    """Logit rows over all magnitudes; returns (x, argmax-ish label per row)."""
    npdt = _FLOAT_FORMATS[dt][0]
    X = np.empty((n, C))
    lab = rng.integers(0, C, n)
    Ms = [5.0, 20.0, 40.0, 100.0, 1e3, 1e4]
    for i in range(n):
        kind = i % 10
        y = lab[i]
        if kind == 0:
            x = rng.standard_normal(C) * _log_uniform(rng, 1e-8, 1e4, 1)[0]
        elif kind == 1:
            x = rng.uniform(-40, 40, C)
        elif kind == 2:      # confident correct
            x = rng.standard_normal(C)
            x[y] = Ms[rng.integers(len(Ms))] * rng.uniform(1, 1.1)
        elif kind == 3:      # confident wrong
            x = rng.standard_normal(C)
            M = Ms[rng.integers(len(Ms))]
            if rng.integers(2):
                x[y] = -M
            else:
                x[(y + 1) % C] = M
        elif kind == 4:      # large common offset
            x = (rng.choice([-1e4, -1e3, -100.0, 100.0, 1e3, 1e4])
                 + rng.standard_normal(C) * rng.choice([1e-3, 1.0, 10.0]))
        elif kind == 5:      # ties
            x = np.full(C, rng.choice([0.0, 3.5, -1e4, 1e4, 40.0]))
            if rng.integers(2):
                x[(y + 1) % C] -= rng.choice([1.0, 50.0])
        elif kind == 6:      # tiny
            x = rng.standard_normal(C) * rng.choice([1e-8, 1e-30, 1e-3])
        elif kind == 7:      # extreme mix
            x = rng.choice([-1e4, -1e3, -40.0, 0.0, 40.0, 1e3, 1e4], C)
        elif kind == 8:
            x = rng.uniform(-1, 1, C) * _log_uniform(rng, 1, 100, 1)[0]
        else:
            x = rng.standard_normal(C) * _log_uniform(rng, 1, 1e4, 1)[0]
        X[i] = x
    return X.astype(npdt), lab


def _prob_rows(rng, n, C, dt, lab):
    npdt = _FLOAT_FORMATS[dt][0]
    fi = np.finfo(npdt)
    tiny, eps = float(fi.tiny), float(fi.eps)
    P = np.empty((n, C))
    for i in range(n):
        kind = i % 5
        y = lab[i]
        if kind == 0:
            r = rng.dirichlet(np.ones(C))
        elif kind == 1:      # confident: label near 1, others tiny
            r = _log_uniform(rng, tiny, 0.1, C)
            r[y] = 1 - _log_uniform(rng, eps / 2, 0.5, 1)[0]
        elif kind == 2:
            r = _log_uniform(rng, tiny, 1.0, C)
        elif kind == 3:      # confident wrong
            r = rng.dirichlet(np.ones(C))
            r[y] = _log_uniform(rng, tiny, 1e-3, 1)[0]
        else:
            r = rng.uniform(0, 1, C)
            r[rng.integers(C)] = rng.choice([tiny, 1 - eps / 2, 1 - eps, 0.5])
        P[i] = r
    P = P.astype(npdt)
    return np.clip(P, npdt(tiny), np.nextafter(npdt(1), npdt(0)))


def _soft_rows(rng, n, C, dt, lab):
    npdt = _FLOAT_FORMATS[dt][0]
    Y = np.empty((n, C))
    for i in range(n):
        kind = i % 6
        if kind == 0:
            r = rng.dirichlet(np.ones(C))
        elif kind == 1:      # not summing to 1
            r = rng.uniform(0, 1, C)
        elif kind == 2:      # one-hot as float
            r = np.zeros(C)
            r[lab[i]] = 1.0
        elif kind == 3:      # mostly on the label
            r = rng.dirichlet(np.ones(C)) * 0.1
            r[lab[i]] = 0.9
        elif kind == 4:      # some exact zeros
            r = rng.dirichlet(np.ones(C)) * (rng.uniform(0, 1, C) < 0.5)
        else:
            r = np.zeros(C) if i % 12 == 5 else rng.uniform(0, 1, C) ** 4
        Y[i] = r
    return np.clip(Y.astype(npdt), 0, 1)


_GAMMAS = {"gamma=0": 0.0, "gamma=0.5": 0.5, "gamma=1": 1.0, "gamma=2": 2.0,
           "gamma=5": 5.0}


def _options(combo, rng, shape, C=None):
    """Keyword options for the API and the numeric parameter values."""
    npdt = _FLOAT_FORMATS[combo.dtype][0]
    opt = combo.option
    kw = {}
    gamma = _GAMMAS.get(opt, 2.0)
    if combo.func in ("bfocal", "focal"):
        if opt == "all":
            gamma = 1.5
        kw["gamma"] = gamma
    if opt in ("pos_weight",):
        kw["pos_weight"] = 2.75
    if opt == "pos_weight_per_label":
        kw["pos_weight"] = np.array([0.5, 1.0, 3.0, 20.0], dtype=npdt)
    if opt in ("sample_weight", "all", "all_weights"):
        sw = rng.uniform(0, 3, shape)
        sw[rng.uniform(0, 1, shape) < 0.05] = 0.0
        kw["sample_weight"] = sw.astype(npdt)
    if opt in ("label_smoothing", "all"):
        kw["label_smoothing"] = float(npdt(0.1))
    if opt in ("alpha", "all"):
        kw["alpha"] = 0.25 if combo.func == "bfocal" else float(npdt(0.75))
    if opt == "alpha_vector":
        kw["alpha"] = rng.uniform(0, 1, C).astype(npdt)
    if opt in ("class_weight", "all_weights") or (opt == "all" and combo.func == "focal"):
        kw["class_weight"] = rng.uniform(0.1, 5, C).astype(npdt)
    if opt == "ignore_index":
        kw["ignore_index"] = -100
    return kw, gamma


@dataclass
class _Case:
    """One API call's inputs and the reference at each point."""
    C: int
    y_true: np.ndarray
    y_pred: np.ndarray
    kwargs: dict
    gamma: float
    refs: list = field(default_factory=list)     # per point: _Reference or None (ignored)
    weights: list = field(default_factory=list)  # per point: w_i for the mean


def _binary_case(combo, rng, n):
    dt = combo.dtype
    npdt = _FLOAT_FORMATS[dt][0]
    L = 4
    n = -(-n // L) * L
    z = _binary_logits(rng, n, dt) if combo.logits else _binary_probs(rng, n, dt)
    z = rng.permutation(z)
    y = _binary_labels(rng, n, dt, combo.labels)
    kw, gamma = _options(combo, rng, (n // L, L))
    smoothing = kw.get("label_smoothing", 0.0)
    if (not combo.logits and combo.func == "bce" and combo.labels == "hard"
            and smoothing == 0.0):
        # exact end points where the singular side has zero label weight
        k = n // 20
        z[:k] = y[:k]
    y_pred = z.reshape(n // L, L).astype(npdt)
    y_true = y.reshape(n // L, L).astype(npdt)
    case = _Case(2, y_true, y_pred, kw, gamma)
    formula = binary_formula("ce" if combo.func == "bce" else "focal", combo.logits,
                             combo.func == "bfocal" and "alpha" in kw)
    pw = kw.get("pos_weight", 1.0)
    pw = np.broadcast_to(np.asarray(pw, dtype=np.float64), y_pred.shape)
    sw = np.broadcast_to(np.asarray(kw.get("sample_weight", 1.0), dtype=np.float64),
                         y_pred.shape)
    a = kw.get("alpha", 0.0)
    for idx in np.ndindex(y_pred.shape):
        vals = {"y": y_true[idx], "eps": smoothing, "pw": pw[idx], "sw": sw[idx], "a": a}
        pv = [vals[s.name] for s in formula.params]
        case.refs.append(formula.evaluate([y_pred[idx]], pv, gamma))
        case.weights.append(float(sw[idx]))
    return case, formula


def _categorical_case(combo, rng, n, C):
    dt = combo.dtype
    npdt = _FLOAT_FORMATS[dt][0]
    if combo.logits:
        x, lab = _logit_rows(rng, n, C, dt)
    else:
        lab = rng.integers(0, C, n)
        x = _prob_rows(rng, n, C, dt, lab)
    kw, gamma = _options(combo, rng, (n,), C)
    smoothing = kw.get("label_smoothing", 0.0)
    if combo.labels == "int":
        y_true = lab.astype(np.int64)
        Y = np.zeros((n, C))
        Y[np.arange(n), lab] = 1.0
        if combo.option == "ignore_index":
            ign = rng.uniform(0, 1, n) < 0.15
            y_true[ign] = -100
    else:
        Y = _soft_rows(rng, n, C, dt, lab).astype(np.float64)
        y_true = Y.astype(npdt)
    if not combo.logits and smoothing == 0.0:
        # probabilities exactly 0 where the label weight is 0 (and, for CE, exactly 1)
        for i in range(0, n, 7):
            zero = Y[i] == 0
            if combo.func == "ce" and combo.labels == "int" and i % 14 == 0:
                x[i] = 0
                x[i, lab[i]] = 1
            else:
                x[i, zero & (rng.uniform(0, 1, C) < 0.5)] = 0
    case = _Case(C, y_true, x.astype(npdt), kw, gamma)
    formula = categorical_formula("ce" if combo.func == "ce" else "focal",
                                  combo.logits, C)
    cw = np.asarray(kw.get("class_weight", np.ones(C)), dtype=np.float64)
    alpha = kw.get("alpha", None)
    al = np.ones(C) if alpha is None else np.broadcast_to(
        np.asarray(alpha, dtype=np.float64), (C,))
    sw = np.broadcast_to(np.asarray(kw.get("sample_weight", 1.0), dtype=np.float64),
                         (n,))
    for i in range(n):
        if combo.labels == "int" and y_true[i] == -100:
            case.refs.append(None)
            case.weights.append(0.0)
            continue
        vals = {"eps": smoothing, "sw": sw[i]}
        for j in range(C):
            vals[f"Y{j}"] = Y[i, j]
            vals[f"cw{j}"] = cw[j]
            vals[f"a{j}"] = al[j]
        pv = [vals[s.name] for s in formula.params]
        case.refs.append(formula.evaluate(list(case.y_pred[i]), pv, gamma))
        case.weights.append(float(sw[i] * (cw[lab[i]] if combo.labels == "int" else 1.0)))
    return case, formula


def _build_cases(combo):
    rng = np.random.default_rng(_seed(combo.name.rsplit("-", 1)[0] + combo.dtype))
    if combo.func in ("bce", "bfocal"):
        return [_binary_case(combo, rng, combo.n)[0]]
    per = -(-combo.n // len(combo.classes))
    return [_categorical_case(combo, rng, per, C)[0] for C in combo.classes]


# ---------------------------------------------------------------------------
# comparison with the kernels
# ---------------------------------------------------------------------------


@dataclass
class Worst:
    """The worst point of one quantity (loss, grad or hess)."""
    error: float = 0.0
    where: str = ""
    got: float = float("nan")
    exact: str = ""
    scale: str = ""


@dataclass
class CheckResult:
    """Outcome of one combination: worst errors and where they occur."""
    name: str
    points: int
    loss: Worst
    grad: Worst
    hess: Worst
    error: str = ""      # an exception from the API call, or a dtype/shape mismatch
    seconds: float = 0.0

    @property
    def passed(self):
        return (not self.error and self.loss.error <= ULP_BAR
                and self.grad.error <= ULP_BAR and self.hess.error <= ULP_BAR)

    def report(self):
        lines = [f"{self.name}: {'PASS' if self.passed else 'FAIL'} over {self.points} points"]
        if self.error:
            lines.append(f"  error: {self.error}")
        for label, w in (("loss", self.loss), ("grad", self.grad), ("hess", self.hess)):
            lines.append(f"  worst {label}: {w.error:.4g} ulp  got={w.got!r} exact={w.exact}"
                         f" scale={w.scale}  at {w.where}")
        return "\n".join(lines)


def _kw_summary(kwargs):
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, np.ndarray):
            v = v.tolist() if v.size <= 8 else f"<{v.dtype} array {v.shape}>"
        out[k] = v
    return out


def _describe(case, idx, combo):
    """Inputs of one point, for failure messages."""
    kw = _kw_summary({k: v for k, v in case.kwargs.items() if k != "sample_weight"})
    if "sample_weight" in case.kwargs:
        kw["sample_weight[i]"] = float(case.kwargs["sample_weight"][idx[:case.y_true.ndim]
                                       if combo.func in ("bce", "bfocal") else idx[0]])
    if combo.func in ("bce", "bfocal"):
        return (f"y_true={float(case.y_true[idx])!r} y_pred={float(case.y_pred[idx])!r}"
                f" index={idx} {kw}")
    i = idx[0]
    yt = case.y_true[i].tolist() if case.y_true.ndim > 1 else int(case.y_true[i])
    return (f"C={case.C} y_true={yt} y_pred={[float(v) for v in case.y_pred[i]]}"
            f" row={i} class={idx[1] if len(idx) > 1 else '-'} {kw}")


def _call(combo, case, reduction):
    import xentc
    fn = getattr(xentc, _FUNCS[combo.func])
    return fn(case.y_true, case.y_pred, from_logits=combo.logits, reduction=reduction,
              grad=True, hess=True, **case.kwargs)


def _check_types(res, case, dtype, reduction):
    npdt = _FLOAT_FORMATS[dtype][0]
    for name in ("grad", "hess"):
        arr = getattr(res, name)
        if arr is None or arr.dtype != npdt or arr.shape != case.y_pred.shape:
            return f"{name}: expected {dtype} array of shape {case.y_pred.shape}, got {arr!r:.80}"
    loss = np.asarray(res.loss)
    if loss.dtype != npdt:
        return f"loss: expected dtype {dtype}, got {loss.dtype}"
    want = (case.y_pred.shape if case.C == 2 else case.y_pred.shape[:-1]) \
        if reduction == "none" else ()
    if loss.shape != want:
        return f"loss: expected shape {want}, got {loss.shape}"
    return ""


def check(combo, cases=None):
    """Compare the kernels with the symbolic reference on one combination."""
    t0 = time.perf_counter()
    if cases is None:
        cases = _build_cases(combo)
    result = CheckResult(combo.name, 0, Worst(), Worst(), Worst())
    dt = combo.dtype
    for case in cases:
        try:
            res = _call(combo, case, "none")
        except Exception as exc:  # reported, not raised: the table shows it
            result.error = f"{type(exc).__name__}: {exc}"
            break
        err = _check_types(res, case, dt, "none")
        if err:
            result.error = err
            break
        binary = case.C == 2
        for n_pt, (ref, pidx) in enumerate(zip(case.refs, _point_indices(case))):
            result.points += 1
            if ref is None:   # ignored sample: exactly zero everywhere
                zero = mpmath.mpf(0)
                _update(result.loss, res.loss[pidx], zero, zero, dt, case, pidx, combo)
                for k in range(case.C):
                    _update(result.grad, res.grad[pidx + (k,)], zero, zero, dt, case,
                            pidx + (k,), combo)
                    _update(result.hess, res.hess[pidx + (k,)], zero, zero, dt, case,
                            pidx + (k,), combo)
                continue
            _update(result.loss, res.loss[pidx], ref.loss, abs(ref.loss), dt, case, pidx,
                    combo)
            if binary:
                _update(result.grad, res.grad[pidx], ref.grad[0], ref.gscale[0], dt, case,
                        pidx, combo)
                _update(result.hess, res.hess[pidx], ref.hess[0], ref.hscale[0], dt, case,
                        pidx, combo)
            else:
                for k in range(case.C):
                    _update(result.grad, res.grad[pidx + (k,)], ref.grad[k], ref.gscale[k],
                            dt, case, pidx + (k,), combo)
                    _update(result.hess, res.hess[pidx + (k,)], ref.hess[k], ref.hscale[k],
                            dt, case, pidx + (k,), combo)
    result.seconds = time.perf_counter() - t0
    return result


def _point_indices(case):
    if case.C == 2:
        return list(np.ndindex(case.y_pred.shape))
    return [(i,) for i in range(case.y_pred.shape[0])]


def _update(worst, got, exact, scale, dt, case, idx, combo):
    err = ulp_error(got, exact, scale, dt)
    if err > worst.error or math.isnan(err) or worst.where == "":
        worst.error = err
        worst.where = _describe(case, idx, combo)
        worst.got = float(got)
        worst.exact = mpmath.nstr(exact, 20)
        worst.scale = mpmath.nstr(scale, 6)


def check_reduction(combo, cases=None):
    """Check ``reduction="mean"`` and ``"sum"`` against the weighted reference."""
    t0 = time.perf_counter()
    if cases is None:
        cases = _build_cases(combo)
    result = CheckResult(combo.name.replace(f"-{combo.dtype}", f"-mean/sum-{combo.dtype}"),
                         0, Worst(), Worst(), Worst())
    dt = combo.dtype
    for case in cases:
        idxs = _point_indices(case)
        with mpmath.workdps(80):
            total = mpmath.fsum(r.loss for r in case.refs if r is not None)
            W = mpmath.fsum(mpmath.mpf(w) for w in case.weights)
        for reduction in ("sum", "mean"):
            try:
                res = _call(combo, case, reduction)
            except Exception as exc:
                result.error = f"{reduction}: {type(exc).__name__}: {exc}"
                return result
            err = _check_types(res, case, dt, reduction)
            if err:
                result.error = f"{reduction}: {err}"
                return result
            with mpmath.workdps(80):
                factor = mpmath.mpf(1) if reduction == "sum" else (
                    1 / W if W != 0 else mpmath.mpf(0))
                exact_loss = total * factor
            if reduction == "sum":
                result.points += len(idxs)
            err = ulp_error(res.loss, exact_loss, abs(exact_loss), dt)
            if err > result.loss.error or result.loss.where == "":
                result.loss = Worst(err, f"reduction={reduction} sum w={mpmath.nstr(W, 10)}"
                                    f" C={case.C} {_kw_summary(case.kwargs)}",
                                    float(res.loss), mpmath.nstr(exact_loss, 20),
                                    mpmath.nstr(abs(exact_loss), 6))
            for ref, pidx in zip(case.refs, idxs):
                ks = [()] if case.C == 2 else [(k,) for k in range(case.C)]
                for kk, k in enumerate(ks):
                    if ref is None:
                        eg = sg = eh = sh = mpmath.mpf(0)
                    else:
                        with mpmath.workdps(80):
                            eg, sg = ref.grad[kk] * factor, ref.gscale[kk] * factor
                            eh, sh = ref.hess[kk] * factor, ref.hscale[kk] * factor
                    for worst, arr, e, s in ((result.grad, res.grad, eg, sg),
                                             (result.hess, res.hess, eh, sh)):
                        got = arr[pidx + k]
                        er = ulp_error(got, e, s, dt)
                        if er > worst.error or worst.where == "":
                            worst.error, worst.got = er, float(got)
                            worst.where = (f"reduction={reduction} "
                                           + _describe(case, pidx + k, combo))
                            worst.exact = mpmath.nstr(e, 20)
                            worst.scale = mpmath.nstr(s, 6)
    result.seconds = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------
# the verify entry point
# ---------------------------------------------------------------------------


class VerifyRow(tuple):
    """(combination, points, loss ulp, grad ulp, hess ulp, passed) plus ``.result``."""

    def __new__(cls, result):
        self = super().__new__(cls, (result.name, result.points, result.loss.error,
                                     result.grad.error, result.hess.error, result.passed))
        self.result = result
        return self

    name = property(lambda self: self[0])
    points = property(lambda self: self[1])
    loss_ulp = property(lambda self: self[2])
    grad_ulp = property(lambda self: self[3])
    hess_ulp = property(lambda self: self[4])
    passed = property(lambda self: self[5])


def _warm_up(combos):
    """Derive (and compile) every formula the combinations need, once."""
    for combo in combos:
        family = "ce" if combo.func in ("bce", "ce") else "focal"
        if combo.func in ("bce", "bfocal"):
            binary_formula(family, combo.logits, combo.func == "bfocal"
                           and combo.option in ("alpha", "all"))
        else:
            for C in combo.classes:
                categorical_formula(family, combo.logits, C)


def _cases_in_parallel(combos, processes):
    """Yield (combo, cases) in order, the references built by worker processes.

    Only the pure-Python reference runs in the workers (forked after the formulas
    are compiled); the kernels are called in this process.
    """
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:
        ctx = None
    if ctx is None or processes < 2 or len(combos) < 2:
        for combo in combos:
            yield combo, _build_cases(combo)
        return
    with ctx.Pool(processes) as pool:
        for combo, cases in zip(combos, pool.imap(_build_cases, combos)):
            yield combo, cases


def verify(quick=False, dtypes=("float32", "float64"), processes=None):
    """Check every combination; return one :class:`VerifyRow` per combination.

    Each row is the tuple ``(combination, points, worst loss error, worst gradient
    error, worst Hessian error, passed)`` with errors in ulps of the dtype (see
    :func:`ulp_error`); ``row.result`` holds the worst points.  ``quick=True``
    runs a small subset.  The mpmath references are built in ``processes`` worker
    processes (default: the CPU count, at most 4).
    """
    import os

    combos = combinations(quick, dtypes)
    reductions = reduction_combinations(quick, dtypes)
    _warm_up(combos + reductions)
    if processes is None:
        processes = min(os.cpu_count() or 1, 4)
    rows = []
    everything = combos + reductions
    for i, (combo, cases) in enumerate(_cases_in_parallel(everything, processes)):
        if i < len(combos):
            rows.append(VerifyRow(check(combo, cases)))
        else:
            rows.append(VerifyRow(check_reduction(combo, cases)))
    return rows


def format_table(rows):
    """A plain-text table of :func:`verify`'s rows, failures detailed below it."""
    rows = list(rows)
    w = max([len("combination")] + [len(r[0]) for r in rows])

    def fmt(e):
        return "inf" if math.isinf(e) else ("nan" if math.isnan(e) else f"{e:.2f}")

    lines = [f"{'combination':<{w}}  {'points':>6}  {'loss ulp':>9}  {'grad ulp':>9}"
             f"  {'hess ulp':>9}  result",
             "-" * (w + 50)]
    for r in rows:
        lines.append(f"{r[0]:<{w}}  {r[1]:>6}  {fmt(r[2]):>9}  {fmt(r[3]):>9}"
                     f"  {fmt(r[4]):>9}  {'pass' if r[5] else 'FAIL'}")
    failed = [r for r in rows if not r[5]]
    lines.append("-" * (w + 50))
    lines.append(f"{len(rows) - len(failed)} of {len(rows)} combinations within "
                 f"{ULP_BAR:g} ulp")
    for r in failed:
        res = getattr(r, "result", None)
        if res is not None:
            lines.append("")
            lines.append(res.report())
    return "\n".join(lines)
