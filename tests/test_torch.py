"""xentc.torch: autograd functions checked against PyTorch's own losses (focal written in torch
ops) and with torch.autograd.gradcheck, on CPU tensors and, where a GPU and CuPy exist, on CUDA
tensors (the `device` parameter: the same checks through the CUDA kernels)."""

import pathlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import xentc.torch as xt  # noqa: E402

RTOL = {torch.float32: 2e-5, torch.float64: 1e-11}


def _has_cuda() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


cuda = pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU, PyTorch with CUDA and CuPy")
DEVICES = ["cpu", pytest.param("cuda", marks=cuda)]


def randn(*shape, dtype=torch.float64, scale=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def labels01(*shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, shape, generator=g).to(torch.float64)


def classes(C, *shape, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, C, shape, generator=g)


def torch_binary_focal(y, z, gamma, alpha):
    """Focal loss of Lin et al. in torch ops (hard labels): (1 - p_t)^gamma * CE, alpha-weighted."""
    p = torch.sigmoid(z)
    ce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    a_t = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    return a_t * (1 - p_t) ** gamma * ce


def torch_focal(y, z, gamma, axis=-1):
    logp = F.log_softmax(z, dim=axis)
    logp_y = logp.gather(axis, y.unsqueeze(axis)).squeeze(axis)
    return -((1 - logp_y.exp()) ** gamma) * logp_y


def compare(ours_fn, ref_fn, z, dtype, gradient=None):
    """Loss value and autograd gradient of ours against the reference, both in dtype."""
    z1 = z.to(dtype).clone().requires_grad_(True)
    z2 = z.to(dtype).clone().requires_grad_(True)
    a, b = ours_fn(z1), ref_fn(z2)
    torch.testing.assert_close(a, b.to(a.dtype), rtol=RTOL[dtype], atol=RTOL[dtype])
    g = torch.ones_like(a) if gradient is None else gradient.to(a.dtype)
    a.backward(g)
    b.backward(g.to(b.dtype))
    assert z1.grad.dtype == dtype and z1.grad.shape == z.shape
    torch.testing.assert_close(z1.grad, z2.grad, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("device", DEVICES)
def test_bce_logits_against_torch(dtype, reduction, device):
    z, y = randn(6, 4).to(device), labels01(6, 4).to(device)
    pw = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=dtype, device=device)
    compare(lambda t: xt.binary_cross_entropy(y.to(dtype), t, from_logits=True, pos_weight=pw, reduction=reduction),
            lambda t: F.binary_cross_entropy_with_logits(t, y.to(dtype), pos_weight=pw, reduction=reduction),
            z, dtype, gradient=randn(6, 4, seed=5).to(device) if reduction == "none" else None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_bce_probabilities_weighted_sum_against_torch(dtype, device):
    p = torch.sigmoid(randn(5, 3)).to(device)
    y = labels01(5, 3).to(device)
    w = torch.rand(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(device)
    # torch's weighted "mean" divides by the element count, xentc's by the weight sum: use "sum"
    compare(lambda t: xt.binary_cross_entropy(y.to(dtype), t, sample_weight=w.to(dtype), reduction="sum"),
            lambda t: F.binary_cross_entropy(t, y.to(dtype), weight=w.to(dtype), reduction="sum"),
            p, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_against_torch(dtype, reduction, device):
    z, y = randn(8, 5).to(device), classes(5, 8)
    y[2] = -1
    y = y.to(device)
    cw = torch.tensor([1.0, 0.5, 2.0, 1.5, 0.25], dtype=dtype, device=device)
    compare(lambda t: xt.cross_entropy(y, t, from_logits=True, class_weight=cw, ignore_index=-1, reduction=reduction),
            lambda t: F.cross_entropy(t, y, weight=cw, ignore_index=-1, reduction=reduction),
            z, dtype, gradient=randn(8, seed=6).to(device) if reduction == "none" else None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("C", [3, 10, 1000, 40000])
@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_class_counts_against_torch(dtype, C, device):
    """Each of the CUDA path's cross-entropy kernels (few classes, generic, on-chip row, cluster
    slices) through autograd; plain loops on the CPU."""
    n = 4 if C > 1000 else 33
    z, y = randn(n, C, seed=C).to(device), classes(C, n, seed=C + 1).to(device)
    compare(lambda t: xt.cross_entropy(y, t, from_logits=True), lambda t: F.cross_entropy(t, y), z, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_soft_labels_smoothing_class_axis(dtype, device):
    z = randn(3, 4, 5).to(device)  # (N, C, L): classes along axis 1
    y = torch.softmax(randn(3, 4, 5, seed=9), dim=1).to(device)
    compare(lambda t: xt.cross_entropy(y.to(dtype), t, from_logits=True, axis=1, label_smoothing=0.1,
                                       reduction="none"),
            lambda t: F.cross_entropy(t, y.to(dtype), label_smoothing=0.1, reduction="none"),
            z, dtype, gradient=randn(3, 5, seed=7).to(device))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("device", DEVICES)
def test_binary_focal_against_torch_ops(dtype, alpha, device):
    z, y = randn(7, 3).to(device), labels01(7, 3).to(device)
    compare(lambda t: xt.binary_focal_loss(y.to(dtype), t, gamma=2.0, alpha=alpha, from_logits=True, reduction="sum"),
            lambda t: torch_binary_focal(y.to(dtype), t, 2.0, alpha).sum(), z, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_focal_against_torch_ops(dtype, device):
    z, y = randn(4, 6, 3).to(device), classes(6, 4, 3).to(device)
    compare(lambda t: xt.focal_loss(y, t, gamma=1.5, from_logits=True, axis=1, reduction="none"),
            lambda t: torch_focal(y, t, 1.5, axis=1), z, dtype, gradient=randn(4, 3, seed=8).to(device))
    compare(lambda t: xt.focal_loss(y, t, gamma=1.5, from_logits=True, axis=1),
            lambda t: torch_focal(y, t, 1.5, axis=1).mean(), z, dtype)


GRADCHECK = {
    "bce_logits": lambda z: xt.binary_cross_entropy(labels01(4, 3).to(z.device), z, from_logits=True, pos_weight=2.0,
                                                    reduction="none"),
    "bce_probs": lambda z: xt.binary_cross_entropy(labels01(4, 3).to(z.device), torch.sigmoid(z), label_smoothing=0.1),
    "binary_focal": lambda z: xt.binary_focal_loss(
        labels01(4, 3).to(z.device), z, gamma=2.0, alpha=0.3, from_logits=True,
        sample_weight=torch.arange(1.0, 4.0, dtype=torch.float64, device=z.device)),
    "ce": lambda z: xt.cross_entropy(classes(3, 4).to(z.device), z, from_logits=True, reduction="none"),
    "ce_probs": lambda z: xt.cross_entropy(classes(3, 4).to(z.device), torch.softmax(z, -1), reduction="sum"),
    "focal": lambda z: xt.focal_loss(classes(3, 4).to(z.device), z, gamma=2.0, from_logits=True,
                                     class_weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64, device=z.device)),
}


@pytest.mark.parametrize("name", GRADCHECK)
@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(name, device):
    z = randn(4, 3, scale=1.0).to(device).requires_grad_(True)
    assert torch.autograd.gradcheck(GRADCHECK[name], (z,), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_no_grad_needed_and_float16(device):
    z = randn(5, 3).to(device)
    loss = xt.cross_entropy(classes(3, 5).to(device), z, from_logits=True)
    assert not loss.requires_grad and loss.shape == () and loss.device == z.device
    zh = z.half().requires_grad_(True)
    yh = labels01(5, 3).half().to(device)
    loss = xt.binary_cross_entropy(yh, zh, from_logits=True)
    loss.backward()
    assert loss.dtype == torch.float32 and zh.grad.dtype == torch.float16
    zb = z.to(torch.bfloat16).requires_grad_(True)
    xt.binary_cross_entropy(yh.float(), zb, from_logits=True).backward()
    assert zb.grad.dtype == torch.bfloat16


@pytest.mark.parametrize("C", [10, 1000])
@pytest.mark.parametrize("device", DEVICES)
def test_bfloat16_is_float32_rounded_once(device, C):
    """bfloat16 logits: the loss of the float32 computation on the same values and its gradient
    rounded to bfloat16 (on CUDA the kernels read and write bfloat16 as it is where CuPy takes it)."""
    zb = randn(64, C).to(device).to(torch.bfloat16).requires_grad_(True)
    y = classes(C, 64).to(device)
    loss = xt.cross_entropy(y, zb, from_logits=True)
    loss.backward()
    z32 = zb.detach().float().requires_grad_(True)
    l32 = xt.cross_entropy(y, z32, from_logits=True)
    l32.backward()
    assert loss.dtype == torch.float32 and zb.grad.dtype == torch.bfloat16 and zb.grad.device == zb.device
    torch.testing.assert_close(loss, l32, rtol=1e-6, atol=0)
    # within one bfloat16 rounding of the float32 gradient (the two may sum a row's exponentials in
    # another order on the GPU)
    torch.testing.assert_close(zb.grad.float(), z32.grad.to(torch.bfloat16).float(), rtol=2**-7, atol=1e-9)


def test_dlpack_shares_memory():
    from xentc.torch import _to_array, _to_tensor

    t = randn(6, 4)[:, ::2]  # a strided view
    a = _to_array(t, t.device)
    assert a.ctypes.data == t.data_ptr() and a.strides == (t.stride(0) * 8, t.stride(1) * 8)
    b = np.arange(6.0)
    assert _to_tensor(b, torch.device("cpu")).data_ptr() == b.ctypes.data


def test_errors():
    z = randn(3, 2).requires_grad_(True)
    y = labels01(3, 2).requires_grad_(True)
    with pytest.raises(ValueError, match="y_true: .*y_pred only"):
        xt.binary_cross_entropy(y, z, from_logits=True)
    with pytest.raises(ValueError, match="sample_weight"):
        xt.binary_cross_entropy(y.detach(), z, from_logits=True, sample_weight=torch.ones(3, 2, requires_grad=True))
    with pytest.raises(TypeError, match="grad"):
        xt.binary_cross_entropy(y.detach(), z, grad=True)
    with pytest.raises(TypeError, match="y_pred"):
        xt.binary_cross_entropy(y.detach(), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="y_true: label 5"):
        xt.cross_entropy(torch.tensor([0, 5, 1]), z, from_logits=True)


def test_module_does_not_shadow_torch():
    """xentc/torch.py must import the real PyTorch, not itself."""
    assert xt.torch is sys.modules["torch"] and xt.torch.nn is torch.nn
    assert not pathlib.Path(torch.__file__).resolve().is_relative_to(pathlib.Path(xt.__file__).resolve().parent)


@cuda
def test_cuda_dlpack_shares_memory():
    from xentc.torch import _to_array, _to_tensor

    t = randn(8, 4).cuda()
    a = _to_array(t, t.device)
    assert a.data.ptr == t.data_ptr()
    assert _to_tensor(a, t.device).data_ptr() == t.data_ptr()


@cuda
def test_cuda_side_stream():
    """Work queued on a non-default stream: xentc's kernels run on PyTorch's current stream, after
    the producer of the logits and before their consumers, with no synchronisation by the caller."""
    s = torch.cuda.Stream()
    z_host, y = randn(2048, 512, dtype=torch.float32), classes(512, 2048)
    with torch.cuda.stream(s):
        z = z_host.cuda(non_blocking=False)
        z = (z * 1.0).requires_grad_(True)   # produced on s
        yc = y.cuda()
        loss = xt.cross_entropy(yc, z, from_logits=True)
        loss.backward()
        got_loss, got_grad = loss.clone(), z.grad.clone()
    s.synchronize()
    zr = z_host.clone().requires_grad_(True)
    ref = F.cross_entropy(zr, y)
    ref.backward()
    torch.testing.assert_close(got_loss.cpu(), ref, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(got_grad.cpu(), zr.grad, rtol=2e-5, atol=1e-8)


@cuda
def test_cuda_mixed_devices_and_errors():
    z = randn(3, 4).cuda().requires_grad_(True)
    with pytest.raises(TypeError, match="y_true"):
        xt.cross_entropy(classes(4, 3), z, from_logits=True)   # labels left on the CPU
    with pytest.raises(ValueError, match="y_true: label 7"):
        xt.cross_entropy(torch.tensor([0, 7, 1]).cuda(), z, from_logits=True)
    assert z.grad is None
