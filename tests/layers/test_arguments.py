"""The layers' constructor arguments: signatures that state them, configs that
round-trip, and invalid quantizers, pad_values and constraint aliases that
raise ValueError."""

import inspect
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
    QuantizerMixin,
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


# Each layer's own arguments: keyword-only, with their defaults.
OWN_ARGUMENTS = {
    QuantDense: {"input_quantizer": None, "kernel_quantizer": None, "bias_quantizer": None},
    QuantConv1D: {
        "input_quantizer": None,
        "kernel_quantizer": None,
        "bias_quantizer": None,
        "pad_values": 0.0,
    },
    QuantConv2D: {
        "input_quantizer": None,
        "kernel_quantizer": None,
        "bias_quantizer": None,
        "pad_values": 0.0,
    },
    QuantDepthwiseConv2D: {
        "input_quantizer": None,
        "depthwise_quantizer": None,
        "bias_quantizer": None,
        "pad_values": 0.0,
    },
    QuantSeparableConv2D: {
        "input_quantizer": None,
        "depthwise_quantizer": None,
        "pointwise_quantizer": None,
        "bias_quantizer": None,
        "pad_values": 0.0,
    },
    QuantConv2DTranspose: {
        "input_quantizer": None,
        "kernel_quantizer": None,
        "bias_quantizer": None,
    },
}


def _keras_parent(layer_class):
    return next(c for c in layer_class.__mro__ if c.__module__.startswith("keras."))


@pytest.mark.parametrize("layer_class", list(OWN_ARGUMENTS), ids=lambda cls: cls.__name__)
def test_signature_states_every_argument(layer_class):
    """help() and IDEs see the Keras arguments in Keras's order with Keras's
    defaults, then the layer's quantizers and pad_values, keyword-only."""
    params = list(inspect.signature(layer_class).parameters.values())
    parent_params = [
        p
        for p in inspect.signature(_keras_parent(layer_class)).parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    restated = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [(p.name, p.default) for p in restated] == [
        (p.name, p.default) for p in parent_params[: len(restated)]
    ]
    # Every Keras argument up to the bias constraint; later ones (Dense's LoRA
    # and quantization settings, which vary across Keras versions) go through
    # **kwargs.
    assert restated[-1].name == "bias_constraint"
    own = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
    assert own == OWN_ARGUMENTS[layer_class]
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD
    # Each kernel quantizer has its constraint among the restated arguments.
    kernels = [name for name in own if name not in ("input_quantizer", "pad_values")]
    constraints = {name.replace("_quantizer", "_constraint") for name in kernels}
    assert constraints <= {p.name for p in restated}


class _Stop(Exception):
    pass


@pytest.mark.parametrize("layer_class", list(OWN_ARGUMENTS), ids=lambda cls: cls.__name__)
def test_restated_arguments_reach_the_keras_layer(layer_class, monkeypatch):
    """Every restated argument arrives at the Keras parent as given (a kernel
    constraint "weight_clip" as a WeightClip), with **kwargs and nothing else."""
    received = {}

    def recording_init(self, **kwargs):
        received.update(kwargs)
        raise _Stop

    monkeypatch.setattr(_keras_parent(layer_class), "__init__", recording_init)
    restated = [
        p.name
        for p in inspect.signature(layer_class).parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    kernel_constraints = {
        name.replace("_quantizer", "_constraint")
        for name in OWN_ARGUMENTS[layer_class]
        if name not in ("input_quantizer", "pad_values")
    }
    given = {name: object() for name in restated}
    given.update(dict.fromkeys(kernel_constraints, "weight_clip"))
    with pytest.raises(_Stop):
        layer_class(**given, name="probe")
    assert set(received) == set(given) | {"name"}
    for name in restated:
        if name in kernel_constraints:
            assert isinstance(received[name], tfqnn.constraints.WeightClip), name
        else:
            assert received[name] is given[name], name
    assert received["name"] == "probe"


def test_mixin_checks_the_kernel_quantizers_a_layer_passes():
    class Mismatched(QuantizerMixin, keras.layers.Dense):
        def __init__(self, units, **kwargs):
            super().__init__(
                units=units,
                input_quantizer=None,
                kernel_quantizers={"depthwise_quantizer": None},
                **kwargs,
            )

    with pytest.raises(TypeError, match="kernel_quantizer"):
        Mismatched(2)
