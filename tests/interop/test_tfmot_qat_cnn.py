"""tfmot's quantize_model of a CNN with what its default 8-bit scheme wraps, loaded onto RangeFakeQuant.

The fixture (``make_fixtures_tfkeras.py``: ``tfmot_qat_cnn``) holds Conv2D,
DepthwiseConv2D and Dense followed by BatchNormalization (tfmot quantizes
after the BatchNormalization or the ReLU after it, not between), ReLU and
``Activation`` layers, Add, two Concatenates, max, average and global
pooling, LeakyReLU, a SeparableConv2D (which tfmot splits into
DepthwiseConv2D and Conv2D), Conv2DTranspose, Dropout and softmax.
"""

import os
import shutil

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import interop, quantizers

from . import _fixtures
from .test_errors import edit_config, fuzz_count, layer_entry

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
CNN = _fixtures.h5("tfmot_qat_cnn")
# The file's gradient names of the wrapped DepthwiseConv2D kernels, which Keras 3 calls kernel.
DEPTHWISE = ("quant_depthwise", "quant_depthwise_linear", "quant_depthwise_conv2d")


@pytest.fixture(scope="module")
def data():
    return np.load(os.path.join(FIXTURES, "tfmot_qat_cnn.npz"))


@pytest.fixture(scope="module")
def loaded():
    return interop.load_with_report(CNN)


def file_array(name):
    with h5py.File(CNN, "r") as f:
        return f["model_weights"][name][()]


def without_dropout(model):
    for layer in model.layers:  # as the fixture script does
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model


def test_predictions_equal_tfmots(loaded, data):
    model, _ = loaded
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)


def test_training_outputs_and_gradients_equal_tfmots(data):
    """Batch statistics, ranges that follow the batch, straight-through gradients: tfmot's."""
    model = without_dropout(interop.load(CNN))
    with tf.GradientTape() as tape:
        y = model(data["x_train"], training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(data["y_train"], y))
    np.testing.assert_allclose(y.numpy(), data["y_training"], rtol=1e-5, atol=1e-6)
    grads = tape.gradient(loss, model.trainable_weights)
    names = []
    for w in model.trainable_weights:
        layer = w.path.split("/")[0]
        weight = "depthwise_kernel" if layer in DEPTHWISE and w.name == "kernel" else w.name
        names.append(f"{layer}/{weight}")
    expected = {k[len("grad:") :]: data[k] for k in data.files if k.startswith("grad:")}
    assert sorted(names) == sorted(expected)
    # A bias before a training-mode BatchNorm has a zero gradient, computed as rounding
    # noise (~1e-7, in another order on another CPU): a floor relative to all gradients.
    floor = 1e-6 * max(np.abs(g).max() for g in expected.values())
    for name, grad in zip(names, grads):
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(
            grad.numpy(), expected[name], atol=max(1e-4 * scale, floor), err_msg=name
        )


def test_quantizers_sit_where_tfmots_do(loaded):
    model, report = loaded
    targets = {m.path.split("/")[-1]: m.target for m in report.mappings}
    # Kernel layers before a BatchNormalization: the kernel quantized, no activation quantizer.
    for name, cls in [("quant_conv", "QuantConv2D"), ("quant_depthwise", "QuantDepthwiseConv2D")]:
        assert type(model.get_layer(name)).__name__ == cls
    assert isinstance(model.get_layer("quant_dense_bn"), tfqnn.layers.QuantDense)
    # A BatchNormalization before a ReLU, an Add before a ReLU, max pooling, Dropout and
    # softmax: the Keras layer alone.
    for name in ("quant_bn", "quant_bn_dw", "quant_add", "quant_maxpool", "quant_softmax"):
        assert not isinstance(model.get_layer(name), keras.Model), name
    # Outputs quantized: after ReLU, Activation("relu"), Concatenate, BatchNormalization
    # (when no ReLU follows), average pooling, LeakyReLU.
    for name in (
        "quant_relu",
        "quant_act_relu",
        "quant_add_relu",
        "quant_concat",
        "quant_features",
        "quant_bn_out",
        "quant_avgpool",
        "quant_leaky",
        "quant_bn_dense",
        "quant_dense_relu",
    ):
        assert targets[name].endswith(" + QuantActivation"), name
        quantizer = model.get_layer(name).layers[-1].quantizer
        assert quantizer.training_range == "moving_average" and quantizer.decay == 0.999
        np.testing.assert_array_equal(
            quantizer.max_var.numpy(), file_array(f"{name}/{name}/output_max:0")
        )
    # The layers feeding the second Concatenate leave the quantization to it.
    assert not isinstance(model.get_layer("quant_gap"), keras.Model)
    # The SeparableConv2D that tfmot split, and the Conv2DTranspose: kernel then activation.
    separable = model.get_layer("quant_conv2d").layers
    assert [type(lay).__name__ for lay in separable] == [
        "QuantConv2D",
        "Activation",
        "QuantActivation",
    ]
    transpose = model.get_layer("quant_transpose").layers[0]
    assert isinstance(transpose, tfqnn.layers.QuantConv2DTranspose)
    assert transpose.kernel_quantizer.channels is None  # tfmot: one range for Conv2DTranspose


def test_depthwise_ranges_per_depth_multiplier(loaded):
    """tfmot's per-axis range of a DepthwiseConv2D runs over its last axis, the multiplier."""
    model, _ = loaded
    depthwise = model.get_layer("quant_depthwise_linear").layers[0]
    assert isinstance(depthwise, tfqnn.layers.QuantDepthwiseConv2D)
    assert depthwise.depthwise_quantizer == quantizers.RangeFakeQuant(
        8, True, channels=2, training_range="last_value", symmetric=True
    )
    prefix = "quant_depthwise_linear/quant_depthwise_linear/"
    high = file_array(prefix + "depthwise_kernel_max:0")
    np.testing.assert_array_equal(depthwise.depthwise_quantizer.max_var.numpy(), high)
    np.testing.assert_array_equal(
        depthwise.kernel.numpy(),
        file_array("quant_depthwise_linear/depthwise_linear/depthwise_kernel:0"),
    )
    # The kernel the layer computes with: multiples of max / 127 per multiplier, as tfmot's.
    kernel = depthwise.depthwise_quantizer(depthwise.kernel).numpy()
    steps = kernel / (high / 127)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert np.all(np.abs(np.round(steps)) <= 127) and len(np.unique(np.round(steps))) > 20


def logit_steps(model, expected, actual):
    """The largest difference of the centred log-probabilities, in steps of the logits' fake quant."""
    quantizer = model.get_layer("quant_logits").layers[-1].quantizer
    step = float(quantizer.max_var.numpy() - quantizer.min_var.numpy()) / 255
    logs = [np.log(np.maximum(p, 1e-6)) for p in (expected, actual)]
    centred = [v - v.mean(-1, keepdims=True) for v in logs]
    return float(np.abs(centred[1] - centred[0]).max()) / step


@pytest.mark.slow
def test_trains_saves_and_exports(tmp_path, data):
    """Fit, ``.keras`` and float TFLite; TFLite within two steps of the logits' quantizer.

    The converted graph rounds differently (it folds a BatchNormalization
    into the kernel before it and a ReLU into the op), which moves a few
    values across a rounding boundary of the next fake quant: one level
    there. On this fixture the centred log-probabilities differ by at most
    1.8 steps of the logits' fake quant (the old fixture, without
    BatchNormalization, within 1e-4).
    """
    model = interop.load(CNN)
    before = [w.numpy() for w in model.trainable_weights]
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x = np.concatenate([data["x"], data["x_train"]])
    y = np.concatenate([data["y"].argmax(-1), data["y_train"]])
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "cnn.keras")
    restored = keras.models.load_model(tmp_path / "cnn.keras")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), expected)
    content = tfqnn.export.to_tflite(model, verbose=0)
    lite = tfqnn.lite.Interpreter(model_content=content).predict(x)
    assert logit_steps(model, expected, lite) < 2.5


@pytest.mark.slow
def test_int8_tflite_uses_the_trained_ranges(data):
    """``to_tflite(int8_representative_data=...)`` quantizes with the fake quants' ranges.

    TensorFlow's converter takes the ranges of ``fake_quant_with_min_max_vars``
    ops, which `RangeFakeQuant` computes with, as the int8 tensors' scales
    and zero points (the representative data calibrate only the tensors
    without one). Each activation quantizer's scale ``(max - min) / 255`` is
    a tensor's scale in the file, but three: the BatchNormalization's before
    the ReLU that the converter fuses into FULLY_CONNECTED, and the
    activations of the two layers that feed a Concatenate, which TFLite's
    int8 CONCATENATION writes at the Concatenate's own scale (tfmot leaves
    both quantizers in place too).
    """
    model = interop.load(CNN)
    x = np.concatenate([data["x"], data["x_train"]])
    expected = model.predict(x, verbose=0)
    content = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    interpreter = tf.lite.Interpreter(model_content=content)
    tensors = interpreter.get_tensor_details()
    scales = np.array([t["quantization"][0] for t in tensors if t["quantization"][0]])
    missing = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, tfqnn.layers.QuantActivation):
            q = layer.quantizer
            scale = float(q.max_var.numpy() - q.min_var.numpy()) / 255
            if not np.any(np.isclose(scales, scale, rtol=1e-6, atol=0)):
                missing.add(layer.name)
    assert missing == {
        "quant_bn_dense_output_quantizer",
        "quant_pointwise_activation_quantizer",
        "quant_depthwise_linear_activation_quantizer",
    }
    kinds = [str(t["dtype"].__name__) for t in tensors]
    assert kinds.count("float32") == 2 and kinds.count("int8") > 25  # float input and output
    lite = tfqnn.lite.Interpreter(model_content=content).predict(x)
    assert logit_steps(model, expected, lite) < 2.5


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: layer_entry(c, "quant_act_relu")["config"]["layer"]["config"].update(
                activation="elu"
            ),
            "quant_act_relu: tfmot QuantizeWrapperV2: Activation('elu'), which tfmot does not",
        ),
        (
            lambda c: layer_entry(c, "quant_pointwise")["config"]["quantize_config"][
                "config"
            ].update(quantize_output=True),
            "quant_pointwise: tfmot QuantizeWrapperV2: Default8BitConvQuantizeConfig of Conv2D",
        ),
        (
            lambda c: layer_entry(c, "quant_logits")["config"]["quantize_config"].update(
                class_name="Default8BitConvQuantizeConfig"
            ),
            "quant_logits: tfmot QuantizeWrapperV2: Default8BitConvQuantizeConfig of Dense",
        ),
        (
            lambda c: layer_entry(c, "quant_bn")["config"]["quantize_config"].update(
                class_name="MyQuantizeConfig"
            ),
            "quant_bn: tfmot QuantizeWrapperV2 of BatchNormalization with quantize_config",
        ),
    ],
    ids=["activation", "output_and_activation", "per_channel_dense", "custom_config"],
)
def test_what_does_not_map_is_named(tmp_path, edit, message):
    path = tmp_path / "cnn.h5"
    shutil.copy(CNN, path)
    edit_config(path, edit)
    with pytest.raises(ValueError, match="unsupported") as error:
        interop.load(path)
    assert message in str(error.value)


@pytest.mark.slow
def test_fuzz_qat_cnn_file(tmp_path):
    """Mutated configs and corrupted bytes of the fixture: a model or a ValueError."""
    assert fuzz_count(CNN, tmp_path, np.random.default_rng(21), 25, 40) > 10
