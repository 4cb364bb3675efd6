"""Every committed peer fixture loads, trains in fit, saves to .keras and exports to TFLite.

Tests per fixture in ``fixtures/`` (``.h5``, ``.h5.gz`` and SavedModel
directories, found on disk, so that a new fixture is covered without
listing it): `tfqnn.interop.load` gives the peer's predictions; one epoch
of `fit` keeps the loss finite and changes every trainable weight that has
a gradient; the trained model saved to ``.keras`` loads back with equal
predictions; `tfqnn.export.to_tflite` gives a TFLite model with the
model's predictions (slow: a conversion takes seconds). The other test
files check each peer's specifics (training outputs, gradients, masks,
ranges, custom ops).
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

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
# A quantized recurrent state moves by one level now and then too (2.2e-4 on a
# probability of qkeras_rnn, seen here).
EXPORT_ATOL = {"tfmot_qat": 0.05, "tfmot_qat_cnn": 0.05, "qkeras_rnn": 1e-3}
# Recurrent models train for 10 to 20 s here (slow); test_qkeras_recurrent.py trains,
# saves and exports them in the default run.
# Fixtures with Lambda layers (Python bytecode): loaded with safe_mode=False.
LAMBDAS = {"tfkeras_lambda"}
SLOW_TO_TRAIN = {"qkeras_rnn", "qkeras_rnn_activations"}
TRAINED = [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW_TO_TRAIN else name
    for name in EVERY_FIXTURE
]


def _path(name):
    if name in SAVED_MODELS:
        return os.path.join(FIXTURES, name)
    return _fixtures.h5(name)


def test_every_peer_of_the_issue_has_a_fixture():
    prefixes = {name.split("_")[0] for name in EVERY_FIXTURE}
    assert prefixes == {"larq", "qkeras", "tfkeras", "tfmot"}
    for required in ("qkeras_conv1d", "tfkeras_nested", "tfkeras_savedmodel", "larq_savedmodel"):
        assert required in EVERY_FIXTURE


def _load(name):
    data = np.load(os.path.join(FIXTURES, name + ".npz"))
    model = interop.load(_path(name), safe_mode=name not in LAMBDAS)
    for got, expected in zip(_outputs(model, data["x"]), _expected(model, data), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    return model, data


def _outputs(model, x):
    """The model's predictions on x as a list (one entry per output)."""
    outputs = model.predict(x, verbose=0)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _expected(model, data):
    """The peer's outputs: ``y``, or ``y:<output name>`` per output of a multi-output model."""
    if "y" in data.files:
        return [data["y"]]
    return [data[f"y:{name}"] for name in model.output_names]


def _zero_gradients(model, x, y):
    """The paths of the trainable weights whose training-mode gradient on (x, y) is 0."""
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        )
    grads = tape.gradient(loss, model.trainable_weights)
    return {w.path for w, g in zip(model.trainable_weights, grads) if g is None or not np.any(g)}


@pytest.mark.parametrize("name", TRAINED)
def test_fixture_loads_trains_and_saves(name, tmp_path):
    model, data = _load(name)
    for layer in model.layers:  # no random masks: the zero gradients below are the model's
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    classifier = "y" in data.files
    if classifier:
        x = np.concatenate([data["x"], data["x_train"]])
        y = np.concatenate([data["y"].argmax(-1), data["y_train"]])
        loss = "sparse_categorical_crossentropy"
    else:  # a multi-output fixture (tf_keras's activations): regress to other targets
        x = data["x"]
        y = [0.5 * target + 1.0 for target in _expected(model, data)]
        loss = "mse"
    before = [w.numpy() for w in model.trainable_weights]
    # Eager: three small batches run faster than tracing the step.
    model.compile(keras.optimizers.Adam(0.01), loss, run_eagerly=True)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    unchanged = {
        w.path for b, w in zip(before, model.trainable_weights) if np.array_equal(b, w.numpy())
    }
    # Every weight with a gradient trains. (The backward QSimpleRNN of
    # qkeras_rnn_activations saturates its quantized tanh: QKeras's gradient is 0 too.)
    if unchanged:
        for w, b in zip(model.trainable_weights, before):
            w.assign(b)
        assert classifier  # every weight of the multi-output fixture has a gradient
        assert unchanged <= _zero_gradients(model, x[:8], y[:8]), unchanged
    assert len(unchanged) < len(before) / 2

    expected = _outputs(model, data["x"])
    saved = tmp_path / f"{name}.keras"
    model.save(saved)
    if name in LAMBDAS:
        # Keras 3.15's Lambda.from_config passes a lambda's defaults as the JSON list
        # (types.FunctionType wants a tuple): its own .keras files of such lambdas fail.
        with pytest.raises(TypeError, match="defaults"):
            keras.models.load_model(saved, safe_mode=False)
        return
    restored = keras.models.load_model(saved)
    for got, want in zip(_outputs(restored, data["x"]), expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
@pytest.mark.parametrize("name", EVERY_FIXTURE)
def test_fixture_exports_to_tflite(name):
    model, data = _load(name)
    # Clustered kernels export as their decoded float kernels (docs/codebook.md).
    exported = tfqnn.codebook.strip(model) if "clustered" in name else model
    # Recurrent layers loop in a TFLite WHILE, which needs a fixed batch size.
    recurrent = any(isinstance(layer, keras.layers.RNN) for layer in _all_layers(model))
    content = tfqnn.export.to_tflite(exported, batch_size=1 if recurrent else None, verbose=0)
    lite = tfqnn.lite.Interpreter(model_content=content)
    predictions = lite.predict(data["x"], batch_size=1 if recurrent else None)
    predictions = list(predictions) if isinstance(predictions, (list, tuple)) else [predictions]
    for got, want in zip(predictions, _outputs(model, data["x"]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=EXPORT_ATOL.get(name, 1e-4))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        inner = getattr(layer, "forward_layer", None)  # Bidirectional
        if inner is not None:
            yield inner
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
