"""SwishSign, MagnitudeAwareSign, SteHeaviside and DoReFaWeights against numpy formulas.

The formulas are larq 0.14's (larq/quantizers.py), which these quantizers
reproduce so that larq models keep training alike in tfqnn; the interop
tests compare them with the real larq on whole models.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfqnn import quantizers

EDGES = np.array(
    [-3.0, -1.0000001, -1.0, -0.5, -1e-7, -0.0, 0.0, 1e-7, 0.25, 1.0, 1.0000001, 3.0], np.float32
)


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0).astype(x.dtype)


@pytest.mark.parametrize("beta", [5.0, 1.5])
def test_swish_sign(forward_backward, beta):
    y, grad, dy = forward_backward(quantizers.SwishSign(beta=beta), EDGES)
    np.testing.assert_array_equal(y, np_sign(EDGES))
    bx = beta * EDGES.astype(np.float64)
    expected = dy * beta * (2 - bx * np.tanh(bx / 2)) / (1 + np.cosh(bx))
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
    # The derivative of 2 sigmoid(bx)(1 + bx(1 - sigmoid(bx))) - 1: 2 beta / 2 = beta at 0.
    assert grad[6] == pytest.approx(dy[6] * beta, rel=1e-6)


def test_swish_sign_gradient_is_the_derivative_of_its_smooth_sign():
    beta, x = 3.0, np.linspace(-2, 2, 41)

    def smooth(v):
        s = 1 / (1 + np.exp(-beta * v))
        return 2 * s * (1 + beta * v * (1 - s)) - 1

    h = 1e-6
    numeric = (smooth(x + h) - smooth(x - h)) / (2 * h)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = quantizers.SwishSign(beta)(xt)
    np.testing.assert_allclose(tape.gradient(y, xt).numpy(), numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("clip_value", [1.0, 0.5, None])
def test_magnitude_aware_sign_per_last_axis(forward_backward, rng, clip_value):
    x = rng.normal(size=(3, 2, 4)).astype(np.float32)
    y, grad, dy = forward_backward(quantizers.MagnitudeAwareSign(clip_value), x)
    alpha = np.abs(x).mean(axis=(0, 1))  # over every axis but the last
    np.testing.assert_allclose(y, alpha * np_sign(x), rtol=1e-6)
    mask = np.ones_like(x) if clip_value is None else np.abs(x) <= clip_value
    np.testing.assert_allclose(grad, dy * alpha * mask, rtol=1e-6)


def test_magnitude_aware_sign_rejects_scalars():
    with pytest.raises(ValueError, match="rank"):
        quantizers.MagnitudeAwareSign()(tf.constant(1.0))


@pytest.mark.parametrize("clip_value", [1.0, 2.0, None])
def test_ste_heaviside(forward_backward, clip_value):
    y, grad, dy = forward_backward(quantizers.SteHeaviside(clip_value), EDGES)
    np.testing.assert_array_equal(y, (EDGES > 0).astype(np.float32))
    assert y[5] == 0.0 and y[6] == 0.0  # heaviside(0) = 0
    mask = np.ones_like(EDGES) if clip_value is None else np.abs(EDGES) <= clip_value
    np.testing.assert_array_equal(grad, dy * mask)


def np_dorefa_weights(x, bits):
    x = x.astype(np.float64)
    n = 2**bits - 1
    t = np.tanh(x)
    m = np.abs(t).max()
    u = t / (2 * m) + 0.5 if m > 0 else np.full_like(t, 0.5)
    return 2 * (np.round(u * n) / n) - 1, (1 - t**2) / m if m > 0 else np.zeros_like(t)


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_dorefa_weights(forward_backward, rng, bits):
    x = rng.normal(size=(5, 7)).astype(np.float32)
    y, grad, dy = forward_backward(quantizers.DoReFaWeights(bits), x)
    expected, slope = np_dorefa_weights(x, bits)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert len(np.unique(y)) <= 2**bits
    # The max is a constant: the gradient is dy through tanh and the division alone.
    np.testing.assert_allclose(grad, dy * slope, rtol=1e-5, atol=1e-7)


def test_dorefa_weights_differs_from_dorefa_only_in_the_gradient(rng):
    x = tf.constant(rng.normal(size=(4, 6)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, theirs = quantizers.DoReFaWeights(3)(x), quantizers.DoReFa(3, "weights")(x)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert not np.allclose(tape.gradient(ours, x).numpy(), tape.gradient(theirs, x).numpy())


def test_dorefa_weights_one_bit_and_zero():
    # 1 bit: u = 1/2 at a zero weight rounds to even, so 0 -> -1 (larq's behaviour).
    y = quantizers.DoReFaWeights(1)(tf.constant([-0.5, 0.0, 0.5]))
    np.testing.assert_array_equal(y.numpy(), [-1.0, -1.0, 1.0])
    # An all-zero tensor: divide_no_nan keeps u = 1/2.
    y = quantizers.DoReFaWeights(2)(tf.zeros((3,)))
    np.testing.assert_allclose(y.numpy(), [1 / 3] * 3, rtol=1e-6)


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: quantizers.SwishSign(beta=0), "beta"),
        (lambda: quantizers.SwishSign(beta="5"), "beta"),
        (lambda: quantizers.MagnitudeAwareSign(clip_value=-1), "clip_value"),
        (lambda: quantizers.SteHeaviside(clip_value=0), "clip_value"),
        (lambda: quantizers.DoReFaWeights(bits=0), "bits"),
        (lambda: quantizers.DoReFaWeights(bits=17), "bits"),
    ],
)
def test_invalid_arguments(factory, message):
    with pytest.raises(ValueError, match=f"Invalid {message}="):
        factory()
