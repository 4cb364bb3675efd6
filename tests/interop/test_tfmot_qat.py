"""tfmot's quantize_model (QuantizeLayer, QuantizeWrapperV2) loaded onto RangeFakeQuant."""

import os
import shutil
import subprocess
import sys

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
QAT = _fixtures.h5("tfmot_qat")


@pytest.fixture(scope="module")
def data():
    return np.load(os.path.join(FIXTURES, "tfmot_qat.npz"))


@pytest.fixture
def qat(tmp_path):
    path = tmp_path / "qat.h5"
    shutil.copy(QAT, path)
    return path


def file_array(name):
    with h5py.File(QAT, "r") as f:
        return f["model_weights"][name][()]


def test_predictions_equal_tfmots(data):
    model = interop.load(QAT)
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)


def test_training_outputs_and_gradients_equal_tfmots(data):
    """Training mode: kernel ranges from the kernel, activation ranges by moving average."""
    model = interop.load(QAT)
    with tf.GradientTape() as tape:
        y = model(data["x_train"], training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(data["y_train"], y))
    np.testing.assert_allclose(y.numpy(), data["y_training"], rtol=1e-5, atol=1e-6)
    grads = tape.gradient(loss, model.trainable_weights)
    names = [f"{w.path.split('/')[1]}/{w.name}" for w in model.trainable_weights]
    expected = {k[len("grad:") :]: data[k] for k in data.files if k.startswith("grad:")}
    assert sorted(names) == sorted(expected)
    for name, grad in zip(names, grads):
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(grad.numpy(), expected[name], atol=1e-4 * scale, err_msg=name)
    # The ranges moved as tfmot's: the conv kernel's is its symmetric per-filter extreme now.
    conv = model.get_layer("quant_conv").layers[0]
    extreme = np.abs(conv.kernel.numpy()).max(axis=(0, 1, 2))
    np.testing.assert_array_equal(conv.kernel_quantizer.max_var.numpy(), extreme)
    np.testing.assert_array_equal(conv.kernel_quantizer.min_var.numpy(), -extreme)


def test_layers_quantizers_and_ranges_are_the_files():
    model, report = interop.load_with_report(QAT)
    assert [m.target for m in report.mappings if m.source.startswith("tfmot")] == [
        "tfqnn.QuantActivation",
        "tfqnn.QuantConv2D + QuantActivation",
        "tfqnn.QuantDense + QuantActivation",
        "tfqnn.QuantDense + QuantActivation",
    ]
    layers = {lay.name: lay for lay in model.layers}
    conv = layers["quant_conv"].layers
    assert isinstance(conv[0], tfqnn.layers.QuantConv2D)
    assert conv[0].kernel_quantizer == quantizers.RangeFakeQuant(
        8, True, channels=8, training_range="last_value", symmetric=True
    )
    assert conv[2].quantizer.training_range == "moving_average"
    assert layers["quantize_layer"].quantizer.training_range == "all_values"
    # ReLU: activation, then its quantizer; softmax: the quantizer, then the activation.
    assert [type(lay).__name__ for lay in conv[1:]] == ["Activation", "QuantActivation"]
    classes = layers["quant_classes"].layers
    assert [type(lay).__name__ for lay in classes[1:]] == ["QuantActivation", "Activation"]
    prefix = "quant_conv/quant_conv/"
    np.testing.assert_array_equal(
        conv[0].kernel_quantizer.min_var.numpy(), file_array(prefix + "kernel_min:0")
    )
    np.testing.assert_array_equal(
        conv[2].quantizer.max_var.numpy(), file_array(prefix + "post_activation_max:0")
    )
    np.testing.assert_array_equal(
        classes[1].quantizer.min_var.numpy(),
        file_array("quant_classes/quant_classes/pre_activation_min:0"),
    )
    assert layers["quantize_layer"].quantizer.max_var.numpy() == file_array(
        "quantize_layer/quantize_layer/quantize_layer_max:0"
    )
    # The kernels the model computes with lie on tfmot's grid: multiples of max / 127 per
    # channel (symmetric, narrow range), within the file's range.
    kernel = conv[0].kernel_quantizer(conv[0].kernel).numpy()
    step = file_array(prefix + "kernel_max:0") / 127
    steps = kernel / step
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert np.all(np.abs(np.round(steps)) <= 127) and len(np.unique(np.round(steps))) > 20


def test_trains_saves_and_exports(tmp_path, data):
    model = interop.load(QAT)
    inputs = model.get_layer("quantize_layer").non_trainable_weights
    ranges = [w.numpy() for w in model.non_trainable_weights]
    before = [w.numpy() for w in model.trainable_weights]
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x = np.concatenate([data["x"], data["x_train"]])
    y = np.concatenate([data["y"].argmax(-1), data["y_train"]])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    # The ranges followed the data in fit, and still hold 0; the input's running extremes
    # stay [0, 1], the pixels' range.
    for r, w in zip(ranges, model.non_trainable_weights):
        assert np.array_equal(r, w.numpy()) == any(w is v for v in inputs), w.path
    assert all(
        np.all(w.numpy() <= 0) if w.name.endswith("_min") else np.all(w.numpy() >= 0)
        for w in model.non_trainable_weights
    )
    expected = model.predict(data["x"], verbose=0)
    model.save(tmp_path / "qat.keras")
    restored = keras.models.load_model(tmp_path / "qat.keras")
    np.testing.assert_array_equal(restored.predict(data["x"], verbose=0), expected)
    # In a fresh process with only `import tfqnn`: the quantizers and ranges come back.
    np.save(tmp_path / "x.npy", data["x"])
    code = (
        "import sys, keras, numpy as np, tfqnn; m = keras.models.load_model(sys.argv[1]); "
        "np.save(sys.argv[2], m.predict(np.load(sys.argv[3]), verbose=0))"
    )
    out = tmp_path / "y.npy"
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tmp_path / "qat.keras"),
            str(out),
            str(tmp_path / "x.npy"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    np.testing.assert_array_equal(np.load(out), expected)
    content = tfqnn.export.to_tflite(model, verbose=0)
    lite = tfqnn.lite.Interpreter(model_content=content).predict(data["x"])
    np.testing.assert_allclose(lite, expected, atol=1e-4)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: layer_entry(c, "quant_hidden")["config"]["quantize_config"].update(
                class_name="Default8BitActivationQuantizeConfig"
            ),
            "quant_hidden: tfmot QuantizeWrapperV2: Default8BitActivationQuantizeConfig on Dense",
        ),
        (
            lambda c: layer_entry(c, "quant_hidden")["config"]["layer"]["config"].update(
                activation="elu"
            ),
            "quant_hidden: tfmot QuantizeWrapperV2: Default8BitQuantizeConfig of Dense (activation 'elu'",
        ),
        (
            lambda c: layer_entry(c, "quantize_layer")["config"]["quantizer"]["config"].update(
                num_bits=4
            ),
            "quantize_layer: tfmot QuantizeLayer with quantizer",
        ),
        (
            lambda c: layer_entry(c, "quant_conv").update(class_name="QuantizeWrapper"),
            "quant_conv: tfmot QuantizeWrapper:",
        ),
    ],
    ids=["quantize_config", "activation", "bits", "wrapper_v1"],
)
def test_what_does_not_map_is_named(qat, edit, message):
    edit_config(qat, edit)
    with pytest.raises(ValueError, match="unsupported") as error:
        interop.load(qat)
    assert message in str(error.value)


def test_ranges_that_disagree_with_the_config(qat):
    with h5py.File(qat, "r+") as f:
        group = f["model_weights/quant_conv/quant_conv"]
        del group["kernel_min:0"]
        group.create_dataset("kernel_min:0", data=np.zeros(3, np.float32))
    with pytest.raises(
        ValueError, match="'kernel_quantizer_min' of layer 'quant_conv' has shape \\(3,\\)"
    ):
        interop.load(qat)


def test_fuzz_qat_file(tmp_path):
    """Mutated configs and corrupted bytes of the QAT fixture: a model or a ValueError."""
    assert fuzz_count(QAT, tmp_path, np.random.default_rng(15), 25, 40) > 10


def test_quantize_layer_ranges_named_after_the_layer():
    """tfmot names QuantizeLayer's range after the layer: quantize_layer_1_min in a
    second quantize_model of one process (the fixture script makes several)."""
    from tfqnn.interop import tfmot_qat
    from tfqnn.interop.report import Report

    report = Report()
    settings = {"num_bits": 8, "per_axis": False, "symmetric": False, "narrow_range": False}
    quantizer = {"class_name": "AllValuesQuantizer", "config": settings}
    config = {"name": "quantize_layer_1", "quantizer": quantizer}
    layer = tfmot_qat.layer("QuantizeLayer", config, "m/quantize_layer_1", "m", None, report)
    assert isinstance(layer, tfqnn.layers.QuantActivation) and not report.issues
    low, high, step = np.float32(-1.5), np.float32(2.0), np.int32(3)
    arrays = [
        ("quantize_layer_1/quantize_layer_1_min:0", low),
        ("quantize_layer_1/quantize_layer_1_max:0", high),
        ("quantize_layer_1/optimizer_step:0", step),
    ]
    assert report.weight_maps["quantize_layer_1"](arrays) == [
        ("quantizer_min", low),
        ("quantizer_max", high),
    ]
