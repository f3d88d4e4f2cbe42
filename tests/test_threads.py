"""Results are the same bits for any n_threads, and concurrent calls from many Python
threads get exactly the bits of a lone call."""

import concurrent.futures
import subprocess
import sys
import threading

import numpy as np
import pytest

import xentc

THREADS = [1, 2, 3, 7]


def _assert_bits(a, b, what=""):
    if isinstance(a, tuple):
        assert type(a) is type(b)
        for x, y, f in zip(a, b, a._fields):
            if x is None:
                assert y is None
            else:
                _assert_bits(x, y, f"{what}.{f}")
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    # compare the bytes: NaN payloads and signed zeros included
    assert a.tobytes() == b.tobytes(), f"{what}: results differ between thread counts"


def _binary_case(rng, dtype, from_logits, n=300_000):
    shape = (n // 3, 3)
    x = rng.normal(0, 3, shape) if from_logits else rng.uniform(0.001, 0.999, shape)
    y = rng.uniform(0, 1, shape)
    y[::7] = np.round(y[::7])
    kw = {"sample_weight": rng.uniform(0, 2, shape[:1] + (1,)), "label_smoothing": 0.05,
          "from_logits": from_logits}
    return y.astype(dtype), x.astype(dtype), kw


def _categorical_case(rng, dtype, from_logits, n, C, soft):
    x = rng.normal(0, 3, (n, C)) if from_logits else rng.dirichlet(np.ones(C), n)
    if soft:
        y = rng.dirichlet(np.ones(C), n).astype(dtype)
        kw = {}
    else:
        y = rng.integers(0, C, n)
        y[::11] = -100
        kw = {"ignore_index": -100}
    kw.update({"sample_weight": rng.uniform(0, 2, n), "class_weight": rng.uniform(0.5, 2, C),
               "from_logits": from_logits, "label_smoothing": 0.1})
    return y, x.astype(dtype), kw


def _run_all_thread_counts(fn, y, x, kw, counts=THREADS):
    for reduction in ("mean", "none"):
        ref = fn(y, x, reduction=reduction, grad=True, hess=True, n_threads=counts[0], **kw)
        for nt in counts[1:]:
            got = fn(y, x, reduction=reduction, grad=True, hess=True, n_threads=nt, **kw)
            _assert_bits(got, ref, f"{reduction}, n_threads={nt}")
    # the loss alone (a separate code path in some kernels) and the sum agree too
    lone = fn(y, x, reduction="sum", n_threads=1, **kw)
    _assert_bits(fn(y, x, reduction="sum", n_threads=counts[-1], **kw), lone, "sum, loss only")
    _assert_bits(fn(y, x, reduction="sum", grad=True, n_threads=counts[-2], **kw).loss, lone,
                 "sum: loss alone vs loss with grad")


@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_focal_loss"])
def test_binary_thread_count_invariance(name, dtype, from_logits):
    rng = np.random.default_rng(1)
    y, x, kw = _binary_case(rng, dtype, from_logits)
    if name == "binary_cross_entropy":
        kw["pos_weight"] = np.array([0.5, 1.0, 3.0])
    else:
        kw.update(gamma=1.5, alpha=0.3)
    _run_all_thread_counts(getattr(xentc, name), y, x, kw)


def _categorical_params():
    out = []
    for dtype in ("f32", "f64"):
        for from_logits in (False, True):
            for soft in (False, True):
                out.append(("cross_entropy", dtype, from_logits, soft, (20_000, 50)))
    out += [("cross_entropy", "f32", True, False, (64, 5000)),
            ("cross_entropy", "f64", False, True, (64, 5000)),
            ("focal_loss", "f64", True, False, (20_000, 50)),
            ("focal_loss", "f32", False, True, (20_000, 50)),
            ("focal_loss", "f32", True, True, (64, 5000)),
            ("focal_loss", "f64", False, False, (64, 5000))]
    return [pytest.param(*p, id=f"{p[0]}-{p[1]}-{'logits' if p[2] else 'probs'}-"
                               f"{'soft' if p[3] else 'int'}-{p[4][0]}x{p[4][1]}") for p in out]


@pytest.mark.parametrize("name,dtype,from_logits,soft,shape", _categorical_params())
def test_categorical_thread_count_invariance(name, dtype, from_logits, soft, shape):
    dtype = {"f32": np.float32, "f64": np.float64}[dtype]
    rng = np.random.default_rng(2)
    y, x, kw = _categorical_case(rng, dtype, from_logits, *shape, soft)
    if name == "focal_loss":
        kw.update(gamma=2.0, alpha=rng.uniform(0, 1, shape[1]))
    _run_all_thread_counts(getattr(xentc, name), y, x, kw)


def test_default_thread_count_gives_the_same_bits():
    rng = np.random.default_rng(12)
    y, x, kw = _categorical_case(rng, np.float32, True, 20_000, 50, False)
    _run_all_thread_counts(xentc.cross_entropy, y, x, kw, counts=[1, None, 2])
    yb, xb, kwb = _binary_case(rng, np.float64, True)
    _run_all_thread_counts(xentc.binary_cross_entropy, yb, xb, kwb, counts=[1, None, 2])


def test_kdim_thread_count_invariance():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 2, (8, 10, 64, 64)).astype(np.float32)
    y = rng.integers(0, 10, (8, 64, 64))
    fn = xentc.cross_entropy
    ref = fn(y, x, axis=1, from_logits=True, grad=True, hess=True, n_threads=1)
    for nt in (2, 3, 7):
        _assert_bits(fn(y, x, axis=1, from_logits=True, grad=True, hess=True, n_threads=nt), ref)
    # more classes, through tiles: each thread its own slice of the scratch
    x = rng.normal(0, 2, (3, 150, 9, 61)).astype(np.float32)
    y = rng.integers(0, 150, (3, 9, 61))
    ref = fn(y, x, axis=1, from_logits=True, grad=True, hess=True, n_threads=1)
    for nt in (2, 3, 7):
        _assert_bits(fn(y, x, axis=1, from_logits=True, grad=True, hess=True, n_threads=nt), ref)


def test_large_many_block_reduction():
    """Enough samples for many reduction blocks; results must not depend on the split."""
    rng = np.random.default_rng(4)
    n = 2_000_003  # not a multiple of any block size
    z = rng.normal(0, 4, n).astype(np.float32)
    y = (rng.uniform(size=n) < 0.3).astype(np.float32)
    ref = xentc.binary_cross_entropy(y, z, from_logits=True, n_threads=1)
    for nt in (2, 3, 7):
        _assert_bits(xentc.binary_cross_entropy(y, z, from_logits=True, n_threads=nt), ref)


# --------------------------------------------------------------------------------------
# many Python threads at once
# --------------------------------------------------------------------------------------


def _jobs():
    rng = np.random.default_rng(5)
    jobs = []
    yb, xb, kwb = _binary_case(rng, np.float64, True, n=60_000)
    jobs.append(("binary_cross_entropy", yb, xb, {**kwb, "pos_weight": 2.0}))
    yb, xb, kwb = _binary_case(rng, np.float32, False, n=60_000)
    jobs.append(("binary_focal_loss", yb, xb, {**kwb, "gamma": 2.0}))
    y, x, kw = _categorical_case(rng, np.float64, True, 3000, 50, False)
    jobs.append(("cross_entropy", y, x, kw))
    y, x, kw = _categorical_case(rng, np.float32, True, 3000, 50, True)
    jobs.append(("focal_loss", y, x, {**kw, "gamma": 1.0}))
    y, x, kw = _categorical_case(rng, np.float32, False, 16, 4000, False)
    jobs.append(("cross_entropy", y, x, kw))
    # rows whose classes lie apart: each call's per-thread tile scratch
    y, x, kw = _categorical_case(rng, np.float64, True, 200, 700, False)
    jobs.append(("focal_loss", y, np.asfortranarray(x), {**kw, "gamma": 2.0}))
    return jobs


@pytest.mark.parametrize("inner_threads", [None, 1, 2], ids=["default", "1", "2"])
def test_concurrent_python_threads(inner_threads):
    jobs = _jobs()
    reductions = ["mean", "none", "sum"]
    lone = {}
    for j, (name, y, x, kw) in enumerate(jobs):
        for r in reductions:
            lone[j, r] = getattr(xentc, name)(y, x, reduction=r, grad=True, hess=True,
                                              n_threads=inner_threads, **kw)
    start = threading.Barrier(8)

    def worker(w):
        start.wait()
        out = []
        for k in range(12):
            j = (w + k) % len(jobs)
            r = reductions[(w + 2 * k) % 3]
            name, y, x, kw = jobs[j]
            out.append(((j, r), getattr(xentc, name)(y, x, reduction=r, grad=True, hess=True,
                                                     n_threads=inner_threads, **kw)))
        return out

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        results = list(ex.map(worker, range(8)))
    n = 0
    for out in results:
        for key, res in out:
            _assert_bits(res, lone[key], str(key))
            n += 1
    assert n == 8 * 12


def test_concurrent_errors_do_not_leak():
    """A thread that raises does not affect the results or errors of the others."""
    rng = np.random.default_rng(6)
    y, x, kw = _categorical_case(rng, np.float64, True, 5000, 20, False)
    bad = y.copy()
    bad[4321] = 99
    lone = xentc.cross_entropy(y, x, grad=True, **kw)

    def good(_):
        return xentc.cross_entropy(y, x, grad=True, **kw)

    def failing(_):
        with pytest.raises(ValueError, match=r"^y_true:.*99.*4321"):
            xentc.cross_entropy(bad, x, grad=True, **kw)
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        futs = [ex.submit(good if i % 2 else failing, i) for i in range(32)]
        for f in futs:
            r = f.result()
            if r is not None:
                _assert_bits(r, lone)


_SMALL_STACK_SCRIPT = """
import sys, threading
import numpy as np
import xentc

rng = np.random.default_rng(8)
cases = []
for C, dt in [(127, np.float32), (64, np.float64), (1000, np.float32), (1000, np.float64)]:
    z = rng.normal(0, 2, (40, C)).astype(dt)
    y = rng.dirichlet(np.ones(C), 40).astype(dt)
    p = np.exp(z - z.max(1, keepdims=True))
    p = (p / p.sum(1, keepdims=True)).astype(dt)
    for x, logits in [(z, True), (p, False)]:
        cases.append((y, x, dict(from_logits=logits, gamma=2.0, grad=True, hess=True, n_threads=1,
                                 reduction="none")))
lone = [xentc.focal_loss(y, x, **kw) for y, x, kw in cases]
out = []
threading.stack_size(int(sys.argv[1]) * 1024)
t = threading.Thread(target=lambda: out.extend(xentc.focal_loss(y, x, **kw) for y, x, kw in cases))
t.start()
t.join()
assert len(out) == len(cases), "the thread raised"
for a, b in zip(out, lone):
    for f in ("loss", "grad", "hess"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f
print("ok", len(out))
"""


def test_calls_fit_a_small_thread_stack():
    """A call keeps its scratch small enough for a thread with a 128 KiB stack (musl's default):
    the few-class group kernel stages 16 rows on the stack (71-80 KiB), the row code a chunk.
    In a child process, so that an overflow is a failure and not a crash of the test run."""
    proc = subprocess.run([sys.executable, "-c", _SMALL_STACK_SCRIPT, "128"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.startswith("ok 8"), (proc.returncode, proc.stderr[-2000:])


def test_more_threads_than_work():
    rng = np.random.default_rng(7)
    y, x, kw = _categorical_case(rng, np.float64, True, 5, 3, False)
    ref = xentc.cross_entropy(y, x, grad=True, hess=True, n_threads=1, **kw)
    for nt in (16, 64, 1000):
        _assert_bits(xentc.cross_entropy(y, x, grad=True, hess=True, n_threads=nt, **kw), ref)


@pytest.mark.parametrize("name", ["binary_focal_loss", "focal_loss"])
def test_kernels_release_the_gil(name):
    """While one thread is inside a kernel, another thread runs Python code.

    With a switch interval far longer than the test, a thread that holds the GIL keeps it until
    it blocks or leaves it voluntarily. The main thread waits on an event that the worker sets
    just before its call; it can only resume while the worker is still inside the call if the
    kernel released the GIL. Held, the main thread would resume only after the call returned.
    No timing is measured; a few tries allow for the main thread being descheduled by the OS.
    """
    rng = np.random.default_rng(8)
    if name == "binary_focal_loss":
        x = rng.normal(0, 3, 1_000_000)
        y = rng.uniform(0, 1, x.shape)
    else:
        x = rng.normal(0, 3, (50_000, 20))
        y = rng.integers(0, 20, 50_000)
    fn = getattr(xentc, name)
    saved = sys.getswitchinterval()
    seen_inside = []
    try:
        sys.setswitchinterval(1000.0)
        for _ in range(3):
            about_to_call = threading.Event()
            state = {"done": False}

            def worker():
                about_to_call.set()
                fn(y, x, from_logits=True, gamma=2.0, grad=True, hess=True, n_threads=1)
                state["done"] = True

            t = threading.Thread(target=worker)
            t.start()
            about_to_call.wait()
            seen_inside.append(not state["done"])
            t.join()
            if seen_inside[-1]:
                break
    finally:
        sys.setswitchinterval(saved)
    assert any(seen_inside), "the main thread never ran while the kernel was running"


@pytest.mark.parametrize("seed", range(3))
def test_random_calls_thread_count_invariance(seed):
    """Random calls of every function and reduction with derivatives (binary up to 3000 x 40,
    categorical up to 400 x 300 x 20 on any axis; from logits or probabilities, class and sample
    weights, ignored rows, Fortran order): the same bits on 1 thread and on 2 to 7."""
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from inputs import binary_inputs, softmax_inputs

    rng = np.random.default_rng(900 + seed)
    for _ in range(40):
        dtype = (np.float32, np.float64)[rng.integers(2)]
        logits = bool(rng.random() < 0.7)
        kw = dict(from_logits=logits, reduction=("mean", "sum", "none")[rng.integers(3)], grad=True,
                  hess=bool(rng.random() < 0.5))
        if rng.random() < 0.5:
            y, x = binary_inputs(rng, (int(rng.integers(1, 3000)), int(rng.integers(1, 40))), dtype, logits)
            f = (xentc.binary_cross_entropy, xentc.binary_focal_loss)[rng.integers(2)]
            sample_shape = x.shape
        else:
            nd = int(rng.integers(2, 4))
            shape = tuple(int(v) for v in rng.integers(1, (400, 300, 20)[:nd]))
            axis = int(rng.integers(-nd, nd))
            y, x = softmax_inputs(rng, shape, axis, dtype, logits)
            f = (xentc.cross_entropy, xentc.focal_loss)[rng.integers(2)]
            kw["axis"] = axis
            sample_shape = y.shape
            if rng.random() < 0.5:
                kw["class_weight"] = rng.random(shape[axis])
            if rng.random() < 0.3:
                y.reshape(-1)[::3] = -1
                kw["ignore_index"] = -1
        if rng.random() < 0.5:
            kw["sample_weight"] = rng.random(sample_shape)
        if rng.random() < 0.3:
            x = np.asfortranarray(x)
        _assert_bits(f(y, x, n_threads=1, **kw), f(y, x, n_threads=int(rng.integers(2, 8)), **kw),
                     (f.__name__, x.shape, kw.get("axis")))
