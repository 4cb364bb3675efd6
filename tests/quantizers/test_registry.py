"""Config round trips, Keras serialization, `get` / `serialize` / `deserialize`, precision."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import quantizers

# Every class, built with non-default arguments, and those arguments.
NON_DEFAULT = [
    (quantizers.SteSign, {"clip_value": 0.5}),
    (quantizers.SteSign, {"clip_value": None}),
    (quantizers.ApproxSign, {}),
    (quantizers.ScaledSign, {"axis": -2}),
    (quantizers.ScaledSign, {"axis": (-2, -1)}),
    (quantizers.StochasticSign, {"seed": 7}),
    (quantizers.SteTern, {"threshold": 0.3, "scaled": False, "clip_value": 2.0}),
    (quantizers.SteTern, {"threshold": 0.0, "clip_value": None}),
    (quantizers.StochasticTern, {"seed": 3}),
    (quantizers.DoReFa, {"bits": 3, "mode": "weights"}),
    (quantizers.DoReFa, {"bits": 24}),
    (quantizers.DoReFaGradient, {"bits": 4, "seed": 11}),
    (
        quantizers.FixedPoint,
        {
            "integer_bits": 3,
            "fractional_bits": 5,
            "rounding": "stochastic",
            "signed": False,
            "seed": 2,
        },
    ),
    (quantizers.FixedPoint, {"integer_bits": 6, "fractional_bits": 0}),
    (quantizers.Uniform, {"levels": 15, "stochastic": True, "seed": 1}),
    (quantizers.SymmetricUniform, {"bits": 5}),
    (quantizers.PowerOfTwo, {"bits": 3}),
    (quantizers.NoOp, {"precision": 16}),
    (quantizers.MultiBinary, {"bases": 5, "axis": -1}),
    (quantizers.MultiBinary, {"bases": 2, "axis": (-2, -1)}),
    (quantizers.ResidualSign, {"bases": 4, "refined": False, "axis": None}),
    (quantizers.QuantizedTanh, {"bits": 3, "symmetric": True, "use_real_tanh": True}),
    (quantizers.QuantizedSigmoid, {"bits": 2, "symmetric": True, "use_real_sigmoid": True}),
]
IDS = [f"{cls.__name__}-{i}" for i, (cls, _) in enumerate(NON_DEFAULT)]

ALL_CLASSES = [
    quantizers.SteSign,
    quantizers.ApproxSign,
    quantizers.ScaledSign,
    quantizers.StochasticSign,
    quantizers.SteTern,
    quantizers.StochasticTern,
    quantizers.DoReFa,
    quantizers.DoReFaGradient,
    quantizers.FixedPoint,
    quantizers.Uniform,
    quantizers.SymmetricUniform,
    quantizers.PowerOfTwo,
    quantizers.NoOp,
    quantizers.MultiBinary,
    quantizers.ResidualSign,
    quantizers.QuantizedTanh,
    quantizers.QuantizedSigmoid,
]


def normalized(value):
    return list(value) if isinstance(value, tuple) else value


def outputs(quantizer):
    """Forward values and gradient on a fixed tensor, to compare two quantizers."""
    x = tf.constant(np.linspace(-1.5, 1.5, 24, dtype=np.float32).reshape(4, 6))
    dy = tf.constant(np.linspace(0.5, 2.0, 24, dtype=np.float32).reshape(4, 6))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x)
    return y.numpy(), tape.gradient(y, x, output_gradients=dy).numpy()


def assert_same_quantizer(restored, cls, kwargs):
    assert type(restored) is cls
    config = restored.get_config()
    for name, value in kwargs.items():
        assert normalized(config[name]) == normalized(value), name
    # Same behaviour (stochastic ones: same seed, fresh generator state).
    for a, b in zip(outputs(restored), outputs(cls(**kwargs))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls, kwargs", NON_DEFAULT, ids=IDS)
def test_get_config_from_config_round_trip(cls, kwargs):
    quantizer = cls(**kwargs)
    config = quantizer.get_config()
    json.dumps(config)  # plain JSON types only
    restored = cls.from_config(config)
    assert restored.get_config() == config
    assert restored == quantizer
    assert_same_quantizer(restored, cls, kwargs)


@pytest.mark.parametrize("cls, kwargs", NON_DEFAULT, ids=IDS)
def test_quantizers_serialize_deserialize(cls, kwargs):
    quantizer = cls(**kwargs)
    serialized = quantizers.serialize(quantizer)
    # Through JSON, as in a saved model's config.
    restored = quantizers.deserialize(json.loads(json.dumps(serialized)))
    assert restored.get_config() == quantizer.get_config()
    assert_same_quantizer(restored, cls, kwargs)
    assert quantizers.get(serialized).get_config() == quantizer.get_config()


@pytest.mark.parametrize("cls, kwargs", NON_DEFAULT, ids=IDS)
def test_keras_serialize_keras_object(cls, kwargs):
    quantizer = cls(**kwargs)
    serialized = keras.saving.serialize_keras_object(quantizer)
    assert serialized["registered_name"] == f"tfqnn>{cls.__name__}"
    assert serialized["class_name"] == cls.__name__
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert restored.get_config() == quantizer.get_config()
    assert_same_quantizer(restored, cls, kwargs)
    assert keras.saving.get_registered_object(f"tfqnn>{cls.__name__}") is cls


def test_serialize_none():
    assert quantizers.serialize(None) is None


# Alias -> class, the defaults it must get, and its precision.
ALIASES = [
    ("ste_sign", quantizers.SteSign, {"clip_value": 1.0}, 1),
    ("approx_sign", quantizers.ApproxSign, {}, 1),
    ("scaled_sign", quantizers.ScaledSign, {"axis": -1}, 1),
    ("stochastic_sign", quantizers.StochasticSign, {"seed": None}, 1),
    ("ste_tern", quantizers.SteTern, {"threshold": None, "scaled": True, "clip_value": 1.0}, 2),
    ("stochastic_tern", quantizers.StochasticTern, {"seed": None}, 2),
    ("dorefa", quantizers.DoReFa, {"bits": 2, "mode": "activations"}, 2),
    ("dorefa_gradient", quantizers.DoReFaGradient, {"bits": 8, "seed": None}, 8),
    (
        "fixed_point",
        quantizers.FixedPoint,
        {"integer_bits": 4, "fractional_bits": 4, "rounding": "nearest", "signed": True},
        8,
    ),
    ("uniform", quantizers.Uniform, {"levels": 255, "stochastic": False}, 8),
    ("symmetric_uniform", quantizers.SymmetricUniform, {"bits": 2}, 2),
    ("power_of_two", quantizers.PowerOfTwo, {"bits": 4}, 4),
    ("noop", quantizers.NoOp, {"precision": 32}, 32),
    ("swish_sign", quantizers.SwishSign, {"beta": 5.0}, 1),
    ("magnitude_aware_sign", quantizers.MagnitudeAwareSign, {"clip_value": 1.0}, 1),
    ("ste_heaviside", quantizers.SteHeaviside, {"clip_value": 1.0}, 1),
    ("dorefa_weights", quantizers.DoReFaWeights, {"bits": 2}, 2),
    (
        "quantized_bits",
        quantizers.QuantizedBits,
        {"bits": 8, "integer": 0, "symmetric": False, "keep_negative": True, "alpha": None},
        8,
    ),
    ("quantized_relu", quantizers.QuantizedRelu, {"bits": 8, "integer": 0}, 8),
    ("quantized_po2", quantizers.QuantizedPo2, {"bits": 8, "max_value": None}, 8),
    ("quantized_binary", quantizers.QuantizedBinary, {"alpha": "auto_po2"}, 1),
    ("quantized_ternary", quantizers.QuantizedTernary, {"alpha": "auto_po2"}, 2),
    ("multi_binary", quantizers.MultiBinary, {"bases": 3, "axis": None}, 3),
    ("residual_sign", quantizers.ResidualSign, {"bases": 3, "refined": True, "axis": -1}, 3),
    (
        "quantized_tanh",
        quantizers.QuantizedTanh,
        {"bits": 8, "symmetric": False, "use_real_tanh": False},
        8,
    ),
    (
        "quantized_sigmoid",
        quantizers.QuantizedSigmoid,
        {"bits": 8, "symmetric": False, "use_real_sigmoid": False},
        8,
    ),
]


@pytest.mark.parametrize("alias, cls, defaults, precision", ALIASES, ids=[a[0] for a in ALIASES])
def test_get_alias_builds_class_with_defaults(alias, cls, defaults, precision):
    quantizer = quantizers.get(alias)
    assert type(quantizer) is cls
    config = quantizer.get_config()
    for name, value in defaults.items():
        assert config[name] == value, name
    assert quantizer.precision == precision
    assert quantizer == cls()
    # A fresh instance each time (stochastic ones own their generator).
    assert quantizers.get(alias) is not quantizer
    # deserialize understands aliases and class names too.
    assert type(quantizers.deserialize(alias)) is cls
    assert type(quantizers.deserialize(cls.__name__)) is cls


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_get_class_name(cls):
    quantizer = quantizers.get(cls.__name__)
    assert type(quantizer) is cls
    assert quantizer.get_config() == cls().get_config()


def test_get_none_instance_and_dicts():
    assert quantizers.get(None) is None
    quantizer = quantizers.DoReFa(bits=5, mode="weights")
    assert quantizers.get(quantizer) is quantizer
    short = quantizers.get({"class_name": "DoReFa", "config": {"bits": 5, "mode": "weights"}})
    assert type(short) is quantizers.DoReFa and short == quantizer
    full = quantizers.get(quantizers.serialize(quantizer))
    assert type(full) is quantizers.DoReFa and full == quantizer and full is not quantizer


@pytest.mark.parametrize(
    "identifier",
    ["not_a_quantizer", "Ste_Sign", "", "sign", 3, 1.5, ["ste_sign"], tf.sign],
    ids=repr,
)
def test_get_rejects_unknown_identifiers(identifier):
    with pytest.raises(ValueError, match="identifier"):
        quantizers.get(identifier)


def test_get_unknown_alias_message_names_it_and_the_aliases():
    with pytest.raises(ValueError, match="not_a_quantizer") as info:
        quantizers.get("not_a_quantizer")
    assert "ste_sign" in str(info.value) and "power_of_two" in str(info.value)


@pytest.mark.parametrize(
    "config",
    [
        {"class_name": "NotAQuantizer", "config": {}},
        {"class_name": "DoReFa", "config": {"bits": 40}},
        keras.saving.serialize_keras_object(keras.constraints.NonNeg()),
    ],
    ids=["unknown class", "bad argument", "not a quantizer"],
)
def test_get_rejects_bad_dicts(config):
    with pytest.raises(ValueError):
        quantizers.get(config)


@pytest.mark.parametrize(
    "quantizer, precision",
    [
        (quantizers.SteSign(clip_value=None), 1),
        (quantizers.ScaledSign(axis=(0, 1)), 1),
        (quantizers.SteTern(scaled=False), 2),
        (quantizers.DoReFa(bits=1), 1),
        (quantizers.DoReFa(bits=32), 32),
        (quantizers.DoReFa(bits=16, mode="weights"), 16),
        (quantizers.DoReFaGradient(bits=3), 3),
        (quantizers.FixedPoint(integer_bits=3, fractional_bits=5), 8),
        (quantizers.FixedPoint(integer_bits=0, fractional_bits=7, signed=False), 7),
        (quantizers.FixedPoint(integer_bits=1, fractional_bits=15), 16),
        (quantizers.Uniform(levels=1), 1),
        (quantizers.Uniform(levels=3), 2),
        (quantizers.Uniform(levels=4), 3),
        (quantizers.Uniform(levels=256), 9),
        (quantizers.SymmetricUniform(bits=8), 8),
        (quantizers.PowerOfTwo(bits=2), 2),
        (quantizers.NoOp(precision=8), 8),
        (quantizers.NoOp(), 32),
        (quantizers.MultiBinary(bases=5), 5),
        (quantizers.ResidualSign(bases=1), 1),
    ],
    ids=repr,
)
def test_precision(quantizer, precision):
    assert quantizer.precision == precision
    # It survives a round trip.
    assert quantizers.deserialize(quantizers.serialize(quantizer)).precision == precision


def test_package_exports():
    assert tfqnn.quantizers is quantizers
    for cls in ALL_CLASSES:
        assert getattr(quantizers, cls.__name__) is cls
    assert issubclass(quantizers.StochasticSign, quantizers.StochasticQuantizer)
    assert issubclass(quantizers.StochasticQuantizer, quantizers.Quantizer)
