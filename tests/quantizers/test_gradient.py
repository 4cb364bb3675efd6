"""DoReFaGradient: identity forward, stochastic k-bit quantization of dy."""

import numpy as np
import pytest
import tensorflow as tf

from tfqnn import quantizers


def quantized_gradient(quantizer, x, dy):
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x)
    grad = tape.gradient(y, x, output_gradients=tf.constant(dy, tf.float32))
    return y.numpy(), grad.numpy()


def per_sample_max(dy):
    """max |dy| over every axis but the batch axis, kept for broadcasting."""
    dy = np.asarray(dy, np.float64)
    return np.max(np.abs(dy), axis=tuple(range(1, dy.ndim)), keepdims=True)


def assert_on_grid_and_close(grad, dy, bits):
    """g = 2m (k/n - 1/2) for an integer 0 <= k <= n, and |g - dy| <= 2m/n."""
    n = 2**bits - 1
    m = per_sample_max(dy)
    live = np.broadcast_to(m > 0, grad.shape)
    m_safe = np.where(m > 0, m, 1.0)
    k = ((grad / (2.0 * m_safe) + 0.5) * n)[live]
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)
    assert np.all(np.round(k) >= 0) and np.all(np.round(k) <= n)
    step = 2.0 * m / n
    assert np.all(np.abs(grad - dy) <= step * (1 + 1e-5)), np.max(np.abs(grad - dy) / step)
    # A sample whose gradient is all zero keeps a zero gradient.
    np.testing.assert_array_equal(grad[~live], 0.0)


def test_forward_is_identity(rng):
    x = rng.normal(size=(3, 5)).astype(np.float32)
    y = quantizers.DoReFaGradient(bits=2, seed=0)(x)
    np.testing.assert_array_equal(y.numpy(), x)
    for training in (True, False):
        np.testing.assert_array_equal(
            quantizers.DoReFaGradient(seed=0)(x, training=training).numpy(), x
        )


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_gradient_on_grid_within_one_step(rng, bits):
    dy = rng.normal(size=(4, 7))
    dy[1] *= 1e-3  # per-sample scales: a global max would flatten this row
    dy[2] *= 1e3
    dy[3] = 0.0
    quantizer = quantizers.DoReFaGradient(bits=bits, seed=1)
    _, grad = quantized_gradient(quantizer, np.ones((4, 7)), dy)
    dy32 = dy.astype(np.float32).astype(np.float64)
    assert_on_grid_and_close(grad.astype(np.float64), dy32, bits)
    if bits == 1:
        # Only +-m: n = 1.
        m = np.broadcast_to(per_sample_max(dy32)[:3], (3, 7))
        np.testing.assert_allclose(np.abs(grad[:3]), m, rtol=1e-6)


def test_gradient_uses_per_sample_max_on_4d_tensors(rng):
    dy = rng.normal(size=(3, 2, 3, 4))
    dy[0] *= 1e-4
    dy[2] *= 50.0
    quantizer = quantizers.DoReFaGradient(bits=3, seed=2)
    _, grad = quantized_gradient(quantizer, np.zeros(dy.shape), dy)
    dy32 = dy.astype(np.float32).astype(np.float64)
    assert_on_grid_and_close(grad.astype(np.float64), dy32, 3)
    # The small sample is not flushed to zero, as it would be with a global max.
    assert np.count_nonzero(grad[0]) > grad[0].size // 2


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_gradient_is_unbiased(bits):
    draws = 20000
    row = np.array([0.9, -0.35, 0.05, 0.0, -0.6, 0.2, -1.0], np.float64)
    dy = np.tile(row, (draws, 1))
    quantizer = quantizers.DoReFaGradient(bits=bits, seed=3)
    _, grad = quantized_gradient(quantizer, np.zeros(dy.shape), dy)
    grad = grad.astype(np.float64)
    assert_on_grid_and_close(grad, dy.astype(np.float32).astype(np.float64), bits)
    n = 2**bits - 1
    m = 1.0
    step = 2.0 * m / n
    level = (row / (2 * m) + 0.5) * n
    p = level - np.floor(level)  # probability of the upper grid point
    sigma = step * np.sqrt(p * (1 - p) / draws)
    error = np.abs(grad.mean(axis=0) - row)
    assert np.all(error <= 5 * sigma + 1e-6), (error, sigma)
    # The draws are really random where dy is between grid points.
    between = (p > 0.01) & (p < 0.99)
    assert np.all(grad[:, between].std(axis=0) > 0)


def test_seed_reproducibility(rng):
    dy = rng.normal(size=(8, 50))
    x = np.zeros(dy.shape)
    first, second, other = (quantizers.DoReFaGradient(bits=2, seed=s) for s in (4, 4, 5))
    g1, g2 = quantized_gradient(first, x, dy)[1], quantized_gradient(first, x, dy)[1]
    h1, h2 = quantized_gradient(second, x, dy)[1], quantized_gradient(second, x, dy)[1]
    np.testing.assert_array_equal(g1, h1)
    np.testing.assert_array_equal(g2, h2)
    assert not np.array_equal(g1, g2)
    assert not np.array_equal(g1, quantized_gradient(other, x, dy)[1])


def test_in_tf_function(rng):
    quantizer = quantizers.DoReFaGradient(bits=3, seed=6)
    dy = tf.constant(rng.normal(size=(5, 9)), tf.float32)

    @tf.function
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantizer(x, training=True)
        return y, tape.gradient(y, x, output_gradients=dy)

    x = tf.ones((5, 9))
    y, g1 = step(x, dy)
    _, g2 = step(x, dy)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert_on_grid_and_close(g1.numpy().astype(np.float64), dy.numpy().astype(np.float64), 3)
    assert not np.array_equal(g1.numpy(), g2.numpy())


def test_precision_is_bits():
    assert quantizers.DoReFaGradient().precision == 8
    assert quantizers.DoReFaGradient(bits=5).precision == 5


def test_gradient_of_a_tensor_of_unknown_rank():
    """Inside a tf.function traced without a known rank, m is still per sample."""
    quantizer = quantizers.DoReFaGradient(bits=2, seed=5)

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)] * 2)
    def gradient(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantizer(x)
        return tape.gradient(y, x, output_gradients=dy)

    dy = np.array([[1.0, -0.5, 0.25], [100.0, 50.0, -100.0]], np.float32)
    grad = gradient(tf.zeros_like(dy), dy).numpy()
    m = np.abs(dy).max(axis=1, keepdims=True)
    n = 3.0
    grid = 2 * m * (np.arange(n + 1) / n - 0.5)  # per row: the 4 levels
    for row in range(2):
        assert np.all(np.min(np.abs(grad[row][:, None] - grid[row][None, :]), axis=1) < 1e-4)
    assert np.all(np.abs(grad - dy) <= 2 * m / n + 1e-4)
