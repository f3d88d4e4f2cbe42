"""out=: results written into the caller's arrays.

The same bits as a call that allocates its results, for every function, input form, dtype,
reduction and grad/hess combination; the returned arrays are the caller's objects; a previous
LossResult can be passed back; every misuse is refused before anything is written, with a
message naming `out`.
"""
import itertools
import pathlib
import sys

import numpy as np
import pytest

import xentc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from inputs import make_binary, make_categorical  # noqa: E402

FUNCS = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]
BINARY = {"binary_cross_entropy", "binary_focal_loss"}
FLAGS = [(True, False), (False, True), (True, True), (False, False)]


def _inputs(name, dtype, from_logits, label_form, seed=0):
    rng = np.random.default_rng(seed)
    if name in BINARY:
        return make_binary(rng, (13, 6), dtype, from_logits, "hard" if label_form == "int" else label_form)
    return make_categorical(rng, (13, 6), dtype, from_logits, label_form)


def _buffers(res, reduction, grad, hess):
    """Fresh arrays shaped like an allocating call's results, filled with garbage."""
    def like(a):
        b = np.empty_like(a)
        b.fill(np.nan if b.dtype.kind == "f" else 0)
        return b
    loss = like(res.loss if (grad or hess) else res) if reduction == "none" else None
    g = like(res.grad) if grad else None
    h = like(res.hess) if hess else None
    return loss, g, h


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("label_form", ["int", "soft"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("grad,hess", FLAGS)
def test_same_bits_as_allocating(name, dtype, from_logits, label_form, reduction, grad, hess):
    y, x = _inputs(name, dtype, from_logits, label_form)
    f = getattr(xentc, name)
    kw = dict(from_logits=from_logits, reduction=reduction, grad=grad, hess=hess)
    ref = f(y, x, **kw)
    bufs = _buffers(ref, reduction, grad, hess)
    if not any(b is not None for b in bufs):
        bufs = (None, None, None)
    res = f(y, x, out=bufs, **kw)
    if grad or hess:
        for got, want, buf in zip(res, ref, bufs):
            if buf is not None:
                assert got is buf
            if want is None:
                assert got is None
            else:
                np.testing.assert_array_equal(got, want)
                assert np.asarray(got).dtype == np.asarray(want).dtype
    else:
        if reduction == "none":
            assert res is bufs[0]
        np.testing.assert_array_equal(res, ref)


@pytest.mark.parametrize("name", FUNCS)
def test_previous_result_passed_back(name):
    y, x = _inputs(name, np.float64, True, "int")
    f = getattr(xentc, name)
    first = f(y, x, from_logits=True, grad=True, hess=True)
    g, h = first.grad, first.hess
    y2, x2 = _inputs(name, np.float64, True, "int", seed=1)
    second = f(y2, x2, from_logits=True, grad=True, hess=True, out=first)
    assert second.grad is g and second.hess is h
    ref = f(y2, x2, from_logits=True, grad=True, hess=True)
    np.testing.assert_array_equal(second.grad, ref.grad)
    np.testing.assert_array_equal(second.hess, ref.hess)
    assert second.loss == ref.loss


def test_kdim_axis_and_weights():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5, 3, 2))
    y = rng.integers(0, 5, (4, 3, 2))
    sw = rng.uniform(0, 2, (4, 3, 2))
    kw = dict(from_logits=True, axis=1, sample_weight=sw, class_weight=np.arange(1.0, 6.0), grad=True,
              hess=True, reduction="none")
    ref = xentc.focal_loss(y, x, **kw)
    bufs = (np.empty((4, 3, 2)), np.empty_like(x), np.empty_like(x))
    res = xentc.focal_loss(y, x, out=bufs, **kw)
    assert all(a is b for a, b in zip(res, bufs))
    for a, b in zip(res, ref):
        np.testing.assert_array_equal(a, b)


def test_multithreaded_large():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 1500)).astype(np.float32)
    y = rng.integers(0, 1500, 300)
    ref = xentc.cross_entropy(y, x, from_logits=True, grad=True, n_threads=2)
    g = np.empty_like(x)
    res = xentc.cross_entropy(y, x, from_logits=True, grad=True, n_threads=2, out=(None, g, None))
    assert res.grad is g
    np.testing.assert_array_equal(g, ref.grad)


# ------------------------------------------------------------------------------------------------
# Misuse: refused with a message naming out, and nothing written
# ------------------------------------------------------------------------------------------------
def _bad_cases():
    x = np.random.default_rng(5).normal(size=(8, 4))
    y = np.arange(8) % 4
    good = np.empty_like(x)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    cases = {
        "list": ([None, good, None], TypeError, "expected a tuple"),
        "pair": ((good, None), TypeError, "3 entries .*got 2 entries"),
        "not an array": ((None, good.tolist(), None), TypeError, "must be a NumPy array"),
        "shape": ((None, np.empty((4, 8)), None), ValueError, r"shape \(4, 8\)"),
        "dtype": ((None, np.empty((8, 4), np.float32), None), ValueError, "dtype float32"),
        "layout": ((None, np.empty((4, 8)).T, None), ValueError, "C-contiguous"),
        "read-only": ((None, ro, None), ValueError, "read-only"),
        "y_pred": ((None, x, None), ValueError, "shares memory with y_pred"),
        "hess not asked": ((None, good, np.empty_like(x)), ValueError, "hess=False"),
        "loss with mean": ((np.empty(8), good, None), ValueError, "reduction='none'"),
    }
    return x, y, good, cases


@pytest.mark.parametrize("case", list(_bad_cases()[3]))
def test_bad_out(case):
    x, y, good, cases = _bad_cases()
    out, exc, msg = cases[case]
    good.fill(7.0)
    x_before = x.copy()
    with pytest.raises(exc, match="^out: .*" + msg):
        xentc.cross_entropy(y, x, from_logits=True, grad=True, out=out)
    assert (good == 7.0).all()
    np.testing.assert_array_equal(x, x_before)


def test_overlapping_entries_and_inputs():
    rng = np.random.default_rng(6)
    y, x = make_binary(rng, (10,), np.float64, True, "soft")
    big = np.empty(20)
    with pytest.raises(ValueError, match="^out: the hess array shares memory with grad"):
        xentc.binary_cross_entropy(y, x, from_logits=True, grad=True, hess=True, out=(None, big[:10], big[5:15]))
    with pytest.raises(ValueError, match="^out: the grad array shares memory with y_true"):
        xentc.binary_cross_entropy(y, x, from_logits=True, grad=True, out=(None, y, None))
    sw = np.ones(10)
    with pytest.raises(ValueError, match="^out: the loss array shares memory with sample_weight"):
        xentc.binary_cross_entropy(y, x, from_logits=True, sample_weight=sw, reduction="none", out=(sw, None, None))
    with pytest.raises(ValueError, match="^out: the loss array shares memory with grad|^out: the grad array shares"):
        xentc.binary_cross_entropy(y, x, from_logits=True, grad=True, reduction="none", out=(big[:10], big[:10], None))


def test_float16_buffers_must_be_float16():
    y, x = _inputs("cross_entropy", np.float16, True, "int")
    with pytest.raises(ValueError, match="^out: the grad array has dtype float32, expected float16"):
        xentc.cross_entropy(y, x, from_logits=True, grad=True, out=(None, np.empty(x.shape, np.float32), None))
    # the per-sample loss of float16 input is float32, like the allocating call's
    y, x = _inputs("binary_cross_entropy", np.float16, True, "soft")
    loss = np.empty(x.shape, np.float32)
    assert xentc.binary_cross_entropy(y, x, from_logits=True, reduction="none", out=(loss, None, None)) is loss


@pytest.mark.parametrize("name", FUNCS)
def test_kernel_error_still_reported(name):
    """Bad data found by the kernels is still an error with out= (the buffer's contents are then
    unspecified, as documented)."""
    y, x = _inputs(name, np.float64, False, "soft")
    y = y.copy()
    y.flat[3] = 1.5
    g = np.empty_like(x)
    with pytest.raises(ValueError, match="^y_true: label 1.5"):
        getattr(xentc, name)(y, x, grad=True, out=(None, g, None))


def test_every_flag_combination_accepts_none_entries():
    y, x = _inputs("focal_loss", np.float32, True, "int")
    for grad, hess in itertools.product([False, True], repeat=2):
        xentc.focal_loss(y, x, from_logits=True, grad=grad, hess=hess, out=(None, None, None))
