"""cluster(bias_correction=True): hidden biases absorb the mean pre-activation shift."""

import importlib
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.codebook._models import trained_mlp
from tfqnn import codebook
from tfqnn.codebook import bias_correction


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 1.0, size=(300, 8)).astype("float32")  # non-negative, as pixels
    y = (x[:, 0] > x[:, 1]).astype("int32")
    return x, y


@pytest.fixture(scope="module")
def mlp(data):
    return trained_mlp(*data, {"fc1": 10, "fc2": 6}, classes=2, epochs=2)


def _relu(z):
    return np.maximum(z, 0.0)


def _weights(model, name):
    layer = model.get_layer(name)
    if isinstance(layer, codebook.Clustered):
        return layer.decoded_kernels()["kernel"], layer.layer.bias.numpy()
    return layer.kernel.numpy(), layer.bias.numpy()


def test_hidden_biases_follow_the_formula(mlp, data):
    x = data[0]
    clustered = codebook.cluster(mlp, 2, bias_correction=True, data=data)
    plain = codebook.cluster(mlp, 2)  # same codebooks, biases copied
    w1, b1 = _weights(mlp, "fc1")
    w2, b2 = _weights(mlp, "fc2")
    q1, c1 = _weights(clustered, "fc1")
    q2, c2 = _weights(clustered, "fc2")
    np.testing.assert_array_equal(q1, _weights(plain, "fc1")[0])
    # first layer, equal inputs: b + mean(x) (W - Q)
    np.testing.assert_allclose(c1, b1 + x.mean(0) @ (w1 - q1), rtol=1e-5, atol=1e-6)
    # second layer: its input already comes from the corrected first layer
    h_float = _relu(x @ w1 + b1)
    h_clustered = _relu(x @ q1 + c1)
    expected = b2 + (h_float @ w2 - h_clustered @ q2).mean(0)
    np.testing.assert_allclose(c2, expected, rtol=1e-5, atol=1e-5)
    # the output layer is left alone
    np.testing.assert_array_equal(_weights(clustered, "out")[1], _weights(mlp, "out")[1])
    assert not np.allclose(c1, b1, atol=1e-4)  # the correction did something


def test_corrected_layer_has_the_float_mean_pre_activation(mlp, data):
    x = data[0]
    clustered = codebook.cluster(mlp, 2, scope="model", bias_correction=True, data=data)
    w1, b1 = _weights(mlp, "fc1")
    q1, c1 = _weights(clustered, "fc1")
    np.testing.assert_allclose((x @ q1 + c1).mean(0), (x @ w1 + b1).mean(0), atol=1e-5)
    # without the correction the means differ
    q0, c0 = _weights(codebook.cluster(mlp, 2, scope="model"), "fc1")
    assert np.max(np.abs((x @ q0 + c0).mean(0) - (x @ w1 + b1).mean(0))) > 1e-3


def test_convolution_means_over_positions(data):
    rng = np.random.default_rng(2)
    x = rng.uniform(0.0, 1.0, size=(40, 5, 5, 2)).astype("float32")
    y = rng.integers(0, 3, size=40)
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5, 5, 2))
    h = keras.layers.Conv2D(4, 2, activation="relu", name="conv")(inputs)
    h = keras.layers.Flatten()(h)
    logits = keras.layers.Dense(3, name="logits")(h)
    outputs = keras.layers.Activation("softmax")(logits)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    clustered = codebook.cluster(model, 2, bias_correction=True, data=(x, y))
    w, b = _weights(model, "conv")
    q, c = _weights(clustered, "conv")
    patches = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2))
    # patches: (n, 4, 4, channels, 2, 2) -> (n * 16, 2, 2, channels) as the kernel's (kh, kw, in)
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 2 * 2 * 2)
    expected = b + patches.mean(0) @ (w - q).reshape(-1, 4)
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-6)
    # the Dense before the softmax Activation is an output layer: not corrected
    assert bias_correction.output_layers(clustered) >= {"logits"}
    np.testing.assert_array_equal(_weights(clustered, "logits")[1], _weights(model, "logits")[1])


def test_default_leaves_biases(mlp, data):
    clustered = codebook.cluster(mlp, 2, data=data)
    for name in ("fc1", "fc2", "out"):
        np.testing.assert_array_equal(_weights(clustered, name)[1], _weights(mlp, name)[1])


def test_layers_without_bias_are_skipped(data):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(5, use_bias=False, activation="relu", name="nobias"),
            keras.layers.Dense(2, activation="softmax", name="out"),
        ]
    )
    clustered = codebook.cluster(model, 2)
    shifts = bias_correction.correct_biases(model, clustered, data[0])
    assert shifts == {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bias_correction": True}, "bias_correction=True needs data"),
        ({"bias_correction": 1, "data": "x"}, "bias_correction=1"),
    ],
)
def test_bad_bias_correction(mlp, kwargs, match):
    with pytest.raises(ValueError, match=match):
        codebook.cluster(mlp, 2, **kwargs)


def test_equals_the_benchmark_s_sequential_correction(mlp, data):
    """benchmarks/codebook_importance.py's own layer-by-layer loop, hidden layers only."""
    benchmarks = str(Path(__file__).resolve().parents[2] / "benchmarks")
    sys.path.insert(0, benchmarks)
    try:
        script = importlib.import_module("codebook_importance")
    finally:
        sys.path.remove(benchmarks)
    ours = codebook.cluster(mlp, 2, scope="model", bias_correction=True, data=data)
    theirs = codebook.cluster(mlp, 2, scope="model")
    script.bias_corrected(mlp, theirs, data[0], output=False)
    for name in ("fc1", "fc2", "out"):
        np.testing.assert_allclose(
            _weights(ours, name)[1], _weights(theirs, name)[1], rtol=1e-5, atol=1e-6
        )
