"""Ternary quantizers: SteTern and StochasticTern."""

import numpy as np
import pytest
import tensorflow as tf

from tfqnn import quantizers

DRAWS = 20000


def np_ste_tern(x, threshold=None, scaled=True):
    x = np.asarray(x, np.float32)
    magnitude = np.abs(x)
    if threshold is None:
        delta = np.float32(0.7) * np.mean(magnitude, dtype=np.float32)
    else:
        delta = np.float32(threshold)
    nonzero = magnitude > delta
    a = 1.0
    if scaled:
        a = magnitude[nonzero].astype(np.float64).mean() if nonzero.any() else 0.0
    return np.sign(x) * nonzero * a, delta


# --------------------------------------------------------------------------- SteTern


def test_ste_tern_twn_threshold_and_scale(forward_backward):
    # Dyadic entries with mean |x| = 1 exactly: delta = 0.7, so +-0.5 and 0
    # become 0, and a = mean of the 8 kept magnitudes = 11 / 8.
    x = np.array(
        [[-2.0, -0.75, 0.0, 0.5], [0.25, 1.25, -0.75, 2.0], [0.75, -1.5, -0.25, 2.0]],
        np.float32,
    )
    assert np.abs(x).mean() == 1.0
    y, grad, dy = forward_backward(quantizers.SteTern(), x)
    kept = np.abs(x) > 0.7
    np.testing.assert_array_equal(y, np.sign(x) * kept * 1.375)
    expected, delta = np_ste_tern(x)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(y == 0, np.abs(x) <= delta)
    np.testing.assert_array_equal(grad, dy * (np.abs(x) <= 1.0))


def test_ste_tern_random_tensor(forward_backward, rng):
    x = rng.normal(scale=0.4, size=(3, 3, 4, 5)).astype(np.float32)
    y, grad, dy = forward_backward(quantizers.SteTern(), x)
    expected, _ = np_ste_tern(x)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(grad, dy * (np.abs(x) <= 1.0))


def test_ste_tern_fixed_threshold_is_exclusive(forward_backward):
    x = np.array([-2.0, -0.5, -0.5000001, -0.2, 0.0, 0.25, 0.5, 0.5000001, 0.9], np.float32)
    y, grad, dy = forward_backward(quantizers.SteTern(threshold=0.5), x)
    expected, _ = np_ste_tern(x, threshold=0.5)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=0)
    assert y[1] == 0.0 and y[6] == 0.0  # |x| == threshold -> 0
    assert y[2] < 0 and y[7] > 0
    # a = mean(|x|) of the kept entries (2, 0.5000001, 0.5000001, 0.9).
    np.testing.assert_allclose(y[0], -(2.0 + 0.5000001 * 2 + 0.9) / 4, rtol=1e-6)
    np.testing.assert_array_equal(grad, dy * (np.abs(x) <= 1.0))


def test_ste_tern_unscaled_is_exact(forward_backward):
    x = np.array([-3.0, -1.0, -0.3, -0.1, 0.0, 0.1, 0.3, 1.0, 3.0], np.float32)
    y, grad, dy = forward_backward(quantizers.SteTern(threshold=0.2, scaled=False), x)
    np.testing.assert_array_equal(y, np.sign(x) * (np.abs(x) > 0.2))
    np.testing.assert_array_equal(grad, dy * (np.abs(x) <= 1.0))


@pytest.mark.parametrize("clip_value", [None, 0.5, 2.0])
def test_ste_tern_clip_value(forward_backward, clip_value):
    x = np.array([-2.5, -2.0, -0.7, -0.5, 0.0, 0.5, 0.6, 2.0, 3.0], np.float32)
    y, grad, dy = forward_backward(quantizers.SteTern(clip_value=clip_value), x)
    np.testing.assert_allclose(y, np_ste_tern(x)[0], rtol=1e-6, atol=0)
    mask = np.ones_like(x, bool) if clip_value is None else np.abs(x) <= clip_value
    np.testing.assert_array_equal(grad, dy * mask)


@pytest.mark.parametrize("threshold", [None, 0.0])
def test_ste_tern_all_zero_tensor_stays_zero(forward_backward, threshold):
    y, grad, dy = forward_backward(quantizers.SteTern(threshold=threshold), np.zeros((3, 2)))
    np.testing.assert_array_equal(y, 0.0)
    np.testing.assert_array_equal(grad, dy)


def test_ste_tern_zero_threshold_keeps_every_nonzero(forward_backward):
    x = np.array([-0.25, 0.0, 0.5, 1e-8], np.float32)
    y, _, _ = forward_backward(quantizers.SteTern(threshold=0.0), x)
    a = (0.25 + 0.5 + 1e-8) / 3
    np.testing.assert_allclose(y, np.array([-a, 0.0, a, a]), rtol=1e-6, atol=0)


# --------------------------------------------------------------------------- StochasticTern


def test_stochastic_tern_unbiased_over_many_draws(binomial_tol):
    x = np.array([-2.0, -1.0, -0.7, -0.25, 0.0, 0.1, 0.5, 1.0, 3.0], np.float32)
    y = quantizers.StochasticTern(seed=5)(tf.constant(np.tile(x, (DRAWS, 1)))).numpy()
    assert set(np.unique(y)) <= {-1.0, 0.0, 1.0}
    # Never the wrong sign; 0 stays 0.
    assert np.all(y * x >= 0)
    np.testing.assert_array_equal(y[:, 4], 0.0)
    p = np.minimum(np.abs(x.astype(np.float64)), 1.0)
    freq = np.mean(y != 0, axis=0)
    assert np.all(np.abs(freq - p) <= binomial_tol(p, DRAWS)), (freq, p)
    np.testing.assert_array_equal(y[:, [0, 1]], -1.0)
    np.testing.assert_array_equal(y[:, [7, 8]], 1.0)
    np.testing.assert_allclose(
        y.mean(axis=0), np.clip(x, -1, 1), atol=float(np.max(binomial_tol(p, DRAWS)))
    )


@pytest.mark.parametrize("training", [None, True, False])
def test_stochastic_tern_gradient(forward_backward, training):
    x = np.array([-1.5, -1.0, -0.4, 0.0, 0.4, 1.0, 1.0000001], np.float32)
    y, grad, dy = forward_backward(quantizers.StochasticTern(seed=3), x, training=training)
    assert set(np.unique(y)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(grad, dy * (np.abs(x) <= 1.0))


def test_stochastic_tern_samples_when_not_told_otherwise():
    x = tf.fill([2000], 0.5)
    quantizer = quantizers.StochasticTern(seed=0)
    for training in (None, True):
        y = quantizer(x, training=training).numpy()
        assert 0 < np.sum(y == 0.0) < 2000 and np.sum(y == 1.0) > 0


def test_stochastic_tern_inference_rounds_to_nearest():
    x = np.array(
        [-3.0, -1.0, -0.7, -0.5, -0.49, -0.3, 0.0, 0.3, 0.49, 0.5, 0.51, 1.0, 2.0],
        np.float32,
    )
    quantizer = quantizers.StochasticTern(seed=1)
    expected = np.round(np.clip(x, -1.0, 1.0))  # ties to even: +-0.5 -> 0
    for _ in range(3):
        np.testing.assert_array_equal(quantizer(x, training=False).numpy(), expected)
    assert expected[3] == 0 and expected[9] == 0 and expected[10] == 1


def test_stochastic_tern_seed_reproducibility():
    x = tf.constant(np.linspace(-1.2, 1.2, 1000, dtype=np.float32))
    first, second, other = (quantizers.StochasticTern(seed=s) for s in (3, 3, 4))
    for _ in range(2):
        np.testing.assert_array_equal(first(x).numpy(), second(x).numpy())
    assert not np.array_equal(first(x).numpy(), other(x).numpy())
    assert not np.array_equal(first(x).numpy(), first(x).numpy())


def test_stochastic_tern_in_tf_function(binomial_tol):
    quantizer = quantizers.StochasticTern(seed=8)
    x = tf.constant(np.tile(np.float32([-0.5, 0.0, 0.25]), (DRAWS, 1)))
    step = tf.function(lambda x: quantizer(x, training=True))
    infer = tf.function(lambda x: quantizer(x, training=False))
    y1, y2 = step(x).numpy(), step(x).numpy()
    assert not np.array_equal(y1, y2)
    p = np.array([0.5, 0.0, 0.25])
    freq = np.mean(y1 != 0, axis=0)
    assert np.all(np.abs(freq - p) <= binomial_tol(p, DRAWS))
    np.testing.assert_array_equal(infer(x).numpy()[0], [0.0, 0.0, 0.0])
