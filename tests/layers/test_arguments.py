"""The layers' constructor arguments: configs that round-trip, and invalid
quantizers, pad_values and constraint aliases that raise ValueError."""

import json

import keras
import numpy as np
import pytest

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

from .factories import binary_layer, built, f32

CONFIG_FACTORIES = {
    "dense": lambda: QuantDense(
        4,
        input_quantizer=DoReFa(3),
        kernel_quantizer=DoReFa(2, mode="weights"),
        activation="relu",
        name="qd",
    ),
    "dense-binary": lambda: binary_layer("dense", name="qdb"),
    "conv1d": lambda: binary_layer("conv1d"),
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
    "depthwise": lambda: binary_layer("depthwise"),
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
    built(layer, shape, rng)
    clone.build(shape)
    clone.set_weights(layer.get_weights())
    x = f32(rng.normal(size=shape))
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


def test_invalid_constraint_alias_raises():
    with pytest.raises(ValueError):
        QuantDense(3, kernel_quantizer="ste_sign", kernel_constraint="weight_clp")
    with pytest.raises(ValueError):
        tfqnn.constraints.WeightClip(0.0)
