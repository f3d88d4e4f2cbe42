"""A small program that uses xentc's public API; ``mypy --strict`` must accept it
(tests/test_typing.py runs that). It is also run as a script by that test."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import numpy.typing as npt

import xentc


def boosting_objective(labels: npt.NDArray[np.float64],
                       scores: npt.NDArray[np.float64]) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-sample gradient and Hessian of binary cross entropy from logits."""
    r: xentc.LossResult = xentc.binary_cross_entropy(labels, scores, from_logits=True, reduction="none",
                                                     grad=True, hess=True)
    grad: npt.NDArray[np.float64] = np.asarray(r.grad)
    hess: npt.NDArray[np.float64] = np.asarray(r.hess)
    return grad, hess


def mean_losses(labels: npt.NDArray[np.int64], logits: npt.NDArray[np.float32]) -> list[float]:
    losses = [
        float(xentc.cross_entropy(labels, logits, from_logits=True, label_smoothing=0.1)),
        float(xentc.focal_loss(labels, logits, gamma=2.0, alpha=[0.25, 0.5, 0.25], from_logits=True)),
        float(xentc.binary_focal_loss([1.0, 0.0], [0.9, 0.2], gamma=1.0, alpha=0.5)),
    ]
    hess_only = xentc.focal_loss(labels, logits, from_logits=True, hess=True, n_threads=1)
    assert hess_only.grad is None and hess_only.hess is not None
    return losses


def main() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(8) < 0.5).astype(np.float64)
    grad, hess = boosting_objective(labels, rng.standard_normal(8))
    assert grad.shape == hess.shape == (8,)
    limit: int = xentc.buffer_cache().limit
    assert xentc.buffer_cache(limit).held <= limit
    print(mean_losses(rng.integers(0, 3, 4), rng.standard_normal((4, 3)).astype(np.float32)))


if __name__ == "__main__":
    main()
