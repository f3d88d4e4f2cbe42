"""Random test inputs shared by the CPU and CUDA option tests (exact weights, hard/soft labels),
and the bitwise comparison of two ways of making one call."""
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


def focal_prob_minimum(ys, a1, a0, gamma):
    """The zero p* of the binary focal gradient from probabilities for a smoothed label ys (an
    array), positive weight a1 and negative a0: bisection in float64 on
    c0 (p^g/q + g p^(g-1) (-log q)) - c1 (q^g/p + g q^(g-1) (-log p)), which rises through 0."""
    ys = np.asarray(ys, dtype=np.float64)
    c1, c0 = a1 * ys, a0 * (1 - ys)
    lo, hi = np.full(ys.shape, 1e-300), np.full(ys.shape, 1 - 2.0**-53)
    for _ in range(1100):
        mid = 0.5 * (lo + hi)
        q = 1 - mid
        g = c0 * (mid**gamma / q - gamma * mid**(gamma - 1) * np.log1p(-mid)) \
            - c1 * (q**gamma / mid - gamma * q**(gamma - 1) * np.log(mid))
        lo, hi = np.where(g < 0, mid, lo), np.where(g < 0, hi, mid)
    return 0.5 * (lo + hi)


def assert_same_bits(got, want, to_host=np.asarray):
    """One call made two ways: exceptions of the same type and message, or results of the same
    types, dtypes and shapes with the same bits (NaN payloads and zero signs included); to_host
    brings an array to NumPy (CuPy arrays: their .get())."""
    if isinstance(want, Exception):
        assert type(got) is type(want) and str(got) == str(want)
        return
    assert type(got) is type(want)
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            assert_same_bits(g, w, to_host)
        return
    if want is None:
        assert got is None
        return
    g, w = to_host(got), to_host(want)
    assert g.dtype == w.dtype and g.shape == w.shape
    assert g.tobytes() == w.tobytes()
