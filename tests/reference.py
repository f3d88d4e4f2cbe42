"""A plain NumPy reference for the four xentc losses, used only by the tests.

Everything is computed in ``np.longdouble`` (80-bit extended precision on x86) from the
formulas of the design notes, section 1, and the decisions of ``docs/semantics.md``:

* binary CE      ``l = -s [pw y log p + (1-y) log(1-p)]``
* binary focal   ``l = -s [a y (1-p)^g log p + (1-a)(1-y) p^g log(1-p)]``
* categorical    ``l_i = -s_i sum_j cw_j a_j Y_ij (1-P_ij)^g log P_ij``  (CE: g = 0, a = 1)

The gradient and Hessian diagonal use closed forms of ``F(x) = (1-x)^g log x`` (from
probabilities) and ``G(u) = (1-e^u)^g u`` with ``u = log softmax(z)`` (from logits), which
``_self_check`` (and ``test_options.py::test_reference_*``) compares with central differences
evaluated by mpmath. The symbolic harness is the authority on derivative correctness; this
module is an independent reference for option handling (weights, smoothing, ignore_index,
axis, reductions).

The reference is meant for moderate inputs: finite logits and probabilities inside (0, 1).
The tests check non-finite inputs and limits against explicit expected values instead.

Each public function returns ``(loss, grad, hess)`` as longdouble values: ``loss`` a 0-d
array for ``"mean"``/``"sum"`` and an array of the per-sample shape for ``"none"``; ``grad`` and
``hess`` of the shape of ``y_pred``.
"""

from __future__ import annotations

import numpy as np

L = np.longdouble

__all__ = [
    "binary_cross_entropy",
    "binary_focal_loss",
    "cross_entropy",
    "focal_loss",
    "log_softmax",
    "log_sigmoid",
]


def _L(a):
    return np.asarray(a).astype(L)


# --------------------------------------------------------------------------------------
# elementary pieces
# --------------------------------------------------------------------------------------


def log_softmax(z, axis=-1):
    """Stable log-softmax in longdouble: z - max - log(sum exp(z - max))."""
    z = _L(z)
    m = np.max(z, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        return (z - m) - np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))


def log_sigmoid(z):
    """log(sigmoid(z)) = -softplus(-z), stable in longdouble."""
    z = _L(z)
    # softplus(t) = max(t, 0) + log1p(exp(-|t|))
    t = -z
    return -(np.maximum(t, 0) + np.log1p(np.exp(-np.abs(t))))


def _F(x, g):
    """F(x) = (1-x)^g log x and its first two derivatives (probability form)."""
    g = L(g)
    q = 1 - x
    lx = np.log(x)
    if g == 0:
        return lx, 1 / x, -1 / (x * x)
    F0 = q**g * lx
    F1 = -g * q ** (g - 1) * lx + q**g / x
    F2 = g * (g - 1) * q ** (g - 2) * lx - 2 * g * q ** (g - 1) / x - q**g / (x * x)
    return F0, F1, F2


def _G(u, g):
    """G(u) = (1-e^u)^g u and its first two derivatives (u = log p)."""
    g = L(g)
    if g == 0:
        return u, np.ones_like(u), np.zeros_like(u)
    P = np.exp(u)
    q = -np.expm1(u)
    G0 = q**g * u
    G1 = q**g - g * u * P * q ** (g - 1)
    G2 = -g * P * q ** (g - 2) * (2 * q + u * q - (g - 1) * u * P)
    return G0, G1, G2


def _times(c, t):
    """c * t with 0 * anything = 0 (the '0 log 0 = 0' rule)."""
    with np.errstate(invalid="ignore"):
        return np.where(c == 0, L(0), c * t)


def _rows_probs(c, P, g):
    """Per-row loss, grad, hess of -sum_j c_j F(P_j) with P independent variables."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        F0, F1, F2 = _F(P, g)
    loss = -np.sum(_times(c, F0), axis=-1)
    grad = -_times(c, F1)
    hess = -_times(c, F2)
    nan = np.isnan(P)
    if nan.any():
        loss = np.where(nan.any(axis=-1), L(np.nan), loss)
        grad = np.where(nan, L(np.nan), grad)
        hess = np.where(nan, L(np.nan), hess)
    return loss, grad, hess


def _rows_logits(c, z, g):
    """Per-row loss, grad, hess of -sum_j c_j G(u_j), u = log_softmax(z) (finite z)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = log_softmax(z)
        P = np.exp(u)
        G0, G1, G2 = _G(u, g)
        cG1 = _times(c, G1)
        cG2 = _times(c, G2)
        S1 = np.sum(cG1, axis=-1, keepdims=True)
        S2 = np.sum(cG2, axis=-1, keepdims=True)
        loss = -np.sum(_times(c, G0), axis=-1)
        # d l / d z_k = -c_k G'(u_k) + P_k sum_j c_j G'(u_j)
        grad = -cG1 + P * S1
        # d2 l / d z_k^2 = -sum_j c_j G''(u_j) (delta_jk - P_k)^2 + P_k (1 - P_k) sum_j c_j G'(u_j)
        hess = -(cG2 * (1 - 2 * P) + P * P * S2) + P * (1 - P) * S1
    nan = np.isnan(z).any(axis=-1)
    if nan.any():
        loss = np.where(nan, L(np.nan), loss)
        grad = np.where(nan[..., None], L(np.nan), grad)
        hess = np.where(nan[..., None], L(np.nan), hess)
    return loss, grad, hess


def _reduce(loss, grad, hess, w, reduction):
    """Apply the reduction; ``w`` holds the mean's per-sample weights (0 where ignored)."""
    if reduction == "none":
        return loss, grad, hess
    total = np.sum(loss, dtype=L)
    if reduction == "sum":
        return np.asarray(total, dtype=L), grad, hess
    if reduction == "mean":
        W = np.sum(w, dtype=L)
        if W == 0:
            return np.asarray(L(0)), np.zeros_like(grad), np.zeros_like(hess)
        return np.asarray(total / W, dtype=L), grad / W, hess / W
    raise ValueError(reduction)


# --------------------------------------------------------------------------------------
# binary losses
# --------------------------------------------------------------------------------------


def _binary(c1, c0, x, g, from_logits, w, reduction):
    if from_logits:
        z = np.stack([x, np.zeros_like(x)], axis=-1)
        c = np.stack([c1, c0], axis=-1)
        loss, grad, hess = _rows_logits(c, z, g)
        grad, hess = grad[..., 0], hess[..., 0]
    else:
        P = np.stack([x, 1 - x], axis=-1)
        c = np.stack([c1, c0], axis=-1)
        loss, grad2, hess2 = _rows_probs(c, P, g)
        # d/dx of F(1-x) = -F'(1-x);  d2/dx2 = F''(1-x)
        grad = grad2[..., 0] - grad2[..., 1]
        hess = hess2[..., 0] + hess2[..., 1]
    return _reduce(loss, grad, hess, w, reduction)


def _binary_common(y_true, y_pred, sample_weight, label_smoothing):
    x = _L(y_pred)
    y = np.broadcast_to(_L(y_true), x.shape)
    eps = L(label_smoothing)
    y = y * (1 - eps) + eps / 2
    if sample_weight is None:
        s = np.ones(x.shape, dtype=L)
    else:
        s = np.broadcast_to(_L(sample_weight), x.shape)
    return x, y, s


def binary_cross_entropy(y_true, y_pred, *, from_logits=False, pos_weight=None,
                         sample_weight=None, label_smoothing=0.0, reduction="mean"):
    x, y, s = _binary_common(y_true, y_pred, sample_weight, label_smoothing)
    pw = L(1) if pos_weight is None else _L(pos_weight)  # scalar or over the last axis
    c1 = s * pw * y
    c0 = s * (1 - y)
    return _binary(c1, c0, x, 0, from_logits, s, reduction)


def binary_focal_loss(y_true, y_pred, *, gamma=2.0, alpha=None, from_logits=False,
                      sample_weight=None, label_smoothing=0.0, reduction="mean"):
    x, y, s = _binary_common(y_true, y_pred, sample_weight, label_smoothing)
    if alpha is None:
        a1, a0 = L(1), L(1)
    else:
        a1 = L(alpha)
        a0 = 1 - a1
    c1 = s * a1 * y
    c0 = s * a0 * (1 - y)
    return _binary(c1, c0, x, gamma, from_logits, s, reduction)


# --------------------------------------------------------------------------------------
# categorical losses
# --------------------------------------------------------------------------------------


def _categorical(y_true, y_pred, *, gamma, alpha, from_logits, axis, class_weight,
                 sample_weight, ignore_index, label_smoothing, reduction):
    xp = _L(y_pred)
    x = np.moveaxis(xp, axis, -1)
    C = x.shape[-1]
    yt = np.asarray(y_true)
    integer = yt.ndim == x.ndim - 1
    cw = np.ones(C, dtype=L) if class_weight is None else _L(class_weight)
    if integer:
        lab = yt.astype(np.int64)
        if ignore_index is not None:
            ignored = lab == ignore_index
        else:
            ignored = np.zeros(lab.shape, dtype=bool)
        lab = np.where(ignored, 0, lab)
        Y = (np.arange(C) == lab[..., None]).astype(L)
        label_w = cw[lab]
    else:
        Y = np.moveaxis(_L(yt), axis, -1)
        ignored = np.zeros(x.shape[:-1], dtype=bool)
        label_w = np.ones(x.shape[:-1], dtype=L)
    eps = L(label_smoothing)
    Y = Y * (1 - eps) + eps / C
    a = L(1) if alpha is None else _L(alpha)
    if sample_weight is None:
        s = np.ones(x.shape[:-1], dtype=L)
    else:
        s = np.broadcast_to(_L(sample_weight), x.shape[:-1])
    s = np.where(ignored, L(0), s)
    c = s[..., None] * cw * a * Y
    w = s * label_w
    if from_logits:
        loss, grad, hess = _rows_logits(c, x, gamma)
    else:
        loss, grad, hess = _rows_probs(c, x, gamma)
    loss = np.where(ignored, L(0), loss)
    loss, grad, hess = _reduce(loss, grad, hess, w, reduction)
    return loss, np.moveaxis(grad, -1, axis), np.moveaxis(hess, -1, axis)


def cross_entropy(y_true, y_pred, *, from_logits=False, axis=-1, class_weight=None,
                  sample_weight=None, ignore_index=None, label_smoothing=0.0, reduction="mean"):
    return _categorical(y_true, y_pred, gamma=0, alpha=None, from_logits=from_logits, axis=axis,
                        class_weight=class_weight, sample_weight=sample_weight,
                        ignore_index=ignore_index, label_smoothing=label_smoothing,
                        reduction=reduction)


def focal_loss(y_true, y_pred, *, gamma=2.0, alpha=None, from_logits=False, axis=-1,
               class_weight=None, sample_weight=None, ignore_index=None, label_smoothing=0.0,
               reduction="mean"):
    return _categorical(y_true, y_pred, gamma=gamma, alpha=alpha, from_logits=from_logits,
                        axis=axis, class_weight=class_weight, sample_weight=sample_weight,
                        ignore_index=ignore_index, label_smoothing=label_smoothing,
                        reduction=reduction)


FUNCTIONS = {
    "binary_cross_entropy": binary_cross_entropy,
    "binary_focal_loss": binary_focal_loss,
    "cross_entropy": cross_entropy,
    "focal_loss": focal_loss,
}


# --------------------------------------------------------------------------------------
# an independent check of the reference itself (mpmath, no closed-form derivatives)
# --------------------------------------------------------------------------------------


def _mp_loss(kind, y, x, gamma, from_logits, dps=50):
    """Sum of per-sample losses in mpmath straight from the formulas (no options but labels).

    kind 'binary': y, x are 1-D lists; 'categorical': lists of rows (soft labels).
    """
    import mpmath as mp

    mp.mp.dps = dps
    g = mp.mpf(gamma)
    total = mp.mpf(0)
    if kind == "binary":
        for yi, xi in zip(y, x):
            yi, xi = mp.mpf(yi), mp.mpf(xi)
            p = 1 / (1 + mp.exp(-xi)) if from_logits else xi
            total -= yi * (1 - p) ** g * mp.log(p) + (1 - yi) * p**g * mp.log(1 - p)
    else:
        for yr, xr in zip(y, x):
            xr = [mp.mpf(v) for v in xr]
            if from_logits:
                lse = mp.log(mp.fsum(mp.exp(v) for v in xr))
                P = [mp.exp(v - lse) for v in xr]
            else:
                P = xr
            for yj, pj in zip(yr, P):
                total -= mp.mpf(yj) * (1 - pj) ** g * mp.log(pj)
    return total


def _mpf(v):
    """A longdouble (or float) as an exact mpmath number."""
    import mpmath as mp

    n, d = L(v).as_integer_ratio()
    return mp.mpf(n) / d


def _self_check(seed=0, gamma=2.0, dps=50):
    """Compare the reference's closed-form grad/hess with mpmath central differences.

    Returns the largest relative error seen (should be ~1e-17 in longdouble).
    """
    import mpmath as mp

    rng = np.random.default_rng(seed)
    worst = 0.0
    h = mp.mpf(10) ** -12

    def diffs(kind, y, x, from_logits, idx):
        mp.mp.dps = dps

        def f(t):
            if kind == "binary":
                xx = [mp.mpf(v) for v in x]
                xx[idx[0]] += t
            else:
                xx = [[mp.mpf(v) for v in row] for row in x]
                xx[idx[0]][idx[1]] += t
            return _mp_loss(kind, y, xx, gamma, from_logits, dps)

        f0, fp, fm = f(0), f(h), f(-h)
        return (fp - fm) / (2 * h), (fp - 2 * f0 + fm) / (h * h)

    for from_logits in (False, True):
        # binary
        n = 4
        y = rng.uniform(0, 1, n)
        x = rng.normal(0, 2, n) if from_logits else rng.uniform(0.05, 0.95, n)
        fn = binary_focal_loss
        _, gr, he = fn(y, x, gamma=gamma, from_logits=from_logits, reduction="sum")
        for i in range(n):
            d1, d2 = diffs("binary", list(y), list(x), from_logits, (i,))
            worst = max(worst, abs(float((_mpf(gr[i]) - d1) / d1)),
                        abs(float((_mpf(he[i]) - d2) / d2)))
        # categorical with soft labels
        n, C = 3, 4
        Y = rng.uniform(0, 1, (n, C))
        X = rng.normal(0, 2, (n, C)) if from_logits else rng.uniform(0.05, 0.95, (n, C))
        _, gr, he = focal_loss(Y, X, gamma=gamma, from_logits=from_logits, reduction="sum")
        for i in range(n):
            for j in range(C):
                d1, d2 = diffs("categorical", Y.tolist(), X.tolist(), from_logits, (i, j))
                worst = max(worst, abs(float((_mpf(gr[i, j]) - d1) / d1)),
                            abs(float((_mpf(he[i, j]) - d2) / d2)))
    return worst
