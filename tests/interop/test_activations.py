"""tf_keras's activation names compute what tf_keras computed, inside its wrappers too.

The fixture (``make_fixtures_tfkeras.py``: ``tfkeras_activations``) has one
``Activation`` layer per name tf_keras 2.21 resolves, and ``hard_sigmoid``
in a Dense under ``TimeDistributed``, in an ``RNN`` of an LSTMCell and of
stacked GRU and SimpleRNN cells; its npz holds tf_keras's output of each.
Of those names only ``hard_sigmoid`` has another formula in Keras 3
(``clip(x / 6 + 1 / 2, 0, 1)`` against tf_keras's ``clip(0.2 x + 0.5, 0, 1)``);
the others, ``gelu`` (not approximate in both), ``selu``, ``elu``,
``softplus`` and ``leaky_relu`` (slope 0.2 in both) included, call the same
TensorFlow ops.
"""

import os

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn import interop
from tfqnn.interop import translate
from tfqnn.interop.report import Report

from . import _fixtures

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
DATA = np.load(os.path.join(FIXTURES, "tfkeras_activations.npz"))
OUTPUTS = sorted(k[len("y:") :] for k in DATA.files if k.startswith("y:"))
NAMES = [name[len("act_") :] for name in OUTPUTS if name.startswith("act_")]


@pytest.fixture(scope="module")
def loaded():
    model, report = interop.load_with_report(_fixtures.h5("tfkeras_activations"))
    outputs = model.predict(DATA["x"], verbose=0)
    return model, report, dict(zip(model.output_names, outputs))


def test_the_fixture_has_every_name():
    assert len(NAMES) == 18 and {"gelu", "selu", "hard_sigmoid", "leaky_relu"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_activation_equals_tf_keras(loaded, name):
    _, _, outputs = loaded
    expected = DATA[f"y:act_{name}"]
    np.testing.assert_allclose(outputs[f"act_{name}"], expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "name",
    [
        "time_distributed_dense",
        "time_distributed_act",
        "rnn_lstm_cell",
        "rnn_stacked_cells",
        "conv_gelu",
    ],
)
def test_wrapped_layers_equal_tf_keras(loaded, name):
    _, _, outputs = loaded
    np.testing.assert_allclose(outputs[name], DATA[f"y:{name}"], rtol=1e-5, atol=1e-6)


def test_hard_sigmoid_is_tf_keras_s_inside_wrappers(loaded):
    model, report, _ = loaded
    x = DATA["x"]
    # Keras 3's hard_sigmoid differs on these inputs: the mapping matters.
    keras3 = keras.ops.convert_to_numpy(keras.activations.hard_sigmoid(x))
    assert np.abs(keras3 - DATA["y:act_hard_sigmoid"]).max() > 0.05
    tf_keras_hard_sigmoid = tfqnn.activations.tf_keras_hard_sigmoid
    assert model.get_layer("time_distributed_dense").layer.activation is tf_keras_hard_sigmoid
    assert model.get_layer("time_distributed_act").layer.activation is tf_keras_hard_sigmoid
    cell = model.get_layer("rnn_lstm_cell").cell
    assert cell.activation is tf_keras_hard_sigmoid
    assert cell.recurrent_activation is tf_keras_hard_sigmoid
    gru, simple = model.get_layer("rnn_stacked_cells").cell.cells
    assert gru.recurrent_activation is tf_keras_hard_sigmoid
    assert simple.activation is tf_keras_hard_sigmoid
    rows = {m.path: m.target for m in report.mappings}
    assert rows["tfkeras_activations/time_distributed_dense"] == "keras.TimeDistributed"
    assert rows["tfkeras_activations/rnn_stacked_cells"] == "keras.RNN"


def test_saves_and_loads(loaded, tmp_path):
    model, _, outputs = loaded
    model.save(tmp_path / "activations.keras")
    restored = keras.models.load_model(tmp_path / "activations.keras")
    again = dict(zip(restored.output_names, restored.predict(DATA["x"], verbose=0)))
    for name, value in outputs.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)


def test_peer_layers_inside_time_distributed_are_mapped():
    """A larq layer under TimeDistributed becomes tfqnn's, applied per time step."""
    inner = {
        "class_name": "QuantDense",
        "config": {
            "name": "quant_dense",
            "units": 3,
            "input_quantizer": "ste_sign",
            "kernel_quantizer": "ste_sign",
            "kernel_constraint": "weight_clip",
            "use_bias": False,
        },
    }
    entry = {"class_name": "TimeDistributed", "config": {"name": "td", "layer": inner}}
    report = Report()
    layer = translate.layer(entry, "model", report)
    assert not report.issues
    assert isinstance(layer.layer, tfqnn.layers.QuantDense)
    assert layer.layer.kernel_quantizer == tfqnn.quantizers.SteSign()
    x = np.random.default_rng(0).normal(size=(2, 4, 5)).astype(np.float32)
    y = keras.ops.convert_to_numpy(layer(x))
    kernel = np.sign(layer.layer.kernel.numpy())
    np.testing.assert_allclose(y, np.sign(x) @ kernel, atol=1e-5)
    assert [m.target for m in report.mappings] == ["tfqnn.QuantDense", "keras.TimeDistributed"]
