"""ClippedScaledSign: larq-zoo's xnor_weight_scale, against numpy and its derivative by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import quantizers


def _reference(x, dy, axis):
    """Forward and gradient of alpha * sign(c), c = clip(x, -1, 1), alpha per channel of axis."""
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    c = np.clip(x, -1.0, 1.0)
    n = np.prod([x.shape[i] for i in axes])
    s = np.where(c >= 0, 1.0, -1.0)
    alpha = np.abs(c).mean(axis=axes, keepdims=True)
    inside = (np.abs(x) <= 1.0).astype(x.dtype)
    # d/dc_i [alpha s_i] with s passed straight through and d alpha / d c_i = sign0(c_i) / n.
    grad = inside * (alpha * dy + np.sign(c) / n * (dy * s).sum(axis=axes, keepdims=True))
    return alpha * s, grad


@pytest.mark.parametrize("axis", [-1, 0])
def test_forward_and_gradient_equal_the_formula(axis, forward_backward):
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 0.8, (3, 3, 4, 5)).astype(np.float32)
    x[0, 0, 0, 0] = 0.0  # sign(0) = +1, |0| has no gradient
    x[1, 1, 1, 1] = 1.0  # the clip's end is inside
    y, grad, dy = forward_backward(quantizers.ClippedScaledSign(axis=axis), x)
    expected_y, expected_grad = _reference(x.astype(np.float64), dy, axis)
    np.testing.assert_allclose(y, expected_y, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    assert np.all(grad[np.abs(x) > 1] == 0) and np.any(np.abs(x) > 1)


def test_differs_from_scaled_sign_only_in_the_backward():
    x = tf.constant(np.random.default_rng(4).uniform(-0.9, 0.9, (3, 3, 2, 4)), tf.float32)
    clipped, plain = quantizers.ClippedScaledSign(), quantizers.ScaledSign()
    np.testing.assert_allclose(clipped(x).numpy(), plain(x).numpy(), rtol=1e-6)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = tf.reduce_sum(clipped(x) * x), tf.reduce_sum(plain(x) * x)
    assert np.abs(tape.gradient(a, x).numpy() - tape.gradient(b, x).numpy()).max() > 1e-3


def test_layers_scale_per_output_channel_and_the_config_round_trips(tmp_path):
    layer = tfqnn.layers.QuantDepthwiseConv2D(
        3, depthwise_quantizer=quantizers.ClippedScaledSign(), depthwise_constraint="weight_clip"
    )
    layer.build((None, 5, 5, 2))
    assert layer.depthwise_quantizer.axis == (-2, -1)  # as ScaledSign's
    quantizer = quantizers.ClippedScaledSign(axis=(-2, -1))
    assert quantizers.deserialize(quantizers.serialize(quantizer)) == quantizer
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(
        inputs,
        tfqnn.layers.QuantConv2D(
            3, 3, kernel_quantizer=quantizers.ClippedScaledSign(), kernel_constraint="weight_clip"
        )(inputs),
    )
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert restored.layers[1].kernel_quantizer == quantizers.ClippedScaledSign()
    x = np.random.default_rng(5).normal(size=(2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_invalid_axis_is_a_value_error():
    with pytest.raises(ValueError, match="axis"):
        quantizers.ClippedScaledSign(axis="last")
