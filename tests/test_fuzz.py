"""Fuzzing the four functions with argument combinations and array oddities (Hypothesis).

Every call must either return a well-formed result (a loss of the documented shape and dtype,
derivatives of the shape of ``y_pred``) or raise ``TypeError``/``ValueError`` whose message
starts with the name of one of the function's arguments -- never another exception, a crash or
a hang. The drawn arguments are mostly valid with a few odd or invalid ones mixed in, so both
branches are exercised; ``test_bad_input.py`` pins each individual error message.
"""

import atexit
import inspect
import os
import re
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xentc

FUNCS = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_MEMMAP_DIR = tempfile.mkdtemp(prefix="xentc-fuzz-")
atexit.register(shutil.rmtree, _MEMMAP_DIR, ignore_errors=True)


# --------------------------------------------------------------------------------------
# array oddities: the same values in another layout, or something that is not real data
# --------------------------------------------------------------------------------------


def _memmap(a):
    fd, path = tempfile.mkstemp(dir=_MEMMAP_DIR, suffix=".dat")
    os.close(fd)
    m = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape if a.size else (1,))
    if a.size:
        m[...] = a
        m.flush()
        return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)
    return a


def _same_values(kind, a):
    """a in another layout: non-contiguous, reversed, read-only, byte-swapped, memory-mapped."""
    a = np.asarray(a)
    if kind == "plain" or a.ndim == 0:
        return a
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.repeat(a, 2, axis=-1)
        return big[..., ::2]
    if kind == "reversed":   # negative strides
        return np.flip(np.flip(a, axis=0).copy(), axis=0)
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    if kind == "bigendian":
        return a.astype(a.dtype.newbyteorder(">")) if a.dtype.kind in "fiu" else a
    if kind == "memmap":
        return _memmap(a)
    if kind == "list":
        return a.tolist()
    raise AssertionError(kind)


LAYOUTS = ["plain", "fortran", "strided", "reversed", "readonly", "bigendian", "memmap", "list"]


def _oddity(kind, shape):
    """Something that is not a real numeric array of the right kind."""
    n = int(np.prod(shape)) if shape else 1
    return {
        "object": lambda: np.full(shape, 0.5, dtype=object),
        "object_mixed": lambda: np.array([0.5, "a", None][:max(n, 1)] * 1, dtype=object),
        "str": lambda: np.full(shape, "0.5"),
        "bytes": lambda: np.full(shape, b"1"),
        "complex": lambda: np.full(shape, 0.5 + 0.25j),
        "datetime": lambda: np.full(shape, np.datetime64("2020-01-01")),
        "timedelta": lambda: np.full(shape, np.timedelta64(1, "s")),
        "void": lambda: np.zeros(shape, dtype="V4"),
        "none": lambda: None,
        "ragged": lambda: [[0.5, 0.5], [0.5]],
        "dict": lambda: {"a": 1},
        "zero_d": lambda: np.array(0.5),
        "empty": lambda: np.zeros((0,) + tuple(shape[1:])),
        "scalar_str": lambda: "0.5",
    }[kind]()


# never valid data, whichever array argument they are passed as
NOT_DATA = ["object", "object_mixed", "str", "bytes", "complex", "datetime", "timedelta", "void",
            "ragged", "dict", "scalar_str"]
ODDITIES = ["object", "object_mixed", "str", "bytes", "complex", "datetime", "timedelta", "void",
            "none", "ragged", "dict", "zero_d", "empty", "scalar_str"]


# --------------------------------------------------------------------------------------
# the draws
# --------------------------------------------------------------------------------------


@st.composite
def _values(draw, shape, from_logits, dtype):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if from_logits:
        x = rng.normal(0, draw(st.sampled_from([1.0, 30.0, 1e4])), shape)
    else:
        x = rng.uniform(0, 1, shape)
    if x.size and draw(st.booleans()):   # special values
        flat = x.reshape(-1)
        k = draw(st.integers(0, flat.size - 1))
        flat[k] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0, -0.0, 1.5, -1.0,
                                        5e-324, 1e308]))
    with np.errstate(invalid="ignore", over="ignore"):   # casts of NaN, inf, 1e308: any value
        return x.astype(dtype)


def _option(valid, odd):
    """Mostly a valid value, sometimes (one draw in six) an odd or invalid one."""
    return st.integers(0, 5).flatmap(
        lambda k: st.sampled_from(odd) if k == 5 else st.sampled_from(valid))


BAD_SCALARS = [np.nan, np.inf, -1.0, 1.0, 7, "2", None, 1j, [0.5], True, np.float32(0.5),
               np.array([0.1, 0.2]), -0.0, 1e-300]


@st.composite
def calls(draw):
    name = draw(st.sampled_from(FUNCS))
    binary = name.startswith("binary")
    focal = "focal" in name
    ndim = draw(st.integers(0 if binary else 1, 3))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
    if not binary and draw(st.integers(0, 9)) == 9:
        shape = (1, draw(st.sampled_from([1000, 100_000])))        # huge C
    from_logits = draw(st.booleans())
    dtype = draw(st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.bool_,
                                  np.longdouble, np.uint8]))
    x = draw(_values(shape, from_logits, dtype))
    kw = {}
    axis = -1
    if not binary and draw(st.booleans()):
        axis = draw(st.integers(-4, 3)) if draw(st.integers(0, 4)) < 4 else \
            draw(st.sampled_from([1.0, "1", None]))
        kw["axis"] = axis
    # labels matching the valid shapes, or something else
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    C = None
    if not binary and len(shape) and isinstance(axis, int) and -len(shape) <= axis < len(shape):
        C = shape[axis]
    label_kind = draw(st.sampled_from(["int", "soft", "int", "soft", "wrong_shape", "oddity"]))
    if label_kind == "int" and C is not None:
        sample_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
        y = rng.integers(0, max(C, 1), sample_shape)
        if y.size and draw(st.integers(0, 5)) == 5:
            y.reshape(-1)[0] = draw(st.sampled_from([-1, C, -100, 2**62]))
        y = y.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int8])))
    elif label_kind in ("int", "soft"):
        y = (rng.integers(0, 2, shape).astype(float) if binary and label_kind == "int"
             else rng.uniform(0, 1, shape))
        if y.size and draw(st.integers(0, 5)) == 5:
            y.reshape(-1)[0] = draw(st.sampled_from([np.nan, 1.5, -0.5, np.inf]))
    elif label_kind == "wrong_shape":
        y = np.zeros(tuple(s + 1 for s in shape) or (2,))
    else:
        y = _oddity(draw(st.sampled_from(ODDITIES)), shape)
    # y_pred oddities
    if draw(st.integers(0, 5)) == 5:
        x = _oddity(draw(st.sampled_from(ODDITIES)), shape)
    else:
        x = _same_values(draw(st.sampled_from(LAYOUTS)), x)
    if isinstance(y, np.ndarray) and y.dtype.kind in "fiub" and draw(st.booleans()):
        y = _same_values(draw(st.sampled_from(LAYOUTS)), y)
    # options
    sample_shape_guess = shape if binary else shape[:-1]
    if draw(st.booleans()):
        kw["sample_weight"] = draw(st.sampled_from([
            "match", "scalar", "bad_shape", "negative", "nan", "oddity"]))
        sw = {"match": lambda: rng.uniform(0, 2, sample_shape_guess),
              "scalar": lambda: 2.0,
              "bad_shape": lambda: np.ones(tuple(s + 2 for s in sample_shape_guess) or (3,)),
              "negative": lambda: np.full(sample_shape_guess, -1.0),
              "nan": lambda: np.full(sample_shape_guess, np.nan),
              "oddity": lambda: _oddity(draw(st.sampled_from(ODDITIES)), sample_shape_guess),
              }[kw["sample_weight"]]()
        kw["sample_weight"] = sw
    if draw(st.booleans()):
        kw["label_smoothing"] = draw(_option([0.0, 0.1, 0.5], BAD_SCALARS))
    if draw(st.booleans()):
        kw["reduction"] = draw(_option(["mean", "sum", "none"], ["avg", None, b"sum", 1]))
    for flag in ("grad", "hess"):
        if draw(st.booleans()):
            kw[flag] = draw(_option([True, False, np.True_], [1, "yes", None]))
    if draw(st.integers(0, 4)) == 4:
        kw["from_logits"] = draw(st.sampled_from([1, "True", None, np.bool_(from_logits)]))
    else:
        kw["from_logits"] = from_logits
    if draw(st.booleans()):
        kw["n_threads"] = draw(_option([None, 1, 2, 5], [0, -1, 1.5, "2", True]))
    if focal and draw(st.booleans()):
        kw["gamma"] = draw(_option([0.0, 0.5, 2.0, 5.0], BAD_SCALARS))
    if focal and draw(st.booleans()):
        choices = [None, 0.25, 1.0] + ([] if binary or C is None else [np.full(C, 0.5)])
        kw["alpha"] = draw(_option(choices, BAD_SCALARS))
    if name == "binary_cross_entropy" and draw(st.booleans()):
        last = shape[-1] if shape else 1
        kw["pos_weight"] = draw(_option([2.0, np.ones(last), None], BAD_SCALARS))
    if not binary and draw(st.booleans()):
        kw["class_weight"] = draw(_option([None] + ([] if C is None else [np.ones(C)]),
                                          BAD_SCALARS + [np.ones(7)]))
    if not binary and draw(st.booleans()):
        kw["ignore_index"] = draw(_option([None, -100, 0], [1.5, "0", [0], True]))
    return name, y, x, kw


# --------------------------------------------------------------------------------------


def _expected_loss_shape(name, x, kw):
    shape = np.shape(x)
    if kw.get("reduction", "mean") != "none":
        return ()
    if name.startswith("binary"):
        return shape
    ax = kw.get("axis", -1) % len(shape)
    return shape[:ax] + shape[ax + 1:]


@SETTINGS
@given(call=calls())
def test_fuzz_arguments_and_layouts(call):
    name, y, x, kw = call
    fn = getattr(xentc, name)
    params = set(inspect.signature(fn).parameters)
    try:
        res = fn(y, x, **kw)
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        m = re.match(r"^(\w+):", msg)
        assert m and m.group(1) in params, f"{type(exc).__name__} names no argument: {msg!r}"
        return
    # a result: the documented structure
    want_derivs = kw.get("grad") is True or kw.get("grad") is np.True_ \
        or kw.get("hess") is True or kw.get("hess") is np.True_
    loss = res.loss if want_derivs else res
    assert isinstance(res, xentc.LossResult) == bool(want_derivs)
    assert np.asarray(loss).dtype in (np.float32, np.float64)
    xa = np.asarray(x)
    assert np.shape(loss) == _expected_loss_shape(name, xa, kw)
    if want_derivs:
        for d, asked in ((res.grad, kw.get("grad")), (res.hess, kw.get("hess"))):
            if asked:
                assert d.shape == xa.shape
                # float16 in either byte order gives native float16
                half = xa.dtype.kind == "f" and xa.dtype.itemsize == 2
                assert d.dtype == (np.float16 if half else np.asarray(loss).dtype)
            else:
                assert d is None


@pytest.mark.parametrize("kind", ODDITIES)
@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("where", ["y_true", "y_pred", "sample_weight"])
def test_every_oddity_in_every_array_argument(name, kind, where):
    """Each oddity deterministically, in each array argument: a result or a named error."""
    binary = name.startswith("binary")
    shape = (3, 4)
    x = np.full(shape, 0.25)
    y = np.zeros(shape) if binary else np.zeros(3, dtype=np.int64)
    args = {"y_true": y, "y_pred": x, "sample_weight": None}
    args[where] = _oddity(kind, shape if where != "sample_weight" or binary else (3,))
    fn = getattr(xentc, name)
    if kind in NOT_DATA:
        with pytest.raises((TypeError, ValueError)) as info:
            fn(args["y_true"], args["y_pred"], sample_weight=args["sample_weight"])
        assert str(info.value).startswith(f"{where}:"), str(info.value)
        return
    try:   # None, 0-d and empty: valid for some arguments
        fn(args["y_true"], args["y_pred"], sample_weight=args["sample_weight"])
    except (TypeError, ValueError) as exc:
        assert re.match(r"^(y_true|y_pred|sample_weight):", str(exc)), str(exc)
