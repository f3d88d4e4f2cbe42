"""The buffer cache behind result arrays (xentc._memory, xentc.buffer_cache): recycled memory is
completely overwritten by every kernel, memory that is still referenced is never handed out, and
the limit holds."""
import os
import subprocess
import sys

import numpy as np
import pytest

import xentc
from xentc import _memory

POISON = -7.25e30   # a value no loss or derivative here can take
N = 300_000         # outputs of 1.2 MB (float32) and 2.4 MB: above the 1 MiB threshold of the cache


@pytest.fixture
def cache():
    """An empty cache with the default limit, restored afterwards."""
    limit = xentc.buffer_cache().limit
    xentc.buffer_cache(0)
    xentc.buffer_cache(max(limit, 64 << 20))
    yield
    xentc.buffer_cache(0)
    xentc.buffer_cache(limit)


def poison_blocks(shape, dtype, count):
    """Leave `count` blocks of exactly the size of `shape` x `dtype` in the cache, full of POISON."""
    arrays = [_memory.empty(shape, dtype) for _ in range(count)]
    for a in arrays:
        a.fill(POISON)
    del a, arrays
    assert xentc.buffer_cache().blocks >= count


def from_cache(a):
    """Whether a's memory belongs to a block of the cache (and not to NumPy)."""
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, _memory._Block)


def address(a):
    return a.__array_interface__["data"][0]


rng = np.random.default_rng(7)


def binary_inputs(dtype):
    x = rng.standard_normal(N) * 4
    y = (rng.random(N) < 0.3).astype(float)
    return y.astype(dtype), x.astype(dtype)


def softmax_inputs(rows, C, dtype, soft=False):
    x = (rng.standard_normal((rows, C)) * 3).astype(dtype)
    labels = rng.integers(0, C, rows)
    if soft:
        y = rng.random((rows, C))
        return (y / y.sum(axis=1, keepdims=True)).astype(dtype), x
    return labels, x


CASES = {
    "bce logits": lambda dt: (xentc.binary_cross_entropy, *binary_inputs(dt), dict(from_logits=True)),
    "bce probs weighted": lambda dt: (xentc.binary_cross_entropy, binary_inputs(dt)[0],
                                      (1 / (1 + np.exp(-binary_inputs(dt)[1]))).astype(dt),
                                      dict(sample_weight=rng.random(N).astype(dt), pos_weight=2.0)),
    "bce smoothing": lambda dt: (xentc.binary_cross_entropy, *binary_inputs(dt),
                                 dict(from_logits=True, label_smoothing=0.1)),
    "binary focal": lambda dt: (xentc.binary_focal_loss, *binary_inputs(dt), dict(from_logits=True, alpha=0.25)),
    "ce 10 classes ignore": lambda dt: (xentc.cross_entropy, *softmax_inputs(N // 10, 10, dt),
                                        dict(from_logits=True, ignore_index=3)),
    "ce 1000 classes": lambda dt: (xentc.cross_entropy, *softmax_inputs(N // 1000, 1000, dt),
                                   dict(from_logits=True, class_weight=rng.random(1000).astype(dt))),
    "ce soft labels": lambda dt: (xentc.cross_entropy, *softmax_inputs(N // 100, 100, dt, soft=True),
                                  dict(from_logits=True, label_smoothing=0.05)),
    "ce axis 0": lambda dt: (xentc.cross_entropy, rng.integers(0, 20, N // 20),
                             (rng.standard_normal((20, N // 20)) * 2).astype(dt), dict(from_logits=True, axis=0)),
    "focal 10 classes": lambda dt: (xentc.focal_loss, *softmax_inputs(N // 10, 10, dt),
                                    dict(from_logits=True, ignore_index=0)),
    "focal 1000 classes probs": lambda dt: (xentc.focal_loss, softmax_inputs(N // 1000, 1000, dt)[0],
                                            rng.dirichlet(np.ones(1000), N // 1000).astype(dt), dict(gamma=1.5)),
}


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_recycled_memory_is_overwritten(cache, case, dtype, reduction):
    """Every output element is written by the kernels: results computed in recycled blocks full
    of POISON equal those computed in fresh memory, bit for bit."""
    func, y, x, kw = CASES[case](dtype)
    kw = dict(kw, reduction=reduction, grad=True, hess=True)
    xentc.buffer_cache(0)
    fresh = func(y, x, **kw)
    xentc.buffer_cache(64 << 20)
    # grad, hess and the per-sample losses (when at least 1 MiB) each take one poisoned block
    poison_blocks(x.shape, dtype, 2)
    if reduction == "none" and fresh.loss.nbytes >= 1 << 20:
        poison_blocks(fresh.loss.shape, dtype, 1)
    held = xentc.buffer_cache().held
    again = func(y, x, **kw)
    assert xentc.buffer_cache().held < held, "the call took no block from the cache"
    for name in ("loss", "grad", "hess"):
        np.testing.assert_array_equal(getattr(again, name), getattr(fresh, name), err_msg=name)
        assert not np.any(np.asarray(getattr(again, name)) == POISON)


def test_float16_results_recycle_their_float32_scratch(cache):
    """float16 is computed in float32 a chunk at a time (xentc._half_cpu; here one chunk): the
    float32 scratch of y_pred, labels, gradient and Hessian goes back to the cache, and the next
    call takes it from there."""
    y, x = binary_inputs(np.float16)
    r = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True, hess=True)
    assert r.grad.dtype == np.float16
    info = xentc.buffer_cache()
    assert info.blocks == 4 and info.held >= 4 * N * 4
    r2 = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True, hess=True)
    assert xentc.buffer_cache() == info   # taken, then given back
    np.testing.assert_array_equal(r2.grad, r.grad)
    np.testing.assert_array_equal(r2.hess, r.hess)


def test_freed_memory_is_reused(cache):
    y, x = binary_inputs(np.float64)
    r = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True)
    first = address(r.grad)
    assert xentc.buffer_cache().blocks == 0   # in use, not kept
    del r
    info = xentc.buffer_cache()
    assert info.blocks == 1 and info.held >= N * 8
    r = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True)
    assert address(r.grad) == first
    assert xentc.buffer_cache() == (xentc.buffer_cache().limit, 0, 0)


@pytest.mark.parametrize("keep", ["view", "reshape", "memoryview", "array"])
def test_referenced_memory_is_not_reused(cache, keep):
    """Any surviving reference to a result's memory keeps it out of the cache, however it was taken."""
    y, x = binary_inputs(np.float64)
    r = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True)
    g = r.grad
    kept = {"view": lambda: g[::3], "reshape": lambda: g.reshape(2, -1)[1],
            "memoryview": lambda: memoryview(g), "array": lambda: np.asarray(memoryview(g))}[keep]()
    snapshot = np.array(kept, copy=True)
    del r, g
    assert xentc.buffer_cache().blocks == 0
    for _ in range(3):
        other = xentc.binary_cross_entropy(y, -x, from_logits=True, grad=True)
        assert not np.shares_memory(other.grad, np.asarray(kept))
    np.testing.assert_array_equal(np.asarray(kept), snapshot)
    del other
    before = xentc.buffer_cache().blocks
    del kept   # the last reference: now the block goes back
    assert xentc.buffer_cache().blocks == before + 1


def test_results_are_aligned_contiguous_and_writeable(cache):
    y, x = binary_inputs(np.float32)
    for _ in range(2):   # a fresh block, then a recycled one
        r = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True, hess=True)
        for a in (r.grad, r.hess):
            assert from_cache(a)
            assert a.flags.c_contiguous and a.flags.writeable
            assert address(a) % 64 == 0
            a[0] = 1.0
        del r, a


def test_small_results_are_not_kept(cache):
    y, x = rng.random(1000).round(), rng.standard_normal(1000)
    r = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True)
    assert not from_cache(r.grad)   # plain NumPy memory below the threshold
    del r
    assert xentc.buffer_cache().blocks == 0


def test_limit_bounds_what_is_kept(cache):
    xentc.buffer_cache(3 * N * 8 + 1000)
    y, x = binary_inputs(np.float64)
    results = [xentc.binary_cross_entropy(y, x, from_logits=True, grad=True) for _ in range(6)]
    del results
    info = xentc.buffer_cache()
    assert info.blocks == 3 and info.held <= info.limit
    info = xentc.buffer_cache(N * 8 + 100)   # lowering the limit releases the oldest blocks
    assert info.blocks == 1 and info.held <= info.limit
    big = _memory.empty((4 * N,), np.float64)   # larger than the limit: never kept
    del big
    assert xentc.buffer_cache().blocks == 1


def test_at_most_eight_blocks(cache):
    blocks = [_memory.empty((N + 1000 * i,), np.float64) for i in range(12)]
    del blocks
    assert xentc.buffer_cache().blocks == 8


def test_zero_switches_the_cache_off(cache):
    y, x = binary_inputs(np.float64)
    r = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True)
    del r
    assert xentc.buffer_cache().blocks == 1
    assert xentc.buffer_cache(0) == (0, 0, 0)
    r = xentc.binary_cross_entropy(y, x, from_logits=True, grad=True)
    assert not from_cache(r.grad)
    del r
    assert xentc.buffer_cache() == (0, 0, 0)


@pytest.mark.parametrize("bad, exc, match", [
    (-1, ValueError, "max_bytes: must be >= 0"),
    (1.5, TypeError, "max_bytes: expected an int"),
    (True, TypeError, "max_bytes: expected an int"),
    ("100", TypeError, "max_bytes: expected an int"),
])
def test_bad_limit(cache, bad, exc, match):
    before = xentc.buffer_cache()
    with pytest.raises(exc, match=match):
        xentc.buffer_cache(bad)
    assert xentc.buffer_cache() == before


def test_numpy_integer_limit(cache):
    assert xentc.buffer_cache(np.int64(5 << 20)).limit == 5 << 20


@pytest.mark.parametrize("value, expect", [("12345", 12345), ("0", 0), ("", None), ("lots", None), ("-5", None)])
def test_environment_variable(value, expect):
    code = "import xentc, xentc._memory as m; print(xentc.buffer_cache().limit, m._default_limit())"
    env = dict(os.environ, XENTC_BUFFER_CACHE=value)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=os.path.dirname(__file__))
    assert proc.returncode == 0, proc.stderr
    limit, default = map(int, proc.stdout.split())
    assert limit == (default if expect is None else expect)
    if value in ("lots", "-5"):
        assert "XENTC_BUFFER_CACHE" in proc.stderr
    assert 0 < default <= 4 << 30


def test_concurrent_calls_never_share_memory(cache):
    """Python threads calling at once (the kernels release the GIL) each get their own memory."""
    from concurrent.futures import ThreadPoolExecutor
    y, x = binary_inputs(np.float64)
    inputs = [x * (k + 1) for k in range(4)]
    expected = [xentc.binary_cross_entropy(y, xi, from_logits=True, grad=True).grad.copy() for xi in inputs]

    def work(k):
        for _ in range(15):
            r = xentc.binary_cross_entropy(y, inputs[k], from_logits=True, grad=True, n_threads=1)
            np.testing.assert_array_equal(r.grad, expected[k])
        return k

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(work, range(4))) == [0, 1, 2, 3]
    assert xentc.buffer_cache().held <= xentc.buffer_cache().limit
