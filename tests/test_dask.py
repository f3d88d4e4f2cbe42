"""xentc.dask on a distributed.LocalCluster of worker processes, against the in-memory result
(within 4 ulp); chunks of the derivatives; the memory-mapped example larger than a worker."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from inputs import make_binary, make_categorical, outcome, random_call, weights  # noqa: E402

import xentc  # noqa: E402
import xentc.dask as xd  # noqa: E402

WORKER_MEMORY = "200MB"
ULP = 4


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, memory_limit=WORKER_MEMORY,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def assert_ulp(actual, expected, ulp=ULP):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    tol = ulp * np.spacing(np.abs(expected))
    with np.errstate(invalid="ignore"):   # (inf - inf: equal, found by the first test)
        bad = ~((actual == expected) | (np.abs(actual.astype(np.float64) - expected) <= tol))
    assert not bad.any(), (actual[bad][:5], expected[bad][:5])


FUNCS = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]


def case(name, dtype, seed):
    """Inputs and options with sample weights (zeros included), and ignored samples for the
    categorical losses; chunk sizes that do not divide the arrays."""
    rng = np.random.default_rng(seed)
    if name.startswith("binary"):
        y, x = make_binary(rng, (1003, 3), dtype, True, "soft")
        sw = weights(rng, (1003, 1))
        opts = {"pos_weight": np.array([0.5, 1.0, 2.0])} if name == "binary_cross_entropy" else {"gamma": 2.0,
                                                                                                  "alpha": 0.3}
        chunks = ((250, 400, 353), (2, 1))
    else:
        y, x = make_categorical(rng, (1003, 6), dtype, True, "int")
        y[::7] = -1
        sw = weights(rng, (1003,))
        opts = {"ignore_index": -1, "class_weight": np.arange(1, 7) / 4}
        if name == "focal_loss":
            opts["gamma"] = 1.5
        chunks = ((250, 400, 353), (4, 2))  # the class axis in two chunks
    return y, x, sw, opts, chunks


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_in_memory(client, name, dtype, reduction):
    y, x, sw, opts, chunks = case(name, dtype, seed=FUNCS.index(name))
    expected = getattr(xentc, name)(y, x, from_logits=True, sample_weight=sw, reduction=reduction, grad=True,
                                    hess=True, **opts)
    xx = da.from_array(x, chunks=chunks)
    yy = da.from_array(y, chunks=137)  # any chunks: rechunked to match y_pred
    r = getattr(xd, name)(yy, xx, from_logits=True, sample_weight=da.from_array(sw, chunks=300),
                          reduction=reduction, grad=True, hess=True, **opts)
    assert isinstance(r.loss, da.Array) and isinstance(r.grad, da.Array) and isinstance(r.hess, da.Array)
    assert r.grad.chunks == xx.chunks and r.hess.chunks == xx.chunks
    loss, grad, hess = client.compute([r.loss, r.grad, r.hess], sync=True)
    assert_ulp(loss, expected.loss)
    assert_ulp(grad, expected.grad)
    assert_ulp(hess, expected.hess)


def test_loss_only_and_class_axis(client):
    rng = np.random.default_rng(5)
    y, x = make_categorical(rng, (40, 5, 30), np.float32, True, "soft", axis=1)
    xx = da.from_array(x, chunks=(16, 5, 11))
    loss = xd.focal_loss(y, xx, gamma=2.0, from_logits=True, axis=1)
    assert isinstance(loss, da.Array) and loss.shape == ()
    assert_ulp(client.compute(loss, sync=True), xentc.focal_loss(y, x, gamma=2.0, from_logits=True, axis=1))
    none = xd.cross_entropy(y, xx, from_logits=True, axis=1, reduction="none")
    assert none.chunks == ((16, 16, 8), (11, 11, 8))
    assert_ulp(client.compute(none, sync=True), xentc.cross_entropy(y, x, from_logits=True, axis=1,
                                                                    reduction="none"))


def test_every_sample_ignored(client):
    x = da.ones((10, 3), chunks=4)
    r = xd.cross_entropy(np.full(10, -1), x, from_logits=True, ignore_index=-1, grad=True)
    loss, grad = client.compute([r.loss, r.grad], sync=True)
    assert loss == 0.0 and not grad.any()


def test_errors():
    x = da.zeros((6, 3), chunks=2)
    with pytest.raises(ValueError, match="y_true: shape"):
        xd.cross_entropy(np.zeros(5, dtype=int), x)
    with pytest.raises(ValueError, match="sample_weight"):
        xd.binary_cross_entropy(np.zeros((6, 3)), x, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        xd.binary_cross_entropy(np.zeros((6, 3)), x, reduction="avg")
    with pytest.raises(ValueError, match="axis"):
        xd.focal_loss(np.zeros(6, dtype=int), x, axis=2)
    # data errors surface from the kernels when the chunk is computed, naming the argument
    with pytest.raises(ValueError, match="y_true: label 3"):
        xd.cross_entropy(np.array([0, 1, 3, 0, 0, 0]), x, from_logits=True).compute(scheduler="sync")


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_mean_derivatives_scaled_in_the_kernel(name, dtype):
    """A mean's derivatives come out of the kernel scaled by the whole array's denominator, as in
    memory: the same bits (weights in quarters, so every chunk's denominator and their sum are
    exact), also where a chunk's summed derivatives would overflow the dtype."""
    y, x, sw, opts, chunks = case(name, dtype, seed=10 + FUNCS.index(name))
    # tiny probabilities: a Hessian near 1/p^2 summed over a chunk overflows, its mean does not
    lo = {np.dtype(np.float16): -12.0, np.dtype(np.float32): -45.0, np.dtype(np.float64): -300.0}[np.dtype(dtype)]
    x = x.copy()
    x.reshape(-1)[::5] = dtype(lo)
    for kw in ({}, {"sample_weight": sw}):
        expected = getattr(xentc, name)(y, x, from_logits=True, grad=True, hess=True, **kw, **opts)
        r = getattr(xd, name)(y, da.from_array(x, chunks=chunks), from_logits=True, grad=True, hess=True, **kw,
                              **opts)
        assert r.grad.dtype == x.dtype and r.hess.dtype == x.dtype
        loss, grad, hess = dask.compute(r.loss, r.grad, r.hess, scheduler="sync")
        assert_ulp(loss, expected.loss)
        np.testing.assert_array_equal(grad, expected.grad)
        np.testing.assert_array_equal(hess, expected.hess)


def test_overflowing_chunk_sums():
    """float16: a gradient of -1e5 per element is not in float16, its mean is (found by an audit:
    chunk sums then a scale gave -inf); float32: a Hessian of 1e40 per element."""
    N = 1000
    p16 = np.full(N, 1e-5, np.float16)
    want = xentc.binary_cross_entropy(np.ones(N, np.float16), p16, grad=True).grad
    got = xd.binary_cross_entropy(np.ones(N, np.float16), da.from_array(p16, chunks=300), grad=True).grad
    np.testing.assert_array_equal(got.compute(scheduler="sync"), want)
    assert np.isfinite(want).all()
    p32 = np.full(N, 1e-20, np.float32)
    want = xentc.binary_cross_entropy(np.ones(N, np.float32), p32, hess=True).hess
    got = xd.binary_cross_entropy(np.ones(N, np.float32), da.from_array(p32, chunks=300), hess=True).hess
    np.testing.assert_array_equal(got.compute(scheduler="sync"), want)
    assert np.isfinite(want).all()


def test_bfloat16_dtype():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    z = np.linspace(-3, 3, 8).astype(ml_dtypes.bfloat16)
    r = xd.binary_cross_entropy(np.ones(8, np.float32), da.from_array(z, chunks=3), from_logits=True, grad=True)
    assert r.grad.dtype == z.dtype
    got = r.grad.compute(scheduler="sync")
    assert got.dtype == z.dtype
    want = xentc.binary_cross_entropy(np.ones(8, np.float32), z, from_logits=True, grad=True).grad
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


def _message(call):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    return type(info.value), str(info.value)


def test_error_indices_count_in_the_whole_argument():
    """The flat index of a bad value as the in-memory call reports it, whatever the chunk (one bad
    value a case: where chunks hold several, the one reported is that of the first chunk to fail)."""
    rng = np.random.default_rng(3)
    x2 = rng.normal(size=(10, 3))
    lab = np.zeros(10, int)
    lab[7] = 9
    lab4 = np.zeros((4, 5), int)
    lab4[2, 3] = 5
    x4 = rng.normal(size=(4, 5, 3))
    yb = np.zeros((6, 4))
    yb[4, 1] = 1.5
    sw = np.ones(10)
    sw[8] = -1.0
    xp = np.full((10, 3), 0.5)
    xp[9, 2] = 1.5
    cases = [
        (xentc.cross_entropy, xd.cross_entropy, (lab, x2), {"from_logits": True}, {"chunks": 3}),
        (xentc.cross_entropy, xd.cross_entropy, (lab4, x4), {"from_logits": True}, {"chunks": (3, 2, 3)}),
        (xentc.focal_loss, xd.focal_loss, (lab4.T.copy(), x4.transpose(2, 1, 0).copy()),
         {"from_logits": True, "axis": 0}, {"chunks": (3, 2, 3)}),
        (xentc.binary_cross_entropy, xd.binary_cross_entropy, (yb, np.zeros((6, 4))), {}, {"chunks": (4, 3)}),
        (xentc.cross_entropy, xd.cross_entropy, (np.zeros(10, int), x2), {"sample_weight": sw, "from_logits": True},
         {"chunks": 3}),
        (xentc.cross_entropy, xd.cross_entropy, (np.zeros(10, int), xp), {}, {"chunks": (4, 3)}),
    ]
    for mem, lazy, (y, x), kw, ch in cases:
        want = _message(lambda: mem(y, x, grad=True, **kw))
        for red in ("mean", "sum", "none"):
            got = _message(lambda: dask.compute(lazy(y, da.from_array(x, **ch), grad=True, reduction=red, **kw),
                                                scheduler="sync"))
            assert got == want, (red, got, want)


def test_argument_errors_as_in_memory():
    x = da.zeros((6, 3), chunks=2)
    with pytest.raises(TypeError, match="axis: expected an int"):
        xd.cross_entropy(np.zeros(6, dtype=int), x, axis=1.0)
    with pytest.raises(TypeError, match="y_true: class labels of shape"):
        xd.cross_entropy(np.zeros(6), x)
    unknown = x[x[:, 0] >= 0]   # a boolean mask: chunk sizes unknown until computed
    with pytest.raises(ValueError, match="y_pred: its chunk sizes are unknown"):
        xd.cross_entropy(np.zeros(6, dtype=int), unknown)


def load_example():
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "dask_memmap.py"
    if not path.exists():
        pytest.skip("examples/ is not part of this checkout")
    spec = importlib.util.spec_from_file_location("dask_memmap_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_memmap_larger_than_worker_memory(client, tmp_path):
    example = load_example()
    n = 75_000_000  # 300 MB of float32 logits, above the workers' 200 MB limit
    logits_path, labels_path = example.write_example_data(tmp_path, n)
    limit = dask.utils.parse_bytes(WORKER_MEMORY)
    assert logits_path.stat().st_size > limit
    workers = client.scheduler_info()["workers"]
    assert [w["memory_limit"] for w in workers.values()] == [limit, limit]
    loss = client.compute(example.score(logits_path, labels_path), sync=True)
    z = np.load(logits_path, mmap_mode="r")
    y = np.load(labels_path, mmap_mode="r")
    assert_ulp(loss, xentc.binary_cross_entropy(y, z, from_logits=True))
    # a worker above its limit would have been killed and replaced under a new address
    assert set(client.scheduler_info()["workers"]) == set(workers)


def test_weight_sums_beyond_float64_are_refused():
    """Chunks' double sums cannot carry a total weight past the largest double, or near its
    smallest normal, exactly (in memory a power of two is taken out of such weights first): a
    ValueError that says what to do, not an OverflowError, a NaN loss or zero gradients (an audit
    found all three)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 3))
    y = rng.integers(0, 3, 6)
    for w in (1e308, 1e-310):
        sw = np.full(6, w)
        for grad in (False, True):
            r = xd.cross_entropy(y, da.from_array(x, chunks=(1, 3)), sample_weight=sw, grad=grad,
                                 from_logits=True)
            with pytest.raises(ValueError, match="sample_weight: the total weight .* power of two"):
                dask.compute(r, scheduler="sync")
        yb = (x[:, :1] > 0).astype(float)
        r = xd.binary_cross_entropy(yb, da.from_array(x[:, :1], chunks=(2, 1)), sample_weight=np.full((6, 1), w),
                                    grad=True, from_logits=True)
        with pytest.raises(ValueError, match="sample_weight: the total weight"):
            dask.compute(r, scheduler="sync")
    # a sum past the largest double is inf, as in memory
    r = xd.cross_entropy(y, da.from_array(x, chunks=(1, 3)), sample_weight=np.full(6, 1e308), reduction="sum",
                         from_logits=True)
    assert dask.compute(r, scheduler="sync")[0] == np.inf


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("grad", [False, True])
def test_weights_below_float32_range_as_in_memory(reduction, grad):
    """float64 sample and class weights of 2**-160 beside float32 y_pred, which a mean (and a
    chunk's sums) lifts by a power of two before the float32 kernels read them as zeros: the
    whole array's result is the in-memory one. Chunks of reduction="none" once returned the
    lifted losses (1.4 where float32 holds 2**-160 times it as 0)."""
    rng = np.random.default_rng(9)
    x = rng.normal(0, 2, (40, 4)).astype(np.float32)
    y = rng.integers(0, 4, 40)
    y[::5] = -1
    sw = (rng.integers(1, 9, 40) / 4) * 2.0 ** -160
    cw = np.array([1.0, 0.5, 1.75, 0.25]) * 2.0 ** -160
    yb = (x[:, 0] > 0).astype(np.float32)
    pb = (1 / (1 + np.exp(-x[:, 0]))).astype(np.float32)
    pb[np.argmax(yb)] = 0.0
    calls = [(xentc.binary_cross_entropy, xd.binary_cross_entropy, yb, x[:, 0], {"sample_weight": sw}),
             (xentc.cross_entropy, xd.cross_entropy, y, x, {"sample_weight": sw, "ignore_index": -1}),
             (xentc.focal_loss, xd.focal_loss, y, x, {"class_weight": cw, "ignore_index": -1, "gamma": 2.0}),
             (xentc.cross_entropy, xd.cross_entropy, y, x, {"class_weight": cw, "sample_weight": sw,
                                                             "ignore_index": -1}),
             # an infinite loss (probability 0 at a label of 1): the sum of float32's zero weights
             # has it add nothing, a mean of the lifted weights is inf (as in memory)
             (xentc.binary_focal_loss, xd.binary_focal_loss, yb, pb, {"sample_weight": sw, "from_logits": False})]
    for f, fd, yy, xx, kw in calls:
        kw = {"from_logits": True, **kw}
        want = f(yy, xx, reduction=reduction, grad=grad, **kw)
        got = fd(yy, da.from_array(xx, chunks=(15,) + xx.shape[1:]), reduction=reduction, grad=grad,
                 **{k: da.from_array(v, chunks=15) if k == "sample_weight" else v for k, v in kw.items()})
        got = dask.compute(got, scheduler="sync")[0]
        if not grad:
            want, got = (want,), (got,)
        for a, b in zip(got, want):
            if b is None:
                assert a is None
                continue
            assert_ulp(np.asarray(a, dtype=np.asarray(b).dtype), b)
        if reduction == "mean":
            assert want[0] > 0
        if f is xentc.binary_focal_loss and not grad and reduction != "none":
            assert want[0] == (np.inf if reduction == "mean" else 0.0)


@pytest.mark.parametrize("seed", range(8))
def test_random_calls_match_in_memory(seed):
    """Random calls (tests/inputs.py's random_call: every function, option and reduction, labels of
    several dtypes, weights at the edges of the range, a few bad values) on a Dask y_pred of random
    chunks, against the in-memory call: results within 4 ulp with infinities and NaN in the same
    places, or the same error. Where several values are bad, the chunk that fails first names its
    own (docs/integrations.md): then both name an index. Weights whose total the chunks' double sums
    cannot hold are refused with what to do instead. Found a sum of tiny weights that was inf here
    and 0 in memory."""
    rng = np.random.default_rng(300 + seed)
    for _ in range(60):
        f, y, x, kw, dtype = random_call(rng)
        chunks = tuple(int(rng.integers(1, m + 1)) if m else 1 for m in x.shape)
        want = outcome(f, y, x, **kw)
        got = outcome(lambda: dask.compute(getattr(xd, f.__name__)(y, da.from_array(x, chunks=chunks), **kw),
                                           scheduler="sync")[0])
        what = (f.__name__, x.shape, chunks, kw)
        if isinstance(got, Exception) and "for xentc.dask to combine the chunks' sums" in str(got):
            continue
        if isinstance(want, Exception) or isinstance(got, Exception):
            assert type(got) is type(want), (what, got, want)
            assert str(got) == str(want) or ("at index" in str(got) and "at index" in str(want)), (what, got, want)
            continue
        for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            if b is None:
                assert a is None, what
                continue
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype and a.shape == b.shape, what
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            with np.errstate(invalid="ignore"):
                near = np.abs(a.astype(np.float64) - b) <= ULP * np.spacing(np.abs(b))
            assert (same | near).all(), (what, a[~(same | near)][:4], b[~(same | near)][:4])
