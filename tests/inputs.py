"""Random test inputs shared by the CPU and CUDA option tests (exact weights, hard/soft labels)."""
import numpy as np


def make_binary(rng, shape, dtype, from_logits, label_form):
    if from_logits:
        x = rng.normal(0, 2, shape)
    else:
        x = rng.uniform(0.03, 0.97, shape)
    if label_form == "hard":
        y = rng.integers(0, 2, shape).astype(np.float64)
    else:
        y = rng.integers(0, 65, shape) / 64
    return y.astype(dtype), x.astype(dtype)


def make_categorical(rng, shape, dtype, from_logits, label_form, axis=-1):
    axis = axis % len(shape)
    C = shape[axis]
    if from_logits:
        x = rng.normal(0, 2, shape)
    else:
        x = rng.uniform(0.1, 1, shape)
        x /= x.sum(axis=axis, keepdims=True)
    if label_form == "int":
        y = rng.integers(0, C, shape[:axis] + shape[axis + 1:])
    else:
        y = (rng.integers(0, 33, shape) / 32).astype(dtype)
    return y, x.astype(dtype)


def weights(rng, shape, lo=0, hi=8):
    """Weights that are multiples of 1/4 (exact in every dtype); lo=0 includes zeros."""
    return rng.integers(lo, hi + 1, shape) / 4
