"""tf_keras's own LSTM and GRU, plain and inside Bidirectional, with tf_keras's hard sigmoid.

tf_keras's ``"hard_sigmoid"`` is ``clip(0.2 x + 0.5, 0, 1)``, Keras 3's
``clip(x / 6 + 1 / 2, 0, 1)``: a recurrent layer saved by tf_keras with
``recurrent_activation="hard_sigmoid"`` must keep tf_keras's, also when a
``Bidirectional`` wraps it. The file is written here with h5py in tf_keras's
layout (a model config and ``model_weights/<layer>/<weight names>``) with
known weights; the expected outputs are a numpy LSTM and GRU written from
the formulas.
"""

import json

import h5py
import keras
import numpy as np
import pytest

from tfqnn import activations, interop

T, F, U = 5, 3, 2  # steps, features, units


def tf_keras_hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def keras_3_hard_sigmoid(x):
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def lstm(x, kernel, recurrent, bias, sigmoid):
    """Keras's LSTM (gates i, f, c, o), all steps: (batch, T, U)."""
    h = np.zeros((x.shape[0], U))
    c = np.zeros_like(h)
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * U : (k + 1) * U] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def gru(x, kernel, recurrent, bias, sigmoid):
    """Keras's GRU with reset_after=True (gates z, r, h), all steps: (batch, T, U)."""
    h = np.zeros((x.shape[0], U))
    outputs = []
    for t in range(x.shape[1]):
        mx = x[:, t] @ kernel + bias[0]
        mh = h @ recurrent + bias[1]
        z = sigmoid(mx[:, :U] + mh[:, :U])
        r = sigmoid(mx[:, U : 2 * U] + mh[:, U : 2 * U])
        candidate = np.tanh(mx[:, 2 * U :] + r * mh[:, 2 * U :])
        h = z * h + (1.0 - z) * candidate
        outputs.append(h)
    return np.stack(outputs, axis=1)


def bidirectional(cell, x, forward, backward, sigmoid, sequences):
    """Keras's Bidirectional, merge_mode="concat": the backward outputs re-reversed in time."""
    ahead = cell(x, *forward, sigmoid)
    behind = cell(x[:, ::-1], *backward, sigmoid)
    if sequences:
        return np.concatenate([ahead, behind[:, ::-1]], axis=-1)
    return np.concatenate([ahead[:, -1], behind[:, -1]], axis=-1)


def rnn_config(class_name, name, return_sequences, **extra):
    """A tf_keras 2.21 LSTM or GRU config, as its get_config writes it."""
    config = {
        "name": name,
        "trainable": True,
        "dtype": "float32",
        "return_sequences": return_sequences,
        "return_state": False,
        "go_backwards": False,
        "stateful": False,
        "unroll": False,
        "time_major": False,
        "units": U,
        "activation": "tanh",
        "recurrent_activation": "hard_sigmoid",
        "use_bias": True,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform"},
        "recurrent_initializer": {"module": "keras.initializers", "class_name": "Orthogonal"},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros"},
        "kernel_regularizer": None,
        "recurrent_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "recurrent_constraint": None,
        "bias_constraint": None,
        "dropout": 0.0,
        "recurrent_dropout": 0.0,
        "implementation": 2,
        **extra,
    }
    return {"module": "keras.layers", "class_name": class_name, "config": config}


def wrapped(inner, name):
    config = {"name": name, "trainable": True, "dtype": "float32", "layer": inner}
    config["merge_mode"] = "concat"
    return {"module": "keras.layers", "class_name": "Bidirectional", "config": config}


def write_model(path, layers, arrays):
    """tf_keras's full-model .h5 layout for a Sequential of ``layers``."""
    inputs = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, T, F]}}
    inputs["config"].update(dtype="float32", sparse=False, ragged=False, name="input_1")
    config = {"class_name": "Sequential", "config": {"name": "rnns", "layers": [inputs, *layers]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.21.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        group = f.create_group("model_weights")
        names = [entry["config"]["name"] for entry in layers]
        group.attrs["layer_names"] = np.array(names, dtype=object)
        for name in names:
            layer_group = group.create_group(name)
            layer_group.attrs["weight_names"] = np.array(list(arrays[name]), dtype=object)
            for weight_name, array in arrays[name].items():
                layer_group.create_dataset(weight_name, data=array)


def random_weights(rng, gates, inputs, bias_shape):
    """(kernel, recurrent kernel, bias) of a cell with ``gates`` gates, float32."""
    shapes = [(inputs, gates * U), (U, gates * U), bias_shape]
    return [rng.normal(0.0, 1.5, shape).astype(np.float32) for shape in shapes]


def named(prefix, values):
    """tf_keras's weight names: ``<layer>/<cell>/kernel:0`` and so on."""
    parts = ("kernel", "recurrent_kernel", "bias")
    return {f"{prefix}/{part}:0": value for part, value in zip(parts, values)}


@pytest.fixture
def model_file(tmp_path):
    """Bidirectional(LSTM) -> Bidirectional(GRU) -> LSTM -> GRU, with known weights."""
    rng = np.random.default_rng(7)
    w = {
        "bi_lstm": [random_weights(rng, 4, F, (4 * U,)) for _ in range(2)],
        "bi_gru": [random_weights(rng, 3, 2 * U, (2, 3 * U)) for _ in range(2)],
        "plain_lstm": random_weights(rng, 4, 2 * U, (4 * U,)),
        "plain_gru": random_weights(rng, 3, U, (2, 3 * U)),
    }
    layers = [
        wrapped(rnn_config("LSTM", "lstm", True), "bi_lstm"),
        wrapped(rnn_config("GRU", "gru", True, reset_after=True), "bi_gru"),
        rnn_config("LSTM", "plain_lstm", True),
        rnn_config("GRU", "plain_gru", False, reset_after=True),
    ]
    arrays = {
        "bi_lstm": {
            **named("bi_lstm/forward_lstm/lstm_cell", w["bi_lstm"][0]),
            **named("bi_lstm/backward_lstm/lstm_cell", w["bi_lstm"][1]),
        },
        "bi_gru": {
            **named("bi_gru/forward_gru/gru_cell", w["bi_gru"][0]),
            **named("bi_gru/backward_gru/gru_cell", w["bi_gru"][1]),
        },
        "plain_lstm": named("plain_lstm/lstm_cell", w["plain_lstm"]),
        "plain_gru": named("plain_gru/gru_cell", w["plain_gru"]),
    }
    path = tmp_path / "rnns.h5"
    write_model(path, layers, arrays)
    return path, w


def reference(x, w, sigmoid):
    y = bidirectional(lstm, x, *w["bi_lstm"], sigmoid, sequences=True)
    y = bidirectional(gru, y, *w["bi_gru"], sigmoid, sequences=True)
    y = lstm(y, *w["plain_lstm"], sigmoid)
    return gru(y, *w["plain_gru"], sigmoid)[:, -1]


def test_hard_sigmoid_stays_tf_keras_s_inside_and_outside_bidirectional(model_file):
    path, w = model_file
    model = interop.load(path)
    for name in ("bi_lstm", "bi_gru"):
        wrapper = model.get_layer(name)
        assert isinstance(wrapper, keras.layers.Bidirectional)
        for direction in (wrapper.forward_layer, wrapper.backward_layer):
            assert direction.cell.recurrent_activation is activations.tf_keras_hard_sigmoid
    for name in ("plain_lstm", "plain_gru"):
        assert model.get_layer(name).cell.recurrent_activation is activations.tf_keras_hard_sigmoid
    x = np.random.default_rng(3).normal(0.0, 2.0, (4, T, F)).astype(np.float32)
    expected = reference(x.astype(np.float64), w, tf_keras_hard_sigmoid)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    # Keras 3's own hard sigmoid gives other outputs: the check can fail.
    other = reference(x.astype(np.float64), w, keras_3_hard_sigmoid)
    assert np.abs(other - expected).max() > 1e-2


def test_time_major_true_is_reported(model_file):
    path, _ = model_file
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][3]["config"]["time_major"] = True
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ValueError, match="rnns/plain_lstm: tf_keras LSTM with a config Keras 3"):
        interop.load(path)
