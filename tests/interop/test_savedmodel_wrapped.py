"""SavedModel directories of nested models and of tfmot's wrapped models, read without tf_keras.

The fixtures (``make_fixtures_tfkeras.py``) are committed without
``saved_model.pb``: ``tfmot_savedmodel`` (a Sequential ``backbone`` used as
a layer, then a ``prune_low_magnitude`` and a ``cluster_weights`` Dense
with their wrappers) and ``tfmot_qat_savedmodel`` (``quantize_model`` of a
CNN with a BatchNormalization). The checkpoint's
object graph says which layer, wrapped layer or nested model's layer each
variable belongs to.
"""

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import interop
from tfqnn.interop import savedmodel

from ._damage import truncated_or_flipped

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
NAMES = ("tfmot_savedmodel", "tfmot_qat_savedmodel")


def directory(name):
    return os.path.join(FIXTURES, name)


def data(name):
    return np.load(os.path.join(FIXTURES, name + ".npz"))


def trainable(model):
    """The trainable weights and the fixture's names of them: ``layer/weight``, ``backbone/layer/weight``."""
    names, weights = [], []
    for layer in model.layers:
        if layer.name == "backbone":  # the model used as a layer
            for inner in layer.layers:
                names += [f"backbone/{inner.name}/{w.name}" for w in inner.trainable_weights]
                weights += inner.trainable_weights
        else:
            names += [f"{layer.name}/{w.name}" for w in layer.trainable_weights]
            weights += layer.trainable_weights
    return names, weights


def expected_gradients(model, found):
    """The peer's gradients under tfqnn's names (tfmot's centroids and masks made tfqnn's)."""
    expected = {k[len("grad:") :]: found[k] for k in found.files if k.startswith("grad:")}
    renamed = {}
    for name, grad in expected.items():
        if "/cluster_centroids_" in name:
            layer, kernel = name.split("/cluster_centroids_")
            renamed[f"{layer}/{kernel}_centroids"] = grad[None, :, None]
        else:
            renamed[name.replace("/depthwise_kernel", "/kernel")] = grad
    for layer in model.layers:
        if isinstance(layer, tfqnn.codebook.Pruned):
            for kernel in layer.kernels:  # tfqnn's fixed mask: no gradient on pruned weights
                renamed[f"{layer.name}/{kernel}"] *= layer.mask(kernel).numpy()
    return renamed


@pytest.mark.parametrize("name", NAMES)
def test_outputs_and_gradients_equal_the_peers(name):
    found = data(name)
    model = interop.load(directory(name))
    np.testing.assert_allclose(
        model.predict(found["x"], verbose=0), found["y"], rtol=1e-5, atol=1e-6
    )
    assert len(trainable(model)[1]) == len(model.trainable_weights)
    with tf.GradientTape() as tape:
        y = model(found["x_train"], training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(found["y_train"], y))
    np.testing.assert_allclose(y.numpy(), found["y_training"], rtol=1e-5, atol=1e-6)
    names, weights = trainable(model)
    grads = dict(zip(names, tape.gradient(loss, weights)))
    expected = expected_gradients(model, found)
    assert sorted(grads) == sorted(expected)
    for key, grad in expected.items():
        # A bias before a BatchNormalization has a zero gradient in training: rounding, 1e-7.
        scale = np.abs(grad).max()
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(grads[key]), grad, atol=max(1e-4 * scale, 1e-6), err_msg=key
        )


def test_the_nested_model_and_the_quantizers_are_the_checkpoint_s():
    model = interop.load(directory("tfmot_savedmodel"))
    backbone = model.get_layer("backbone")
    assert isinstance(backbone, keras.Sequential)
    reader = tf.train.load_checkpoint(
        os.path.join(directory("tfmot_savedmodel"), "variables", "variables")
    )
    # tf_keras saves a nested model's variables as the outer model's variables/<index>.
    arrays = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "ATTR" in k]
    mean = backbone.get_layer("bn").moving_mean.numpy()
    assert np.abs(mean).min() > 0  # trained, not the initial zeros
    assert sum(a.shape == mean.shape and np.array_equal(a, mean) for a in arrays) == 1
    qat = interop.load(directory("tfmot_qat_savedmodel"))
    conv = qat.get_layer("quant_conv")
    assert isinstance(conv, tfqnn.layers.QuantConv2D)  # before a BatchNormalization: alone
    reader = tf.train.load_checkpoint(
        os.path.join(directory("tfmot_qat_savedmodel"), "variables", "variables")
    )
    keys = reader.get_variable_to_shape_map()
    highs = [k for k in keys if k.endswith("/kernel_max/.ATTRIBUTES/VARIABLE_VALUE")]
    assert len(highs) == 2
    assert any(
        np.array_equal(conv.kernel_quantizer.max_var.numpy(), reader.get_tensor(k)) for k in highs
    )


def test_wrappers_keep_the_masks_and_centroids_of_the_checkpoint():
    model, report = interop.load_with_report(directory("tfmot_savedmodel"))
    reader = tf.train.load_checkpoint(
        os.path.join(directory("tfmot_savedmodel"), "variables", "variables")
    )
    keys = reader.get_variable_to_shape_map()
    pruned = model.get_layer("prune_low_magnitude_hidden")
    assert isinstance(pruned, tfqnn.codebook.Pruned)
    mask = pruned.mask("kernel").numpy()
    [mask_key] = [k for k in keys if k.endswith("/mask/.ATTRIBUTES/VARIABLE_VALUE")]
    np.testing.assert_array_equal(mask, reader.get_tensor(mask_key))
    assert np.mean(mask == 0) == pytest.approx(0.5, abs=0.02)
    assert np.all(pruned.decoded_kernels()["kernel"][mask == 0] == 0)
    clustered = model.get_layer("cluster_classes")
    assert isinstance(clustered, tfqnn.codebook.Clustered)
    [centroids_key] = [k for k in keys if "/cluster_centroids_kernel/" in k]
    centroids = reader.get_tensor(centroids_key)
    np.testing.assert_array_equal(clustered.centroids("kernel").numpy().ravel(), centroids)
    assert set(np.unique(clustered.decoded_kernels()["kernel"])) <= set(centroids)
    assert [m.target for m in report.mappings if m.source.startswith("tfmot")] == [
        "tfqnn.Pruned",
        "tfqnn.Clustered",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_trains_saves_and_exports(tmp_path, name):
    found = data(name)
    model = interop.load(directory(name))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x = np.concatenate([found["x"], found["x_train"]])
    y = np.concatenate([found["y"].argmax(-1), found["y_train"]])
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    expected = model.predict(found["x"], verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(restored.predict(found["x"], verbose=0), expected)
    exported = tfqnn.codebook.strip(model) if name == "tfmot_savedmodel" else model
    lite = tfqnn.lite.Interpreter(model_content=tfqnn.export.to_tflite(exported, verbose=0))
    np.testing.assert_allclose(lite.predict(found["x"]), expected, atol=1e-4)


def test_object_graph_fields():
    """Children and VARIABLE_VALUE keys as TrackableObjectGraph encodes them."""
    reference = bytes([0x08, 0x01, 0x12, 0x06]) + b"kernel"  # node_id 1, local_name
    tensor = bytes([0x0A, 0x0E]) + b"VARIABLE_VALUE" + bytes([0x1A, 0x03]) + b"k/v"
    root = bytes([0x0A, len(reference)]) + reference
    leaf = bytes([0x12, len(tensor)]) + tensor
    graph = bytes([0x0A, len(root)]) + root + bytes([0x0A, len(leaf)]) + leaf
    assert savedmodel._object_graph(graph) == [([("kernel", 1)], []), ([], ["k/v"])]


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_metadata(tmp_path, name):
    """Truncated and bit-flipped keras_metadata.pb of wrapped and nested models: a model or a ValueError."""
    copy = tmp_path / "model"
    shutil.copytree(directory(name), copy)
    path = copy / "keras_metadata.pb"
    original = path.read_bytes()
    rng = np.random.default_rng(31)
    errors = 0
    for damaged in truncated_or_flipped(original, rng, 60):
        path.write_bytes(damaged)
        try:
            interop.load(copy)
        except ValueError:
            errors += 1
    assert errors > 20


def test_fuzz_object_graph():
    """A damaged TrackableObjectGraph: the layers' weights, or a ValueError, never a crash."""
    path = directory("tfmot_savedmodel")
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    original = reader.get_tensor(savedmodel.OBJECT_GRAPH)
    variables = {
        k: np.asarray(reader.get_tensor(k))
        for k in reader.get_variable_to_shape_map()
        if k.endswith(savedmodel.VALUE_SUFFIX)
    }
    with open(os.path.join(path, savedmodel.METADATA), "rb") as f:
        objects = savedmodel._objects(f.read())
    intact = savedmodel._weights(objects, savedmodel._object_graph(original), variables)
    assert [n for n, _ in intact["prune_low_magnitude_hidden"]][:3] == [
        "hidden/kernel:0",
        "hidden/bias:0",
        "prune_low_magnitude_hidden/mask:0",
    ]
    rng = np.random.default_rng(32)
    errors = 0
    for damaged in truncated_or_flipped(original, rng, 300):
        try:
            savedmodel._weights(objects, savedmodel._object_graph(damaged), variables)
        except ValueError:
            errors += 1
    assert errors > 50
