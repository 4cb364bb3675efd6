"""QuantActivation: forward pass and STE, stochastic quantizers at training and
inference, its config and its one required argument."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfqnn.layers import (
    QuantActivation,
)
from tfqnn.quantizers import DoReFa, StochasticSign

from .factories import f32


def test_quant_activation_forward_and_ste(ref, rng):
    layer = QuantActivation("ste_sign")
    x = tf.constant(f32(rng.uniform(-2, 2, (4, 6))))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    np.testing.assert_array_equal(y.numpy(), ref.sign(x.numpy()))
    grad = tape.gradient(y, x).numpy()
    np.testing.assert_array_equal(grad, (np.abs(x.numpy()) <= 1.0).astype(np.float32))


def test_quant_activation_dorefa_in_a_model(ref, rng):
    inputs = keras.Input((5,))
    model = keras.Model(inputs, QuantActivation(DoReFa(2))(inputs))
    x = f32(rng.uniform(-0.5, 1.5, (8, 5)))
    np.testing.assert_allclose(model.predict(x, verbose=0), ref.dorefa_activations(x, 2), atol=1e-6)
    assert model.output_shape == (None, 5)


def test_stochastic_quantizer_random_in_training_deterministic_at_inference(ref, rng):
    layer = QuantActivation(StochasticSign(seed=3))
    x = f32(rng.uniform(-0.6, 0.6, (20, 20)))
    inference = layer(x, training=False).numpy()
    np.testing.assert_array_equal(inference, ref.sign(x))
    np.testing.assert_array_equal(layer(x, training=False).numpy(), inference)
    first = layer(x, training=True).numpy()
    second = layer(x, training=True).numpy()
    assert set(np.unique(first)) <= {-1.0, 1.0}
    assert not np.array_equal(first, ref.sign(x))
    assert not np.array_equal(first, second)


def test_quant_activation_config_round_trip(rng):
    layer = QuantActivation(DoReFa(3), name="act")
    config = layer.get_config()
    clone = QuantActivation.from_config(config)
    assert clone.get_config() == config
    assert clone.quantizer == DoReFa(3)
    x = f32(rng.uniform(-1, 2, (3, 4)))
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())


def test_quant_activation_needs_a_quantizer():
    with pytest.raises(ValueError):
        QuantActivation(None)
