"""Binary quantizers: SteSign, ApproxSign, ScaledSign, StochasticSign."""

import numpy as np
import pytest
import tensorflow as tf

from tfqnn import quantizers

EDGES = np.array(
    [-3.0, -1.0000001, -1.0, -0.5, -1e-7, -0.0, 0.0, 1e-7, 0.25, 1.0, 1.0000001, 3.0],
    dtype=np.float32,
)


def np_sign(x):
    """+1 where x >= 0 (so sign(0) = sign(-0) = +1), else -1."""
    return np.where(np.asarray(x) >= 0, 1.0, -1.0).astype(np.asarray(x).dtype)


# --------------------------------------------------------------------------- SteSign


def test_ste_sign_forward_and_clipped_gradient(forward_backward):
    y, grad, dy = forward_backward(quantizers.SteSign(), EDGES)
    np.testing.assert_array_equal(y, np_sign(EDGES))
    assert set(np.unique(y)) == {-1.0, 1.0}
    # sign(0) = +1, for both zeros.
    assert y[5] == 1.0 and y[6] == 1.0
    # Exactly +-clip_value lets the gradient through; just outside does not.
    np.testing.assert_array_equal(grad, dy * (np.abs(EDGES) <= 1.0))
    assert grad[2] == dy[2] and grad[9] == dy[9]
    assert grad[1] == 0.0 and grad[10] == 0.0


@pytest.mark.parametrize("clip_value", [0.25, 0.5, 2.0])
def test_ste_sign_custom_clip_value(forward_backward, clip_value):
    x = np.array([-2.5, -2.0, -0.5, -0.25, 0.0, 0.25, 0.3, 0.5, 2.0, 2.1], np.float32)
    y, grad, dy = forward_backward(quantizers.SteSign(clip_value=clip_value), x)
    np.testing.assert_array_equal(y, np_sign(x))
    np.testing.assert_array_equal(grad, dy * (np.abs(x) <= np.float32(clip_value)))


def test_ste_sign_without_clipping_passes_every_gradient(forward_backward):
    x = np.array([-1e6, -2.0, 0.0, 1.5, 1e6], np.float32)
    y, grad, dy = forward_backward(quantizers.SteSign(clip_value=None), x)
    np.testing.assert_array_equal(y, np_sign(x))
    np.testing.assert_array_equal(grad, dy)


def test_ste_sign_keeps_shape_of_4d_tensor(forward_backward, rng):
    x = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    y, grad, dy = forward_backward(quantizers.SteSign(), x)
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, np_sign(x))
    np.testing.assert_array_equal(grad, dy * (np.abs(x) <= 1.0))


# --------------------------------------------------------------------------- ApproxSign


def test_approx_sign_forward_and_polynomial_gradient(forward_backward):
    x = np.array([-2.0, -1.0, -0.75, -0.5, -0.1, -0.0, 0.0, 0.1, 0.3, 0.5, 1.0, 1.5], np.float32)
    y, grad, dy = forward_backward(quantizers.ApproxSign(), x)
    np.testing.assert_array_equal(y, np_sign(x))
    expected = dy.astype(np.float64) * (2.0 - 2.0 * np.abs(x)) * (np.abs(x) <= 1.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=0)
    # The peak of the gradient is 2 dy at 0; it vanishes at +-1 and beyond.
    np.testing.assert_allclose(grad[6], 2.0 * dy[6], rtol=1e-7)
    assert grad[1] == 0.0 and grad[10] == 0.0 and grad[0] == 0.0 and grad[11] == 0.0


# --------------------------------------------------------------------------- ScaledSign


def np_scaled_sign(x, axis):
    keep = axis if isinstance(axis, tuple) else (axis,)
    keep = {a % x.ndim for a in keep}
    reduce = tuple(i for i in range(x.ndim) if i not in keep)
    alpha = np.mean(np.abs(x.astype(np.float64)), axis=reduce, keepdims=True)
    return alpha * np_sign(x)


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((5, 3), -1),
        ((5, 3), 1),
        ((5, 3), -2),
        ((5, 3), 0),
        ((3, 3, 2, 4), -1),
        ((3, 3, 2, 4), -2),
        ((3, 3, 2, 4), (-2, -1)),
        ((3, 3, 2, 4), (2, 3)),
        ((3, 3, 2, 4), [-2, -1]),
    ],
)
def test_scaled_sign_per_channel(forward_backward, rng, shape, axis):
    x = rng.normal(size=shape).astype(np.float32)
    # Make the channels' scales clearly different, so a per-tensor alpha fails.
    x *= np.linspace(0.1, 3.0, x.size).reshape(shape).astype(np.float32)
    x.flat[0] = 0.0  # sign(0) = +1
    y, grad, dy = forward_backward(quantizers.ScaledSign(axis=axis), x)
    ref_axis = tuple(axis) if isinstance(axis, list) else axis
    np.testing.assert_allclose(y, np_scaled_sign(x, ref_axis), rtol=2e-6, atol=0)
    assert y.flat[0] > 0
    # alpha is not differentiated: the gradient is exactly dy.
    np.testing.assert_array_equal(grad, dy)


def test_scaled_sign_constant_magnitude_per_channel(forward_backward):
    x = np.array([[1.0, -2.0], [-3.0, 4.0], [2.0, 0.0]], np.float32)
    y, _, _ = forward_backward(quantizers.ScaledSign(axis=-1), x)
    alpha = np.array([2.0, 2.0], np.float32)  # column means of |x|
    np.testing.assert_array_equal(y, alpha * np_sign(x))


@pytest.mark.parametrize(
    "shape, axis", [((4, 3), 2), ((4, 3), -3), ((2, 2, 3), (0, 3)), ((6,), (-2,))]
)
def test_scaled_sign_axis_out_of_range_raises_at_call(shape, axis):
    quantizer = quantizers.ScaledSign(axis=axis)
    with pytest.raises(ValueError, match="axis"):
        quantizer(tf.ones(shape))


# --------------------------------------------------------------------------- StochasticSign

DRAWS = 20000


def test_stochastic_sign_unbiased_over_many_draws(binomial_tol):
    x = np.array([-2.0, -1.0, -0.6, -0.2, 0.0, 0.3, 0.75, 1.0, 2.5], np.float32)
    y = quantizers.StochasticSign(seed=1)(tf.constant(np.tile(x, (DRAWS, 1)))).numpy()
    assert set(np.unique(y)) <= {-1.0, 1.0}
    p = np.clip((x.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)
    freq = np.mean(y == 1.0, axis=0)
    assert np.all(np.abs(freq - p) <= binomial_tol(p, DRAWS)), (freq, p)
    # Certain outcomes outside (-1, 1).
    np.testing.assert_array_equal(y[:, [0, 1]], -1.0)
    np.testing.assert_array_equal(y[:, [7, 8]], 1.0)
    # The mean is hard_tanh(x).
    np.testing.assert_allclose(
        y.mean(axis=0), np.clip(x, -1, 1), atol=float(np.max(2 * binomial_tol(p, DRAWS)))
    )


@pytest.mark.parametrize("training", [None, True])
def test_stochastic_sign_gradient_and_training_flags(forward_backward, training):
    x = np.array([-1.5, -1.0, -0.4, 0.0, 0.4, 1.0, 1.5], np.float32)
    y, grad, dy = forward_backward(quantizers.StochasticSign(seed=4), x, training=training)
    assert set(np.unique(y)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(grad, dy * (np.abs(x) <= 1.0))


def test_stochastic_sign_samples_when_not_told_otherwise():
    x = tf.zeros([2000])  # p = 1/2
    quantizer = quantizers.StochasticSign(seed=0)
    for training in (None, True):
        y = quantizer(x, training=training).numpy()
        assert 0 < np.sum(y == -1.0) < 2000


def test_stochastic_sign_inference_is_sign(forward_backward):
    x = np.array([-3.0, -0.9, -0.1, -0.0, 0.0, 0.1, 0.9, 3.0], np.float32)
    quantizer = quantizers.StochasticSign(seed=2)
    for _ in range(3):
        y, grad, dy = forward_backward(quantizer, x, training=False)
        np.testing.assert_array_equal(y, np_sign(x))
        np.testing.assert_array_equal(grad, dy * (np.abs(x) <= 1.0))


def test_stochastic_sign_seed_reproducibility():
    x = tf.constant(np.linspace(-1.2, 1.2, 1000, dtype=np.float32))
    first, second, other = (quantizers.StochasticSign(seed=s) for s in (11, 11, 12))
    a1, a2 = first(x).numpy(), first(x).numpy()
    b1, b2 = second(x).numpy(), second(x).numpy()
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # the generator advances
    assert not np.array_equal(a1, other(x).numpy())


def test_stochastic_sign_in_tf_function(binomial_tol):
    quantizer = quantizers.StochasticSign(seed=21)
    eager = quantizers.StochasticSign(seed=21)
    x = tf.constant(np.tile(np.float32([-0.5, 0.0, 0.5]), (DRAWS, 1)))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantizer(x, training=True)
        return y, tape.gradient(y, x, output_gradients=2.0 * tf.ones_like(x))

    y1, g1 = step(x)
    y2, _ = step(x)
    assert not np.array_equal(y1.numpy(), y2.numpy())
    np.testing.assert_array_equal(y1.numpy(), eager(x).numpy())
    np.testing.assert_array_equal(g1.numpy(), 2.0)
    p = np.array([0.25, 0.5, 0.75])
    freq = np.mean(y1.numpy() == 1.0, axis=0)
    assert np.all(np.abs(freq - p) <= binomial_tol(p, DRAWS))
