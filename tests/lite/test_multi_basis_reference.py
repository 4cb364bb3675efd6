"""reference.multi_basis: M x N binary ops equal the float op on the reconstructed tensors."""

import numpy as np
import pytest

from tests.lite.test_reference import float_conv
from tfqnn.lite import reference as ref


def multi_basis_operands(rng, batch_shape, in_channels, kernel_shape, m, n):
    """Inputs away from the thresholds, bases, scales (some negative) and their sums."""
    thresholds = np.sort(rng.uniform(-0.5, 1.5, n)).astype(np.float32)
    betas = rng.uniform(0.1, 1.0, n) * rng.choice([-1, 1], n)
    x = rng.uniform(-1, 2, (*batch_shape, in_channels)).astype(np.float32)
    x[np.abs(x[..., None] - thresholds).min(-1) < 1e-3] += 0.01
    out_channels = kernel_shape[0]
    bases = rng.choice([-1.0, 1.0], (m, *kernel_shape)).astype(np.float32)
    alphas = rng.uniform(0.05, 1.0, (m, out_channels)) * rng.choice([-1, 1], (m, out_channels))
    bias = rng.normal(size=out_channels).astype(np.float32)
    x_sum = sum(b * np.where(x >= t, 1.0, -1.0) for t, b in zip(thresholds, betas))
    w_sum = np.einsum("mo,mo...->o...", alphas, bases.astype(np.float64))
    packed = np.stack([ref.bitpack(b) for b in bases])
    return x, thresholds, betas, packed, alphas, bias, x_sum, w_sum


@pytest.mark.parametrize("m, n", [(1, 1), (3, 1), (1, 3), (3, 3), (5, 2)])
def test_multi_basis_dense_matches_float_matmul(rng, m, n):
    x, t, betas, packed, alphas, bias, x_sum, w_sum = multi_basis_operands(
        rng, (4, 2), 45, (7, 45), m, n
    )
    y = ref.multi_basis(x, t, betas, packed, alphas, bias, ref.bdense, in_features=45)
    assert y.dtype == np.float32 and y.shape == (4, 2, 7)
    np.testing.assert_allclose(y, x_sum @ w_sum.T + bias, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "m, n, padding, strides, groups",
    [(3, 3, "same", 1, 1), (2, 3, "valid", 2, 1), (2, 2, "same", 2, 2)],
)
def test_multi_basis_conv2d_matches_float_conv(rng, m, n, padding, strides, groups):
    channels = 64 if groups > 1 else 5
    x, t, betas, packed, alphas, bias, x_sum, w_sum = multi_basis_operands(
        rng, (2, 9, 8), channels, (6, 3, 3, channels // groups), m, n
    )
    options = dict(
        channels_in=channels, strides=strides, padding=padding, pad_values=0, groups=groups
    )
    y = ref.multi_basis(x, t, betas, packed, alphas, bias, ref.bconv2d, **options)
    expected = float_conv(x_sum, w_sum, (strides,) * 2, (1, 1), padding, 0.0, groups) + bias
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-4)


def test_multi_basis_sums_in_order_then_adds_the_bias(rng):
    # Each term is a plain binary op with scale beta * alpha and no bias; the sum
    # (in float32, in order) gets the bias once, at the end.
    x, t, betas, packed, alphas, bias, _, _ = multi_basis_operands(rng, (3,), 40, (4, 40), 2, 1)
    y = ref.multi_basis(x, t, betas, packed, alphas, bias, ref.bdense, in_features=40)
    a = ref.quantize(x - t[0])
    zero = np.zeros_like(bias)
    first = ref.bdense(a, packed[0], (betas[0] * alphas[0]).astype(np.float32), zero, 40)
    second = ref.bdense(a, packed[1], (betas[0] * alphas[1]).astype(np.float32), zero, 40)
    np.testing.assert_array_equal(y, (first + second) + bias)


def test_multi_basis_errors_name_the_argument(rng):
    x, t, betas, packed, alphas, bias, _, _ = multi_basis_operands(rng, (3,), 40, (4, 40), 2, 2)
    with pytest.raises(ValueError, match="input_scales"):
        ref.multi_basis(x, t, betas[:1], packed, alphas, bias, ref.bdense, in_features=40)
    with pytest.raises(ValueError, match="kernel_scales"):
        ref.multi_basis(x, t, betas, packed, alphas[:1], bias, ref.bdense, in_features=40)


def test_multi_basis_op_errors_name_the_argument():
    ones, zeros = np.ones(4 * 2 * 3, np.float32), np.zeros(3, np.float32)
    x = np.zeros((2, 3), np.int32)  # 3 words: not 2 equal groups
    w = np.zeros((6, 1), np.int32)  # 6 rows: 2 blocks of 3, not 4 blocks
    with pytest.raises(ValueError, match=r"x_packed\.shape=\(2, 3\).*input_bases=2"):
        ref.multi_basis_bdense(x, w, ones, zeros, 32, input_bases=2, weight_bases=2)
    with pytest.raises(ValueError, match=r"weights_packed\.shape=\(6, 1\).*weight_bases=4"):
        ref.multi_basis_bdense(x[:, :2], w, ones, zeros, 32, input_bases=2, weight_bases=4)
    image = np.zeros((1, 4, 4, 2), np.int32)
    filters = np.zeros((5, 3, 3, 1), np.int32)  # 5 rows: not 2 blocks
    with pytest.raises(ValueError, match=r"filter_packed\.shape=\(5, 3, 3, 1\).*weight_bases=2"):
        ref.multi_basis_bconv2d(image, filters, ones, zeros, 32, input_bases=2, weight_bases=2)


@pytest.mark.parametrize("k", [2, 3])
def test_binary_encoding_of_a_dorefa_input_matches_float_conv(rng, k):
    # q = round(n clip(x, 0, 1)) / n = 1/2 + sum_i 2^i / (2n) s_i with s_i the digits of the
    # level (n = 2^k - 1 thresholds at the midpoints): k bases, the constant 1/2 conv(1, W)
    # in the bias; -1 padding is q = 0, as a zero-padded float conv of q.
    n, channels, out = 2**k - 1, 6, 5
    t = ((np.arange(n) + 0.5) / n).astype(np.float32)
    x = rng.uniform(-0.3, 1.3, (2, 7, 8, channels)).astype(np.float32)
    x[np.abs(x[..., None] - t).min(-1) < 1e-4] += 2e-4  # away from the ties
    q = np.round(n * np.clip(x.astype(np.float64), 0, 1)) / n
    signs = rng.choice([-1.0, 1.0], (out, 3, 3, channels)).astype(np.float32)
    alpha = rng.uniform(0.1, 1.0, (1, out))
    w = alpha[0][:, None, None, None] * signs
    constant = 0.5 * w.sum(axis=(1, 2, 3))  # 1/2 sum(W), padded taps too: they are q = 0
    y = ref.multi_basis(
        x,
        t,
        2.0 ** np.arange(k) / (2 * n),
        ref.bitpack(signs)[None],
        alpha,
        np.zeros(out, np.float32),
        ref.bconv2d,
        encoding="binary",
        channels_in=channels,
        padding="same",
        pad_values=-1,
    )
    assert y.shape == (2, 7, 8, out)
    expected = float_conv(q, w, (1, 1), (1, 1), "same", 0.0, 1)
    np.testing.assert_allclose(y + constant, expected, rtol=1e-5, atol=1e-5)
