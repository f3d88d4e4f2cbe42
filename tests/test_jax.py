"""xentc.jax: losses and jax.grad against jax.numpy references, under jit and vmap."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

import xentc  # noqa: E402
import xentc.jax as xj  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def x64():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


TOL = {"float32": 2e-5, "float64": 1e-12}


def data(dtype, shape=(6, 4), seed=0):
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.normal(0, 2, shape), dtype=dtype)
    y01 = jnp.asarray(rng.integers(0, 2, shape), dtype=dtype)
    cls = jnp.asarray(rng.integers(0, shape[-1], shape[:-1]))
    w = jnp.asarray(rng.integers(1, 8, shape[:-1]) / 4, dtype=dtype)
    return z, y01, cls, w


# jax.numpy references (log space, as the formulas of the design notes)
def ref_bce(y, z, pw, w=None):
    l = pw * y * -jax.nn.log_sigmoid(z) + (1 - y) * -jax.nn.log_sigmoid(-z)
    return l if w is None else l * w


def ref_binary_focal(y, z, gamma, alpha):
    lp, lq = jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)
    return -(alpha * y * (1 - jnp.exp(lp)) ** gamma * lp + (1 - alpha) * (1 - y) * (1 - jnp.exp(lq)) ** gamma * lq)


def ref_ce_terms(cls, z, gamma, axis=-1):
    lp = jnp.take_along_axis(jax.nn.log_softmax(z, axis=axis), jnp.expand_dims(cls, axis), axis=axis)
    lp = jnp.squeeze(lp, axis)
    return -((1 - jnp.exp(lp)) ** gamma) * lp


def check(ours, ref, z, dtype, cot=None):
    a, b = ours(z), ref(z)
    assert a.dtype == z.dtype and a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype])
    if cot is None:
        ga, gb = jax.grad(ours)(z), jax.grad(ref)(z)
    else:
        ga, gb = jax.vjp(ours, z)[1](cot)[0], jax.vjp(ref, z)[1](cot)[0]
    assert ga.dtype == z.dtype and ga.shape == z.shape
    np.testing.assert_allclose(ga, gb, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy(dtype, reduction):
    z, y, _, _ = data(dtype)
    pw = jnp.asarray([0.5, 1.0, 2.0, 3.0], dtype=dtype)
    red = {"mean": jnp.mean, "sum": jnp.sum, "none": lambda t: t}[reduction]
    cot = jnp.asarray(np.random.default_rng(3).normal(size=z.shape), dtype=dtype) if reduction == "none" else None
    check(lambda t: xj.binary_cross_entropy(y, t, from_logits=True, pos_weight=pw, reduction=reduction),
          lambda t: red(ref_bce(y, t, pw)), z, dtype, cot)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_focal_weighted_mean(dtype):
    z, y, _, _ = data(dtype)
    w = jnp.asarray(np.arange(1, 25).reshape(6, 4) / 8, dtype=dtype)
    check(lambda t: xj.binary_focal_loss(y, t, gamma=2.0, alpha=0.25, from_logits=True, sample_weight=w),
          lambda t: jnp.sum(w * ref_binary_focal(y, t, 2.0, 0.25)) / jnp.sum(w), z, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_categorical_sample_weight_mean(dtype, gamma):
    z, _, cls, w = data(dtype)
    fn = xj.cross_entropy if gamma == 0 else xj.focal_loss
    kw = {} if gamma == 0 else {"gamma": gamma}
    check(lambda t: fn(cls, t, from_logits=True, sample_weight=w, **kw),
          lambda t: jnp.sum(w * ref_ce_terms(cls, t, gamma)) / jnp.sum(w), z, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_categorical_none_class_axis(dtype):
    z, _, _, _ = data(dtype, shape=(3, 5, 4))  # classes along axis 1
    cls = jnp.asarray(np.random.default_rng(4).integers(0, 5, (3, 4)))
    cot = jnp.asarray(np.random.default_rng(5).normal(size=(3, 4)), dtype=dtype)
    check(lambda t: xj.focal_loss(cls, t, gamma=1.5, from_logits=True, axis=1, reduction="none"),
          lambda t: ref_ce_terms(cls, t, 1.5, axis=1), z, dtype, cot)


def test_probabilities_and_class_weight():
    z, _, cls, _ = data("float64")
    cw = jnp.asarray([1.0, 2.0, 0.5, 1.5])
    # from probabilities: each entry is its own variable; class weights enter the mean's denominator
    check(lambda p: xj.cross_entropy(cls, p, class_weight=cw),
          lambda p: -jnp.sum(cw[cls] * jnp.log(p[jnp.arange(6), cls])) / jnp.sum(cw[cls]),
          jax.nn.softmax(z), "float64")


def test_jit_and_vmap():
    z, y, cls, w = data("float64")
    f = lambda t: xj.cross_entropy(cls, t, from_logits=True, sample_weight=w)  # noqa: E731
    g_ref = jax.grad(lambda t: jnp.sum(w * ref_ce_terms(cls, t, 0.0)) / jnp.sum(w))(z)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(z), g_ref, rtol=1e-12)
    batch = jnp.stack([z, 2 * z, -z])
    per = jax.vmap(f)(batch)
    np.testing.assert_allclose(per, [float(f(b)) for b in batch], rtol=0, atol=0)
    gb = jax.vmap(jax.grad(f))(batch)
    np.testing.assert_allclose(gb[1], jax.grad(f)(2 * z), rtol=0, atol=0)


def test_low_precision_inputs_compute_in_float32():
    z, y, cls, _ = data("float32")
    for dt in (jnp.bfloat16, jnp.float16):
        g = jax.grad(lambda t: xj.binary_cross_entropy(y, t, from_logits=True))(z.astype(dt))
        assert g.dtype == dt
        np.testing.assert_allclose(np.asarray(g, dtype=np.float32),
                                   jax.grad(lambda t: jnp.mean(ref_bce(y, t, 1.0)))(z.astype(dt).astype(jnp.float32)),
                                   rtol=1e-2, atol=1e-3)
        # the loss in float32, the gradient the float32 one rounded once: xentc's own 16-bit result
        loss, g = jax.value_and_grad(lambda t: xj.cross_entropy(cls, t, from_logits=True))(z.astype(dt))
        want = xentc.cross_entropy(np.asarray(cls), np.asarray(z.astype(dt)), from_logits=True, grad=True)
        assert loss.dtype == jnp.float32 and g.dtype == dt
        assert float(loss) == float(want.loss)
        np.testing.assert_array_equal(np.asarray(g).view(np.uint16), want.grad.view(np.uint16))


def test_errors():
    z, y, cls, _ = data("float64")
    with pytest.raises(TypeError, match="grad"):
        xj.binary_cross_entropy(y, z, grad=True)
    with pytest.raises(TypeError, match="gamma: must be a Python value"):
        jax.jit(lambda g: xj.binary_focal_loss(y, z, gamma=g))(2.0)
    with pytest.raises(Exception, match="y_true: label 9"):
        xj.cross_entropy(cls.at[0].set(9), z, from_logits=True).block_until_ready()


def test_argument_errors_at_the_call():
    """Shape, dtype and option errors are the call's own ValueError / TypeError, also under jit and
    vmap (checked while tracing), not an error from inside the kernel's callback."""
    z, y, cls, _ = data("float32")
    cases = [
        (ValueError, "y_true: integer labels must have shape",
         lambda: xj.cross_entropy(jnp.concatenate([cls, cls]), z, from_logits=True)),
        (ValueError, "reduction:", lambda: xj.binary_cross_entropy(y, z, reduction="avg")),
        (ValueError, "gamma:", lambda: xj.focal_loss(cls, z, gamma=-1.0)),
        (ValueError, "label_smoothing:", lambda: xj.binary_focal_loss(y, z, label_smoothing=1.5)),
        (ValueError, "class_weight: expected length", lambda: xj.cross_entropy(cls, z, class_weight=jnp.ones(2))),
        (TypeError, "y_true: class labels", lambda: xj.cross_entropy(cls.astype(jnp.float32), z)),
    ]
    for exc, text, call in cases:
        with pytest.raises(exc, match=text):
            call()
        with pytest.raises(exc, match=text):
            jax.jit(lambda: call())()
    with pytest.raises(ValueError, match="y_true: integer labels must have shape"):
        jax.vmap(lambda c, x: xj.cross_entropy(c, x))(jnp.zeros((4, 3), int), jnp.zeros((4, 2, 5)))
