"""QuantConv2DTranspose against numpy: "valid" and "same" padding, per-output-
channel ScaledSign on the (h, w, out, in) kernel, and no ``pad_values``."""

import keras
import numpy as np
import pytest

from tfqnn.layers import (
    QuantConv2DTranspose,
)

from .factories import ATOL, built, f32


def _binary_transpose(kernel_size, strides, padding, shape, rng):
    """A built QuantConv2DTranspose(3) with binary input and kernel, and an input for it."""
    layer = QuantConv2DTranspose(
        3,
        kernel_size,
        strides=strides,
        padding=padding,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    x = f32(rng.normal(size=shape))
    return built(layer, x.shape, rng), x


@pytest.mark.parametrize("size,kernel_size,strides", [(3, 3, 2), (4, 2, 2), (3, 3, 1), (2, 4, 3)])
def test_transpose_valid_matches_numpy(size, kernel_size, strides, ref, rng):
    layer, x = _binary_transpose(kernel_size, strides, "valid", (2, size, size + 1, 2), rng)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (kernel_size, kernel_size, 3, 2)
    expected = ref.conv2d_transpose_full(ref.sign(x), ref.sign(kernel), (strides, strides)) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


@pytest.mark.parametrize("size,kernel_size,strides", [(3, 3, 2), (4, 4, 2), (3, 3, 1), (3, 5, 2)])
def test_transpose_same_matches_numpy_and_ops(size, kernel_size, strides, ref, rng):
    layer, x = _binary_transpose(kernel_size, strides, "same", (2, size, size, 2), rng)
    kernel, bias = layer.get_weights()
    out = layer(x).numpy()
    # "same" crops the full output to size * strides, the smaller half of the excess first.
    full = ref.conv2d_transpose_full(ref.sign(x), ref.sign(kernel), (strides, strides))
    start = max(kernel_size - strides, 0) // 2
    expected = full[:, start : start + size * strides, start : start + size * strides] + bias
    np.testing.assert_allclose(out, expected, atol=ATOL)
    ops_out = keras.ops.conv_transpose(
        ref.sign(x), ref.sign(kernel), strides=strides, padding="same"
    ).numpy()
    np.testing.assert_allclose(out, ops_out + bias, atol=ATOL)


def test_transpose_has_no_pad_values():
    with pytest.raises((TypeError, ValueError)):
        QuantConv2DTranspose(2, 3, pad_values=1.0)
    assert "pad_values" not in QuantConv2DTranspose(2, 3).get_config()


def test_transpose_scaled_sign_is_per_output_channel(ref, rng):
    layer = QuantConv2DTranspose(
        4,
        3,
        strides=2,
        padding="valid",
        kernel_quantizer="scaled_sign",
        kernel_constraint="weight_clip",
    )
    x = f32(rng.normal(size=(2, 3, 3, 2)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    kernel = kernel * f32([0.1, 1.0, 3.0, 0.5])[None, None, :, None]  # very different channels
    layer.set_weights([kernel, bias])
    quantized = ref.scaled_sign(kernel, (-2,))  # mean over (h, w, in)
    expected = ref.conv2d_transpose_full(x, quantized, (2, 2)) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)
    # Per-tensor scaling would give another result.
    per_tensor = np.abs(kernel).mean() * ref.sign(kernel)
    assert not np.allclose(
        ref.conv2d_transpose_full(x, per_tensor, (2, 2)) + bias, expected, atol=1e-2
    )
