"""The CUDA path (CuPy arrays) against the CPU path (NumPy arrays) on the same inputs.

Every loss x input form x label form x option x dtype x reduction x grad/hess; every categorical
kernel (one thread / tile / warp / block per row, on-chip, on-chip with clusters) on the same
inputs; special values; layouts; bad input (same exception and message as on the CPU); NumPy and
CuPy mixed (TypeError naming the argument); result types and devices; inputs left unchanged;
bitwise determinism. Skipped without CuPy or without a GPU.

Tolerances: GPU and CPU use different exp/log implementations (CUDA's libdevice, the CPU's own
vector math), so results agree to a few ulp, not bit for bit: rtol 1e-6 (float32) / 1e-13
(float64), relative to the largest value of the array compared.
"""

import io
import pathlib
import re
import sys
import zlib

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
try:
    _NDEV = cupy.cuda.runtime.getDeviceCount()
except Exception:  # noqa: BLE001 - no driver, no device
    _NDEV = 0
if _NDEV == 0:
    pytest.skip("no CUDA device", allow_module_level=True)

import xentc  # noqa: E402
from xentc import _cuda  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from inputs import (assert_same_bits, focal_prob_minimum, make_binary, make_categorical, random_call,  # noqa: E402
                    weights)

FUNCS = ["binary_cross_entropy", "binary_focal_loss", "cross_entropy", "focal_loss"]
BINARY = {"binary_cross_entropy", "binary_focal_loss"}
DTYPES = [np.float32, np.float64]
RTOL = {np.dtype(np.float16): 1e-3, np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-13}


def _bfloat16():
    """ml_dtypes' bfloat16 where both it and this CuPy take it (CuPy 14 with ml_dtypes), else None."""
    try:
        import ml_dtypes

        bf = np.dtype(ml_dtypes.bfloat16)
        cupy.asarray(np.zeros(2, bf)).astype(np.float32)
        return bf
    except Exception:  # noqa: BLE001 - no ml_dtypes, or a CuPy without bfloat16
        return None


BF16 = _bfloat16()
# float16 and bfloat16 are read and written as they are on the GPU (computed in float32) and
# converted on the CPU (computed in float32, rounded at the end): the two agree to one rounding
ALL_DTYPES = [np.float16, np.float32, np.float64] + ([BF16] if BF16 is not None else [])
ALL_IDS = ["f16", "f32", "f64"] + (["bf16"] if BF16 is not None else [])
if BF16 is not None:
    RTOL[BF16] = 1e-2


def _cdt(dtype):
    """The compute dtype (float32 for 16-bit floats)."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)
REDUCTIONS = ["none", "sum", "mean"]
FLAGS = [(False, False), (True, False), (False, True), (True, True)]
KERNELS = ["thread", "tile", "warp", "block", "onchip", "cluster", "pipe", "pipe_cluster", "small"]


@pytest.fixture(autouse=True)
def _reset_config():
    saved = dict(_cuda.config)
    yield
    _cuda.config.clear()
    _cuda.config.update(saved)


def _seed(*parts):
    return zlib.crc32("|".join(map(str, parts)).encode())


def to_gpu(v):
    return cupy.asarray(v) if isinstance(v, np.ndarray) else v


def to_gpu_kwargs(kw):
    return {k: to_gpu(v) for k, v in kw.items()}


def host(a):
    return cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.asarray(a)


def assert_close(gpu, cpu, rtol, what):
    g = np.asarray(host(gpu), dtype=np.float64)
    c = np.asarray(cpu, dtype=np.float64)
    assert g.shape == c.shape, (what, g.shape, c.shape)
    fin = c[np.isfinite(c)]
    atol = rtol * float(np.max(np.abs(fin))) if fin.size else 0.0
    if np.dtype(getattr(gpu, "dtype", np.float64)) in (np.dtype(np.float16), BF16):
        # both sides round the same float32 computation to 16 bits, one unit of the last place
        # apart at most (rtol), also below the normal range: one step of the smallest subnormal
        # there (an H200 gave a float16 Hessian 2^-24 from the CPU's at 2.88e-5)
        tiny = 2.0 ** -24 if np.dtype(gpu.dtype) == np.dtype(np.float16) else 2.0 ** -133
        atol = max(atol, tiny)
    np.testing.assert_allclose(g, c, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)
    # infinities and NaN in the same places, with the same sign
    np.testing.assert_array_equal(np.isnan(g), np.isnan(c), err_msg=what + " (NaN positions)")
    np.testing.assert_array_equal(np.isposinf(g), np.isposinf(c), err_msg=what + " (+inf positions)")
    np.testing.assert_array_equal(np.isneginf(g), np.isneginf(c), err_msg=what + " (-inf positions)")


def check_result_types(res, grad, hess, x_gpu, reduction, per_sample_shape):
    dev = x_gpu.device.id
    cdt = _cdt(x_gpu.dtype)
    loss = res.loss if (grad or hess) else res
    assert isinstance(loss, cupy.ndarray), type(loss)
    assert loss.device.id == dev
    assert loss.dtype == cdt, (loss.dtype, cdt)
    if reduction == "none":
        assert loss.shape == per_sample_shape
    else:
        assert loss.shape == ()
    if grad or hess:
        assert type(res) is xentc.LossResult
        for asked, arr in ((grad, res.grad), (hess, res.hess)):
            if not asked:
                assert arr is None
            else:
                assert isinstance(arr, cupy.ndarray)
                assert arr.device.id == dev
                assert arr.shape == x_gpu.shape and arr.dtype == x_gpu.dtype
    else:
        assert not isinstance(res, tuple)


def compare(name, y, x, kw, *, reduction, grad, hess, rtol, per_sample_shape=None, check_types=True):
    """Run the CPU and the GPU path on the same inputs and compare everything."""
    fn = getattr(xentc, name)
    cpu = fn(y, x, reduction=reduction, grad=grad, hess=hess, **kw)
    yg, xg = to_gpu(y), to_gpu(x)
    kwg = to_gpu_kwargs(kw)
    gpu = fn(yg, xg, reduction=reduction, grad=grad, hess=hess, **kwg)
    if check_types:
        if per_sample_shape is None:
            per_sample_shape = np.asarray(cpu.loss if (grad or hess) else cpu).shape
        check_result_types(gpu, grad, hess, xg, reduction, per_sample_shape)
    if grad or hess:
        assert_close(gpu.loss, cpu.loss, rtol, "loss")
        if grad:
            assert_close(gpu.grad, cpu.grad, rtol, "grad")
        if hess:
            assert_close(gpu.hess, cpu.hess, rtol, "hess")
    else:
        assert_close(gpu, cpu, rtol, "loss")
    return gpu, cpu


# --------------------------------------------------------------------------------------
# inputs and options
# --------------------------------------------------------------------------------------
def _options():
    def sw(r, lf, d):
        return {"sample_weight": weights(r, d[0])}

    def sw_bcast(r, lf, d):
        return {"sample_weight": weights(r, d[0][:1] + (1,) * (len(d[0]) - 1), lo=1)}

    def cw(r, lf, d):
        return {"class_weight": weights(r, (d[1],), lo=1)}

    def ign(value):
        return lambda r, lf, d: {"ignore_index": value} if lf == "int" else None

    binary = {
        "plain": lambda r, lf, d: {},
        "pos_weight_scalar": lambda r, lf, d: {"pos_weight": 2.5},
        "pos_weight_vector": lambda r, lf, d: {"pos_weight": weights(r, (d[1],), lo=1)},
        "sample_weight": sw,
        "sample_weight_bcast": sw_bcast,
        "sample_weight_scalar": lambda r, lf, d: {"sample_weight": 1.75},
        "label_smoothing": lambda r, lf, d: {"label_smoothing": 0.1},
        "combo": lambda r, lf, d: {"pos_weight": weights(r, (d[1],), lo=1), **sw(r, lf, d),
                                   "label_smoothing": 0.25},
    }
    bfocal = {
        "plain": lambda r, lf, d: {},
        "gamma0": lambda r, lf, d: {"gamma": 0.0},
        "gamma0.5": lambda r, lf, d: {"gamma": 0.5},
        "gamma1": lambda r, lf, d: {"gamma": 1.0},
        "gamma3.5": lambda r, lf, d: {"gamma": 3.5},
        "gamma20.5": lambda r, lf, d: {"gamma": 20.5},
        "alpha": lambda r, lf, d: {"alpha": 0.25},
        "alpha0": lambda r, lf, d: {"alpha": 0.0},
        "sample_weight": sw,
        "label_smoothing": lambda r, lf, d: {"label_smoothing": 0.1},
        "combo": lambda r, lf, d: {"gamma": 1.5, "alpha": 0.75, **sw(r, lf, d), "label_smoothing": 0.2},
    }
    cat = {
        "plain": lambda r, lf, d: {},
        "class_weight": cw,
        "sample_weight": sw,
        "sample_weight_scalar": lambda r, lf, d: {"sample_weight": 1.75},
        "ignore_index_neg": ign(-100),
        "ignore_index_class": ign(1),
        "label_smoothing": lambda r, lf, d: {"label_smoothing": 0.1},
        "combo": lambda r, lf, d: {**cw(r, lf, d), **sw(r, lf, d), "label_smoothing": 0.2,
                                   **(ign(-100)(r, lf, d) or {})},
    }
    cfocal = {
        "plain": lambda r, lf, d: {},
        "gamma0": lambda r, lf, d: {"gamma": 0.0},
        "gamma0.5": lambda r, lf, d: {"gamma": 0.5},
        "gamma1": lambda r, lf, d: {"gamma": 1.0},
        "gamma3.5": lambda r, lf, d: {"gamma": 3.5},
        "gamma6": lambda r, lf, d: {"gamma": 6.0},   # rows with the corrections of Q (gamma > 4)
        "alpha_scalar": lambda r, lf, d: {"alpha": 0.25},
        "alpha_vector": lambda r, lf, d: {"alpha": r.integers(0, 9, d[1]) / 8},
        "class_weight": cw,
        "sample_weight": sw,
        "ignore_index_class": ign(1),
        "label_smoothing": lambda r, lf, d: {"label_smoothing": 0.1},
        "combo": lambda r, lf, d: {"gamma": 1.5, "alpha": r.integers(0, 9, d[1]) / 8, **cw(r, lf, d),
                                   **sw(r, lf, d), "label_smoothing": 0.2, **(ign(1)(r, lf, d) or {})},
    }
    return {"binary_cross_entropy": binary, "binary_focal_loss": bfocal,
            "cross_entropy": cat, "focal_loss": cfocal}


OPTIONS = _options()


def _cases():
    for name in FUNCS:
        forms = ["hard", "soft"] if name in BINARY else ["int", "soft"]
        for opt in OPTIONS[name]:
            for lf in forms:
                if opt.startswith("ignore_index") and lf != "int":
                    continue
                for from_logits in (False, True):
                    yield pytest.param(name, opt, lf, from_logits,
                                       id=f"{name}-{opt}-{lf}-{'logits' if from_logits else 'probs'}")


def _make_case(name, opt, label_form, from_logits, dtype, bin_shape=(6, 3), cat_shape=(7, 5)):
    rng = np.random.default_rng(_seed(name, opt, label_form, from_logits, np.dtype(dtype).name))
    if name in BINARY:
        y, x = make_binary(rng, bin_shape, dtype, from_logits, label_form)
        dims = (bin_shape, bin_shape[-1])
    else:
        y, x = make_categorical(rng, cat_shape, dtype, from_logits, label_form)
        dims = (cat_shape[:-1], cat_shape[-1])
    kw = OPTIONS[name][opt](rng, label_form, dims)
    if "ignore_index" in kw:
        y = y.copy()
        y[[0, 3]] = kw["ignore_index"]
    kw = dict(kw, from_logits=from_logits)
    return y, x, kw


# --------------------------------------------------------------------------------------
# every function x option x form x dtype x reduction x grad/hess, default kernel choice
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("name,opt,label_form,from_logits", list(_cases()))
def test_against_cpu(name, opt, label_form, from_logits, dtype):
    y, x, kw = _make_case(name, opt, label_form, from_logits, dtype)
    for reduction in REDUCTIONS:
        for grad, hess in FLAGS:
            compare(name, y, x, kw, reduction=reduction, grad=grad, hess=hess, rtol=RTOL[np.dtype(dtype)])


# --------------------------------------------------------------------------------------
# every categorical kernel on the same inputs
# --------------------------------------------------------------------------------------
def _force(kernel, C, dtype):
    """Select one kernel; returns False if it cannot run this case on this device."""
    mod = _cuda._module(cupy.cuda.Device().id)
    if kernel in ("pipe", "pipe_cluster") and mod.pipe_cap == 0:
        return False
    if kernel in ("cluster", "pipe_cluster"):
        if not mod.cluster:
            return False
        _cuda.config["force"] = "onchip"
        # at most a third of the row per block: clusters of 4 or 8
        per_block = max(16, -(-C // 3))
        _cuda.config["onchip_cap"] = per_block * np.dtype(dtype).itemsize
    else:
        _cuda.config["force"] = "onchip" if kernel == "pipe" else kernel
    _cuda.config["pipeline"] = kernel in ("pipe", "pipe_cluster")
    _cuda.config["log"] = []
    return True


def _used_kernel():
    log = _cuda.config.get("log") or []
    soft = [kw for kind, kw in log if kind == "softmax"]
    return soft[-1] if soft else None


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("name,opt,label_form,from_logits",
                         [c for c in _cases() if c.values[0] not in BINARY])
def test_every_kernel(name, opt, label_form, from_logits, dtype, kernel):
    C = 37
    y, x, kw = _make_case(name, opt, label_form, from_logits, dtype, cat_shape=(19, C))
    if not _force(kernel, C, dtype):
        pytest.skip("no cluster kernels on this device")
    rt = RTOL[np.dtype(dtype)]
    for reduction in ("none", "mean"):
        for grad, hess in ((True, True), (False, False), (True, False)):
            compare(name, y, x, kw, reduction=reduction, grad=grad, hess=hess, rtol=rt)
            used = _used_kernel()
            onchip_case = (from_logits and label_form == "int" and name == "cross_entropy"
                           and kw.get("gamma", 0.0) == 0.0)
            if kernel in ("onchip", "cluster", "pipe", "pipe_cluster") and onchip_case:
                assert used["kernel"] == "onchip", used
                assert used["pipe"] == kernel.startswith("pipe"), used
                if kernel.endswith("cluster"):
                    assert used["K"] > 1, used
            elif kernel in ("thread", "warp", "block"):
                assert used["kernel"] == kernel, used


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("C", [1, 2, 3, 4, 31, 32, 33, 64, 257, 1000, 1031, 4099])
def test_every_kernel_sizes(C, dtype, kernel):
    """Row lengths around the warp/vector/tile boundaries; aligned and unaligned rows."""
    rng = np.random.default_rng(_seed("sizes", C, np.dtype(dtype).name))
    N = 9
    x = rng.normal(0, 3, (N, C)).astype(dtype)
    y = rng.integers(0, C, N)
    y[2] = -100
    if not _force(kernel, C, dtype):
        pytest.skip("no cluster kernels on this device")
    rt = RTOL[np.dtype(dtype)]
    y0 = np.where(y < 0, 0, y)
    for yy, kw in ((y0, {"from_logits": True}),
                   (y, {"from_logits": True, "label_smoothing": 0.05, "class_weight": weights(rng, (C,), lo=1),
                        "ignore_index": -100}),
                   (y0, {"from_logits": True, "sample_weight": weights(rng, (N,))})):
        compare("cross_entropy", yy, x, kw, reduction="sum", grad=True, hess=True, rtol=rt)
    compare("focal_loss", y0, x, {"from_logits": True, "gamma": 2.0}, reduction="mean", grad=True, hess=True,
            rtol=rt)
    p = rng.dirichlet(np.ones(C), N).astype(dtype)
    compare("cross_entropy", y0, p, {}, reduction="none", grad=True, hess=True, rtol=rt)


@pytest.mark.parametrize("kernel", ["thread", "tile", "warp", "block", "onchip", "cluster", None])
@pytest.mark.parametrize("dtype", DTYPES)
def test_small_probabilities_elementwise(dtype, kernel):
    """Every element of the gradient and Hessian, not only the large ones, close to an exact
    (float64 / longdouble) reference: classes 20..70 below a maximum that is no round number,
    where an uncorrected exp(-(m - x)) loses about (m - x)/2 ulp (an audit found 64 ulp in the
    generic kernels; the on-chip kernels fold the correction into expf's argument); focal against
    the CPU, element by element (within the 16-ulp bar)."""
    rng = np.random.default_rng(5)
    N, C = 8, 600 if kernel in ("onchip", "cluster") else 100
    x = rng.uniform(-70, -20, (N, C)).astype(dtype)
    x[:, 0] = rng.uniform(3, 4, N).astype(dtype)
    y = np.zeros(N, np.int64)
    xl = x.astype(np.longdouble)
    P = np.exp(xl - xl.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    rest = P[:, 1:].sum(1)   # 1 - P at the maximum (the label), without the cancellation
    ref_g, ref_h = P.copy(), P * (1 - P)
    ref_g[:, 0], ref_h[:, 0] = -rest, P[:, 0] * rest
    ref_g, ref_h = ref_g.astype(np.float64), ref_h.astype(np.float64)
    if kernel is not None:
        if not _force(kernel, C, dtype):
            pytest.skip(f"no {kernel} kernels on this device")
    else:
        _cuda.config["log"] = []
    gpu = xentc.cross_entropy(cupy.asarray(y), cupy.asarray(x), from_logits=True, reduction="sum", grad=True,
                              hess=True)
    if kernel in ("thread", "warp", "block"):   # (the tile kernel where its tiles fit)
        assert _used_kernel()["kernel"] == kernel
    if kernel in ("onchip", "cluster"):
        assert _used_kernel()["kernel"] == "onchip"
        got = xentc.cross_entropy(cupy.asarray(y), cupy.asarray(x), from_logits=True, reduction="sum", grad=True)
        spacing = np.spacing(np.abs(ref_g).astype(dtype)).astype(np.float64)   # the gradient alone: one product
        assert np.max(np.abs(host(got.grad) - ref_g) / spacing) <= 4
    spacing = np.spacing(np.abs(ref_g).astype(dtype)).astype(np.float64)
    assert np.max(np.abs(host(gpu.grad) - ref_g) / spacing) <= 4
    spacing = np.spacing(np.abs(ref_h).astype(dtype)).astype(np.float64)
    assert np.max(np.abs(host(gpu.hess) - ref_h) / spacing) <= 4
    cpu = xentc.focal_loss(y, x, gamma=2.0, from_logits=True, reduction="sum", grad=True, hess=True)
    gpu = xentc.focal_loss(cupy.asarray(y), cupy.asarray(x), gamma=2.0, from_logits=True, reduction="sum",
                           grad=True, hess=True)
    for g, c in ((gpu.grad, cpu.grad), (gpu.hess, cpu.hess)):
        c64 = np.asarray(c, np.float64)
        assert np.max(np.abs(host(g) - c64) / np.spacing(np.abs(c).astype(dtype)).astype(np.float64)) <= 16


def test_refused_onchip_launches_fall_back(monkeypatch):
    """A device that refuses the pipelined on-chip kernels, then the cluster ones: each refusal
    turns that family off (one warning each) and the same call goes on with the next choice (an
    audit found a KeyError where the next choice was on-chip again)."""
    dev = cupy.cuda.Device().id
    mod = _cuda._Module(dev)   # a fresh module: the refusals change its state
    monkeypatch.setitem(_cuda._modules, dev, mod)
    if mod.pipe_cap == 0:
        pytest.skip("no pipelined on-chip kernels on this device")

    def refuse(name):
        def launch(*args, **kwargs):
            raise RuntimeError(f"CUDA_ERROR_INVALID_VALUE: invalid argument (test: {name} refused)")
        return launch

    def refuse_all(prefix):
        for name in list(dict(mod.funcs)):
            if name.startswith(prefix):
                dict.__setitem__(mod.funcs, name, refuse(name))

    rng = np.random.default_rng(11)
    C = 20000
    x = rng.normal(0, 2, (6, C)).astype(np.float32)
    y = rng.integers(0, C, 6)
    _cuda.config["log"] = []
    _cuda.config["pipeline"] = True   # (off by default)
    compare("cross_entropy", y, x, {"from_logits": True}, reduction="mean", grad=True, hess=False, rtol=1e-6)
    assert _used_kernel()["kernel"] == "onchip" and _used_kernel()["pipe"]
    refuse_all("xent_onchip_pipe")
    with pytest.warns(RuntimeWarning, match="refused"):
        compare("cross_entropy", y, x, {"from_logits": True}, reduction="mean", grad=True, hess=False, rtol=1e-6)
    used = _used_kernel()
    assert used["kernel"] == "onchip" and not used["pipe"], used
    assert mod.pipe_cap == 0
    if used["K"] > 1:   # the row needed a cluster: refuse those too, then one block a row or generic kernels
        refuse_all("xent_onchip_cl")
        with pytest.warns(RuntimeWarning, match="refused"):
            compare("cross_entropy", y, x, {"from_logits": True}, reduction="sum", grad=True, hess=True, rtol=1e-6)
        assert not mod.cluster
        assert _used_kernel()["kernel"] != "onchip" or _used_kernel()["K"] == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", ["tiny", "huge"])
def test_mean_with_extreme_weights(dtype, shift):
    """Weights whose sum's inverse is no normal number of the dtype: the same power of two comes
    out of them as on the CPU, so the GPU agrees with the CPU and with moderate weights."""
    fi = np.finfo(dtype)
    e = {"tiny": fi.minexp - 3, "huge": fi.maxexp - 4}[shift]
    rng = np.random.default_rng(9)
    w = rng.integers(0, 9, 12) / 4
    x = rng.normal(0, 2, (12, 5)).astype(dtype)
    y = rng.integers(0, 5, 12)
    for kw, ref in (({"sample_weight": np.ldexp(w, e).astype(dtype)}, {"sample_weight": w.astype(dtype)}),
                    ({"class_weight": np.ldexp(np.arange(1, 6) / 4, e)}, {"class_weight": np.arange(1, 6) / 4})):
        for name, yy, xx in (("cross_entropy", y, x), ("binary_cross_entropy", (x[:, 0] > 0).astype(dtype), x[:, 0])):
            if name.startswith("binary") and "class_weight" in kw:
                continue
            gpu, cpu = compare(name, yy, xx, dict(kw, from_logits=True), reduction="mean", grad=True, hess=True,
                               rtol=RTOL[np.dtype(dtype)])
            mod = getattr(xentc, name)(yy, xx, from_logits=True, reduction="mean", grad=True, hess=True, **ref)
            assert_close(gpu.grad, mod.grad, RTOL[np.dtype(dtype)], "grad vs moderate weights")
            assert np.isfinite(host(gpu.grad)).all()


def _label_dtype_pairs():
    """(y_pred dtype, soft labels' dtype) for every pair of float dtypes."""
    floats = [(np.float32, "f32"), (np.float64, "f64"), (np.float16, "f16")]
    floats += [(BF16, "bf16")] if BF16 is not None else []
    for p, pid in floats:
        for y, yid in floats:
            if pid != yid:
                yield pytest.param(p, y, id=f"{pid}-{yid}")


@pytest.mark.parametrize("kernel", ["thread", "tile", "warp", "block"])
@pytest.mark.parametrize("pred_dtype,label_dtype", list(_label_dtype_pairs()))
def test_soft_labels_of_another_dtype(pred_dtype, label_dtype, kernel):
    """Soft labels of any float dtype are read as they are beside y_pred of any other: never
    rounded to 16 bits (the loss agrees with the CPU's to float32 precision), the bits of the call
    with the labels first converted to the compute dtype (exact, or the kernels' own rounding), and
    no device buffer of y_pred's size beyond the gradient."""
    read_as = _cdt(pred_dtype)
    rng = np.random.default_rng(_seed("mixed-labels", np.dtype(pred_dtype).name, np.dtype(label_dtype).name))
    N, C = 150, 12 if read_as == np.float64 else 24   # the tile kernel's rows fit its shared memory
    x = rng.normal(0, 2, (N, C)).astype(pred_dtype)
    raw = rng.dirichlet(np.full(C, 0.5), N)   # not exact in 16 bits: a rounding would show in the loss
    y = raw.astype(label_dtype)
    assert _force(kernel, C, pred_dtype)
    xg, yg = cupy.asarray(x), cupy.asarray(y)
    for name, kw in (("cross_entropy", {"label_smoothing": 0.1}), ("focal_loss", {"gamma": 1.5})):
        for from_logits in (True, False):
            xx = x if from_logits else rng.dirichlet(np.ones(C), N).astype(pred_dtype)
            xxg = cupy.asarray(xx)
            cpu = getattr(xentc, name)(y, xx, from_logits=from_logits, grad=True, reduction="sum", **kw)
            with _Allocations() as hook:
                gpu = getattr(xentc, name)(yg, xxg, from_logits=from_logits, grad=True, reduction="sum", **kw)
            assert _used_kernel()["kernel"] == kernel
            assert_close(gpu.loss, cpu.loss, 1e-5, "loss")
            assert_close(gpu.grad, cpu.grad, RTOL[np.dtype(pred_dtype)], "grad")
            assert gpu.grad.dtype == xx.dtype
            big = [s for s in hook.sizes if s >= N * C * 2]   # a copy of the labels in 16 bits or more
            assert big == [xx.nbytes], hook.sizes   # the gradient only
            conv = getattr(xentc, name)(cupy.asarray(y.astype(read_as)), xxg, from_logits=from_logits, grad=True,
                                        reduction="sum", **kw)
            np.testing.assert_array_equal(host(gpu.loss), host(conv.loss))
            np.testing.assert_array_equal(host(gpu.grad).view(np.uint16 if xx.itemsize == 2 else np.uint32),
                                          host(conv.grad).view(np.uint16 if xx.itemsize == 2 else np.uint32))


@pytest.mark.parametrize("kernel", ["thread", "tile", "warp", "block"])
@pytest.mark.parametrize("pred_dtype,label_dtype", [(np.float32, np.float64), (np.float16, np.float64),
                                                    (np.float64, np.float32)])
def test_soft_labels_of_another_dtype_errors(pred_dtype, label_dtype, kernel):
    """A bad soft label is judged by its own value, not by the compute dtype's rounding of it
    (1 + 1e-10 and -1e-300 in float64 round to valid float32 labels), and reported as on the CPU,
    from logits and from probabilities."""
    N, C = 40, 12
    rng = np.random.default_rng(_seed("mixed-label-errors", np.dtype(pred_dtype).name, kernel))
    x = rng.normal(0, 2, (N, C)).astype(pred_dtype)
    p = rng.dirichlet(np.ones(C), N).astype(pred_dtype)
    y0 = rng.dirichlet(np.ones(C), N).astype(label_dtype)
    bad = ([1 + 1e-10, -1e-300, np.nan, 1.5] if np.dtype(label_dtype) == np.float64
           else [np.float32(1) + np.float32(2**-23), -np.float32(1e-45), np.nan])
    assert _force(kernel, C, pred_dtype)
    for v in bad:
        for where in ((0, 0), (17, 5), (N - 1, C - 1)):
            y = y0.copy()
            y[where] = v
            for xx, from_logits in ((x, True), (p, False)):
                with pytest.raises(ValueError) as cpu_info:
                    xentc.cross_entropy(y, xx, from_logits=from_logits)
                with pytest.raises(ValueError) as gpu_info:
                    xentc.cross_entropy(cupy.asarray(y), cupy.asarray(xx), from_logits=from_logits, grad=True)
                assert _used_kernel()["kernel"] == kernel
                assert str(gpu_info.value) == str(cpu_info.value), (v, where, from_logits)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_onchip_unaligned_views(dtype):
    """Rows whose start is not 16-byte aligned, and row strides larger than C."""
    rng = np.random.default_rng(3)
    base = rng.normal(0, 2, (12, 1203)).astype(dtype)
    y = rng.integers(0, 1200, 12)
    rt = RTOL[np.dtype(dtype)]
    for xv in (base[:, 1:1201], base[:, 3:1203], base[::2, :1200], base[:, :1200]):
        yy = y[: xv.shape[0]]
        for kernel in ("onchip", "cluster", "pipe", "pipe_cluster", None):
            if kernel is not None and not _force(kernel, xv.shape[1], dtype):
                continue
            if kernel is None:
                _cuda.config["force"] = None
                _cuda.config["onchip_cap"] = None
                _cuda.config["pipeline"] = False   # (the default)
            compare("cross_entropy", yy, xv, {"from_logits": True}, reduction="mean", grad=True, hess=True,
                    rtol=rt)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("kernel", ["pipe", "pipe_cluster", "onchip", "cluster"])
def test_onchip_many_rows_per_block(kernel, dtype):
    """Far more rows than blocks: the pipelined kernels take rows one after another from the
    counter (two slice buffers in turn); ignored rows, NaN rows and zero weights in between."""
    C = 700
    if not _force(kernel, C, dtype):
        pytest.skip(f"no {kernel} kernels on this device")
    mod = _cuda._module(cupy.cuda.Device().id)
    rng = np.random.default_rng(_seed("rows_per_block", kernel, np.dtype(dtype).name))
    N = 5 * max(mod.sm_count, 1) + 3
    x = rng.normal(0, 3, (N, C)).astype(dtype)
    x[7, 5] = np.nan
    y = rng.integers(0, C, N)
    y[::4] = -100
    sw = weights(rng, (N,))
    sw[::3] = 0.0
    rt = RTOL[np.dtype(dtype)]
    for kw in ({"from_logits": True, "ignore_index": -100},
               {"from_logits": True, "ignore_index": -100, "label_smoothing": 0.1, "sample_weight": sw}):
        for reduction, grad, hess in (("mean", True, False), ("none", True, True), ("sum", False, True)):
            _cuda.config["log"] = []
            compare("cross_entropy", y, x, kw, reduction=reduction, grad=grad, hess=hess, rtol=rt)
            used = _used_kernel()
            assert used["kernel"] == "onchip" and used["pipe"] == kernel.startswith("pipe"), used


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("kernel", ["onchip", "cluster", "pipe", "pipe_cluster"])
def test_onchip_label_at_maximum_and_wide_rows(kernel, dtype):
    """The on-chip kernels write every class's gradient in the common form, then the label y's and
    the maximum jm's again (the thread that wrote their vector): labels at the maximum, at the
    second of two tied maxima and at the first, at either end of the row and at a cluster block's
    first class. Rows whose logits all lie below 2^(emax - 1) take softmax_exp_safe, the others
    softmax_exp's tested form: huge logits whose gaps overflow, -inf and +inf among finite ones,
    and the largest magnitude just inside the safe range."""
    C = 1200
    if not _force(kernel, C, dtype):
        pytest.skip(f"no {kernel} kernels on this device")
    rng = np.random.default_rng(_seed("label_at_max", kernel, np.dtype(dtype).name))
    cdt = _cdt(dtype)
    x = rng.normal(0, 3, (14, C))
    y = rng.integers(0, C, 14)
    y[0] = np.argmax(x[0])                                  # y = jm
    x[1, [5, 900]] = x[1].max() + 1.0; y[1] = 900           # tied maxima: jm = 5, y the second
    x[2, [5, 900]] = x[2].max() + 1.0; y[2] = 5             # y = jm, the first of the ties
    x[3, C - 1] = 40.0; y[3] = 0                            # ends of the row
    x[4, 0] = 40.0; y[4] = C - 1
    x[5, C - 1] = 40.0; y[5] = C - 1                        # confident and right: a tiny loss
    x[6, C // 3] = 25.0; y[6] = C // 3 + 1                  # about where a cluster block starts
    x[7, C // 2] = 25.0; y[7] = C // 2
    safe_max = float(np.ldexp(1.0, np.finfo(cdt).maxexp - 2))   # 2^(emax - 1)
    huge = float(np.finfo(dtype).max) * 0.75
    x[8, 10], x[8, 11] = huge, -huge                        # not safe in T's range; the gap overflows
    x[9, [3, 700]] = -np.inf                                # -inf among finite logits
    x[10, 4] = np.inf                                       # +inf: a NaN row
    x[11, 0] = np.nextafter(safe_max, 0, dtype=cdt) if huge >= safe_max else huge
    x[11, 1] = -x[11, 0]                                    # safe, with the largest gap it allows
    y[11] = 1
    x[12, 0] = safe_max if huge >= safe_max else huge       # the first unsafe magnitude (16-bit: safe)
    x = x.astype(dtype)
    rt = RTOL[np.dtype(dtype)]
    cw = weights(rng, (C,), lo=1)
    for kw in ({"from_logits": True}, {"from_logits": True, "label_smoothing": 0.1, "class_weight": cw}):
        for reduction, grad, hess in (("none", True, True), ("mean", True, False), ("sum", False, True)):
            _cuda.config["log"] = []
            compare("cross_entropy", y, x, kw, reduction=reduction, grad=grad, hess=hess, rtol=rt)
            assert _used_kernel()["kernel"] == "onchip"


HALF_DTYPES = [np.float16] + ([BF16] if BF16 is not None else [])
HALF_IDS = ["f16"] + (["bf16"] if BF16 is not None else [])


@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=HALF_IDS)
@pytest.mark.parametrize("C,K", [(520, 1), (8200, 1), (8200, 2), (2056, 4), (4168, 8)])
def test_onchip_wide_16bit_slices(C, K, dtype):
    """16-bit rows in 16-byte vectors take wide slices (each exponential kept in float over the
    logits, in segments of 32 vectors a warp reads before it writes): the bits of narrow slices
    (the logits alone, each exponential computed again for the gradient) with the same cluster
    size, and the CPU's results. Slices of 65 vectors (two segments and one vector), of 1025 and
    513 (more than a block's 256 threads, the last segment one vector) and cluster blocks whose
    slices end inside a segment; rows with a NaN, -inf, a huge logit, a label at the maximum, an
    ignored row, zero and other sample weights, label smoothing with class weights."""
    mod = _cuda._module(cupy.cuda.Device().id)
    if K > 1 and not mod.cluster:
        pytest.skip("no cluster kernels on this device")
    chunk = -(-(-(-C // K)) // 8) * 8
    caps = {True: _cuda._onchip_smem(chunk, 8, 2, True), False: _cuda._onchip_smem(chunk, 8, 2, False)}
    if max(caps.values()) > mod.onchip_cap:
        pytest.skip("the slice does not fit a block's shared memory on this device")
    rng = np.random.default_rng(_seed("wide16", C, K, np.dtype(dtype).name))
    N = 9
    x = rng.normal(0, 3, (N, C))
    y = rng.integers(0, C, N)
    x[1, 7] = np.nan
    x[2, [0, C // 2, C - 1]] = -np.inf
    x[3, C - 5] = float(np.finfo(dtype).max) * 0.75     # not gap-safe in float16; its gap overflows
    y[4] = np.argmax(x[4])                               # the label at the maximum
    y[5] = -100                                          # ignored
    x = x.astype(dtype)
    sw = rng.uniform(0.5, 2, N)
    sw[6] = 0.0
    cw = rng.uniform(0.5, 2, C)
    rt = RTOL[np.dtype(dtype)]
    xg, yg = cupy.asarray(x), cupy.asarray(y)
    for kw in ({"from_logits": True, "ignore_index": -100},
               {"from_logits": True, "ignore_index": -100, "label_smoothing": 0.1, "class_weight": cw,
                "sample_weight": sw}):
        for reduction, grad, hess in (("none", True, True), ("mean", True, False), ("sum", False, True)):
            got = {}
            for wide in (True, False):
                _cuda.config.update(force="onchip", wide16=wide, onchip_cap=caps[wide], log=[])
                if wide:
                    compare("cross_entropy", y, x, kw, reduction=reduction, grad=grad, hess=hess, rtol=rt)
                    _cuda.config["log"] = []
                got[wide] = xentc.cross_entropy(yg, xg, reduction=reduction, grad=grad, hess=hess,
                                                **to_gpu_kwargs(kw))
                used = _used_kernel()
                assert used["kernel"] == "onchip" and used["wide"] == wide and used["K"] == K, used
                assert used["vec"] == 8 and used["chunk"] == chunk, used
            _same_results(got[True], got[False], (C, K, kw, reduction))


@pytest.mark.parametrize("stale", [False, True], ids=["nan", "stale"])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("C,K", [(1203, 1), (1203, 2), (1203, 4), (2401, 8), (2058, 2)])
def test_onchip_ragged_rows(C, K, dtype, stale, monkeypatch):
    """Rows that are not whole 16-byte vectors (an odd C; a view that starts inside a vector, loss
    alone) keep the on-chip kernels' vectors: a slice's first and last vectors, which also hold
    classes of the neighbouring slice or row, are copied, read and written class by class. Rows of
    every place within a vector (2058 classes: float64 rows are whole vectors), the extreme classes, NaN, -inf and the maximum in those edge
    vectors, labels there and at a cluster block's edges, an ignored row, smoothing with class
    weights; the CPU's results, and for 16-bit rows the bits of narrow slices. stale: on the CUDA
    emulator, shared memory starts as finite values (as a GPU's earlier blocks leave it) instead of
    NaN, which a maximum would not take in."""
    if stale:
        monkeypatch.setenv("XENTC_EMU_SMEM_FILL", "0x4b")
    mod = _cuda._module(cupy.cuda.Device().id)
    if K > 1 and not mod.cluster:
        pytest.skip("no cluster kernels on this device")
    vec = _cuda._vec(np.dtype(dtype) == np.float64, _cuda._storage(np.empty(0, dtype)))
    rng = np.random.default_rng(_seed("ragged", C, K, np.dtype(dtype).name))
    N = 2 * vec + 5                                      # rows at every place within a vector
    x = rng.normal(0, 3, (N, C))
    y = rng.integers(0, C, N)
    chunk = -(-(-(-C // K)) // vec) * vec
    x[0, 0] = 30.0; y[0] = 0                             # the maximum and the label at class 0
    x[1, C - 1] = 30.0; y[1] = C - 1                     # ... at the last class
    x[2, 1] = np.nan                                     # NaN in a row's first vector
    x[3, [0, C - 1]] = -np.inf                           # -inf at both ends
    b = min(chunk, C - 1)
    y[4] = b; x[4, b - 1] = 20.0                         # a cluster block's first and last classes
    y[5] = -100                                          # ignored
    x[6, C - 2] = float(np.finfo(dtype).max) * 0.75      # not gap-safe in 16-bit
    x = x.astype(dtype)
    cw = rng.uniform(0.5, 2, C)
    sw = rng.uniform(0.5, 2, N)
    rt = RTOL[np.dtype(dtype)]
    wides = (True, False) if np.dtype(dtype).itemsize == 2 else (True,)
    for kw in ({"from_logits": True, "ignore_index": -100},
               {"from_logits": True, "ignore_index": -100, "label_smoothing": 0.1, "class_weight": cw,
                "sample_weight": sw}):
        for reduction, grad, hess in (("none", True, True), ("mean", True, False), ("sum", False, False)):
            got = {}
            for wide in wides:
                cap = _cuda._onchip_smem(chunk, vec, np.dtype(dtype).itemsize, wide and len(wides) > 1, True)
                if cap > mod.onchip_cap:
                    pytest.skip("the slice does not fit a block's shared memory on this device")
                _cuda.config.update(force="onchip", wide16=wide, onchip_cap=cap, log=[])
                compare("cross_entropy", y, x, kw, reduction=reduction, grad=grad, hess=hess, rtol=rt)
                used = _used_kernel()
                assert used["vec"] == vec and used["ragged"] == (C % vec != 0) and used["K"] == K, used
                got[wide] = xentc.cross_entropy(cupy.asarray(y), cupy.asarray(x), reduction=reduction, grad=grad,
                                                hess=hess, **to_gpu_kwargs(kw))
            if len(wides) > 1:
                _same_results(got[True], got[False], (C, K, kw, reduction))
    # a view starting inside a vector: its loss alone takes the vectors; with a gradient (a new
    # array, whose rows start elsewhere within a vector) a class at a time
    _cuda.config.update(force="onchip", wide16=True, onchip_cap=None, log=[])
    base = cupy.asarray(rng.normal(0, 3, (N, C + vec)).astype(dtype))
    xv = base[:, 1:C + 1]
    yv = rng.integers(0, C, N)
    for grad in (False, True):
        gpu = xentc.cross_entropy(cupy.asarray(yv), xv, from_logits=True, grad=grad)
        cpu = xentc.cross_entropy(yv, cupy.asnumpy(xv), from_logits=True, grad=grad)
        for g, c in zip(_results(gpu), _results(cpu)):
            if g is not None:
                assert_close(g, c, rt, f"view, grad={grad}")
        used = _used_kernel()
        assert used["vec"] == (1 if grad else vec) and used["ragged"] == (not grad), used


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("C", [1, 2, 7, 8, 9, 10, 16, 17, 31, 32, 33])
def test_small_classes_kernel(C, dtype):
    """The few-classes kernel (a warp per 32 rows): row counts around the warp and block sizes,
    NaN and infinite rows, each option it takes, each output combination, and that it ran."""
    rng = np.random.default_rng(_seed("small", C, np.dtype(dtype).name))
    rt = RTOL[np.dtype(dtype)]
    takes = C <= _cuda._SMALL_CMAX[np.dtype(dtype) == np.float64][-1]
    for N in (1, 31, 33, 256, 300):
        x = rng.normal(0, 4, (N, C)).astype(dtype)
        if N > 3:
            x[1, rng.integers(0, C)] = np.nan
            x[2, :] = -np.inf
            x[3, 0] = np.inf
        y = rng.integers(0, C, N)
        y_ign = np.where(np.arange(N) % 5 == 4, -100, y)
        sw = weights(rng, (N,))
        sw[::7] = 0.0
        for yy, kw in ((y, {"from_logits": True}),
                       (y_ign, {"from_logits": True, "ignore_index": -100, "label_smoothing": 0.1,
                                "class_weight": weights(rng, (C,), lo=1)}),
                       (y, {"from_logits": True, "sample_weight": sw, "label_smoothing": 0.05})):
            for reduction, grad, hess in (("none", True, True), ("mean", True, False), ("sum", False, True),
                                          ("mean", False, False)):
                for few in (True, False):   # the exact-C kernel (the default), the one for a bound
                    _cuda.config["few"] = few
                    _cuda.config["log"] = []
                    compare("cross_entropy", yy, x, kw, reduction=reduction, grad=grad, hess=hess, rtol=rt)
                    want = ("few" if few else "small") if takes else None
                    assert (_used_kernel()["kernel"] if takes else None) == want, _used_kernel()


def _few_rows(rng, N, C, dtype):
    """Rows for the few-classes kernels: random logits, then rows that each test one case: a NaN,
    all -inf, +inf (once, twice: ties), huge logits (whose gaps overflow), the largest gap_safe
    magnitude and the first that is not, -inf beside finite logits, equal logits, ties at the
    maximum, the label at the maximum and at the row's ends, classes far below the maximum."""
    big = np.finfo(dtype).max
    x = rng.normal(0, 4, (N, C)).astype(dtype)
    y = rng.integers(0, C, N)
    wide = np.dtype(dtype).itemsize >= 4   # (16-bit logits: the largest is gap_safe in float32)
    safe = (np.float64(2.0 ** 1022) if np.dtype(dtype) == np.float64 else np.float32(2.0 ** 126)) if wide else big
    below = np.nextafter(safe, 0) if wide else big
    one, last = min(1, C - 1), C - 1
    far = -60.0 - np.arange(C)
    far[0] = 3.25
    every = slice(None)
    rows = [  # ((index, value) assignments, label)
        (((one, np.nan),), 0), (((every, -np.inf),), last), (((last, np.inf),), last),
        (((slice(0, 2), np.inf),), one), (((0, big),), one), (((0, big), (one, -big)), 0), (((last, below),), 0),
        (((last, safe),), last), (((0, -np.inf),), 0), (((every, 1.5),), C // 2), (((slice(0, C, 2), 7.0),), 2 % C),
        (((every, far),), 0), (((every, far),), last),
    ]
    for i, (sets, label) in enumerate(rows):
        if 4 + i < N:
            for where, v in sets:
                x[4 + i, where] = v
            y[4 + i] = label
    return x, y


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_few_classes_exact_kernel(dtype):
    """The kernel compiled for the exact C, for every C it is built for (float32; a choice in the
    other dtypes): row counts around the warp and block sizes, the rows of _few_rows, sample
    weights with zeros, ignore_index, class weights with and without label smoothing, each output
    combination and reduction; against the CPU (the 16-ulp bar), and that it ran."""
    top = _cuda._SMALL_CMAX[np.dtype(dtype) == np.float64][-1]
    sizes = range(1, top + 1) if np.dtype(dtype) == np.float32 else (1, 2, 3, 5, 10, 16, 17, 31, 32)
    rt = RTOL[np.dtype(dtype)]
    for C in (c for c in sizes if c <= top):
        rng = np.random.default_rng(_seed("few", C, np.dtype(dtype).name))
        for N in ((1, 33, 300) if C % 4 else (32, 257)):
            x, y = _few_rows(rng, N, C, dtype)
            sw = weights(rng, (N,))
            sw[::7] = 0.0
            cw = weights(rng, (C,), lo=1)
            y_ign = np.where(np.arange(N) % 5 == 3, -100, y)
            for yy, kw in ((y, {"from_logits": True}),
                           (y_ign, {"from_logits": True, "ignore_index": -100, "sample_weight": sw}),
                           (y, {"from_logits": True, "class_weight": cw}),
                           (y_ign, {"from_logits": True, "ignore_index": -100, "label_smoothing": 0.1,
                                    "class_weight": cw, "sample_weight": sw})):
                for reduction, grad, hess in (("none", True, False), ("mean", True, False), ("sum", False, False),
                                              ("none", True, True), ("mean", False, True)):
                    _cuda.config["log"] = []
                    compare("cross_entropy", yy, x, kw, reduction=reduction, grad=grad, hess=hess, rtol=rt)
                    assert _used_kernel()["kernel"] == "few", (C, _used_kernel())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("C", [2, 10, 16])
def test_few_classes_exact_kernel_elementwise(C, dtype):
    """Every element of the exact-C kernel's gradient (4 ulp) and Hessian (8 ulp) close to a
    longdouble reference (its gradient is e_j (ds S / s), ds S / s rounded once: two roundings and
    the exponential's), also tiny ones far below the maximum and the maximum's of confident rows,
    and the loss within 4 ulp; the kernel for a bound on C (few off) is held to the same."""
    rng = np.random.default_rng(_seed("few-ulp", C, np.dtype(dtype).name))
    N = 300
    x = rng.uniform(-70, 5, (N, C)).astype(dtype)
    y = rng.integers(0, C, N)
    xl = x.astype(np.longdouble)
    m = xl.max(1, keepdims=True)
    P = np.exp(xl - m)
    P /= P.sum(1, keepdims=True)
    ref_g = P.copy()
    rows = np.arange(N)
    jm = x.argmax(1)
    ref_g[rows, y] -= 1
    # at the label, 1 - P_y without the cancellation where it is the maximum
    at_max = y == jm
    others = P.copy()
    others[rows, jm] = 0
    rest = others.sum(1)
    ref_g[rows[at_max], y[at_max]] = -rest[at_max]
    e_rest = np.exp(xl - m)
    e_rest[rows, jm] = 0   # log1p of the rest: no cancellation for the tiny losses of confident rows
    ref_l = (np.log1p(e_rest.sum(1)) + (m[:, 0] - xl[rows, y])).astype(np.float64)
    ref_h = P * (1 - P)
    ref_h[rows, jm] = P[rows, jm] * rest   # 1 - P at the maximum, without the cancellation
    ref_g, ref_h = (ref_g / N).astype(np.float64), (ref_h / N).astype(np.float64)
    for few in (True, False):
        _cuda.config["few"] = few
        _cuda.config["log"] = []
        got = xentc.cross_entropy(cupy.asarray(y), cupy.asarray(x), from_logits=True, reduction="mean", grad=True)
        assert _used_kernel()["kernel"] == ("few" if few else "small")
        spacing = np.spacing(np.abs(ref_g).astype(dtype)).astype(np.float64)
        assert np.max(np.abs(host(got.grad) - ref_g) / spacing) <= 4, few
        both = xentc.cross_entropy(cupy.asarray(y), cupy.asarray(x), from_logits=True, reduction="mean", grad=True,
                                   hess=True)
        assert np.max(np.abs(host(both.grad) - ref_g) / spacing) <= 4, few
        # S P (1 - P) ds: the exponential's rounding and five more (1/s, P, 1 - P, two products),
        # as on the CPU (which is 5-7 ulp off in float64 on such rows too)
        spacing_h = np.spacing(np.abs(ref_h).astype(dtype)).astype(np.float64)
        assert np.max(np.abs(host(both.hess) - ref_h) / spacing_h) <= 8, few
        loss = xentc.cross_entropy(cupy.asarray(y), cupy.asarray(x), from_logits=True, reduction="none")
        spacing = np.spacing(np.abs(ref_l).astype(dtype)).astype(np.float64)
        assert np.max(np.abs(host(loss) - ref_l) / spacing) <= 4, few


# --------------------------------------------------------------------------------------
# sizes: many blocks, large rows, float16
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_binary_many_blocks(dtype):
    rng = np.random.default_rng(11)
    n = 3 * 2048 + 77
    y, x = make_binary(rng, (n,), dtype, True, "soft")
    sw = weights(rng, (n,))
    rt = RTOL[np.dtype(dtype)]
    for kw in ({"from_logits": True}, {"from_logits": True, "sample_weight": sw, "pos_weight": 2.0}):
        for reduction in REDUCTIONS:
            compare("binary_cross_entropy", y, x, kw, reduction=reduction, grad=True, hess=True, rtol=rt)
    p = rng.uniform(0, 1, n).astype(dtype)
    compare("binary_focal_loss", y, p, {"gamma": 2.0}, reduction="mean", grad=True, hess=False, rtol=rt)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_binary_gradient_near_the_label(dtype, eps):
    """From probabilities near the minimum (a soft or smoothed label y_s where the sides weigh
    alike, c1/(c0 + c1) where not) the gradient's two terms cancel; the CPU computes their
    difference to full relative accuracy (test_accuracy.py checks it against mpmath), and so must
    the GPU: each element within 16 ulp of the CPU's own value, not of the terms' size (the
    two-term form is thousands of ulp off there). Points around y_s and around the minimum for
    the positive-side weights 2 and 0.5, each through pos_weight absent, 1, 2 (scalar), per label
    (2, 0.5) with sample weights, and focal gamma 0 with alpha 0.25."""
    ys, ps = [], []
    e = float(dtype(eps))
    for y in [0.3, 0.1, 0.7, 1e-3, 1 / 3, 0.0, 1.0]:
        y = float(dtype(y))
        s = y * (1 - e) + e / 2
        for w in (1.0, 2.0, 0.5, 1 / 3):   # 1/3: alpha 0.25's weights, 0.25 against 0.75
            if s in (0.0, 1.0) and w != 1.0:
                continue
            base = dtype(w * s / ((1 - s) + w * s))
            for toward in (0.0, 2.0):
                p = base
                for _ in range(6):
                    p = np.nextafter(p, dtype(toward))
                    if 0 < p < 1:
                        ys.append(y)
                        ps.append(float(p))
    n = len(ps)
    y = np.array(ys, dtype).reshape(n, 1).repeat(2, axis=1)
    x = np.array(ps, dtype).reshape(n, 1).repeat(2, axis=1)
    sw = np.resize(np.array([1.0, 0.375, 3.0], dtype), (n, 2))
    cases = [("binary_cross_entropy", {}), ("binary_cross_entropy", {"pos_weight": np.ones(2, dtype), "sample_weight": sw}),
             ("binary_cross_entropy", {"pos_weight": 2.0}),
             ("binary_cross_entropy", {"pos_weight": np.array([2.0, 0.5], dtype), "sample_weight": sw}),
             ("binary_focal_loss", {"gamma": 0.0, "alpha": 0.25})]
    for func, kw in cases:
        cpu = getattr(xentc, func)(y, x, label_smoothing=eps, reduction="none", grad=True, **kw)
        gkw = {k: cupy.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        gpu = getattr(xentc, func)(cupy.asarray(y), cupy.asarray(x), label_smoothing=eps, reduction="none",
                                   grad=True, **gkw)
        c = cpu.grad.astype(np.float64)
        g = host(gpu.grad).astype(np.float64)
        ulp = np.spacing(np.maximum(np.abs(cpu.grad), np.finfo(dtype).tiny)).astype(np.float64)
        err = np.abs(g - c) / ulp
        assert err.max() <= 16, (func, list(kw), float(err.max()), float(x.flat[err.argmax()]), float(y.flat[err.argmax()]))
    # the loss and Hessian with unbalanced sides, as everywhere, to the usual tolerance
    compare("binary_cross_entropy", y, x, {"pos_weight": 2.0, "label_smoothing": eps}, reduction="none",
            grad=True, hess=True, rtol=RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_focal_hessian_gamma_near_zero(dtype):
    """Subnormal probabilities with gamma just above 0, where p^(gamma - 1) overflows: the
    Hessian is finite or inf as on the CPU, never NaN (the power's correction made NaN there)."""
    fi = np.finfo(dtype)
    p = np.array([fi.smallest_subnormal * 3, fi.tiny / 1000, fi.tiny / 7, fi.tiny, 1e-30, 0.5], dtype)
    for y in (0.0, 1.0, 0.3):
        for gamma in (2.0**-8, 0.01, 0.03):
            gpu, _ = compare("binary_focal_loss", np.full(p.shape, y, dtype), p, {"gamma": gamma},
                             reduction="none", grad=True, hess=True, rtol=RTOL[np.dtype(dtype)])
            assert not np.isnan(host(gpu.hess)).any() and not np.isnan(host(gpu.grad)).any()


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_binary_focal_gradient_near_the_minimum(eps):
    """float32 binary focal loss (gamma != 0) from probabilities with soft or smoothed labels: the
    CPU computes the gradient in float64 wherever its sides can cancel (test_accuracy.py holds it
    to the bar near the minimum p*, where float terms were 1e8 ulp off), and so must the GPU: each
    element within 16 ulp of the CPU's own value, at points around p* for gamma 2, 2.5, 0.5 and 7,
    alpha absent and 0.25, with sample weights (float16 y_pred computes in float32 the same way)."""
    dtype = np.float32
    e = float(dtype(eps))
    labels = [float(dtype(v)) for v in [0.3, 0.1, 0.7, 1e-3, 1 / 3, 0.9999]] + ([0.0, 1.0] if e else [])
    for gamma in (2.0, 2.5, 0.5, 7.0):
        for alpha in (None, 0.25):
            a1, a0 = (1.0, 1.0) if alpha is None else (float(dtype(alpha)), 1 - float(dtype(alpha)))
            pstar = focal_prob_minimum([v * (1 - e) + e / 2 for v in labels], a1, a0, gamma)
            ys, ps = [], []
            for y, c in zip(labels, pstar):
                for toward in (0.0, 2.0):
                    p = dtype(c)
                    for _ in range(6):
                        p = np.nextafter(p, dtype(toward))
                        if 0 < p < 1:
                            ys.append(y)
                            ps.append(float(p))
                for f in (0.1, 0.5, 1.5):
                    if 0 < c * f < 1:
                        ys.append(y)
                        ps.append(float(dtype(c * f)))
            y = np.array(ys, dtype)
            x = np.array(ps, dtype)
            sw = np.resize(np.array([1.0, 0.375, 3.0], dtype), y.size)
            kw = {"gamma": gamma, "alpha": alpha, "label_smoothing": eps}
            cpu = xentc.binary_focal_loss(y, x, sample_weight=sw, reduction="none", grad=True, **kw)
            gpu = xentc.binary_focal_loss(cupy.asarray(y), cupy.asarray(x), sample_weight=cupy.asarray(sw),
                                          reduction="none", grad=True, **kw)
            c = cpu.grad.astype(np.float64)
            g = host(gpu.grad).astype(np.float64)
            ulp = np.spacing(np.maximum(np.abs(cpu.grad), np.finfo(dtype).tiny)).astype(np.float64)
            err = np.abs(g - c) / ulp
            assert err.max() <= 16, (kw, float(err.max()), float(x[err.argmax()]), float(y[err.argmax()]))
            compare("binary_focal_loss", y, x, kw, reduction="none", grad=True, hess=True, rtol=RTOL[np.dtype(dtype)])


# --------------------------------------------------------------------------------------
# binary cross entropy from logits: the fast kernel (xent_binary_vec) and its fallbacks
# --------------------------------------------------------------------------------------
def _binary_kernels_used():
    return [kw.get("kernel") for kind, kw in (_cuda.config.get("log") or []) if kind == "binary"]


def _vec_sizes(dtype):
    """Lengths around the pack, round and block sizes of xent_binary_vec for this dtype."""
    r = _cuda._BINARY_VEC_PACKS * (16 // np.dtype(dtype).itemsize)   # elements per round
    return [1, 3, 4, 5, r - 1, r, r + 1, 2 * r + 3, 3 * r]


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("rounds", [None, 1, 2, 3])
def test_binary_vec_sizes_and_rounds(dtype, rounds):
    """Every length class (partial last block only, full blocks, full blocks and a tail) with one
    or several rounds per block, against the CPU and against the general kernel."""
    rt = RTOL[np.dtype(dtype)]
    for n in _vec_sizes(dtype):
        rng = np.random.default_rng(_seed("vec", n, rounds, np.dtype(dtype).name))
        y, x = make_binary(rng, (n,), dtype, True, "soft")
        for kw in ({}, {"label_smoothing": 0.1, "pos_weight": 2.5}, {"sample_weight": weights(rng, (n,))}):
            kw = dict(kw, from_logits=True)
            for reduction in REDUCTIONS:
                _cuda.config["binary_vec_rounds"] = rounds
                _cuda.config["log"] = []
                gpu, _ = compare("binary_cross_entropy", y, x, kw, reduction=reduction, grad=True, hess=True,
                                 rtol=rt)
                assert _binary_kernels_used() == ["vec"], (n, kw)
                # the general kernel on the same inputs: the same formulas, so close to the last bits
                _cuda.config["binary_vec"] = False
                gen, _ = compare("binary_cross_entropy", y, x, kw, reduction=reduction, grad=True, hess=True,
                                 rtol=rt)
                _cuda.config["binary_vec"] = True
                for a, b in zip(gpu, gen):
                    assert_close(a, host(b), rt, "vec vs general")


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_binary_vec_options_and_outputs(dtype):
    """Options the fast kernel takes (eps, scalar / one-element pos_weight, sample_weight, alpha with
    gamma = 0) and every combination of outputs; and the options it leaves to the general kernel."""
    rt = RTOL[np.dtype(dtype)]
    n = 2 * _cuda._BINARY_VEC_PACKS * (16 // np.dtype(dtype).itemsize) + 37
    rng = np.random.default_rng(_seed("vec_opts", np.dtype(dtype).name))
    y, x = make_binary(rng, (n,), dtype, True, "hard")
    y2, x2 = y.reshape(n, 1), x.reshape(n, 1)
    sw = weights(rng, (n,))
    fast = [("binary_cross_entropy", y, x, {}), ("binary_cross_entropy", y, x, {"label_smoothing": 0.25}),
            ("binary_cross_entropy", y, x, {"pos_weight": 3.0}),
            ("binary_cross_entropy", y2, x2, {"pos_weight": np.array([0.5])}),
            ("binary_cross_entropy", y, x, {"pos_weight": 0.0, "sample_weight": sw}),
            ("binary_cross_entropy", y, x, {"sample_weight": 1.75}),
            ("binary_focal_loss", y, x, {"gamma": 0.0, "alpha": 0.25, "label_smoothing": 0.1})]
    general = [("binary_cross_entropy", y.reshape(1, n), x.reshape(1, n), {"pos_weight": weights(rng, (n,), lo=1)}),
               ("binary_focal_loss", y, x, {"gamma": 2.0}),
               ("binary_cross_entropy", y, (1 / (1 + np.exp(-x))).astype(dtype), {"from_logits": False})]
    for expect, cases in (("vec", fast), ("general", general)):
        for name, yy, xx, kw in cases:
            kw = dict({"from_logits": True}, **kw)
            for reduction in REDUCTIONS:
                for grad, hess in FLAGS:
                    _cuda.config["log"] = []
                    compare(name, yy, xx, kw, reduction=reduction, grad=grad, hess=hess, rtol=rt)
                    assert _binary_kernels_used() == [expect], (name, kw)


def _gpu_view(a, offset):
    """a on the GPU starting `offset` elements into a larger buffer (misaligned for offset % 4)."""
    buf = cupy.zeros(a.size + offset, dtype=a.dtype)
    buf[offset:] = cupy.asarray(a.reshape(-1))
    return buf[offset:].reshape(a.shape)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_binary_vec_alignment_fallback(dtype):
    """Arrays not 16-byte aligned (views such as y_pred[1:]) take the general kernel; the same
    values aligned take the fast one; both agree with the CPU."""
    rt = RTOL[np.dtype(dtype)]
    n = 3 * _cuda._BINARY_VEC_PACKS * (16 // np.dtype(dtype).itemsize) + 5
    rng = np.random.default_rng(_seed("vec_align", np.dtype(dtype).name))
    y, x = make_binary(rng, (n,), dtype, True, "soft")
    sw = weights(rng, (n,))
    for oy, ox, osw in ((0, 0, 0), (1, 1, 1), (0, 1, 0), (1, 0, 0), (0, 0, 1), (2, 2, 2)):
        for kw in ({}, {"sample_weight": sw}):
            if "sample_weight" not in kw and osw:
                continue
            cpu = xentc.binary_cross_entropy(y, x, from_logits=True, reduction="none", grad=True, hess=True, **kw)
            kwg = {k: _gpu_view(v, osw) for k, v in kw.items()}
            _cuda.config["log"] = []
            gpu = xentc.binary_cross_entropy(_gpu_view(y, oy), _gpu_view(x, ox), from_logits=True,
                                             reduction="none", grad=True, hess=True, **kwg)
            aligned = all((o * np.dtype(dtype).itemsize) % 16 == 0 for o in (oy, ox))
            if not osw:   # (_api may pass sample_weight on as a copy: its view offset need not reach the kernel)
                assert _binary_kernels_used() == ["vec" if aligned else "general"], (oy, ox, osw)
            for g, c, what in zip(gpu, cpu, ("loss", "grad", "hess")):
                assert_close(g, c, rt, f"{what} offsets {oy, ox, osw}")
    # slicing on the host side too: y_pred[1:] of a larger array
    yb, xb = make_binary(rng, (n + 1,), dtype, True, "hard")
    ygb, xgb = cupy.asarray(yb), cupy.asarray(xb)
    cpu = xentc.binary_cross_entropy(yb[1:], xb[1:], from_logits=True, grad=True)
    _cuda.config["log"] = []
    gpu = xentc.binary_cross_entropy(ygb[1:], xgb[1:], from_logits=True, grad=True)
    assert _binary_kernels_used() == ["general"]
    assert_close(gpu.loss, cpu.loss, rt, "loss of y[1:]")
    assert_close(gpu.grad, cpu.grad, rt, "grad of y[1:]")


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_binary_vec_special_values(dtype):
    """NaN, infinite, huge and subnormal-producing logits and -0.0 / 0 / 1 labels at every position
    of a pack, inside full blocks (the packed loop) and in the partial last block."""
    rt = RTOL[np.dtype(dtype)]
    r = _cuda._BINARY_VEC_PACKS * (16 // np.dtype(dtype).itemsize)
    n = 2 * r + 13
    rng = np.random.default_rng(_seed("vec_special", np.dtype(dtype).name))
    y, x = make_binary(rng, (n,), dtype, True, "soft")
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 40.0, -40.0, 100.0, -100.0, 1e4, -1e4, 88.0, -88.0],
                        dtype=dtype)
    labels = np.array([0.0, -0.0, 1.0, 0.5], dtype=dtype)
    for start in (0, 1, 2, 3, r - 3, n - len(specials)):
        x[start:start + len(specials)] = specials
        y[start:start + len(specials)] = labels[np.arange(len(specials)) % 4]
    for kw in ({}, {"label_smoothing": 0.1}, {"pos_weight": 0.0}, {"sample_weight": weights(rng, (n,))}):
        for reduction in ("none", "sum"):
            _cuda.config["log"] = []
            compare("binary_cross_entropy", y, x, dict(kw, from_logits=True), reduction=reduction, grad=True,
                    hess=True, rtol=rt)
            assert _binary_kernels_used() == ["vec"]


def _vec_bad_label_cases(dtype):
    r = _cuda._BINARY_VEC_PACKS * (16 // np.dtype(dtype).itemsize)
    n = 3 * r + 7          # with rounds = 2: one full block of two rounds, one partial block
    for where in ([0], [1], [n // 2], [r - 1], [r], [2 * r + 5], [n - 1], [n - 1, 3], [2 * r + 1, r + 2],
                  [n - 2, n - 5]):
        for bad in (1.5, -0.25, np.nan):
            yield n, where, bad


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("rounds", [1, 2])
def test_binary_vec_first_bad_label(dtype, rounds):
    """A bad label (outside [0, 1] or NaN) at the first, a middle or the last element, in the first
    or a later round of a block or in the partial last block, several at once: the same error as
    the CPU (the first in index order); -0.0 labels are valid."""
    for n, where, bad in _vec_bad_label_cases(dtype):
        rng = np.random.default_rng(_seed("vec_bad", n, tuple(where), bad))
        y, x = make_binary(rng, (n,), dtype, True, "hard")
        y[rng.integers(0, n, 50)] = -0.0
        y[where] = bad
        with pytest.raises(Exception) as cpu_info:
            xentc.binary_cross_entropy(y, x, from_logits=True)
        _cuda.config["binary_vec_rounds"] = rounds
        _cuda.config["log"] = []
        with pytest.raises(Exception) as gpu_info:
            xentc.binary_cross_entropy(to_gpu(y), to_gpu(x), from_logits=True, grad=True)
        # float32 / float64: the plain-call shortcut's launch, then the general path's, which raises
        assert set(_binary_kernels_used()) == {"vec"}
        assert type(gpu_info.value) is type(cpu_info.value)
        assert str(gpu_info.value) == str(cpu_info.value), (where, bad)
    # -0.0 labels alone are no error
    y, x = make_binary(np.random.default_rng(1), (n,), dtype, True, "hard")
    y[::3] = -0.0
    compare("binary_cross_entropy", y, x, {"from_logits": True}, reduction="mean", grad=True, hess=False,
            rtol=RTOL[np.dtype(dtype)])


def test_binary_vec_deterministic():
    rng = np.random.default_rng(_seed("vec_det"))
    n = 5 * _cuda._BINARY_VEC_PACKS * 4 + 11
    y, x = make_binary(rng, (n,), np.float32, True, "soft")
    yg, xg = to_gpu(y), to_gpu(x)
    _cuda.config["binary_vec_rounds"] = 2
    r1 = xentc.binary_cross_entropy(yg, xg, from_logits=True, grad=True, hess=True)
    r2 = xentc.binary_cross_entropy(yg, xg, from_logits=True, grad=True, hess=True)
    for a, b in zip(r1, r2):
        assert host(a).tobytes() == host(b).tobytes()


def _binary_label_dtypes():
    """(y_pred dtype, label dtype) of binary labels the kernels read in their own dtype: every one
    beside float32, a few beside the others (each pair's kernels are a part of their own to build)."""
    halves = [("float16", np.dtype(np.float16))] + ([("bfloat16", np.dtype(BF16))] if BF16 is not None else [])
    for ydt in ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float64"):
        yield pytest.param(np.float32, np.dtype(ydt), id=f"f32-{ydt}")
    for name, h in halves:
        yield pytest.param(np.float32, h, id=f"f32-{name}")
    for ydt in ("bool", "int64", "float32"):
        yield pytest.param(np.float64, np.dtype(ydt), id=f"f64-{ydt}")
    yield pytest.param(np.float64, np.dtype(np.float16), id="f64-float16")
    for ydt in ("bool", "int8", "uint64", "int64", "float64"):
        yield pytest.param(np.float16, np.dtype(ydt), id=f"f16-{ydt}")
    if BF16 is not None:
        yield pytest.param(np.float16, np.dtype(BF16), id="f16-bfloat16")
        for ydt in ("bool", "int32", "float16", "float64"):
            yield pytest.param(BF16, np.dtype(ydt), id=f"bf16-{ydt}")


def _is_float_label(dt) -> bool:
    return dt.kind == "f" or dt.name == "bfloat16"


def _results(res):
    """(loss, grad, hess) of a call's result (grad and hess None when not asked for)."""
    return tuple(res) if isinstance(res, xentc.LossResult) else (res, None, None)


@pytest.mark.parametrize("dtype,label_dtype", list(_binary_label_dtypes()))
def test_binary_labels_of_another_dtype(dtype, label_dtype):
    """Binary labels of another dtype are read as they are: the bits of the same call with the labels
    converted first (to y_pred's dtype where that is exact, integer and bool labels beside 16-bit
    y_pred, else to the compute dtype), the CPU's results, no device buffer of y_pred's size beyond
    the gradient, in the fast kernel (labels at any offset of a whole pack, 4 bytes for bool beside
    float32) and the general one (focal, probabilities, labels off their pack alignment)."""
    rt = RTOL[np.dtype(dtype)]
    cdt = _cdt(dtype)
    r = _cuda._BINARY_VEC_PACKS * (16 // np.dtype(dtype).itemsize)
    n = 2 * r + 37
    rng = np.random.default_rng(_seed("bin-labels", np.dtype(dtype).name, label_dtype.name))
    x = rng.normal(0, 2, n).astype(dtype)
    p = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(dtype)
    if _is_float_label(label_dtype):   # soft labels, not all exact in the narrower type
        y = rng.uniform(0, 1, n).astype(label_dtype)
        y[::7] = 1.0
    else:
        y = rng.integers(0, 2, n).astype(label_dtype)
    conv_dtype = cdt if _is_float_label(label_dtype) else np.dtype(dtype)
    sw = weights(rng, (n,)).astype(cdt)   # (weights of another dtype are converted: a buffer of n)
    pack = min(16, label_dtype.itemsize * 16 // np.dtype(dtype).itemsize)   # bytes of a label pack
    cases = [("binary_cross_entropy", x, {"from_logits": True}, 0, "vec"),
             ("binary_cross_entropy", x, {"from_logits": True, "sample_weight": sw, "label_smoothing": 0.1}, 0,
              "vec"),
             ("binary_cross_entropy", x, {"from_logits": True, "pos_weight": 2.0}, pack, "vec"),
             ("binary_focal_loss", x, {"from_logits": True, "gamma": 2.0, "alpha": 0.25}, 0, "general"),
             ("binary_cross_entropy", p, {"from_logits": False}, 0, "general")]
    if pack > label_dtype.itemsize:
        cases.append(("binary_cross_entropy", x, {"from_logits": True}, label_dtype.itemsize, "general"))
    for name, xx, kw, offset, kernel in cases:
        fn = getattr(xentc, name)
        xg, yg = cupy.asarray(xx), _gpu_view(y, offset // y.itemsize)
        kwg = to_gpu_kwargs(kw)
        for reduction, grad, hess in (("mean", True, False), ("none", True, True), ("sum", False, False)):
            cpu = fn(y, xx, reduction=reduction, grad=grad, hess=hess, **kw)
            _cuda.config["log"] = []
            with _Allocations() as hook:
                gpu = fn(yg, xg, reduction=reduction, grad=grad, hess=hess, **kwg)
            assert _binary_kernels_used() == [kernel], (name, kw, offset)
            big = [s for s in hook.sizes if s >= min(xx.nbytes, y.nbytes) // 2]
            assert sorted(big) == sorted([xx.nbytes] * (grad + hess) + ([n * cdt.itemsize] if reduction == "none"
                                                                         else [])), (name, hook.sizes)
            conv = fn(cupy.asarray(y.astype(conv_dtype)), xg, reduction=reduction, grad=grad, hess=hess, **kwg)
            for what, g, c, v in zip(("loss", "grad", "hess"), _results(gpu), _results(cpu), _results(conv)):
                assert (g is None) == (c is None) == (v is None), what
                if g is not None:
                    assert host(g).tobytes() == host(v).tobytes(), (name, kw, reduction, what)
                    assert_close(g, c, rt, f"{name} {kw} {what}")
    # labels strided in one dimension (a column of a matrix) are read at their stride by the
    # general kernel: no copy of them either
    ys = cupy.asarray(np.stack([y, y[::-1]], axis=1))[:, 0]
    xg = cupy.asarray(x)
    for reduction, grad, hess in (("mean", True, False), ("none", True, True)):
        cpu = xentc.binary_cross_entropy(y, x, from_logits=True, reduction=reduction, grad=grad, hess=hess)
        _cuda.config["log"] = []
        with _Allocations() as hook:
            gpu = xentc.binary_cross_entropy(ys, xg, from_logits=True, reduction=reduction, grad=grad, hess=hess)
        assert _binary_kernels_used() == ["general"]
        big = [s for s in hook.sizes if s >= min(x.nbytes, y.nbytes) // 2]
        assert sorted(big) == sorted([x.nbytes] * (grad + hess) + ([n * cdt.itemsize] if reduction == "none"
                                                                   else [])), hook.sizes
        conv = xentc.binary_cross_entropy(cupy.asarray(y.astype(conv_dtype)), xg, from_logits=True,
                                          reduction=reduction, grad=grad, hess=hess)
        for what, g, c, v in zip(("loss", "grad", "hess"), _results(gpu), _results(cpu), _results(conv)):
            if g is not None:
                assert host(g).tobytes() == host(v).tobytes(), ("strided", reduction, what)
                assert_close(g, c, rt, f"strided {what}")
    # and labels of one stride in two dimensions (every other column of a matrix: a view once flat)
    m = n // 3 * 3
    y2, x2 = y[:m].reshape(-1, 3), x[:m].reshape(-1, 3)
    ys2, xg2 = cupy.asarray(np.repeat(y2, 2, axis=1))[:, ::2], cupy.asarray(x2)
    cpu = xentc.binary_cross_entropy(y2, x2, from_logits=True, reduction="none", grad=True)
    _cuda.config["log"] = []
    with _Allocations() as hook:
        gpu = xentc.binary_cross_entropy(ys2, xg2, from_logits=True, reduction="none", grad=True)
    assert _binary_kernels_used() == ["general"]
    big = [s for s in hook.sizes if s >= min(x2.nbytes, y2.nbytes) // 2]
    assert sorted(big) == sorted([x2.nbytes, m * cdt.itemsize]), hook.sizes
    conv = xentc.binary_cross_entropy(cupy.asarray(y2.astype(conv_dtype)), xg2, from_logits=True,
                                      reduction="none", grad=True)
    for what, g, c, v in zip(("loss", "grad"), _results(gpu), _results(cpu), _results(conv)):
        assert host(g).tobytes() == host(v).tobytes(), ("strided 2-D", what)
        assert_close(g, c, rt, f"strided 2-D {what}")


@pytest.mark.parametrize("dtype,label_dtype", list(_binary_label_dtypes()))
def test_binary_labels_of_another_dtype_errors(dtype, label_dtype):
    """A bad label is judged by its own value (1 + 1e-10 in float64 rounds to a valid 1.0f) and
    reported as on the CPU, from the fast kernel (first round, later round, partial last block)
    and the general one."""
    r = _cuda._BINARY_VEC_PACKS * (16 // np.dtype(dtype).itemsize)
    n = 3 * r + 7
    info = np.iinfo(label_dtype) if label_dtype.kind in "iu" else None
    bad = {"b": [], "i": [2, -1, int(info.max) if info else 0, int(info.min) if info else 0],
           "u": [2, int(info.max) if info else 0], "f": [1 + 1e-10, -1e-300, np.nan, np.inf, 1.5],
           "V": []}[label_dtype.kind]
    if label_dtype == np.float32:
        bad = [np.float32(1) + np.float32(2**-23), -np.float32(1e-45), np.nan]
    if label_dtype.itemsize == 2 and _is_float_label(label_dtype):   # the least bad values 16 bits hold
        bad = [1 + 2**-7, -2.0**-24, np.nan]
    rng = np.random.default_rng(_seed("bin-label-errors", np.dtype(dtype).name, label_dtype.name))
    x = rng.normal(0, 2, n).astype(dtype)
    y0 = rng.integers(0, 2, n).astype(label_dtype)
    if label_dtype == np.bool_:   # no bad bool: any nonzero byte is true, as NumPy reads it
        raw = rng.integers(0, 256, n).astype(np.uint8)
        y = raw.view(np.bool_)
        compare("binary_cross_entropy", y, x, {"from_logits": True}, reduction="sum", grad=True, hess=False,
                rtol=RTOL[np.dtype(dtype)])
        return
    for v in bad:
        for where in ([0], [r + 3], [n - 1], [n - 2, 5]):
            y = y0.copy()
            y[where] = v
            for name, kw in (("binary_cross_entropy", {"from_logits": True}),
                             ("binary_focal_loss", {"from_logits": True, "gamma": 2.0})):
                fn = getattr(xentc, name)
                with pytest.raises(Exception) as cpu_info:
                    fn(y, x, **kw)
                _cuda.config["binary_vec_rounds"] = 2
                with pytest.raises(Exception) as gpu_info:
                    fn(cupy.asarray(y), cupy.asarray(x), grad=True, **kw)
                assert type(gpu_info.value) is type(cpu_info.value)
                assert str(gpu_info.value) == str(cpu_info.value), (v, where)


def _weight_dtype_pairs():
    """(y_pred dtype, sample_weight dtype) with weights of another float dtype than the compute one."""
    pairs = [(np.float32, np.float64), (np.float32, np.float16), (np.float64, np.float32), (np.float64, np.float16),
             (np.float16, np.float64), (np.float16, np.float16)]
    if BF16 is not None:
        pairs += [(np.float32, BF16), (np.float64, BF16), (BF16, BF16), (BF16, np.float64)]
    return [pytest.param(a, b, id=f"{np.dtype(a).name}-{np.dtype(b).name}") for a, b in pairs]


def _same_results(gpu, conv, what):
    for name, g, v in zip(("loss", "grad", "hess"), _results(gpu), _results(conv)):
        assert (g is None) == (v is None), (what, name)
        if g is not None:
            assert host(g).tobytes() == host(v).tobytes(), (what, name)


@pytest.mark.parametrize("dtype,w_dtype", _weight_dtype_pairs())
def test_binary_sample_weights_of_another_dtype(dtype, w_dtype):
    """Sample weights of any float dtype are read as they are: the bits of the call with the weights
    converted to the compute dtype first, the CPU's results, and no device buffer of the weights'
    size, in the fast kernel (a weight per element, a scalar weight) and the general one (focal,
    weights that repeat a row)."""
    cdt = _cdt(dtype)
    r = _cuda._BINARY_VEC_PACKS * (16 // np.dtype(dtype).itemsize)
    L = 8
    n = (2 * r // L + 5) * L   # two full rounds and a partial block
    rng = np.random.default_rng(_seed("bin-weights", np.dtype(dtype).name, np.dtype(w_dtype).name))
    x = rng.normal(0, 2, n).astype(dtype)
    y = rng.uniform(0, 1, n).astype(dtype)
    sw = rng.uniform(0.25, 3, n).astype(w_dtype)   # not exact in the narrower dtypes: a rounding shows
    rows = rng.uniform(0.25, 3, (n // L, 1)).astype(w_dtype)
    one = np.asarray(1.3, dtype=w_dtype)
    cases = [("binary_cross_entropy", (n,), sw, {"from_logits": True, "label_smoothing": 0.1}, "vec"),
             ("binary_cross_entropy", (n,), one, {"from_logits": True}, "vec"),
             ("binary_focal_loss", (n,), sw, {"from_logits": True, "gamma": 2.0}, "general"),
             ("binary_cross_entropy", (n // L, L), rows, {"from_logits": True}, "general")]
    for name, shape, w, kw, kernel in cases:
        fn = getattr(xentc, name)
        xx, yy = x.reshape(shape), y.reshape(shape)
        xg, yg, wg = cupy.asarray(xx), cupy.asarray(yy), cupy.asarray(w)
        for reduction, grad, hess in (("mean", True, False), ("none", True, True), ("sum", False, False)):
            cpu = fn(yy, xx, sample_weight=w, reduction=reduction, grad=grad, hess=hess, **kw)
            _cuda.config["log"] = []
            with _Allocations() as hook:
                gpu = fn(yg, xg, sample_weight=wg, reduction=reduction, grad=grad, hess=hess, **kw)
            assert _binary_kernels_used() == [kernel], (name, w.shape)
            big = [s for s in hook.sizes if s >= n]
            assert sorted(big) == sorted([xx.nbytes] * (grad + hess) + ([n * cdt.itemsize] if reduction == "none"
                                                                         else [])), (name, hook.sizes)
            conv = fn(yg, xg, sample_weight=cupy.asarray(w.astype(cdt)), reduction=reduction, grad=grad, hess=hess,
                      **kw)
            _same_results(gpu, conv, (name, w.shape, reduction))
            for what, g, c in zip(("loss", "grad", "hess"), _results(gpu), _results(cpu)):
                if g is not None:
                    assert_close(g, c, RTOL[np.dtype(dtype)], f"{name} {w.shape} {what}")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype,w_dtype", _weight_dtype_pairs())
def test_categorical_sample_weights_of_another_dtype(dtype, w_dtype, kernel):
    """As the binary test, for every categorical kernel: the bits of the call with the weights
    converted first, the CPU's results, and the same device allocations as that call (no converted
    copy of the weights)."""
    C = 12 if kernel in ("small", "tile") else 100
    N = 70
    rng = np.random.default_rng(_seed("cat-weights", np.dtype(dtype).name, np.dtype(w_dtype).name, kernel))
    x = rng.normal(0, 2, (N, C)).astype(dtype)
    y = rng.integers(0, C, N)
    sw = rng.uniform(0.25, 3, N).astype(w_dtype)
    cdt = _cdt(dtype)
    if not _force(kernel, C, dtype):
        pytest.skip("no cluster kernels on this device")
    xg, yg, wg, wc = cupy.asarray(x), cupy.asarray(y), cupy.asarray(sw), cupy.asarray(sw.astype(cdt))
    onchip = kernel in ("onchip", "cluster", "pipe", "pipe_cluster")
    for name, kw in (("cross_entropy", {"from_logits": True}),
                     ("cross_entropy", {"from_logits": True, "label_smoothing": 0.1, "ignore_index": 3}),
                     ("focal_loss", {"from_logits": False, "gamma": 2.0})):
        if name == "focal_loss" and (onchip or kernel == "small"):
            continue   # (those kernels take cross entropy from logits only)
        xx = x if kw["from_logits"] else rng.dirichlet(np.ones(C), N).astype(dtype)
        xxg = cupy.asarray(xx)
        for reduction, grad, hess in (("mean", True, False), ("none", True, True)):
            cpu = getattr(xentc, name)(y, xx, sample_weight=sw, reduction=reduction, grad=grad, hess=hess, **kw)
            # once before counting: a first call of a dtype also builds its kernels and scratch
            getattr(xentc, name)(yg, xxg, sample_weight=wg, reduction=reduction, grad=grad, hess=hess, **kw)
            with _Allocations() as hook:
                gpu = getattr(xentc, name)(yg, xxg, sample_weight=wg, reduction=reduction, grad=grad, hess=hess, **kw)
            used = _used_kernel()
            assert used["kernel"] == ("onchip" if onchip else kernel), used
            with _Allocations() as conv_hook:
                conv = getattr(xentc, name)(yg, xxg, sample_weight=wc, reduction=reduction, grad=grad, hess=hess,
                                            **kw)
            assert sorted(hook.sizes) == sorted(conv_hook.sizes), (hook.sizes, conv_hook.sizes)
            _same_results(gpu, conv, (name, kw, reduction))
            for what, g, c in zip(("loss", "grad", "hess"), _results(gpu), _results(cpu)):
                if g is not None:
                    assert_close(g, c, RTOL[np.dtype(dtype)], f"{name} {kw} {what}")


@pytest.mark.parametrize("dtype,w_dtype", [(np.float32, np.float64), (np.float16, np.float64),
                                           (np.float64, np.float32), (np.float32, np.float16)])
def test_sample_weights_of_another_dtype_errors(dtype, w_dtype):
    """A bad sample weight is judged by its own value (-1e-300 in float64 rounds to -0.0f, a valid
    float32 weight), one too large for the compute dtype is reported as such, and the messages are
    the CPU's, for binary and categorical calls."""
    n, C = 3 * 4096 + 5, 6
    rng = np.random.default_rng(_seed("weight-errors", np.dtype(dtype).name, np.dtype(w_dtype).name))
    x = rng.normal(0, 2, n).astype(dtype)
    y = rng.integers(0, 2, n).astype(dtype)
    xc = rng.normal(0, 2, (n, C)).astype(dtype)
    yc = rng.integers(0, C, n)
    w0 = rng.uniform(0.5, 2, n).astype(w_dtype)
    bad = {8: [-1e-300, 1e300, np.nan, np.inf, -1.0], 4: [-np.float32(1e-45), np.nan, -np.inf],
           2: [np.nan, -2.0**-24, np.inf]}[np.dtype(w_dtype).itemsize]
    for v in bad:
        for where in ([0], [4100], [n - 1], [n - 2, 5]):
            w = w0.copy()
            w[where] = v
            for fn, yy, xx in ((xentc.binary_cross_entropy, y, x), (xentc.binary_focal_loss, y, x),
                               (xentc.cross_entropy, yc, xc)):
                with pytest.raises(ValueError) as cpu_info:
                    fn(yy, xx, sample_weight=w, from_logits=True)
                with pytest.raises(ValueError) as gpu_info:
                    fn(cupy.asarray(yy), cupy.asarray(xx), sample_weight=cupy.asarray(w), from_logits=True, grad=True)
                assert str(gpu_info.value) == str(cpu_info.value), (v, where)


def _repeating_weight_cases(rng):
    """(y_pred shape, sample_weight) where the weights repeat a block of the shape."""
    yield (3001, 7), np.float64(1.75)
    yield (3001, 7), weights(rng, (3001, 1))          # one per row: i // 7
    yield (3001, 7), weights(rng, (7,))               # one per label: i % 7
    yield (40, 33, 29), weights(rng, (33, 1))         # (i // 29) % 33
    yield (40, 33, 29), weights(rng, (40, 1, 1))      # one per image
    yield (5, 3, 1000), weights(rng, (1, 3, 1000))    # one block for every outer index


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_repeating_sample_weights(dtype):
    """Sample weights that repeat (a scalar, one per row or label, a block of the shape) are passed
    once: no device array of y_pred's size beyond the gradient, and the bits of the same kernel
    given the weights broadcast to a full array; the CPU's results; every reduction (the mean's
    denominator comes from the same weights)."""
    rng = np.random.default_rng(_seed("bin-sw-rep", np.dtype(dtype).name))
    rt = RTOL[np.dtype(dtype)]
    for shape, sw in _repeating_weight_cases(rng):
        y, x = make_binary(rng, shape, dtype, True, "soft")
        full = np.ascontiguousarray(np.broadcast_to(sw, shape)).astype(dtype)
        swc = np.asarray(sw, dtype=dtype)
        for name, kw in (("binary_cross_entropy", {"from_logits": True}),
                         ("binary_focal_loss", {"from_logits": True, "gamma": 2.0, "alpha": 0.3})):
            fn = getattr(xentc, name)
            xg, yg = cupy.asarray(x), cupy.asarray(y)
            for reduction, grad, hess in (("mean", True, False), ("none", True, True), ("sum", False, False)):
                cpu = fn(y, x, sample_weight=sw, reduction=reduction, grad=grad, hess=hess, **kw)
                _cuda.config["log"] = []
                with _Allocations() as hook:
                    gpu = fn(yg, xg, sample_weight=cupy.asarray(swc) if swc.ndim else float(swc), reduction=reduction,
                             grad=grad, hess=hess, **kw)
                # a scalar weight: the fast kernel (from logits, gamma 0), other patterns the general one
                vec = np.ndim(sw) == 0 and name == "binary_cross_entropy"
                assert _binary_kernels_used() == ["vec" if vec else "general"], (shape, np.shape(sw))
                big = [s for s in hook.sizes if s >= x.nbytes // 2]
                assert big == [x.nbytes] * (grad + hess + (reduction == "none")), (shape, np.shape(sw), hook.sizes)
                _cuda.config["binary_vec"] = vec
                ref = fn(yg, xg, sample_weight=cupy.asarray(full), reduction=reduction, grad=grad, hess=hess, **kw)
                _cuda.config["binary_vec"] = True
                for what, g, c, v in zip(("loss", "grad", "hess"), _results(gpu), _results(cpu), _results(ref)):
                    if g is not None:
                        assert host(g).tobytes() == host(v).tobytes(), (shape, np.shape(sw), name, what)
                        assert_close(g, c, rt, f"{shape} {np.shape(sw)} {name} {what}")


def test_binary_repeating_sample_weights_errors():
    """A bad weight in a repeating block is reported at the first element that takes it, as on the
    CPU (the mean's weight pass checks it)."""
    rng = np.random.default_rng(_seed("bin-sw-rep-bad"))
    for shape, sw in _repeating_weight_cases(rng):
        if np.ndim(sw) == 0:
            continue
        y, x = make_binary(rng, shape, np.float32, True, "hard")
        flat = np.asarray(sw, np.float64).reshape(-1).copy()
        for k, bad in ((flat.size - 1, -1.0), (flat.size // 2, np.nan), (0, np.inf)):
            w = flat.copy()
            w[k] = bad
            w = w.reshape(np.shape(sw))
            for reduction in ("mean", "sum"):
                with pytest.raises(Exception) as cpu_info:
                    xentc.binary_cross_entropy(y, x, from_logits=True, sample_weight=w, reduction=reduction)
                with pytest.raises(Exception) as gpu_info:
                    xentc.binary_cross_entropy(cupy.asarray(y), cupy.asarray(x), from_logits=True,
                                               sample_weight=cupy.asarray(w), reduction=reduction, grad=True)
                assert type(gpu_info.value) is type(cpu_info.value)
                assert str(gpu_info.value) == str(cpu_info.value), (shape, np.shape(sw), k, bad)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("C", [10, 300, 5000, 40000])
def test_categorical_many_rows(C, dtype):
    rng = np.random.default_rng(_seed("rows", C))
    N = max(3, 300000 // C)
    x = rng.normal(0, 4, (N, C)).astype(dtype)
    y = rng.integers(0, C, N)
    rt = RTOL[np.dtype(dtype)]
    for kw in ({"from_logits": True}, {"from_logits": True, "label_smoothing": 0.1}):
        for reduction in ("mean", "none"):
            compare("cross_entropy", y, x, kw, reduction=reduction, grad=True, hess=False, rtol=rt)


@pytest.mark.parametrize("name", FUNCS)
def test_float16(name):
    rng = np.random.default_rng(4)
    if name in BINARY:
        y, x = make_binary(rng, (50,), np.float16, True, "soft")
    else:
        y, x = make_categorical(rng, (20, 6), np.float16, True, "int")
    gpu, cpu = compare(name, y, x, {"from_logits": True}, reduction="sum", grad=True, hess=True, rtol=1e-3)
    assert gpu.grad.dtype == np.float16 and gpu.loss.dtype == np.float32


@pytest.mark.parametrize("dtype", [d for d in ALL_DTYPES if np.dtype(d).itemsize == 2],
                         ids=[i for d, i in zip(ALL_DTYPES, ALL_IDS) if np.dtype(d).itemsize == 2])
@pytest.mark.parametrize("fast", [True, False], ids=["vec", "general"])
def test_16bit_rounding_of_stored_results(dtype, fast):
    """The kernels' float32 -> 16-bit store against NumPy's / ml_dtypes' rounding, on float32 bit
    patterns of every kind (ties, subnormals, values that round to infinity): a binary call with
    logits +-inf has gradient +-sample_weight, so the stored gradient is the rounded weight."""
    rng = np.random.default_rng(_seed("rounding", np.dtype(dtype).name))
    bits = np.concatenate([rng.integers(0, 0x7F800000, 40000, dtype=np.uint32),   # any finite weight >= 0
                           rng.integers(0, 0x7F80, 4000, dtype=np.uint32) << 16 | 0x8000,  # bfloat16 ties
                           rng.integers(0x33000000, 0x47800000, 4000, dtype=np.uint32) & ~np.uint32(0xFFF)
                           | np.uint32(0x1000),   # float16 ties (normal and subnormal range)
                           np.array([0, 1, 0x00800000, 0x7F7FFFFF, 0x477FEFFF, 0x477FF000, 0x7F7F8000],
                                    dtype=np.uint32)])
    w = bits.view(np.float32)
    n = w.size
    y = np.where(np.arange(n) % 2 == 0, 0.0, 1.0).astype(dtype)
    x = np.where(y == 0, np.inf, -np.inf).astype(dtype)   # gradient w (y = 0) or -w (y = 1)
    _cuda.config["binary_vec"] = fast
    _cuda.config["log"] = []
    r = xentc.binary_cross_entropy(cupy.asarray(y), cupy.asarray(x), from_logits=True, sample_weight=cupy.asarray(w),
                                   reduction="sum", grad=True)
    assert _binary_kernels_used() == ["vec" if fast else "general"]
    with np.errstate(over="ignore"):   # weights past float16's range round to infinity
        want = np.where(y == 0, w, -w).astype(dtype)
    got = host(r.grad)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_out_buffers(name, dtype):
    """out= with CuPy arrays: the same bits as an allocating GPU call, written into the caller's
    arrays; NumPy arrays in out are refused."""
    rng = np.random.default_rng(12)
    if name in BINARY:
        y, x = make_binary(rng, (40,), dtype, True, "soft")
        loss_shape = x.shape
    else:
        y, x = make_categorical(rng, (20, 6), dtype, True, "int")
        loss_shape = x.shape[:1]
    f = getattr(xentc, name)
    yg, xg = cupy.asarray(y), cupy.asarray(x)
    kw = dict(from_logits=True, reduction="none", grad=True, hess=True)
    ref = f(yg, xg, **kw)
    cdt = _cdt(dtype)
    bufs = (cupy.empty(loss_shape, cdt), cupy.empty_like(xg), cupy.empty_like(xg))
    res = f(yg, xg, out=bufs, **kw)
    for got, want, buf in zip(res, ref, bufs):
        assert got is buf
        np.testing.assert_array_equal(host(got), host(want))
    with pytest.raises(TypeError, match="^out: the grad entry must be a CuPy array"):
        f(yg, xg, grad=True, from_logits=True, out=(None, np.empty(x.shape, x.dtype), None))

# --------------------------------------------------------------------------------------
# layouts: K-dim with axis, non-contiguous, negative strides, Fortran order
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [1, 0, -1, 2])
@pytest.mark.parametrize("label_form", ["int", "soft"])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("name", ["cross_entropy", "focal_loss"])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_kdim_axis(name, from_logits, label_form, axis, dtype):
    shape = (2, 4, 3, 5)
    rng = np.random.default_rng(_seed("kdim", name, from_logits, label_form, axis))
    y, x = make_categorical(rng, shape, dtype, from_logits, label_form, axis=axis)
    ax = axis % 4
    C = shape[ax]
    per_sample = shape[:ax] + shape[ax + 1:]
    kw = {"from_logits": from_logits, "axis": axis, "class_weight": weights(rng, (C,), lo=1),
          "sample_weight": weights(rng, per_sample[-1:], lo=1)}
    if label_form == "int":
        y = y.copy()
        y.flat[[1, 7]] = -1
        kw["ignore_index"] = -1
    for reduction in REDUCTIONS:
        compare(name, y, x, kw, reduction=reduction, grad=True, hess=True, rtol=RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_strided_inputs(name, dtype):
    rng = np.random.default_rng(_seed("strided", name))
    rt = RTOL[np.dtype(dtype)]
    if name in BINARY:
        y, x = make_binary(rng, (9, 8), dtype, True, "soft")
        views = [(y[::-1, ::2], x[::-1, ::2]), (y.T, x.T), (np.asfortranarray(y), np.asfortranarray(x))]
    else:
        y, x = make_categorical(rng, (9, 8), dtype, True, "int")
        ys, _ = make_categorical(rng, (9, 8), dtype, True, "soft")
        views = [(y[::-2], x[::-2, ::-1]), (y, np.asfortranarray(x)), (ys[:, ::-1], x[:, ::-1]),
                 (ys.T, x.T)]
    for yy, xx in views:
        kw = {"from_logits": True}
        if name not in BINARY and yy.dtype.kind == "f" and yy.shape != xx.shape:
            continue
        compare(name, yy, xx, kw, reduction="none", grad=True, hess=True, rtol=rt)


def _misaligned_like(a):
    """A CuPy copy of a whose first element sits one byte past an aligned address (a view of a
    byte buffer), or a skip where CuPy refuses such a view."""
    a = np.ascontiguousarray(a)
    raw = cupy.zeros(a.nbytes + a.itemsize, dtype=np.uint8)
    try:
        out = raw[1:1 + a.nbytes].view(a.dtype).reshape(a.shape)
    except (ValueError, TypeError) as exc:
        pytest.skip(f"this CuPy makes no misaligned views ({exc})")
    # filled as bytes: CuPy's own element-wise kernels fault on misaligned elements (an H200 did)
    raw[1:1 + a.nbytes] = cupy.asarray(a).view(np.uint8).reshape(-1)
    assert out.data.ptr % a.itemsize != 0
    return out


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_misaligned_inputs(name, dtype):
    """Arrays that do not start at a multiple of their element size (GPU loads of them fault): inputs
    are copied, giving the bits of an aligned call; such an out= array is refused, before any work."""
    rng = np.random.default_rng(_seed("misaligned", name))
    if name in BINARY:
        y, x = make_binary(rng, (7, 9), dtype, True, "soft")
    else:
        y, x = make_categorical(rng, (7, 9), dtype, True, "int")
    sw = weights(rng, (7,), lo=1).astype(dtype)
    f = getattr(xentc, name)
    kw = dict(from_logits=True, reduction="none", grad=True, hess=True)
    want = f(cupy.asarray(y), cupy.asarray(x), sample_weight=cupy.asarray(sw)[:, None] if name in BINARY
             else cupy.asarray(sw), **kw)
    ym, xm, swm = _misaligned_like(y), _misaligned_like(x), _misaligned_like(sw)
    got = f(ym, xm, sample_weight=swm[:, None] if name in BINARY else swm, **kw)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(host(g), host(w))
    # reversed and strided row views of misaligned memory too (copied as bytes, then laid out)
    for rows in (slice(None, None, -1), slice(1, None, 2)):
        want = f(cupy.asarray(y[rows]), cupy.asarray(x[rows]), sample_weight=cupy.asarray(sw[rows])[:, None]
                 if name in BINARY else cupy.asarray(sw[rows]), **kw)
        got = f(ym[rows], xm[rows], sample_weight=swm[rows][:, None] if name in BINARY else swm[rows], **kw)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(host(g), host(w))
    bad_grad = _misaligned_like(np.zeros(x.shape, x.dtype))
    with pytest.raises(ValueError, match="^out: the grad array starts at an address"):
        f(cupy.asarray(y), cupy.asarray(x), from_logits=True, grad=True, out=(None, bad_grad, None))
    assert not bad_grad.view(np.uint8).any()   # (read as bytes, as CuPy can)


def test_single_row_and_zero_dim():
    rng = np.random.default_rng(9)
    x = rng.normal(size=6)
    compare("cross_entropy", 2, x, {"from_logits": True}, reduction="none", grad=True, hess=True, rtol=1e-13,
            check_types=False)
    compare("binary_cross_entropy", np.array(1.0), np.array(0.3), {}, reduction="none", grad=True, hess=True,
            rtol=1e-13)


class _Allocations(cupy.cuda.MemoryHook):
    """Sizes of the device arrays a call asks CuPy's memory pool for."""

    name = "xentc-test-allocations"

    def __init__(self):
        super().__init__()
        self.sizes = []

    def malloc_preprocess(self, **kwargs):
        self.sizes.append(int(kwargs["size"]))


# (case, function, shape, label form, options, config): the kernel families of the CUDA path
ALLOC_CASES = [
    ("few classes", "cross_entropy", (500, 10), "int", {"from_logits": True}, {}),
    ("tile", "cross_entropy", (300, 40), "int", {"from_logits": True}, {}),
    ("on-chip", "cross_entropy", (16, 3000), "int", {"from_logits": True}, {}),
    ("cluster", "cross_entropy", (6, 3000), "int", {"from_logits": True}, {"onchip_cap": 4096}),
    ("one row a block", "cross_entropy", (16, 3000), "int", {"from_logits": True}, {"pipeline": False}),
    ("weighted", "cross_entropy", (200, 64), "int",
     {"from_logits": True, "class_weight": "C", "sample_weight": "N", "ignore_index": 0}, {}),
    ("soft labels", "cross_entropy", (200, 64), "soft", {"from_logits": True, "label_smoothing": 0.1}, {}),
    ("probabilities", "cross_entropy", (200, 64), "int", {"from_logits": False}, {}),
    ("focal", "focal_loss", (200, 64), "int", {"from_logits": True, "gamma": 2.0}, {}),
    ("binary", "binary_cross_entropy", (20000,), "soft", {"from_logits": True}, {}),
    ("binary weighted", "binary_cross_entropy", (20000,), "soft",
     {"from_logits": True, "pos_weight": 2.0, "sample_weight": "N"}, {}),
    ("binary focal", "binary_focal_loss", (20000,), "soft", {"from_logits": False, "gamma": 2.0}, {}),
]


@pytest.mark.parametrize("case", ALLOC_CASES, ids=[c[0] for c in ALLOC_CASES])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_device_allocations(case, dtype):
    """Issue 4's memory bound: no device buffer of N x C beyond the gradient (and Hessian) a call
    returns, and a loss-only call allocates O(N) bytes (here at most 48 bytes a sample plus 64 KiB,
    over all its allocations; a binary call's N is its element count, and its per-element loss an
    output). Measured with a CuPy memory hook, after a first call has built the kernels."""
    _, name, shape, label_form, opts, settings = case
    rng = np.random.default_rng(_seed("alloc", case[0]))
    f = getattr(xentc, name)
    if name in BINARY:
        y, x = make_binary(rng, shape, dtype, opts["from_logits"], label_form)
    else:
        y, x = make_categorical(rng, shape, dtype, opts["from_logits"], label_form)
    N = shape[0]
    kw = {k: v for k, v in opts.items()}
    if kw.get("class_weight") == "C":
        kw["class_weight"] = cupy.asarray(weights(rng, (shape[1],), lo=1))
    if kw.get("sample_weight") == "N":
        kw["sample_weight"] = cupy.asarray(weights(rng, (N,), lo=1).astype(dtype))
    yg, xg = cupy.asarray(y), cupy.asarray(x)
    _cuda.config.update(settings)
    full = x.nbytes
    for grad, hess, reduction in ((True, False, "mean"), (True, True, "none"), (False, False, "mean"),
                                  (False, False, "none")):
        f(yg, xg, grad=grad, hess=hess, reduction=reduction, **kw)
        with _Allocations() as hook:
            r = f(yg, xg, grad=grad, hess=hess, reduction=reduction, **kw)
        # returned arrays of y_pred's size: gradient, Hessian, and a binary per-element loss (float32
        # for float16 y_pred: the loss is in the compute dtype)
        want = [full] * (int(grad) + int(hess))
        if name in BINARY and reduction == "none":
            want.append(x.size * (8 if dtype == np.float64 else 4))
        big = sorted(s for s in hook.sizes if s >= full // 2)
        assert big == sorted(want), (grad, hess, reduction, hook.sizes)
        rest = sum(hook.sizes) - sum(want)
        assert rest <= 48 * N + 65536, (grad, hess, reduction, hook.sizes)
        if not grad and not hess:
            assert r.shape == (() if reduction == "mean" else x.shape[:1] if name not in BINARY else x.shape)


@pytest.mark.parametrize("name", FUNCS)
def test_empty(name):
    if name in BINARY:
        y, x = np.zeros((0, 3)), np.zeros((0, 3))
    else:
        y, x = np.zeros(0, dtype=np.int64), np.zeros((0, 4))
    for reduction in REDUCTIONS:
        gpu, cpu = compare(name, y, x, {"from_logits": True}, reduction=reduction, grad=True, hess=True,
                           rtol=1e-13)
        if reduction != "none":
            assert float(gpu.loss) == 0.0


# --------------------------------------------------------------------------------------
# special values
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("kernel", [None] + KERNELS)
def test_special_logit_rows(dtype, kernel):
    inf, nan = np.inf, np.nan
    rows = [[0.0, 1.0, 2.0, 3.0], [-inf, -inf, -inf, -inf], [inf, 0.0, 1.0, 2.0], [inf, inf, 0.0, 0.0],
            [nan, 0.0, 1.0, 2.0], [3.0, 3.0, 3.0, 3.0], [40.0, -40.0, 0.0, 1.0], [1e4, -1e4, 0.0, 5.0],
            [-inf, 0.0, -inf, 1.0], [0.0, 0.0, 0.0, 88.0]]
    x = np.array(rows, dtype=dtype)
    y = np.array([3, 1, 0, 2, 0, 1, 0, 0, 3, 3])
    if kernel is not None and not _force(kernel, 4, dtype):
        pytest.skip("no cluster kernels on this device")
    for name, kw in (("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.1}),
                     ("focal_loss", {"gamma": 2.0})):
        kw = dict(kw, from_logits=True)
        compare(name, y, x, kw, reduction="none", grad=True, hess=True, rtol=RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_special_binary_values(dtype):
    inf, nan = np.inf, np.nan
    z = np.array([-inf, inf, nan, 0.0, 40.0, -40.0, 100.0, -100.0, 1e4, -1e4], dtype=dtype)
    p = np.array([0.0, 1.0, nan, 0.5, 1e-30, 1 - 1e-7, 0.25, 0.75, 1e-300 if dtype == np.float64 else 1e-37,
                  0.0], dtype=dtype)
    for y in (np.zeros(10, dtype), np.ones(10, dtype), np.full(10, 0.5, dtype)):
        for name, kw in (("binary_cross_entropy", {}), ("binary_focal_loss", {"gamma": 2.0}),
                         ("binary_focal_loss", {"gamma": 0.5, "alpha": 0.25})):
            compare(name, y, z, dict(kw, from_logits=True), reduction="none", grad=True, hess=True,
                    rtol=RTOL[np.dtype(dtype)])
            compare(name, y, p, kw, reduction="none", grad=True, hess=True, rtol=RTOL[np.dtype(dtype)])
            # an infinite element loss sums to inf (not NaN) on both paths
            compare(name, y, p, kw, reduction="sum", grad=False, hess=False, rtol=RTOL[np.dtype(dtype)])


def test_zero_weight_zeroes_everything():
    x = np.array([[0.0, 1.0], [1.0, 0.0]])
    y = np.array([0, 1])
    gpu, _ = compare("cross_entropy", y, x, {"sample_weight": np.array([0.0, 1.0])}, reduction="none",
                     grad=True, hess=True, rtol=1e-13)
    assert host(gpu.loss)[0] == 0.0 and np.abs(host(gpu.grad)[0]).max() == 0.0


def _calls_two_ways(monkeypatch, call):
    """call() with the mean's denominator taken on the device and waited for first
    (DEVICE_DENOMINATOR off): (result or exception, result words read) of each."""
    reads = []
    real = _cuda._Scratch.read
    monkeypatch.setattr(_cuda._Scratch, "read", lambda self, *a, **k: reads.append(1) or real(self, *a, **k))
    out = []
    for flag in (True, False):
        monkeypatch.setattr(_cuda, "DEVICE_DENOMINATOR", flag)
        reads.clear()
        try:
            r = call()
        except (ValueError, TypeError) as exc:
            r = exc
        out.append((r, len(reads)))
    return out


@pytest.mark.parametrize("kernel", KERNELS + ["few"])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_mean_denominator_on_the_device(monkeypatch, kernel, dtype):
    """A call that needs the weight pre-pass (sample weights; a mean with class weights or
    ignore_index, or from probabilities) leaves its sum on the device, where every kernel and the
    reduced loss take it as the mean's denominator: the call reads its result words once (one
    wait for the device) instead of twice, with the bits of the call that waits for the pre-pass
    first, on every kernel, every reduction where sample weights make the pre-pass check them,
    ignored rows and label and weight errors included."""
    C = 10 if kernel in ("few", "small") else 37
    rng = np.random.default_rng(_seed("device_denominator", kernel, np.dtype(dtype).name))
    N = 23
    if kernel == "few":
        _cuda.config["log"] = []
    elif not _force(kernel, C, dtype):
        pytest.skip("no cluster kernels on this device")
    x = rng.normal(0, 3, (N, C)).astype(dtype)
    p = rng.random((N, C)) + 0.01
    p = (p / p.sum(1, keepdims=True)).astype(dtype)
    y = rng.integers(0, C, N)
    y[[3, 11]] = -100
    cw = weights(rng, (C,), lo=1).astype(_cdt(dtype))
    sw = weights(rng, (N,)).astype(dtype)
    cases = [(x, {"from_logits": True, "ignore_index": -100}),
             (x, {"from_logits": True, "ignore_index": -100, "class_weight": cw, "label_smoothing": 0.1}),
             (x, {"from_logits": True, "ignore_index": -100, "gamma": 2.0, "alpha": np.linspace(0.1, 0.9, C)}),
             (p, {"ignore_index": -100, "class_weight": cw}),
             (x, {"from_logits": True, "sample_weight": sw}),
             (x, {"from_logits": True, "sample_weight": sw, "class_weight": cw, "ignore_index": -100})]
    for xx, kw in cases:
        name = "focal_loss" if "gamma" in kw else "cross_entropy"
        for yy in (y, np.full(N, -100)):   # some rows ignored; all of them (a mean of 0)
            if "ignore_index" not in kw and (yy < 0).any():
                yy = np.where(yy < 0, 1, yy)
            for reduction in ("mean", "sum", "none") if "sample_weight" in kw else ("mean",):
                def call():
                    return getattr(xentc, name)(cupy.asarray(yy), cupy.asarray(xx), reduction=reduction, grad=True,
                                                hess=True, **to_gpu_kwargs(kw))
                (dev, dev_reads), (host_, host_reads) = _calls_two_ways(monkeypatch, call)
                assert (dev_reads, host_reads) == (1, 2), (kw, reduction)
                assert_same_bits(dev, host_, to_host=host)
                if reduction == "mean" and (yy < 0).all():
                    assert float(dev.loss) == 0.0 and not host(dev.grad).any()
        if kernel == "few" and xx is x and "gamma" not in kw:
            assert _used_kernel()["kernel"] == "few", _used_kernel()
        bad = (y if "ignore_index" in kw else np.where(y < 0, 1, y)).copy()
        bad[[7, 15]] = [C, -1]
        (dev, dev_reads), (host_, _) = _calls_two_ways(
            monkeypatch, lambda: getattr(xentc, name)(cupy.asarray(bad), cupy.asarray(xx), grad=True,
                                                      **to_gpu_kwargs(kw)))
        # tried by the plain-call shortcut first, from logits (its one read, then the general path's)
        plain = kw.get("from_logits", False)
        assert isinstance(dev, ValueError) and dev_reads == 1 + plain
        assert_same_bits(dev, host_)
        assert re.search(rf"label {C} at index 7\b", str(dev)), str(dev)
        if "sample_weight" in kw:   # a bad weight after the bad label, then before it
            for at in (9, 5):
                bad_sw = sw.copy()
                bad_sw[at] = -1.0
                (dev, dev_reads), (host_, _) = _calls_two_ways(
                    monkeypatch, lambda: getattr(xentc, name)(cupy.asarray(bad), cupy.asarray(xx), grad=True,
                                                              **to_gpu_kwargs(dict(kw, sample_weight=bad_sw))))
                assert isinstance(dev, ValueError) and dev_reads == 1 + plain
                assert_same_bits(dev, host_)
                assert (str(dev).startswith("sample_weight") and f"index {at}" in str(dev)) == (at == 5), str(dev)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_denominator_on_the_device_where_it_cannot_be(monkeypatch, dtype):
    """Where the denominator must be known before the main kernels (weights whose sum the mean
    scales by a power of two, as on the CPU; float64 weights so small that the float32 kernels read
    zeros, which the mean lifts first), the call is made again waiting for it first; into out=
    arrays it waits for it first from the start. The bits of the call that always waits."""
    fi = np.finfo(dtype)
    rng = np.random.default_rng(_seed("device_denominator_not", np.dtype(dtype).name))
    N, C = 12, 5
    x = rng.normal(0, 2, (N, C)).astype(dtype)
    y = rng.integers(0, C, N)
    tiny = np.ldexp(np.arange(1, C + 1) / 4, fi.minexp - 3).astype(dtype)
    tiny_sw = np.ldexp(weights(rng, (N,), lo=1), fi.minexp - 3).astype(dtype)
    huge_sw = np.ldexp(weights(rng, (N,), lo=1), fi.maxexp - 4).astype(dtype)
    g = cupy.empty((N, C), dtype=dtype)
    gb = cupy.empty(N, dtype=dtype)
    # the device's first try, then the call that waits ("again"); or the call that waits alone
    huge = np.ldexp(np.arange(1, C + 1) / 4, fi.maxexp - 4).astype(dtype)
    cases = [("cross_entropy", {"class_weight": huge}, "again"),
             ("cross_entropy", {"sample_weight": tiny_sw, "ignore_index": 1}, "again"),
             ("cross_entropy", {"sample_weight": huge_sw}, "again"),
             ("cross_entropy", {"class_weight": np.ones(C, dtype), "out": (None, g, None)}, "waits"),
             ("binary_cross_entropy", {"sample_weight": tiny_sw}, "again"),
             ("binary_cross_entropy", {"sample_weight": huge_sw}, "again"),
             ("binary_cross_entropy", {"sample_weight": tiny_sw, "out": (None, gb, None)}, "waits")]
    if _cdt(dtype) == np.float32:   # float64 weights the float32 kernels read as 0, lifted first (_weight_lift)
        small = np.ldexp(weights(rng, (N,), lo=1), -170)
        # float64 class weights (float32 subnormals here, as checked float64 host arrays) are lifted
        # before anything runs (_class_weight_lift): the device's first try stands
        cases += [("cross_entropy", {"class_weight": tiny}, "lifted"),
                  ("cross_entropy", {"sample_weight": small}, "again"),
                  ("binary_cross_entropy", {"sample_weight": small}, "again"),
                  ("binary_cross_entropy", {"sample_weight": small, "reduction": "sum"}, "sum")]
    for name, kw, how in cases:
        binary = name.startswith("binary")
        yy, xx = ((x[:, 0] > 0).astype(dtype), x[:, 0]) if binary else (y, x)

        def call():
            r = getattr(xentc, name)(cupy.asarray(yy), cupy.asarray(xx), from_logits=True, grad=True,
                                     **to_gpu_kwargs(kw))
            return (r.loss, r.grad.copy())
        (dev, dev_reads), (host_, host_reads) = _calls_two_ways(monkeypatch, call)
        # a call the plain-call shortcut takes: its try finds the sum first either way (on the device,
        # then the general path waiting; or waiting, then the general path again): no read more
        plain = "out" not in kw
        if how in ("sum", "lifted"):   # (no scaling after the pre-pass: no wait for it)
            assert (dev_reads, host_reads) == (1, 2), (kw, dev_reads, host_reads)
        else:
            assert host_reads >= 2 and dev_reads == host_reads + (how == "again" and not plain), (kw, dev_reads,
                                                                                                  host_reads)
        assert_same_bits(dev, host_, to_host=host)
        if how != "sum":
            assert np.isfinite(host(dev[1])).all() and host(dev[1]).any()


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
def test_binary_sample_weights_wait_once(monkeypatch, dtype):
    """Binary calls with sample weights (of every repeating pattern, on both kernels, every
    reduction) start their main kernels without waiting for the weights' pre-pass, which leaves its
    sum on the device for a mean: one read of the result words instead of two, and the bits of the
    call that waits. A weight error is reported before a label error, as when the call waited,
    also with a pos_weight too large for the compute dtype (whose error comes after the weights')."""
    rng = np.random.default_rng(_seed("bin-sw-once", np.dtype(dtype).name))
    for shape, sw in _repeating_weight_cases(rng):
        y, x = make_binary(rng, shape, dtype, True, "soft")
        swc = np.asarray(sw, dtype=_cdt(dtype))
        for name, kw in (("binary_cross_entropy", {"from_logits": True}),
                         ("binary_focal_loss", {"from_logits": True, "gamma": 2.0, "alpha": 0.3}),
                         ("binary_cross_entropy", {})):
            xx = x if kw else 1.0 / (1.0 + np.exp(-x.astype(np.float64))).astype(dtype)
            for reduction in REDUCTIONS:
                def call():
                    return getattr(xentc, name)(cupy.asarray(y), cupy.asarray(xx), reduction=reduction, grad=True,
                                                hess=reduction == "none", sample_weight=cupy.asarray(swc), **kw)
                (dev, dev_reads), (host_, host_reads) = _calls_two_ways(monkeypatch, call)
                assert (dev_reads, host_reads) == (1, 2), (shape, np.shape(sw), name, kw, reduction)
                assert_same_bits(dev, host_, to_host=host)
    n = 3001
    y, x = make_binary(rng, (n,), dtype, True, "hard")
    sw = weights(rng, (n,)).astype(_cdt(dtype))
    sw[40] = np.nan
    y[20] = 2   # a label outside [0, 1] before the bad weight
    for kw in ({"from_logits": True}, {"from_logits": True, "pos_weight": 1e300}):
        (dev, dev_reads), (host_, _) = _calls_two_ways(
            monkeypatch, lambda: xentc.binary_cross_entropy(cupy.asarray(y), cupy.asarray(x), grad=True,
                                                            sample_weight=cupy.asarray(sw), **kw))
        assert isinstance(dev, ValueError) and str(dev).startswith("sample_weight"), str(dev)
        assert_same_bits(dev, host_)
        # (and the plain-call shortcut's try first, where pos_weight fits the compute dtype)
        assert dev_reads == 1 + ("pos_weight" not in kw or _cdt(dtype) == np.float64), kw


def test_all_ignored_mean_is_zero():
    x = np.array([[0.0, 1.0], [1.0, 0.0]])
    y = np.array([-1, -1])
    gpu, _ = compare("cross_entropy", y, x, {"ignore_index": -1, "from_logits": True}, reduction="mean",
                     grad=True, hess=True, rtol=1e-13)
    assert float(gpu.loss) == 0.0


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("name", FUNCS)
def test_reduced_loss_from_the_device_sum(name, reduction, dtype):
    """The reduced loss is written on the device by the last kernel: the same value the host
    would form from the returned sum (sum, or sum / denominator), rounded to the dtype."""
    from xentc._api import _call_with_sums

    rng = np.random.default_rng(_seed("device_scalar", name, reduction, np.dtype(dtype).name))
    if name in BINARY:
        y, x = make_binary(rng, (777,), dtype, True, "soft")
        kw = {"from_logits": True, "sample_weight": weights(rng, (777,)).astype(dtype)}
    else:
        y, x = make_categorical(rng, (300, 7), dtype, True, "int")
        kw = {"from_logits": True, "sample_weight": weights(rng, (300,)).astype(dtype)}
    kwg = to_gpu_kwargs(kw)
    res, total, denom = _call_with_sums(getattr(xentc, name), to_gpu(y), to_gpu(x), reduction=reduction,
                                        grad=True, **kwg)
    cdt = np.dtype(np.float64 if dtype == np.float64 else np.float32)   # float16 losses are float32
    want = cdt.type(total if reduction == "sum" else total / denom)
    assert isinstance(res.loss, cupy.ndarray) and res.loss.shape == () and res.loss.dtype == cdt
    assert host(res.loss).item() == want.item() or (np.isnan(want) and np.isnan(host(res.loss)))


def test_subnormal_float32_as_on_cpu():
    """With the -ftz=false build, float32 subnormal results agree with the CPU."""
    if "ftz=true" in _cuda.info()["route"]:
        pytest.skip("kernels were built with flush-to-zero (cupy.RawModule route)")
    z = np.array([-90.0, -100.0, -103.0], dtype=np.float32)   # softplus(z) is subnormal in float32
    y = np.zeros(3, np.float32)
    gpu, cpu = compare("binary_cross_entropy", y, z, {"from_logits": True}, reduction="none", grad=True,
                       hess=False, rtol=1e-6)
    assert (host(gpu.loss) > 0).all()
    p = np.array([1e-40, 3e-39], dtype=np.float32)
    compare("binary_cross_entropy", np.ones(2, np.float32), p, {}, reduction="none", grad=False, hess=False,
            rtol=1e-6)


# --------------------------------------------------------------------------------------
# bad input: same exception and message as on the CPU
# --------------------------------------------------------------------------------------
def _bad_cases():
    f32 = np.float32
    yield "label_range", "cross_entropy", np.array([0, 1, 7, 2, 9]), np.zeros((5, 3)), {}
    yield "label_negative", "cross_entropy", np.array([0, -2, 1]), np.zeros((3, 3)), {"from_logits": True}
    yield "label_range_kdim", "focal_loss", np.array([[0, 1], [5, 1]]), np.zeros((2, 3, 2)), {"axis": 1}
    yield "label_range_ignore", "cross_entropy", np.array([-100, 3, 1]), np.zeros((3, 3)), \
        {"ignore_index": -100}
    yield "soft_label_unit", "cross_entropy", np.array([[0.5, 0.5], [1.5, 0.0], [2.0, 0.0]]), \
        np.full((3, 2), 0.5), {}
    yield "soft_label_nan", "focal_loss", np.array([[0.5, 0.5], [0.0, np.nan]]), np.zeros((2, 2)), \
        {"from_logits": True}
    yield "cat_prob", "cross_entropy", np.array([0, 1, 1]), np.array([[0.5, 0.5], [0.2, 1.2], [-0.1, 0.5]]), {}
    yield "cat_prob_vs_label", "cross_entropy", np.array([[0.5, 0.5], [0.0, 3.0]]), \
        np.array([[0.5, 0.5], [2.0, 0.5]]), {}
    yield "bin_label", "binary_cross_entropy", np.array([0.0, 1.0, 1.5, -1.0]), np.full(4, 0.5), {}
    yield "bin_label_nan", "binary_focal_loss", np.array([0.0, np.nan]), np.full(2, 0.5), {}
    yield "bin_prob", "binary_cross_entropy", np.array([0.0, 1.0, 1.0]), np.array([0.5, 1.5, -1.0]), {}
    yield "bin_prob_f32", "binary_focal_loss", np.ones(3, f32), np.array([0.5, 0.5, 1.01], f32), {}
    yield "sample_weight_neg", "binary_cross_entropy", np.ones(4), np.full(4, 0.5), \
        {"sample_weight": np.array([1.0, -1.0, 2.0, np.nan])}
    yield "sample_weight_inf", "cross_entropy", np.array([0, 1]), np.full((2, 2), 0.5), \
        {"sample_weight": np.array([np.inf, 1.0])}
    yield "sample_weight_bcast", "cross_entropy", np.zeros((2, 3), dtype=np.int64), np.full((2, 3, 2), 0.5), \
        {"sample_weight": np.array([1.0, 2.0, -3.0])}
    big = np.zeros(5000, dtype=np.int64)
    big[[4321, 4000]] = [7, 9]
    yield "label_range_late", "cross_entropy", big, np.zeros((5000, 3)), {"from_logits": True}
    # from logits without weights the kernels check labels themselves (no pre-pass): few classes,
    # on-chip, and the generic kernels (classes not on the last axis)
    late = np.arange(700) % 10
    late[[650, 333, 334]] = [10, -1, 12]
    yield "label_range_small_kernel", "cross_entropy", late, np.zeros((700, 10), np.float32), {"from_logits": True}
    yield "label_range_onchip", "cross_entropy", np.array([0, 599, 600, 3]), np.zeros((4, 600)), \
        {"from_logits": True}
    yield "label_range_kdim_logits", "cross_entropy", np.array([[0, 1], [1, -7]]), np.zeros((2, 3, 2)), \
        {"axis": 1, "from_logits": True}
    bigp = np.full(7000, 0.5)
    bigp[[6999, 5000]] = [2.0, -1.0]
    yield "bin_prob_late", "binary_cross_entropy", np.ones(7000), bigp, {}


@pytest.mark.parametrize("case", list(_bad_cases()), ids=lambda c: c[0])
def test_bad_input_same_error(case):
    _, name, y, x, kw = case
    fn = getattr(xentc, name)
    with pytest.raises(Exception) as cpu_info:
        fn(y, x, **kw)
    with pytest.raises(Exception) as gpu_info:
        fn(to_gpu(y), to_gpu(x), **to_gpu_kwargs(kw))
    assert type(gpu_info.value) is type(cpu_info.value)
    assert str(gpu_info.value) == str(cpu_info.value)


@pytest.mark.parametrize("name", FUNCS)
def test_mixing_numpy_and_cupy_is_a_type_error(name):
    if name in BINARY:
        y, x = np.array([0.0, 1.0]), np.array([0.2, 0.7])
        extra = {"sample_weight": np.array([1.0, 2.0])}
    else:
        y, x = np.array([0, 1]), np.array([[0.2, 0.8], [0.6, 0.4]])
        extra = {"sample_weight": np.array([1.0, 2.0])}
    fn = getattr(xentc, name)
    with pytest.raises(TypeError, match=r"^y_true:"):
        fn(y, cupy.asarray(x))
    with pytest.raises(TypeError, match=r"^y_pred:"):
        fn(cupy.asarray(y), x)
    with pytest.raises(TypeError, match=r"^sample_weight:"):
        fn(cupy.asarray(y), cupy.asarray(x), **extra)


# --------------------------------------------------------------------------------------
# inputs unchanged, determinism, devices
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", [None] + KERNELS)
@pytest.mark.parametrize("name", FUNCS)
def test_inputs_unchanged_and_deterministic(name, kernel):
    rng = np.random.default_rng(_seed("det", name))
    if name in BINARY:
        if kernel is not None:
            pytest.skip("the categorical kernel choice does not apply to binary losses")
        y, x = make_binary(rng, (4099,), np.float32, True, "soft")
        kw = {"sample_weight": weights(rng, (4099,)), "from_logits": True}
    else:
        C = 600
        y, x = make_categorical(rng, (40, C), np.float32, True, "int")
        kw = {"sample_weight": weights(rng, (40,)), "from_logits": True}
        if kernel is not None and not _force(kernel, C, np.float32):
            pytest.skip("no cluster kernels on this device")
    yg, xg = to_gpu(y), to_gpu(x)
    kwg = to_gpu_kwargs(kw)
    before = [host(a).copy() for a in (yg, xg, kwg["sample_weight"])]
    fn = getattr(xentc, name)
    r1 = fn(yg, xg, grad=True, hess=True, **kwg)
    r2 = fn(yg, xg, grad=True, hess=True, **kwg)
    for b, a in zip(before, (yg, xg, kwg["sample_weight"])):
        np.testing.assert_array_equal(host(a), b)
    for a, b in zip(r1, r2):
        assert host(a).tobytes() == host(b).tobytes()
    assert r1.grad.data.ptr != xg.data.ptr


def test_results_on_the_arrays_device():
    if _NDEV < 2:
        pytest.skip("one device")
    with cupy.cuda.Device(1):
        x = cupy.asarray(np.random.default_rng(0).normal(size=(5, 3)))
        y = cupy.asarray(np.array([0, 1, 2, 0, 1]))
        r = xentc.cross_entropy(y, x, from_logits=True, grad=True)
    assert r.loss.device.id == 1 and r.grad.device.id == 1
    # called while another device is current: the results are still made on the arrays' device
    with cupy.cuda.Device(0):
        for f, yy in ((xentc.cross_entropy, y), (xentc.binary_cross_entropy, cupy.zeros((5, 3)))):
            for reduction in ("mean", "none"):
                r = f(yy, x, from_logits=True, grad=True, hess=True, reduction=reduction)
                assert {a.device.id for a in r} == {1}, reduction


def test_internal_array_checks():
    """_cuda's one quick test per array lets every good array through and names each fault."""
    dev = cupy.cuda.Device().id
    a = cupy.zeros((4, 6), dtype=np.float32)
    for good in (a, a[:, ::2], a[::-1], a.T, a[:0]):
        _cuda._check("y_pred", good, np.float32, dev)
    _cuda._check("grad", a, np.float32, dev, contiguous=True, ndim=2)
    _cuda._check("grad", None, np.float32, dev, contiguous=True, ndim=2)
    faults = [(("y_pred", a, np.float64, dev), RuntimeError, "has dtype float32, expected float64"),
              (("y_pred", a, np.float32, dev, False, 3), RuntimeError, "has 2 dimensions, expected 3"),
              (("grad", a[:, ::2], np.float32, dev, True), RuntimeError, "is not contiguous"),
              (("y_pred", a.view(np.uint8)[:, 1:5].view(np.float32), np.float32, dev), RuntimeError,
               "not a multiple of its element size"),
              (("sample_weight", a, np.float32, dev + 1), ValueError,
               f"sample_weight: array is on GPU {dev} but y_pred is on GPU {dev + 1}")]
    for args, exc, text in faults:
        with pytest.raises(exc, match=re.escape(text)):
            _cuda._check(*args)


def test_info():
    inf = _cuda.info()
    assert inf["kernels"] > 10 and inf["arch"] > 0
    funcs = _cuda._module(inf["device"]).funcs
    assert set(_cuda.name_expressions(inf["cluster_kernels"], "base")) <= set(funcs)
    for dt in ALL_DTYPES:
        if np.dtype(dt).itemsize == 2:   # build the 16-bit storage kernels this CuPy can be asked for
            # (40 classes: rows of at most 32 take the few-classes part of their dtype)
            xentc.cross_entropy(cupy.asarray([1]), cupy.asarray(np.linspace(0, 1, 40)[None].astype(dt)),
                                from_logits=True)
    built = _cuda.info()["storage_compile_seconds"]
    assert "xentk::xhalf" in built and ("xentk::xbf16" in built) == (BF16 is not None)
    for store in built:
        assert set(_cuda.name_expressions(inf["cluster_kernels"], store)) <= set(funcs)


def test_kernel_build_note_on_a_terminal(monkeypatch, tmp_path):
    """A build that misses the disk cache (NVRTC: seconds to a minute) says so on stderr where that
    is a terminal, with the part and its time; a build read from the cache, or with stderr not a
    terminal, writes nothing. (One small kernel built the module's way: a second or two.)"""
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    mod = _cuda._module(cupy.cuda.Device().id)
    route, code, opts, _ = mod._build
    if route != "noftz":
        pytest.skip("this CuPy builds through RawModule, which caches on its own")

    def build(stream, cache):
        monkeypatch.setenv("XENTC_CACHE_DIR", str(cache))
        monkeypatch.setattr(sys, "stderr", stream)
        funcs, _, _ = _cuda._compile_noftz(cupy, code, opts, ["xent_probe"], mod.cc, "probe")
        assert "xent_probe" in funcs
        return stream.getvalue()

    text = build(Terminal(), tmp_path / "a")
    assert text.startswith(f"xentc: building the CUDA kernels (probe, 1 instance) for sm_{mod.cc} with NVRTC; "
                           f"once, then read from {tmp_path / 'a'}\n"), text
    assert re.search(r"\nxentc: built the CUDA kernels \(probe\) in \d+\.\d s\n$", text), text
    assert build(Terminal(), tmp_path / "a") == ""   # read back from the cache
    assert build(io.StringIO(), tmp_path / "b") == ""   # not a terminal
    text = build(Terminal(), "none")   # no disk cache: every build is one
    assert text.startswith(f"xentc: building the CUDA kernels (probe, 1 instance) for sm_{mod.cc} with NVRTC "
                           "(the disk cache is off)\n"), text


@pytest.mark.parametrize("store", ["xentk::xhalf", "xentk::xbf16"])
def test_16bit_kernels_built_on_first_use(store):
    """A device's first call builds the float and double kernels only; those of a 16-bit storage
    type come with the first call that needs one, then serve every later call."""
    dev = cupy.cuda.Device().id
    mod = _cuda._Module(dev)   # a fresh module, as a device's first call makes
    names = _cuda.name_expressions(mod.cluster, store)
    assert names and not set(names) & set(dict(mod.funcs))
    assert mod.info()["storage_compile_seconds"] == {}
    f = mod.funcs[_cuda._generic_name("block", False, store)]   # builds them all
    assert set(names) <= set(dict(mod.funcs)) and f is mod.funcs[_cuda._generic_name("block", False, store)]
    assert list(mod.info()["storage_compile_seconds"]) == [store]
    with pytest.raises(KeyError):
        mod.funcs[f"xent_softmax_block<float, {store}, 3>"]   # no such instance: no second build
    # the kernels for soft labels stored otherwise than y_pred: a part of their own, on first use
    h = {"xentk::xhalf": "float16", "xentk::xbf16": "bfloat16"}[store]
    part = f"soft-y:{h}:float32"
    mixed = _cuda.name_expressions(mod.cluster, part)
    assert mixed and not set(mixed) & set(dict(mod.funcs))
    mod.funcs[_cuda._generic_name("warp", False, "", store)]
    assert set(mixed) <= set(dict(mod.funcs))
    assert list(mod.info()["storage_compile_seconds"]) == [store, part]
    assert not set(_cuda.name_expressions(mod.cluster, f"soft-y:float32:{h}")) & set(dict(mod.funcs))
    if mod.onchip_cap > 48 * 1024:   # the 16-bit on-chip kernels got the same shared-memory settings
        for wide in (False, True):
            f = mod.funcs[_cuda._onchip_name(False, 1, 8, False, store, wide)]
            # (CuPy 14's Function has no such attribute: ask the driver, 8 = max dynamic smem)
            got = (f.max_dynamic_shared_size_bytes if hasattr(f, "max_dynamic_shared_size_bytes")
                   else cupy.cuda.driver.funcGetAttribute(8, f.ptr))
            assert got == mod.onchip_cap, wide


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ALL_IDS)
@pytest.mark.parametrize("name", FUNCS)
def test_plain_calls_match_the_general_path(monkeypatch, name, dtype):
    """The plain-call shortcut (_api._binary_plain, _categorical_plain) on CuPy arrays: taken for
    contiguous float32 / float64 / float16 / bfloat16 arrays (binary: labels of y_pred's dtype) on
    the current device, with weights of the per-sample shape (binary: or repeating one block) and
    out= arrays the kernels write as they are, with the general path's bits (the shortcut switched
    off); left to the general path
    for what it does not cover, and for a call whose kernel reports an error (the general path
    raises it)."""
    from xentc import _api

    rng = np.random.default_rng(_seed("plain", name, np.dtype(dtype).name))
    f = getattr(xentc, name)
    binary = name in BINARY
    taken = []
    shortcuts = {n: getattr(_api, n) for n in ("_binary_plain", "_categorical_plain")}

    def spy(*a, _orig, **k):
        r = _orig(*a, **k)
        taken.append(r is not None)
        return r

    def both(*args, make_out=None, **kw):
        """make_out: makes the out= tuple, anew for each of the two calls; a result holds its arrays."""
        outs = [] if make_out is None else [make_out(), make_out()]
        for n, orig in shortcuts.items():
            monkeypatch.setattr(_api, n, lambda *a, _orig=orig, **k: spy(*a, _orig=_orig, **k))
        del taken[:]
        results = []
        for i in range(2):
            if i:
                for n in shortcuts:
                    monkeypatch.setattr(_api, n, lambda *a, **k: None)
            try:
                r = f(*args, **kw, **({"out": outs[i]} if outs else {}))
                if outs and isinstance(outs[i], tuple) and len(outs[i]) == 3:
                    for j, (a, o) in enumerate(zip(r if isinstance(r, tuple) else (r, None, None), outs[i])):
                        assert o is None or (j == 0 and kw.get("reduction", "mean") != "none") or a is o, j
            except (TypeError, ValueError) as exc:
                r = exc
            results.append(r)
        assert_same_bits(*results, host)
        return any(taken)

    def like(template, reduction):
        """make_out: new arrays like a result's (the loss: for 'none'; else its scalar, ignored)."""
        entries = template if isinstance(template, tuple) else (template, None, None)
        return lambda: tuple(a if a is None or (i == 0 and reduction != "none") else cupy.empty_like(a)
                             for i, a in enumerate(entries))

    for shape, axis, from_logits in (((37,) if binary else (37, 5), -1, True), ((6, 40), -1, True),
                                     ((3, 2000), -1, True), ((4, 5, 3), 1, True), ((2, 3, 4, 5), 1, True),
                                     ((9, 7), -1, False)):
        if binary:
            y, x = make_binary(rng, shape, dtype, from_logits, "soft")
            y = y.astype(dtype)
        else:
            y, x = make_categorical(rng, shape, dtype, from_logits, "int", axis=axis)
        yg, xg = cupy.asarray(y), cupy.asarray(x)
        for reduction, grad, hess in ((r, g, h) for r in REDUCTIONS for g, h in FLAGS):
            for eps in (0.0, 0.1):
                kw = dict(from_logits=from_logits, reduction=reduction, grad=grad, hess=hess, label_smoothing=eps)
                if not binary:
                    kw["axis"] = axis
                if name in ("binary_focal_loss", "focal_loss"):
                    kw["gamma"] = 2.0
                # on the GPU categorical calls from probabilities go the general way (labels checked first)
                assert both(yg, xg, **kw) == (binary or from_logits), (shape, kw)
                if eps == 0.0 and (grad or hess or reduction == "none"):   # into out= arrays
                    assert both(yg, xg, make_out=like(f(yg, xg, **kw), reduction), **kw) == (binary or from_logits)
                if not binary:   # ignore_index: some rows, then all of them (a mean of nothing)
                    yi = y.copy()
                    yi.reshape(-1)[::3] = -100
                    for labels in (yi, np.full_like(y, -100)):
                        assert both(cupy.asarray(labels), xg, ignore_index=-100, **kw) == from_logits, (shape, kw)
            # sample weights of the per-sample shape, in y_pred's dtype and in float64 (the kernels
            # read both as they are); with ignore_index too
            sw = weights(rng, y.shape)
            for swg in (cupy.asarray(sw.astype(dtype)), cupy.asarray(sw)):
                kw = dict(from_logits=from_logits, reduction=reduction, grad=grad, hess=hess, sample_weight=swg)
                if not binary:
                    kw["axis"] = axis
                assert both(yg, xg, **kw) == (binary or from_logits), (shape, kw)
                if grad or hess or reduction == "none":   # into out= arrays: the weight pre-pass waits
                    assert both(yg, xg, make_out=like(f(yg, xg, **kw), reduction), **kw) == (binary or from_logits)
                if not binary:
                    assert both(cupy.asarray(yi), xg, ignore_index=-100, **kw) == from_logits, (shape, kw)
                    # class weights (a device array, a list), with and without the sample weights
                    cw = cupy.linspace(0.0, 2.0, x.shape[axis])
                    assert both(yg, xg, class_weight=cw, **kw) == from_logits, (shape, kw)
                    del kw["sample_weight"]
                    assert both(cupy.asarray(yi), xg, ignore_index=-100, class_weight=cw.get().tolist(),
                                **kw) == from_logits, (shape, kw)
                    if name == "focal_loss":
                        assert both(yg, xg, alpha=cw / 2, **kw) == from_logits, (shape, kw)
                elif name == "binary_cross_entropy":   # pos_weight: one, and one for each label
                    for pw in (2.5, cupy.linspace(0.0, 4.0, shape[-1])):
                        assert both(yg, xg, pos_weight=pw, **kw), (shape, kw)
                else:
                    assert both(yg, xg, alpha=0.25, **kw), (shape, kw)
    # declined: strided, labels of another dtype, misaligned, weights, and an error the kernel reports
    if binary:
        y, x = make_binary(rng, (8, 6), dtype, True, "soft")
        yg, xg = cupy.asarray(y.astype(dtype)), cupy.asarray(x)
        bad = yg.copy()
        bad[3, 2] = 1.5
        # labels of another dtype, which the kernels read as they are: taken
        other = np.float32 if np.dtype(dtype).itemsize == 2 else np.float16
        hard = cupy.asarray(np.round(y))
        for labels in (yg.astype(other), hard.astype(np.int64), hard.astype(np.int8), hard > 0.5):
            for kw in ({}, {"sample_weight": cupy.ones((8, 6), dtype), "reduction": "sum"}):
                assert both(labels, xg, from_logits=True, grad=True, **kw), (labels.dtype, kw)
        # weights that repeat one block (a weight a row, a label, one for all), of y_pred's dtype or
        # float64: the block and its repeat handed to the kernels, as the general path does
        for ws in ((8, 1), (6,), (1, 6), (1,), ()):
            for wdt in (dtype, np.float64):
                swg = cupy.asarray(rng.random(ws) + 0.5, dtype=wdt)
                for reduction in REDUCTIONS:
                    kw = {"from_logits": True, "grad": True, "sample_weight": swg, "reduction": reduction}
                    assert both(yg, xg, **kw), (ws, wdt, reduction)
                    assert both(yg, xg, make_out=like(f(yg, xg, **kw), reduction), **kw), (ws, wdt, reduction)
        declined = [((yg[:, ::2], xg[:, ::2]), {}), ((_misaligned_like(np.round(y)), xg), {}),
                    ((yg, _misaligned_like(x)), {}),
                    ((yg, xg), {"sample_weight": cupy.ones((2, 6), dtype)}), ((bad, xg), {"from_logits": False}),
                    ((yg, xg), {"sample_weight": _misaligned_like(np.ones((8, 6), dtype))}),
                    ((yg, xg), {"sample_weight": cupy.ones((8, 12), dtype)[:, ::2]}),
                    ((yg, xg), {"sample_weight": cupy.ones((8, 6), np.int32)}),
                    ((yg, xg), {"sample_weight": np.ones((8, 6), dtype)})]   # NumPy: a TypeError
        other_dt = np.float32 if np.dtype(dtype) == np.float64 else np.float64
        # out= arrays the kernels cannot write as they are (the general path's errors)
        declined += [((yg, xg), {"make_out": lambda: (None, _misaligned_like(np.zeros((8, 6), dtype)), None)}),
                     ((yg, xg), {"make_out": lambda: (None, np.zeros((8, 6), dtype), None)}),   # NumPy
                     ((yg, xg), {"make_out": lambda: (None, cupy.zeros((8, 6), other_dt), None)}),
                     ((yg, xg), {"make_out": lambda: (None, cupy.zeros((8, 12), dtype)[:, ::2], None)}),
                     ((yg, xg), {"make_out": lambda: (None, xg, None)})]                       # y_pred itself
        if _cdt(dtype) == np.float32:   # a pos_weight past the compute dtype's range (the general path's error)
            declined.append(((yg, xg), {"pos_weight": 1e300}))
    else:
        y, x = make_categorical(rng, (8, 6), dtype, True, "int")
        yg, xg = cupy.asarray(y), cupy.asarray(x)
        bad = yg.copy()
        bad[5] = 6
        # and a bad label among labels of more than one dimension (the kernels take them as they are)
        y3, x3 = make_categorical(rng, (2, 6, 4), dtype, True, "int", axis=1)
        bad3 = cupy.asarray(y3)
        bad3[1, 2] = -1
        not_cdt = np.float32 if _cdt(dtype) == np.float64 else np.float64   # for a loss out= array
        # integer labels of another dtype: converted to int64 as the general path converts them
        for labels in (yg.astype(np.int32), yg.astype(np.uint8)):
            for kw in ({}, {"ignore_index": 2}):
                assert both(labels, xg, from_logits=True, grad=True, **kw), (labels.dtype, kw)
        declined = [((yg, xg[:, ::2]), {}), ((yg.astype(np.uint64), xg), {}), ((yg, _misaligned_like(x)), {}),
                    ((_misaligned_like(y.astype(np.int32)), xg), {}),
                    ((yg, xg), {"class_weight": np.ones(6, dtype)}), ((bad, xg), {}),   # NumPy: a TypeError
                    ((yg, xg), {"class_weight": cupy.ones(5, dtype)}),   # of another length: an error
                    ((yg, xg), {"class_weight": cupy.asarray([1.0, 2, 3, -1, 5, 6])}),
                    ((bad, xg), {"ignore_index": 2}), ((bad, xg), {"ignore_index": 2, "reduction": "sum"}),
                    ((bad3, cupy.asarray(x3)), {"axis": 1}),
                    ((yg, xg), {"sample_weight": cupy.ones(1, dtype)}),   # broadcast
                    ((yg, xg), {"sample_weight": _misaligned_like(np.ones(8, dtype))}),
                    ((yg, xg), {"sample_weight": cupy.ones(8, np.int64)}),
                    ((bad, xg), {"sample_weight": cupy.ones(8, dtype)}),
                    ((yg, xg), {"make_out": lambda: (None, _misaligned_like(np.zeros((8, 6), dtype)), None)}),
                    ((yg, xg), {"make_out": lambda: (cupy.zeros(8, not_cdt), None, None), "reduction": "none"}),
                    ((yg, xg), {"make_out": lambda: (None, cupy.zeros((6, 8), dtype), None)})]
    for args, kw in declined:
        kw = {"from_logits": True, "grad": True, **kw}
        assert not both(*args, **kw), kw


@pytest.mark.parametrize("seed", range(10))
def test_random_calls_match_the_general_path_and_the_cpu(monkeypatch, seed):
    """Random calls (inputs.random_call: every function, option and reduction; labels of several
    dtypes and sample weights of four, scaled to the edges of the range, some of them bad; y_pred
    float16, bfloat16, float32 or float64) on CuPy arrays: the plain-call shortcut on and off give
    the same bits or the same error, into out= arrays too (some calls), and the CPU path on the
    same NumPy arrays the same error, or results within the dtype's tolerance with infinities and
    NaN in the same places."""
    from xentc import _api

    rng = np.random.default_rng(_seed("random", seed))
    shortcuts = {n: getattr(_api, n) for n in ("_binary_plain", "_categorical_plain")}

    def call(f, on, *args, **kw):
        for n, orig in shortcuts.items():
            monkeypatch.setattr(_api, n, orig if on else (lambda *a, **k: None))
        try:
            return f(*args, **kw)
        except (TypeError, ValueError) as exc:
            return exc

    def into_out(f, on, template, *args, **kw):
        """The call into new out= arrays like template's (the loss: for 'none'), NaN-filled; the
        result holds them."""
        entries = template if isinstance(template, tuple) else (template, None, None)
        out = tuple(None if a is None or (i == 0 and kw["reduction"] != "none") else cupy.full_like(a, np.nan)
                    for i, a in enumerate(entries))
        r = call(f, on, *args, out=out, **kw)
        if not isinstance(r, Exception):
            for i, (a, o) in enumerate(zip(r if isinstance(r, tuple) else (r, None, None), out)):
                assert o is None or a is o, i
        return r

    dtypes = (np.float16, np.float32, np.float64) + ((BF16.type,) if BF16 is not None else ())
    for _ in range(150):
        f, y, x, kw, dtype = random_call(rng, dtypes)
        yg, xg, kwg = cupy.asarray(y), cupy.asarray(x), to_gpu_kwargs(kw)
        got = call(f, True, yg, xg, **kwg)
        assert_same_bits(got, call(f, False, yg, xg, **kwg), host)
        if not isinstance(got, Exception) and (kw["grad"] or kw["hess"] or kw["reduction"] == "none") \
                and rng.random() < 0.3:   # into out= arrays, both ways: the same bits as into new ones
            assert_same_bits(into_out(f, True, got, yg, xg, **kwg), got, host)
            assert_same_bits(into_out(f, False, got, yg, xg, **kwg), got, host)
        cpu = call(f, True, y, x, **kw)
        if isinstance(got, Exception) or isinstance(cpu, Exception):
            assert type(got) is type(cpu) and str(got) == str(cpu), (f.__name__, kw, got, cpu)
            continue
        parts = (got, cpu) if isinstance(cpu, tuple) else ((got,), (cpu,))
        for g, c, what in zip(*parts, ("loss", "grad", "hess")):
            assert (g is None) == (c is None), what
            if c is not None:
                assert_close(g, c, RTOL[np.dtype(dtype)], f"{what} of {f.__name__} {kw}")


def test_weight_products_past_the_compute_dtype_with_zero_probabilities():
    """Class weights times sample weights past float32's range make the gradient's factor ds S / s
    infinite: at a class of probability 0 (a logit of -inf) the gradient is 0 as on the CPU, not
    the NaN of infinity times 0 (the few-classes and on-chip kernels' gradient-only form)."""
    rng = np.random.default_rng(_seed("weight-products"))
    for C in (10, 600):
        x = rng.normal(0, 3, (6, C)).astype(np.float32)
        x[:, 1] = -np.inf
        y = rng.integers(2, C, 6)
        kw = {"from_logits": True, "grad": True, "reduction": "sum",
              "class_weight": np.full(C, 3e37), "sample_weight": np.full(6, 1e29)}
        cpu = xentc.cross_entropy(y, x, **kw)
        gpu = xentc.cross_entropy(cupy.asarray(y), cupy.asarray(x), **to_gpu_kwargs(kw))
        assert not host(gpu.grad)[:, 1].any() and not cpu.grad[:, 1].any()
        assert_close(gpu.grad, cpu.grad, RTOL[np.dtype(np.float32)], f"grad, C={C}")


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_float64_class_weights_below_float32_range(dtype):
    """float64 class weights that float32 holds as zeros (2**-166) or subnormals (2**-140), with
    integer labels: a mean lifts them by a power of two before they are narrowed (as on the CPU,
    tests/test_properties.py), on the plain path, the path that waits for the denominator (out=)
    and with sample weights as small; the bits of the same call with class weights of moderate
    size. Their mean was 0.0 with zero derivatives."""
    rng = np.random.default_rng(_seed("class-weight-lift", np.dtype(dtype).name))
    N, C = 12, 5
    x = rng.normal(0, 2, (N, C)).astype(dtype)
    y = rng.integers(0, C, N)
    y[::4] = -1
    cw = np.array([1.0, 0.125, 1.75, 0.0, 1.5])
    sw = rng.integers(1, 9, N) / 4
    for e in (-166, -140):
        for name, extra in (("cross_entropy", {}), ("focal_loss", {"gamma": 2.0, "alpha": 0.25}),
                            ("cross_entropy", {"sample_weight": sw}), ("focal_loss", {"sample_weight": sw}),
                            ("cross_entropy", {"sample_weight": sw * 2.0 ** -150, "out": "grad"})):
            def call(w, tiny_sw):
                kw = dict(extra, ignore_index=-1, from_logits=True, grad=True, hess=True, class_weight=w)
                if "sample_weight" in kw and not tiny_sw:
                    kw["sample_weight"] = sw
                if kw.pop("out", None):
                    kw["out"] = (None, cupy.empty((N, C), dtype), None)
                r = getattr(xentc, name)(cupy.asarray(y), cupy.asarray(x), **to_gpu_kwargs(kw))
                return r.loss, r.grad.copy(), r.hess.copy()
            got, want = call(np.ldexp(cw, e), True), call(cw, False)
            assert float(want[0]) > 0, (name, extra)
            assert_same_bits(got, want, to_host=host)


def test_float64_weights_at_the_edge_of_float32_as_on_the_cpu():
    """The largest float64 weight that rounds to float32's largest number is taken as that number
    (the bits of the call with it), the next one up (it rounds to inf) is an error naming it, as on
    the CPU: on the plain path and the general one (out=), binary and categorical, from logits
    and from probabilities."""
    top = float(np.finfo(np.float32).max)
    over = 2.0 ** 128 - 2.0 ** 103
    ok = float(np.nextafter(over, 0.0))
    rng = np.random.default_rng(_seed("weight-edge"))
    yb, xb = (rng.random(10) < 0.5).astype(np.float32), rng.normal(0, 1, 10).astype(np.float32)
    yc, xc = rng.integers(0, 4, 10), rng.normal(0, 1, (10, 4)).astype(np.float32)
    pc = (np.exp(xc) / np.exp(xc).sum(axis=1, keepdims=True)).astype(np.float32)
    for name, y, x, logits in (("binary_cross_entropy", yb, xb, True), ("binary_focal_loss", yb, xb, True),
                               ("cross_entropy", yc, xc, True), ("focal_loss", yc, pc, False)):
        for out in (False, True):
            def call(v, y=y, x=x, name=name, logits=logits, out=out):
                sw = np.ones(10)
                sw[4] = v
                kw = {"from_logits": logits, "grad": True, "reduction": "sum", "sample_weight": cupy.asarray(sw)}
                if out:
                    kw["out"] = (None, cupy.empty(x.shape, np.float32), None)
                try:
                    r = getattr(xentc, name)(cupy.asarray(y), cupy.asarray(x), **kw)
                except ValueError as exc:
                    return exc
                return r.loss, r.grad.copy()
            assert_same_bits(call(ok), call(top), to_host=host)
            err = call(over)
            assert isinstance(err, ValueError) and str(err) == (
                f"sample_weight: weight {over!r} at index 4 overflows float32, the computation dtype of y_pred"), err


def test_float64_weight_errors_come_before_label_errors_as_on_the_cpu():
    """Float64 sample weights beside float32 y_pred: the CPU narrows them before it reads a label,
    so a negative, NaN or too large weight is named before a bad label at a lower index; the GPU,
    which checks them as they are with the labels, names the same one."""
    rng = np.random.default_rng(_seed("weight-error-first"))
    x = rng.normal(0, 1, (8, 5)).astype(np.float32)
    y = rng.integers(0, 5, 8)
    y[0] = 7
    for bad in (1e39, -1e-300, np.nan, -1.0):
        sw = np.ones(8)
        sw[3] = bad
        for kw in ({"from_logits": True}, {"from_logits": True, "ignore_index": 2}, {}):
            xx = x if kw else np.full((8, 5), 0.2, np.float32)
            with pytest.raises(ValueError) as cpu:
                xentc.cross_entropy(y, xx, sample_weight=sw, **kw)
            with pytest.raises(ValueError) as gpu:
                xentc.cross_entropy(cupy.asarray(y), cupy.asarray(xx), sample_weight=cupy.asarray(sw), **kw)
            assert str(gpu.value) == str(cpu.value) and str(cpu.value).startswith("sample_weight"), (bad, kw)


def test_scratch_kept_per_thread():
    """A call's scratch (partial sums, error keys) is kept for the same thread's next call on the
    device once the call has synchronised (a second one for a weight pre-pass read on the device); a larger need gets a new one; a call that raises from
    a kernel's error still hands its scratch back; threads never share one (concurrent calls in
    several threads give each its own result)."""
    import threading

    rng = np.random.default_rng(_seed("scratch"))
    y, x = make_categorical(rng, (300, 7), np.float32, True, "int")
    yg, xg = cupy.asarray(y), cupy.asarray(x)
    want = float(xentc.cross_entropy(y, x, from_logits=True))
    dev = xg.data.device_id
    _cuda._tls.__dict__.pop("scratch", None)   # what earlier tests left in this thread
    xentc.cross_entropy(yg, xg, from_logits=True)
    kept = _cuda._tls.scratch[dev, 0]
    assert abs(float(xentc.cross_entropy(yg, xg, from_logits=True)) - want) <= 1e-6 * abs(want)
    assert _cuda._tls.scratch[dev, 0] is kept
    big_y, big_x = make_categorical(rng, (70000, 3), np.float32, True, "int")   # more partial sums
    xentc.cross_entropy(cupy.asarray(big_y), cupy.asarray(big_x), from_logits=True)
    bigger = _cuda._tls.scratch[dev, 0]
    assert bigger is not kept and bigger.cap > kept.cap
    bad = yg.copy()
    bad[5] = 7
    with pytest.raises(ValueError, match="index 5"):
        xentc.cross_entropy(bad, xg, from_logits=True)
    assert _cuda._tls.scratch[dev, 0] is bigger
    # a call whose weight pre-pass the main kernels read on the device holds a scratch of each slot
    xentc.cross_entropy(yg, xg, from_logits=True, ignore_index=3)
    pre_kept = _cuda._tls.scratch[dev, _cuda._PRE_SLOT]
    assert pre_kept is not _cuda._tls.scratch[dev, 0]
    xentc.cross_entropy(yg, xg, from_logits=True, ignore_index=3)
    assert _cuda._tls.scratch[dev, _cuda._PRE_SLOT] is pre_kept and _cuda._tls.scratch[dev, 0] is bigger

    results, seen, errors = {}, {}, []

    def work(i):
        try:
            xi = xg * (1 + i / 8)
            for _ in range(20):
                results[i] = float(xentc.cross_entropy(yg, xi, from_logits=True))
            seen[i] = _cuda._tls.scratch[dev, 0]   # kept alive here, so the ids below differ
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({id(s) for s in seen.values()}) == 4
    for i, got in results.items():
        ref = float(xentc.cross_entropy(y, x * np.float32(1 + i / 8), from_logits=True))
        assert abs(got - ref) <= 1e-6 * abs(ref)
