"""Int8 export: an average pool without padding runs as an int8 depthwise convolution.

XNNPACK takes int8 depthwise convolutions but not int8 ``AVERAGE_POOL_2D``
(LiteRT's reference kernel runs it, ~10x slower for Bi-Real Net's shortcut
pools), so with ``int8_representative_data`` the exporter writes a pool
whose windows all lie inside the input as a depthwise convolution with
weights ``1 / (kh kw)``. The float export keeps ``AVERAGE_POOL_2D``.
"""

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops
from tfqnn.export import converter


def pool_model(size, pool_size, strides, padding):
    inputs = keras.Input((size, size, 6))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    pooled = keras.layers.AveragePooling2D(pool_size, strides, padding=padding)(x)
    return keras.Model(inputs, pooled)


@pytest.mark.parametrize(
    "size, pool_size, strides, padding, depthwise",
    [
        (8, 2, 2, "same", True),  # Bi-Real Net's shortcut pool: "same" pads nothing
        (9, 3, 2, "valid", True),
        (8, (2, 3), (2, 1), "valid", True),
        (7, 2, 2, "same", False),  # pads the last row and column: stays a pool
        (9, 3, 2, "same", False),
    ],
)
def test_average_pool_without_padding_is_an_int8_depthwise_convolution(
    rng, monkeypatch, size, pool_size, strides, padding, depthwise
):
    keras.utils.set_random_seed(4)
    model = pool_model(size, pool_size, strides, padding)
    x = rng.normal(size=(16, size, size, 6)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    builtins = builtin_ops(data)
    assert builtins.get("DEPTHWISE_CONV_2D", 0) == int(depthwise), builtins
    assert builtins.get("AVERAGE_POOL_2D", 0) == int(not depthwise), builtins
    expected = model.predict(x, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    assert actual.shape == expected.shape
    # Against Keras: the int8 input, the convolution's int8 output and the
    # pool's own rounding, each within half a step of its calibrated range.
    conv = keras.ops.convert_to_numpy(keras.Model(model.input, model.layers[1].output)(x))
    conv_step = (max(conv.max(), 0) - min(conv.min(), 0)) / 255
    step = (max(expected.max(), 0) - min(expected.min(), 0)) / 255
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1.5 * conv_step + step)

    # Against the file with the int8 AVERAGE_POOL_2D (the rewrite off): the
    # same int8 input to the pool; the pool writes on its input's grid
    # (conv_step), the convolution on its own calibrated one (step), so the
    # two are within half of each step of the exact average.
    monkeypatch.setattr(converter, "_is_valid_average_pool", lambda *args: False)
    pool_file = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    assert builtin_ops(pool_file).get("AVERAGE_POOL_2D", 0) == 1
    reference = tfqnn.lite.Interpreter(model_content=pool_file).predict(x)
    np.testing.assert_allclose(actual, reference, rtol=0, atol=0.51 * (conv_step + step))
    monkeypatch.undo()

    float_file = tfqnn.export.to_tflite(model, verbose=0)
    assert builtin_ops(float_file).get("AVERAGE_POOL_2D", 0) == 1
    np.testing.assert_allclose(
        tfqnn.lite.Interpreter(model_content=float_file).predict(x),
        expected,
        rtol=1e-5,
        atol=1e-5,
    )
