"""scope="model" (one shared centroid variable) and per-block product codebooks (blocks=)."""

import json
import struct
import subprocess
import sys
import textwrap
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import _bits, codebook
from tfqnn.codebook import compressed, storage
from tfqnn.codebook.product import block_ids, from_subvectors, to_subvectors


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(128, 12)).astype("float32")
    y = (x[:, 0] - x[:, 2] > 0).astype("int32")
    return x, y


@pytest.fixture(scope="module")
def model(data):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((12,))
    h = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    h = tfqnn.layers.QuantDense(8, activation="relu", name="qfc")(h)
    outputs = keras.layers.Dense(2, activation="softmax", name="out")(h)
    m = keras.Model(inputs, outputs)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(*data, epochs=1, verbose=0)
    return m


def _clustered(m):
    return [layer for layer in m.layers if isinstance(layer, codebook.Clustered)]


def _values_in(kernel, centroids):
    """Whether every entry of ``kernel`` is one of ``centroids`` exactly."""
    return bool(np.all(np.isin(kernel, centroids)))


# ---- scope="model": one centroid variable ------------------------------------


def test_model_scope_layers_fine_tune_one_variable(model, data):
    clustered = codebook.cluster(model, 8, scope="model")
    layers = _clustered(clustered)
    assert len(layers) == 3 and all(layer.shared is layers[0].shared for layer in layers)
    variable = layers[0].shared.centroids
    assert sum(v is variable for v in clustered.trainable_variables) == 1
    before = variable.numpy().copy()
    clustered.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    clustered.fit(*data, epochs=1, verbose=0)
    after = variable.numpy()[0, :, 0]
    assert not np.allclose(after, before[0, :, 0])
    for layer in layers:  # every kernel takes its values in the same 8 centroids
        assert layer.centroids("kernel") is variable
        assert _values_in(layer.decoded_kernels()["kernel"], after)
    assert len(np.unique(after)) == 8


def test_shared_centroid_gradient_is_the_segment_sum_over_all_layers(model, data):
    clustered = codebook.cluster(model, 6, scope="model", method="optimal")
    layers = _clustered(clustered)
    x = tf.constant(data[0][:32])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(clustered(x) ** 2)
    got = np.asarray(tape.gradient(loss, layers[0].shared.centroids.value))[0, :, 0]
    # The same loss through plain float kernels equal to the decoded ones.
    plain = codebook.strip(clustered)
    kernels = [plain.get_layer(layer.name).kernel for layer in layers]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(plain(x) ** 2)
    grads = tape.gradient(loss, [k.value for k in kernels])
    expected = sum(
        np.bincount(layer.codebook("kernel")[1][0], weights=np.ravel(g), minlength=6)
        for layer, g in zip(layers, grads)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # The one codebook is the exact 1-D k-means of all kernels together.
    everything = np.concatenate([model.get_layer(n.name).kernel.numpy().ravel() for n in layers])
    np.testing.assert_allclose(
        layers[0].shared.centroids.numpy()[0, :, 0],
        codebook.optimal(everything, 6).centroids,
        rtol=1e-6,
    )


def test_model_scope_keras_round_trip_keeps_one_variable(model, data, tmp_path):
    clustered = codebook.cluster(codebook.prune(model, 0.5), 4, scope="model")
    path = tmp_path / "shared.keras"
    clustered.save(path)
    loaded = keras.models.load_model(path)
    layers = _clustered(loaded)
    assert all(layer.shared is layers[0].shared for layer in layers)
    assert layers[0].shared is not _clustered(clustered)[0].shared
    np.testing.assert_array_equal(
        loaded.predict(data[0], verbose=0), clustered.predict(data[0], verbose=0)
    )
    # Kept layers of a re-clustered model share a copy, not the old variable.
    again = codebook.cluster(loaded, 4, layers=["fc1"])
    kept = [layer for layer in _clustered(again) if layer.name != "fc1"]
    assert kept[0].shared is kept[1].shared and kept[0].shared is not layers[0].shared
    np.testing.assert_array_equal(
        kept[0].shared.centroids.numpy(), layers[0].shared.centroids.numpy()
    )


@pytest.mark.slow  # a separate process importing TensorFlow
def test_model_scope_loads_and_trains_shared_in_a_fresh_process(model, data, tmp_path):
    clustered = codebook.cluster(model, 4, scope="model")
    clustered.compile("adam", "sparse_categorical_crossentropy")
    clustered.fit(*data, epochs=1, verbose=0)
    path = tmp_path / "shared.keras"
    clustered.save(path)
    np.save(tmp_path / "x.npy", data[0])
    np.save(tmp_path / "y.npy", data[1])
    np.save(tmp_path / "expected.npy", clustered.predict(data[0], verbose=0))
    script = textwrap.dedent(
        f"""
        import keras, numpy as np, tfqnn
        m = keras.models.load_model({str(path)!r})
        x, y = np.load({str(tmp_path / "x.npy")!r}), np.load({str(tmp_path / "y.npy")!r})
        got = m.predict(x, verbose=0)
        np.testing.assert_array_equal(got, np.load({str(tmp_path / "expected.npy")!r}))
        layers = [l for l in m.layers if type(l).__name__ == "Clustered"]
        assert len(layers) == 3 and all(l.shared is layers[0].shared for l in layers)
        m.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        before = layers[0].shared.centroids.numpy().copy()
        m.fit(x, y, epochs=1, verbose=0)
        after = layers[0].shared.centroids.numpy()[0, :, 0]
        assert not np.allclose(after, before[0, :, 0])
        for l in layers:
            assert np.all(np.isin(l.decoded_kernels()["kernel"], after))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _header(data):
    (length,) = struct.unpack_from("<Q", data, 8)
    return json.loads(zlib.decompress(data[16 : 16 + length])), 16 + length


def test_shared_codebook_is_stored_and_counted_once(model, data, tmp_path):
    k = 16
    shared = codebook.cluster(model, k, scope="model")
    layered = codebook.cluster(model, k)
    data_shared = compressed.to_bytes(shared)
    header, start = _header(data_shared)
    entries = [e for e in header["tensors"] if e["encoding"] == "codebook"]
    assert len(entries) == 3
    assert len({(e["centroids"]["offset"], e["centroids"]["length"]) for e in entries}) == 1
    # The payload: each stream, each raw tensor and one table of k float32.
    streams = sum(s["length"] for e in entries for s in e["streams"])
    raw = sum(e["length"] for e in header["tensors"] if e["encoding"] == "raw")
    assert len(data_shared) - start == streams + raw + 4 * k
    loaded = compressed.from_bytes(data_shared)
    np.testing.assert_array_equal(
        loaded.predict(data[0], verbose=0), shared.predict(data[0], verbose=0)
    )
    # The report counts the codebook with the first kernel only.
    report = codebook.report(shared, print_fn=None)
    assert [r.codebook_bits for r in report.kernels] == [32 * k, 0, 0]
    assert all(r.shared_codebook for r in report.kernels)
    indices = [layer.codebook("kernel")[1][0] for layer in _clustered(shared)]
    assert report.fixed_bits - report.other_bits == 32 * k + sum(
        storage.fixed_bits(i.size, k) for i in indices
    )
    per_layer = codebook.report(layered, print_fn=None)
    assert sum(r.codebook_bits for r in per_layer.kernels) == 3 * 32 * k
    # tfqnn.summary counts the shared centroids in the first layer's row only.
    rows = {r.name: r for r in tfqnn.summary(shared, print_fn=None).layers}
    assert rows["fc1"].params == {4: 12 * 16, 32: 16 + k}
    assert rows["qfc"].params == {4: 16 * 8, 32: 8}
    assert rows["out"].params == {4: 8 * 2, 32: 2}


def test_shared_argument_is_checked(model):
    inner = keras.layers.Dense(3)
    table = codebook.SharedCodebook(4)
    with pytest.raises(ValueError, match="shared codebook"):
        codebook.Clustered(inner, {"kernel": {"clusters": 8}}, shared=table)
    with pytest.raises(ValueError, match="shared of type"):
        codebook.Clustered(inner, {"kernel": {"clusters": 4}}, shared="table")
    with pytest.raises(ValueError, match="clusters=1"):
        codebook.SharedCodebook(1)


# ---- per-block product codebooks ---------------------------------------------


def test_block_ids_cut_the_last_axis(rng):
    ids = block_ids((3, 8), -1, 2, 2)  # sub-vectors of 2 along the 8 outputs
    np.testing.assert_array_equal(ids, np.tile([0, 0, 1, 1], 3))
    ids = block_ids((4, 6), 0, 2, 3)  # sub-vectors along the inputs, one output each
    np.testing.assert_array_equal(ids, np.repeat([0, 0, 1, 1, 2, 2], 2))
    with pytest.raises(ValueError, match="blocks=4"):
        block_ids((3, 6), -1, 1, 4)
    with pytest.raises(ValueError, match="cuts sub-vectors"):
        block_ids((3, 8), -1, 4, 4)


def test_block_codebooks_are_independent_k_means(rng):
    kernel = rng.normal(size=(40, 12))
    kernel[:, 6:] *= 10  # the second half of the outputs is much larger
    blocks = codebook.product(kernel, 8, subvector_size=3, axis=-1, blocks=2, seed=3)
    assert blocks.centroids.shape == (16, 3)
    ids = block_ids(kernel.shape, -1, 3, 2)
    rows = to_subvectors(kernel, 3, -1)
    distortion = 0.0
    for b, part in enumerate((kernel[:, :6], kernel[:, 6:])):
        alone = codebook.product(part, 8, subvector_size=3, axis=-1, seed=3 + b)
        distortion += np.sum((alone.decode() - to_subvectors(part, 3, -1)) ** 2)
        np.testing.assert_allclose(blocks.centroids[8 * b : 8 * b + 8], alone.centroids)
        np.testing.assert_array_equal(blocks.indices[ids == b] - 8 * b, alone.indices)
        # Each sub-vector is at its nearest centroid of its own block.
        members = rows[ids == b]
        c = blocks.centroids[8 * b : 8 * b + 8]
        distance = ((members[:, None, :] - c[None]) ** 2).sum(-1)
        chosen = distance[np.arange(len(members)), blocks.indices[ids == b] - 8 * b]
        np.testing.assert_allclose(chosen, distance.min(axis=1), rtol=1e-5, atol=1e-9)
    # The reconstruction error is the sum of the blocks' own k-means distortions.
    assert np.sum((blocks.decode() - rows) ** 2) == pytest.approx(distortion, rel=1e-9)


def test_cluster_with_block_codebooks_round_trips(rng, tmp_path):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(12, name="fc")(h)
    model = keras.Model(inputs, outputs)
    clustered = codebook.cluster(model, 4, method="product", subvector_size=2, blocks=2)
    x = rng.normal(size=(3, 8, 8, 3)).astype("float32")
    for name in ("conv", "fc"):
        layer = clustered.get_layer(name)
        assert layer.codebooks["kernel"]["blocks"] == 2
        table, indices = layer.codebook("kernel")
        assert table.shape == (1, 8, 2) and indices.max() < 4
        kernel = model.get_layer(name).kernel.numpy()
        expected = codebook.product(kernel, 4, subvector_size=2, blocks=2)
        np.testing.assert_allclose(
            layer.decoded_kernels()["kernel"],
            from_subvectors(expected.decode(), kernel.shape, -1),
            rtol=1e-6,
        )
    expected = clustered.predict(x, verbose=0)
    path = tmp_path / "blocks.tfqnncb"
    size = codebook.save_compressed(clustered, path)
    np.testing.assert_array_equal(codebook.load_compressed(path).predict(x, verbose=0), expected)
    report = codebook.report(clustered, print_fn=None)
    assert [r.codebook_bits for r in report.kernels] == [2 * 4 * 2 * 32] * 2
    header, start = _header(path.read_bytes())
    raw = sum(e["length"] for e in header["tensors"] if e["encoding"] == "raw")
    assert [e.get("blocks") for e in header["tensors"] if e["encoding"] == "codebook"] == [2, 2]
    coded = size - start - raw
    predicted = sum(r.huffman_bits for r in report.kernels) / 8
    assert predicted <= coded <= predicted + 2
    keras_path = tmp_path / "blocks.keras"
    clustered.save(keras_path)
    np.testing.assert_array_equal(
        keras.models.load_model(keras_path).predict(x, verbose=0), expected
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "kmeans", "blocks": 2}, "blocks=2 with method='kmeans'"),
        ({"method": "product", "blocks": 3, "subvector_size": 1}, "blocks=3"),
        ({"method": "product", "blocks": 0}, "blocks=0"),
        ({"method": "product", "blocks": 8, "subvector_size": 4}, "cuts sub-vectors"),
    ],
)
def test_bad_blocks(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        codebook.cluster(model, 4, layers=["fc1"], **kwargs)


def test_crafted_block_entries_raise_value_error(rng):
    keras.utils.set_random_seed(8)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="fc")])
    data = compressed.to_bytes(
        codebook.cluster(model, 2, method="product", subvector_size=2, blocks=4)
    )
    header, start = _header(data)
    payload = data[start:]
    (entry,) = [e for e in header["tensors"] if e["encoding"] == "codebook"]
    for change in (
        {"blocks": 0},
        {"blocks": 3},
        {"blocks": 16},
        {"blocks": True},
        {"blocks": 4, "codes": 3},
    ):
        bad = {**entry, **change}
        crafted = {**header, "tensors": [bad if e is entry else e for e in header["tensors"]]}
        text = zlib.compress(json.dumps(crafted).encode())
        with pytest.raises(ValueError, match="Invalid compressed file"):
            compressed.parse(compressed.MAGIC + struct.pack("<Q", len(text)) + text + payload)


# ---- one index width -----------------------------------------------------------


def test_one_index_width_everywhere():
    from tfqnn.lite import spec

    for codes in range(1, 70_000, 7):
        expected = max(1, int(np.ceil(np.log2(codes))))
        assert _bits.index_bits(codes) == expected
        assert storage.fixed_bits(3, codes) == 3 * expected
        if codes <= 2**spec.MAX_INDEX_BITS:
            assert spec.index_bits(codes) == expected
    layer = codebook.Clustered(keras.layers.Dense(2), {"kernel": {"clusters": 16, "pruned": True}})
    assert layer.index_bits("kernel") == 5
