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


def binary_inputs(rng, shape, dtype, from_logits):
    """Binary labels (soft, every third one hard) and logits or probabilities with special values
    first (infinities, signed zeros, 0 and 1)."""
    y = np.asarray(rng.random(shape))
    y.reshape(-1)[::3] = np.round(y.reshape(-1)[::3])   # hard labels among the soft ones
    if from_logits:
        x = np.asarray(rng.standard_normal(shape) * 20)
        special = [np.inf, -np.inf, 0.0, -0.0, 700.0, -700.0]
    else:
        x = np.asarray(rng.random(shape))
        special = [0.0, 1.0, 1e-300, 1 - 1e-12]
    flat = x.reshape(-1)
    flat[:len(special)] = special[:flat.size]
    return np.asarray(y, dtype), np.asarray(x, dtype)


def softmax_inputs(rng, shape, axis, dtype, from_logits):
    """Integer class labels (int64) and logits (infinities first) or probabilities (0 and 1 first)
    with classes along axis."""
    C = shape[axis]
    sample_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    y = rng.integers(0, C, sample_shape)
    if from_logits:
        x = rng.standard_normal(shape) * 10
        flat = x.reshape(-1)
        flat[:4] = [np.inf, -np.inf, 600.0, -600.0][:flat.size]
    else:
        x = rng.random(shape)
        x /= x.sum(axis=axis, keepdims=True)
        flat = x.reshape(-1)
        flat[:2] = [0.0, 1.0][:flat.size]
    return np.asarray(y, dtype=np.int64), x.astype(dtype)


def outcome(f, *args, **kw):
    """f(*args, **kw), or the TypeError or ValueError it raises; floating-point warnings off (the
    random calls' extreme weights overflow NumPy's casts in the tests' own comparisons too)."""
    try:
        with np.errstate(all="ignore"):
            return f(*args, **kw)
    except (TypeError, ValueError) as exc:
        return exc


def random_call(rng, dtypes=(np.float32, np.float64)):
    """(function, y_true, y_pred, keyword arguments, y_pred's dtype) of a random call: every
    function, option and reduction; labels of several dtypes, a few bad; logits or probabilities;
    sample weights of four dtypes scaled to the edges of the range (1e-50 and 1e40 past float32's)
    or 0, some broadcast, a few bad; class weights (1e-50: below float32's range too), pos_weight, alpha, ignored rows."""
    import xentc

    dtype = dtypes[rng.integers(len(dtypes))]
    binary = rng.random() < 0.5
    from_logits = bool(rng.random() < 0.7)
    kw = dict(from_logits=from_logits, reduction=("mean", "sum", "none")[rng.integers(3)],
              grad=bool(rng.random() < 0.5), hess=bool(rng.random() < 0.3),
              label_smoothing=(0.0, 0.1)[rng.integers(2)])
    if binary:
        shape = tuple(int(v) for v in rng.integers(0, 6, rng.integers(0, 3)))
        y, x = binary_inputs(rng, shape, dtype, from_logits)
        sample_shape = shape
        f = (xentc.binary_cross_entropy, xentc.binary_focal_loss)[rng.integers(2)]
        if rng.random() < 0.3:
            kw["pos_weight" if f is xentc.binary_cross_entropy else "alpha"] = float(rng.random())
        if rng.random() < 0.3:   # labels of another dtype (hard ones for the integers and bool)
            to = (np.int64, np.uint8, np.bool_, np.float16, np.float64)[rng.integers(5)]
            y = np.asarray(np.asarray(np.round(y)) if np.dtype(to).kind in "biu" else y).astype(to)
        if y.size and rng.random() < 0.05:
            y.reshape(-1)[0] = 2   # a bad label
    else:
        nd = int(rng.integers(1, 4))
        shape = tuple(int(v) for v in rng.integers(1, 6, nd))
        axis = int(rng.integers(-nd, nd))
        y, x = softmax_inputs(rng, shape, axis, dtype, from_logits)
        sample_shape = y.shape
        kw["axis"] = axis
        if rng.random() < 0.3:
            y.reshape(-1)[::2] = -100
            kw["ignore_index"] = -100
        f = (xentc.cross_entropy, xentc.focal_loss)[rng.integers(2)]
        C = shape[axis]
        if rng.random() < 0.3:
            y = y.astype((np.int32, np.int16, np.uint8, np.uint64)[rng.integers(4)])
        if rng.random() < 0.05:
            y.reshape(-1)[0] = C   # a bad label
        if rng.random() < 0.3:
            kw["class_weight"] = rng.random(C) * (1.0, 1e-42, 1e38, 0.0, 1e-50)[rng.integers(5)]
        if f is xentc.focal_loss and rng.random() < 0.3:
            kw["alpha"] = (float(rng.random()), rng.random(C))[rng.integers(2)]
    if rng.random() < 0.8:
        sw_dtype = (dtype, np.float16, np.float32, np.float64)[rng.integers(4)]
        wshape = sample_shape
        if sample_shape and rng.random() < 0.3:   # broadcast: some dimensions 1, leading ones left out
            wshape = tuple(1 if rng.random() < 0.5 else m for m in sample_shape)[rng.integers(len(sample_shape) + 1):]
        with np.errstate(over="ignore", under="ignore"):
            sw = np.asarray(rng.random(wshape) * (1.0, 1e-20, 1e30, 0.0, 1e-50, 1e40)[rng.integers(6)], sw_dtype)
        if sw.size and rng.random() < 0.1:
            sw.reshape(-1)[rng.integers(sw.size)] = (np.nan, -1.0, np.inf)[rng.integers(3)]
        kw["sample_weight"] = sw
    return f, y, x, kw, dtype
