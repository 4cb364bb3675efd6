"""Quantizers that own weights (Quantizer.build_weights): the layer holds them in a
QuantizerWeights sublayer, fit trains them, saving keeps them."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn.layers.base import QuantizerWeights
from tfqnn.quantizers import MultiBinary, MultiBinaryActivation


def abc_model():
    keras.utils.set_random_seed(4)
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            tfqnn.layers.QuantConv2D(4, 3, name="conv"),
            tfqnn.layers.QuantActivation(MultiBinaryActivation(2), name="act"),
            tfqnn.layers.QuantConv2D(
                4,
                3,
                input_quantizer="multi_binary_activation",
                kernel_quantizer=MultiBinary(3, axis=-1),
                name="abc",
            ),
            keras.layers.Flatten(),
            tfqnn.layers.QuantDense(2, input_quantizer=MultiBinaryActivation(1), name="out"),
        ]
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model = abc_model()
    model.compile(keras.optimizers.Adam(0.05), "mse")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 2, (32, 6, 6, 1)).astype(np.float32)
    y = rng.normal(size=(32, 2)).astype(np.float32)
    initial = {w.path: w.numpy().copy() for w in model.weights}
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path_factory.mktemp("quantizer_weights") / "abc.keras"
    model.save(path)
    return {"model": model, "x": x, "initial": initial, "path": str(path)}


def test_weights_live_in_a_sublayer_and_are_trained(trained):
    model = trained["model"]
    for name, attribute, bases in [
        ("act", "_quantizer_weights", 2),
        ("abc", "_input_quantizer_weights", 3),
        ("out", "_input_quantizer_weights", 1),
    ]:
        layer = model.get_layer(name)
        holder = getattr(layer, attribute)
        assert isinstance(holder, QuantizerWeights)
        quantizer = layer.quantizer if name == "act" else layer.input_quantizer
        assert [w.shape for w in holder.trainable_weights] == [(bases,), (bases,)]
        assert all(any(w is v for v in layer.trainable_weights) for w in holder.weights)
        for weight in (quantizer.shifts, quantizer.scales):
            assert not np.array_equal(weight.numpy(), trained["initial"][weight.path]), weight.path
    # Layers whose quantizers own nothing keep exactly their Keras parent's variables.
    conv = model.get_layer("conv")
    assert [w.path.split("/")[-1] for w in conv.weights] == ["kernel", "bias"]
    assert not any(isinstance(sub, QuantizerWeights) for sub in conv._layers)


def test_frozen_layer_freezes_its_quantizer_weights():
    layer = tfqnn.layers.QuantDense(3, input_quantizer=MultiBinaryActivation(2))
    layer.build((None, 4))
    layer.trainable = False
    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 4


def test_load_in_process_and_weights_checkpoint(trained, tmp_path):
    model, x = trained["model"], trained["x"]
    loaded = keras.models.load_model(trained["path"])
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(
        loaded.get_layer("abc").input_quantizer.shifts.numpy(),
        model.get_layer("abc").input_quantizer.shifts.numpy(),
    )
    weights = str(tmp_path / "abc.weights.h5")
    model.save_weights(weights)
    fresh = abc_model()
    fresh.load_weights(weights)
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    import tfqnn, keras, numpy
    model = keras.models.load_model(sys.argv[1])
    numpy.save(sys.argv[3], model.predict(numpy.load(sys.argv[2]), verbose=0))
    print(model.get_layer("abc").input_quantizer.scales.numpy().tolist())
    """
)


@pytest.mark.slow
def test_load_in_fresh_process(trained, tmp_path):
    x_path, out = str(tmp_path / "x.npy"), str(tmp_path / "out.npy")
    np.save(x_path, trained["x"])
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, trained["path"], x_path, out],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        cwd=os.path.dirname(os.path.dirname(tfqnn.__file__)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model = trained["model"]
    np.testing.assert_array_equal(np.load(out), model.predict(trained["x"], verbose=0))
    scales = model.get_layer("abc").input_quantizer.scales.numpy().tolist()
    assert result.stdout.strip().splitlines()[-1] == str(scales)


class OwnScale(tfqnn.quantizers.Quantizer):
    """A quantizer with a weight of its own and no guard of its own: ``x * scale``."""

    precision = 32

    def __init__(self):
        self.scale = None

    def build_weights(self, add_weight, name):
        self.scale = add_weight(shape=(), initializer="ones", name=f"{name}_scale")

    def call(self, x, training=None):
        return x * self.scale

    def get_config(self):
        return {}


@pytest.mark.parametrize(
    "make",
    [
        lambda q: tfqnn.layers.QuantDense(2, input_quantizer=q),
        lambda q: tfqnn.layers.QuantActivation(q),
        lambda q: tfqnn.layers.QuantLSTMCell(2, kernel_quantizer=q),
    ],
    ids=["dense", "activation", "cell"],
)
def test_an_instance_that_owns_weights_serves_one_layer(make):
    shared = OwnScale()
    first = make(shared)
    assert any(w is shared.scale for w in first.weights)
    path = shared.scale.path
    with pytest.raises(ValueError, match=rf"OwnScale already owns the weights \['{path}'\]: an "):
        make(shared)
    fresh = OwnScale()  # a fresh instance is fine
    second = make(fresh)
    assert any(w is fresh.scale for w in second.weights)
    assert not any(w is shared.scale for w in second.weights)
