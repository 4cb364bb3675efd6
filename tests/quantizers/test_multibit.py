"""k-bit quantizers: DoReFa, FixedPoint, Uniform, SymmetricUniform, PowerOfTwo, NoOp."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfqnn import quantizers
from tfqnn.quantizers import multibit

DRAWS = 20000


# --------------------------------------------------------------------------- DoReFa, activations


def np_dorefa_activations(x, bits):
    x = np.asarray(x, np.float32)
    n = np.float32(2.0**bits - 1.0)
    return np.round(np.clip(x, 0.0, 1.0) * n) / n  # np.round: ties to even


def test_dorefa_activations_two_bits_edges(forward_backward):
    x = np.array(
        [-1.0, -1e-7, -0.0, 0.0, 0.1, 1 / 6 - 0.01, 0.3, 0.5, 0.6, 0.9, 1.0, 1.0000001, 3.0],
        np.float32,
    )
    y, grad, dy = forward_backward(quantizers.DoReFa(bits=2), x)
    np.testing.assert_array_equal(y, np_dorefa_activations(x, 2))
    # The grid {0, 1/3, 2/3, 1}; 0.5 * 3 = 1.5 is a tie that goes to 2 (even).
    third = np.float32(1) / np.float32(3)
    np.testing.assert_array_equal(y[[0, 3, 4, 5]], 0.0)
    assert y[6] == third and y[7] == np.float32(2) / np.float32(3)
    np.testing.assert_array_equal(y[[10, 11, 12]], 1.0)
    # Gradient where 0 <= x <= 1, bounds included.
    np.testing.assert_array_equal(grad, dy * ((x >= 0) & (x <= 1)))
    assert grad[2] == dy[2] and grad[10] == dy[10]
    assert grad[1] == 0 and grad[11] == 0


def test_dorefa_activations_one_bit_tie_rounds_to_even(forward_backward):
    x = np.array([-0.5, 0.0, 0.49, 0.5, 0.51, 1.0, 2.0], np.float32)
    y, _, _ = forward_backward(quantizers.DoReFa(bits=1), x)
    np.testing.assert_array_equal(y, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 16])
def test_dorefa_activations_random(forward_backward, rng, bits):
    x = rng.uniform(-0.5, 1.5, size=(4, 25)).astype(np.float32)
    x[0, :3] = [0.0, 1.0, 0.5]
    y, grad, dy = forward_backward(quantizers.DoReFa(bits=bits), x)
    np.testing.assert_array_equal(y, np_dorefa_activations(x, bits))
    n = 2**bits - 1
    levels = y.astype(np.float64) * n
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3 * max(1, n / 1000))
    np.testing.assert_array_equal(grad, dy * ((x >= 0) & (x <= 1)))


def test_dorefa_activations_32_bits_is_nearly_the_identity_on_the_unit_interval():
    x = np.array([-1.0, 0.0, 0.123456, 0.5, 0.987654, 1.0, 2.0], np.float32)
    y = quantizers.DoReFa(bits=32)(x).numpy()
    np.testing.assert_allclose(y, np.clip(x, 0, 1), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- DoReFa, weights


def np_dorefa_weights(x, bits):
    x = np.asarray(x, np.float64)
    n = 2.0**bits - 1.0
    t = np.tanh(x)
    u = t / (2.0 * np.max(np.abs(t))) + 0.5
    return 2.0 * np.round(u * n) / n - 1.0


def np_dorefa_weights_grad(x, dy):
    """Gradient of t / max|t| (rounding as the identity), the max differentiated."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    t = np.tanh(x)
    m = np.max(np.abs(t))
    i = np.argmax(np.abs(t))
    dt = 1.0 - t**2
    g = dy * dt / m
    g.flat[i] -= np.sign(t.flat[i]) * dt.flat[i] * np.sum(dy * t) / m**2
    return g


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("largest", [1.7, -1.7])
def test_dorefa_weights_forward_and_gradient(forward_backward, rng, bits, largest):
    x = rng.uniform(-1.2, 1.2, size=(4, 6))
    x[0, 0] = 0.0
    x[1, 2] = largest  # the argmax of |tanh(x)|, negative in one case
    quantizer = quantizers.DoReFa(bits=bits, mode="weights")
    y, grad, dy = forward_backward(quantizer, x, dtype="float64")
    np.testing.assert_allclose(y, np_dorefa_weights(x, bits), rtol=0, atol=1e-12)
    n = 2**bits - 1
    k = (y + 1.0) / 2.0 * n  # integer levels 0..n
    np.testing.assert_allclose(k, np.round(k), atol=1e-6)
    assert y[1, 2] == np.sign(largest)  # the largest weight maps to +-1
    assert np.all(np.abs(y) <= 1.0)
    expected_grad = np_dorefa_weights_grad(x, dy)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)
    # The max term matters: without it the argmax entry's gradient differs.
    t = np.tanh(x)
    naive = dy * (1 - t**2) / np.max(np.abs(t))
    assert not np.isclose(grad[1, 2], naive[1, 2], rtol=1e-3)


def test_dorefa_weights_float32(forward_backward, rng):
    x = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    y, grad, dy = forward_backward(quantizers.DoReFa(bits=3, mode="weights"), x)
    np.testing.assert_allclose(y, np_dorefa_weights(x, 3), rtol=0, atol=1e-6)
    np.testing.assert_allclose(grad, np_dorefa_weights_grad(x, dy), rtol=1e-4, atol=1e-6)


def test_dorefa_weights_one_bit(forward_backward):
    x = np.array([[-2.0, -0.5, 0.0], [0.25, 1.0, -0.0]], np.float32)
    y, grad, dy = forward_backward(quantizers.DoReFa(bits=1, mode="weights"), x)
    mean = np.float32(3.75 / 6)
    expected = np.where(x >= 0, 1.0, -1.0).astype(np.float32) * mean
    np.testing.assert_allclose(y, expected, rtol=1e-7, atol=0)
    assert y[0, 2] > 0 and y[1, 2] > 0  # sign(0) = +1
    # The mean is not differentiated: the gradient is dy itself.
    np.testing.assert_array_equal(grad, dy)


# --------------------------------------------------------------------------- FixedPoint


def fixed_point_range(integer_bits, fractional_bits, signed):
    eps = 2.0**-fractional_bits
    if signed:
        return -(2.0 ** (integer_bits - 1)), 2.0 ** (integer_bits - 1) - eps
    return 0.0, 2.0**integer_bits - eps


def np_fixed_point(x, integer_bits, fractional_bits, signed=True):
    x = np.asarray(x, np.float64)
    eps = 2.0**-fractional_bits
    low, high = fixed_point_range(integer_bits, fractional_bits, signed)
    return np.clip(np.round(x / eps) * eps, low, high)


def test_fixed_point_nearest_signed_edges(forward_backward):
    # integer_bits=3, fractional_bits=2: eps = 1/4, range [-4, 3.75].
    x = np.array(
        [
            -5.0,
            -4.1,
            -4.0,
            -3.875,
            -1.3,
            -0.125,
            0.0,
            0.125,
            0.3,
            0.375,
            0.625,
            3.75,
            3.8,
            3.875,
            100.0,
        ],
        np.float32,
    )
    quantizer = quantizers.FixedPoint(integer_bits=3, fractional_bits=2)
    y, grad, dy = forward_backward(quantizer, x)
    np.testing.assert_array_equal(y, np_fixed_point(x, 3, 2))
    # Ties to even on the eps grid: 0.125 -> 0, 0.375 -> 0.5, 0.625 -> 0.5, -3.875 -> -4.
    np.testing.assert_array_equal(y[[7, 9, 10, 3]], [0.0, 0.5, 0.5, -4.0])
    # Saturation.
    np.testing.assert_array_equal(y[[0, 1, 12, 13, 14]], [-4.0, -4.0, 3.75, 3.75, 3.75])
    inside = (x >= -4.0) & (x <= 3.75)
    np.testing.assert_array_equal(grad, dy * inside)
    assert grad[2] == dy[2] and grad[11] == dy[11]  # the limits are inside


@pytest.mark.parametrize("integer_bits, fractional_bits", [(2, 3), (0, 4), (1, 0), (5, 0), (8, 8)])
def test_fixed_point_nearest_unsigned(forward_backward, rng, integer_bits, fractional_bits):
    low, high = fixed_point_range(integer_bits, fractional_bits, signed=False)
    x = rng.uniform(-1.0, high + 1.0, size=40).astype(np.float32)
    x[:4] = [0.0, -0.0, high, low - 0.01]
    quantizer = quantizers.FixedPoint(integer_bits, fractional_bits, signed=False)
    y, grad, dy = forward_backward(quantizer, x)
    np.testing.assert_array_equal(y, np_fixed_point(x, integer_bits, fractional_bits, False))
    assert y.min() >= 0.0 and y.max() <= high
    np.testing.assert_array_equal(grad, dy * ((x >= low) & (x <= high)))


def test_fixed_point_integers_round_ties_to_even():
    x = np.array([-9.0, -8.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 6.5, 7.5], np.float32)
    y = quantizers.FixedPoint(integer_bits=4, fractional_bits=0)(x).numpy()
    np.testing.assert_array_equal(y, [-8, -8, -2, -2, 0, 0, 2, 2, 6, 7])


def test_fixed_point_nearest_ignores_training():
    x = tf.constant(np.linspace(-3, 3, 101, dtype=np.float32))
    quantizer = quantizers.FixedPoint(2, 3)
    expected = np_fixed_point(x.numpy(), 2, 3)
    for training in (None, True, False):
        np.testing.assert_array_equal(quantizer(x, training=training).numpy(), expected)


def test_fixed_point_stochastic_unbiased(binomial_tol, forward_backward):
    # integer_bits=2, fractional_bits=2: eps = 1/4, range [-2, 1.75].
    x = np.array([-2.3, -2.0, -1.9, -0.3, -0.1, 0.0, 0.05, 0.2, 0.5, 1.7, 1.8, 3.0], np.float32)
    quantizer = quantizers.FixedPoint(2, 2, rounding="stochastic", seed=9)
    tiled = np.tile(x, (DRAWS, 1))
    y, grad, dy = forward_backward(quantizer, tiled)
    eps, low, high = 0.25, -2.0, 1.75
    x64 = x.astype(np.float64)
    floor = eps * np.floor(x64 / eps)
    p = (x64 - floor) / eps
    allowed_down = np.clip(floor, low, high)
    allowed_up = np.clip(floor + eps, low, high)
    assert np.all((y == allowed_down) | (y == allowed_up))
    freq = np.mean(y == floor + eps, axis=0)  # round up (before saturation)
    inside = (floor + eps <= high) & (floor >= low)
    assert np.all(np.abs(freq - p)[inside] <= binomial_tol(p, DRAWS)[inside]), (freq, p)
    # On-grid values never move; saturated ones sit at the limits.
    np.testing.assert_array_equal(y[:, [1, 5, 8]], np.tile(x[[1, 5, 8]], (DRAWS, 1)))
    np.testing.assert_array_equal(y[:, 0], low)
    np.testing.assert_array_equal(y[:, [10, 11]], high)
    np.testing.assert_array_equal(grad, dy * ((tiled >= low) & (tiled <= high)))


def test_fixed_point_stochastic_inference_rounds_to_nearest():
    x = tf.constant(np.linspace(-3, 3, 97, dtype=np.float32))
    stochastic = quantizers.FixedPoint(3, 3, rounding="stochastic", seed=0)
    expected = np_fixed_point(x.numpy(), 3, 3)
    for _ in range(2):
        np.testing.assert_array_equal(stochastic(x, training=False).numpy(), expected)
    sampled = [stochastic(x, training=training).numpy() for training in (None, True)]
    for y in sampled:
        assert not np.array_equal(y, expected)


def test_fixed_point_stochastic_seed_reproducibility():
    x = tf.constant(np.linspace(-1, 1, 999, dtype=np.float32))
    first, second, other = (
        quantizers.FixedPoint(2, 4, rounding="stochastic", seed=s) for s in (5, 5, 6)
    )
    for _ in range(2):
        np.testing.assert_array_equal(first(x).numpy(), second(x).numpy())
    assert not np.array_equal(first(x).numpy(), other(x).numpy())


def test_fixed_point_stochastic_in_tf_function():
    quantizer = quantizers.FixedPoint(2, 1, rounding="stochastic", seed=1)
    x = tf.fill([DRAWS], 0.125)  # between 0 and 0.5, up with probability 1/4
    step = tf.function(lambda x: quantizer(x, training=True))
    y1, y2 = step(x).numpy(), step(x).numpy()
    assert set(np.unique(y1)) == {0.0, 0.5}
    assert not np.array_equal(y1, y2)
    assert abs(np.mean(y1 == 0.5) - 0.25) <= 5 * math.sqrt(0.25 * 0.75 / DRAWS)


# --------------------------------------------------------------------------- Uniform


def np_uniform(x, levels):
    x = np.asarray(x, np.float32)
    low = x.min()
    width = x.max() - low
    z = (x - low) / width
    return np.round(z * np.float32(levels)) / np.float32(levels) * width + low


def test_uniform_exact_grid_and_ties(forward_backward):
    # min -2, max 6, levels 4: the grid is {-2, 0, 2, 4, 6}.
    x = np.array([-2.0, -1.0, 0.9, 1.0, 1.1, 3.0, 4.5, 5.0, 6.0, 0.0], np.float32)
    y, grad, dy = forward_backward(quantizers.Uniform(levels=4), x)
    # -1 (z = 1/8 -> 0.5 levels) and 1 (1.5) and 3 (2.5) and 5 (3.5) are ties to even.
    np.testing.assert_array_equal(y, [-2.0, -2.0, 0.0, 2.0, 2.0, 2.0, 4.0, 6.0, 6.0, 0.0])
    np.testing.assert_array_equal(y, np_uniform(x, 4))
    np.testing.assert_array_equal(grad, dy)


@pytest.mark.parametrize("levels", [1, 2, 3, 7, 255, 1000])
def test_uniform_random(forward_backward, rng, levels):
    x = rng.normal(loc=0.3, scale=2.0, size=(5, 8)).astype(np.float32)
    y, grad, dy = forward_backward(quantizers.Uniform(levels=levels), x)
    width = float(x.max() - x.min())
    np.testing.assert_allclose(y, np_uniform(x, levels), rtol=0, atol=1e-6 * width)
    # The extremes are kept, and every value is one of the levels + 1 points.
    assert y.min() == pytest.approx(x.min(), abs=1e-6 * width)
    assert y.max() == pytest.approx(x.max(), abs=1e-6 * width)
    k = (y.astype(np.float64) - x.min()) / width * levels
    np.testing.assert_allclose(k, np.round(k), atol=1e-4 * max(1.0, levels / 100))
    assert np.all(np.abs(y - x) <= width / (2 * levels) * (1 + 1e-5) + 1e-6)
    np.testing.assert_array_equal(grad, dy)


@pytest.mark.parametrize("stochastic", [False, True])
def test_uniform_constant_tensor_is_unchanged(forward_backward, stochastic):
    x = np.full((3, 4), 0.37, np.float32)
    y, grad, dy = forward_backward(quantizers.Uniform(levels=3, stochastic=stochastic, seed=0), x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(grad, dy)


def test_uniform_stochastic_unbiased(binomial_tol, forward_backward):
    x = np.array([0.0, 0.1, 0.3, 0.5, 0.55, 0.9, 1.0], np.float32)
    quantizer = quantizers.Uniform(levels=4, stochastic=True, seed=3)
    y, grad, dy = forward_backward(quantizer, np.tile(x, (DRAWS, 1)))
    z = x.astype(np.float64) * 4
    down, up = np.floor(z) / 4, (np.floor(z) + 1) / 4
    assert np.all(np.isclose(y, down, atol=1e-6) | np.isclose(y, up, atol=1e-6))
    p = z - np.floor(z)
    freq = np.mean(np.isclose(y, up, atol=1e-6), axis=0)
    assert np.all(np.abs(freq - p) <= binomial_tol(p, DRAWS)), (freq, p)
    np.testing.assert_allclose(y.mean(axis=0), x, atol=5 * 0.25 * 0.5 / math.sqrt(DRAWS))
    np.testing.assert_array_equal(grad, dy)


def test_uniform_stochastic_training_flags():
    x = tf.constant(np.linspace(-1.0, 3.0, 301, dtype=np.float32))
    expected = np_uniform(x.numpy(), 7)
    stochastic = quantizers.Uniform(levels=7, stochastic=True, seed=2)
    for _ in range(2):
        np.testing.assert_allclose(stochastic(x, training=False).numpy(), expected, atol=1e-6)
    for training in (None, True):
        assert not np.allclose(stochastic(x, training=training).numpy(), expected, atol=1e-6)
    nearest = quantizers.Uniform(levels=7)
    for training in (None, True, False):
        np.testing.assert_allclose(nearest(x, training=training).numpy(), expected, atol=1e-6)


def test_uniform_stochastic_seeds_and_tf_function():
    x = tf.constant(np.linspace(0.0, 1.0, 777, dtype=np.float32))
    first, second, other = (
        quantizers.Uniform(levels=5, stochastic=True, seed=s) for s in (1, 1, 2)
    )
    step = tf.function(lambda x: second(x, training=True))
    for _ in range(2):
        np.testing.assert_array_equal(first(x).numpy(), step(x).numpy())
    assert not np.array_equal(first(x).numpy(), other(x).numpy())


@pytest.mark.parametrize("levels", [1, 2, 3, 4, 7, 8, 15, 16, 255, 256, 1023, 2**31, 2**32 - 1])
def test_uniform_precision(levels):
    # ceil(log2(levels + 1)) is exactly the bit length of levels.
    assert quantizers.Uniform(levels=levels).precision == int(levels).bit_length()


# --------------------------------------------------------------------------- SymmetricUniform


def np_symmetric_uniform(x, bits):
    x = np.asarray(x, np.float64)
    s = 2.0 ** (1 - bits)
    return np.clip(s * np.round(x / s), -1 + s, 1 - s)


def test_symmetric_uniform_two_bits_edges(forward_backward):
    x = np.array(
        [-2.0, -0.75, -0.5, -0.26, -0.25, 0.0, 0.25, 0.3, 0.5, 0.5000001, 0.75, 1.0],
        np.float32,
    )
    y, grad, dy = forward_backward(quantizers.SymmetricUniform(bits=2), x)
    # s = 1/2: values in {-1/2, 0, 1/2}; +-0.25 are ties that go to 0.
    np.testing.assert_array_equal(
        y, [-0.5, -0.5, -0.5, -0.5, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    )
    np.testing.assert_array_equal(y, np_symmetric_uniform(x, 2))
    np.testing.assert_array_equal(grad, dy * ((x >= -0.5) & (x <= 0.5)))
    assert grad[2] == dy[2] and grad[8] == dy[8] and grad[9] == 0.0


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12])
def test_symmetric_uniform_random(forward_backward, rng, bits):
    s = 2.0 ** (1 - bits)
    x = rng.uniform(-1.3, 1.3, size=60).astype(np.float32)
    x[:6] = [-1 + s, 1 - s, s / 2, -s / 2, 1.5 * s, 0.0]  # limits and ties
    y, grad, dy = forward_backward(quantizers.SymmetricUniform(bits=bits), x)
    np.testing.assert_array_equal(y, np_symmetric_uniform(x, bits))
    assert y[2] == 0.0 and y[3] == 0.0 and y[4] == min(2 * s, 1 - s)
    np.testing.assert_array_equal(grad, dy * ((x >= -1 + s) & (x <= 1 - s)))


# --------------------------------------------------------------------------- PowerOfTwo


def floor_log2(a):
    _, e = math.frexp(a)  # a = m 2^e with 1/2 <= m < 1, exactly
    return e - 1


def np_power_of_two(x, bits):
    x = np.asarray(x, np.float64)
    magnitude = np.abs(x)
    largest = magnitude.max()
    if largest == 0:
        return np.zeros_like(x)
    n1 = floor_log2(4.0 * largest / 3.0)
    n2 = n1 + 1 - 2 ** (bits - 2)
    codebook = np.array([0.0] + [2.0**k for k in range(n2, n1 + 1)])
    distance = np.abs(magnitude[..., None] - codebook)
    nearest = distance == distance.min(axis=-1, keepdims=True)
    # Ties away from zero: the largest codebook entry among the nearest.
    index = np.max(np.where(nearest, np.arange(codebook.size), -1), axis=-1)
    return np.sign(x) * codebook[index]


def test_power_of_two_three_bits_edges(forward_backward):
    # max 1 -> n1 = floor(log2(4/3)) = 0, n2 = -1: codebook {0, 1/2, 1}.
    x = np.array(
        [1.0, -0.8, 0.75, -0.75, 0.74, 0.5, 0.26, 0.25, -0.25, 0.2499, 0.1, 0.0], np.float32
    )
    y, grad, dy = forward_backward(quantizers.PowerOfTwo(bits=3), x)
    np.testing.assert_array_equal(
        y, [1.0, -1.0, 1.0, -1.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.0, 0.0, 0.0]
    )
    np.testing.assert_array_equal(y, np_power_of_two(x, 3))
    np.testing.assert_array_equal(grad, dy)


def test_power_of_two_largest_at_three_quarters_of_a_power():
    # max = 0.75 * 2^-2: 4 max / 3 = 2^-2 exactly, so n1 = -2 and the max (a tie
    # between 2^-3 and 2^-2) goes up; bits = 4 gives n2 = -5, zero below 2^-6.
    x = np.array(
        [0.1875, -0.1875, 0.09375, 0.1, 0.03, 2.0**-5, 2.0**-6, 2.0**-6 * 0.99, -(2.0**-6), 0.0],
        np.float32,
    )
    y = quantizers.PowerOfTwo(bits=4)(x).numpy()
    np.testing.assert_array_equal(
        y,
        [0.25, -0.25, 0.125, 0.125, 2.0**-5, 2.0**-5, 2.0**-5, 0.0, -(2.0**-5), 0.0],
    )
    np.testing.assert_array_equal(y, np_power_of_two(x, 4))


def test_power_of_two_two_bits_is_ternary_with_power_of_two_scale():
    # bits = 2: n2 = n1, codebook {0, +-2^n1}; max 3 -> n1 = floor(log2 4) = 2.
    x = np.array([3.0, -2.5, 2.0, 1.9, 1.0, -2.0, 0.0], np.float32)
    y = quantizers.PowerOfTwo(bits=2)(x).numpy()
    np.testing.assert_array_equal(y, [4.0, -4.0, 4.0, 0.0, 0.0, -4.0, 0.0])
    np.testing.assert_array_equal(y, np_power_of_two(x, 2))


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("scale", [0.05, 1.0, 37.0])
def test_power_of_two_random(forward_backward, rng, bits, scale):
    x = (rng.standard_t(3, size=(6, 10)) * scale).astype(np.float32)
    y, grad, dy = forward_backward(quantizers.PowerOfTwo(bits=bits), x)
    expected = np_power_of_two(x, bits)
    np.testing.assert_array_equal(y, expected)
    nonzero = y[y != 0]
    exponents = np.log2(np.abs(nonzero))
    np.testing.assert_array_equal(exponents, np.round(exponents))
    assert len(np.unique(np.abs(y))) <= 2 ** (bits - 1)  # 0 and 2^(bits-2) powers
    np.testing.assert_array_equal(grad, dy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_power_of_two_in_a_graph_and_in_float64(rng, dtype):
    # INQ calls the same functions in float64 on numpy kernels; layers call them in graphs.
    x = (rng.standard_t(3, size=(5, 7)) * 0.3).astype(dtype)
    graph = tf.function(lambda t: quantizers.PowerOfTwo(bits=5)(t))
    y = graph(tf.constant(x)).numpy()
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np_power_of_two(x, 5))
    n1, n2 = multibit.power_of_two_exponents(x, 5)
    np.testing.assert_array_equal(multibit.nearest_power_of_two(x, n1, n2).numpy(), y)


def test_power_of_two_all_zero(forward_backward):
    y, grad, dy = forward_backward(quantizers.PowerOfTwo(bits=4), np.zeros((2, 3)))
    np.testing.assert_array_equal(y, 0.0)
    np.testing.assert_array_equal(grad, dy)


# --------------------------------------------------------------------------- NoOp


@pytest.mark.parametrize("precision", [None, 1, 8, 16, 64])
def test_noop_is_identity_and_reports_precision(forward_backward, rng, precision):
    x = rng.normal(scale=100.0, size=(3, 4)).astype(np.float32)
    quantizer = quantizers.NoOp() if precision is None else quantizers.NoOp(precision=precision)
    assert quantizer.precision == (32 if precision is None else precision)
    y, grad, dy = forward_backward(quantizer, x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(grad, dy)
