"""QuantizedBits, QuantizedRelu and QuantizedPo2 against numpy versions of QKeras's formulas.

The formulas are QKeras 0.9's (qkeras/quantizers.py); the interop tests
compare the quantizers with the real QKeras on whole models.
"""

import numpy as np
import pytest

from tfqnn import quantizers

X = np.array(
    [-9.0, -4.0, -1.5, -1.0, -0.7, -0.5, -0.26, -0.25, -0.1, 0.0, 0.05, 0.125, 0.3, 0.5, 0.99,
     1.0, 1.75, 2.0, 3.3, 12.0],
    np.float32,
)  # fmt: skip


def np_bits(x, bits, integer, symmetric, keep_negative, alpha):
    x = x.astype(np.float64)
    m, mi = 2.0 ** (bits - keep_negative), 2.0**integer
    if bits - keep_negative == 0:
        y = np.where(x >= 0, 1.0, -1.0)
        y = y if keep_negative else (y + 1) / 2
    else:
        y = mi * np.clip(np.round(x * m / mi), -keep_negative * (m - symmetric), m - 1) / m
    return y * (1.0 if alpha is None else alpha)


@pytest.mark.parametrize(
    "bits, integer, symmetric, keep_negative, alpha",
    [
        (8, 0, False, True, None),
        (4, 1, True, True, None),
        (6, 0, False, True, 1.0),
        (4, 2, False, False, None),
        (3, -1, False, True, 0.5),
        (1, 0, False, True, None),
        (1, 0, False, False, None),
    ],
)
def test_quantized_bits_levels_and_identity_gradient(
    forward_backward, bits, integer, symmetric, keep_negative, alpha
):
    q = quantizers.QuantizedBits(bits, integer, symmetric, keep_negative, alpha)
    y, grad, dy = forward_backward(q, X)
    np.testing.assert_allclose(y, np_bits(X, bits, integer, symmetric, keep_negative, alpha))
    np.testing.assert_array_equal(grad, dy)  # through the saturation too
    assert len(np.unique(y)) <= 2**bits
    assert q.precision == bits


def test_quantized_bits_examples():
    # 4 bits, 1 integer: multiples of 2^(1 - 3) = 0.25 in [-2, 1.75]; symmetric drops -2.
    y = quantizers.QuantizedBits(4, 1)(np.array([-5.0, -1.9, 0.3, 0.375, 1.8], np.float32))
    np.testing.assert_array_equal(y.numpy(), [-2.0, -2.0, 0.25, 0.5, 1.75])  # 0.375: tie to even
    y = quantizers.QuantizedBits(4, 1, symmetric=True)(np.array([-5.0], np.float32))
    np.testing.assert_array_equal(y.numpy(), [-1.75])


def np_bits_auto(x, bits, integer):
    xs = x.astype(np.float64) / 2.0**integer
    levels = (2 ** (bits - 1) - 1) * 2
    scale = np.abs(xs).max(axis=tuple(range(x.ndim - 1)), keepdims=True) * 2 / levels
    v = np.floor(np.abs(xs) / scale + 0.5)  # ties away from zero
    z = np.sign(xs) * np.minimum(v, levels / 2)
    return scale * z * 2.0**integer


@pytest.mark.parametrize("bits, integer", [(4, 0), (3, 2), (8, 0)])
def test_quantized_bits_auto_alpha_per_channel(forward_backward, rng, bits, integer):
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    x[..., 2] *= 10  # channels with different ranges get different scales
    q = quantizers.QuantizedBits(bits, integer, alpha="auto")
    assert q.symmetric
    y, grad, dy = forward_backward(q, x)
    np.testing.assert_allclose(y, np_bits_auto(x, bits, integer), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(grad, dy)
    for channel in range(5):
        assert len(np.unique(y[..., channel])) <= 2 ** (bits - 1) * 2 - 1


def np_bits_auto_po2(x, bits, integer):
    """QKeras's alpha="auto_po2": a power-of-two scale refined by five least-squares steps."""
    xs = x.astype(np.float64) / 2.0**integer
    levels = (2 ** (bits - 1) - 1) * 2
    axes = tuple(range(x.ndim - 1))

    def po2(s):
        return 2.0 ** np.round(np.log(s + 1e-7) / np.log(2.0))

    def quantize(s):
        return np.sign(xs) * np.minimum(np.floor(np.abs(xs) / s + 0.5), levels / 2)

    scale = po2(np.abs(xs).max(axis=axes, keepdims=True) * 2 / levels)
    for _ in range(5):
        z = quantize(scale)
        xz = (xs * z).mean(axis=axes, keepdims=True)
        scale = po2(xz / ((z * z).mean(axis=axes, keepdims=True) + 1e-7))
    return scale * z * 2.0**integer, scale


@pytest.mark.parametrize("bits, integer", [(4, 0), (3, 1), (8, 0)])
def test_quantized_bits_auto_po2_alpha(forward_backward, rng, bits, integer):
    x = rng.normal(size=(6, 5)).astype(np.float32) * np.array([0.1, 1, 3, 0.02, 7], np.float32)
    q = quantizers.QuantizedBits(bits, integer, alpha="auto_po2")
    y, grad, dy = forward_backward(q, x)
    expected, scale = np_bits_auto_po2(x, bits, integer)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(grad, dy)
    # Each channel's scale is a power of two.
    exponents = np.log2(scale.ravel())
    np.testing.assert_array_equal(exponents, np.round(exponents))


def np_lsq(x, q, alpha):
    axes = tuple(range(x.ndim - 1))
    scale = (x * q).mean(axis=axes, keepdims=True) / ((q * q).mean(axis=axes, keepdims=True) + 1e-7)
    return 2.0 ** np.round(np.log(scale + 1e-7) / np.log(2.0)) if alpha == "auto_po2" else scale


@pytest.mark.parametrize("alpha", ["auto", "auto_po2"])
def test_quantized_binary(forward_backward, rng, alpha):
    x = rng.normal(size=(7, 4)).astype(np.float32) * np.array([0.1, 1, 5, 0.01], np.float32)
    x[0, 0] = 0.0
    y, grad, dy = forward_backward(quantizers.QuantizedBinary(alpha), x)
    signs = np.where(x >= 0, 1.0, -1.0)
    scale = np_lsq(x.astype(np.float64), signs, alpha)
    np.testing.assert_allclose(y, scale * signs, rtol=1e-5)
    if alpha == "auto":  # mean(x sign(x)) / mean(1): XNOR-Net's mean magnitude
        np.testing.assert_allclose(scale.ravel(), np.abs(x).mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(grad, dy)
    assert y[0, 0] > 0  # sign(0) = +1


def np_ternary(x, alpha):
    x = x.astype(np.float64)
    axes = tuple(range(x.ndim - 1))

    def po2(s):
        return 2.0 ** np.round(np.log(s + 1e-7) / np.log(2.0)) if alpha == "auto_po2" else s

    scale = po2(2 * np.abs(x).max(axis=axes, keepdims=True) / 3)
    for _ in range(5):
        v = scale * np.round(x / scale)
        q = (np.abs(v) >= scale / 2) * np.sign(x)
        scale = np_lsq(x, q, alpha)
    return scale * q


@pytest.mark.parametrize("alpha", ["auto", "auto_po2"])
def test_quantized_ternary(forward_backward, rng, alpha):
    x = rng.normal(size=(9, 3)).astype(np.float32) * np.array([0.2, 1, 4], np.float32)
    y, grad, dy = forward_backward(quantizers.QuantizedTernary(alpha), x)
    np.testing.assert_allclose(y, np_ternary(x, alpha), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(grad, dy)
    for channel in range(3):
        assert len(np.unique(y[:, channel])) <= 3


def np_relu(x, bits, integer):
    x = x.astype(np.float64)
    m, mi = 2.0**bits, 2.0**integer
    y = mi * np.clip(np.round(x * m / mi) / m, 0, 1 - 1 / m)
    top = mi - 2.0 ** (integer - bits)
    return y, (x > 0) & (x <= top)


@pytest.mark.parametrize("bits, integer", [(4, 1), (3, 0), (8, 3), (2, -1)])
def test_quantized_relu(forward_backward, bits, integer):
    y, grad, dy = forward_backward(quantizers.QuantizedRelu(bits, integer), X)
    expected, passes = np_relu(X, bits, integer)
    np.testing.assert_allclose(y, expected)
    np.testing.assert_array_equal(grad, dy * passes)  # 0 at x = 0 and above the top level
    assert grad[list(X).index(0.0)] == 0.0


def test_quantized_relu_top_level_passes_the_gradient(forward_backward):
    x = np.array([1.875, 1.876, 2.0], np.float32)  # 4 bits, 1 integer: top 2 - 1/8
    y, grad, dy = forward_backward(quantizers.QuantizedRelu(4, 1), x)
    np.testing.assert_array_equal(y, [1.875, 1.875, 1.875])
    np.testing.assert_array_equal(grad, dy * [1, 0, 0])


def np_po2(x, bits, max_value):
    x = x.astype(np.float32)
    sign_bit = 1 if max_value is None or max_value > 1 else 0
    e = bits - 1 - sign_bit
    low, high = -(2**e), 2**e - 1
    magnitude = np.abs(x)
    clamped = np.where(magnitude < 1e-7, np.float32(1e-7), magnitude)
    if max_value is not None:
        clamped = np.minimum(clamped, np.float32(max_value))
    exponent = np.clip(np.round(np.log(clamped) / np.float32(np.log(2.0))), low, high)
    exponent = np.where(magnitude < 1e-7, low, exponent)
    return np.where(x >= 0, 1.0, -1.0) * 2.0**exponent


@pytest.mark.parametrize("bits, max_value", [(4, None), (4, 1.0), (5, 4.0), (3, 0.5)])
def test_quantized_po2(forward_backward, bits, max_value):
    q = quantizers.QuantizedPo2(bits, max_value)
    y, grad, dy = forward_backward(q, X)
    np.testing.assert_allclose(y, np_po2(X, bits, max_value), rtol=1e-6)
    np.testing.assert_array_equal(grad, dy)
    magnitudes = np.log2(np.abs(y))
    np.testing.assert_array_equal(magnitudes, np.round(magnitudes))  # powers of two only


def test_quantized_po2_exponent_ranges():
    assert (quantizers.QuantizedPo2(4).min_exponent, quantizers.QuantizedPo2(4).max_exponent) == (
        -4,
        3,
    )
    q = quantizers.QuantizedPo2(4, max_value=1)  # no exponent sign bit: e = 3
    assert (q.min_exponent, q.max_exponent) == (-8, 7)
    q = quantizers.QuantizedPo2(2)  # a sign bit and an exponent sign bit: e = 0
    assert (q.min_exponent, q.max_exponent) == (-1, 0)


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: quantizers.QuantizedBits(bits=0), "bits"),
        (lambda: quantizers.QuantizedBits(alpha="auto_po3"), "alpha"),
        (lambda: quantizers.QuantizedBits(alpha=-1.0), "alpha"),
        (lambda: quantizers.QuantizedBits(bits=1, alpha="auto"), "bits"),
        (lambda: quantizers.QuantizedRelu(bits=0), "bits"),
        (lambda: quantizers.QuantizedPo2(bits=1), "bits"),
        (lambda: quantizers.QuantizedPo2(max_value=0), "max_value"),
        (lambda: quantizers.QuantizedBinary(alpha=1.0), "alpha"),
        (lambda: quantizers.QuantizedTernary(alpha="auto_po3"), "alpha"),
    ],
)
def test_invalid_arguments(factory, message):
    with pytest.raises(ValueError, match=f"Invalid {message}="):
        factory()
