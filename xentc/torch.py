"""PyTorch autograd functions for xentc's four losses.

``xentc.torch.binary_cross_entropy``, ``cross_entropy``, ``binary_focal_loss`` and
``focal_loss`` take PyTorch tensors and return the loss as a tensor that autograd can
differentiate with respect to ``y_pred``. The forward pass runs xentc's fused kernel once
(loss and gradient together) and keeps the gradient; the backward pass multiplies it by the
incoming gradient. CPU tensors go to the CPU kernels and CUDA tensors to the CUDA kernels
(through CuPy), both handed over with DLPack, without copies.

Gradients flow to ``y_pred`` only: labels and weights are constants, and passing one that
requires grad is an error rather than a silently missing gradient. The backward pass is not
itself differentiable (no double backward).
"""
from __future__ import annotations

import functools
from typing import Any, Optional

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from xentc import _api

__all__ = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]

_CONSTANTS = ("y_true", "sample_weight", "pos_weight", "class_weight", "alpha")


def _check_constant(name: str, value: Any) -> None:
    if isinstance(value, torch.Tensor) and value.requires_grad:
        raise ValueError(f"{name}: xentc.torch differentiates with respect to y_pred only; "
                         f"pass {name} without requires_grad (for example {name}.detach())")


@functools.lru_cache(maxsize=None)
def _numpy_bfloat16() -> Optional[np.dtype]:
    """ml_dtypes' bfloat16 (the NumPy dtype xentc's CPU path takes), or None without ml_dtypes."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


@functools.lru_cache(maxsize=None)
def _cupy_bfloat16() -> Optional[np.dtype]:
    """ml_dtypes' bfloat16 where CuPy takes it (CuPy 14 with ml_dtypes installed), else None."""
    try:
        import cupy
        import ml_dtypes

        bf = np.dtype(ml_dtypes.bfloat16)
        cupy.empty(1, dtype=np.int16).view(bf).astype(np.float32)
        return bf
    except Exception:  # noqa: BLE001 - no ml_dtypes, or a CuPy without bfloat16
        return None


def _to_array(value: Any, device: torch.device) -> Any:
    """A tensor as a NumPy (CPU) or CuPy (CUDA) array sharing its memory; other values as they are.
    bfloat16 tensors become ml_dtypes bfloat16 arrays where ml_dtypes is installed (and, on CUDA,
    CuPy takes them), which xentc computes without a float32 copy of the whole; elsewhere
    bfloat16 is copied to float32 first."""
    if not isinstance(value, torch.Tensor):
        return value
    t = value.detach().resolve_conj().resolve_neg()
    if t.dtype == torch.bfloat16:
        bf = _cupy_bfloat16() if t.device.type == "cuda" else _numpy_bfloat16()
        if bf is not None:
            # through int16, which every DLPack exchange knows, then viewed as bfloat16
            if t.device.type == "cuda":
                import cupy

                return cupy.from_dlpack(t.view(torch.int16)).view(bf)
            if t.device.type == "cpu":
                return np.from_dlpack(t.view(torch.int16)).view(bf)
        t = t.float()
    if t.device.type == "cuda":
        import cupy

        return cupy.from_dlpack(t)
    if t.device.type != "cpu":
        raise TypeError(f"xentc.torch: tensors on {t.device} are not supported (CPU or CUDA only)")
    return np.from_dlpack(t)


def _to_tensor(a: Any, device: torch.device) -> torch.Tensor:
    """A NumPy/CuPy array or NumPy scalar as a tensor on device, sharing memory where it can."""
    if isinstance(a, np.generic):
        a = np.asarray(a)
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        a = a.copy()
    if getattr(a, "dtype", None) is not None and _api._is_bfloat16(a.dtype):   # a bfloat16 result
        return torch.from_dlpack(a.view(np.int16)).view(torch.bfloat16).to(device)
    return torch.from_dlpack(a).to(device)


def _cupy_stream(cupy, stream, index: int):
    """PyTorch's CUDA stream as a CuPy stream: through the CUDA stream protocol where both sides
    have it (CuPy 14 deprecates ExternalStream for it), else as a raw handle."""
    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None and hasattr(stream, "__cuda_stream__"):
        return from_external(stream)
    return cupy.cuda.ExternalStream(stream.cuda_stream, index)


class _LossFunction(torch.autograd.Function):
    """loss = func(y_true, y_pred, **options), differentiable in y_pred."""

    @staticmethod
    def forward(ctx, y_pred, func, y_true, options, class_axis):
        device = y_pred.device
        want_grad = bool(ctx.needs_input_grad[0])
        if device.type == "cuda":
            import cupy

            # CuPy works on PyTorch's current stream, so no synchronisation is needed either way
            stream = torch.cuda.current_stream(device)
            with cupy.cuda.Device(device.index), _cupy_stream(cupy, stream, device.index):
                loss, grad = _call(func, y_true, y_pred, options, want_grad, device)
        else:
            loss, grad = _call(func, y_true, y_pred, options, want_grad, device)
        ctx.class_axis = class_axis if options.get("reduction", "mean") == "none" else None
        ctx.pred_dtype = y_pred.dtype
        if grad is not None:
            ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        if ctx.class_axis is not None:  # per-sample losses: broadcast each over its row
            grad_output = grad_output.unsqueeze(ctx.class_axis)
        return (grad_output * grad).to(ctx.pred_dtype), None, None, None, None


def _call(func, y_true, y_pred, options, want_grad, device):
    args = {k: _to_array(v, device) for k, v in options.items()}
    r = func(_to_array(y_true, device), _to_array(y_pred, device), grad=want_grad, **args)
    if not want_grad:
        return _to_tensor(r, device), None
    grad = _to_tensor(r.grad, device)
    if y_pred.dtype == torch.bfloat16:
        grad = grad.to(torch.bfloat16)
    return _to_tensor(r.loss, device), grad


def _apply(func, y_true, y_pred, options, categorical: bool):
    if not isinstance(y_pred, torch.Tensor):
        raise TypeError(f"y_pred: expected a torch.Tensor, got {type(y_pred).__name__}")
    for name in ("grad", "hess"):
        if name in options:
            raise TypeError(f"{name}: not an option of xentc.torch (autograd computes the gradient)")
    for name in _CONSTANTS:
        _check_constant(name, y_true if name == "y_true" else options.get(name))
    class_axis = None
    if categorical:
        axis = options.get("axis", -1)
        class_axis = axis % y_pred.dim() if isinstance(axis, int) and y_pred.dim() else axis
    return _LossFunction.apply(y_pred, func, y_true, options, class_axis)


def binary_cross_entropy(y_true, y_pred, **options) -> torch.Tensor:
    """:func:`xentc.binary_cross_entropy` on tensors, differentiable in ``y_pred``.

    Parameters
    ----------
    y_true : torch.Tensor or array_like
        Labels in [0, 1], on the device of ``y_pred``.
    y_pred : torch.Tensor
        Probabilities, or logits with ``from_logits=True``; CPU or CUDA.
    **options
        The keyword arguments of :func:`xentc.binary_cross_entropy` other than ``grad`` and
        ``hess`` (``from_logits``, ``pos_weight``, ``sample_weight``, ``label_smoothing``,
        ``reduction``, ``n_threads``); weights may be tensors on the same device.

    Returns
    -------
    torch.Tensor
        The loss: 0-d for ``"mean"``/``"sum"``, per element for ``"none"``; float32 for
        float16/bfloat16 input, else the dtype of ``y_pred``.

    Examples
    --------
    >>> import torch, xentc.torch
    >>> z = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
    >>> loss = xentc.torch.binary_cross_entropy(torch.tensor([1.0, 0.0], dtype=torch.float64), z,
    ...                                         from_logits=True)
    >>> loss.backward()
    >>> z.grad
    tensor([-0.0596,  0.1345], dtype=torch.float64)
    """
    return _apply(_api.binary_cross_entropy, y_true, y_pred, options, categorical=False)


def binary_focal_loss(y_true, y_pred, **options) -> torch.Tensor:
    """:func:`xentc.binary_focal_loss` on tensors, differentiable in ``y_pred``.

    ``options`` are the keyword arguments of :func:`xentc.binary_focal_loss` other than
    ``grad`` and ``hess``; see :func:`binary_cross_entropy` for the rest.
    """
    return _apply(_api.binary_focal_loss, y_true, y_pred, options, categorical=False)


def cross_entropy(y_true, y_pred, **options) -> torch.Tensor:
    """:func:`xentc.cross_entropy` on tensors, differentiable in ``y_pred``.

    ``y_true`` holds int64 class indices (the shape of ``y_pred`` without ``axis``) or soft
    labels (the shape of ``y_pred``). ``options`` are the keyword arguments of
    :func:`xentc.cross_entropy` other than ``grad`` and ``hess``. With ``reduction="none"``
    the result has the shape of ``y_pred`` without the class axis.

    Examples
    --------
    >>> import torch, xentc.torch
    >>> z = torch.tensor([[2.0, 0.5, -1.0]], requires_grad=True)
    >>> xentc.torch.cross_entropy(torch.tensor([0]), z, from_logits=True).backward()
    >>> z.grad
    tensor([[-0.2144,  0.1753,  0.0391]])
    """
    return _apply(_api.cross_entropy, y_true, y_pred, options, categorical=True)


def focal_loss(y_true, y_pred, **options) -> torch.Tensor:
    """:func:`xentc.focal_loss` on tensors, differentiable in ``y_pred``.

    ``options`` are the keyword arguments of :func:`xentc.focal_loss` other than ``grad`` and
    ``hess``; see :func:`cross_entropy`.
    """
    return _apply(_api.focal_loss, y_true, y_pred, options, categorical=True)
