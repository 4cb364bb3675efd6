"""int8 TFLite of loaded tfmot QAT models: the logits within one step of Keras's, and why.

``to_tflite(model, int8_representative_data=x)`` quantizes every activation
with the range of its `RangeFakeQuant` (``test_tfmot_qat_cnn.py``). Two
things keep the int8 model from reproducing Keras's quantized values
exactly:

- TFLite's int8 SOFTMAX writes probabilities in steps of 1/256 (zero point
  -128): a probability below 1/512 becomes 0. Compared through the
  log-probabilities that alone looks like many steps of the logits' fake
  quant, so the bound is measured on the logits (the softmax made linear).
- The converter rounds each bias to int32 in units of ``s_in * s_w`` (the
  input's and the kernel's scales), and requantizes the integer sums; a
  value Keras computes within that rounding (here 0.002 of a level) of a
  rounding boundary of the next fake quant lands one level away. Keras and
  tfmot keep float biases, so this is the converter's difference, as it is
  for tfmot's own int8 export.

On the three QAT fixtures the int8 logits differ from Keras's by 0 or 1
level (3 of 320, 11 of 120 and 0 of 120 values); the float TFLite export
differs by up to 2 levels on the CNN, where folding BatchNormalization into
the kernels rounds differently before the next fake quant.
"""

import os

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn import interop

from . import _fixtures

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
QAT = ("tfmot_qat", "tfmot_qat_cnn", "tfmot_qat_savedmodel")


def load(name):
    directory = os.path.join(FIXTURES, name)
    model = interop.load(directory if os.path.isdir(directory) else _fixtures.h5(name))
    data = np.load(os.path.join(FIXTURES, name + ".npz"))
    return model, np.concatenate([data["x"], data["x_train"]])


def flat(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


def step(quantizer):
    return float(quantizer.max_var.numpy() - quantizer.min_var.numpy()) / 255


def logits_model(model):
    """The model with its softmax made linear: it outputs the logits' fake quant."""
    for layer in flat(model):
        if isinstance(layer, keras.layers.Activation) and layer.activation is (
            keras.activations.softmax
        ):
            layer.activation = keras.activations.linear
    return model


def int8_outputs(model, x):
    content = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    return tfqnn.lite.Interpreter(model_content=content).predict(x)


@pytest.mark.slow
@pytest.mark.parametrize("name", QAT)
def test_int8_logits_within_one_step(name):
    model, x = load(name)
    model = logits_model(model)
    quantizer = [lay for lay in flat(model) if isinstance(lay, tfqnn.layers.QuantActivation)][-1]
    expected = model.predict(x, verbose=0)
    levels = np.abs(int8_outputs(model, x) - expected) / step(quantizer.quantizer)
    assert levels.max() <= 1.001, levels.max()
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # whole levels
    assert np.mean(levels > 0.5) < 0.1


@pytest.mark.slow
def test_int8_softmax_is_in_steps_of_1_256():
    model, x = load("tfmot_qat")
    probabilities = int8_outputs(model, x)
    np.testing.assert_allclose(probabilities * 256, np.round(probabilities * 256), atol=1e-3)
    expected = model.predict(x, verbose=0)
    assert np.any((expected > 0) & (expected < 1 / 512) & (probabilities == 0))


@pytest.mark.slow
def test_the_one_level_differences_are_the_int32_bias_rounding():
    """Every logit the int8 model puts one level away lies, in Keras, within the bias
    rounding of a rounding boundary (the layers before agree level for level)."""
    model, x = load("tfmot_qat")
    model = logits_model(model)
    hidden = keras.Model(model.inputs, model.get_layer("quant_hidden").output)
    dense, quantizer = model.get_layer("quant_classes").layers[:2]
    inputs = hidden.predict(x, verbose=0)
    before = keras.ops.convert_to_numpy(dense(inputs))  # the logits before their fake quant
    expected = model.predict(x, verbose=0)
    s_in = step(model.get_layer("quant_hidden").layers[-1].quantizer)
    s_w = float(dense.kernel_quantizer.max_var.numpy()) / 127
    s_out = step(quantizer.quantizer)
    # The converter's bias, rounded to int32 in units of s_in * s_w, is within this of Keras's:
    bias_levels = 0.5 * s_in * s_w / s_out
    assert bias_levels < 0.01
    off = np.abs(int8_outputs(model, x) - expected) / s_out > 0.5
    assert off.any()
    # The nudged range puts 0 on a level: the boundaries lie halfway between multiples of s_out.
    position = before[off] / s_out
    distance = np.abs(position - np.floor(position) - 0.5)
    assert np.all(distance <= bias_levels + 1e-4), (distance, bias_levels)
    # Most values lie farther from a boundary and keep their level.
    everywhere = before / s_out
    near = np.abs(everywhere - np.floor(everywhere) - 0.5) <= bias_levels + 1e-4
    assert near.sum() < 0.05 * near.size
