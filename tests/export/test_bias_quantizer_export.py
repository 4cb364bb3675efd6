"""A quantized bias reaches the .tflite file quantized, computed once at export.

Builtin layers read ``bias_quantizer(bias)`` as a constant (no latent bias,
no rounding ops in the file); binary layers, which become tfqnn custom ops,
take it in their output transform. The expected biases come from the
quantizers' formulas in numpy.
"""

import keras
import numpy as np

import tfqnn
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.quantizers import FixedPoint, QuantizedBits

from .test_frozen_weights import builtin_ops, constants, contains

BINARY = dict(
    input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
)


def fixed_point_3_3(b):
    """FixedPoint(3, 3): multiples of 1/8 in [-4, 4 - 1/8]."""
    return np.clip(np.round(b * 8.0) / 8.0, -4.0, 4.0 - 1.0 / 8.0)


def quantized_bits_5_2(b):
    """quantized_bits(5, 2): multiples of 1/4 in [-4, 4 - 1/4]."""
    return 4.0 * np.clip(np.round(b * 16.0 / 4.0), -16.0, 15.0) / 16.0


def randomized(model, rng, scale=3.0):
    for layer in model.layers:
        for weight in layer.weights:
            weight.assign(rng.normal(0, scale if weight.name == "bias" else 1.0, weight.shape))
    return model


def test_builtin_layers_store_the_quantized_bias(rng):
    model = randomized(
        keras.Sequential(
            [
                keras.Input((6, 6, 3)),
                QuantConv2D(5, 3, bias_quantizer=FixedPoint(3, 3)),
                keras.layers.Flatten(),
                QuantDense(7, bias_quantizer=QuantizedBits(5, 2)),
            ]
        ),
        rng,
    )
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert set(builtin_ops(data)) <= {"CONV_2D", "RESHAPE", "FULLY_CONNECTED"}, builtin_ops(data)
    found = constants(data)
    conv_bias, dense_bias = model.layers[0].bias.numpy(), model.layers[2].bias.numpy()
    assert contains(found, fixed_point_3_3(conv_bias), atol=0)
    assert contains(found, quantized_bits_5_2(dense_bias), atol=0)
    assert not contains(found, conv_bias, atol=1e-4)  # the latent biases stay out
    assert not contains(found, dense_bias, atol=1e-4)
    x = rng.normal(size=(4, 6, 6, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(
        tfqnn.lite.Interpreter(model_content=data).predict(x), expected, rtol=1e-5, atol=1e-4
    )


def test_binary_ops_add_the_quantized_bias(rng):
    model = randomized(
        keras.Sequential(
            [
                keras.Input((7, 7, 2)),
                keras.layers.Conv2D(33, 3),
                QuantConv2D(16, 3, bias_quantizer=FixedPoint(3, 3), **BINARY),
                keras.layers.Flatten(),
                QuantDense(5, bias_quantizer=QuantizedBits(5, 2), **BINARY),
            ]
        ),
        rng,
    )
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 2,  # the inputs of both binary layers
        "TfqnnBconv2d": 1,
        "TfqnnBdense": 1,
    }
    x = rng.normal(size=(3, 7, 7, 2)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-4)
    # The float (latent) bias would give other outputs: the check can fail.
    layer = model.layers[-1]
    latent = keras.ops.convert_to_numpy(layer.bias)
    assert np.abs(quantized_bits_5_2(latent) - latent).max() > 1e-2
