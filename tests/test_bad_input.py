"""Bad input: the exception type, a message that starts with the argument's name, and for
data errors the first offending value and its flat (C-order) index. Odd but valid input
must not crash."""

import math
import pathlib
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference as ref  # noqa: E402

import xentc  # noqa: E402

FUNCS = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]
BINARY = ["binary_cross_entropy", "binary_focal_loss"]
CATEGORICAL = ["cross_entropy", "focal_loss"]
FOCAL = ["binary_focal_loss", "focal_loss"]


def _value_re(v):
    """A regex for the value v as a message may print it (7, 7.0, -0.5, nan, inf)."""
    if isinstance(v, str):
        return re.escape(v)
    if isinstance(v, (int, np.integer)):
        return rf"(?<![\d.]){int(v)}(?:\.0)?(?![\d.])"
    v = float(v)
    if np.isnan(v):
        return r"(?i:nan)"
    if np.isinf(v):
        return r"(?i:-inf)" if v < 0 else r"(?<!-)(?i:inf)"
    alts = {repr(v), str(v), f"{v:g}"}
    if v.is_integer():
        alts.add(str(int(v)))
    alt = "|".join(sorted((re.escape(a) for a in alts), key=len, reverse=True))
    sign = "" if v < 0 else "(?<!-)"
    return rf"{sign}(?<![\d.])(?:{alt})(?![\d])"


def _index_re(i):
    return rf"(?<![\d.]){i}(?![\d.])"


def check_raises(exc, arg, call, *, value=None, index=None):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc or issubclass(type(info.value), exc)
    msg = str(info.value)
    assert re.match(rf"^{arg}:", msg), f"message does not start with '{arg}:': {msg!r}"
    if value is not None:
        assert re.search(_value_re(value), msg), f"value {value!r} not in {msg!r}"
    if index is not None:
        assert re.search(_index_re(index), msg), f"index {index} not in {msg!r}"
    return msg


def _valid(name, n=6, C=3):
    """A small valid (y_true, y_pred) pair for the loss (probabilities)."""
    rng = np.random.default_rng(0)
    if name in BINARY:
        return rng.integers(0, 2, n).astype(float), rng.uniform(0.1, 0.9, n)
    return rng.integers(0, C, n), rng.dirichlet(np.ones(C), n)


def call(name, y, x, **kw):
    return lambda: getattr(xentc, name)(y, x, **kw)


# --------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("yshape,xshape", [((5,), (4,)), ((4, 3), (4, 2)), ((4,), (4, 1)),
                                            ((3, 4), (4, 3))])
def test_binary_y_true_shape(name, yshape, xshape):
    check_raises(ValueError, "y_true", call(name, np.zeros(yshape), np.full(xshape, 0.5)))


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("yshape,xshape,kw", [
    ((5,), (4, 3), {}),                     # integer labels, wrong length
    ((4, 1), (4, 3), {}),                   # neither (4,) nor (4, 3)
    ((4, 2), (4, 3), {}),                   # soft labels, wrong C
    ((4, 3, 1), (4, 3), {}),
    ((2, 4), (2, 3, 4), {"axis": 0}),       # labels of y_pred without the wrong axis
    ((2, 3), (2, 3, 4), {"axis": 1}),
])
def test_categorical_y_true_shape(name, yshape, xshape, kw):
    y = np.zeros(yshape, dtype=np.int64) if len(yshape) == len(xshape) - 1 else np.zeros(yshape)
    check_raises(ValueError, "y_true", call(name, y, np.full(xshape, 0.25), **kw))


@pytest.mark.parametrize("name", FUNCS)
def test_sample_weight_shape(name):
    y, x = _valid(name)
    check_raises(ValueError, "sample_weight", call(name, y, x, sample_weight=np.ones(5)))
    check_raises(ValueError, "sample_weight", call(name, y, x, sample_weight=np.ones((6, 2))))
    check_raises(ValueError, "sample_weight", call(name, y, x, sample_weight=np.ones((2, 6))))


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("cw", [np.ones(2), np.ones(4), np.ones((3, 1)), np.ones((1, 3)),
                                np.ones(0)], ids=["2", "4", "3x1", "1x3", "0"])
def test_class_weight_shape(name, cw):
    y, x = _valid(name)
    check_raises(ValueError, "class_weight", call(name, y, x, class_weight=cw))


def test_pos_weight_shape():
    y = np.zeros((4, 3))
    x = np.full((4, 3), 0.5)
    for pw in (np.ones(2), np.ones(4), np.ones((4, 3)), np.ones((1, 3, 1))):
        check_raises(ValueError, "pos_weight",
                     call("binary_cross_entropy", y, x, pos_weight=pw))


def test_alpha_shape():
    y, x = _valid("focal_loss")
    for a in (np.full(2, 0.5), np.full(4, 0.5), np.full((3, 1), 0.5)):
        check_raises(ValueError, "alpha", call("focal_loss", y, x, alpha=a))
    yb, xb = _valid("binary_focal_loss")
    with pytest.raises((ValueError, TypeError), match=r"^alpha:"):
        xentc.binary_focal_loss(yb, xb, alpha=np.array([0.25, 0.75]))


# --------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CATEGORICAL)
def test_label_out_of_range_example_message(name):
    y = np.zeros(20, dtype=np.int64)
    y[12] = 7
    x = np.full((20, 3), 1 / 3)
    msg = check_raises(ValueError, "y_true", call(name, y, x), value=7, index=12)
    assert msg.startswith("y_true: label 7 at index 12 is outside [0, 3)"), msg


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("bad,index", [(-1, 0), (-5, 4), (3, 5), (100, 2),
                                       (np.iinfo(np.int64).max, 3),
                                       (np.iinfo(np.int64).min, 1)])
def test_label_out_of_range(name, from_logits, bad, index):
    y = np.array([0, 1, 2, 0, 1, 2])
    y[index] = bad
    x = np.full((6, 3), 1 / 3)
    check_raises(ValueError, "y_true", call(name, y, x, from_logits=from_logits),
                 value=bad, index=index)
    # ignore_index does not excuse other values
    check_raises(ValueError, "y_true",
                 call(name, y, x, from_logits=from_logits, ignore_index=-100),
                 value=bad, index=index)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.uint64])
def test_label_out_of_range_small_dtypes(dtype):
    y = np.array([0, 1, 2, 3, 1], dtype=dtype)
    check_raises(ValueError, "y_true", call("cross_entropy", y, np.full((5, 3), 0.3)),
                 value=3, index=3)


@pytest.mark.parametrize("name", CATEGORICAL)
def test_first_offending_label_reported(name):
    y = np.array([0, 1, 2, 9, 1, -2, 0, 5])
    check_raises(ValueError, "y_true", call(name, y, np.full((8, 3), 0.3)), value=9, index=3)


def test_label_index_is_flat_c_order_kdim():
    # K-dimensional labels (2, 3, 4) with class axis 1 of y_pred (2, 5, 3, 4)
    y = np.zeros((2, 3, 4), dtype=np.int64)
    y[1, 2, 3] = 6  # flat 23
    x = np.full((2, 5, 3, 4), 0.2)
    check_raises(ValueError, "y_true", call("cross_entropy", y, x, axis=1), value=6, index=23)


def test_label_index_is_flat_c_order_fortran():
    # a Fortran-ordered label array: still the C-order index of the argument
    yf = np.asfortranarray(np.zeros((4, 5), dtype=np.int64))
    yf[2, 1] = 8  # flat 11; F-order memory position 6
    yf[1, 3] = 9  # flat 8; F-order memory position 13 -- first in C order
    x = np.full((4, 5, 3), 0.3)
    check_raises(ValueError, "y_true", call("cross_entropy", yf, x), value=9, index=8)


def test_label_index_of_strided_views():
    base = np.zeros(20, dtype=np.int64)
    base[8] = 4   # element 4 of base[::2]
    base[7] = 99  # not part of the view
    check_raises(ValueError, "y_true", call("cross_entropy", base[::2], np.full((10, 3), 0.3)),
                 value=4, index=4)
    # negative strides
    y = np.zeros(10, dtype=np.int64)
    y[1] = 3  # index 8 of y[::-1]
    y[6] = 5  # index 3 of y[::-1]: first
    check_raises(ValueError, "y_true", call("cross_entropy", y[::-1], np.full((10, 3), 0.3)),
                 value=5, index=3)
    # binary, strided probabilities
    p = np.full(30, 0.5)
    p[9] = 2.0   # index 3 of p[::3]
    p[10] = 3.0  # not in the view
    check_raises(ValueError, "y_pred", call("binary_cross_entropy", np.zeros(10), p[::3]),
                 value=2.0, index=3)


@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_first_offending_label_many_threads(n_threads):
    n = 400_000
    y = np.zeros(n, dtype=np.int32)
    y[150_001] = 3
    y[190_000] = -1
    y[390_000] = 7
    x = np.zeros((n, 3), dtype=np.float32)
    check_raises(ValueError, "y_true",
                 call("cross_entropy", y, x, from_logits=True, n_threads=n_threads),
                 value=3, index=150_001)
    yb = np.zeros(n)
    yb[250_003] = 2.0
    yb[300_000] = np.nan
    check_raises(ValueError, "y_true",
                 call("binary_cross_entropy", yb, np.zeros(n), from_logits=True,
                      n_threads=n_threads), value=2.0, index=250_003)
    pb = np.full(n, 0.5)
    pb[123_457] = 1.5
    pb[399_999] = -1.0
    check_raises(ValueError, "y_pred",
                 call("binary_cross_entropy", np.zeros(n), pb, n_threads=n_threads),
                 value=1.5, index=123_457)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("C,K", [(3, 0), (40, 0), (300, 0), (5, 8), (300, 8)])
@pytest.mark.parametrize("name", CATEGORICAL)
def test_labels_from_logits_checked_by_the_softmax_kernels(name, C, K, dtype, n_threads):
    """From logits, with no weights and no ignore_index, no weight pass checks the labels: the
    softmax kernels do, block by block (LABELS_CHECKED_IN_KERNEL). Every path of rows (few classes
    16 rows at a time, long rows, (N, C, K) input through tiles, float16 a chunk at a time, several
    blocks and threads) reports the first bad label in C order, not a later one in another block,
    and the calls that do take the weight pass (class weights, ignore_index, with a mean) report
    the same, as do those that need no sum from it (no mean)."""
    rows = 1_200_000 // C   # float16: more than one chunk of _half_cpu
    shape = (rows,) if K == 0 else (rows // K, K)
    y = np.zeros(shape, dtype=np.int64)
    flat = y.reshape(-1)
    n = flat.size
    first, later, last = n * 11 // 20, n * 4 // 5, n - 1
    flat[later] = -1
    flat[last] = C
    flat[first] = C + 7
    x = np.zeros((n, C) if K == 0 else (n // K, C, K), dtype=dtype)
    axis = -1 if K == 0 else 1
    for kw in ({}, {"grad": True}, {"class_weight": np.ones(C)}, {"ignore_index": -100},
               {"ignore_index": -100, "reduction": "sum"}, {"class_weight": np.ones(C), "reduction": "none"}):
        check_raises(ValueError, "y_true",
                     call(name, y, x, from_logits=True, axis=axis, n_threads=n_threads, **kw),
                     value=C + 7, index=first)
    flat[first] = 0
    check_raises(ValueError, "y_true", call(name, y, x, from_logits=True, axis=axis, n_threads=n_threads),
                 value=-1, index=later)
    flat[later] = 0
    check_raises(ValueError, "y_true", call(name, y, x, from_logits=True, axis=axis, n_threads=n_threads),
                 value=C, index=last)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kw", [{}, {"ignore_index": 1}, {"class_weight": [0.5, 2.0, 1.0]},
                                {"ignore_index": 1, "class_weight": [0.5, 2.0, 1.0]},
                                {"sample_weight": [1.0, 2.0, 0.5, 1.0]}])
@pytest.mark.parametrize("from_logits", [True, False])
def test_weight_pass_runs_only_where_its_sum_is_needed(monkeypatch, from_logits, kw, reduction):
    """On the general path (the plain-call shortcut switched off, which tests/test_plain_calls.py
    holds to the general path's bits), the weight pre-pass over integer labels runs for sample
    weights, for a mean with class weights or ignore_index (its denominator), and from
    probabilities (whose kernels could report a probability before an earlier label); otherwise
    the softmax kernels check the labels alone.
    The results are those of a call that takes the pre-pass anyway (the backend without
    LABELS_CHECKED_IN_KERNEL), and the first bad label is reported either way."""
    from xentc import _api, _kernels

    runs = []
    real = _api._weight_total
    monkeypatch.setattr(_api, "_weight_total", lambda *a, **k: runs.append(1) or real(*a, **k))
    monkeypatch.setattr(_api, "_categorical_plain", lambda *a, **k: None)   # the general path's choice
    y = np.array([0, 1, 2, 1])
    x = np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3], [0.25, 0.25, 0.5], [0.1, 0.8, 0.1]])
    need = "sample_weight" in kw or not from_logits or (reduction == "mean" and bool(kw))
    kw = dict(kw, reduction=reduction, from_logits=from_logits, grad=True, hess=True)
    got = xentc.cross_entropy(y, x, **kw)
    assert len(runs) == int(need)
    # the same call with the pre-pass forced: the same bits
    monkeypatch.setattr(_kernels, "LABELS_CHECKED_IN_KERNEL", False)
    runs.clear()
    want = xentc.cross_entropy(y, x, **kw)
    assert runs == [1]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(_kernels, "LABELS_CHECKED_IN_KERNEL", True)
    y[2] = 3
    check_raises(ValueError, "y_true", call("cross_entropy", y, x, **kw), value=3, index=2)


def test_softmax_kernel_reports_labels_it_cannot_read():
    """The compiled softmax kernel checks integer labels itself (it would read outside the row),
    whoever calls it: the first outside [0, C) that is not the ignored label, as (code, row,
    label)."""
    from xentc import _api, _kernels

    x = np.zeros((6, 3, 1), dtype=np.float32)
    lab = np.array([0, 2, -100, 3, -1, 1])
    for has_ignore, first in ((False, (2, -100)), (True, (3, 3))):
        total, err, i, j = _kernels.softmax(x, lab, None, None, None, -100, has_ignore, 0.0, 0.0, 1.0, True,
                                            None, None, None, False, None)
        assert (err, i, j) == (_api._ERR_LABEL_RANGE,) + first


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("bad", [2.0, -0.5, 1.25, np.inf, -np.inf])
def test_binary_label_outside_unit_interval(name, bad):
    y = np.array([0.0, 1.0, 0.5, 1.0, 0.0, 1.0])
    y[4] = bad
    check_raises(ValueError, "y_true", call(name, y, np.full(6, 0.5)), value=bad, index=4)
    check_raises(ValueError, "y_true", call(name, y, np.zeros(6), from_logits=True),
                 value=bad, index=4)


@pytest.mark.parametrize("name", BINARY)
def test_binary_integer_label_outside_unit_interval(name):
    y = np.array([0, 1, 2, 1])
    check_raises(ValueError, "y_true", call(name, y, np.full(4, 0.5)), value=2, index=2)
    y = np.array([[0, 1], [-1, 1]], dtype=np.int8)
    check_raises(ValueError, "y_true", call(name, y, np.full((2, 2), 0.5)), value=-1, index=2)


@pytest.mark.parametrize("name", BINARY)
def test_binary_nan_label(name):
    y = np.array([[0.0, 1.0, 0.5], [1.0, np.nan, 0.0]])
    check_raises(ValueError, "y_true", call(name, y, np.full((2, 3), 0.5)), value=np.nan,
                 index=4)


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("bad", [np.nan, 1.5, -0.25, np.inf])
def test_soft_label_outside_unit_interval_or_nan(name, bad):
    y = np.full((3, 4), 0.25)
    y[2, 1] = bad  # flat 9
    for from_logits in (False, True):
        check_raises(ValueError, "y_true", call(name, y, np.full((3, 4), 0.25),
                                                from_logits=from_logits),
                     value=bad, index=9)


# --------------------------------------------------------------------------------------
# probabilities
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("bad", [1.5, -0.25, np.inf, -np.inf, 1.0000001])
def test_binary_probability_outside_unit_interval(name, bad, dtype):
    x = np.full(7, 0.5, dtype=dtype)
    x[3] = bad
    bad = x[3]  # as stored
    check_raises(ValueError, "y_pred", call(name, np.zeros(7, dtype=dtype), x),
                 value=bad if bad in (1.5, -0.25) or np.isinf(bad) else None, index=3)
    # the same values are fine as logits
    getattr(xentc, name)(np.zeros(7), x, from_logits=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_binary_first_bad_element_of_a_long_array(name, dtype, n_threads):
    """Contiguous binary inputs are checked in chunks and the first bad element located afterwards:
    the error names the first bad element of the whole array, whichever chunk, block and thread
    it is in, and whether its label or its probability is bad; at one element a bad label is
    reported before a bad probability, as the strided path reports it. NaN probabilities are data."""
    n = 200_003
    p = np.full(n, 0.25, dtype=dtype)
    y = np.zeros(n, dtype=dtype)
    p[::1000] = np.nan
    for (ib, vb), (il, vl), first in [((150_001, 1.5), (170_000, 2.0), "y_pred"),
                                      ((150_001, -0.5), (90_000, -1.0), "y_true"),
                                      ((123_457, 3.0), (123_457, 2.0), "y_true"),
                                      ((199_999, 7.0), (None, None), "y_pred")]:
        pp, yy = p.copy(), y.copy()
        pp[ib] = vb
        if il is not None:
            yy[il] = vl
        index, value = (ib, vb) if first == "y_pred" else (il, vl)
        for args in ((yy, pp), (yy[::-1][::-1], pp[::-1][::-1])):
            check_raises(ValueError, first, call(name, *args, n_threads=n_threads), value=value, index=index)
        # the strided path agrees
        ys, ps = np.repeat(yy, 2)[::2], np.repeat(pp, 2)[::2]
        check_raises(ValueError, first, call(name, ys, ps, n_threads=n_threads), value=value, index=index)


@pytest.mark.parametrize("ldtype, bad, worse", [(np.int8, -1, 3), (np.uint8, 2, 255), (np.int64, 2, -7),
                                                (np.uint64, 2**64 - 1, 5), (np.float64, 1 + 1e-10, np.nan),
                                                (np.float32, np.nan, -0.5)],
                         ids=lambda v: np.dtype(v).str if isinstance(v, type) else None)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_binary_first_bad_label_of_another_dtype(dtype, ldtype, bad, worse):
    """Labels of another dtype than y_pred, read as they are: the first bad label of a long array
    is named with its own value (1 + 1e-10 in float64 must not pass as the 1.0 it rounds to in
    float32), before a bad probability at the same element, after one at an earlier element;
    likewise labels and probabilities whose elements lie apart (every other element of an array)."""
    if np.dtype(ldtype) == np.dtype(dtype):
        pytest.skip("labels of y_pred's dtype: test_binary_first_bad_element_of_a_long_array")
    n = 200_003
    y = np.zeros(n, dtype=ldtype)
    p = np.full(n, 0.25, dtype=dtype)
    y[150_001], y[170_000] = bad, worse
    for n_threads in (1, 2):
        check_raises(ValueError, "y_true", call("binary_cross_entropy", y, p, n_threads=n_threads), value=bad,
                     index=150_001)
        pp = p.copy()
        pp[150_001] = 1.5
        check_raises(ValueError, "y_true", call("binary_focal_loss", y, pp, n_threads=n_threads), value=bad,
                     index=150_001)
        pp[90_000] = -0.5
        check_raises(ValueError, "y_pred", call("binary_cross_entropy", y, pp, n_threads=n_threads), value=-0.5,
                     index=90_000)
        ys, ps, pps = np.repeat(y, 2)[::2], np.repeat(p, 2)[::2], np.repeat(pp, 2)[::2]
        check_raises(ValueError, "y_true", call("binary_cross_entropy", ys, ps, n_threads=n_threads), value=bad,
                     index=150_001)
        check_raises(ValueError, "y_true", call("binary_focal_loss", ys, p, n_threads=n_threads), value=bad,
                     index=150_001)
        check_raises(ValueError, "y_pred", call("binary_cross_entropy", ys, pps, n_threads=n_threads),
                     value=-0.5, index=90_000)


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("soft", [False, True])
def test_categorical_first_bad_probability_of_a_long_row(name, soft):
    """A row of probabilities is scanned whole before any work and the bad entry located after:
    with C = 1000 the error names the first bad entry, past NaN entries (data) and past the 64
    classes a loop takes at a time; with soft labels a bad probability comes before a bad label
    at the same entry."""
    C = 1000
    x = np.full((3, C), 1.0 / C)
    x[1, ::7] = np.nan
    x[1, 900] = 1.5
    x[1, 950] = -0.5
    y = np.full((3, C), 1.0 / C) if soft else np.zeros(3, dtype=int)
    if soft:
        y[1, 900] = 2.0     # same entry: the probability is reported
        y[2, 10] = -1.0
    check_raises(ValueError, "y_pred", call(name, y, x), value=1.5, index=C + 900)
    if soft:
        x[1, 900] = x[1, 950] = 0.5
        check_raises(ValueError, "y_true", call(name, y, x), value=2.0, index=C + 900)


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("bad", [1.25, -0.5, np.inf])
def test_categorical_probability_outside_unit_interval(name, bad):
    x = np.full((4, 3), 0.3)
    x[2, 1] = bad  # flat 7
    check_raises(ValueError, "y_pred", call(name, np.zeros(4, dtype=int), x), value=bad,
                 index=7)
    check_raises(ValueError, "y_pred", call(name, np.full((4, 3), 0.25), x), value=bad,
                 index=7)
    # axis=0: the index is still into y_pred as passed
    xt = np.full((3, 4), 0.3)
    xt[1, 2] = bad  # flat 6
    check_raises(ValueError, "y_pred", call(name, np.zeros(4, dtype=int), xt, axis=0),
                 value=bad, index=6)


# --------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------


BAD_WEIGHTS = [np.nan, -1.0, -0.5, np.inf, -np.inf]


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("bad", BAD_WEIGHTS)
def test_sample_weight_values(name, bad):
    y, x = _valid(name)
    sw = np.ones(6)
    sw[4] = bad
    check_raises(ValueError, "sample_weight", call(name, y, x, sample_weight=sw), value=bad,
                 index=4)
    check_raises(ValueError, "sample_weight", call(name, y, x, sample_weight=bad), value=bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, -1.0, np.inf])
def test_sample_weight_values_in_long_arrays(dtype, bad):
    """Binary sample weights are checked in a vectorised pass that sums them in lanes of 16 (or 8)
    and a tail: a bad weight anywhere, in the lanes, the tail or a later block, is reported with
    its index, and the first of two is the one named."""
    n = 40_007   # blocks of 16384, a tail of 7 after the last whole group of lanes
    y, x = np.zeros(n, dtype=dtype), np.zeros(n, dtype=dtype)
    for where in (0, 15, 16_383, 16_384, 39_999, n - 1):
        sw = np.ones(n, dtype=dtype)
        sw[where] = bad
        check_raises(ValueError, "sample_weight",
                     call("binary_cross_entropy", y, x, from_logits=True, sample_weight=sw), value=bad, index=where)
    sw = np.ones(n, dtype=dtype)
    sw[[30_000, 20_000]] = bad
    check_raises(ValueError, "sample_weight", call("binary_focal_loss", y, x, sample_weight=sw, n_threads=2),
                 value=bad, index=20_000)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["sample", "class", "both"])
def test_categorical_weights_and_labels_in_long_arrays(dtype, kind):
    """Integer labels with sample and/or class weights are checked and summed in lanes (the weight
    pass of _xent_rows.h): a bad weight, also on an ignored row, and a label outside [0, C) are
    named at their index wherever they lie (in the lanes, the tail, a later block), the first of
    two named; the mean's denominator is the exactly rounded sum within a few ulp."""
    n, C = 40_007, 3
    rng = np.random.default_rng(11)
    y = rng.integers(0, C, n)
    y[rng.random(n) < 0.2] = -100
    x = rng.standard_normal((n, C)).astype(dtype)
    sw = rng.random(n).astype(dtype) + dtype(0.5) if kind != "class" else None
    cw = np.array([0.5, 2.0, 3.25]) if kind != "sample" else None
    kw = {"from_logits": True, "ignore_index": -100, "class_weight": cw}
    ign = np.flatnonzero(y == -100)
    for where in (0, 15, 16_383, 16_384, int(ign[-1]), n - 1):
        yy = y.copy()
        yy[where] = C
        check_raises(ValueError, "y_true", call("cross_entropy", yy, x, sample_weight=sw, **kw),
                     value=C, index=where)
        if sw is not None:
            ww = sw.copy()
            ww[where] = np.nan
            check_raises(ValueError, "sample_weight", call("focal_loss", y, x, sample_weight=ww, **kw),
                         value=np.nan, index=where)
    if sw is not None:   # a bad weight before a bad label: the weight is named, on 2 threads too
        yy, ww = y.copy(), sw.copy()
        yy[30_000], ww[20_000] = -1, -1.0
        check_raises(ValueError, "sample_weight", call("cross_entropy", yy, x, sample_weight=ww, n_threads=2, **kw),
                     value=-1.0, index=20_000)
    # the denominator: sum of sample weight x class weight over the kept rows, exactly rounded
    keep = y != -100
    w = (np.ones(n) if sw is None else sw.astype(np.float64)) * (1.0 if cw is None else cw[np.where(keep, y, 0)])
    if dtype == np.float32 and sw is not None and cw is not None:
        w = (sw * cw.astype(dtype)[np.where(keep, y, 0)]).astype(np.float64)   # the product in float32
    want = math.fsum(w[keep])
    for nt in (1, 2):
        total = xentc.cross_entropy(y, x, sample_weight=sw, reduction="sum", n_threads=nt, **kw)
        mean = xentc.cross_entropy(y, x, sample_weight=sw, n_threads=nt, **kw)
        np.testing.assert_allclose(float(total) / float(mean), want, rtol=8 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, "snan", -1.0, -2.0**-24, np.inf])
def test_float16_sample_weights_in_long_arrays(dtype, bad):
    """float16 weights beside float32 or float64 y_pred, converted 16 at a time in the AVX-512
    kernels: a bad one (a signalling NaN too, whose bits that conversion changes) anywhere, on
    either side of a stretch of 1024 and in the tail, is named with its index, and valid ones give
    the bits of the weights converted first (-0.0 among them)."""
    n = 40_007
    y, x = (np.arange(n) % 3 == 0).astype(dtype), np.linspace(-4, 4, n).astype(dtype)
    value = np.nan if bad == "snan" else bad
    for where in (0, 1023, 1024, 16_384, 39_999, n - 1):
        sw = np.ones(n, dtype=np.float16)
        if bad == "snan":
            sw.view(np.uint16)[where] = 0x7C01
        else:
            sw[where] = bad
        for name in BINARY:
            check_raises(ValueError, "sample_weight",
                         call(name, y, x, from_logits=True, sample_weight=sw), value=value, index=where)
    sw = np.linspace(0, 3, n).astype(np.float16)
    sw[::7] = -0.0
    sw[5] = 2.0**-24   # the smallest subnormal
    for name in BINARY:
        for reduction in ("mean", "none"):
            got = getattr(xentc, name)(y, x, from_logits=True, sample_weight=sw, reduction=reduction, grad=True)
            want = getattr(xentc, name)(y, x, from_logits=True, sample_weight=sw.astype(dtype), reduction=reduction,
                                        grad=True)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


@pytest.mark.parametrize("name", BINARY)
def test_sample_weight_index_after_broadcasting(name):
    y = np.zeros((4, 3))
    x = np.full((4, 3), 0.5)
    sw = np.ones((4, 1))
    sw[2, 0] = -2.0  # broadcast flat indices 6, 7, 8
    check_raises(ValueError, "sample_weight", call(name, y, x, sample_weight=sw), value=-2.0,
                 index=6)
    sw = np.ones(3)
    sw[1] = np.nan  # broadcast flat indices 1, 4, 7, 10
    check_raises(ValueError, "sample_weight", call(name, y, x, sample_weight=sw), value=np.nan,
                 index=1)


@pytest.mark.parametrize("name", CATEGORICAL)
def test_sample_weight_index_after_broadcasting_kdim(name):
    y = np.zeros((2, 3, 4), dtype=int)
    x = np.full((2, 5, 3, 4), 0.2)
    sw = np.ones((3, 1))
    sw[1, 0] = -1.0  # broadcast to (2, 3, 4): flat 4..7 first
    check_raises(ValueError, "sample_weight", call(name, y, x, axis=1, sample_weight=sw),
                 value=-1.0, index=4)


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("bad", BAD_WEIGHTS)
def test_class_weight_values(name, bad):
    y, x = _valid(name)
    cw = np.ones(3)
    cw[2] = bad
    check_raises(ValueError, "class_weight", call(name, y, x, class_weight=cw), value=bad,
                 index=2)
    # also when the bad class is not among the labels, and for soft labels
    check_raises(ValueError, "class_weight",
                 call(name, np.zeros(6, dtype=int), x, class_weight=cw), value=bad, index=2)
    check_raises(ValueError, "class_weight",
                 call(name, np.full((6, 3), 0.3), x, class_weight=cw), value=bad, index=2)


@pytest.mark.parametrize("bad", BAD_WEIGHTS)
def test_pos_weight_values(bad):
    y = np.zeros((4, 3))
    x = np.full((4, 3), 0.5)
    check_raises(ValueError, "pos_weight",
                 call("binary_cross_entropy", y, x, pos_weight=bad), value=bad)
    pw = np.ones(3)
    pw[1] = bad
    check_raises(ValueError, "pos_weight",
                 call("binary_cross_entropy", y, x, pos_weight=pw), value=bad, index=1)


# --------------------------------------------------------------------------------------
# scalar options
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FOCAL)
@pytest.mark.parametrize("gamma", [-0.5, -1e-300, np.nan, np.inf, -np.inf])
def test_gamma_values(name, gamma):
    y, x = _valid(name)
    check_raises(ValueError, "gamma", call(name, y, x, gamma=gamma))


@pytest.mark.parametrize("name", FOCAL)
@pytest.mark.parametrize("gamma", ["2", None, 1j, [2.0]])
def test_gamma_types(name, gamma):
    y, x = _valid(name)
    with pytest.raises((TypeError, ValueError), match=r"^gamma:"):
        getattr(xentc, name)(y, x, gamma=gamma)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("eps", [-0.1, -1e-300, 1.0, 1.5, np.nan, np.inf])
def test_label_smoothing_values(name, eps):
    y, x = _valid(name)
    check_raises(ValueError, "label_smoothing", call(name, y, x, label_smoothing=eps))


@pytest.mark.parametrize("name", FOCAL)
@pytest.mark.parametrize("alpha", [-0.1, 1.1, np.nan, np.inf])
def test_alpha_values(name, alpha):
    y, x = _valid(name)
    check_raises(ValueError, "alpha", call(name, y, x, alpha=alpha))


@pytest.mark.parametrize("bad", [-0.25, 1.5, np.nan])
def test_alpha_vector_values(bad):
    y, x = _valid("focal_loss")
    a = np.full(3, 0.5)
    a[1] = bad
    check_raises(ValueError, "alpha", call("focal_loss", y, x, alpha=a), value=bad, index=1)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", ["avg", "MEAN", "", "sum ", "elementwise"])
def test_unknown_reduction(name, reduction):
    y, x = _valid(name)
    check_raises(ValueError, "reduction", call(name, y, x, reduction=reduction))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", [None, 0, b"mean"])
def test_reduction_wrong_type(name, reduction):
    y, x = _valid(name)
    with pytest.raises((TypeError, ValueError), match=r"^reduction:"):
        getattr(xentc, name)(y, x, reduction=reduction)


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("axis", [2, -3, 5, 100, -100])
def test_axis_out_of_range(name, axis):
    y, x = _valid(name)
    check_raises(ValueError, "axis", call(name, y, x, axis=axis))


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("axis", [1.0, 1.5, "1", None, [1], True, np.bool_(False)])
def test_axis_wrong_type(name, axis):
    y, x = _valid(name)
    check_raises(TypeError, "axis", call(name, y, x, axis=axis))


# --------------------------------------------------------------------------------------
# wrong types of arrays
# --------------------------------------------------------------------------------------


def _bad_arrays(n):
    return {
        "str": np.array(["a"] * n),
        "str_numbers": np.array(["0.5"] * n),
        "bytes": np.array([b"1"] * n),
        "object": np.array([0.5] * n, dtype=object),
        "complex": np.full(n, 0.5 + 0j),
        "complex64": np.full(n, 0.5 + 0.5j, dtype=np.complex64),
        "datetime": np.array(["2020-01-01"] * n, dtype="datetime64[D]"),
        "void": np.zeros(n, dtype="V8"),
        "none": None,
    }


BAD_KINDS = list(_bad_arrays(1))


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("name", FUNCS)
def test_y_pred_wrong_type(name, kind):
    y, x = _valid(name)
    bad = _bad_arrays(x.size)[kind]
    if bad is not None:
        bad = bad.reshape(x.shape)
    check_raises(TypeError, "y_pred", call(name, y, bad))


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("name", FUNCS)
def test_y_true_wrong_type(name, kind):
    y, x = _valid(name)
    bad = _bad_arrays(y.size)[kind]
    if bad is not None:
        bad = bad.reshape(y.shape)
    check_raises(TypeError, "y_true", call(name, bad, x))


@pytest.mark.parametrize("name", FUNCS)
def test_soft_labels_wrong_type(name):
    y, x = _valid(name)
    check_raises(TypeError, "y_true", call(name, np.full(x.shape, 0.5 + 0j), x))
    check_raises(TypeError, "y_true", call(name, np.full(x.shape, "a"), x))


@pytest.mark.parametrize("kind", ["str", "object", "complex", "complex64", "datetime"])
@pytest.mark.parametrize("name", FUNCS)
def test_weights_wrong_type(name, kind):
    y, x = _valid(name)
    check_raises(TypeError, "sample_weight",
                 call(name, y, x, sample_weight=_bad_arrays(6)[kind]))
    if name in CATEGORICAL:
        check_raises(TypeError, "class_weight",
                     call(name, y, x, class_weight=_bad_arrays(3)[kind]))
    if name == "binary_cross_entropy":
        y2, x2 = np.zeros((2, 3)), np.full((2, 3), 0.5)
        check_raises(TypeError, "pos_weight",
                     call(name, y2, x2, pos_weight=_bad_arrays(3)[kind]))


@pytest.mark.parametrize("name", FOCAL)
def test_alpha_wrong_type(name):
    y, x = _valid(name)
    check_raises(TypeError, "alpha", call(name, y, x, alpha="0.5"))
    check_raises(TypeError, "alpha", call(name, y, x, alpha=0.5 + 0j))
    for flag in (True, np.bool_(False)):   # both focal losses alike (focal_loss took True as 1.0)
        check_raises(TypeError, "alpha", call(name, y, x, alpha=flag))


@pytest.mark.parametrize("name", FOCAL)
def test_zero_d_arrays_as_scalars(name):
    """A 0-d array is a scalar for gamma, alpha and label_smoothing, in both focal losses alike
    (binary_focal_loss refused them)."""
    y, x = _valid(name)
    f = getattr(xentc, name)
    got = f(y, x, gamma=np.array(1.5), alpha=np.array(0.25), label_smoothing=np.array(0.1))
    assert got == f(y, x, gamma=1.5, alpha=0.25, label_smoothing=0.1)


# --------------------------------------------------------------------------------------
# n_threads, flags, ignore_index
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("n_threads", [0, -1, -8])
def test_n_threads_values(name, n_threads):
    y, x = _valid(name)
    check_raises(ValueError, "n_threads", call(name, y, x, n_threads=n_threads))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("n_threads", [1.5, 2.0, True, False, "2", [2], np.float64(2)])
def test_n_threads_types(name, n_threads):
    y, x = _valid(name)
    check_raises(TypeError, "n_threads", call(name, y, x, n_threads=n_threads))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("flag", ["grad", "hess", "from_logits"])
@pytest.mark.parametrize("value", [1, 0, "yes", "", None, 1.0, np.int64(1), np.array([True])],
                         ids=["1", "0", "yes", "empty", "None", "1.0", "np.int64", "array"])
def test_flags_not_bool(name, flag, value):
    y, x = _valid(name)
    check_raises(TypeError, flag, call(name, y, x, **{flag: value}))


@pytest.mark.parametrize("name", CATEGORICAL)
def test_ignore_index_with_soft_labels(name):
    _, x = _valid(name)
    check_raises(ValueError, "ignore_index", call(name, np.full(x.shape, 0.3), x,
                                                  ignore_index=-100))
    check_raises(ValueError, "ignore_index", call(name, np.full(x.shape, 0.3), x,
                                                  ignore_index=0))


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("ii", [1.5, 1.0, "1", [1]])
def test_ignore_index_not_int(name, ii):
    y, x = _valid(name)
    check_raises(TypeError, "ignore_index", call(name, y, x, ignore_index=ii))


@pytest.mark.parametrize("name", CATEGORICAL)
def test_ignore_index_numpy_int_accepted(name):
    y, x = _valid(name)
    y = y.copy()
    y[1] = 5
    a = getattr(xentc, name)(y, x, ignore_index=np.int32(5), grad=True)
    b = getattr(xentc, name)(y, x, ignore_index=5, grad=True)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.grad, b.grad)


@pytest.mark.parametrize("name", FUNCS)
def test_unknown_keyword_and_positional_options(name):
    y, x = _valid(name)
    with pytest.raises(TypeError):
        getattr(xentc, name)(y, x, weights=np.ones(6))
    with pytest.raises(TypeError):
        getattr(xentc, name)(y, x, True)  # options are keyword-only


# --------------------------------------------------------------------------------------
# odd but valid input: no crash
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CATEGORICAL)
def test_zero_dim_y_pred_categorical(name):
    with pytest.raises(ValueError, match=r"^(y_pred|axis):"):
        getattr(xentc, name)(np.array(0), np.array(0.5))
    with pytest.raises(ValueError, match=r"^(y_pred|axis|y_true):"):
        getattr(xentc, name)(0, 0.5)


@pytest.mark.parametrize("name", BINARY)
def test_zero_dim_binary(name):
    res = getattr(xentc, name)(np.array(1.0), np.array(0.25), reduction="none", grad=True)
    exp = ref.FUNCTIONS[name](1.0, 0.25, reduction="none")
    np.testing.assert_allclose(np.asarray(res.loss), float(exp[0]), rtol=1e-14)
    np.testing.assert_allclose(res.grad, float(exp[1]), rtol=1e-14)


def test_class_axis_of_length_zero():
    # integer labels cannot be in [0, 0): an error naming an argument, not a crash
    with pytest.raises(ValueError, match=r"^(y_pred|y_true):"):
        xentc.cross_entropy(np.zeros(3, dtype=int), np.zeros((3, 0)))


def test_ragged_lists():
    with pytest.raises((ValueError, TypeError), match=r"^y_pred:"):
        xentc.cross_entropy([0, 1], [[0.5, 0.5], [1.0]])
    with pytest.raises((ValueError, TypeError), match=r"^y_true:"):
        xentc.cross_entropy([[0.5, 0.5], [1.0]], [[0.5, 0.5], [0.5, 0.5]])


@pytest.mark.parametrize("from_logits", [False, True])
def test_huge_number_of_classes(from_logits):
    rng = np.random.default_rng(11)
    C = 100_000
    if from_logits:
        x = rng.normal(0, 3, (1, C))
    else:
        x = rng.dirichlet(np.ones(C), 1)
    y = np.array([C - 1])
    for name in CATEGORICAL:
        res = getattr(xentc, name)(y, x, from_logits=from_logits, grad=True, hess=True)
        e = ref.FUNCTIONS[name](y, x, from_logits=from_logits)
        np.testing.assert_allclose(res.loss, float(e[0]), rtol=1e-12)
        np.testing.assert_allclose(res.grad, e[1].astype(float), rtol=1e-11,
                                   atol=1e-12 * np.abs(e[1].astype(float)).max())
        np.testing.assert_allclose(res.hess, e[2].astype(float), rtol=1e-11,
                                   atol=1e-12 * np.abs(e[2].astype(float)).max())


def test_lists_and_scalars_accepted():
    xentc.binary_cross_entropy([1, 0], [0.5, 0.5])
    xentc.binary_cross_entropy(1, 0.5, sample_weight=2)
    xentc.binary_cross_entropy([[1, 0]], [[0.5, 0.5]], pos_weight=[1, 2])
    xentc.cross_entropy([1], [[0.5, 0.5]], class_weight=[1, 2], sample_weight=[3])
    xentc.focal_loss([1], [[0.5, 0.5]], alpha=[0.25, 0.75])
    xentc.binary_focal_loss([True, False], [0.5, 0.5], alpha=0.25, gamma=1)


def test_errors_leave_no_state_behind():
    # a failing call does not disturb the next good one (kernel error state is per call)
    y, x = _valid("cross_entropy")
    good = xentc.cross_entropy(y, x, grad=True)
    bad = y.copy()
    bad[0] = 3
    with pytest.raises(ValueError):
        xentc.cross_entropy(bad, x, grad=True)
    again = xentc.cross_entropy(y, x, grad=True)
    np.testing.assert_array_equal(good.loss, again.loss)
    np.testing.assert_array_equal(good.grad, again.grad)


# --------------------------------------------------------------------------------------
# values past what the kernels' types hold (found by an audit: OverflowError, wrapped labels,
# weights that overflow the compute dtype)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FUNCS)
def test_n_threads_too_large(name):
    y, x = _valid(name)
    check_raises(ValueError, "n_threads", call(name, y, x, n_threads=2**31))


@pytest.mark.parametrize("name", CATEGORICAL)
@pytest.mark.parametrize("ii", [2**63, -2**63 - 1, 2**70])
def test_ignore_index_outside_int64(name, ii):
    y, x = _valid(name)
    check_raises(ValueError, "ignore_index", call(name, y, x, ignore_index=ii), value=ii)


@pytest.mark.parametrize("name", CATEGORICAL)
def test_uint64_labels_past_int64(name):
    """2**64 - 1 must not wrap to -1 (which ignore_index=-1 would then skip in silence)."""
    _, x = _valid(name)
    y = np.zeros(6, dtype=np.uint64)
    y[4] = np.uint64(2**64 - 1)
    for kw in ({}, {"ignore_index": -1}):
        check_raises(ValueError, "y_true", call(name, y, x, **kw), value=2**64 - 1, index=4)
    y[4] = np.uint64(2**63)
    check_raises(ValueError, "y_true", call(name, y, x), value=2**63, index=4)


def test_weights_that_overflow_float32():
    """Checked in float64, finite there, but past float32's largest number: an error, not inf."""
    y, x = _valid("binary_cross_entropy")
    x32 = x.astype(np.float32)
    check_raises(ValueError, "pos_weight", call("binary_cross_entropy", y, x32, pos_weight=1e39), value=1e39)
    assert np.isfinite(xentc.binary_cross_entropy(y, x, pos_weight=1e39))   # float64: fine
    yc, xc = _valid("cross_entropy")
    for name in CATEGORICAL:
        check_raises(ValueError, "class_weight",
                     call(name, yc, xc.astype(np.float32), class_weight=[1.0, 1e39, 1.0]), value=1e39, index=1)


def _edge_of(src, dst):
    """(the largest value of dtype src that rounds to a finite dst, the smallest that rounds to
    inf): the midpoint between dst's largest number and the next power of two rounds to even, the
    power, and so overflows; the value one step below it rounds down to dst's largest number.
    Worked out from the bit layout, not from xentc."""
    fi = np.finfo(dst)
    e, m = int(fi.maxexp), int(fi.nmant)
    bound = np.ldexp(np.ones((), src), e) - np.ldexp(np.ones((), src), e - m - 2)
    return np.nextafter(bound, np.zeros((), src)), bound


@pytest.mark.parametrize("pred_dtype", [np.float32, np.float16, np.float64])
def test_weights_at_the_edge_of_the_compute_dtype(pred_dtype):
    """A weight overflows the compute dtype where it rounds to inf there, as the word says: the
    largest float64 weight that rounds to float32's largest number is that number (the bits of the
    call with it), the next one up an error naming it, on every route a weight takes (binary
    kernels reading float64 weights, the categorical one-pass narrowing, the strided and repeating
    weights checked in NumPy, pos_weight and class_weight). The CPU categorical route refused
    weights between the two while the others and the GPU took them."""
    cdt = np.float64 if pred_dtype == np.float64 else np.float32
    src = np.longdouble if cdt == np.float64 else np.float64
    if np.finfo(src).nmant <= np.finfo(cdt).nmant:
        pytest.skip("no float wider than float64 here")
    ok, over = _edge_of(src, cdt)
    with np.errstate(over="ignore"):
        assert np.isfinite(cdt(ok)) and cdt(ok) == np.finfo(cdt).max and np.isinf(cdt(over))
    top = np.asarray(np.finfo(cdt).max, src)
    rng = np.random.default_rng(3)
    yb, xb = (rng.random(12) < 0.5).astype(pred_dtype), rng.normal(0, 1, 12).astype(pred_dtype)
    yc, xc = rng.integers(0, 3, 6), rng.normal(0, 1, (6, 3)).astype(pred_dtype)

    def weights(v, how):
        w = np.ones(24 if how == "strided" else 12 if how != "repeat" else 1, src)
        w[{"strided": 6, "repeat": 0}.get(how, 3)] = v
        return w[::2] if how == "strided" else w
    for how in ("contiguous", "strided", "repeat"):
        calls = [("binary_cross_entropy", (yb, xb), lambda v: {"sample_weight": weights(v, how)}, "sample_weight"),
                 ("focal_loss", (yc, xc), lambda v: {"sample_weight": weights(v, how)[:6]}, "sample_weight")]
        if how == "contiguous":
            calls += [("binary_cross_entropy", (yb, xb), lambda v: {"pos_weight": np.full(12, v)}, "pos_weight"),
                      ("cross_entropy", (yc, xc), lambda v: {"class_weight": np.r_[1.0, v, 1.0].astype(src)},
                       "class_weight")]
        for name, args, kw, arg in calls:
            opts = {"from_logits": True, "grad": True, "reduction": "sum"}
            if src == np.longdouble and arg in ("pos_weight", "class_weight"):
                continue   # (checked as float64 host arrays: a long double one is rounded on the way in)
            got = getattr(xentc, name)(*args, **kw(ok), **opts)
            want = getattr(xentc, name)(*args, **kw(top), **opts)
            np.testing.assert_array_equal(got.loss, want.loss)
            np.testing.assert_array_equal(got.grad, want.grad)
            msg = check_raises(ValueError, arg, call(name, *args, **kw(over), **opts))
            assert f"overflows {np.dtype(cdt).name}" in msg, msg


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_empty_with_empty_pos_weight(dtype):
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    r = xentc.binary_cross_entropy(np.zeros((3, 0)), np.zeros((3, 0), dtype), pos_weight=np.zeros(0), grad=True)
    assert float(r.loss) == 0.0 and r.grad.shape == (3, 0)


@pytest.mark.parametrize("name", FUNCS)
def test_out_overlapping_the_callers_sample_weight(name):
    """sample_weight is broadcast (a copy) before use: out= must still not overlap the caller's."""
    y, x = _valid(name)
    w = np.full(6, 2.0)
    before = w.copy()
    sw = w[:1]   # broadcast to every sample
    check_raises(ValueError, "out", lambda: getattr(xentc, name)(y, x, sample_weight=sw, reduction="none",
                                                                 out=(w, None, None)))
    np.testing.assert_array_equal(w, before)


@pytest.mark.parametrize("pred_dtype", [np.float32, np.float16])
def test_values_checked_before_a_narrowing_cast(pred_dtype):
    """float64 labels and weights beside float32 (or float16) y_pred are checked as given, as a
    float64 y_pred would have them: a cast must not round an error away (1 + 1e-10 -> 1.0,
    -1e-50 -> -0.0) or turn a finite weight into inf (1e300)."""
    x = np.full((4, 3), 0.5)
    for xd in (x, x.astype(pred_dtype)):
        yb = np.zeros((4, 3))
        yb[2, 1] = 1 + 1e-10
        check_raises(ValueError, "y_true", call("binary_cross_entropy", yb, xd), value=1 + 1e-10, index=7)
        yb[2, 1] = -1e-300
        check_raises(ValueError, "y_true", call("binary_focal_loss", yb, xd), value=-1e-300, index=7)
        ys = np.full((4, 3), 1 / 3)
        ys[3, 2] = 1 + 1e-12
        check_raises(ValueError, "y_true", call("cross_entropy", ys, xd), value=1 + 1e-12, index=11)
        sw = np.ones(4)
        sw[1] = -1e-50
        check_raises(ValueError, "sample_weight", call("cross_entropy", np.zeros(4, int), xd, sample_weight=sw),
                     value=-1e-50, index=1)
    sw = np.ones(4)
    sw[3] = 1e300
    msg = check_raises(ValueError, "sample_weight",
                       call("focal_loss", np.zeros(4, int), x.astype(pred_dtype), sample_weight=sw), value=1e300,
                       index=3)
    assert "overflows float32" in msg
    assert np.isfinite(xentc.focal_loss(np.zeros(4, int), x, sample_weight=sw))   # float64: a valid weight


@pytest.mark.parametrize("n_threads", [1, 2])
def test_narrowing_checked_and_cast_in_one_pass(n_threads):
    """float64 weights and soft labels beside float32 y_pred, long enough for many blocks of the
    kernels' one-pass check-and-cast: the results of the values cast first, and the first bad
    value named, as given, wherever it lies (a later one in another block is not)."""
    rng = np.random.default_rng(5)
    n = 200_003
    x = rng.normal(0, 2, n).astype(np.float32)
    y = (rng.random(n) < 0.4).astype(np.float32)
    sw = rng.random(n) * 3
    kw = {"from_logits": True, "grad": True, "n_threads": n_threads}
    for red in ("none", "mean"):
        a = xentc.binary_cross_entropy(y, x, sample_weight=sw, reduction=red, **kw)
        b = xentc.binary_cross_entropy(y, x, sample_weight=sw.astype(np.float32), reduction=red, **kw)
        np.testing.assert_array_equal(a.loss, b.loss)
        np.testing.assert_array_equal(a.grad, b.grad)
    for i, v in ((150_001, 1e300), (99_999, -1e-50), (70_000, np.nan), (1, -1.0)):
        bad = sw.copy()
        bad[i] = v
        bad[-1] = -5.0   # later: not the one named
        msg = check_raises(ValueError, "sample_weight", call("binary_cross_entropy", y, x, sample_weight=bad, **kw),
                           value=v, index=i)
        assert ("overflows float32" in msg) == (v == 1e300), msg
    X = rng.normal(0, 2, (n // 100, 100)).astype(np.float32)
    ys = rng.dirichlet(np.ones(100), n // 100)
    a = xentc.cross_entropy(ys, X, reduction="none", **kw)
    b = xentc.cross_entropy(ys.astype(np.float32), X, reduction="none", **kw)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.grad, b.grad)
    ys[1500, 7] = 1 + 1e-12
    ys[1900, 3] = 2.0
    check_raises(ValueError, "y_true", call("cross_entropy", ys, X, **kw), value=1 + 1e-12, index=150_007)
