"""prune_low_magnitude of a model that uses another model as a layer: the wrappers inside it too.

The fixture (``make_fixtures_tfkeras.py``: ``tfmot_nested_pruned``) is
tfmot's ``prune_low_magnitude`` of a functional model whose Sequential
``backbone`` holds a Conv2D: tfmot wraps the Conv2D inside the backbone
(the file lists its weights under ``backbone``, the kernel as
``conv/kernel:0``, the mask as ``prune_low_magnitude_conv/mask:0``) and the
outer Dense.
"""

import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import interop

from . import _fixtures

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
PATH = _fixtures.h5("tfmot_nested_pruned")
DATA = np.load(os.path.join(FIXTURES, "tfmot_nested_pruned.npz"))


def pruned_layers(model):
    backbone = model.get_layer("backbone")
    return {
        "backbone/conv": backbone.get_layer("prune_low_magnitude_conv"),
        "prune_low_magnitude_classes": model.get_layer("prune_low_magnitude_classes"),
    }


def test_outputs_gradients_and_masks_equal_tfmots():
    model = interop.load(PATH)
    np.testing.assert_allclose(model.predict(DATA["x"], verbose=0), DATA["y"], rtol=1e-5, atol=1e-6)
    layers = pruned_layers(model)
    assert all(isinstance(layer, tfqnn.codebook.Pruned) for layer in layers.values())
    with h5py.File(PATH, "r") as f:
        mask = f["model_weights/backbone/prune_low_magnitude_conv/mask:0"][()]
    np.testing.assert_array_equal(layers["backbone/conv"].mask("kernel").numpy(), mask)
    assert np.mean(mask == 0) == pytest.approx(0.5, abs=0.05)
    with tf.GradientTape() as tape:
        y = model(DATA["x_train"], training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(DATA["y_train"], y))
    np.testing.assert_allclose(y.numpy(), DATA["y_training"], rtol=1e-5, atol=1e-6)
    names = [f"{key}/{w.name}" for key, lay in layers.items() for w in lay.trainable_weights]
    weights = [w for lay in layers.values() for w in lay.trainable_weights]
    assert len(weights) == len(model.trainable_weights)
    grads = dict(zip(names, tape.gradient(loss, weights)))
    expected = {k[len("grad:") :]: DATA[k] for k in DATA.files if k.startswith("grad:")}
    assert sorted(expected) == sorted(grads)
    for key, layer in layers.items():  # tfqnn's fixed mask: no gradient on pruned weights
        expected[f"{key}/kernel"] = expected[f"{key}/kernel"] * layer.mask("kernel").numpy()
    for key, grad in expected.items():
        scale = np.abs(grad).max()
        np.testing.assert_allclose(grads[key].numpy(), grad, atol=1e-4 * scale, err_msg=key)


@pytest.mark.slow
def test_pruned_weights_stay_zero_in_fit_save_and_export(tmp_path):
    model = interop.load(PATH)
    masks = {k: lay.mask("kernel").numpy() for k, lay in pruned_layers(model).items()}
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x = np.concatenate([DATA["x"], DATA["x_train"]])
    y = np.concatenate([DATA["y"].argmax(-1), DATA["y_train"]])
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for key, layer in pruned_layers(model).items():
        kernel = layer.decoded_kernels()["kernel"]
        assert np.all(kernel[masks[key] == 0] == 0) and np.any(kernel[masks[key] == 1] != 0)
    expected = model.predict(DATA["x"], verbose=0)
    model.save(tmp_path / "nested.keras")
    restored = keras.models.load_model(tmp_path / "nested.keras")
    np.testing.assert_array_equal(restored.predict(DATA["x"], verbose=0), expected)
    lite = tfqnn.lite.Interpreter(model_content=tfqnn.export.to_tflite(model, verbose=0))
    np.testing.assert_allclose(lite.predict(DATA["x"]), expected, atol=1e-5)
