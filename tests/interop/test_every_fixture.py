"""Every committed peer fixture loads, trains in fit, saves to .keras and exports to TFLite.

One test per fixture in ``fixtures/`` (``.h5``, ``.h5.gz`` and SavedModel
directories, found on disk, so that a new fixture is covered without
listing it): `tfqnn.interop.load` gives the peer's predictions, one epoch
of `fit` changes every trainable weight and keeps the loss finite, the
trained model saved to ``.keras`` loads back with equal predictions, and
`tfqnn.export.to_tflite` gives a TFLite model with the trained model's
predictions. The other test files check each peer's specifics (training
outputs, gradients, masks, ranges, custom ops).
"""

import os

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn import interop

from . import _fixtures

FIXTURES = _fixtures.FIXTURES
SAVED_MODELS = sorted(
    entry
    for entry in os.listdir(FIXTURES)
    if os.path.isfile(os.path.join(FIXTURES, entry, "keras_metadata.pb"))
)
EVERY_FIXTURE = sorted(_fixtures.committed_names() + SAVED_MODELS)
# TFLite's float kernels fold BatchNorm and fuse ReLUs into convolutions, which moves a
# value across a rounding step of the next fake quant now and then: at most 1.8 steps of
# the logits' fake quant on the QAT fixtures (docs/migrating.md, tfmot 0.8).
EXPORT_ATOL = {"tfmot_qat": 0.05, "tfmot_qat_cnn": 0.05}


def _path(name):
    if name in SAVED_MODELS:
        return os.path.join(FIXTURES, name)
    return _fixtures.h5(name)


def test_every_peer_of_the_issue_has_a_fixture():
    prefixes = {name.split("_")[0] for name in EVERY_FIXTURE}
    assert prefixes == {"larq", "qkeras", "tfkeras", "tfmot"}
    for required in ("qkeras_conv1d", "tfkeras_nested", "tfkeras_savedmodel", "larq_savedmodel"):
        assert required in EVERY_FIXTURE


@pytest.mark.parametrize("name", EVERY_FIXTURE)
def test_fixture_loads_trains_saves_and_exports(name, tmp_path):
    data = np.load(os.path.join(FIXTURES, name + ".npz"))
    model = interop.load(_path(name))
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)

    before = [w.numpy() for w in model.trainable_weights]
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x = np.concatenate([data["x"], data["x_train"]])
    y = np.concatenate([data["y"].argmax(-1), data["y_train"]])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    unchanged = [
        w.path for b, w in zip(before, model.trainable_weights) if np.array_equal(b, w.numpy())
    ]
    assert not unchanged, unchanged

    expected = model.predict(data["x"], verbose=0)
    saved = tmp_path / f"{name}.keras"
    model.save(saved)
    restored = keras.models.load_model(saved)
    np.testing.assert_array_equal(restored.predict(data["x"], verbose=0), expected)

    # Clustered kernels export as their decoded float kernels (docs/codebook.md).
    exported = tfqnn.codebook.strip(model) if "clustered" in name else model
    content = tfqnn.export.to_tflite(exported, verbose=0)
    lite = tfqnn.lite.Interpreter(model_content=content).predict(data["x"])
    np.testing.assert_allclose(lite, expected, atol=EXPORT_ATOL.get(name, 1e-4))
