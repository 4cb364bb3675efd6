"""QuantDense against numpy: forward passes with each quantizer pair, the
exact integer dot product of binary operands, and the STE gradients."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfqnn.layers import (
    QuantDense,
)
from tfqnn.quantizers import StochasticSign

from .factories import ATOL, QUANTIZER_PAIRS, f32, np_input, np_kernel, randomize


@pytest.mark.parametrize("pair", list(QUANTIZER_PAIRS))
def test_dense_forward_matches_numpy(pair, ref, rng):
    in_q, k_q, np_in, np_k = QUANTIZER_PAIRS[pair]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = QuantDense(4, input_quantizer=in_q, kernel_quantizer=k_q)
    x = f32(rng.uniform(-1.5, 1.5, (6, 5)))
    layer.build(x.shape)
    kernel = f32(rng.normal(0, 0.6, (5, 4)))
    bias = f32(rng.normal(0, 1, (4,)))
    layer.set_weights([kernel, bias])
    expected = np_input(ref, np_in, x).astype(np.float64) @ np_kernel(ref, np_k, kernel) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


def test_dense_binary_output_is_integer_dot_product(ref, rng):
    """sign(x) @ sign(W) + b, then the activation; exact for +-1 operands."""
    layer = QuantDense(
        7,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        activation="relu",
    )
    x = f32(rng.normal(size=(5, 9)))
    x[0, :3] = 0.0  # sign(0) = +1
    layer.build(x.shape)
    kernel = f32(rng.normal(size=(9, 7)))
    kernel[:2, 0] = 0.0
    bias = f32(rng.integers(-3, 4, size=7))
    layer.set_weights([kernel, bias])
    expected = np.maximum(ref.sign(x) @ ref.sign(kernel) + bias, 0.0)
    np.testing.assert_array_equal(layer(x).numpy(), expected)


def test_dense_keeps_latent_float_kernel(rng):
    layer = QuantDense(
        3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False
    )
    layer.build((2, 4))
    kernel = f32(rng.uniform(-0.9, 0.9, (4, 3)))
    layer.set_weights([kernel])
    layer(np.ones((2, 4), np.float32))
    # The variable still holds the float values, not their signs.
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)
    assert len(np.unique(np.abs(layer.kernel.numpy()))) > 2


def test_dense_on_3d_inputs(ref, rng):
    layer = QuantDense(
        3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
    )
    x = f32(rng.normal(size=(2, 4, 5)))
    layer.build(x.shape)
    randomize(layer, rng)
    kernel, bias = layer.get_weights()
    expected = np.einsum("btc,co->bto", ref.sign(x), ref.sign(kernel)) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


def test_dense_without_quantizers_is_keras_dense(rng):
    layer = QuantDense(4, activation="tanh")
    dense = keras.layers.Dense(4, activation="tanh")
    x = f32(rng.normal(size=(3, 6)))
    layer.build(x.shape)
    dense.build(x.shape)
    randomize(layer, rng)
    dense.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x).numpy(), dense(x).numpy(), rtol=1e-6, atol=1e-6)


def test_dense_gradients_are_the_straight_through_estimator(ref, rng):
    """dL/dW = sign(x)^T g masked where |W| > 1; dL/dx = g sign(W)^T masked where |x| > 1."""
    layer = QuantDense(
        3,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )
    x = tf.constant(f32(rng.uniform(-2, 2, (5, 4))))
    layer.build(x.shape)
    kernel = f32(rng.uniform(-0.9, 0.9, (4, 3)))
    kernel[0, 0], kernel[2, 1] = 1.5, -3.0  # outside the STE's clip range
    layer.set_weights([kernel])
    g = tf.constant(f32(rng.normal(size=(5, 3))))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * g)
    grad_w, grad_x = tape.gradient(loss, [layer.kernel, x])
    expected_w = (ref.sign(x.numpy()).T @ g.numpy()) * (np.abs(kernel) <= 1.0)
    expected_x = (g.numpy() @ ref.sign(kernel).T) * (np.abs(x.numpy()) <= 1.0)
    np.testing.assert_allclose(grad_w.numpy(), expected_w, atol=ATOL)
    np.testing.assert_allclose(grad_x.numpy(), expected_x, atol=ATOL)
    assert grad_w.numpy()[0, 0] == 0.0 and grad_w.numpy()[2, 1] == 0.0


def test_stochastic_kernel_quantizer_in_dense(ref, rng):
    layer = QuantDense(
        6, kernel_quantizer=StochasticSign(seed=5), kernel_constraint="weight_clip", use_bias=False
    )
    x = f32(rng.normal(size=(4, 10)))
    layer.build(x.shape)
    kernel = f32(rng.uniform(-0.6, 0.6, (10, 6)))
    layer.set_weights([kernel])
    expected = x.astype(np.float64) @ ref.sign(kernel)
    np.testing.assert_allclose(layer(x, training=False).numpy(), expected, atol=ATOL)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)  # training=None: inference
    trained = layer(x, training=True).numpy()
    assert not np.allclose(trained, expected, atol=ATOL)
    # The seed generator is layer state (so it is saved and restored).
    assert any("seed_generator" in v.path for v in layer.variables)
