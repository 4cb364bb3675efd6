"""What the layer tests share: every quantized layer with all of its kernels
binary, the input shapes and kernel attributes of each, the quantizer pairs
that the forward tests run with their numpy counterparts, and small helpers.

The numpy references themselves are the ``ref`` fixture (conftest.py).
"""

import numpy as np
import pytest
import tensorflow as tf

from tfqnn.layers import (
    QuantConv1D,
    QuantConv2D,
    QuantConv2DTranspose,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantSeparableConv2D,
)
from tfqnn.quantizers import DoReFa

ATOL = 1e-4


def f32(a):
    return np.asarray(a, dtype=np.float32)


def weight_clip_warnings(record):
    return [w for w in record if "weight_clip" in str(w.message)]


# Binary inputs, and a binary kernel clipped as the STE wants it.
BINARY_INPUT = {"input_quantizer": "ste_sign"}
BINARY_KERNEL = {**BINARY_INPUT, "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip"}
# "same" padding with +1, the value binary inputs pad with.
PAD_ONES = {"padding": "same", "pad_values": 1.0}


def binary_layer(kind, **extra):
    if kind == "dense":
        return QuantDense(3, **BINARY_KERNEL, **extra)
    if kind == "conv1d":
        return QuantConv1D(3, 3, padding="causal", pad_values=1.0, **BINARY_KERNEL, **extra)
    if kind == "conv2d":
        return QuantConv2D(3, 3, **PAD_ONES, **BINARY_KERNEL, **extra)
    if kind == "depthwise":
        return QuantDepthwiseConv2D(
            3,
            depth_multiplier=2,
            **PAD_ONES,
            **BINARY_INPUT,
            depthwise_quantizer="ste_sign",
            depthwise_constraint="weight_clip",
            **extra,
        )
    if kind == "separable":
        return QuantSeparableConv2D(
            3,
            3,
            **PAD_ONES,
            **BINARY_INPUT,
            depthwise_quantizer="ste_sign",
            pointwise_quantizer="ste_sign",
            depthwise_constraint="weight_clip",
            pointwise_constraint="weight_clip",
            **extra,
        )
    if kind == "transpose":
        return QuantConv2DTranspose(3, 3, strides=2, padding="same", **BINARY_KERNEL, **extra)
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


def randomize(layer, rng, scale=0.5):
    """Gives every weight random values (biases included, so that they are tested)."""
    layer.set_weights([f32(rng.uniform(-scale, scale, w.shape)) for w in layer.get_weights()])


def built(layer, shape, rng):
    layer.build(shape)
    randomize(layer, rng)
    return layer


# (input_quantizer, kernel_quantizer, numpy input fn, numpy kernel fn (kernel, channel axes))
QUANTIZER_PAIRS = {
    "binary": ("ste_sign", "ste_sign", "sign", "sign"),
    "approx_sign": ("approx_sign", "approx_sign", "sign", "sign"),
    "dorefa2": (DoReFa(2), DoReFa(2, mode="weights"), "dorefa_a2", "dorefa_w2"),
    "dorefa3": (DoReFa(3), DoReFa(3, mode="weights"), "dorefa_a3", "dorefa_w3"),
    "float_in_scaled_sign": (None, "scaled_sign", "identity", "scaled_sign"),
    "sign_in_ternary": ("ste_sign", "ste_tern", "sign", "ste_tern"),
}


def np_input(ref, kind, x):
    return {
        "sign": ref.sign,
        "dorefa_a2": lambda v: ref.dorefa_activations(v, 2),
        "dorefa_a3": lambda v: ref.dorefa_activations(v, 3),
        "identity": f32,
    }[kind](x)


def np_kernel(ref, kind, w, channel_axes=(-1,)):
    return {
        "sign": ref.sign,
        "dorefa_w2": lambda v: ref.dorefa_weights(v, 2),
        "dorefa_w3": lambda v: ref.dorefa_weights(v, 3),
        "scaled_sign": lambda v: ref.scaled_sign(v, channel_axes),
        "ste_tern": ref.ste_tern,
    }[kind](w)


def channels_first_or_skip(fn):
    try:
        return fn()
    except (tf.errors.OpError, ValueError, NotImplementedError) as error:  # pragma: no cover
        pytest.skip(f"channels_first not supported here: {error}")


def nested_recurrent_model(seed=0, **cell_quantizers):
    """A model whose tfqnn cells sit in every kind of recurrent container.

    ``bidi``: a Bidirectional QuantLSTM (two cells); ``stack``: keras.layers.RNN
    of StackedRNNCells of a QuantGRUCell, a plain Keras cell and a
    QuantSimpleRNNCell; ``out``: a QuantDense. Input (batch, 5, 3), output (batch, 2).
    ``cell_quantizers`` go to every tfqnn cell.
    """
    import keras

    from tfqnn.layers import QuantGRUCell, QuantLSTM, QuantSimpleRNNCell

    keras.utils.set_random_seed(seed)
    cells = [
        QuantGRUCell(4, name="gru_cell", **cell_quantizers),
        keras.layers.SimpleRNNCell(3, name="plain_cell"),
        QuantSimpleRNNCell(3, name="simple_cell", **cell_quantizers),
    ]
    return keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.Bidirectional(
                QuantLSTM(2, return_sequences=True, name="lstm", **cell_quantizers), name="bidi"
            ),
            keras.layers.RNN(keras.layers.StackedRNNCells(cells), name="stack"),
            QuantDense(2, name="out"),
        ],
        name="nested",
    )
