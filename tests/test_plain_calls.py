"""The plain-call shortcut of xentc._api (_binary_plain, _categorical_plain) gives the general
path's results bit for bit, takes the calls it is meant for and hands every other call, and every
failing one, to the general path (which then raises its own error).

Each case is called twice through the public function: as it is, and with the shortcut switched
off (it then declines every call); the two results must be identical in type, dtype, shape and
bits. The shortcut is watched, so a case meant for it fails if it was not taken and a case meant
for the general path fails if the shortcut answered it."""
import itertools
import pathlib
import sys

import numpy as np
import pytest

import xentc
from xentc import _api

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from inputs import assert_same_bits as assert_same  # noqa: E402
from inputs import binary_inputs, random_call, softmax_inputs  # noqa: E402

SHORTCUTS = ("_binary_plain", "_categorical_plain")


@pytest.fixture
def watch(monkeypatch):
    """watch(f, *args, **kw) -> (result or exception, taken): the call with the shortcuts on, and
    whether one of them answered it; it also checks the call against the general path."""

    def run(f, *args, make_out=None, **kw):
        """make_out: a function that makes the out= tuple, called anew for each call (the two
        calls write into arrays of their own); a result must then hold the given arrays."""
        taken = []

        def call():
            out = {} if make_out is None else {"out": make_out()}
            try:
                r = f(*args, **kw, **out)
            except (TypeError, ValueError) as exc:
                return exc
            if out:
                check_out_identity(r, out["out"], kw.get("reduction", "mean"))
            return r

        originals = {name: getattr(_api, name) for name in SHORTCUTS}
        for name, orig in originals.items():
            def spy(*a, _orig=orig, **k):
                r = _orig(*a, **k)
                taken.append(r is not None)
                return r
            monkeypatch.setattr(_api, name, spy)
        got = call()
        for name in SHORTCUTS:
            monkeypatch.setattr(_api, name, lambda *a, **k: None)
        want = call()
        for name, orig in originals.items():
            monkeypatch.setattr(_api, name, orig)
        assert_same(got, want)
        return got, any(taken)

    return run


def check_out_identity(r, out, reduction):
    """A call given out=(loss, grad, hess) returns the arrays it was given (the loss only for
    reduction='none')."""
    if not isinstance(out, tuple) or len(out) != 3:
        return
    got = r if isinstance(r, tuple) else (r, None, None)
    for i, (g, o) in enumerate(zip(got, out)):
        if o is not None and (i or reduction == "none"):
            assert g is o, i


def fresh_out(template, reduction, fill=np.nan):
    """A make_out for watch: new arrays like a result's, filled with `fill` (the loss entry: for
    'none' only; else the previous result's scalar, which a call ignores)."""
    def make():
        return tuple(a if (i == 0 and reduction != "none") or a is None else np.full_like(a, fill)
                     for i, a in enumerate(template if isinstance(template, tuple) else (template, None, None)))
    return make


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (37,), (3, 5), (2, 3, 4)])
def test_binary_plain_calls_match_the_general_path(watch, dtype, from_logits, shape):
    rng = np.random.default_rng(len(shape) + 7 * from_logits)
    y, x = binary_inputs(rng, shape, dtype, from_logits)
    for reduction, grad, hess, eps in itertools.product(("mean", "sum", "none"), (False, True), (False, True),
                                                        (0.0, 0.1)):
        opts = dict(from_logits=from_logits, reduction=reduction, grad=grad, hess=hess, label_smoothing=eps)
        _, taken = watch(xentc.binary_cross_entropy, y, x, **opts)
        assert taken
        for gamma in (0.0, 0.5, 2.0):
            _, taken = watch(xentc.binary_focal_loss, y, x, gamma=gamma, **opts)
            assert taken
    # labels of the dtypes the kernels read as they are (hard labels: integers and bool; soft: the
    # other float dtype)
    hard = np.asarray(np.round(y))
    other = np.float64 if dtype == np.float32 else np.float32
    for labels in (hard.astype(np.int64), hard.astype(np.uint8), hard.astype(np.int32), np.asarray(hard > 0.5),
                   y.astype(other)):
        for reduction, grad in itertools.product(("mean", "sum", "none"), (False, True)):
            _, taken = watch(xentc.binary_cross_entropy, labels, x, from_logits=from_logits, reduction=reduction,
                             grad=grad, hess=grad, label_smoothing=0.1)
            assert taken, labels.dtype
    # sample weights of the whole shape, some of them 0: in the compute dtype, and in one the binary
    # kernels read as it is beside any y_pred; a weight for each element, and all of them 0; with
    # and without pos_weight (a scalar, and one for each label of the last axis) or alpha
    sw = np.asarray(rng.random(shape) * 3, dtype)
    sw.reshape(-1)[::4] = 0.0
    last = shape[-1:] or (1,)
    for w in (None, sw, sw.astype(np.float16), np.zeros_like(sw)):
        for reduction, grad in itertools.product(("mean", "sum", "none"), (False, True)):
            opts = dict(from_logits=from_logits, reduction=reduction, grad=grad, hess=grad, sample_weight=w)
            for pw in (None, 2.5, np.linspace(0.0, 4.0, last[0])):
                _, taken = watch(xentc.binary_cross_entropy, y, x, pos_weight=pw, **opts)
                assert taken
            for alpha in (None, 0.25, 1.0):
                _, taken = watch(xentc.binary_focal_loss, y, x, gamma=2.0, alpha=alpha, label_smoothing=0.1, **opts)
                assert taken


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("shape,axis", [((5,), -1), ((1, 1), -1), ((4, 16), -1), ((4, 16), 1), ((3, 200), -1),
                                        ((2, 5, 3), 1), ((2, 3, 4, 5), 1), ((6, 2, 7), 0), ((40, 130), -1)])
def test_categorical_plain_calls_match_the_general_path(watch, dtype, from_logits, shape, axis):
    rng = np.random.default_rng(len(shape) * 5 + axis + from_logits)
    y, x = softmax_inputs(rng, shape, axis, dtype, from_logits)
    for reduction, grad, hess, eps in itertools.product(("mean", "sum", "none"), (False, True), (False, True),
                                                        (0.0, 0.2)):
        opts = dict(from_logits=from_logits, axis=axis, reduction=reduction, grad=grad, hess=hess,
                    label_smoothing=eps)
        _, taken = watch(xentc.cross_entropy, y, x, **opts)
        assert taken
        for gamma in (0.0, 2.0):
            _, taken = watch(xentc.focal_loss, y, x, gamma=gamma, **opts)
            assert taken
        # ignore_index: some rows ignored (a mean counts the others), then all of them
        yi = y.copy()
        yi.reshape(-1)[::3] = -100
        for labels in (yi, np.full_like(y, -100)):
            _, taken = watch(xentc.cross_entropy, labels, x, ignore_index=-100, **opts)
            assert taken
        # integer labels of other dtypes (converted to int64, as the general path converts them)
        for labels in (y.astype(np.int32), y.astype(np.uint8), y.astype(">i8"), yi.astype(np.int16)):
            _, taken = watch(xentc.cross_entropy, labels, x, ignore_index=-100 if labels.dtype == np.int16 else None,
                             **opts)
            assert taken, labels.dtype
        # sample weights of the per-sample shape in the compute dtype, some of them 0, alone and with
        # ignore_index (the pre-pass counts both); class weights (an array, a list; some 0) and
        # focal alpha (a scalar, one a class), alone and with the others
        C = shape[axis]
        sw = np.asarray(rng.random(y.shape) * 3, dtype)
        sw.reshape(-1)[::4] = 0.0
        cw = rng.random(C) * 2
        cw[::3] = 0.0
        alpha = np.linspace(0.0, 1.0, C)
        _, taken = watch(xentc.cross_entropy, y, x, sample_weight=sw, **opts)
        assert taken
        _, taken = watch(xentc.focal_loss, yi, x, gamma=2.0, sample_weight=sw, ignore_index=-100, **opts)
        assert taken
        # weights of the other float dtypes, converted to the compute dtype as the general path
        # converts them (float64 for float32: checked and narrowed in one pass), and tiny float64
        # ones (test_weights_a_mean_scales_are_left_only_for_a_mean: which path takes them)
        for w in (sw.astype(np.float64), sw.astype(np.float16), sw.astype(np.float32)):
            _, taken = watch(xentc.cross_entropy, yi, x, sample_weight=w, ignore_index=-100, **opts)
            assert taken, (w.dtype, reduction)
        watch(xentc.cross_entropy, yi, x, sample_weight=sw.astype(np.float64) * 1e-300, ignore_index=-100, **opts)
        for extra in ({"class_weight": cw}, {"class_weight": cw.tolist(), "sample_weight": sw},
                      {"class_weight": cw, "ignore_index": -100}):
            _, taken = watch(xentc.cross_entropy, yi if "ignore_index" in extra else y, x, **extra, **opts)
            assert taken, extra
        for extra in ({"alpha": 0.25}, {"alpha": alpha}, {"alpha": alpha, "class_weight": cw},
                      {"alpha": 0.5, "class_weight": cw, "sample_weight": sw, "ignore_index": -100}):
            _, taken = watch(xentc.focal_loss, yi if "ignore_index" in extra else y, x, gamma=2.0, **extra, **opts)
            assert taken, extra


@pytest.mark.parametrize("n_threads", [None, 1, 2])
def test_plain_calls_on_threads(watch, n_threads):
    """Calls large enough to run on several threads (the kernels' serial limit is 32768 elements)."""
    rng = np.random.default_rng(3)
    y, x = binary_inputs(rng, (70001,), np.float32, True)
    _, taken = watch(xentc.binary_cross_entropy, y, x, from_logits=True, grad=True, n_threads=n_threads)
    assert taken
    sw = rng.random(70001)   # float64 beside float32 y_pred: the binary kernels read them as they are
    _, taken = watch(xentc.binary_cross_entropy, y, x, from_logits=True, grad=True, sample_weight=sw,
                     n_threads=n_threads)
    assert taken
    y, x = softmax_inputs(rng, (9001, 11), -1, np.float64, True)
    _, taken = watch(xentc.cross_entropy, y, x, from_logits=True, grad=True, hess=True, n_threads=n_threads)
    assert taken
    y[::5] = -1
    _, taken = watch(xentc.cross_entropy, y, x, from_logits=True, grad=True, ignore_index=-1,
                     sample_weight=rng.random(9001), n_threads=n_threads)
    assert taken


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_calls_take_the_shortcut(watch, dtype):
    """out= arrays the kernels write as they are (exact shape and dtype, C-contiguous, writeable,
    sharing no memory with an input or each other): the shortcut writes into them and returns them,
    with the general path's bits, for every function and reduction, with weights and ignored rows,
    a previous result passed back included."""
    rng = np.random.default_rng(11)
    cases = []
    for shape in ((), (37,), (3, 5), (2, 3, 4)):
        y, x = binary_inputs(rng, shape, dtype, True)
        sw = np.asarray(rng.random(shape), dtype)
        cases += [(xentc.binary_cross_entropy, (y, x), {"from_logits": True}),
                  (xentc.binary_cross_entropy, (y, np.asarray(1 / (1 + np.exp(-x.astype(np.float64))), dtype)), {}),
                  (xentc.binary_cross_entropy, (np.asarray(np.round(y), np.int64), x),
                   {"from_logits": True, "sample_weight": sw, "pos_weight": 3.0}),
                  (xentc.binary_focal_loss, (y, x), {"from_logits": True, "gamma": 2.0, "alpha": 0.25,
                                                     "sample_weight": sw.astype(np.float16)})]
    for shape, axis in (((5,), -1), ((4, 16), -1), ((2, 5, 3), 1), ((6, 2, 7), 0)):
        y, x = softmax_inputs(rng, shape, axis, dtype, True)
        C = shape[axis]
        yi = y.copy()
        yi.reshape(-1)[::3] = -100
        sw = np.asarray(rng.random(y.shape), dtype)
        cases += [(xentc.cross_entropy, (y, x), {"from_logits": True, "axis": axis}),
                  (xentc.cross_entropy, (yi.astype(np.int32), x),
                   {"from_logits": True, "axis": axis, "ignore_index": -100, "sample_weight": sw,
                    "class_weight": np.linspace(0.5, 2.0, C), "label_smoothing": 0.1}),
                  (xentc.focal_loss, (y, x), {"from_logits": True, "axis": axis, "gamma": 2.0, "alpha": 0.25}),
                  (xentc.focal_loss, softmax_inputs(rng, shape, axis, dtype, False), {"axis": axis, "gamma": 2.0})]
    for f, args, kw in cases:
        for reduction, grad, hess in itertools.product(("mean", "sum", "none"), (False, True), (False, True)):
            if not (grad or hess or reduction == "none"):
                continue
            opts = dict(kw, reduction=reduction, grad=grad, hess=hess)
            template = f(*args, **opts)
            got, taken = watch(f, *args, make_out=fresh_out(template, reduction), **opts)
            assert taken, (f.__name__, opts)
            # only some of the entries given: the others are new arrays
            if grad and hess:
                def some():
                    return (None, None, np.full_like(template.hess, np.nan))
                got, taken = watch(f, *args, make_out=some, **opts)
                assert taken and got.grad is not None, (f.__name__, opts)


def test_out_calls_the_shortcut_leaves_to_the_general_path(watch):
    """out= the kernels cannot write as it is goes to the general path, which raises its error before
    any work: nothing is written then."""
    rng = np.random.default_rng(12)
    y, x = binary_inputs(rng, (6, 8), np.float32, True)
    g = np.zeros((6, 8), np.float32)

    def misaligned():   # a float32 array at an odd address (the CPU kernels write it as it is)
        return np.ndarray((6, 8), np.float32, buffer=bytearray(6 * 8 * 4 + 1), offset=1)

    def read_only():
        a = np.zeros((6, 8), np.float32)
        a.flags.writeable = False
        return a

    # functions that make the out= of a case anew for each call
    declined = [
        (lambda: (None, np.zeros((6, 8)), None), {}),                          # float64 for float32: an error
        (lambda: (None, np.zeros((8, 6), np.float32), None), {}),              # another shape
        (lambda: (None, np.zeros((8, 6), np.float32).T, None), {}),            # Fortran order
        (lambda: (None, np.zeros((6, 16), np.float32)[:, ::2], None), {}),     # strided
        (lambda: (None, read_only(), None), {}),
        (lambda: (None, x, None), {}),                                         # y_pred itself
        (lambda: (None, g, g), {"hess": True}),                                # one array for both
        (lambda: (None, g, None), {"sample_weight": g}),                       # the sample weights' memory
        (lambda: (np.zeros((6, 8), np.float32), None, None), {}),              # a loss array for a mean
        (lambda: (np.zeros((6, 8)), None, None), {"reduction": "none"}),       # float64 for a float32 loss
        (lambda: (None, None, np.zeros((6, 8), np.float32)), {}),              # hess=False
        (lambda: [None, np.zeros((6, 8), np.float32), None], {}),              # a list
        (lambda: (None, np.zeros((6, 8), np.float32)), {}),                    # two entries
    ]
    yc, xc = softmax_inputs(rng, (6, 9), -1, np.float64, True)
    declined_c = [(lambda: (None, np.zeros((6, 9), np.float32), None), {}),
                  (lambda: (np.zeros(6, np.float32), None, None), {"reduction": "none"}),
                  (lambda: (np.zeros((6, 1)), None, None), {"reduction": "none"}),
                  (lambda: (None, np.zeros((9, 6)), None), {}),
                  (lambda: (None, np.zeros((6, 9)), None), {"sample_weight": np.ones(6, np.int32)}),   # weights too
                  (lambda: (None, np.zeros((6, 9)), None), {"class_weight": -np.ones(9)})]               # an error
    for f, args, cases in ((xentc.binary_cross_entropy, (y, x), declined),
                           (xentc.cross_entropy, (yc, xc), declined_c)):
        for make_out, kw in cases:
            made = []

            def make(make_out=make_out):
                made.append(make_out())
                return made[-1]
            before = [a.copy() for a in args]
            got, taken = watch(f, *args, make_out=make, from_logits=True, grad=True, **kw)
            assert not taken, (made[0], kw)
            assert all(np.array_equal(a, b) for a, b in zip(args, before))   # the inputs as they were
            if isinstance(got, Exception):   # refused before any work: the given arrays as they were
                assert all(a is None or a is g or a is x or not a.any() for o in made for a in o), (kw, got)
        assert not g.any()
    # a float32 array at an odd address: the CPU kernels write it as it is, on either path
    got, taken = watch(xentc.binary_cross_entropy, y, x, make_out=lambda: (None, misaligned(), None), from_logits=True,
                       grad=True)
    assert taken and got.grad.ctypes.data % 4


def test_calls_the_shortcut_leaves_to_the_general_path(watch):
    rng = np.random.default_rng(5)
    y, x = binary_inputs(rng, (6, 8), np.float64, True)
    declined = [
        (xentc.binary_cross_entropy, (y[:, ::2], x[:, ::2]), {}),            # strided
        (xentc.binary_cross_entropy, (y.repeat(2, axis=1)[:, ::2], x), {}),   # strided labels
        (xentc.binary_cross_entropy, (y, np.asfortranarray(x)), {}),         # Fortran order
        (xentc.binary_cross_entropy, (y.astype(np.float16), x), {}),         # labels the kernels do not read
        (xentc.binary_cross_entropy, (y.astype(">f4"), x), {}),              # big-endian labels
        (xentc.binary_cross_entropy, (y, x.astype(np.float16)), {}),         # 16-bit y_pred
        (xentc.binary_cross_entropy, (y, x.astype(">f8")), {}),              # big-endian
        (xentc.binary_cross_entropy, (y.tolist(), x), {}),                   # a list
        (xentc.binary_cross_entropy, (y, x), {"sample_weight": np.ones((2, 8))}),          # broadcast: no block
        (xentc.binary_cross_entropy, (y, x), {"sample_weight": np.ones((6, 8), np.int64)}),  # not a float
        (xentc.binary_cross_entropy, (y, x), {"sample_weight": np.ones((6, 8)).tolist()}),
        (xentc.binary_cross_entropy, (y, x), {"sample_weight": np.ones((8, 6)).T}),          # Fortran order
        (xentc.binary_cross_entropy, (y, x), {"sample_weight": np.ones((6, 16))[:, ::2]}),   # strided
        (xentc.binary_cross_entropy, (y, x), {"sample_weight": np.ones((6, 8), ">f8")}),     # big-endian
        (xentc.binary_cross_entropy, (y, x), {"sample_weight": np.full((6, 8), 1e-310)}),    # a mean that
        (xentc.binary_cross_entropy, (y, x), {"sample_weight": np.full((6, 8), 1e303)}),     # scales them
        (xentc.binary_cross_entropy, (y.astype(np.float32), x.astype(np.float32)), {"pos_weight": 1e300}),
        (xentc.binary_cross_entropy, (y, x), {"pos_weight": np.ones(7), "sample_weight": np.ones(8)}),  # an error
        (xentc.binary_cross_entropy, (y[:3], x), {}),                        # shapes differ: an error
    ]
    yc, xc = softmax_inputs(rng, (6, 9), -1, np.float32, True)
    declined += [
        (xentc.cross_entropy, (yc.astype(np.uint64), xc), {}),               # past int64: the general path's
        (xentc.cross_entropy, (yc.astype(np.float64), xc), {}),              # soft labels of another shape
        (xentc.cross_entropy, (yc.astype(np.int32)[::-1], xc), {}),          # strided
        (xentc.cross_entropy, (yc, xc[:, ::2]), {}),
        (xentc.cross_entropy, (yc.repeat(2)[::2], xc), {}),                 # strided labels
        (xentc.cross_entropy, (yc, xc), {"axis": np.int64(-1)}),
        (xentc.cross_entropy, (yc, xc), {"axis": 2}),                        # out of range: an error
        (xentc.cross_entropy, (yc, xc), {"axis": 0}),                        # labels of another shape
        (xentc.cross_entropy, (yc, xc), {"class_weight": np.ones(8)}),            # wrong length: an error
        (xentc.cross_entropy, (yc, xc), {"class_weight": np.ones((1, 9))}),
        (xentc.cross_entropy, (yc, xc), {"class_weight": 2.0}),                   # a scalar: an error
        (xentc.cross_entropy, (yc, xc), {"class_weight": np.full(9, 1e39)}),      # past float32
        (xentc.cross_entropy, (yc, xc), {"class_weight": np.full(9, 1e39), "reduction": "sum"}),
        (xentc.cross_entropy, (yc, xc), {"class_weight": np.r_[1.0, -1.0, np.ones(7)]}),
        (xentc.cross_entropy, (yc, xc), {"class_weight": np.r_[np.nan, np.ones(8)]}),
        (xentc.cross_entropy, (yc, xc), {"class_weight": np.full(9, 1e-30)}),     # a mean that scales them
        (xentc.cross_entropy, (yc, xc), {"class_weight": ["a"] * 9}),
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.ones(6, np.int32)}),   # not a float
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.ones(6, ">f8")}),      # big-endian
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.full(6, 1e39)}),       # past float32: an error
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.r_[1.0, -1e-300, 1, 1, 1, 1]}),   # negative
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.r_[1.0, np.nan, 1, 1, 1, 1]}),
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.full(6, 1e-50)}),      # a mean lifts them
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.ones(1, np.float32)}),   # broadcast
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.ones(12, np.float32)[::2]}),
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.full(6, 1e-35, np.float32)}),   # a mean that
        (xentc.cross_entropy, (yc, xc), {"sample_weight": np.full(6, 1e36, np.float32)}),    # scales them
        (xentc.cross_entropy, (np.eye(9, dtype=np.float32)[yc], xc), {}),    # soft labels
        (xentc.cross_entropy, (yc, xc[:0]), {}),                             # no rows
        (xentc.focal_loss, (yc, xc), {"alpha": np.full(9, 0.5), "class_weight": np.ones(3)}),
    ]
    for f, args, kw in declined:
        _, taken = watch(f, *args, from_logits=True, **kw)
        assert not taken, (f.__name__, kw)


def test_calls_under_xentc_dask_take_the_general_path():
    """The sums sink of xentc.dask (and its denominator contexts) are the general path's."""
    rng = np.random.default_rng(6)
    y, x = softmax_inputs(rng, (5, 4), -1, np.float64, True)
    seen = []
    real = _api._categorical_plain
    try:
        _api._categorical_plain = lambda *a, **k: seen.append(real(*a, **k))
        result, total, denom = _api._call_with_sums(xentc.cross_entropy, y, x, from_logits=True, reduction="sum")
    finally:
        _api._categorical_plain = real
    assert seen == [None]
    assert denom == 5.0 and result == xentc.cross_entropy(y, x, from_logits=True, reduction="sum")


def test_weights_a_mean_scales_are_left_only_for_a_mean(watch):
    """Sample weights whose sum the mean scales by a power of two (_mean_weight_exponent) send a
    mean to the general path; a sum or per-sample losses with the same weights stay plain."""
    rng = np.random.default_rng(8)
    y, x = binary_inputs(rng, (6, 8), np.float64, True)
    yc, xc = softmax_inputs(rng, (6, 9), -1, np.float32, True)
    for f, args, sw in ((xentc.binary_cross_entropy, (y, x), np.full((6, 8), 1e-310)),
                        (xentc.cross_entropy, (yc, xc), np.full(6, 1e36, np.float32)),
                        # float64 weights that float32 sees as 0, which the general path lifts first
                        (xentc.cross_entropy, (yc, xc), np.full(6, 1e-50)),
                        (xentc.cross_entropy, (yc, xc), np.r_[np.zeros(5), 1e-50])):
        for reduction in ("mean", "sum", "none"):
            got, taken = watch(f, *args, from_logits=True, grad=True, sample_weight=sw, reduction=reduction)
            assert taken == (reduction != "mean"), (f.__name__, reduction)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_broadcast_weights(watch, dtype):
    """Binary sample weights that broadcast to the labels' shape as one block repeated (a weight a
    row, a weight a label, one for all, any leading dimensions left out) take the shortcut, which
    hands the kernels the block and its repeat as the general path does (no broadcast copy), with
    its bits, for every reduction; broadcasts of another form go to the general path (an error
    where they do not broadcast)."""
    rng = np.random.default_rng(21)
    taken_shapes = {(4, 16): [(4, 1), (16,), (1, 16), (1,), (), (1, 1)],
                    (2, 3, 5): [(2, 1, 1), (2, 3, 1), (3, 5), (1, 3, 1), (5,), (3, 1), (1, 1, 1)],
                    (3, 1, 4): [(3, 1, 1), (4,), (1, 4), (3, 1, 4)[1:]],
                    (1, 6): [(6,)], (7,): [(1,), ()], (1,): [()]}
    declined = {(2, 3, 5): [(2, 1, 5), (1, 2, 3, 5), (4,), (3,)], (4, 16): [(4,), (2, 16)], (): [(1,)], (0, 3): [(3,)]}
    for shape, wshapes in list(taken_shapes.items()) + list(declined.items()):
        y, x = binary_inputs(rng, shape, dtype, True)
        for ws in wshapes:
            for wdt in (dtype, np.float64, np.float16):
                sw = np.asarray(rng.random(ws) + 0.25, wdt)
                for reduction in ("mean", "sum", "none"):
                    got, taken = watch(xentc.binary_focal_loss, y, x, from_logits=True, grad=True, hess=True,
                                       gamma=2.0, sample_weight=sw, reduction=reduction)
                    assert taken == (ws in taken_shapes.get(shape, ())), (shape, ws, reduction)
                    if (shape, ws) in (((2, 3, 5), (1, 2, 3, 5)), ((2, 3, 5), (4,)), ((2, 3, 5), (3,)),
                                       ((4, 16), (4,)), ((4, 16), (2, 16)), ((), (1,))):
                        assert isinstance(got, ValueError)
                    else:
                        assert isinstance(got, tuple), (shape, ws, got)
    # not C-contiguous, or a bad weight: the general path's
    y, x = binary_inputs(rng, (4, 16), dtype, True)
    for sw in (np.ones((4, 2), dtype)[:, :1], np.r_[1.0, -1.0, 1.0, 1.0].reshape(4, 1).astype(dtype)):
        _, taken = watch(xentc.binary_cross_entropy, y, x, from_logits=True, grad=True, sample_weight=sw)
        assert not taken


def test_class_weights_a_mean_lifts_stay_plain(watch):
    """float64 class weights that float32 holds as zeros or subnormals are brought into range by a
    power of two before they are narrowed, on both paths alike (_class_weight_lift): such calls
    stay plain for every reduction, with the general path's bits."""
    rng = np.random.default_rng(12)
    yc, xc = softmax_inputs(rng, (6, 9), -1, np.float32, True)
    yi = yc.copy()
    yi[::3] = -1
    for cw in (np.full(9, 1e-40), np.linspace(0.0, 1.0, 9) * 1e-50):
        for reduction in ("mean", "sum", "none"):
            for y, kw in ((yc, {}), (yi, {"ignore_index": -1, "sample_weight": rng.random(6)})):
                got, taken = watch(xentc.cross_entropy, y, xc, from_logits=True, grad=True, class_weight=cw,
                                   reduction=reduction, **kw)
                assert taken, (reduction, kw)
                assert isinstance(got, tuple) and (reduction != "mean" or got.loss > 0)


@pytest.mark.parametrize("case", ["negative", "NaN", "infinite"])
def test_weight_errors_come_from_the_general_path(watch, case):
    """A bad sample weight found by the shortcut's pre-pass: the call goes to the general path,
    which raises its own error, naming the weight (also behind a bad label, as the general path
    checks the weights first: watch compares the messages)."""
    rng = np.random.default_rng(9)
    bad = {"negative": -1.0, "NaN": np.nan, "infinite": np.inf}[case]
    y, x = binary_inputs(rng, (50,), np.float64, True)
    sw = rng.random(50)
    sw[30] = bad
    got, taken = watch(xentc.binary_cross_entropy, y, x, from_logits=True, grad=True, sample_weight=sw)
    assert isinstance(got, ValueError) and "sample_weight" in str(got) and not taken
    yc, xc = softmax_inputs(rng, (40, 6), -1, np.float32, True)
    swc = rng.random(40).astype(np.float32)
    swc[33] = bad
    yc[20] = 6   # a label outside [0, C) before the bad weight
    for reduction in ("mean", "sum"):
        got, taken = watch(xentc.cross_entropy, yc, xc, from_logits=True, sample_weight=swc, reduction=reduction)
        assert isinstance(got, ValueError) and not taken


@pytest.mark.parametrize("case", ["label above C", "negative label", "binary label", "probability", "NaN label"])
def test_errors_a_kernel_reports_come_from_the_general_path(watch, case):
    """The shortcut makes the kernel call, sees its error and hands the call on; the message is the
    general path's (the same with the shortcut switched off, checked by watch)."""
    rng = np.random.default_rng(7)
    if case in ("label above C", "negative label"):
        y, x = softmax_inputs(rng, (40, 6), -1, np.float32, True)
        y[33] = 6 if case == "label above C" else -1
        for from_logits in (True, False):
            got, taken = watch(xentc.cross_entropy, y, np.abs(x) / 100, from_logits=from_logits, grad=True)
            assert isinstance(got, ValueError) and "index 33" in str(got) and not taken
        return
    y, x = binary_inputs(rng, (50,), np.float64, False)
    if case == "binary label":
        y[20] = 1.5
    elif case == "probability":
        x[30] = 1.25
    else:
        y[10] = np.nan
    got, taken = watch(xentc.binary_cross_entropy, y, x, grad=True)
    assert isinstance(got, ValueError) and not taken


@pytest.mark.parametrize("seed", range(4))
def test_random_calls_match_the_general_path(seed):
    """Random calls (every function, option and reduction; labels of several dtypes, some bad,
    logits or probabilities, sample weights of four dtypes scaled to the edges of the range or 0,
    some of them bad, class weights, pos_weight, alpha, ignored rows, out= arrays):
    the shortcut on and off give the same result or the same error, whichever path answers."""
    rng = np.random.default_rng(100 + seed)
    real = {name: getattr(_api, name) for name in SHORTCUTS}

    def call(f, on, *args, **kw):
        for name, orig in real.items():
            setattr(_api, name, orig if on else (lambda *a, **k: None))
        try:
            return f(*args, **kw)
        except (TypeError, ValueError) as exc:
            return exc
        finally:
            for name, orig in real.items():
                setattr(_api, name, orig)

    for _ in range(400):
        f, y, x, kw, dtype = random_call(rng)
        if (kw["grad"] or kw["hess"] or kw["reduction"] == "none") and rng.random() < 0.3:
            # out= arrays: new ones for each call, like a result's, or (some) of the other float dtype
            template = call(f, False, y, x, **kw)
            if not isinstance(template, Exception):
                other = np.float64 if dtype == np.float32 else np.float32
                odt = [None if rng.random() < 0.8 else other for _ in range(3)]
                make = fresh_out(template, kw["reduction"])
                outs = [tuple(a if not isinstance(a, np.ndarray) or odt[i] is None or a.ndim == 0 else a.astype(odt[i])
                              for i, a in enumerate(make())) for _ in range(2)]
                got, want = (call(f, on, y, x, out=o, **kw) for on, o in zip((True, False), outs))
                assert_same(got, want)
                if not isinstance(got, Exception):
                    check_out_identity(got, outs[0], kw["reduction"])
                continue
        assert_same(call(f, True, y, x, **kw), call(f, False, y, x, **kw))


def test_dtype_names_are_those_numpy_gives():
    """_dtypes.dtype_name (dtype.name remembered per dtype, for the dtype rules of every call) gives
    NumPy's own name for every dtype, byte orders and extension dtypes included, also past the
    number of dtypes it remembers."""
    from xentc._dtypes import dtype_name

    dts = [np.dtype(c) for c in "?bBhHiIlLqQefdgFDGSUVO"] + [np.dtype(">f4"), np.dtype("<f8"), np.dtype(">i8"),
                                                            np.dtype("M8[s]"), np.dtype("m8[ms]")]
    try:
        import ml_dtypes
        dts += [np.dtype(ml_dtypes.bfloat16), np.dtype(ml_dtypes.float8_e4m3fn)]
    except ImportError:
        pass
    dts += [np.dtype([("f", "<f4"), (f"g{i}", "<i2")]) for i in range(300)]   # more than are remembered
    for _ in range(2):   # formed, then remembered
        for dt in dts:
            assert dtype_name(dt) == dt.name, dt
