"""bfloat16 (ml_dtypes.bfloat16, the NumPy dtype JAX uses and CuPy 14 takes) on the CPU path.

bfloat16 is computed in float32, like float16: the loss (and a per-sample loss) is float32, the
gradient and Hessian are bfloat16, each the float32 result rounded once to nearest (ties to
even). So every result here must equal, bit for bit, the float32 path on the same values
followed by ml_dtypes' own rounding; the float32 path itself is checked against SymPy/mpmath
references elsewhere (test_accuracy, test_symbolic). Skipped without ml_dtypes.
"""
import zlib

import numpy as np
import pytest

ml_dtypes = pytest.importorskip("ml_dtypes")

import xentc  # noqa: E402

BF = np.dtype(ml_dtypes.bfloat16)
FUNCS = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]


def _inputs(name, from_logits, soft, rng):
    if name.startswith("binary"):
        x = rng.normal(0, 3, (40, 3))
        if not from_logits:
            x = 1 / (1 + np.exp(-x))
        y = rng.integers(0, 5, x.shape) / 4 if soft else rng.integers(0, 2, x.shape).astype(float)
        return y.astype(BF), x.astype(BF)
    x = rng.normal(0, 3, (40, 6))
    if not from_logits:
        x = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    y = rng.dirichlet(np.ones(6), 40).astype(BF) if soft else rng.integers(0, 6, 40)
    return y, x.astype(BF)


def _f32(a):
    return a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == BF else a


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", FUNCS)
def test_bfloat16_is_float32_rounded_once(name, from_logits, soft, reduction):
    rng = np.random.default_rng(zlib.crc32(f"{name}|{from_logits}|{soft}|{reduction}".encode()))
    y, x = _inputs(name, from_logits, soft, rng)
    opts = {"gamma": 1.5} if "focal" in name else {"label_smoothing": 0.1}
    sw = rng.integers(0, 5, x.shape if name.startswith("binary") else x.shape[:1]) / 4
    f = getattr(xentc, name)
    got = f(y, x, from_logits=from_logits, reduction=reduction, grad=True, hess=True, sample_weight=sw.astype(BF),
            **opts)
    ref = f(_f32(y), _f32(x), from_logits=from_logits, reduction=reduction, grad=True, hess=True,
            sample_weight=sw.astype(np.float32), **opts)
    assert got.loss.dtype == np.float32 and got.grad.dtype == BF and got.hess.dtype == BF
    np.testing.assert_array_equal(np.asarray(got.loss), np.asarray(ref.loss))
    for g, r in ((got.grad, ref.grad), (got.hess, ref.hess)):
        assert g.shape == x.shape
        np.testing.assert_array_equal(g.view(np.uint16), r.astype(BF).view(np.uint16))
    assert f(y, x, from_logits=from_logits, reduction=reduction, **opts).dtype == np.float32


def test_bfloat16_special_values():
    """NaN propagates, infinite logits give their limits, p = 0 with y = 1 gives inf, as in float32."""
    x = np.array([[np.nan, 0.0, 1.0], [np.inf, 0.0, -np.inf], [-np.inf, 2.0, 3.0]]).astype(BF)
    y = np.array([0, 0, 0])
    got = xentc.cross_entropy(y, x, from_logits=True, reduction="none", grad=True)
    ref = xentc.cross_entropy(y, x.astype(np.float32), from_logits=True, reduction="none", grad=True)
    np.testing.assert_array_equal(got.loss, ref.loss)
    np.testing.assert_array_equal(got.grad.astype(np.float32), ref.grad.astype(BF).astype(np.float32))
    assert np.isnan(got.loss[0]) and got.loss[1] == 0 and got.loss[2] == np.inf
    p = np.array([0.0, 1.0, 0.5]).astype(BF)
    assert xentc.binary_cross_entropy(np.array([1.0, 1.0, 1.0]).astype(BF), p, reduction="none")[0] == np.inf


def test_bfloat16_bad_input_names_the_value():
    p = np.array([0.25, 1.5, 0.5]).astype(BF)
    with pytest.raises(ValueError, match=r"^y_pred: probability 1\.5 at index 1 is outside \[0, 1\]"):
        xentc.binary_cross_entropy(np.ones(3), p)
    with pytest.raises(ValueError, match=r"^y_true: label -0\.25 at index 2 is outside \[0, 1\]"):
        xentc.binary_cross_entropy(np.array([0.0, 1.0, -0.25]).astype(BF), np.full(3, 0.5).astype(BF))



@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dt", ["float8_e4m3fn", "float8_e5m2", "float8_e4m3b11fnuz"])
def test_other_ml_dtypes_floats_are_real_input(name, dt):
    """ml_dtypes' 8-bit floats are real input, computed in float64 like other real dtypes (the
    contract), whatever kind NumPy gives them (float8_e5m2 says 'f', the others 'V')."""
    dtype = np.dtype(getattr(ml_dtypes, dt))
    rng = np.random.default_rng(zlib.crc32(f"{name}{dt}".encode()))
    y, x = _inputs(name, True, False, rng)
    x8 = x.astype(np.float32).astype(dtype)
    y8 = y.astype(np.float32).astype(dtype) if name.startswith("binary") else y
    got = getattr(xentc, name)(y8, x8, from_logits=True, grad=True, reduction="none")
    y64 = y8.astype(np.float64) if name.startswith("binary") else y8
    want = getattr(xentc, name)(y64, x8.astype(np.float64), from_logits=True, grad=True, reduction="none")
    for g, w in ((got.loss, want.loss), (got.grad, want.grad)):
        assert g.dtype == np.float64
        np.testing.assert_array_equal(g, w)
