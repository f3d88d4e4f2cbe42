"""The instruction-set variants of the CPU kernels (baseline, AVX2, AVX-512) give the same bits."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import xentc
from xentc import _kernels

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import xentc
    rng = np.random.default_rng(7)
    out = {}
    for dt in (np.float32, np.float64):
        z = (rng.standard_normal(5003) * 30).astype(dt)
        y = rng.random(5003).astype(dt)
        x = (rng.standard_normal((97, 211)) * 20).astype(dt)
        lab = rng.integers(0, 211, 97)
        soft = rng.random((97, 211)).astype(dt)
        xs = (rng.standard_normal((997, 10)) * 20).astype(dt)   # few classes: the row-group path
        labs = rng.integers(0, 10, 997)
        softs = rng.random((997, 10)).astype(dt)
        # rows whose classes lie apart: through tiles (softmax_tiled_rows), moved by each variant's
        # own transposes, edges included (211 classes, 97 rows, images of 37 pixels)
        pt = np.ascontiguousarray(rng.dirichlet(np.ones(211), 111).astype(dt).reshape(3, 37, 211).transpose(0, 2, 1))
        labt = rng.integers(0, 211, (3, 37))
        w16 = (rng.random(5003) * 3).astype(np.float16)
        w16[::11], w16[7] = -0.0, 2.0**-24
        # where products' errors are taken exactly (prod_err: a fused multiply-add in the AVX2 and
        # AVX-512 variants, Veltkamp's split in the baseline): smoothed labels, unequal weights near
        # the gradient's zero p* and at tiny labels and probabilities, focal powers of any gamma,
        # softmax rows of gamma > 4 whose probabilities underflow (logits up to +-1e4)
        yt = y.copy()
        yt[::7] = np.resize(np.array([1e-300, 3e-310, 1e-35, 3e-40, 0.5, 0.9999, 1e-3]), yt[::7].size).astype(dt)
        pt2 = (1 / (1 + np.exp(-z.astype(np.float64)))).astype(dt)
        pt2[1::3] = (2.75 * yt / (2.75 * yt + (1 - yt)))[1::3].astype(dt)
        pt2[::11] = np.resize(np.array([1e-300, 5e-324, 1e-40, 2.2e-308, 1e-38, 0.999999]), pt2[::11].size).astype(dt)
        zw = (rng.standard_normal(5003) * 3000).clip(-1e4, 1e4).astype(dt)
        xw = (rng.standard_normal((97, 211)) * 300).clip(-1e4, 1e4).astype(dt)
        pr = rng.dirichlet(np.full(211, 0.05), 97).astype(dt)
        cases = {
            "bce": xentc.binary_cross_entropy(y, z, from_logits=True, grad=True, hess=True, reduction="none"),
            "bfocal": xentc.binary_focal_loss(y, z, from_logits=True, gamma=1.5, grad=True, hess=True),
            "bprob": xentc.binary_cross_entropy(y, 1 / (1 + np.exp(-z)), grad=True, hess=True),
            "ce": xentc.cross_entropy(lab, x, from_logits=True, grad=True, hess=True, label_smoothing=0.1),
            "soft": xentc.cross_entropy(soft, x, from_logits=True, grad=True, hess=True, reduction="none"),
            "focal": xentc.focal_loss(lab, x, from_logits=True, gamma=2.0, grad=True, hess=True),
            "ce10": xentc.cross_entropy(labs, xs, from_logits=True, grad=True, hess=True, label_smoothing=0.1,
                                        reduction="none"),
            "soft10": xentc.cross_entropy(softs, xs, from_logits=True, grad=True, hess=True, reduction="none"),
            "focal10": xentc.focal_loss(labs, xs, from_logits=True, gamma=2.0, grad=True, hess=True, reduction="none"),
            "focal10f": xentc.focal_loss(softs, xs, from_logits=True, gamma=0.5, grad=True, hess=True),
            "ceF": xentc.cross_entropy(np.asfortranarray(soft), np.asfortranarray(x), from_logits=True, grad=True,
                                       hess=True, reduction="none"),
            "probs_nchw": xentc.cross_entropy(labt, pt, axis=1, grad=True, hess=True, reduction="none"),
            # float16 weights (converted 16 at a time by the AVX-512 variant), a subnormal and -0.0
            "bce_w16": xentc.binary_cross_entropy(y, z, from_logits=True, grad=True, hess=True,
                                                  sample_weight=w16),
            "bce_w16n": xentc.binary_cross_entropy(y, z, from_logits=True, grad=True, hess=True, reduction="none",
                                                   sample_weight=w16),
            "bprob_pw": xentc.binary_cross_entropy(yt, pt2, pos_weight=2.75, label_smoothing=0.1, grad=True,
                                                   hess=True, reduction="none"),
            "bprob_pw0": xentc.binary_cross_entropy(yt, pt2, pos_weight=2.75, grad=True, reduction="none"),
            "bprob_ls": xentc.binary_cross_entropy(yt, pt2, label_smoothing=0.05, grad=True, reduction="none"),
            "bfocal_p": xentc.binary_focal_loss(yt, pt2, gamma=2.5, alpha=0.25, label_smoothing=0.1, grad=True,
                                                hess=True, reduction="none"),
            "bfocal_z": xentc.binary_focal_loss(yt, zw, from_logits=True, gamma=2.5, alpha=0.25, label_smoothing=0.1,
                                                grad=True, hess=True, reduction="none"),
            "focal_g6": xentc.focal_loss(lab, xw, from_logits=True, gamma=6.0, grad=True, hess=True, reduction="none"),
            "focal_g6s": xentc.focal_loss(soft, xw, from_logits=True, gamma=6.0, grad=True, hess=True,
                                          reduction="none"),
            "focal_pr": xentc.focal_loss(lab, pr, gamma=2.5, label_smoothing=0.1, grad=True, hess=True,
                                         reduction="none"),
        }
        for k, r in cases.items():
            for f in ("loss", "grad", "hess"):
                if getattr(r, f) is not None:
                    out[f"{k}_{np.dtype(dt).name}_{f}"] = np.asarray(getattr(r, f))
    # 16-bit y_pred (float32 a chunk at a time), and the 16-bit loads and stores themselves on
    # float32 patterns of every exponent
    x16 = (rng.standard_normal((97, 211)) * 20).astype(np.float16)
    r = xentc.cross_entropy(lab, x16, from_logits=True, grad=True, hess=True)
    out.update(ce16_loss=np.asarray(r.loss), ce16_grad=r.grad, ce16_hess=r.hess)
    pats = ((np.arange(1 << 16, dtype=np.uint32) << 16) | rng.integers(0, 1 << 16, 1 << 16, dtype=np.uint32))
    for bf in (0, 1):
        h = np.empty(pats.size, np.uint16)
        xentc._kernels.store16(pats.view(np.float32), h, bf, None)
        f = np.empty(pats.size, np.float32)
        xentc._kernels.load16(h, f, bf, None)
        out[f"store16_{bf}"], out[f"load16_{bf}"] = h, f
    out["variant"] = np.array(xentc._kernels.kernel_variant())
    np.savez(sys.argv[1], **out)
""")


def _run(tmp_path, isa):
    path = tmp_path / f"{isa}.npz"
    env = dict(os.environ, XENTC_ISA=isa)
    subprocess.run([sys.executable, "-c", SCRIPT, str(path)], check=True, env=env, cwd=tmp_path)
    return np.load(path)


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_variants_give_the_same_bits(tmp_path, isa):
    fast = _run(tmp_path, isa)
    if str(fast["variant"]) != isa:
        pytest.skip(f"this machine cannot run the {isa} variant (or it was not built)")
    base = _run(tmp_path, "baseline")
    assert str(base["variant"]) == "baseline"
    for key in base.files:
        if key == "variant":
            continue
        np.testing.assert_array_equal(np.atleast_1d(base[key]).view(np.uint8), np.atleast_1d(fast[key]).view(np.uint8),
                                      err_msg=key)


def test_unknown_request_falls_back_to_a_runnable_variant(tmp_path):
    assert str(_run(tmp_path, "no-such-isa")["variant"]) == _kernels.kernel_variant()


def test_variant_is_reported():
    assert _kernels.kernel_variant() in ("baseline", "avx2", "avx512")
