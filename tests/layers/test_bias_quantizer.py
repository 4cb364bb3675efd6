"""``bias_quantizer`` of the feed-forward layers: the bias is quantized before it is added.

The expected outputs are the layer's float output without the bias plus the
bias quantized by the quantizer's formula in numpy; the float convolutions
themselves are checked against loop references in the other layer tests.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn.layers import (
    QuantConv1D,
    QuantConv2D,
    QuantConv2DTranspose,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantSeparableConv2D,
)
from tfqnn.quantizers import FixedPoint, QuantizedBits

from .factories import f32

# Biases on both sides of the quantizers' ranges, and between their levels.
BIAS_VALUES = np.array([-3.0, -1.3, -0.2, 0.05, 0.4, 1.9, 2.5, 0.74])


def fixed_point_2_2(b):
    """FixedPoint(2, 2): multiples of 1/4, saturated to [-2, 2 - 1/4]."""
    return np.clip(np.round(b * 4.0) / 4.0, -2.0, 1.75)


def quantized_bits_4_1(b):
    """QKeras quantized_bits(4, 1): 2 clip(round(b 8 / 2), -8, 7) / 8."""
    return 2.0 * np.clip(np.round(b * 8.0 / 2.0), -8.0, 7.0) / 8.0


# kind -> (factory taking extra arguments, input shape, channels).
LAYERS = {
    "dense": (lambda **kw: QuantDense(5, **kw), (3, 4), 5),
    "conv1d": (lambda **kw: QuantConv1D(6, 3, padding="causal", **kw), (2, 7, 3), 6),
    "conv2d": (lambda **kw: QuantConv2D(4, 3, padding="same", **kw), (2, 5, 5, 2), 4),
    "depthwise": (lambda **kw: QuantDepthwiseConv2D(3, depth_multiplier=2, **kw), (2, 5, 5, 3), 6),
    "separable": (lambda **kw: QuantSeparableConv2D(7, 3, **kw), (2, 5, 5, 2), 7),
    "transpose": (lambda **kw: QuantConv2DTranspose(8, 3, strides=2, **kw), (2, 3, 3, 2), 8),
}
QUANTIZERS = [
    (lambda: FixedPoint(2, 2), fixed_point_2_2),
    (lambda: QuantizedBits(4, 1), quantized_bits_4_1),
]


def bias_values(channels):
    return f32(np.resize(BIAS_VALUES, channels))


def paired(kind, quantizer, rng, activation=None, **extra):
    """The layer with ``quantizer`` on its bias, and a twin without bias nor activation."""
    factory, shape, channels = LAYERS[kind]
    quantized = factory(bias_quantizer=quantizer, activation=activation, **extra)
    plain = factory(use_bias=False, **extra)
    quantized.build(shape)
    plain.build(shape)
    kernels = [w for w in quantized.get_weights() if w.ndim > 1]
    for weight, value in zip(plain.weights, kernels):
        weight.assign(value)
    quantized.bias.assign(bias_values(channels))
    return quantized, plain, f32(rng.normal(size=shape))


@pytest.mark.parametrize("make, reference", QUANTIZERS, ids=["fixed_point", "quantized_bits"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_output_adds_the_quantized_bias(kind, make, reference, rng):
    layer, plain, x = paired(kind, make(), rng, input_quantizer="ste_sign", activation="relu")
    channels = LAYERS[kind][2]
    expected = np.maximum(plain(x).numpy() + reference(bias_values(channels)), 0.0)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(
        layer.quantized_bias(training=False).numpy(), reference(bias_values(channels))
    )


@pytest.mark.parametrize("kind", list(LAYERS))
def test_bias_gradient_is_the_quantizers_estimator(kind, rng):
    """d sum(y) / d b = (outputs per channel) * 1[b inside FixedPoint's range]."""
    layer, plain, x = paired(kind, FixedPoint(2, 2), rng)
    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, layer.bias).numpy()
    per_channel = np.prod(y.shape) / y.shape[-1]
    b = bias_values(LAYERS[kind][2])
    inside = (b >= -2.0) & (b <= 1.75)
    np.testing.assert_allclose(grad, per_channel * inside)
    assert 0 < inside.sum() < len(b)  # both cases occur


def test_channels_first_bias_lies_on_the_channels(rng):
    layer = QuantConv2D(3, 1, data_format="channels_first", bias_quantizer=FixedPoint(2, 2))
    layer.build((1, 2, 3, 3))
    layer.bias.assign(f32([0.3, -2.6, 1.1]))
    layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
    y = layer(f32(rng.normal(size=(1, 2, 3, 3)))).numpy()
    np.testing.assert_array_equal(y[0, :, 0, 0], [0.25, -2.0, 1.0])


def test_without_a_bias_quantizer_the_bias_is_added_as_it_is(rng):
    layer = QuantDense(3)
    layer.build((2, 4))
    layer.bias.assign(f32([0.123, -4.5, 7.0]))
    assert layer.quantizers["bias_quantizer"] is None
    np.testing.assert_array_equal(layer.quantized_bias().numpy(), f32([0.123, -4.5, 7.0]))
    x = f32(rng.normal(size=(2, 4)))
    expected = x @ layer.kernel.numpy() + f32([0.123, -4.5, 7.0])
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_use_bias_false_ignores_the_bias_quantizer(rng):
    layer = QuantDense(3, use_bias=False, bias_quantizer="quantized_bits")
    layer.build((2, 4))
    assert layer.bias is None and layer.quantized_bias() is None
    assert len(layer.weights) == 1
    x = f32(rng.normal(size=(2, 4)))
    np.testing.assert_allclose(layer(x).numpy(), x @ layer.kernel.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_config_round_trip_keeps_the_bias_quantizer(kind, rng):
    layer, _, x = paired(kind, QuantizedBits(4, 1), rng)
    config = layer.get_config()
    assert config["bias_quantizer"]["class_name"] == "QuantizedBits"
    clone = type(layer).from_config(json.loads(json.dumps(config)))
    assert clone.bias_quantizer == QuantizedBits(4, 1)
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())
    assert type(layer).from_config({**config, "bias_quantizer": None}).bias_quantizer is None


def test_a_config_without_bias_quantizer_loads_with_a_float_bias():
    """Files written before ``bias_quantizer`` existed have no such entry."""
    config = QuantDense(3, kernel_quantizer="ste_sign").get_config()
    del config["bias_quantizer"]
    assert QuantDense.from_config(config).bias_quantizer is None


def test_invalid_bias_quantizer_raises():
    with pytest.raises(ValueError, match="quantizer"):
        QuantDense(3, bias_quantizer="quantised_bits")


def model_with_bias_quantizers():
    inputs = keras.Input((6, 6, 2))
    x = QuantConv2D(4, 3, bias_quantizer=FixedPoint(3, 3), name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = QuantDense(3, bias_quantizer=QuantizedBits(4, 1), name="dense")(x)
    return keras.Model(inputs, outputs)


def test_keras_file_round_trip_and_fit(tmp_path, rng):
    model = model_with_bias_quantizers()
    x = f32(rng.normal(size=(16, 6, 6, 2)))
    y = f32(rng.normal(size=(16, 3)))
    before = model.get_layer("dense").bias.numpy().copy()
    model.compile(keras.optimizers.SGD(0.05), "mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after = model.get_layer("dense").bias.numpy()
    assert not np.array_equal(before, after)  # the latent bias trains
    path = str(tmp_path / "bias.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("dense").bias_quantizer == QuantizedBits(4, 1)
    assert loaded.get_layer("conv").bias_quantizer == FixedPoint(3, 3)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_summary_counts_the_bias_at_its_bits():
    model = model_with_bias_quantizers()
    rows = {row.name: row for row in tfqnn.summary(model, print_fn=None).layers}
    # 4 biases at FixedPoint(3, 3)'s 6 bits and the float kernel.
    assert rows["conv"].params == {6: 4, 32: 3 * 3 * 2 * 4}
    assert rows["dense"].params == {4: 3, 32: 64 * 3}
    # The bias is no kernel: weight bits stay those of the (float) kernels.
    assert rows["conv"].weight_bits is None and rows["dense"].weight_bits is None
