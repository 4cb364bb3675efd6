"""QuantConv1D and QuantConv2D against numpy: "same", "causal" and "valid"
padding with ``pad_values``, strides, dilations, channels-first inputs and
unknown spatial sizes."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfqnn.layers import (
    QuantConv1D,
    QuantConv2D,
)

from .factories import (
    ATOL,
    QUANTIZER_PAIRS,
    built,
    channels_first_or_skip,
    f32,
    np_input,
    np_kernel,
    randomize,
)

# (height, width, kernel_size, strides, dilation_rate)
CONV_GEOMETRIES = [
    (7, 7, (3, 3), (1, 1), (1, 1)),
    (8, 8, (3, 3), (1, 1), (1, 1)),
    (8, 8, (3, 3), (2, 2), (1, 1)),
    (7, 7, (3, 3), (2, 2), (1, 1)),
    (8, 8, (2, 2), (1, 1), (1, 1)),
    (8, 7, (4, 4), (2, 2), (1, 1)),
    (6, 6, (5, 5), (3, 3), (1, 1)),
    (9, 9, (3, 3), (1, 1), (2, 2)),
    (8, 9, (2, 3), (1, 1), (2, 3)),
    (7, 6, (3, 1), (2, 1), (1, 1)),
]


def _geometry_id(g):
    h, w, k, s, d = g
    return f"{h}x{w}-k{k[0]}{k[1]}-s{s[0]}{s[1]}-d{d[0]}{d[1]}"


@pytest.mark.parametrize("pad_values", [1.0, -1.0, 0.5])
@pytest.mark.parametrize("geometry", CONV_GEOMETRIES, ids=_geometry_id)
def test_conv2d_same_padding_pads_with_pad_values(geometry, pad_values, ref, rng):
    h, w, k, s, d = geometry
    layer = QuantConv2D(
        4,
        k,
        strides=s,
        dilation_rate=d,
        padding="same",
        pad_values=pad_values,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    x = f32(rng.normal(size=(2, h, w, 3)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    padded = ref.pad_same_2d(ref.sign(x), k, s, d, pad_values)
    expected = ref.conv2d(padded, ref.sign(kernel), s, d) + bias
    out = layer(x).numpy()
    assert out.shape == (2, -(-h // s[0]), -(-w // s[1]), 4)
    np.testing.assert_allclose(out, expected, atol=ATOL)


@pytest.mark.parametrize("geometry", CONV_GEOMETRIES, ids=_geometry_id)
def test_conv2d_pad_values_zero_is_keras_same(geometry, ref, rng):
    """pad_values=0 is Keras's own "same" padding; also validates the numpy padding."""
    h, w, k, s, d = geometry
    layer = QuantConv2D(
        4,
        k,
        strides=s,
        dilation_rate=d,
        padding="same",
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    assert layer.pad_values == 0.0
    x = f32(rng.normal(size=(2, h, w, 3)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    keras_conv = keras.layers.Conv2D(4, k, strides=s, dilation_rate=d, padding="same")
    keras_conv.build(x.shape)
    keras_conv.set_weights([ref.sign(kernel), bias])
    keras_out = keras_conv(ref.sign(x)).numpy()
    out = layer(x).numpy()
    np.testing.assert_allclose(out, keras_out, atol=ATOL)
    padded = ref.pad_same_2d(ref.sign(x), k, s, d, 0.0)
    np.testing.assert_allclose(out, ref.conv2d(padded, ref.sign(kernel), s, d) + bias, atol=ATOL)


def test_conv2d_same_pad_values_one_matches_keras_ops_on_explicit_padding(ref, rng):
    """The spec's own formulation: np.pad(sign(x), 1) then ops.conv 'valid' with sign(W)."""
    layer = QuantConv2D(
        5,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )
    x = f32(rng.normal(size=(3, 6, 6, 2)))
    built(layer, x.shape, rng)
    (kernel,) = layer.get_weights()
    padded = np.pad(ref.sign(x), [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=1.0)
    expected = keras.ops.conv(padded, ref.sign(kernel), padding="valid").numpy()
    np.testing.assert_array_equal(layer(x).numpy(), expected)
    # ...and the border differs from zero padding: pad_values matters.
    zero_padded = keras.layers.Conv2D(5, 3, padding="same", use_bias=False)
    zero_padded.build(x.shape)
    zero_padded.set_weights([ref.sign(kernel)])
    assert not np.allclose(zero_padded(ref.sign(x)).numpy(), expected)


def test_conv2d_valid_padding_ignores_pad_values(ref, rng):
    layer = QuantConv2D(
        2,
        3,
        strides=2,
        padding="valid",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    x = f32(rng.normal(size=(2, 7, 8, 3)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    expected = ref.conv2d(ref.sign(x), ref.sign(kernel), (2, 2)) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


@pytest.mark.parametrize("pair", list(QUANTIZER_PAIRS))
def test_conv2d_forward_with_quantizers(pair, ref, rng):
    in_q, k_q, np_in, np_k = QUANTIZER_PAIRS[pair]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = QuantConv2D(3, 3, padding="valid", input_quantizer=in_q, kernel_quantizer=k_q)
    x = f32(rng.uniform(-1.5, 1.5, (2, 5, 6, 2)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    expected = ref.conv2d(np_input(ref, np_in, x), np_kernel(ref, np_k, kernel)) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


@pytest.mark.parametrize(
    "padding,pad_values,strides",
    [("same", 1.0, 1), ("same", 0.0, 2), ("valid", 1.0, 1), ("same", 1.0, 2)],
)
def test_conv2d_channels_first(padding, pad_values, strides, ref, rng):
    layer = QuantConv2D(
        4,
        3,
        strides=strides,
        padding=padding,
        pad_values=pad_values,
        data_format="channels_first",
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    # Output widths (8, 4 at stride 2, 6 valid) other than filters=4 where they could be
    # mistaken for channels: see test_channels_first_bias_when_width_equals_filters.
    x_nhwc = f32(rng.normal(size=(2, 7, 8 if strides == 1 else 5, 3)))
    x = np.transpose(x_nhwc, (0, 3, 1, 2))
    layer.build(x.shape)
    randomize(layer, rng)
    kernel, bias = layer.get_weights()
    out = channels_first_or_skip(lambda: layer(x).numpy())
    src = ref.sign(x_nhwc)
    if padding == "same":
        src = ref.pad_same_2d(src, (3, 3), (strides, strides), (1, 1), pad_values)
    expected = ref.conv2d(src, ref.sign(kernel), (strides, strides)) + bias
    assert out.shape[-1] != 4
    np.testing.assert_allclose(out, np.transpose(expected, (0, 3, 1, 2)), atol=ATOL)


def test_conv2d_dynamic_spatial_shape(ref, rng):
    """'same' padding with pad_values on inputs whose size is only known at run time."""
    layer = QuantConv2D(
        3,
        3,
        strides=2,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, layer(inputs))
    randomize(layer, rng)
    kernel, bias = layer.get_weights()
    for h, w in [(7, 8), (4, 5)]:
        x = f32(rng.normal(size=(2, h, w, 2)))
        padded = ref.pad_same_2d(ref.sign(x), (3, 3), (2, 2), (1, 1), 1.0)
        expected = ref.conv2d(padded, ref.sign(kernel), (2, 2)) + bias
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=ATOL)
        # Also through a traced function with an unknown spatial shape.
        fn = tf.function(lambda t: layer(t), input_signature=[tf.TensorSpec((None, None, None, 2))])
        np.testing.assert_allclose(fn(x).numpy(), expected, atol=ATOL)


def _np_conv1d(ref, x, kernel, stride=1, dilation=1):
    """A 1D conv as a 2D conv over a height of 1."""
    return ref.conv2d(x[:, None], kernel[None], (1, stride), (1, dilation))[:, 0]


@pytest.mark.parametrize("pad_values", [0.0, 1.0, -0.5])
@pytest.mark.parametrize("kernel_size,dilation", [(3, 1), (3, 2), (2, 3), (4, 1)])
def test_conv1d_causal_pads_left_with_pad_values(kernel_size, dilation, pad_values, ref, rng):
    layer = QuantConv1D(
        4,
        kernel_size,
        padding="causal",
        dilation_rate=dilation,
        pad_values=pad_values,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    x = f32(rng.normal(size=(2, 9, 3)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    left = (kernel_size - 1) * dilation
    padded = np.pad(ref.sign(x), [(0, 0), (left, 0), (0, 0)], constant_values=pad_values)
    expected = _np_conv1d(ref, padded, ref.sign(kernel), 1, dilation) + bias
    out = layer(x).numpy()
    assert out.shape == (2, 9, 4)
    np.testing.assert_allclose(out, expected, atol=ATOL)
    # Causality: output t does not depend on inputs after t.
    x2 = x.copy()
    x2[:, 5:] = -x2[:, 5:]
    np.testing.assert_array_equal(layer(x2).numpy()[:, :5], out[:, :5])


def test_conv1d_causal_pad_zero_is_keras_causal(ref, rng):
    layer = QuantConv1D(
        3,
        3,
        padding="causal",
        dilation_rate=2,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    keras_conv = keras.layers.Conv1D(3, 3, padding="causal", dilation_rate=2)
    x = f32(rng.normal(size=(2, 8, 2)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    keras_conv.build(x.shape)
    keras_conv.set_weights([ref.sign(kernel), bias])
    np.testing.assert_allclose(layer(x).numpy(), keras_conv(ref.sign(x)).numpy(), atol=ATOL)


@pytest.mark.parametrize("length,kernel_size,stride", [(9, 3, 2), (8, 4, 1), (8, 3, 3)])
def test_conv1d_same_pads_with_pad_values(length, kernel_size, stride, ref, rng):
    layer = QuantConv1D(
        2,
        kernel_size,
        strides=stride,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    x = f32(rng.normal(size=(3, length, 2)))
    built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    padded = np.pad(
        ref.sign(x),
        [(0, 0), ref.same_pads(length, kernel_size, stride, 1), (0, 0)],
        constant_values=1.0,
    )
    expected = _np_conv1d(ref, padded, ref.sign(kernel), stride) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)
