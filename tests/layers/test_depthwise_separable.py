"""QuantDepthwiseConv2D and QuantSeparableConv2D against numpy, with per-channel
(ScaledSign) kernel quantizers along each kernel's output channels."""

import keras
import numpy as np
import pytest

from tfqnn.layers import (
    QuantDepthwiseConv2D,
    QuantSeparableConv2D,
)
from tfqnn.quantizers import DoReFa

from .factories import ATOL, built, f32


@pytest.mark.parametrize(
    "size,strides,dilation,multiplier,pad_values",
    [
        (6, 1, 1, 1, 1.0),
        (7, 2, 1, 2, 1.0),
        (8, 1, 2, 2, 1.0),
        (6, 2, 1, 3, 0.0),
        (7, 1, 1, 2, -1.0),
    ],
)
def test_depthwise_forward(size, strides, dilation, multiplier, pad_values, ref, rng):
    layer = QuantDepthwiseConv2D(
        3,
        strides=strides,
        dilation_rate=dilation,
        depth_multiplier=multiplier,
        padding="same",
        pad_values=pad_values,
        input_quantizer="ste_sign",
        depthwise_quantizer="ste_sign",
        depthwise_constraint="weight_clip",
    )
    x = f32(rng.normal(size=(2, size, size, 3)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 3, 3, multiplier)
    padded = ref.pad_same_2d(
        ref.sign(x), (3, 3), (strides, strides), (dilation, dilation), pad_values
    )
    expected = (
        ref.depthwise_conv2d(padded, ref.sign(kernel), (strides, strides), (dilation, dilation))
        + bias
    )
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)
    # Against Keras's op on the quantized kernel.
    ops_out = (
        keras.ops.depthwise_conv(
            padded.astype(np.float32),
            ref.sign(kernel),
            strides=strides,
            padding="valid",
            dilation_rate=dilation,
        ).numpy()
        + bias
    )
    np.testing.assert_allclose(layer(x).numpy(), ops_out, atol=ATOL)


@pytest.mark.parametrize(
    "size,strides,multiplier,pad_values",
    [(6, 1, 1, 1.0), (7, 2, 2, 1.0), (5, 1, 2, 0.0), (8, 2, 1, -1.0)],
)
def test_separable_forward(size, strides, multiplier, pad_values, ref, rng):
    layer = QuantSeparableConv2D(
        4,
        3,
        strides=strides,
        depth_multiplier=multiplier,
        padding="same",
        pad_values=pad_values,
        input_quantizer="ste_sign",
        depthwise_quantizer="ste_sign",
        pointwise_quantizer="ste_sign",
        depthwise_constraint="weight_clip",
        pointwise_constraint="weight_clip",
    )
    x = f32(rng.normal(size=(2, size, size, 3)))
    built(layer, x.shape, rng)
    depthwise, pointwise, bias = layer.get_weights()
    assert pointwise.shape == (1, 1, 3 * multiplier, 4)
    padded = ref.pad_same_2d(ref.sign(x), (3, 3), (strides, strides), (1, 1), pad_values)
    dw = ref.depthwise_conv2d(padded, ref.sign(depthwise), (strides, strides))
    expected = np.einsum("nhwc,co->nhwo", dw, ref.sign(pointwise)[0, 0]) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)
    ops_out = (
        keras.ops.separable_conv(
            padded.astype(np.float32),
            ref.sign(depthwise),
            ref.sign(pointwise),
            strides=strides,
            padding="valid",
        ).numpy()
        + bias
    )
    np.testing.assert_allclose(layer(x).numpy(), ops_out, atol=ATOL)


def test_separable_quantizes_each_kernel_with_its_own_quantizer(ref, rng):
    layer = QuantSeparableConv2D(
        3,
        3,
        padding="valid",
        depthwise_quantizer=DoReFa(2, mode="weights"),
        pointwise_quantizer="ste_tern",
    )
    x = f32(rng.normal(size=(2, 5, 5, 2)))
    built(layer, x.shape, rng)
    depthwise, pointwise, bias = layer.get_weights()
    dw = ref.depthwise_conv2d(x, ref.dorefa_weights(depthwise, 2))
    expected = np.einsum("nhwc,co->nhwo", dw, ref.ste_tern(pointwise)[0, 0]) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


def test_depthwise_scaled_sign_is_per_channel_and_multiplier(ref, rng):
    layer = QuantDepthwiseConv2D(
        3,
        depth_multiplier=2,
        padding="valid",
        depthwise_quantizer="scaled_sign",
        depthwise_constraint="weight_clip",
    )
    x = f32(rng.normal(size=(2, 5, 5, 3)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    kernel = kernel * f32(rng.uniform(0.1, 3.0, (1, 1, 3, 2)))
    layer.set_weights([kernel, bias])
    quantized = ref.scaled_sign(kernel, (-2, -1))  # mean over (h, w)
    expected = ref.depthwise_conv2d(x, quantized) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


def test_separable_scaled_sign_axes(ref, rng):
    layer = QuantSeparableConv2D(
        3,
        3,
        depth_multiplier=2,
        padding="valid",
        depthwise_quantizer="scaled_sign",
        pointwise_quantizer="scaled_sign",
        depthwise_constraint="weight_clip",
        pointwise_constraint="weight_clip",
    )
    x = f32(rng.normal(size=(2, 5, 5, 2)))
    built(layer, x.shape, rng)
    depthwise, pointwise, bias = layer.get_weights()
    depthwise = depthwise * f32(rng.uniform(0.1, 3.0, (1, 1, 2, 2)))
    pointwise = pointwise * f32(rng.uniform(0.1, 3.0, (1, 1, 1, 3)))
    layer.set_weights([depthwise, pointwise, bias])
    dw = ref.depthwise_conv2d(x, ref.scaled_sign(depthwise, (-2, -1)))
    expected = np.einsum("nhwc,co->nhwo", dw, ref.scaled_sign(pointwise, (-1,))[0, 0]) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)
