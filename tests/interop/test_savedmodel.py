"""A tf_keras SavedModel directory, read without tf_keras: keras_metadata.pb and variables/.

The fixture (``make_fixtures_tfkeras.py``: ``tfkeras_savedmodel``, a
functional model with a QKeras QDense) is committed without
``saved_model.pb``, TensorFlow's graph (100 KB), which `interop.load` does
not read.
"""

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import interop, quantizers
from tfqnn.interop import savedmodel

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
DIRECTORY = os.path.join(FIXTURES, "tfkeras_savedmodel")


@pytest.fixture(scope="module")
def data():
    return np.load(os.path.join(FIXTURES, "tfkeras_savedmodel.npz"))


@pytest.fixture
def copy(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(DIRECTORY, target)
    return target


def test_outputs_and_gradients_equal_tf_keras(data):
    model, report = interop.load_with_report(DIRECTORY)
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)
    qdense = model.get_layer("qdense")
    assert qdense.kernel_quantizer == quantizers.QuantizedBits(4, 0, alpha=1.0)
    assert [m.source for m in report.mappings if m.path.endswith("qdense")] == ["QKeras.QDense"]
    # The BatchNormalization's moving statistics came from the checkpoint.
    reader = tf.train.load_checkpoint(os.path.join(DIRECTORY, "variables", "variables"))
    stats = [k for k in reader.get_variable_to_shape_map() if "moving_mean" in k]
    np.testing.assert_array_equal(
        model.get_layer("bn").moving_mean.numpy(), reader.get_tensor(stats[0])
    )
    with tf.GradientTape() as tape:
        y = model(data["x_train"], training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(data["y_train"], y))
    np.testing.assert_allclose(y.numpy(), data["y_training"], rtol=1e-5, atol=1e-6)
    grads = tape.gradient(loss, model.trainable_weights)
    names = [w.path for w in model.trainable_weights]
    expected = {k[len("grad:") :]: data[k] for k in data.files if k.startswith("grad:")}
    assert sorted(names) == sorted(expected)
    for name, grad in zip(names, grads):
        np.testing.assert_allclose(grad.numpy(), expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_trains_saves_and_exports(tmp_path, data):
    model = interop.load(DIRECTORY)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    history = model.fit(data["x_train"], data["y_train"], batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    expected = model.predict(data["x"], verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(restored.predict(data["x"], verbose=0), expected)
    lite = tfqnn.lite.Interpreter(model_content=tfqnn.export.to_tflite(model, verbose=0))
    np.testing.assert_allclose(lite.predict(data["x"]), expected, atol=1e-5)


def test_protobuf_fields():
    """Varints, length-delimited and fixed fields as protobuf's encoding writes them."""
    message = bytes([0x08, 0x96, 0x01, 0x1A, 0x03]) + b"abc" + bytes([0x25, 1, 2, 3, 4])
    assert list(savedmodel.fields(message)) == [(1, 150), (3, b"abc"), (4, bytes([1, 2, 3, 4]))]
    for broken in (bytes([0x08, 0x96]), bytes([0x1A, 0x05]) + b"abc", bytes([0x0B])):
        with pytest.raises(ValueError):
            list(savedmodel.fields(broken))


def test_a_directory_tf_keras_did_not_write(tmp_path, copy):
    with pytest.raises(ValueError, match="without keras_metadata.pb, so not a tf_keras SavedModel"):
        interop.load(tmp_path)
    os.remove(copy / "variables" / "variables.index")
    with pytest.raises(ValueError, match="no variables/variables.index"):
        interop.load(copy)


def test_damaged_checkpoint(copy):
    data_file = copy / "variables" / "variables.data-00000-of-00001"
    content = data_file.read_bytes()
    data_file.write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError, match="Cannot load .*: its checkpoint is damaged"):
        interop.load(copy)


def test_fuzz_metadata(copy):
    """Truncated, bit-flipped and spliced keras_metadata.pb: a model or a ValueError."""
    path = copy / "keras_metadata.pb"
    original = path.read_bytes()
    rng = np.random.default_rng(23)
    errors = 0
    for case in range(300):
        damaged = bytearray(original)
        if case % 3 == 0:
            damaged = damaged[: int(rng.integers(0, len(damaged)))]
        elif case % 3 == 1:
            for index in rng.integers(0, len(damaged), size=int(rng.integers(1, 6))):
                damaged[index] ^= 1 << int(rng.integers(0, 8))
        else:
            start = int(rng.integers(0, len(damaged)))
            damaged[start : start + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(damaged))
        try:
            interop.load(copy)
        except ValueError:
            errors += 1
    assert errors > 100


def test_larq_savedmodel_outputs_and_gradients_equal_larqs():
    """larq's binary layers from a SavedModel directory (``make_fixtures_larq.py``)."""
    directory = os.path.join(FIXTURES, "larq_savedmodel")
    data = np.load(os.path.join(FIXTURES, "larq_savedmodel.npz"))
    model, report = interop.load_with_report(directory)
    sources = [m.source for m in report.mappings if m.source.startswith("larq")]
    assert sources == ["larq.QuantConv2D", "larq.QuantConv2D", "larq.QuantDense"]
    assert model.layers[2].input_quantizer == quantizers.SteSign(clip_value=1.0)
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        y = model(data["x_train"], training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(data["y_train"], y))
    # Batch statistics round differently in tf_keras (fused BatchNorm) and Keras 3.
    np.testing.assert_allclose(y.numpy(), data["y_training"], rtol=1e-4, atol=1e-4)
    grads = tape.gradient(loss, model.trainable_weights)
    names = [f"{lay.name}/{w.name}" for lay in model.layers for w in lay.trainable_weights]
    expected = {k[len("grad:") :]: data[k] for k in data.files if k.startswith("grad:")}
    assert sorted(names) == sorted(expected)
    for name, grad in zip(names, grads):
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(grad.numpy(), expected[name], atol=1e-3 * scale, err_msg=name)
