"""Models after tfmot's strip_pruning and strip_clustering: load, train, save and export.

Stripped models are plain tf_keras models (``make_fixtures_tfkeras.py``:
``tfmot_pruned``, ``tfmot_clustered``); tfmot 0.8 has no function that strips
``quantize_model``'s wrappers. They load with tfmot's outputs
(``test_peer_models.py``) and their zeros and shared values; in tfqnn they
train further as float layers.
"""

import os

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn import interop

from . import _fixtures

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.mark.parametrize("name", ["tfmot_pruned", "tfmot_clustered"])
def test_stripped_models_train_save_and_export(tmp_path, name):
    data = np.load(os.path.join(FIXTURES, name + ".npz"))
    model = interop.load(_fixtures.h5(name))
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)
    kernels = {n: model.get_layer(n).kernel.numpy() for n in ("hidden", "classes")}
    if name == "tfmot_pruned":  # the zeros strip_pruning left
        assert all(np.mean(k == 0) == pytest.approx(0.75, abs=0.01) for k in kernels.values())
    else:  # the values strip_clustering left
        assert all(len(np.unique(k)) <= 8 for k in kernels.values())
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x = np.concatenate([data["x"], data["x_train"]])
    y = np.concatenate([data["y"].argmax(-1), data["y_train"]])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for layer_name, before in kernels.items():
        assert not np.array_equal(model.get_layer(layer_name).kernel.numpy(), before)
    expected = model.predict(data["x"], verbose=0)
    model.save(tmp_path / f"{name}.keras")
    restored = keras.models.load_model(tmp_path / f"{name}.keras")
    np.testing.assert_array_equal(restored.predict(data["x"], verbose=0), expected)
    lite = tfqnn.lite.Interpreter(model_content=tfqnn.export.to_tflite(model, verbose=0))
    np.testing.assert_allclose(lite.predict(data["x"]), expected, atol=1e-5)
