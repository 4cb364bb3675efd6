"""What every quantizer shares: dtypes, Keras Variables, tf.function, the StochasticQuantizer
contract; hard_tanh, WeightClip."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import quantizers

X = np.array([[-1.7, -1.0, -0.6, -0.25, 0.0], [0.125, 0.3, 0.5, 1.0, 2.2]], np.float32)

ALL_QUANTIZERS = [
    lambda: quantizers.SteSign(),
    lambda: quantizers.ApproxSign(),
    lambda: quantizers.ScaledSign(),
    lambda: quantizers.StochasticSign(seed=1),
    lambda: quantizers.SteTern(),
    lambda: quantizers.StochasticTern(seed=2),
    lambda: quantizers.DoReFa(bits=2),
    lambda: quantizers.DoReFa(bits=3, mode="weights"),
    lambda: quantizers.DoReFaGradient(bits=4, seed=3),
    lambda: quantizers.FixedPoint(2, 3),
    lambda: quantizers.FixedPoint(2, 3, rounding="stochastic", seed=4),
    lambda: quantizers.Uniform(levels=7),
    lambda: quantizers.Uniform(levels=7, stochastic=True, seed=5),
    lambda: quantizers.SymmetricUniform(bits=3),
    lambda: quantizers.PowerOfTwo(bits=3),
    lambda: quantizers.NoOp(),
    lambda: quantizers.SwishSign(),
    lambda: quantizers.MagnitudeAwareSign(),
    lambda: quantizers.SteHeaviside(),
    lambda: quantizers.DoReFaWeights(bits=3),
    lambda: quantizers.QuantizedBits(4, 1),
    lambda: quantizers.QuantizedBits(4, 0, alpha="auto"),
    lambda: quantizers.QuantizedBits(4, 0, alpha="auto_po2"),
    lambda: quantizers.QuantizedRelu(3, 1),
    lambda: quantizers.QuantizedPo2(4),
    lambda: quantizers.QuantizedBinary(),
    lambda: quantizers.QuantizedTernary("auto"),
    lambda: quantizers.MultiBinary(bases=3),
    lambda: quantizers.MultiBinary(bases=2, axis=-1),
    lambda: quantizers.ResidualSign(bases=3),
    lambda: quantizers.ResidualSign(bases=2, refined=False, axis=None),
    lambda: quantizers.Logarithmic(bits=3, max_exponent=1.0),
]
IDS = [repr(factory()) for factory in ALL_QUANTIZERS]


def upstream(x):
    """A non-uniform upstream gradient shaped like ``x`` (dynamic shapes too)."""
    return tf.reshape(tf.cast(tf.range(tf.size(x)) % 7, x.dtype) * 0.25 + 0.5, tf.shape(x))


def run(quantizer, x, training=None):
    dy = upstream(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x, training=training)
    return y, tape.gradient(y, x, output_gradients=dy)


@pytest.mark.parametrize("factory", ALL_QUANTIZERS, ids=IDS)
@pytest.mark.parametrize("training", [None, True, False])
def test_tf_function_matches_eager(factory, training):
    """Same seed, one run eager and one in a graph: same values and gradients."""
    eager, graph = factory(), factory()
    step = tf.function(lambda x: run(graph, x, training))
    x = tf.constant(X)
    for _ in range(2):  # the second call also checks that the generators advance alike
        y_eager, g_eager = run(eager, x, training)
        y_graph, g_graph = step(x)
        np.testing.assert_allclose(y_graph.numpy(), y_eager.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(g_graph.numpy(), g_eager.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("factory", ALL_QUANTIZERS, ids=IDS)
def test_keras_variable_input(factory):
    """A keras.Variable passed directly: same values and gradient as a tensor."""
    variable = keras.Variable(X)
    from_variable, from_tensor = factory(), factory()  # same seeds
    with tf.GradientTape() as tape:
        y = from_variable(variable)
    grad = tape.gradient(y, variable, output_gradients=upstream(tf.constant(X)))
    assert grad is not None
    y_ref, g_ref = run(from_tensor, tf.constant(X))
    np.testing.assert_array_equal(y.numpy(), y_ref.numpy())
    np.testing.assert_array_equal(tf.convert_to_tensor(grad).numpy(), g_ref.numpy())


@pytest.mark.parametrize(
    "factory, reference",
    [
        (lambda: quantizers.SteSign(), lambda x: np.where(x >= 0, 1.0, -1.0)),
        (
            lambda: quantizers.SteTern(threshold=0.4, scaled=False),
            lambda x: np.sign(x) * (np.abs(x) > 0.4),
        ),
        (lambda: quantizers.DoReFa(bits=2), lambda x: np.round(np.clip(x, 0, 1) * 3) / 3),
        (lambda: quantizers.FixedPoint(2, 2), lambda x: np.clip(np.round(x * 4) / 4, -2, 1.75)),
        (
            lambda: quantizers.SymmetricUniform(bits=3),
            lambda x: np.clip(np.round(x * 4) / 4, -0.75, 0.75),
        ),
        (lambda: quantizers.NoOp(precision=16), lambda x: x),
    ],
    ids=["SteSign", "SteTern", "DoReFa", "FixedPoint", "SymmetricUniform", "NoOp"],
)
def test_float16_keeps_dtype(factory, reference):
    x16 = X.astype(np.float16)
    y, grad = run(factory(), tf.constant(x16))
    assert y.dtype == tf.float16 and grad.dtype == tf.float16
    expected = reference(x16.astype(np.float64)).astype(np.float16)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: quantizers.StochasticSign(seed=0),
        lambda: quantizers.ScaledSign(),
        lambda: quantizers.PowerOfTwo(bits=3),
        lambda: quantizers.DoReFa(bits=2, mode="weights"),
        lambda: quantizers.Uniform(levels=3, stochastic=True, seed=0),
        lambda: quantizers.MultiBinary(bases=3),
        lambda: quantizers.ResidualSign(bases=3),
    ],
    ids=[
        "StochasticSign",
        "ScaledSign",
        "PowerOfTwo",
        "DoReFa-weights",
        "Uniform",
        "MultiBinary",
        "ResidualSign",
    ],
)
def test_float16_keeps_dtype_of_statistics_and_sampling_quantizers(factory):
    y, grad = run(factory(), tf.constant(X.astype(np.float16)))
    assert y.dtype == tf.float16 and grad.dtype == tf.float16
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(grad.numpy()))


def test_float16_power_of_two_values():
    x = np.array([1.0, -0.8, 0.75, 0.74, 0.26, 0.2, 0.0], np.float16)
    y = quantizers.PowerOfTwo(bits=3)(tf.constant(x))
    assert y.dtype == tf.float16
    np.testing.assert_array_equal(y.numpy(), np.float16([1.0, -1.0, 1.0, 0.5, 0.5, 0.0, 0.0]))


def test_python_list_input():
    y = quantizers.SteSign()([-0.5, 0.0, 2.0])
    np.testing.assert_array_equal(y.numpy(), [-1.0, 1.0, 1.0])


# --------------------------------------------------------------------------- hard_tanh


def test_hard_tanh():
    x = np.array([-3.0, -1.0, -0.999, -0.2, 0.0, 0.5, 1.0, 1.001, 7.0], np.float32)
    y = tfqnn.activations.hard_tanh(tf.constant(x))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), np.clip(x, -1.0, 1.0))


# --------------------------------------------------------------------------- WeightClip


@pytest.mark.parametrize("clip_value", [1.0, 0.25, 3])
def test_weight_clip(clip_value):
    w = np.array([[-5.0, -1.0, -0.3], [0.0, 0.25, 4.0]], np.float32)
    constraint = tfqnn.constraints.WeightClip(clip_value=clip_value)
    clipped = keras.ops.convert_to_numpy(constraint(keras.Variable(w)))
    np.testing.assert_array_equal(clipped, np.clip(w, -clip_value, clip_value))


def test_weight_clip_default_and_round_trips():
    assert tfqnn.constraints.WeightClip().clip_value == 1.0
    constraint = tfqnn.constraints.WeightClip(clip_value=0.5)
    config = constraint.get_config()
    assert config["clip_value"] == 0.5
    assert tfqnn.constraints.WeightClip.from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(constraint)
    assert serialized["registered_name"] == "tfqnn>WeightClip"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert isinstance(restored, tfqnn.constraints.WeightClip)
    assert restored.clip_value == 0.5
    via_keras = keras.constraints.get(serialized)
    assert isinstance(via_keras, tfqnn.constraints.WeightClip) and via_keras.clip_value == 0.5


def test_constraints_get():
    constraint = tfqnn.constraints.get("weight_clip")
    assert isinstance(constraint, tfqnn.constraints.WeightClip)
    assert constraint.clip_value == 1.0
    assert isinstance(tfqnn.constraints.get("non_neg"), keras.constraints.NonNeg)
    assert tfqnn.constraints.get(None) is None


@pytest.mark.parametrize("factory", ALL_QUANTIZERS, ids=IDS)
def test_tf_function_with_unknown_batch_size(factory):
    """In a graph traced for any batch size (as Keras layers are), values and gradients hold."""
    eager, graph = factory(), factory()

    @tf.function(input_signature=[tf.TensorSpec([None, X.shape[1]], tf.float32)])
    def step(x):
        return run(graph, x, None)

    for rows in (X, np.concatenate([X, -X, 0.5 * X])):
        y_graph, g_graph = step(tf.constant(rows))
        y_eager, g_eager = run(eager, tf.constant(rows))
        assert y_graph.shape == rows.shape and g_graph.shape == rows.shape
        np.testing.assert_allclose(y_graph.numpy(), y_eager.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(g_graph.numpy(), g_eager.numpy(), rtol=1e-6, atol=1e-7)


class _Marked(quantizers.StochasticQuantizer):
    """Returns 1 from `sample` and 0 from `round_nearest`, to see which ran."""

    def sample(self, x):
        return tf.ones_like(x)

    def round_nearest(self, x):
        return tf.zeros_like(x)


@pytest.mark.parametrize("training,expected", [(None, 1.0), (True, 1.0), (False, 0.0)])
def test_stochastic_quantizer_samples_except_at_inference(training, expected):
    y = _Marked()(np.array([0.3, -0.2], np.float32), training=training)
    np.testing.assert_array_equal(y.numpy(), [expected, expected])


def test_stochastic_quantizer_subclass_must_implement_both_roundings():
    bare = quantizers.StochasticQuantizer()
    with pytest.raises(NotImplementedError, match="sample"):
        bare([1.0], training=True)
    with pytest.raises(NotImplementedError, match="round_nearest"):
        bare([1.0], training=False)


def test_uniform_stochastic_flag_keeps_its_name_and_config_key():
    quantizer = quantizers.Uniform(levels=3, stochastic=True, seed=1)
    assert quantizer.stochastic is True
    assert quantizer.get_config() == {"levels": 3, "stochastic": True, "seed": 1}
    assert quantizers.Uniform.from_config(quantizer.get_config()) == quantizer
    assert quantizers.Uniform().stochastic is False
