"""Tests of tfqnn's quantized layers against independent numpy computations.

Forward passes are compared to numpy references written from the definition
of each operation (see conftest.py), with quantized values such as +-1 so
that the sums are exact; training tests check that gradients reach the
latent kernels through the straight-through estimator and that the
constraints apply.
"""

import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn.layers import (
    QuantActivation,
    QuantConv1D,
    QuantConv2D,
    QuantConv2DTranspose,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantSeparableConv2D,
)
from tfqnn.quantizers import DoReFa, ScaledSign, StochasticSign

ATOL = 1e-4


def _f32(a):
    return np.asarray(a, dtype=np.float32)


def _weight_clip_warnings(record):
    return [w for w in record if "weight_clip" in str(w.message)]


# --------------------------------------------------------------------------
# Layer factories: every quantized layer, with all of its kernels binary.
# --------------------------------------------------------------------------


def _binary_layer(kind, **extra):
    clip = "weight_clip"
    if kind == "dense":
        return QuantDense(
            3,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint=clip,
            **extra,
        )
    if kind == "conv1d":
        return QuantConv1D(
            3,
            3,
            padding="causal",
            pad_values=1.0,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint=clip,
            **extra,
        )
    if kind == "conv2d":
        return QuantConv2D(
            3,
            3,
            padding="same",
            pad_values=1.0,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint=clip,
            **extra,
        )
    if kind == "depthwise":
        return QuantDepthwiseConv2D(
            3,
            depth_multiplier=2,
            padding="same",
            pad_values=1.0,
            input_quantizer="ste_sign",
            depthwise_quantizer="ste_sign",
            depthwise_constraint=clip,
            **extra,
        )
    if kind == "separable":
        return QuantSeparableConv2D(
            3,
            3,
            padding="same",
            pad_values=1.0,
            input_quantizer="ste_sign",
            depthwise_quantizer="ste_sign",
            pointwise_quantizer="ste_sign",
            depthwise_constraint=clip,
            pointwise_constraint=clip,
            **extra,
        )
    if kind == "transpose":
        return QuantConv2DTranspose(
            3,
            3,
            strides=2,
            padding="same",
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint=clip,
            **extra,
        )
    raise AssertionError(kind)


INPUT_SHAPES = {
    "dense": (4, 5),
    "conv1d": (2, 7, 3),
    "conv2d": (2, 5, 5, 2),
    "depthwise": (2, 5, 5, 2),
    "separable": (2, 5, 5, 2),
    "transpose": (2, 3, 3, 2),
}

KERNEL_ATTRS = {
    "dense": ["kernel"],
    "conv1d": ["kernel"],
    "conv2d": ["kernel"],
    "depthwise": ["kernel"],
    "separable": ["depthwise_kernel", "pointwise_kernel"],
    "transpose": ["kernel"],
}

LAYER_NAMES = list(INPUT_SHAPES)


def _randomize(layer, rng, scale=0.5):
    """Gives every weight random values (biases included, so that they are tested)."""
    layer.set_weights([_f32(rng.uniform(-scale, scale, w.shape)) for w in layer.get_weights()])


def _built(layer, shape, rng):
    layer.build(shape)
    _randomize(layer, rng)
    return layer


# --------------------------------------------------------------------------
# QuantDense
# --------------------------------------------------------------------------

# (input_quantizer, kernel_quantizer, numpy input fn, numpy kernel fn (kernel, channel axes))
QUANTIZER_PAIRS = {
    "binary": ("ste_sign", "ste_sign", "sign", "sign"),
    "approx_sign": ("approx_sign", "approx_sign", "sign", "sign"),
    "dorefa2": (DoReFa(2), DoReFa(2, mode="weights"), "dorefa_a2", "dorefa_w2"),
    "dorefa3": (DoReFa(3), DoReFa(3, mode="weights"), "dorefa_a3", "dorefa_w3"),
    "float_in_scaled_sign": (None, "scaled_sign", "identity", "scaled_sign"),
    "sign_in_ternary": ("ste_sign", "ste_tern", "sign", "ste_tern"),
}


def _np_input(ref, kind, x):
    return {
        "sign": ref.sign,
        "dorefa_a2": lambda v: ref.dorefa_activations(v, 2),
        "dorefa_a3": lambda v: ref.dorefa_activations(v, 3),
        "identity": _f32,
    }[kind](x)


def _np_kernel(ref, kind, w, channel_axes=(-1,)):
    return {
        "sign": ref.sign,
        "dorefa_w2": lambda v: ref.dorefa_weights(v, 2),
        "dorefa_w3": lambda v: ref.dorefa_weights(v, 3),
        "scaled_sign": lambda v: ref.scaled_sign(v, channel_axes),
        "ste_tern": ref.ste_tern,
    }[kind](w)


@pytest.mark.parametrize("pair", list(QUANTIZER_PAIRS))
def test_dense_forward_matches_numpy(pair, ref, rng):
    in_q, k_q, np_in, np_k = QUANTIZER_PAIRS[pair]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = QuantDense(4, input_quantizer=in_q, kernel_quantizer=k_q)
    x = _f32(rng.uniform(-1.5, 1.5, (6, 5)))
    layer.build(x.shape)
    kernel = _f32(rng.normal(0, 0.6, (5, 4)))
    bias = _f32(rng.normal(0, 1, (4,)))
    layer.set_weights([kernel, bias])
    expected = _np_input(ref, np_in, x).astype(np.float64) @ _np_kernel(ref, np_k, kernel) + bias
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
    x = _f32(rng.normal(size=(5, 9)))
    x[0, :3] = 0.0  # sign(0) = +1
    layer.build(x.shape)
    kernel = _f32(rng.normal(size=(9, 7)))
    kernel[:2, 0] = 0.0
    bias = _f32(rng.integers(-3, 4, size=7))
    layer.set_weights([kernel, bias])
    expected = np.maximum(ref.sign(x) @ ref.sign(kernel) + bias, 0.0)
    np.testing.assert_array_equal(layer(x).numpy(), expected)


def test_dense_keeps_latent_float_kernel(rng):
    layer = QuantDense(
        3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False
    )
    layer.build((2, 4))
    kernel = _f32(rng.uniform(-0.9, 0.9, (4, 3)))
    layer.set_weights([kernel])
    layer(np.ones((2, 4), np.float32))
    # The variable still holds the float values, not their signs.
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)
    assert len(np.unique(np.abs(layer.kernel.numpy()))) > 2


def test_dense_on_3d_inputs(ref, rng):
    layer = QuantDense(
        3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
    )
    x = _f32(rng.normal(size=(2, 4, 5)))
    layer.build(x.shape)
    _randomize(layer, rng)
    kernel, bias = layer.get_weights()
    expected = np.einsum("btc,co->bto", ref.sign(x), ref.sign(kernel)) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


def test_dense_without_quantizers_is_keras_dense(rng):
    layer = QuantDense(4, activation="tanh")
    dense = keras.layers.Dense(4, activation="tanh")
    x = _f32(rng.normal(size=(3, 6)))
    layer.build(x.shape)
    dense.build(x.shape)
    _randomize(layer, rng)
    dense.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x).numpy(), dense(x).numpy(), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------
# QuantConv2D
# --------------------------------------------------------------------------

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
    x = _f32(rng.normal(size=(2, h, w, 3)))
    _built(layer, x.shape, rng)
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
    x = _f32(rng.normal(size=(2, h, w, 3)))
    _built(layer, x.shape, rng)
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
    x = _f32(rng.normal(size=(3, 6, 6, 2)))
    _built(layer, x.shape, rng)
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
    x = _f32(rng.normal(size=(2, 7, 8, 3)))
    _built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    expected = ref.conv2d(ref.sign(x), ref.sign(kernel), (2, 2)) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


@pytest.mark.parametrize("pair", list(QUANTIZER_PAIRS))
def test_conv2d_forward_with_quantizers(pair, ref, rng):
    in_q, k_q, np_in, np_k = QUANTIZER_PAIRS[pair]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = QuantConv2D(3, 3, padding="valid", input_quantizer=in_q, kernel_quantizer=k_q)
    x = _f32(rng.uniform(-1.5, 1.5, (2, 5, 6, 2)))
    _built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    expected = ref.conv2d(_np_input(ref, np_in, x), _np_kernel(ref, np_k, kernel)) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


def _channels_first_or_skip(fn):
    try:
        return fn()
    except (tf.errors.OpError, ValueError, NotImplementedError) as error:  # pragma: no cover
        pytest.skip(f"channels_first not supported here: {error}")


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
    x_nhwc = _f32(rng.normal(size=(2, 7, 8 if strides == 1 else 5, 3)))
    x = np.transpose(x_nhwc, (0, 3, 1, 2))
    layer.build(x.shape)
    _randomize(layer, rng)
    kernel, bias = layer.get_weights()
    out = _channels_first_or_skip(lambda: layer(x).numpy())
    src = ref.sign(x_nhwc)
    if padding == "same":
        src = ref.pad_same_2d(src, (3, 3), (strides, strides), (1, 1), pad_values)
    expected = ref.conv2d(src, ref.sign(kernel), (strides, strides)) + bias
    assert out.shape[-1] != 4
    np.testing.assert_allclose(out, np.transpose(expected, (0, 3, 1, 2)), atol=ATOL)


CHANNELS_FIRST_FACTORIES = {
    "conv1d": (lambda df: _binary_layer("conv1d", data_format=df), (2, 7, 3)),
    "depthwise": (lambda df: _binary_layer("depthwise", data_format=df), (2, 5, 7, 2)),
    "separable": (lambda df: _binary_layer("separable", data_format=df), (2, 5, 7, 2)),
    "transpose": (lambda df: _binary_layer("transpose", data_format=df), (2, 3, 4, 2)),
}


@pytest.mark.parametrize("name", list(CHANNELS_FIRST_FACTORIES))
def test_other_layers_channels_first_match_channels_last(name, rng):
    """The channels_first layer equals the (numpy-checked) channels_last one on transposed data."""
    factory, shape = CHANNELS_FIRST_FACTORIES[name]
    last, first = factory("channels_last"), factory("channels_first")
    perm = (0, len(shape) - 1) + tuple(range(1, len(shape) - 1))
    inverse = tuple(np.argsort(perm))
    x = _f32(rng.normal(size=shape))
    _built(last, shape, rng)
    first.build(tuple(np.array(shape)[list(perm)]))
    first.set_weights(last.get_weights())
    out = _channels_first_or_skip(lambda: first(np.transpose(x, perm)).numpy())
    np.testing.assert_allclose(np.transpose(out, inverse), last(x).numpy(), atol=ATOL)


@pytest.mark.parametrize("name", ["conv2d", "transpose"])
def test_channels_first_bias_when_width_equals_filters(name, ref, rng):
    if name == "conv2d":
        make = lambda df: QuantConv2D(  # noqa: E731
            4,
            3,
            padding="valid",
            data_format=df,
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
        )
        shape = (2, 7, 6, 3)  # -> (2, 5, 4, 4) channels_last, (2, 4, 5, 4) channels_first
    else:
        make = lambda df: QuantConv2DTranspose(  # noqa: E731
            4,
            2,
            strides=2,
            data_format=df,
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
        )
        shape = (2, 3, 2, 3)  # -> (2, 6, 4, 4) channels_last, (2, 4, 6, 4) channels_first
    last, first = make("channels_last"), make("channels_first")
    x = _f32(rng.normal(size=shape))
    _built(last, shape, rng)
    kernel, _ = last.get_weights()
    bias = _f32([10.0, 20.0, 30.0, 40.0])  # one value per channel, easy to tell apart
    last.set_weights([kernel, bias])
    first.build((shape[0], shape[3], shape[1], shape[2]))
    first.set_weights([kernel, bias])
    out = _channels_first_or_skip(lambda: first(np.transpose(x, (0, 3, 1, 2))).numpy())
    assert out.shape[-1] == 4
    np.testing.assert_allclose(np.transpose(out, (0, 2, 3, 1)), last(x).numpy(), atol=ATOL)


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
    _randomize(layer, rng)
    kernel, bias = layer.get_weights()
    for h, w in [(7, 8), (4, 5)]:
        x = _f32(rng.normal(size=(2, h, w, 2)))
        padded = ref.pad_same_2d(ref.sign(x), (3, 3), (2, 2), (1, 1), 1.0)
        expected = ref.conv2d(padded, ref.sign(kernel), (2, 2)) + bias
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=ATOL)
        # Also through a traced function with an unknown spatial shape.
        fn = tf.function(lambda t: layer(t), input_signature=[tf.TensorSpec((None, None, None, 2))])
        np.testing.assert_allclose(fn(x).numpy(), expected, atol=ATOL)


# --------------------------------------------------------------------------
# QuantConv1D
# --------------------------------------------------------------------------


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
    x = _f32(rng.normal(size=(2, 9, 3)))
    _built(layer, x.shape, rng)
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
    x = _f32(rng.normal(size=(2, 8, 2)))
    _built(layer, x.shape, rng)
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
    x = _f32(rng.normal(size=(3, length, 2)))
    _built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    padded = np.pad(
        ref.sign(x),
        [(0, 0), ref.same_pads(length, kernel_size, stride, 1), (0, 0)],
        constant_values=1.0,
    )
    expected = _np_conv1d(ref, padded, ref.sign(kernel), stride) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


# --------------------------------------------------------------------------
# QuantDepthwiseConv2D and QuantSeparableConv2D
# --------------------------------------------------------------------------


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
    x = _f32(rng.normal(size=(2, size, size, 3)))
    _built(layer, x.shape, rng)
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
    x = _f32(rng.normal(size=(2, size, size, 3)))
    _built(layer, x.shape, rng)
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
    x = _f32(rng.normal(size=(2, 5, 5, 2)))
    _built(layer, x.shape, rng)
    depthwise, pointwise, bias = layer.get_weights()
    dw = ref.depthwise_conv2d(x, ref.dorefa_weights(depthwise, 2))
    expected = np.einsum("nhwc,co->nhwo", dw, ref.ste_tern(pointwise)[0, 0]) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


# --------------------------------------------------------------------------
# QuantConv2DTranspose
# --------------------------------------------------------------------------


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
    x = _f32(rng.normal(size=shape))
    return _built(layer, x.shape, rng), x


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


# --------------------------------------------------------------------------
# Per-channel quantizers: ScaledSign gets each kernel's output-channel axis
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory,attr,axis",
    [
        (lambda: QuantDense(3, kernel_quantizer="scaled_sign"), "kernel_quantizer", -1),
        (lambda: QuantConv1D(3, 3, kernel_quantizer="scaled_sign"), "kernel_quantizer", -1),
        (lambda: QuantConv2D(3, 3, kernel_quantizer="scaled_sign"), "kernel_quantizer", -1),
        (
            lambda: QuantConv2DTranspose(3, 3, kernel_quantizer="scaled_sign"),
            "kernel_quantizer",
            -2,
        ),
        (
            lambda: QuantDepthwiseConv2D(3, depthwise_quantizer="scaled_sign"),
            "depthwise_quantizer",
            (-2, -1),
        ),
        (
            lambda: QuantSeparableConv2D(3, 3, depthwise_quantizer=ScaledSign()),
            "depthwise_quantizer",
            (-2, -1),
        ),
        (
            lambda: QuantSeparableConv2D(3, 3, pointwise_quantizer="scaled_sign"),
            "pointwise_quantizer",
            -1,
        ),
    ],
    ids=["dense", "conv1d", "conv2d", "transpose", "depthwise", "separable-dw", "separable-pw"],
)
def test_scaled_sign_gets_the_kernel_channel_axis(factory, attr, axis):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = factory()
    quantizer = getattr(layer, attr)
    assert isinstance(quantizer, ScaledSign)
    assert quantizer.axis == axis
    # The axis survives the config round trip.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        clone = type(layer).from_config(layer.get_config())
    assert getattr(clone, attr).axis == axis


def test_explicit_scaled_sign_axis_is_kept_and_argument_not_mutated():
    given = ScaledSign()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = QuantConv2DTranspose(3, 3, kernel_quantizer=given)
        explicit = QuantConv2DTranspose(3, 3, kernel_quantizer=ScaledSign(axis=0))
    assert layer.kernel_quantizer.axis == -2
    assert given.axis == -1
    assert explicit.kernel_quantizer.axis == 0


def test_transpose_scaled_sign_is_per_output_channel(ref, rng):
    layer = QuantConv2DTranspose(
        4,
        3,
        strides=2,
        padding="valid",
        kernel_quantizer="scaled_sign",
        kernel_constraint="weight_clip",
    )
    x = _f32(rng.normal(size=(2, 3, 3, 2)))
    _built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    kernel = kernel * _f32([0.1, 1.0, 3.0, 0.5])[None, None, :, None]  # very different channels
    layer.set_weights([kernel, bias])
    quantized = ref.scaled_sign(kernel, (-2,))  # mean over (h, w, in)
    expected = ref.conv2d_transpose_full(x, quantized, (2, 2)) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)
    # Per-tensor scaling would give another result.
    per_tensor = np.abs(kernel).mean() * ref.sign(kernel)
    assert not np.allclose(
        ref.conv2d_transpose_full(x, per_tensor, (2, 2)) + bias, expected, atol=1e-2
    )


def test_depthwise_scaled_sign_is_per_channel_and_multiplier(ref, rng):
    layer = QuantDepthwiseConv2D(
        3,
        depth_multiplier=2,
        padding="valid",
        depthwise_quantizer="scaled_sign",
        depthwise_constraint="weight_clip",
    )
    x = _f32(rng.normal(size=(2, 5, 5, 3)))
    _built(layer, x.shape, rng)
    kernel, bias = layer.get_weights()
    kernel = kernel * _f32(rng.uniform(0.1, 3.0, (1, 1, 3, 2)))
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
    x = _f32(rng.normal(size=(2, 5, 5, 2)))
    _built(layer, x.shape, rng)
    depthwise, pointwise, bias = layer.get_weights()
    depthwise = depthwise * _f32(rng.uniform(0.1, 3.0, (1, 1, 2, 2)))
    pointwise = pointwise * _f32(rng.uniform(0.1, 3.0, (1, 1, 1, 3)))
    layer.set_weights([depthwise, pointwise, bias])
    dw = ref.depthwise_conv2d(x, ref.scaled_sign(depthwise, (-2, -1)))
    expected = np.einsum("nhwc,co->nhwo", dw, ref.scaled_sign(pointwise, (-1,))[0, 0]) + bias
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)


# --------------------------------------------------------------------------
# QuantActivation
# --------------------------------------------------------------------------


def test_quant_activation_forward_and_ste(ref, rng):
    layer = QuantActivation("ste_sign")
    x = tf.constant(_f32(rng.uniform(-2, 2, (4, 6))))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    np.testing.assert_array_equal(y.numpy(), ref.sign(x.numpy()))
    grad = tape.gradient(y, x).numpy()
    np.testing.assert_array_equal(grad, (np.abs(x.numpy()) <= 1.0).astype(np.float32))


def test_quant_activation_dorefa_in_a_model(ref, rng):
    inputs = keras.Input((5,))
    model = keras.Model(inputs, QuantActivation(DoReFa(2))(inputs))
    x = _f32(rng.uniform(-0.5, 1.5, (8, 5)))
    np.testing.assert_allclose(model.predict(x, verbose=0), ref.dorefa_activations(x, 2), atol=1e-6)
    assert model.output_shape == (None, 5)


def test_stochastic_quantizer_random_in_training_deterministic_at_inference(ref, rng):
    layer = QuantActivation(StochasticSign(seed=3))
    x = _f32(rng.uniform(-0.6, 0.6, (20, 20)))
    inference = layer(x, training=False).numpy()
    np.testing.assert_array_equal(inference, ref.sign(x))
    np.testing.assert_array_equal(layer(x, training=False).numpy(), inference)
    first = layer(x, training=True).numpy()
    second = layer(x, training=True).numpy()
    assert set(np.unique(first)) <= {-1.0, 1.0}
    assert not np.array_equal(first, ref.sign(x))
    assert not np.array_equal(first, second)


def test_stochastic_kernel_quantizer_in_dense(ref, rng):
    layer = QuantDense(
        6, kernel_quantizer=StochasticSign(seed=5), kernel_constraint="weight_clip", use_bias=False
    )
    x = _f32(rng.normal(size=(4, 10)))
    layer.build(x.shape)
    kernel = _f32(rng.uniform(-0.6, 0.6, (10, 6)))
    layer.set_weights([kernel])
    expected = x.astype(np.float64) @ ref.sign(kernel)
    np.testing.assert_allclose(layer(x, training=False).numpy(), expected, atol=ATOL)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=ATOL)  # training=None: inference
    trained = layer(x, training=True).numpy()
    assert not np.allclose(trained, expected, atol=ATOL)
    # The seed generator is layer state (so it is saved and restored).
    assert any("seed_generator" in v.path for v in layer.variables)


def test_stochastic_quantizers_are_random_in_fit_and_deterministic_in_predict(rng):
    """In fit the stochastic kernel draws; predict uses the deterministic rounding."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            QuantDense(4, kernel_quantizer=StochasticSign(seed=1), kernel_constraint="weight_clip"),
            QuantActivation(StochasticSign(seed=2)),
        ]
    )
    x = _f32(rng.normal(size=(16, 6)))
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
    seed_state = [v.numpy().copy() for v in model.variables if "seed_generator" in v.path]
    assert seed_state
    model.compile(keras.optimizers.SGD(0.0), "mse")
    model.fit(x, np.zeros((16, 4), np.float32), batch_size=16, epochs=1, verbose=0)
    after = [v.numpy() for v in model.variables if "seed_generator" in v.path]
    # Training drew random numbers: the seed state advanced.
    assert any(not np.array_equal(a, b) for a, b in zip(after, seed_state))
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)  # lr=0: weights unchanged


# --------------------------------------------------------------------------
# Training: gradients reach the latent kernels through the STE
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_training_step_updates_every_latent_kernel(name, rng):
    layer = _binary_layer(name)
    shape = INPUT_SHAPES[name]
    x = tf.constant(_f32(rng.normal(size=shape)))
    layer.build(shape)
    _randomize(layer, rng, scale=0.5)
    kernels = [getattr(layer, attr) for attr in KERNEL_ATTRS[name]]
    before = [k.numpy().copy() for k in kernels]
    target = tf.constant(_f32(rng.normal(size=layer.compute_output_shape(shape))))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x, training=True) - target))
    grads = tape.gradient(loss, kernels)
    for attr, grad in zip(KERNEL_ATTRS[name], grads):
        assert grad is not None, f"no gradient reached {attr}"
        assert np.count_nonzero(grad.numpy()) > 0, f"zero gradient for {attr}"
    keras.optimizers.SGD(0.05).apply(grads, kernels)
    for attr, kernel, old in zip(KERNEL_ATTRS[name], kernels, before):
        assert not np.array_equal(kernel.numpy(), old), f"{attr} did not change"


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_fit_changes_latent_kernels(name, rng):
    keras.utils.set_random_seed(1)
    shape = INPUT_SHAPES[name]
    layer = _binary_layer(name)
    model = keras.Sequential(
        [keras.Input(shape[1:]), layer, keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    before = {attr: getattr(layer, attr).numpy().copy() for attr in KERNEL_ATTRS[name]}
    x = _f32(rng.normal(size=(16,) + shape[1:]))
    y = _f32(rng.normal(size=(16, 1)))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for attr, old in before.items():
        new = getattr(layer, attr).numpy()
        assert not np.array_equal(new, old), f"{attr} did not change"
        assert np.abs(new).max() <= 1.0


def test_dense_gradients_are_the_straight_through_estimator(ref, rng):
    """dL/dW = sign(x)^T g masked where |W| > 1; dL/dx = g sign(W)^T masked where |x| > 1."""
    layer = QuantDense(
        3,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )
    x = tf.constant(_f32(rng.uniform(-2, 2, (5, 4))))
    layer.build(x.shape)
    kernel = _f32(rng.uniform(-0.9, 0.9, (4, 3)))
    kernel[0, 0], kernel[2, 1] = 1.5, -3.0  # outside the STE's clip range
    layer.set_weights([kernel])
    g = tf.constant(_f32(rng.normal(size=(5, 3))))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * g)
    grad_w, grad_x = tape.gradient(loss, [layer.kernel, x])
    expected_w = (ref.sign(x.numpy()).T @ g.numpy()) * (np.abs(kernel) <= 1.0)
    expected_x = (g.numpy() @ ref.sign(kernel).T) * (np.abs(x.numpy()) <= 1.0)
    np.testing.assert_allclose(grad_w.numpy(), expected_w, atol=ATOL)
    np.testing.assert_allclose(grad_x.numpy(), expected_x, atol=ATOL)
    assert grad_w.numpy()[0, 0] == 0.0 and grad_w.numpy()[2, 1] == 0.0


# --------------------------------------------------------------------------
# weight_clip: the warning, the alias and the clipping
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_binary_kernel_without_constraint_warns(name):
    kwargs = {
        "dense": lambda: QuantDense(3, kernel_quantizer="ste_sign"),
        "conv1d": lambda: QuantConv1D(3, 3, kernel_quantizer="approx_sign"),
        "conv2d": lambda: QuantConv2D(3, 3, kernel_quantizer="ste_sign"),
        "depthwise": lambda: QuantDepthwiseConv2D(3, depthwise_quantizer="scaled_sign"),
        "separable": lambda: QuantSeparableConv2D(3, 3, pointwise_quantizer="ste_sign"),
        "transpose": lambda: QuantConv2DTranspose(3, 3, kernel_quantizer=StochasticSign()),
    }[name]
    with pytest.warns(UserWarning, match="weight_clip"):
        kwargs()


def test_any_one_bit_kernel_quantizer_warns():
    """The criterion is the quantizer's precision (1 bit), not its class."""
    with pytest.warns(UserWarning, match="weight_clip"):
        QuantConv2D(3, 3, kernel_quantizer=DoReFa(1, mode="weights"))
    with pytest.warns(UserWarning, match="weight_clip"):
        QuantDense(3, kernel_quantizer=tfqnn.quantizers.NoOp(precision=1))


def test_separable_warns_for_each_unconstrained_binary_kernel():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        QuantSeparableConv2D(3, 3, depthwise_quantizer="ste_sign", pointwise_quantizer="ste_sign")
    messages = [str(w.message) for w in _weight_clip_warnings(record)]
    assert len(messages) == 2
    assert any("depthwise" in m for m in messages) and any("pointwise" in m for m in messages)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        QuantSeparableConv2D(
            3,
            3,
            depthwise_quantizer="ste_sign",
            pointwise_quantizer="ste_sign",
            depthwise_constraint="weight_clip",
        )
    messages = [str(w.message) for w in _weight_clip_warnings(record)]
    assert len(messages) == 1 and "pointwise" in messages[0]


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_no_warning_with_weight_clip(name):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        layer = _binary_layer(name)
        type(layer).from_config(layer.get_config())
    assert _weight_clip_warnings(record) == []


@pytest.mark.parametrize(
    "factory",
    [
        lambda: QuantDense(3, kernel_quantizer=DoReFa(2, mode="weights")),
        lambda: QuantDense(3, kernel_quantizer="ste_tern"),
        lambda: QuantConv2D(
            3, 3, input_quantizer="ste_sign"
        ),  # a binary *input* needs no constraint
        lambda: QuantDense(
            3, kernel_quantizer="ste_sign", kernel_constraint=keras.constraints.MaxNorm(1.0)
        ),
    ],
    ids=["dorefa2", "ternary", "binary-input", "other-constraint"],
)
def test_no_warning_without_binary_unconstrained_kernel(factory):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        factory()
    assert _weight_clip_warnings(record) == []


def test_weight_clip_warning_points_at_the_caller():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        QuantDense(3, kernel_quantizer="ste_sign")  # the line the warning should name
    (warning,) = _weight_clip_warnings(record)
    assert warning.filename == __file__


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_weight_clip_alias_is_a_weight_clip_constraint(name):
    layer = _binary_layer(name)
    constraint_attrs = {
        "depthwise": ["depthwise_constraint"],
        "separable": ["depthwise_constraint", "pointwise_constraint"],
    }.get(name, ["kernel_constraint"])
    for attr in constraint_attrs:
        constraint = getattr(layer, attr)
        assert isinstance(constraint, tfqnn.constraints.WeightClip)
        assert constraint.clip_value == 1.0


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_weight_clip_clips_after_a_training_step(name, rng):
    """A big SGD step pushes the latent weights far past 1; the constraint clips them back."""
    shape = INPUT_SHAPES[name]
    layer = _binary_layer(name)
    layer.build(shape)
    _randomize(layer, rng, scale=0.9)
    kernels = [getattr(layer, attr) for attr in KERNEL_ATTRS[name]]
    x = tf.constant(_f32(rng.normal(size=shape)))
    g = tf.constant(_f32(rng.normal(size=layer.compute_output_shape(shape))))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) * g)
    grads = tape.gradient(loss, kernels)
    unclipped = [k.numpy() - 100.0 * gr.numpy() for k, gr in zip(kernels, grads)]
    assert all(np.abs(u).max() > 1.5 for u in unclipped)  # the step would leave [-1, 1]
    keras.optimizers.SGD(100.0).apply(grads, kernels)
    for kernel, expected in zip(kernels, unclipped):
        np.testing.assert_allclose(kernel.numpy(), np.clip(expected, -1.0, 1.0), atol=1e-4)


def test_weight_clip_with_fit(rng):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            QuantDense(
                8, kernel_quantizer="ste_sign", kernel_constraint=tfqnn.constraints.WeightClip(0.5)
            ),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(50.0), "mse")
    model.fit(
        _f32(rng.normal(size=(32, 6))), _f32(rng.normal(size=(32, 1)) * 10), epochs=1, verbose=0
    )
    kernel = model.layers[0].kernel.numpy()
    assert np.abs(kernel).max() <= 0.5 + 1e-6
    assert np.isclose(np.abs(kernel).max(), 0.5)


# --------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------


CONFIG_FACTORIES = {
    "dense": lambda: QuantDense(
        4,
        input_quantizer=DoReFa(3),
        kernel_quantizer=DoReFa(2, mode="weights"),
        activation="relu",
        name="qd",
    ),
    "dense-binary": lambda: _binary_layer("dense", name="qdb"),
    "conv1d": lambda: _binary_layer("conv1d"),
    "conv2d": lambda: QuantConv2D(
        3,
        (3, 2),
        strides=(2, 1),
        padding="same",
        pad_values=-0.5,
        input_quantizer="approx_sign",
        kernel_quantizer=ScaledSign(),
        kernel_constraint=tfqnn.constraints.WeightClip(0.7),
    ),
    "depthwise": lambda: _binary_layer("depthwise"),
    "separable": lambda: QuantSeparableConv2D(
        3,
        3,
        depth_multiplier=2,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        depthwise_quantizer="scaled_sign",
        pointwise_quantizer="ste_tern",
        depthwise_constraint="weight_clip",
    ),
    "transpose": lambda: QuantConv2DTranspose(
        3,
        3,
        strides=2,
        padding="same",
        input_quantizer="ste_sign",
        kernel_quantizer="scaled_sign",
        kernel_constraint="weight_clip",
    ),
    "stochastic": lambda: QuantDense(
        3,
        input_quantizer=StochasticSign(seed=4),
        kernel_quantizer=tfqnn.quantizers.FixedPoint(2, 3, seed=2),
    ),
}

CONFIG_SHAPES = {
    "dense": (2, 5),
    "dense-binary": (2, 5),
    "conv1d": (2, 7, 3),
    "conv2d": (2, 5, 5, 2),
    "depthwise": (2, 5, 5, 2),
    "separable": (2, 5, 5, 2),
    "transpose": (2, 3, 3, 2),
    "stochastic": (2, 5),
}


@pytest.mark.parametrize("name", list(CONFIG_FACTORIES))
def test_config_round_trip(name, rng):
    layer = CONFIG_FACTORIES[name]()
    config = layer.get_config()
    json.dumps(config)  # JSON-serializable
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert clone.quantizers == layer.quantizers
    shape = CONFIG_SHAPES[name]
    _built(layer, shape, rng)
    clone.build(shape)
    clone.set_weights(layer.get_weights())
    x = _f32(rng.normal(size=shape))
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())
    # keras.layers.serialize / deserialize find the class without custom_objects.
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(again) is type(layer)
    assert again.get_config() == config


def test_config_contents():
    config = CONFIG_FACTORIES["separable"]().get_config()
    assert config["pad_values"] == 1.0
    assert config["input_quantizer"]["class_name"] == "SteSign"
    assert config["depthwise_quantizer"]["config"]["axis"] == [-2, -1]
    assert config["pointwise_quantizer"]["class_name"] == "SteTern"
    assert config["depthwise_constraint"]["class_name"] == "WeightClip"
    assert config["pointwise_constraint"] is None
    dense = QuantDense(2).get_config()
    assert dense["input_quantizer"] is None and dense["kernel_quantizer"] is None
    assert "pad_values" not in dense


def test_quant_activation_config_round_trip(rng):
    layer = QuantActivation(DoReFa(3), name="act")
    config = layer.get_config()
    clone = QuantActivation.from_config(config)
    assert clone.get_config() == config
    assert clone.quantizer == DoReFa(3)
    x = _f32(rng.uniform(-1, 2, (3, 4)))
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [
        lambda q: QuantDense(3, input_quantizer=q),
        lambda q: QuantDense(3, kernel_quantizer=q),
        lambda q: QuantConv1D(3, 3, kernel_quantizer=q),
        lambda q: QuantConv2D(3, 3, input_quantizer=q),
        lambda q: QuantDepthwiseConv2D(3, depthwise_quantizer=q),
        lambda q: QuantSeparableConv2D(3, 3, depthwise_quantizer=q),
        lambda q: QuantSeparableConv2D(3, 3, pointwise_quantizer=q),
        lambda q: QuantConv2DTranspose(3, 3, kernel_quantizer=q),
        lambda q: QuantActivation(q),
    ],
)
@pytest.mark.parametrize("bad", ["ste_sigm", "relu", 3, {"class_name": "Nope", "config": {}}])
def test_invalid_quantizer_raises_value_error(factory, bad):
    with pytest.raises(ValueError):
        factory(bad)


@pytest.mark.parametrize("bad", ["abc", None, float("nan"), float("inf"), True, [1.0]])
@pytest.mark.parametrize(
    "factory",
    [
        lambda v: QuantConv1D(3, 3, padding="causal", pad_values=v),
        lambda v: QuantConv2D(3, 3, padding="same", pad_values=v),
        lambda v: QuantDepthwiseConv2D(3, padding="same", pad_values=v),
        lambda v: QuantSeparableConv2D(3, 3, padding="same", pad_values=v),
    ],
    ids=["conv1d", "conv2d", "depthwise", "separable"],
)
def test_invalid_pad_values_raises_value_error(factory, bad):
    with pytest.raises(ValueError, match="pad_values"):
        factory(bad)


def test_quant_activation_needs_a_quantizer():
    with pytest.raises(ValueError):
        QuantActivation(None)


def test_invalid_constraint_alias_raises():
    with pytest.raises(ValueError):
        QuantDense(3, kernel_quantizer="ste_sign", kernel_constraint="weight_clp")
    with pytest.raises(ValueError):
        tfqnn.constraints.WeightClip(0.0)


def test_keras_post_training_quantize_skips_tfqnn_layers_and_quantizes_the_others(rng):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            QuantDense(
                4,
                input_quantizer="ste_sign",
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
            ),
            keras.layers.Dense(3),
        ]
    )
    x = _f32(rng.normal(size=(5, 6)))
    before = model.layers[0](x).numpy()
    with pytest.warns(UserWarning, match="quantized by its tfqnn quantizers"):
        model.quantize("int8")
    assert model.layers[0].quantization_mode is None
    assert model.layers[1].quantization_mode == "int8"
    np.testing.assert_array_equal(model.layers[0](x).numpy(), before)


def test_mixed_float16_layers_quantize_in_float16_and_train(rng):
    layer = QuantConv2D(
        4,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        dtype="mixed_float16",
    )
    x = _f32(rng.normal(size=(2, 5, 5, 3)))
    y = layer(x)
    assert y.dtype == "float16" and layer.kernel.dtype == "float32"
    float_layer = QuantConv2D(
        4,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    float_layer.build(x.shape)
    float_layer.set_weights(layer.get_weights())
    # Sums of +-1 products and a float16 bias: equal up to the bias's rounding.
    np.testing.assert_allclose(y.numpy().astype("float32"), float_layer(x).numpy(), atol=1e-3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(layer(x), "float32") ** 2)
    grad = tape.gradient(loss, layer.kernel)
    assert grad.dtype == "float32" and float(tf.reduce_max(tf.abs(grad))) > 0
