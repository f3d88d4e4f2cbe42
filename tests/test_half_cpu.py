"""float16 and bfloat16 y_pred on the CPU (xentc._half_cpu): the float32 kernels a chunk of rows at a
time, with no full-size float32 copy. Chunks are made small here so that every case spans many;
the results must be those of converting everything to float32 first and rounding the gradient
once: per-row results bit for bit, the reduced loss to float32 rounding (its chunk sums are added
in another order), the first error with its global index, and memory bounded by the chunk."""
import zlib

import numpy as np
import pytest

import xentc
from xentc import _half_cpu

DTYPES = [np.dtype(np.float16)]
try:
    import ml_dtypes

    DTYPES.append(np.dtype(ml_dtypes.bfloat16))
except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
    pass
IDS = [d.name for d in DTYPES]


class _Counting:
    """xentc._kernels with its binary and softmax calls counted."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __getattr__(self, name):
        fn = getattr(self.real, name)
        if name not in ("binary", "softmax"):
            return fn

        def counted(*args, **kwargs):
            self.calls += 1
            return fn(*args, **kwargs)

        return counted


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 96 elements (at least 4 rows); yields the kernels' call counter."""
    monkeypatch.setattr(_half_cpu, "CHUNK_ELEMS", 96)
    monkeypatch.setattr(_half_cpu, "MIN_ROWS", 4)
    counting = _Counting(_half_cpu._kernels)
    monkeypatch.setattr(_half_cpu, "_kernels", counting)
    return counting


def _rng(*parts):
    return np.random.default_rng(zlib.crc32("|".join(map(str, parts)).encode()))


def _f32(a):
    return a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.itemsize == 2 else a


def _same(got, ref, dtype, reduction):
    """got (16-bit input) against ref (the same values in float32): losses, gradients, Hessians."""
    if reduction == "none":
        np.testing.assert_array_equal(got.loss, ref.loss)
    else:
        np.testing.assert_allclose(got.loss, ref.loss, rtol=2e-7, atol=0)
    for g, r in ((got.grad, ref.grad), (got.hess, ref.hess)):
        assert g.dtype == dtype and g.shape == r.shape
        np.testing.assert_array_equal(g.view(np.uint16), r.astype(dtype).view(np.uint16))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")   # float16 Hessians of focal
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("case", ["int", "soft", "soft32", "axis0", "weights", "focal_probs"])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_categorical_in_chunks(small_chunks, dtype, case, reduction):
    rng = _rng("cat", dtype.name, case, reduction)
    N, C = 53, 7
    x = rng.normal(0, 3, (N, C))
    y = rng.integers(0, C, N)
    kw = {"from_logits": True}
    if case == "soft":
        y = rng.dirichlet(np.ones(C), N).astype(dtype)
    elif case == "soft32":
        y = rng.dirichlet(np.ones(C), N).astype(np.float32)
    elif case == "axis0":   # classes along axis 0: rows (o, k) with inner > 1
        x = rng.normal(0, 3, (C, N, 3))
        y = rng.integers(0, C, (N, 3))
        kw["axis"] = 0
    elif case == "weights":
        y[::5] = -100
        kw.update(ignore_index=-100, sample_weight=rng.integers(0, 5, N) / 4, class_weight=rng.uniform(0.5, 2, C),
                  label_smoothing=0.1)
    elif case == "focal_probs":
        x = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
        kw = {"gamma": 2.0, "from_logits": False}
    x = x.astype(dtype)
    fn = xentc.focal_loss if case == "focal_probs" else xentc.cross_entropy
    got = fn(y, x, reduction=reduction, grad=True, hess=True, **kw)
    assert small_chunks.calls >= 4   # many chunks
    ref = fn(_f32(y), _f32(x), reduction=reduction, grad=True, hess=True, **kw)
    _same(got, ref, dtype, reduction)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("case", ["float_labels", "labels_like_x", "int_labels", "pos_weight_vector", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_binary_in_chunks(small_chunks, dtype, case, reduction):
    rng = _rng("bin", dtype.name, case, reduction)
    shape = (41, 7)   # 7 does not divide the chunk of 96: pos_weight's column stays aligned
    x = rng.normal(0, 3, shape)
    y = rng.integers(0, 5, shape) / 4
    kw = {"from_logits": True, "sample_weight": rng.integers(0, 5, shape) / 4}
    if case == "labels_like_x":
        y = y.astype(dtype)
    elif case == "int_labels":
        y = rng.integers(0, 2, shape)
    elif case == "pos_weight_vector":
        kw["pos_weight"] = rng.uniform(0.5, 3, shape[1])
    x = x.astype(dtype)
    if case == "strided":
        x, y = np.asfortranarray(x)[:, ::-1], y[::-1]
    got = xentc.binary_cross_entropy(y, x, reduction=reduction, grad=True, hess=True, **kw)
    assert small_chunks.calls >= 3
    ref = xentc.binary_cross_entropy(_f32(y), _f32(x), reduction=reduction, grad=True, hess=True, **kw)
    _same(got, ref, dtype, reduction)


LABEL_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int64, np.uint64, np.float32, np.float64]


@pytest.mark.parametrize("ldtype", LABEL_DTYPES, ids=[np.dtype(t).name for t in LABEL_DTYPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_binary_labels_of_any_dtype_in_chunks(small_chunks, dtype, ldtype):
    """Binary labels of bool, integer, float32 and float64 dtypes beside 16-bit y_pred go to the
    kernels a chunk at a time as they are (no cast of the whole array first): the results of the
    labels converted to float32 first, with weights, pos_weight and focal options; and the first bad
    label, in a later chunk, named by its value as given and its global index."""
    rng = _rng("binlab", dtype.name, np.dtype(ldtype).name)
    shape = (41, 7)
    y = rng.integers(0, 2, shape)
    if np.dtype(ldtype).kind == "f":
        y = np.where(rng.random(shape) < 0.3, rng.random(shape), y)
    yl = y.astype(ldtype)
    x = rng.normal(0, 3, shape).astype(dtype)
    sw = rng.integers(0, 5, shape) / 4
    for fn, kw in ((xentc.binary_cross_entropy, {"sample_weight": sw, "pos_weight": rng.uniform(0.5, 3, 7)}),
                   (xentc.binary_focal_loss, {"gamma": 2.0, "alpha": 0.25})):
        for reduction in ("none", "mean"):
            calls = small_chunks.calls
            got = fn(yl, x, from_logits=True, reduction=reduction, grad=True, hess=True, **kw)
            assert small_chunks.calls - calls >= 3
            ref = fn(yl.astype(np.float32), _f32(x), from_logits=True, reduction=reduction, grad=True, hess=True,
                     **kw)
            _same(got, ref, dtype, reduction)
            # every other column of a label matrix: read at its stride, the same bits
            ys = np.repeat(yl, 2, axis=1)[:, ::2]
            _same(fn(ys, x, from_logits=True, reduction=reduction, grad=True, hess=True, **kw), ref, dtype,
                  reduction)
    bad = yl.copy()
    if np.dtype(ldtype) == np.bool_:
        return
    bad.flat[200] = 1 + 1e-10 if ldtype == np.float64 else 2
    bad.flat[250] = 3
    value = "1.0000000001" if ldtype == np.float64 else "2.0" if ldtype == np.float32 else "2"
    for yb in (bad, np.repeat(bad, 2, axis=1)[:, ::2]):
        msg = _error(xentc.binary_cross_entropy, yb, x, from_logits=True, grad=True)
        assert msg == f"y_true: label {value} at index 200 is outside [0, 1]", msg


ALLOC_SCRIPT = """
import sys, tracemalloc
import numpy as np
import xentc
dtype = np.float16 if sys.argv[1] == "float16" else np.dtype(__import__("ml_dtypes").bfloat16)
n = 1 << 23
x = np.zeros(n, dtype=dtype)
y = np.zeros(n, dtype=np.dtype(sys.argv[2]))
if sys.argv[3] == "column":
    y = np.zeros((n, 2), dtype=y.dtype)[:, 1]
xentc.binary_cross_entropy(y[:64], x[:64], from_logits=True)   # kernels, thread pool, small buffers
xentc.buffer_cache(0)
tracemalloc.start()
xentc.binary_cross_entropy(y, x, from_logits=True)
print(tracemalloc.get_traced_memory()[1])
"""


@pytest.mark.parametrize("layout", ["contiguous", "column"])
@pytest.mark.parametrize("ldtype", ["bool", "int64", "float64"])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_binary_labels_are_not_cast_whole(dtype, ldtype, layout):
    """No array of y_pred's size is made for labels of another dtype, contiguous or a column of a
    matrix (2^23 elements: a float16 copy of the labels is 16 MiB, a float32 one 32 MiB): the peak
    of traced allocations stays at the chunk's scratch (CHUNK_ELEMS float32, 4 MiB) and small
    buffers."""
    import subprocess
    import sys

    peak = int(subprocess.run([sys.executable, "-c", ALLOC_SCRIPT, dtype.name, ldtype, layout], check=True,
                              capture_output=True, text=True).stdout)
    assert peak <= _half_cpu.CHUNK_ELEMS * 4 + (2 << 20), peak


WEIGHT_ALLOC_SCRIPT = """
import sys, tracemalloc
import numpy as np
import ml_dtypes
import xentc
dtype = np.dtype(getattr(ml_dtypes, sys.argv[1], None) or sys.argv[1])
n = 1 << 23
x = np.zeros((n // 64, 64), dtype=dtype)
y = np.zeros(x.shape, dtype=np.float32)
form, wdtype = sys.argv[2], np.dtype(getattr(ml_dtypes, sys.argv[3], None) or sys.argv[3])
w = {"scalar": np.asarray(2.0, wdtype), "row": np.full((n // 64, 1), 2.0, wdtype), "element": np.full(x.shape, 2.0, wdtype)}[form]
xentc.binary_cross_entropy(y[:64], x[:64], from_logits=True, sample_weight=w[:64] if w.ndim else w)   # kernels, pool
xentc.buffer_cache(0)
tracemalloc.start()
xentc.binary_cross_entropy(y, x, from_logits=True, sample_weight=w, grad=True)
print(tracemalloc.get_traced_memory()[1])
"""


@pytest.mark.parametrize("form,wdtype", [("scalar", "float64"), ("row", "float64"), ("element", "float16"),
                                         ("element", "bfloat16"), ("element", "float64")])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_binary_weights_are_not_cast_whole(dtype, form, wdtype):
    """No weight array of y_pred's size is made beside 16-bit y_pred of 2^23 elements (a float32
    one is 32 MiB): not for a scalar or a weight per row, which the kernels read once, nor for
    weights of 16 bits or float64 given per element, which they read as they are. Traced: the
    16-bit gradient (16 MiB), the chunk's scratch (CHUNK_ELEMS float32 for x and the gradient)
    and small buffers."""
    import subprocess
    import sys

    peak = int(subprocess.run([sys.executable, "-c", WEIGHT_ALLOC_SCRIPT, dtype.name, form, wdtype], check=True,
                              capture_output=True, text=True).stdout)
    assert peak <= (1 << 23) * 2 + _half_cpu.CHUNK_ELEMS * 8 + (2 << 20), peak


def _error(fn, *args, **kw):
    with pytest.raises(ValueError) as info:
        fn(*args, **kw)
    return str(info.value)


WEIGHT_DTYPES = [np.dtype(np.float32), np.dtype(np.float64)] + DTYPES
WEIGHT_SHAPES = {"element": (23, 7, 5), "scalar": (), "row": (23, 1, 1), "middle": (1, 7, 1), "last": (5,),
                 "two": (7, 5)}


@pytest.mark.parametrize("form", list(WEIGHT_SHAPES))
@pytest.mark.parametrize("wdtype", WEIGHT_DTYPES, ids=[d.name for d in WEIGHT_DTYPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_binary_weights_in_chunks(small_chunks, dtype, wdtype, form):
    """Binary sample weights of any float dtype (16-bit ones too) and any broadcast beside 16-bit
    y_pred, read a chunk at a time as they are (repeating ones once, each chunk placed in their
    pattern): the bits of the call with the weights converted to float32 and broadcast first, the
    reduced loss too (the same chunks), with pos_weight, focal and probabilities."""
    rng = _rng("binw", dtype.name, wdtype.name, form)
    shape = (23, 7, 5)   # 805 elements: chunks of 95 (a multiple of pos_weight's 5) cut rows and periods
    x = rng.normal(0, 3, shape).astype(dtype)
    p = rng.uniform(0.02, 0.98, shape).astype(dtype)
    y = rng.integers(0, 5, shape) / 4
    w = rng.uniform(0.1, 3, WEIGHT_SHAPES[form]).astype(wdtype)
    conv = np.ascontiguousarray(np.broadcast_to(w.astype(np.float32), shape))
    for fn, pred, kw in ((xentc.binary_cross_entropy, x, {"from_logits": True, "pos_weight": rng.uniform(0.5, 3, 5)}),
                         (xentc.binary_focal_loss, x, {"from_logits": True, "gamma": 2.0, "alpha": 0.25}),
                         (xentc.binary_focal_loss, p, {"gamma": 1.5})):
        for reduction in ("none", "mean"):
            calls = small_chunks.calls
            got = fn(y, pred, reduction=reduction, grad=True, hess=True, sample_weight=w, **kw)
            assert small_chunks.calls - calls >= 8
            ref = fn(y, pred, reduction=reduction, grad=True, hess=True, sample_weight=conv, **kw)
            for g, r in zip(got, ref):
                np.testing.assert_array_equal(np.atleast_1d(g).view(np.uint8), np.atleast_1d(r).view(np.uint8))


@pytest.mark.parametrize("wdtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)] + DTYPES,
                         ids=["float32", "float64"] + IDS)
def test_bad_16bit_weights(dtype, wdtype):
    """A negative, NaN or infinite 16-bit weight, checked as it is read: the message of the same
    weights in float32, naming the first bad one by its global index, whatever the chunk."""
    x = np.zeros((60, 5), dtype)
    y = np.zeros((60, 5))
    for bad in (-1.0, np.nan, np.inf, -0.0):
        for wshape in ((60, 5), (60, 1)):
            w = np.ones(wshape, wdtype)
            w[37, 0] = bad
            w[50, 0] = -2.0
            want = _error(xentc.binary_cross_entropy, y, x, from_logits=True, sample_weight=w.astype(np.float32))
            assert _error(xentc.binary_cross_entropy, y, x, from_logits=True, sample_weight=w) == want
            assert f"at index {5 * (37 if bad != 0 else 50)} " in want, want   # flat, as given (-0.0 is valid)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_first_error_in_a_later_chunk(small_chunks, dtype):
    """The first bad value of the whole array, from whichever chunk holds it: the message of the
    float32 path on the same values (the index is global)."""
    x = np.full((60, 5), 0.2)
    x[37, 3] = 1.5
    x[50, 0] = -1.0
    y = np.zeros(60, dtype=np.int64)
    msg = _error(xentc.cross_entropy, y, x.astype(dtype), grad=True)
    assert msg == _error(xentc.cross_entropy, y, x.astype(np.float32), grad=True) and "1.5 at index 188" in msg
    y[44] = 9
    z = np.zeros((60, 5))
    msg = _error(xentc.cross_entropy, y, z.astype(dtype), from_logits=True, reduction="sum")
    assert msg == _error(xentc.cross_entropy, y, z.astype(np.float32), from_logits=True, reduction="sum")
    assert "label 9 at index 44" in msg
    yb = np.zeros((60, 5))
    yb[33, 1] = 2.0
    msg = _error(xentc.binary_cross_entropy, yb.astype(dtype), z.astype(dtype), from_logits=True, grad=True)
    assert msg == _error(xentc.binary_cross_entropy, yb.astype(np.float32), z.astype(np.float32), from_logits=True,
                         grad=True)
    assert "label 2.0 at index 166" in msg


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_out_buffers_in_chunks(small_chunks, dtype):
    rng = _rng("out", dtype.name)
    x = rng.normal(0, 2, (40, 6)).astype(dtype)
    y = rng.integers(0, 6, 40)
    ref = xentc.cross_entropy(y, x, from_logits=True, reduction="none", grad=True, hess=True)
    bufs = (np.empty(40, np.float32), np.empty(x.shape, dtype), np.empty(x.shape, dtype))
    res = xentc.cross_entropy(y, x, from_logits=True, reduction="none", grad=True, hess=True, out=bufs)
    for got, want, buf in zip(res, ref, bufs):
        assert got is buf
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    with pytest.raises(ValueError, match=f"^out: the grad array has dtype float32, expected {dtype.name}"):
        xentc.cross_entropy(y, x, from_logits=True, grad=True, out=(None, np.empty(x.shape, np.float32), None))


MEMORY_SCRIPT = """
import resource, sys
import numpy as np
import xentc
dtype = np.float16 if sys.argv[1] == "float16" else np.dtype(__import__("ml_dtypes").bfloat16)
x = np.ones((2048, 8192), dtype=dtype)   # 32 MiB, pages touched
y = np.zeros(2048, dtype=np.int64)
xentc.cross_entropy(y[:64], x[:64], from_logits=True, grad=True)   # kernels, thread pool, small buffers
xentc.buffer_cache(0)   # no recycled memory: every allocation is new
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = xentc.cross_entropy(y, x, from_logits=True, grad=True)
assert r.grad.dtype == dtype
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_memory_is_bounded_by_the_chunk(dtype):
    """Growth of the peak resident memory of a fresh process over a 16-bit call: its 16-bit gradient
    and the float32 scratch of a chunk, not float32 copies of y_pred and of the gradient (each
    twice the input's bytes: converting first grew it by about 2 + 2 + 1 input sizes)."""
    import subprocess
    import sys

    grown = int(subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, dtype.name], check=True, capture_output=True,
                               text=True).stdout)
    nbytes = 2048 * 8192 * 2
    chunk = _half_cpu.CHUNK_ELEMS * 4
    assert grown <= nbytes + 2 * chunk + (4 << 20), grown   # the gradient, x and grad scratch, slack


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_16bit_loads_and_stores(dtype):
    """The kernels' conversions against NumPy's (float16) and ml_dtypes' (bfloat16): every 16-bit
    value loaded exactly; float32 patterns of every sign and exponent (random mantissas, the ties
    of both formats, overflow, subnormals) stored rounded to nearest even; NaN stays NaN."""
    from xentc import _kernels

    bf = dtype != np.float16
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)
    got = np.empty(every.size, np.float32)
    _kernels.load16(every, got, bf, None)
    want = every.astype(np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))   # NaN payloads too
    rng = _rng("store16", dtype.name)
    hi = np.repeat(np.arange(1 << 16, dtype=np.uint32), 8) << 16
    bits = np.concatenate([hi | rng.integers(0, 1 << 16, hi.size, dtype=np.uint32), hi, hi | 0x8000, hi | 0xFFFF,
                           (np.arange(1 << 19, dtype=np.uint32) << 13) | 0x1000])
    src = bits.view(np.float32)
    got16 = np.empty(src.size, dtype)
    _kernels.store16(src, got16, bf, None)
    with np.errstate(all="ignore"):
        want16 = src.astype(dtype)
    nan = np.isnan(src)
    np.testing.assert_array_equal(got16.view(np.uint16)[~nan], want16.view(np.uint16)[~nan])
    assert np.isnan(got16[nan].astype(np.float32)).all()
    np.testing.assert_array_equal(got16.view(np.uint16)[nan] >> 15, bits[nan] >> 31)   # the sign


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("seed", range(4))
def test_random_calls_match_float32(seed):
    """Random calls (tests/inputs.py's random_call: every function, option and reduction, labels
    of several dtypes, weights at the edges of the range, a few bad values) on float16 and
    bfloat16 y_pred against the same values in float32 (16-bit labels too): the same error, or
    per-sample losses with the same bits, the reduced loss to float32 rounding, and derivatives
    that are the float32 ones rounded once."""
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from inputs import outcome, random_call

    rng = np.random.default_rng(700 + seed)
    for _ in range(150):
        f, y, x, kw, dtype = random_call(rng, [d.type for d in DTYPES])
        y32 = y.astype(np.float32) if y.dtype == x.dtype else y
        got, want = outcome(f, y, x, **kw), outcome(f, y32, x.astype(np.float32), **kw)
        what = (f.__name__, x.dtype, x.shape, kw)
        if isinstance(want, Exception) or isinstance(got, Exception):
            assert type(got) is type(want) and str(got) == str(want), (what, got, want)
            continue
        if not isinstance(want, tuple):
            got, want = (got, None, None), (want, None, None)
        loss, ref = np.asarray(got[0]), np.asarray(want[0])
        assert loss.dtype == ref.dtype == np.float32, what
        if kw["reduction"] == "none" or np.array_equal(loss, ref, equal_nan=True):
            np.testing.assert_array_equal(loss, ref, err_msg=str(what))
        else:
            np.testing.assert_allclose(loss, ref, rtol=4e-7, atol=0, err_msg=str(what))
        for g, r in zip(got[1:], want[1:]):
            if r is None:
                assert g is None, what
                continue
            with np.errstate(all="ignore"):
                r16 = r.astype(x.dtype)
            assert g.dtype == x.dtype and g.shape == r.shape, what
            np.testing.assert_array_equal(g.view(np.uint16), r16.view(np.uint16), err_msg=str(what))
