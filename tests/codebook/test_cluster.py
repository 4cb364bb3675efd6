"""cluster, prune and strip on Keras models: fit, saving, gradients, bad input."""

import copy
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import codebook


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 12)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    return x, y


@pytest.fixture(scope="module")
def model(data):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    h = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    h = keras.layers.Reshape((4, 4, 1))(h)
    h = keras.layers.Conv2D(4, 2, name="conv")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = tfqnn.layers.QuantDense(8, activation="relu", name="qfc")(h)
    outputs = keras.layers.Dense(2, activation="softmax", name="out")(h)
    m = keras.Model(inputs, outputs)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(*data, epochs=2, verbose=0)
    return m


def _kernels(m):
    return {
        layer.name: layer.kernel.numpy()
        for layer in codebook.strip(m).layers
        if hasattr(layer, "kernel")
    }


@pytest.mark.parametrize("method", codebook.METHODS)
def test_each_method_gives_a_codebook_model(model, data, method):
    clustered = codebook.cluster(model, 4, method=method, subvector_size=2, stages=2)
    assert [type(layer).__name__ for layer in clustered.layers if layer.weights][:2] == [
        "Clustered",
        "Clustered",
    ]
    inner = clustered.get_layer("qfc").layer
    assert type(inner) is tfqnn.layers.QuantDense and inner.units == 8
    centroids, indices = clustered.get_layer("fc1").codebook("kernel")
    decoded = clustered.get_layer("fc1").decoded_kernels()["kernel"]
    stages, k, d = centroids.shape
    assert indices.shape == (stages, 12 * 16 // d)
    distinct = np.unique(decoded).size
    assert distinct <= (k**stages if d == 1 else 12 * 16)
    if method not in ("product", "residual"):
        assert distinct <= 4
    # The biases are copied, the predictions follow from the decoded kernels.
    np.testing.assert_array_equal(
        clustered.get_layer("fc1").layer.bias.numpy(), model.get_layer("fc1").bias.numpy()
    )
    stripped = codebook.strip(clustered)
    np.testing.assert_allclose(
        stripped.predict(data[0], verbose=0), clustered.predict(data[0], verbose=0), atol=1e-6
    )


def test_kmeans_codebook_matches_numpy_kmeans(model):
    clustered = codebook.cluster(model, 8, layers=["fc1"])
    kernel = model.get_layer("fc1").kernel.numpy()
    expected = codebook.kmeans(kernel, 8)
    centroids, indices = clustered.get_layer("fc1").codebook("kernel")
    np.testing.assert_allclose(centroids[0, :, 0], expected.centroids, rtol=1e-6)
    np.testing.assert_array_equal(indices[0], expected.indices)
    assert type(clustered.get_layer("conv")) is keras.layers.Conv2D
    np.testing.assert_array_equal(
        clustered.get_layer("conv").kernel.numpy(), model.get_layer("conv").kernel.numpy()
    )


def test_centroid_gradient_is_segment_sum_of_member_gradients(model, data):
    clustered = codebook.cluster(model, 4, layers=["fc1"])
    layer = clustered.get_layer("fc1")
    x = tf.constant(data[0][:32])
    kernel = layer.decoded_kernels()["kernel"]
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(clustered(x) ** 2)
    grad_c = tape.gradient(out, layer.centroids("kernel").value)
    # The same loss through a plain float kernel.
    plain = codebook.strip(clustered)
    plain.get_layer("fc1").kernel.assign(kernel)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(plain(x) ** 2)
    grad_w = tape.gradient(out, plain.get_layer("fc1").kernel.value).numpy().ravel()
    _, indices = layer.codebook("kernel")
    expected = np.bincount(indices[0], weights=grad_w, minlength=4)
    np.testing.assert_allclose(np.asarray(grad_c)[0, :, 0], expected, rtol=1e-4, atol=1e-6)


def test_fit_trains_centroids_only_and_keeps_assignments(model, data):
    clustered = codebook.cluster(model, 8)
    before = {x.name: x.codebook("kernel") for x in clustered.layers if hasattr(x, "codebook")}
    clustered.compile("adam", "sparse_categorical_crossentropy")
    clustered.fit(*data, epochs=1, verbose=0)
    for layer in clustered.layers:
        if hasattr(layer, "codebook"):
            centroids, indices = layer.codebook("kernel")
            np.testing.assert_array_equal(indices, before[layer.name][1])
            assert not np.allclose(centroids, before[layer.name][0])
            assert np.unique(layer.decoded_kernels()["kernel"]).size <= 8


def test_every_step_reassigns_latent_weights(model, data):
    clustered = codebook.cluster(model, 4, reassign="every_step", layers=["fc1"])
    layer = clustered.get_layer("fc1")
    latent = layer.layer.kernel
    assert latent.trainable
    before = latent.numpy().copy()
    clustered.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    clustered.fit(*data, epochs=1, verbose=0)
    assert not np.array_equal(latent.numpy(), before)
    c = layer.centroids("kernel").numpy()[0, :, 0]
    nearest = c[np.argmin(np.abs(latent.numpy()[..., None] - c), axis=-1)]
    np.testing.assert_allclose(layer.decoded_kernels()["kernel"], nearest)


def test_scope_model_shares_one_codebook(model):
    clustered = codebook.cluster(model, 8, scope="model", method="optimal")
    tables = [x.codebook("kernel")[0] for x in clustered.layers if hasattr(x, "codebook")]
    for table in tables[1:]:
        np.testing.assert_array_equal(table, tables[0])
    everything = np.concatenate(
        [x.kernel.numpy().ravel() for x in model.layers if hasattr(x, "kernel")]
    )
    np.testing.assert_allclose(
        tables[0][0, :, 0], codebook.optimal(everything, 8).centroids, rtol=1e-6
    )


def test_importance_estimates(model, data):
    for importance, kwargs in (("adam", {}), ("hessian", {"data": data})):
        clustered = codebook.cluster(model, 4, importance=importance, layers=["out"], **kwargs)
        assert type(clustered.get_layer("out")) is codebook.Clustered
    from tfqnn.codebook import importance as imp

    variable = model.get_layer("out").kernel
    (h,) = imp.hessian(model, data, [variable], samples=8)
    x, y = data
    # Softmax + cross-entropy: d loss_i / d kernel = outer(features_i, p_i - onehot(y_i)).
    features = keras.Model(model.inputs, model.get_layer("qfc").output).predict(x[:8], verbose=0)
    p = model.predict(x[:8], verbose=0)
    residual = p - np.eye(2)[y[:8]]
    expected = np.einsum("si,sj->ij", features**2, residual**2)
    np.testing.assert_allclose(h, expected / 8, rtol=1e-4, atol=1e-12)
    (a,) = imp.adam(model.optimizer, [variable])
    v = model.optimizer._velocities[model.optimizer._get_variable_index(variable)].numpy()
    np.testing.assert_allclose(a, np.sqrt(v))


def test_prune_zeros_stay_zero_through_fit_and_cluster(model, data):
    pruned = codebook.prune(model, 0.75)
    kernel = pruned.get_layer("fc1").decoded_kernels()["kernel"]
    assert np.sum(kernel == 0) == int(0.75 * kernel.size)
    kept = (
        np.abs(model.get_layer("fc1").kernel.numpy())
        >= np.sort(np.abs(model.get_layer("fc1").kernel.numpy()).ravel())[int(0.75 * kernel.size)]
    )
    np.testing.assert_array_equal(kernel != 0, kept)
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(*data, epochs=1, verbose=0)
    zeros = {n: k == 0 for n, k in _kernels(pruned).items()}
    for method, reassign in (("ecsq", "never"), ("kmeans", "every_step")):
        clustered = codebook.cluster(pruned, 4, method=method, reassign=reassign)
        clustered.compile("adam", "sparse_categorical_crossentropy")
        clustered.fit(*data, epochs=1, verbose=0)
        for name, kernel in _kernels(clustered).items():
            np.testing.assert_array_equal(kernel == 0, zeros[name])
            assert np.unique(kernel[kernel != 0]).size <= 4


@pytest.mark.slow  # a separate process importing TensorFlow
def test_saved_model_loads_in_a_fresh_process(model, data, tmp_path):
    clustered = codebook.cluster(codebook.prune(model, 0.5), 4)
    clustered.compile("adam", "sparse_categorical_crossentropy")
    clustered.fit(*data, epochs=1, verbose=0)
    path = tmp_path / "clustered.keras"
    clustered.save(path)
    np.save(tmp_path / "x.npy", data[0])
    np.save(tmp_path / "expected.npy", clustered.predict(data[0], verbose=0))
    script = textwrap.dedent(
        f"""
        import keras, numpy as np, tfqnn
        m = keras.models.load_model({str(path)!r})
        assert type(m.get_layer("fc1")).__name__ == "Clustered"
        got = m.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0)
        np.testing.assert_array_equal(got, np.load({str(tmp_path / "expected.npy")!r}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_wrapper_config_round_trip(model):
    clustered = codebook.cluster(model, 4, layers=["conv"])
    layer = clustered.get_layer("conv")
    config = layer.get_config()
    clone = codebook.Clustered.from_config(copy.deepcopy(config))
    again = clone.get_config()
    assert again["layer"]["config"] == config["layer"]["config"]
    assert {k: v for k, v in again.items() if k != "layer"} == {
        k: v for k, v in config.items() if k != "layer"
    }
    assert config["codebooks"] == {
        "kernel": {
            "clusters": 4,
            "stages": 1,
            "subvector_size": 1,
            "axis": -1,
            "pruned": False,
            "blocks": 1,
        }
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clusters": 1}, "clusters=1"),
        ({"clusters": 65_537}, "clusters=65537"),
        ({"method": "lloyd"}, "method='lloyd'"),
        ({"init": "forgy"}, "init='forgy'"),
        ({"importance": "fisher"}, "importance='fisher'"),
        ({"importance": "hessian"}, "data=None"),
        ({"scope": "net"}, "scope='net'"),
        ({"reassign": "sometimes"}, "reassign='sometimes'"),
        ({"layers": ["nope"]}, "'nope'"),
        ({"layers": ["flatten"]}, "no kernel"),
        ({"method": "product", "subvector_size": 5}, "subvector_size=5"),
        ({"method": "product", "scope": "model"}, "scope='model'"),
        ({"method": "residual", "reassign": "every_step"}, "every_step"),
    ],
)
def test_cluster_bad_arguments(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        codebook.cluster(model, **{"clusters": 4, **kwargs})


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, "half", True])
def test_prune_bad_sparsity(model, sparsity):
    with pytest.raises(ValueError, match="sparsity"):
        codebook.prune(model, sparsity)


def test_prune_after_cluster_and_subclassed_models_are_rejected(model):
    with pytest.raises(ValueError, match="prune before cluster"):
        codebook.prune(codebook.cluster(model, 4), 0.5)

    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="Sequential or functional"):
        codebook.cluster(Net(), 4)


def test_every_kernel_layer_kind(rng, tmp_path):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(h)
    h = keras.layers.SeparableConv2D(4, 3, padding="same", name="separable")(h)
    h = keras.layers.Conv2DTranspose(2, 3, strides=2, name="transpose")(h)
    h = tfqnn.layers.QuantConv2D(2, 3, name="qconv", kernel_quantizer="ste_tern")(h)
    h = keras.layers.Reshape((-1, 2))(h)
    h = keras.layers.Conv1D(3, 2, name="conv1d")(h)
    outputs = keras.layers.Dense(2, name="dense")(keras.layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    clustered = codebook.cluster(codebook.prune(model, 0.3), 4)
    separable = clustered.get_layer("separable")
    assert separable.kernels == ["depthwise_kernel", "pointwise_kernel"]
    x = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    expected = clustered.predict(x, verbose=0)
    np.testing.assert_allclose(codebook.strip(clustered).predict(x, verbose=0), expected, atol=1e-5)
    for layer in codebook.strip(clustered).layers:
        for weight in layer.weights:
            if weight.name.endswith("kernel"):
                values = weight.numpy()
                assert np.unique(values[values != 0]).size <= 4
                assert np.sum(values == 0) >= int(0.3 * values.size)
    path = tmp_path / "kinds.keras"
    clustered.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path).predict(x, verbose=0), expected)


def test_summary_counts_clustered_kernels_at_index_bits(model):
    clustered = codebook.cluster(codebook.prune(model, 0.5, layers=["fc1"]), 16, layers=["fc1"])
    row = {r.name: r for r in tfqnn.summary(clustered, print_fn=None).layers}["fc1"]
    # 12 x 16 indices at 5 bits (16 clusters + the zero code), 16 centroids and 16 biases at 32.
    assert row.params == {5: 12 * 16, 32: 16 + 16}
    assert row.weight_bits == 5
    assert row.macs == {32: 12 * 16}
    pruned = codebook.prune(model, 0.5)
    row = {r.name: r for r in tfqnn.summary(pruned, print_fn=None).layers}["fc1"]
    assert row.params == {32: 12 * 16 + 16}  # the mask is not stored


def test_strip_keeps_the_weights_of_a_wrapper_named_unlike_its_layer(rng):
    inputs = keras.Input((6,))
    wrapper = codebook.Pruned(keras.layers.Dense(3, name="inner"), ["kernel"], name="outer")
    outputs = keras.layers.Dense(2, name="head")(wrapper(inputs))
    wrapped = keras.Model(inputs, outputs)
    mask = (rng.random((6, 3)) > 0.5).astype("float32")
    wrapper.mask("kernel").assign(mask)
    x = rng.normal(size=(5, 6)).astype("float32")
    stripped = codebook.strip(wrapped)
    inner = stripped.get_layer("inner")
    np.testing.assert_array_equal(inner.kernel.numpy(), wrapper.layer.kernel.numpy() * mask)
    np.testing.assert_allclose(stripped(x), wrapped(x), rtol=1e-6, atol=1e-6)
