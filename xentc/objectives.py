"""Custom objectives for LightGBM and XGBoost built on xentc's losses.

Each objective object holds the loss options and offers

* ``obj.lightgbm`` -- the callable LightGBM wants as ``params["objective"]``
  (``fobj(preds, train_data) -> (grad, hess)``);
* ``obj.xgboost`` -- the callable XGBoost wants as ``xgboost.train(..., obj=...)``
  (``obj(predt, dtrain) -> (grad, hess)``);
* ``obj.grad_hess(y_true, raw_score, sample_weight)`` -- the per-sample gradient and Hessian diagonal
  with respect to the raw scores, for any other Newton booster;
* ``obj.init_score(y_true, sample_weight)`` -- the best constant raw score, to start boosting from
  (``init_score`` of a LightGBM Dataset, ``base_margin`` of an XGBoost DMatrix).

Raw scores are logits: gradient boosting adds trees in logit space. The derivatives are those of
each sample's own (weighted) loss, ``reduction="none"``, which is what both libraries sum inside
a leaf. Neither library is imported here: the callables only read the arrays handed to them.
"""
from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple

import numpy as np

from xentc._api import binary_cross_entropy, binary_focal_loss, cross_entropy, focal_loss

__all__ = ["BinaryCrossEntropy", "BinaryFocal", "Softmax", "MulticlassFocal"]


def _positive_real(name: str, value: Any, *, allow_zero: bool) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not (np.isfinite(v) and (v >= 0 if allow_zero else v > 0)):
        raise ValueError(f"{name}: expected a finite value {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def _weight_or_none(w) -> Optional[np.ndarray]:
    """Both libraries report 'no weights' differently (LightGBM None, XGBoost an empty array)."""
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    return None if w.size == 0 else w


class _Objective:
    """Shared machinery; subclasses define _loss (the xentc call) and the label handling."""

    multiclass = False

    def __init__(self, *, min_hessian: float, hessian_scale: float = 1.0):
        self.min_hessian = _positive_real("min_hessian", min_hessian, allow_zero=True)
        self.hessian_scale = _positive_real("hessian_scale", hessian_scale, allow_zero=False)

    # -- what subclasses provide -------------------------------------------------------------
    def _labels(self, y) -> np.ndarray:
        raise NotImplementedError

    def _loss(self, y, raw, sample_weight, reduction, grad, hess):
        raise NotImplementedError

    def _start(self, y, sample_weight, num_class) -> np.ndarray:
        raise NotImplementedError

    # -- public --------------------------------------------------------------------------------
    def grad_hess(self, y_true, raw_score, sample_weight=None) -> Tuple[np.ndarray, np.ndarray]:
        """Per-sample gradient and Hessian diagonal of the loss with respect to the raw scores.

        Parameters
        ----------
        y_true : array_like
            Labels: 0/1 (or soft labels in [0, 1]) for the binary objectives, class indices
            ``0 .. K-1`` for the multiclass ones.
        raw_score : array_like
            Raw scores (logits): shape ``(n,)`` for the binary objectives, ``(n, K)`` for the
            multiclass ones.
        sample_weight : array_like, optional
            Per-sample weights.

        Returns
        -------
        grad, hess : ndarray
            float64 arrays of the shape of ``raw_score``. ``hess`` is the exact Hessian diagonal
            times ``hessian_scale``, raised to at least ``min_hessian``.
        """
        raw = np.asarray(raw_score, dtype=np.float64)
        if self.multiclass and raw.ndim != 2:
            raise ValueError(f"raw_score: expected shape (n, K) for a multiclass objective, got {raw.shape}")
        y = self._labels(y_true)
        r = self._loss(y, raw, _weight_or_none(sample_weight), "none", True, True)
        hess = r.hess
        if self.hessian_scale != 1.0:
            hess *= self.hessian_scale
        if self.min_hessian > 0:
            np.maximum(hess, self.min_hessian, out=hess)
        return r.grad, hess

    def lightgbm(self, preds, train_data) -> Tuple[np.ndarray, np.ndarray]:
        """LightGBM custom objective: ``lightgbm.train({"objective": obj.lightgbm, ...}, ds)``.

        ``preds`` are the raw scores, ``(n,)`` or ``(n, K)`` for multiclass (LightGBM >= 4);
        returns float32 gradient and Hessian of the same shape (LightGBM trains on float32
        gradients). Predictions of a model trained this way are raw scores, and exclude any
        ``init_score`` of the Dataset: add it back.
        """
        grad, hess = self.grad_hess(train_data.get_label(), preds, train_data.get_weight())
        return grad.astype(np.float32), hess.astype(np.float32)

    def xgboost(self, predt, dtrain) -> Tuple[np.ndarray, np.ndarray]:
        """XGBoost custom objective: ``xgboost.train(params, dtrain, obj=obj.xgboost)``.

        ``predt`` are the raw margins, ``(n,)`` or ``(n, K)`` for multiclass (set
        ``num_class`` in params); returns float32 gradient and Hessian of the same shape.
        Predict with ``output_margin=True`` to get raw scores back.
        """
        grad, hess = self.grad_hess(dtrain.get_label(), predt, dtrain.get_weight())
        return grad.astype(np.float32), hess.astype(np.float32)

    def init_score(self, y_true, sample_weight=None, *, num_class: Optional[int] = None, max_iter: int = 100):
        """The constant raw score that minimises the (weighted) total loss.

        Custom objectives start boosting from a raw score of 0; starting from this constant
        instead saves the first trees the work of learning the class balance. Give it to
        LightGBM as ``Dataset(..., init_score=np.tile(c, (n, 1)))`` (1-D ``np.full(n, c)`` for
        binary) and to XGBoost as ``DMatrix(..., base_margin=...)`` of the same shape.

        Cross entropy has a closed form (the weighted log-odds, or log class frequencies);
        focal loss has none, so Newton steps with backtracking on xentc's own sums refine the
        cross-entropy value.

        Parameters
        ----------
        y_true : array_like
            Labels, as for :meth:`grad_hess`.
        sample_weight : array_like, optional
        num_class : int, optional
            K for the multiclass objectives (default: the largest label + 1).
        max_iter : int, default 100
            Newton steps at most (focal objectives).

        Returns
        -------
        float (binary objectives) or ndarray of shape (K,) (multiclass; defined up to a
        common shift, returned with mean 0)
        """
        y = self._labels(y_true)
        if not len(y):
            raise ValueError("y_true: no labels, so there is no best constant score")
        w = _weight_or_none(sample_weight)
        c = self._start(y, w, num_class)
        if not np.all(np.isfinite(c)):
            raise ValueError("y_true: a class (or side) has no weight, so the best constant score is infinite")
        n = len(y)

        def parts(c):
            raw = np.broadcast_to(c, (n,) + c.shape)
            r = self._loss(y, raw, w, "sum", True, True)
            return float(r.loss), r.grad.sum(axis=0), r.hess.sum(axis=0)

        total = n if w is None else float(np.sum(w))
        f, g, h = parts(c)
        for _ in range(max_iter):
            if np.max(np.abs(g)) <= 1e-12 * max(total, 1e-300):
                break
            step = np.where(h > 0, g / np.where(h > 0, h, 1.0), g / max(total, 1e-300))
            t = 1.0
            while t > 1e-10:
                f_new, g_new, h_new = parts(c - t * step)
                if f_new <= f:
                    break
                t *= 0.5
            else:
                break
            c, f, g, h = c - t * step, f_new, g_new, h_new
        if self.multiclass:
            return c - c.mean()
        return float(c[()])


class _BinaryMixin:
    def _labels(self, y) -> np.ndarray:
        return np.asarray(y, dtype=np.float64).reshape(-1)

    def _start(self, y, w, num_class) -> np.ndarray:
        w = np.ones_like(y) if w is None else w
        pos = self._pos_weight() * np.sum(w * y)
        neg = np.sum(w * (1 - y))
        with np.errstate(divide="ignore"):
            return np.array(np.log(pos) - np.log(neg))

    def _pos_weight(self) -> float:
        return 1.0


class _MulticlassMixin:
    multiclass = True

    def _labels(self, y) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype.kind == "f":
            if not np.all(y == np.round(y)):
                raise ValueError("y_true: multiclass labels must be whole numbers (class indices)")
        return y.astype(np.int64).reshape(-1)

    def _start(self, y, w, num_class) -> np.ndarray:
        K = int(y.max()) + 1 if num_class is None else int(num_class)
        if y.size and (int(y.max()) >= K or int(y.min()) < 0):
            bad = int(y.max()) if int(y.max()) >= K else int(y.min())
            raise ValueError(f"y_true: label {bad} is outside [0, {K}) (num_class={K})")
        counts = np.bincount(y, weights=w, minlength=K).astype(np.float64)
        with np.errstate(divide="ignore"):
            c = np.log(counts)
        return c


class BinaryCrossEntropy(_BinaryMixin, _Objective):
    """Binary cross entropy on logits, optionally weighting positives by ``pos_weight``.

    Matches LightGBM's ``objective="binary"`` and XGBoost's ``"binary:logistic"`` (with
    ``scale_pos_weight=pos_weight``).

    Parameters
    ----------
    pos_weight : float, default 1.0
        Weight of the positive term of every sample.
    min_hessian : float, default 0.0
        Lower bound applied to the Hessian (the exact one is ``>= 0`` already).

    Examples
    --------
    >>> import numpy as np
    >>> from xentc.objectives import BinaryCrossEntropy
    >>> g, h = BinaryCrossEntropy(pos_weight=2.0).grad_hess(np.array([1.0, 0.0]), np.zeros(2))
    >>> g, h
    (array([-1. ,  0.5]), array([0.5 , 0.25]))
    """

    def __init__(self, pos_weight: float = 1.0, *, min_hessian: float = 0.0):
        super().__init__(min_hessian=min_hessian)
        self.pos_weight = _positive_real("pos_weight", pos_weight, allow_zero=True)

    def _pos_weight(self) -> float:
        return self.pos_weight

    def _loss(self, y, raw, sample_weight, reduction, grad, hess):
        return binary_cross_entropy(y, raw, from_logits=True, pos_weight=self.pos_weight,
                                    sample_weight=sample_weight, reduction=reduction, grad=grad, hess=hess)


class BinaryFocal(_BinaryMixin, _Objective):
    """Binary focal loss on logits.

    The exact Hessian of focal loss is negative for confidently wrong samples (it is not
    convex in the logit), and a Newton booster divides by leaf sums of Hessians; values below
    ``min_hessian`` are therefore raised to it.

    Parameters
    ----------
    gamma : float, default 2.0
    alpha : float, optional
        Weight of the positive side (the negative side gets ``1 - alpha``).
    min_hessian : float, default 1e-6
        Lower bound applied to the Hessian.
    """

    def __init__(self, gamma: float = 2.0, alpha: Optional[float] = None, *, min_hessian: float = 1e-6):
        super().__init__(min_hessian=min_hessian)
        self.gamma, self.alpha = gamma, alpha

    def _loss(self, y, raw, sample_weight, reduction, grad, hess):
        return binary_focal_loss(y, raw, gamma=self.gamma, alpha=self.alpha, from_logits=True,
                                 sample_weight=sample_weight, reduction=reduction, grad=grad, hess=hess)


class Softmax(_MulticlassMixin, _Objective):
    """Softmax (categorical) cross entropy on ``(n, K)`` logits, integer labels.

    The Hessian diagonal of softmax cross entropy is ``p (1 - p)``; a Newton step that uses
    only the diagonal overshoots because it ignores the coupling between classes, so the
    libraries scale it up in their built-in objectives: LightGBM ``"multiclass"`` by
    ``K / (K - 1)``, XGBoost ``"multi:softprob"`` by 2. ``hessian_scale`` does the same here;
    with those values the trees are those of the built-in objective.

    Parameters
    ----------
    hessian_scale : float, default 1.0
        Factor on the Hessian diagonal (1.0: exact).
    class_weight : array_like of length K, optional
    min_hessian : float, default 0.0

    Examples
    --------
    >>> import numpy as np
    >>> from xentc.objectives import Softmax
    >>> g, h = Softmax().grad_hess(np.array([2]), np.zeros((1, 4)))
    >>> g
    array([[ 0.25,  0.25, -0.75,  0.25]])
    >>> h
    array([[0.1875, 0.1875, 0.1875, 0.1875]])
    """

    def __init__(self, hessian_scale: float = 1.0, class_weight=None, *, min_hessian: float = 0.0):
        super().__init__(min_hessian=min_hessian, hessian_scale=hessian_scale)
        self.class_weight = class_weight

    def _loss(self, y, raw, sample_weight, reduction, grad, hess):
        return cross_entropy(y, raw, from_logits=True, class_weight=self.class_weight,
                             sample_weight=sample_weight, reduction=reduction, grad=grad, hess=hess)


class MulticlassFocal(_MulticlassMixin, _Objective):
    """Categorical focal loss on ``(n, K)`` logits, integer labels.

    Like :class:`BinaryFocal`, the exact Hessian diagonal can be negative; values below
    ``min_hessian`` (after ``hessian_scale``) are raised to it.

    Parameters
    ----------
    gamma : float, default 2.0
    alpha : float or array_like of length K, optional
    hessian_scale : float, default 1.0
        Factor on the Hessian diagonal, as in :class:`Softmax`.
    min_hessian : float, default 1e-6
    """

    def __init__(self, gamma: float = 2.0, alpha=None, hessian_scale: float = 1.0, *,
                 min_hessian: float = 1e-6):
        super().__init__(min_hessian=min_hessian, hessian_scale=hessian_scale)
        self.gamma, self.alpha = gamma, alpha

    def _loss(self, y, raw, sample_weight, reduction, grad, hess):
        return focal_loss(y, raw, gamma=self.gamma, alpha=self.alpha, from_logits=True,
                          sample_weight=sample_weight, reduction=reduction, grad=grad, hess=hess)
