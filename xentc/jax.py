"""JAX versions of xentc's four losses, differentiable through ``jax.custom_vjp``.

The losses run on the CPU kernels through ``jax.pure_callback``, so they work under ``jax.jit``,
``jax.grad`` and ``jax.vmap`` (vmap calls the kernel once per batch element). The forward pass
of a gradient computation asks the kernel for loss and gradient together and keeps the
gradient; the backward pass multiplies it by the incoming cotangent.

Differentiation is with respect to ``y_pred`` only: labels and weights are treated as
constants (their cotangents are zero). Options that change the computation (``from_logits``,
``reduction``, ``gamma``, a scalar binary ``alpha``, ``label_smoothing``, ``axis``,
``ignore_index``, ``n_threads``) must be Python values, not traced arrays; weights
(``sample_weight``, ``pos_weight``, ``class_weight``, the categorical ``alpha``) may be arrays.
float32 and float64 are computed natively (float64 needs ``jax_enable_x64``); float16 and
bfloat16 reach the kernels as they are (computed in float32 a chunk at a time, the gradient
returned in the input's dtype, the loss in float32); other dtypes are cast to float32 first.
"""
from __future__ import annotations

import functools
from typing import Any, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from xentc import _api

__all__ = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]

# options of each function that may be arrays (passed to the kernel as operands)
_ARRAY_OPTIONS = {
    "binary_cross_entropy": ("sample_weight", "pos_weight"),
    "binary_focal_loss": ("sample_weight",),
    "cross_entropy": ("sample_weight", "class_weight"),
    "focal_loss": ("sample_weight", "class_weight", "alpha"),
}
_CATEGORICAL = {"cross_entropy", "focal_loss"}


@functools.lru_cache(maxsize=256)
def _loss_function(name: str, static: Tuple[Tuple[str, Any], ...], array_names: Tuple[str, ...]):
    """The custom_vjp function for one loss and one set of static options (cached, so jit
    sees the same function each time)."""
    func = getattr(_api, name)
    options = dict(static)
    reduction = options.get("reduction", "mean")
    axis = options.get("axis", -1)
    categorical = name in _CATEGORICAL

    def host(want_grad, y_pred, y_true, arrays):
        kw = dict(options)
        kw.update({k: None if a is None else np.asarray(a) for k, a in zip(array_names, arrays)})
        r = func(np.asarray(y_true), np.asarray(y_pred), grad=want_grad, **kw)
        return (np.asarray(r.loss), r.grad) if want_grad else np.asarray(r)

    def loss_shape(y_pred):
        if reduction != "none":
            return ()
        if not categorical:
            return y_pred.shape
        ax = axis % y_pred.ndim
        return y_pred.shape[:ax] + y_pred.shape[ax + 1:]

    def shapes(y_pred, want_grad):
        # the loss of 16-bit input is float32, as xentc returns it
        loss_dtype = jnp.float32 if jnp.dtype(y_pred.dtype).itemsize == 2 else y_pred.dtype
        loss = jax.ShapeDtypeStruct(loss_shape(y_pred), loss_dtype)
        return (loss, jax.ShapeDtypeStruct(y_pred.shape, y_pred.dtype)) if want_grad else loss

    def call(want_grad, y_pred, y_true, arrays):
        return jax.pure_callback(functools.partial(host, want_grad), shapes(y_pred, want_grad),
                                 y_pred, y_true, arrays, vmap_method="sequential")

    @jax.custom_vjp
    def loss_fn(y_pred, y_true, arrays):
        return call(False, y_pred, y_true, arrays)

    def fwd(y_pred, y_true, arrays):
        loss, grad = call(True, y_pred, y_true, arrays)
        return loss, grad

    def bwd(grad, g):
        if categorical and reduction == "none":  # per-sample cotangents: broadcast over each row
            g = jnp.expand_dims(g, axis % grad.ndim)
        return (g * grad).astype(grad.dtype), None, None

    loss_fn.defvjp(fwd, bwd)
    return loss_fn


def _check_while_tracing(name: str, y_true, y_pred, static, array_names, arrays) -> None:
    """The call's own checks of shapes, dtypes and options, run while tracing on stand-ins (zeros
    of the same shapes and dtypes, broadcast from one element: valid values), so that such errors
    are ValueError / TypeError at the call instead of an error from inside the callback. The data
    themselves are checked by the kernel there. Once per signature (eager calls repeat them)."""
    spec = lambda a: None if a is None else (tuple(a.shape), np.dtype(a.dtype))  # noqa: E731
    _check_signature(name, spec(y_true), spec(y_pred), static, array_names, tuple(spec(a) for a in arrays))


@functools.lru_cache(maxsize=1024)
def _check_signature(name, y_true, y_pred, static, array_names, arrays) -> None:
    def zeros(spec):
        return None if spec is None else np.broadcast_to(np.zeros((), dtype=spec[1]), spec[0])

    kw = dict(static)
    kw.update({k: zeros(a) for k, a in zip(array_names, arrays)})
    token = _api._DENOM_ONLY.set(True)
    try:
        getattr(_api, name)(zeros(y_true), zeros(y_pred), **kw)
    finally:
        _api._DENOM_ONLY.reset(token)


def _apply(name: str, y_true, y_pred, options: dict):
    for flag in ("grad", "hess"):
        if flag in options:
            raise TypeError(f"{flag}: not an option of xentc.jax (use jax.grad)")
    array_names = _ARRAY_OPTIONS[name]
    arrays = tuple(None if options.get(k) is None else jnp.asarray(options[k]) for k in array_names)
    static = []
    for k, v in sorted(options.items()):
        if k in array_names:
            continue
        if isinstance(v, (jax.Array, np.ndarray)):
            try:
                v = v.item()  # a concrete 0-d array; a traced or larger one cannot select code
            except Exception:
                raise TypeError(f"{k}: must be a Python value (it selects the computation), "
                                f"got an array of shape {v.shape}") from None
        static.append((k, v))
    y_pred = jnp.asarray(y_pred)
    native = (jnp.float32, jnp.float64, jnp.float16, jnp.bfloat16)   # what the kernels take as it is
    compute = y_pred if y_pred.dtype in native else y_pred.astype(jnp.float32)
    y_true = jnp.asarray(y_true)
    _check_while_tracing(name, y_true, compute, tuple(static), array_names, arrays)
    loss = _loss_function(name, tuple(static), array_names)(compute, y_true, arrays)
    return loss


def binary_cross_entropy(y_true, y_pred, **options):
    """:func:`xentc.binary_cross_entropy` for JAX arrays, differentiable in ``y_pred``.

    Parameters
    ----------
    y_true : array_like
        Labels in [0, 1].
    y_pred : array_like
        Probabilities, or logits with ``from_logits=True``.
    **options
        The keyword arguments of :func:`xentc.binary_cross_entropy` other than ``grad`` and
        ``hess``.

    Returns
    -------
    jax.Array
        0-d for ``"mean"``/``"sum"``, per element for ``"none"``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, xentc.jax
    >>> y = jnp.array([1.0, 0.0])
    >>> f = lambda z: xentc.jax.binary_cross_entropy(y, z, from_logits=True, reduction="sum")
    >>> jax.grad(f)(jnp.array([2.0, -1.0])).round(4)
    Array([-0.1192,  0.2689], dtype=float32)
    """
    return _apply("binary_cross_entropy", y_true, y_pred, options)


def binary_focal_loss(y_true, y_pred, **options):
    """:func:`xentc.binary_focal_loss` for JAX arrays, differentiable in ``y_pred``.

    ``options`` are the keyword arguments of :func:`xentc.binary_focal_loss` other than
    ``grad`` and ``hess`` (``gamma`` and ``alpha`` as Python numbers).
    """
    return _apply("binary_focal_loss", y_true, y_pred, options)


def cross_entropy(y_true, y_pred, **options):
    """:func:`xentc.cross_entropy` for JAX arrays, differentiable in ``y_pred``.

    ``options`` are the keyword arguments of :func:`xentc.cross_entropy` other than ``grad``
    and ``hess``. With ``reduction="none"`` the result has the shape of ``y_pred`` without the
    class axis.
    """
    return _apply("cross_entropy", y_true, y_pred, options)


def focal_loss(y_true, y_pred, **options):
    """:func:`xentc.focal_loss` for JAX arrays, differentiable in ``y_pred``.

    ``options`` are the keyword arguments of :func:`xentc.focal_loss` other than ``grad`` and
    ``hess``.
    """
    return _apply("focal_loss", y_true, y_pred, options)
