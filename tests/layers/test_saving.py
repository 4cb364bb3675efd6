"""Saving: a model of every tfqnn layer survives .keras files, fresh processes and export."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn.layers import (
    QuantActivation,
    QuantConv1D,
    QuantConv2D,
    QuantConv2DTranspose,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantSeparableConv2D,
)
from tfqnn.quantizers import DoReFa, FixedPoint, ScaledSign, StochasticSign

# The recurrent layers (tfqnn.layers.recurrent) save and load in test_recurrent.py.
RECURRENT = set(tfqnn.layers.recurrent.__all__)
TFQNN_LAYERS = set(tfqnn.layers.__all__) - {"QuantizerMixin", "QuantizedKernel"} - RECURRENT


def build_model():
    """A small functional model with every tfqnn layer and a mix of quantizers."""
    inputs = keras.Input((8, 8, 2))
    x = QuantConv2D(
        4,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        name="conv",
    )(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = QuantDepthwiseConv2D(
        3,
        depth_multiplier=2,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        depthwise_quantizer="scaled_sign",
        depthwise_constraint="weight_clip",
        name="depthwise",
    )(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = QuantSeparableConv2D(
        6,
        3,
        strides=2,
        padding="same",
        input_quantizer=DoReFa(2),
        depthwise_quantizer=DoReFa(2, mode="weights"),
        pointwise_quantizer="ste_tern",
        name="separable",
    )(x)  # 4x4x6
    x = QuantConv2DTranspose(
        3,
        3,
        strides=2,
        padding="same",
        input_quantizer="approx_sign",
        kernel_quantizer=ScaledSign(),
        kernel_constraint="weight_clip",
        name="transpose",
    )(x)  # 8x8x3
    x = QuantActivation(StochasticSign(seed=7), name="stochastic_act")(x)
    x = keras.layers.Reshape((64, 3))(x)
    x = QuantConv1D(
        4,
        3,
        strides=4,
        padding="causal",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint=tfqnn.constraints.WeightClip(0.5),
        name="conv1d",
    )(x)  # 16x4
    x = keras.layers.Flatten()(x)
    x = QuantDense(
        16,
        input_quantizer=FixedPoint(2, 4),
        kernel_quantizer=DoReFa(3, mode="weights"),
        bias_quantizer=FixedPoint(3, 3),
        name="dense",
    )(x)
    x = QuantActivation("ste_sign", name="sign_act")(x)
    outputs = QuantDense(
        5,
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        activation="softmax",
        name="head",
    )(x)
    return keras.Model(inputs, outputs, name="every_layer")


QUANTIZED_KERNELS = [
    ("conv", "kernel"),
    ("depthwise", "kernel"),
    ("separable", "depthwise_kernel"),
    ("separable", "pointwise_kernel"),
    ("transpose", "kernel"),
    ("conv1d", "kernel"),
    ("dense", "kernel"),
    ("dense", "bias"),
    ("head", "kernel"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The model trained one step, its predictions, and its .keras file."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    model = build_model()
    x = rng.normal(size=(8, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 5, size=8)
    before = {
        key: getattr(model.get_layer(key[0]), key[1]).numpy().copy() for key in QUANTIZED_KERNELS
    }
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    changed = {
        key: not np.array_equal(old, getattr(model.get_layer(key[0]), key[1]).numpy())
        for key, old in before.items()
    }
    predictions = model.predict(x, verbose=0)
    directory = tmp_path_factory.mktemp("saving")
    path = str(directory / "every_layer.keras")
    model.save(path)
    return {
        "model": model,
        "x": x,
        "predictions": predictions,
        "path": path,
        "dir": directory,
        "changed": changed,
    }


def test_model_has_every_layer_and_trained(trained):
    names = {type(layer).__name__ for layer in trained["model"].layers}
    assert names >= TFQNN_LAYERS
    # Every quantized kernel took the training step.
    assert all(trained["changed"].values()), trained["changed"]
    model = trained["model"]
    predictions = trained["predictions"]
    assert predictions.shape == (8, 5)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)
    # Inference is deterministic, the stochastic activation included.
    np.testing.assert_array_equal(model.predict(trained["x"], verbose=0), predictions)


def test_load_in_process(trained):
    loaded = keras.models.load_model(trained["path"])
    np.testing.assert_array_equal(loaded.predict(trained["x"], verbose=0), trained["predictions"])
    for original, layer in zip(trained["model"].layers, loaded.layers):
        assert type(layer) is type(original)
        assert layer.get_config() == original.get_config()
    assert isinstance(loaded.get_layer("conv1d").kernel_constraint, tfqnn.constraints.WeightClip)
    assert loaded.get_layer("conv1d").kernel_constraint.clip_value == 0.5
    assert loaded.get_layer("transpose").kernel_quantizer.axis == -2
    assert loaded.get_layer("depthwise").depthwise_quantizer.axis == (-2, -1)
    assert loaded.get_layer("dense").bias_quantizer == FixedPoint(3, 3)


FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    import tfqnn, keras, numpy
    model_path, x_path, out_path = sys.argv[1:4]
    model = keras.models.load_model(model_path)
    numpy.save(out_path, model.predict(numpy.load(x_path), verbose=0))
    print(",".join(type(layer).__name__ for layer in model.layers))
    """
)


def test_load_in_fresh_process_without_custom_objects(trained):
    x_path = str(trained["dir"] / "x.npy")
    out_path = str(trained["dir"] / "fresh_predictions.npy")
    np.save(x_path, trained["x"])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, trained["path"], x_path, out_path],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=os.path.dirname(os.path.dirname(tfqnn.__file__)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    classes = set(result.stdout.strip().splitlines()[-1].split(","))
    assert classes >= TFQNN_LAYERS
    np.testing.assert_array_equal(np.load(out_path), trained["predictions"])


def test_export_saved_model(trained):
    directory = str(trained["dir"] / "exported")
    trained["model"].export(directory, verbose=False)
    reloaded = tf.saved_model.load(directory)
    x = tf.constant(trained["x"])
    served = reloaded.serve(x).numpy()
    np.testing.assert_allclose(served, trained["predictions"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(reloaded.serve(x).numpy(), served)  # deterministic
    # The exported signature accepts other batch sizes.
    assert reloaded.serve(x[:3]).numpy().shape == (3, 5)
