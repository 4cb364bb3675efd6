"""A tf_keras model that uses other models as layers (a frozen backbone, a functional head).

The fixture (``make_fixtures_tfkeras.py``: ``tfkeras_nested``) calls a
frozen Sequential ``backbone`` and a functional ``head`` holding a QKeras
QDense; the h5 lists each nested model's weights under its own name.
"""

import os
import shutil

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import interop

from . import _fixtures
from .test_errors import edit_config, fuzz_count

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
NESTED = _fixtures.h5("tfkeras_nested")


@pytest.fixture(scope="module")
def data():
    return np.load(os.path.join(FIXTURES, "tfkeras_nested.npz"))


def weight_names(model):
    """``layer/weight`` of the trainable weights, ``model/layer/weight`` inside nested models."""
    names = []
    for layer in model.layers:
        inner = layer.layers if isinstance(layer, keras.Model) else [layer]
        for sub in inner:
            prefix = f"{layer.name}/{sub.name}" if sub is not layer else layer.name
            names += [f"{prefix}/{w.name}" for w in sub.trainable_weights]
    return names


def test_outputs_gradients_and_structure_equal_tf_keras(data):
    model, report = interop.load_with_report(NESTED)
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)
    backbone, head = model.get_layer("backbone"), model.get_layer("head")
    assert isinstance(backbone, keras.Sequential) and not backbone.trainable_weights
    assert not any(layer.trainable for layer in backbone.layers)
    assert isinstance(head, keras.Model) and head.trainable
    assert isinstance(head.get_layer("qdense"), tfqnn.layers.QuantDense)
    paths = [m.path for m in report.mappings]
    assert "tfkeras_nested/backbone/conv" in paths and "tfkeras_nested/head/qdense" in paths
    # The frozen backbone's BatchNormalization uses its moving statistics in training too.
    with tf.GradientTape() as tape:
        y = model(data["x_train"], training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(data["y_train"], y))
    np.testing.assert_allclose(y.numpy(), data["y_training"], rtol=1e-5, atol=1e-6)
    grads = tape.gradient(loss, model.trainable_weights)
    names = weight_names(model)
    expected = {k[len("grad:") :]: data[k] for k in data.files if k.startswith("grad:")}
    assert sorted(names) == sorted(expected)
    for name, grad in zip(names, grads):
        np.testing.assert_allclose(grad.numpy(), expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # Each nested weight came from its own layer's entry (two layers are named dense).
    with h5py.File(NESTED, "r") as f:
        inner = f["model_weights/head/dense/kernel:0"][()]
        outer = f["model_weights/dense/dense/kernel:0"][()]
    np.testing.assert_array_equal(head.get_layer("dense").kernel.numpy(), inner)
    np.testing.assert_array_equal(model.get_layer("dense").kernel.numpy(), outer)


@pytest.mark.slow
def test_trains_the_head_not_the_frozen_backbone_saves_and_exports(tmp_path, data):
    model = interop.load(NESTED)
    frozen = [w.numpy() for w in model.get_layer("backbone").weights]
    before = [w.numpy() for w in model.trainable_weights]
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(data["x_train"], data["y_train"], batch_size=4, epochs=1, verbose=0)
    assert all(
        np.array_equal(f, w.numpy()) for f, w in zip(frozen, model.get_layer("backbone").weights)
    )
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    expected = model.predict(data["x"], verbose=0)
    model.save(tmp_path / "nested.keras")
    restored = keras.models.load_model(tmp_path / "nested.keras")
    np.testing.assert_array_equal(restored.predict(data["x"], verbose=0), expected)
    lite = tfqnn.lite.Interpreter(model_content=tfqnn.export.to_tflite(model, verbose=0))
    np.testing.assert_allclose(lite.predict(data["x"]), expected, atol=1e-5)


def test_nested_weights_that_name_no_layer_or_disagree(tmp_path):
    path = tmp_path / "nested.h5"
    shutil.copy(NESTED, path)
    with h5py.File(path, "r+") as f:
        group = f["model_weights/head"]
        names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]
        ]
        group.attrs["weight_names"] = np.array(
            [n.replace("qdense/", "other/").encode() for n in names]
        )
        group.move("qdense", "other")
    with pytest.raises(ValueError, match="'other/kernel:0' of the nested model 'head' names none"):
        interop.load(path)
    shutil.copy(NESTED, path)
    with h5py.File(path, "r+") as f:
        del f["model_weights/backbone/conv/kernel:0"]
        f["model_weights/backbone/conv"].create_dataset("kernel:0", data=np.zeros((3, 3, 1, 5)))
    with pytest.raises(
        ValueError, match="'conv/kernel:0' of layer 'conv' has shape \\(3, 3, 1, 5\\)"
    ):
        interop.load(path)


def test_a_nested_layer_that_does_not_map_names_its_path(tmp_path):
    path = tmp_path / "nested.h5"
    shutil.copy(NESTED, path)

    def edit(config):
        head = next(e for e in config["config"]["layers"] if e["name"] == "head")
        skip = next(e for e in head["config"]["layers"] if e["name"] == "skip")
        skip["class_name"] = "Lambda"

    edit_config(path, edit)
    with pytest.raises(ValueError, match="tfkeras_nested/head/skip: tf_keras Lambda"):
        interop.load(path)


def test_fuzz_nested_file(tmp_path):
    """Mutated configs (nested ones included) and corrupted bytes: a model or a ValueError."""
    assert fuzz_count(NESTED, tmp_path, np.random.default_rng(22), 40, 40) > 10
