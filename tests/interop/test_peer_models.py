"""Peer models saved by tf_keras load into tfqnn with the peer's outputs, gradients and training.

The fixtures (``fixtures/*.h5`` and ``.npz``) come from the real peers on
tf_keras 2.21: larq 0.14 (``make_fixtures_larq.py``) and tf_keras itself
(``make_fixtures_tfkeras.py``); the npz files hold the peer's predictions,
its training-mode outputs and its gradients on one batch.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import interop, quantizers

from . import _fixtures

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
MODELS = [
    "tfkeras_functional",
    "tfmot_pruned",
    "tfmot_clustered",
    "tfmot_pruned_wrapped",
    "tfmot_clustered_wrapped",
    "qkeras_cnn",
    "qkeras_conv1d",
    "qkeras_rnn",
    "qkeras_rnn_activations",
    "larq_tutorial_bnn",
    "larq_every_layer",
    "larq_conv1d",
    "larq_tiny",
    "larq_zoo_blocks",
]


def fixture(name):
    return _fixtures.h5(name), np.load(os.path.join(FIXTURES, name + ".npz"))


@pytest.fixture(scope="module", params=MODELS)
def loaded(request):
    path, data = fixture(request.param)
    return request.param, interop.load(path), data


def test_predictions_equal_the_peers(loaded):
    _, model, data = loaded
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)


def test_training_outputs_and_gradients_equal_the_peers(loaded):
    """Training mode (batch statistics, the STEs) gives larq's outputs and gradients."""
    _, model, data = loaded
    for layer in model.layers:  # as the fixture scripts do
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    with tf.GradientTape() as tape:
        y = model(data["x_train"], training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(data["y_train"], y))
    # Batch statistics of float layers round differently in tf_keras (fused
    # BatchNorm) and Keras 3: 1e-4 on probabilities.
    np.testing.assert_allclose(y.numpy(), data["y_training"], rtol=1e-4, atol=1e-4)
    expected = {k[len("grad:") :]: data[k] for k in data.files if k.startswith("grad:")}
    if not expected:
        return  # the tutorial model's fixture keeps no gradients (size)
    names = [f"{lay.name}/{w.name}" for lay in model.layers for w in lay.trainable_weights]
    weights = [w for lay in model.layers for w in lay.trainable_weights]
    grads = dict(zip(names, tape.gradient(loss, weights)))
    # tf_keras names a depthwise layer's kernel "depthwise_kernel", Keras 3 "kernel";
    # tfmot's centroids "cluster_centroids_kernel" (k,), tfqnn's "kernel_centroids" (1, k, 1).
    renamed = {
        k if k in grads else k.replace("/depthwise_kernel", "/kernel"): v
        for k, v in expected.items()
    }
    for key in [k for k in renamed if "/cluster_centroids_" in k]:
        kernel = key.rsplit("/cluster_centroids_", 1)[1]
        new_key = key.replace(f"/cluster_centroids_{kernel}", f"/{kernel}_centroids")
        renamed[new_key] = renamed.pop(key)[None, :, None]
    for lay in model.layers:
        if isinstance(lay, tfqnn.codebook.Pruned):
            # tfmot computes the pruned weights' gradient, then masks them after the
            # step; tfqnn's fixed mask gives them zero gradient: equal on the kept ones.
            for kernel in lay.kernels:
                renamed[f"{lay.name}/{kernel}"] *= lay.mask(kernel).numpy()
    assert sorted(renamed) == sorted(grads)
    for name, grad in renamed.items():
        # Float rounding through deep float layers (LayerNormalization, tanh)
        # reaches 1e-3 of a gradient's scale; a wrong estimator changes it by O(1).
        scale = np.abs(grad).max()
        np.testing.assert_allclose(
            grads[name].numpy(), grad, rtol=1e-3, atol=max(1e-3 * scale, 1e-6), err_msg=name
        )


def test_mapped_layers_and_quantizers():
    path, _ = fixture("larq_every_layer")
    model = interop.load(path)
    layer = {type(layer).__name__: layer for layer in model.layers}
    separable = layer["QuantSeparableConv2D"]
    assert separable.input_quantizer == quantizers.SwishSign(beta=4.0)
    # larq SteTern(threshold_value=0.1) keeps |x| >= 0.1: the float32 below 0.1, strictly.
    tern = separable.depthwise_quantizer
    assert tern.threshold == float(np.nextafter(np.float32(0.1), np.float32(0)))
    assert tern.scaled is False
    x = np.array([0.1, -0.1, 0.0999999, 0.5], np.float32)
    np.testing.assert_array_equal(tern(x).numpy(), [1.0, -1.0, 0.0, 1.0])
    assert separable.pointwise_quantizer == quantizers.SteTern(None, scaled=False, clip_value=None)
    assert separable.pad_values == 1.0
    depthwise = layer["QuantDepthwiseConv2D"]
    assert depthwise.depthwise_quantizer == quantizers.MagnitudeAwareSign(clip_value=1.5)
    assert depthwise.depthwise_constraint.clip_value == 1.5
    transpose = layer["QuantConv2DTranspose"]
    assert transpose.input_quantizer == quantizers.SteHeaviside()
    assert transpose.kernel_quantizer == quantizers.SteSign(clip_value=1.25)
    dorefa = [lay for lay in model.layers if lay.name == "quant_conv2d_4"][0]
    assert dorefa.input_quantizer == quantizers.DoReFa(2, "activations")
    assert dorefa.kernel_quantizer == quantizers.DoReFaWeights(3)


def test_verbose_prints_the_mapping(capsys):
    path, _ = fixture("larq_conv1d")
    interop.load(path, verbose=True)
    out = capsys.readouterr().out
    assert "larq_conv1d/quant_conv1d_1" in out
    assert "larq.QuantConv1D" in out and "tfqnn.QuantConv1D" in out
    assert "tf_keras.BatchNormalization" in out and "keras.BatchNormalization" in out
    # The file holds an Adam state: ignored, with a notice.
    assert "notice: the file's compile state" in out
    _, report = interop.load_with_report(path)
    assert [m.path.split("/")[1] for m in report.mappings][:2] == [
        "quant_conv1d",
        "batch_normalization_9",
    ]


def test_trains_saves_and_exports(tmp_path):
    """The tutorial BNN trains in fit, keeps weight_clip, saves to .keras, exports binary ops."""
    path, data = fixture("larq_tutorial_bnn")
    model = interop.load(path)
    x = np.concatenate([data["x"], data["x_train"]])
    y = np.concatenate([data["y"].argmax(-1), data["y_train"]])
    before = [w.numpy() for w in model.trainable_weights]
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.trainable_weights
    assert all(not np.array_equal(b, a.numpy()) for b, a in zip(before, after))
    for layer in model.layers:
        if isinstance(layer, (tfqnn.layers.QuantConv2D, tfqnn.layers.QuantDense)):
            assert np.abs(layer.kernel.numpy()).max() <= 1.0  # larq's weight_clip, mapped

    saved = tmp_path / "bnn.keras"
    model.save(saved)
    restored = keras.models.load_model(saved)
    np.testing.assert_array_equal(
        restored.predict(data["x"], verbose=0), model.predict(data["x"], verbose=0)
    )

    content = tfqnn.export.to_tflite(model)
    ops = tfqnn.lite.custom_ops_in(content)
    assert ops.get("TfqnnBconv2d") == 2 and ops.get("TfqnnBdense") == 2, ops
    lite = tfqnn.lite.Interpreter(model_content=content).predict(data["x"])
    np.testing.assert_allclose(lite, model.predict(data["x"], verbose=0), atol=1e-4)


def test_qkeras_mapping():
    path, _ = fixture("qkeras_cnn")
    model, report = interop.load_with_report(path)
    get = model.get_layer
    assert get("qconv").kernel_quantizer == quantizers.QuantizedBits(6, 0, alpha=1.0)
    assert get("qconv").kernel_constraint.clip_value == 1.0  # QKeras's Clip(-1, 1)
    assert get("qrelu").quantizer == quantizers.QuantizedRelu(4, 1)
    assert get("qdepthwise").depthwise_quantizer == quantizers.QuantizedPo2(4, max_value=1.0)
    assert get("qbits").quantizer == quantizers.QuantizedBits(8, 2, symmetric=True)
    tern = get("qternary").kernel_quantizer
    assert tern.threshold == float(np.nextafter(np.float32(0.33), np.float32(0)))
    assert (tern.scaled, tern.clip_value) == (False, None)
    # QDense gave quantized_bits(4, 0, 1) QKeras's default kernel alpha, "auto_po2".
    assert get("qdense").kernel_quantizer == quantizers.QuantizedBits(4, 0, True, alpha="auto_po2")
    assert get("qternary_auto").kernel_quantizer == quantizers.QuantizedTernary("auto_po2")
    pointwise = get("qseparable").pointwise_quantizer
    assert pointwise == quantizers.QuantizedBits(5, 0, True, alpha="auto")
    # Bias quantizers: dict and string forms, alpha "auto" on a bias (one scale per entry).
    assert get("qternary").bias_quantizer == quantizers.QuantizedBits(6, 2, alpha=1.0)
    assert get("qdepthwise").bias_quantizer == quantizers.QuantizedPo2(5)
    assert get("qseparable").bias_quantizer == quantizers.QuantizedBits(5, 1, True, alpha=1.0)
    assert get("qdense").bias_quantizer == quantizers.QuantizedBits(8, 3, alpha="auto")
    for name in ("qternary", "qdepthwise", "qseparable"):
        # The trained float biases are off the grid: ignoring the quantizer changes outputs.
        bias = get(name).bias.numpy()
        assert np.abs(get(name).quantized_bias().numpy() - bias).max() > 1e-3, name
    rows = {m.path: m for m in report.mappings}
    assert "bias_quantizer=quantized_po2(bits=5" in rows["qkeras_cnn/qdepthwise"].source_quantizers
    assert rows["qkeras_cnn/qrelu"].source == "QKeras.QActivation"
    assert rows["qkeras_cnn/qrelu"].target_quantizers == "QuantizedRelu(bits=4, integer=1)"
    conv1d = interop.load(fixture("qkeras_conv1d")[0])
    assert conv1d.get_layer("qconv1d").bias_quantizer == quantizers.QuantizedBits(4, 1, alpha=1.0)
    assert conv1d.get_layer("qdense").bias_quantizer == quantizers.QuantizedBits(6, 2, alpha=1.0)
    # QKeras's stochastic quantizers, as they compute on TensorFlow 2 (no sampling).
    stochastic_binary = conv1d.get_layer("qdense_stochastic_binary").kernel_quantizer
    assert stochastic_binary == quantizers.QuantizedBinary("auto_po2")
    below = float(np.nextafter(np.float32(0.2), np.float32(0)))
    stochastic_ternary = conv1d.get_layer("qstochastic_ternary").quantizer
    assert stochastic_ternary == quantizers.SteTern(below, scaled=False, clip_value=None)
    assert conv1d.get_layer("qbinary").quantizer == quantizers.SteSign(clip_value=None)
    assert conv1d.get_layer("qdense_binary").kernel_quantizer == quantizers.QuantizedBinary()
    assert conv1d.get_layer("qunsigned").quantizer == quantizers.QuantizedBits(
        4, 0, keep_negative=False
    )


def test_qkeras_model_trains_saves_and_exports(tmp_path):
    path, data = fixture("qkeras_cnn")
    model = interop.load(path)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x = np.concatenate([data["x"], data["x_train"]])
    y = np.concatenate([data["y"].argmax(-1), data["y_train"]])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.abs(model.get_layer("qconv").kernel.numpy()).max() <= 1.0
    saved = tmp_path / "qkeras.keras"
    model.save(saved)
    restored = keras.models.load_model(saved)
    expected = model.predict(data["x"], verbose=0)
    np.testing.assert_array_equal(restored.predict(data["x"], verbose=0), expected)
    content = tfqnn.export.to_tflite(model)
    lite = tfqnn.lite.Interpreter(model_content=content).predict(data["x"])
    np.testing.assert_allclose(lite, expected, atol=1e-4)


def test_wrapped_tfmot_models_keep_mask_and_clusters_in_fit_save_and_export(tmp_path):
    """prune_low_magnitude's mask stays (zeros stay zero); cluster_weights' codebook trains."""
    for name in ("tfmot_pruned_wrapped", "tfmot_clustered_wrapped"):
        path, data = fixture(name)
        model, report = interop.load_with_report(path)
        schedule_notice = any("schedules are not continued" in n for n in report.notices)
        assert schedule_notice == (name == "tfmot_pruned_wrapped")
        wrappers = [lay for lay in model.layers if isinstance(lay, tfqnn.codebook.KernelWrapper)]
        assert [lay.name.split("_")[-1] for lay in wrappers] == ["conv", "hidden", "classes"]
        masks = {}
        for lay in wrappers:
            if isinstance(lay, tfqnn.codebook.Pruned):
                masks[lay.name] = lay.mask("kernel").numpy()
                kernel = lay.decoded_kernels()["kernel"]
                assert np.mean(masks[lay.name] == 0) == pytest.approx(0.5, abs=0.02)
                assert np.all(kernel[masks[lay.name] == 0] == 0)
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        x = np.concatenate([data["x"], data["x_train"]])
        y = np.concatenate([data["y"].argmax(-1), data["y_train"]])
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        for lay in wrappers:
            kernel = lay.decoded_kernels()["kernel"]
            if isinstance(lay, tfqnn.codebook.Pruned):
                np.testing.assert_array_equal(lay.mask("kernel").numpy(), masks[lay.name])
                assert np.all(kernel[masks[lay.name] == 0] == 0)
                assert np.any(kernel[masks[lay.name] == 1] != 0)
            else:
                centroids = lay.centroids("kernel").numpy().ravel()
                assert set(np.unique(kernel)) <= set(centroids) and len(centroids) == 16
        expected = model.predict(data["x"], verbose=0)
        model.save(tmp_path / f"{name}.keras")
        restored = keras.models.load_model(tmp_path / f"{name}.keras")
        np.testing.assert_array_equal(restored.predict(data["x"], verbose=0), expected)
        # Clustered kernels export as their decoded float kernels (docs/codebook.md).
        content = tfqnn.export.to_tflite(
            tfqnn.codebook.strip(model) if "clustered" in name else model
        )
        lite = tfqnn.lite.Interpreter(model_content=content).predict(data["x"])
        np.testing.assert_allclose(lite, expected, atol=1e-4)


def test_stripped_tfmot_models_keep_their_zeros_and_clusters():
    """tfmot's stripped models are plain tf_keras ones: zeros and shared values load as they are."""
    pruned = interop.load(fixture("tfmot_pruned")[0])
    for name in ("hidden", "classes"):
        kernel = pruned.get_layer(name).kernel.numpy()
        assert np.mean(kernel == 0) == pytest.approx(0.75, abs=0.01)
    clustered = interop.load(fixture("tfmot_clustered")[0])
    for name in ("hidden", "classes"):
        assert len(np.unique(clustered.get_layer(name).kernel.numpy())) <= 8
