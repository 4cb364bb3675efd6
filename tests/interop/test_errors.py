"""Bad files and unmappable models: a ValueError that names the problem, never a crash."""

import json
import os
import pathlib
import shutil

import h5py
import numpy as np
import pytest

from tfqnn import interop, quantizers
from tfqnn.interop import h5file

from . import _fixtures

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TINY = os.path.join(FIXTURES, "larq_tiny.h5")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.h5"
    shutil.copy(TINY, path)
    return path


def edit_config(path, edit):
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)


def layer_entry(config, name):
    return next(e for e in config["config"]["layers"] if e["config"]["name"] == name)


def test_not_hdf5(tmp_path):
    path = tmp_path / "model.h5"
    path.write_text("not an hdf5 file")
    with pytest.raises(ValueError, match="is not an HDF5 file"):
        interop.load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        interop.load(tmp_path / "absent.h5")
    with pytest.raises(ValueError, match="a directory without keras_metadata.pb"):
        interop.load(tmp_path)


def test_weights_only_file_says_to_build_the_model(tmp_path):
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:  # the layout of tf_keras's save_weights("x.h5")
        f.attrs["layer_names"] = np.array([b"dense"])
        f.attrs["keras_version"] = b"2.21.0"
        f.attrs["backend"] = b"tensorflow"
        group = f.create_group("dense")
        group.attrs["weight_names"] = np.array([b"dense/kernel:0"])
        group.create_dataset("dense/kernel:0", data=np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="no model config.*load_weights"):
        interop.load(path)


@pytest.mark.parametrize("version", ["3.5.0", "1.2.2", "unknown"])
def test_unknown_keras_version(tiny, version):
    with h5py.File(tiny, "r+") as f:
        f.attrs["keras_version"] = version.encode()
    with pytest.raises(ValueError, match=f"Keras {version}.*2.x"):
        interop.load(tiny)


def test_every_unsupported_layer_and_quantizer_is_listed_with_its_path(tiny):
    def edit(config):
        layer_entry(config, "flatten")["class_name"] = "FancyFlatten"
        dense = layer_entry(config, "dense_1")
        dense["config"]["kernel_quantizer"] = "fancy_sign"
        dense["config"]["input_quantizer"] = {"class_name": "SteSign", "config": {"clip": 2}}
        layer_entry(config, "bn")["class_name"] = "QBatchNormalization"
        layer_entry(config, "dense_2")["class_name"] = "QuantConv3D"

    edit_config(tiny, edit)
    with pytest.raises(ValueError) as error:
        interop.load(tiny)
    message = str(error.value)
    assert "5 unsupported" in message
    assert "larq_tiny/flatten: layer class 'FancyFlatten'" in message
    assert "larq_tiny/dense_1/kernel_quantizer: larq quantizer 'fancy_sign'" in message
    assert "larq_tiny/dense_1/input_quantizer: larq SteSign" in message
    assert "unknown arguments ['clip']" in message
    assert "larq_tiny/bn: QKeras QBatchNormalization" in message
    assert "tfqnn alternative: keras.layers.BatchNormalization" in message
    assert "larq_tiny/dense_2: larq QuantConv3D (tfqnn alternative: none yet" in message


def test_lambda_layers_and_subclassed_models(tiny):
    edit_config(tiny, lambda c: layer_entry(c, "flatten").update(class_name="Lambda"))
    with pytest.raises(ValueError, match="Lambda layer holds its function as Python bytecode"):
        interop.load(tiny)
    edit_config(tiny, lambda c: c.update(class_name="MyModel"))
    with pytest.raises(ValueError, match="'MyModel'.*Sequential and Functional"):
        interop.load(tiny)


def test_tensorflow_ops_other_than_binary_ones(tiny):
    edit_config(tiny, lambda c: layer_entry(c, "flatten").update(class_name="TFOpLambda"))
    edit_config(tiny, lambda c: layer_entry(c, "flatten")["config"].update(function="nn.relu6"))
    with pytest.raises(ValueError, match=r"flatten: tf_keras TFOpLambda of tf.nn.relu6"):
        interop.load(tiny)


def test_config_that_keras_3_rejects(tiny):
    edit_config(tiny, lambda c: layer_entry(c, "bn")["config"].update(virtual_batch_size=4))
    with pytest.raises(ValueError, match="bn: tf_keras BatchNormalization"):
        interop.load(tiny)


def test_weight_shapes_that_disagree_with_the_config(tiny):
    with h5py.File(tiny, "r+") as f:
        group = f["model_weights/dense_1"]
        name = "dense_1/kernel:0"
        del group[name]
        group.create_dataset(name, data=np.zeros((784, 9), np.float32))
    with pytest.raises(ValueError, match=r"'dense_1/kernel:0'.*'dense_1'.*\(784, 9\).*\(784, 8\)"):
        interop.load(tiny)


def test_non_finite_weights(tiny):
    with h5py.File(tiny, "r+") as f:
        f["model_weights/bn/bn/gamma:0"][3] = np.nan
    with pytest.raises(ValueError, match="'bn/gamma:0' of layer 'bn' holds NaN"):
        interop.load(tiny)


def test_missing_and_extra_weights(tiny):
    with h5py.File(tiny, "r+") as f:
        group = f["model_weights/dense_1"]
        group.attrs["weight_names"] = group.attrs["weight_names"][:1]
    with pytest.raises(ValueError, match="dense_1' has 2 weights in its config but 1"):
        interop.load(tiny)
    with h5py.File(tiny, "r+") as f:
        f["model_weights"].attrs["layer_names"] = np.array([b"flatten"])
    with pytest.raises(ValueError, match="no weights for the layers"):
        interop.load(tiny)


def test_truncated_file(tiny, tmp_path):
    data = tiny.read_bytes()
    for keep in (100, len(data) // 2, len(data) - 10):
        cut = tmp_path / f"cut{keep}.h5"
        cut.write_bytes(data[:keep])
        with pytest.raises(ValueError, match="Cannot load|not an HDF5"):
            interop.load(cut)


def corruptions(data, rng, count):
    """Bit flips, overwritten runs and truncations of ``data``, ``count`` of them."""
    for i in range(count):
        buffer = bytearray(data)
        kind = i % 4
        if kind == 0:  # a few bit flips anywhere
            for position in rng.integers(0, len(buffer), rng.integers(1, 8)):
                buffer[position] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # bit flips in the first 4 KiB: superblock, object headers
            for position in rng.integers(0, 4096, rng.integers(1, 4)):
                buffer[position] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2:  # a run of random bytes
            start = int(rng.integers(0, len(buffer) - 64))
            buffer[start : start + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        else:  # truncated, possibly with a flip
            buffer = buffer[: int(rng.integers(0, len(buffer)))]
        yield bytes(buffer)


def test_fuzz_reader_with_corrupted_files(tmp_path):
    """1,200 corrupted copies: read() returns a model or raises ValueError, nothing else."""
    data = pathlib.Path(TINY).read_bytes()
    rng = np.random.default_rng(15)
    path = tmp_path / "fuzz.h5"
    outcomes = {"ok": 0, "error": 0}
    for corrupted in corruptions(data, rng, 1200):
        path.write_bytes(corrupted)
        try:
            h5file.read(path)
            outcomes["ok"] += 1
        except ValueError:
            outcomes["error"] += 1
    assert outcomes["error"] > 100 and outcomes["ok"] > 100, outcomes


def mutations(config, rng, count):
    """Configs with one entry deleted or replaced by a value of another type."""
    junk = [None, 0, -1, 3.5, "", "x", [], {}, [None], {"class_name": None}, True]

    def places(node, trail=()):
        if isinstance(node, dict):
            for key, value in node.items():
                yield (*trail, key)
                yield from places(value, (*trail, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield (*trail, index)
                yield from places(value, (*trail, index))

    every = list(places(config))
    for _ in range(count):
        mutated = json.loads(json.dumps(config))
        trail = every[int(rng.integers(0, len(every)))]
        parent = mutated
        for step in trail[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and rng.random() < 0.3:
            del parent[trail[-1]]
        else:
            parent[trail[-1]] = junk[int(rng.integers(0, len(junk)))]
        yield mutated


def fuzz_count(fixture_path, tmp_path, rng, configs, corrupted):
    """How many of ``configs`` mutated configs and ``corrupted`` corrupted copies of the
    fixture raise ValueError on `interop.load`; anything else but a model fails the test."""
    config = h5file.read(fixture_path).config
    path = tmp_path / "fuzz.h5"
    errors = 0
    for mutated in mutations(config, rng, configs):
        shutil.copy(fixture_path, path)
        with h5py.File(path, "r+") as f:
            f.attrs["model_config"] = json.dumps(mutated)
        try:
            interop.load(path)
        except ValueError:
            errors += 1
    for damaged in corruptions(pathlib.Path(fixture_path).read_bytes(), rng, corrupted):
        path.write_bytes(damaged)
        try:
            interop.load(path)
        except ValueError:
            errors += 1
    return errors


def test_fuzz_configs(tmp_path):
    """Mutated model configs: a model or a ValueError, nothing else (graph, layers, weights)."""
    assert fuzz_count(TINY, tmp_path, np.random.default_rng(16), 150, 0) > 20


def test_fuzz_load_end_to_end(tmp_path):
    """Full loads of corrupted files: a model with the file's layers, or a ValueError."""
    data = pathlib.Path(TINY).read_bytes()
    rng = np.random.default_rng(17)
    path = tmp_path / "fuzz.h5"
    loaded = 0
    for corrupted in corruptions(data, rng, 200):
        path.write_bytes(corrupted)
        try:
            model = interop.load(path)
        except ValueError:
            continue
        loaded += 1
        assert [layer.name for layer in model.layers] == [
            "image",
            "flatten",
            "dense_1",
            "bn",
            "dense_2",
        ]
    assert loaded > 0


def qkeras_layer(config, quantizer):
    """Turns the tiny model's first dense layer into a QKeras QDense with ``quantizer``."""
    dense = layer_entry(config, "dense_1")
    dense["class_name"] = "QDense"
    dense["config"].pop("input_quantizer")
    dense["config"]["kernel_quantizer"] = quantizer


@pytest.mark.parametrize(
    "quantizer, message",
    [
        ("ternary(alpha=0.5)", "alpha=0.5 (only alpha=1 maps exactly"),
        ("quantized_bits(4, 0, use_stochastic_rounding=True)", "use_stochastic_rounding=True"),
        (
            {"class_name": "quantized_relu", "config": {"bits": 4, "negative_slope": 0.25}},
            "negative_slope=0.25",
        ),
        ("ternary()", "alpha=None (only alpha=1 maps exactly, onto SteTern)"),
        ("binary(alpha=0.5)", "alpha=0.5"),
        ("ternary(alpha='auto', threshold=0.2)", "alpha='auto'"),
        ("stochastic_binary()", "stochastic_binary: alpha=None (only alpha=1 maps exactly"),
        ("stochastic_ternary(alpha='auto', threshold=0.2)", "alpha='auto' with threshold=0.2"),
        ("stochastic_ternary(alpha='auto_po2', number_of_unrolls=3)", "number_of_unrolls=3"),
        ("ternary(alpha='auto', number_of_unrolls=4)", "number_of_unrolls=4"),
        ("stochastic_binary(alpha='auto', gamma=1)", "unknown arguments ['gamma']"),
        ("quantized_bits(4,0,1,1,1,0,None,1.0,None,True,False,7)", "too many arguments"),
        ("quantized_bits(bits=__import__('os'))", "not literals"),
        ("quantized_bits(4,", "not a quantizer expression"),
        ("quantized_bits(4, frobnicate=1)", "unknown arguments ['frobnicate']"),
        (7, "is not a quantizer config"),
    ],
)
def test_qkeras_quantizers_that_do_not_map_exactly(tiny, quantizer, message):
    edit_config(tiny, lambda c: qkeras_layer(c, quantizer))
    with pytest.raises(ValueError, match="larq_tiny/dense_1/kernel_quantizer: ") as error:
        interop.load(tiny)
    assert message in str(error.value)


def test_qkeras_bias_quantizer_and_quantized_activation_map(tiny):
    def edit(config):
        qkeras_layer(config, "quantized_bits(4,0,1)")
        dense = layer_entry(config, "dense_1")["config"]
        dense["bias_quantizer"] = "quantized_bits(8,2)"
        dense["activation"] = "quantized_relu(4,0)"

    edit_config(tiny, edit)
    dense = interop.load(tiny).get_layer("dense_1")
    assert dense.bias_quantizer == quantizers.QuantizedBits(8, 2)
    assert dense.activation == quantizers.QuantizedRelu(4, 0)  # QKeras applies it after the bias
    stochastic = "quantized_bits(8,2,use_stochastic_rounding=True)"
    edit_config(
        tiny, lambda c: layer_entry(c, "dense_1")["config"].update(bias_quantizer=stochastic)
    )
    with pytest.raises(ValueError, match="1 unsupported") as error:
        interop.load(tiny)
    assert "dense_1/bias_quantizer: QKeras quantized_bits: use_stochastic_rounding" in str(
        error.value
    )


@pytest.mark.parametrize(
    "quantizer, expected",
    [
        ("stochastic_binary(alpha='auto_po2')", quantizers.QuantizedBinary("auto_po2")),
        ("stochastic_binary('auto', 2.0, False)", quantizers.QuantizedBinary("auto")),
        ("stochastic_binary(alpha=1, temperature=3.0)", quantizers.SteSign(clip_value=None)),
        ("stochastic_ternary(alpha='auto', temperature=4.0)", quantizers.QuantizedTernary("auto")),
        (
            "stochastic_ternary(1, 0.2, use_real_sigmoid=False)",
            quantizers.SteTern(
                float(np.nextafter(np.float32(0.2), np.float32(0))), scaled=False, clip_value=None
            ),
        ),
    ],
)
def test_qkeras_stochastic_quantizers_map_onto_what_they_compute(tiny, quantizer, expected):
    """On TensorFlow 2 QKeras never samples in fit: binary(alpha) and ternary(alpha, threshold)."""
    edit_config(tiny, lambda c: qkeras_layer(c, quantizer))
    model, report = interop.load_with_report(tiny)
    assert model.get_layer("dense_1").kernel_quantizer == expected
    assert any("stochastic_binary and stochastic_ternary" in n for n in report.notices)


def test_qkeras_string_quantizer_maps(tiny):
    """The string form, positional and keyword, maps as the dict form does."""
    edit_config(tiny, lambda c: qkeras_layer(c, "quantized_bits(4, 1, symmetric=1, alpha=1)"))
    model = interop.load(tiny)
    assert model.get_layer("dense_1").kernel_quantizer == quantizers.QuantizedBits(
        4, 1, symmetric=True, alpha=1.0
    )


PRUNED = _fixtures.h5("tfmot_pruned_wrapped")
CLUSTERED = _fixtures.h5("tfmot_clustered_wrapped")


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"preserve_sparsity": True}, "preserve_sparsity=True"),
        ({"cluster_per_channel": True}, "cluster_per_channel=True"),
        ({"cluster_gradient_aggregation": "GradientAggregation.AVG"}, "GradientAggregation.AVG"),
        ({"number_of_clusters": 1}, "with 1 clusters: Invalid clusters"),
    ],
)
def test_tfmot_clustering_settings_that_do_not_map(tmp_path, setting, message):
    path = tmp_path / "clustered.h5"
    shutil.copy(CLUSTERED, path)
    edit_config(path, lambda c: layer_entry(c, "cluster_hidden")["config"].update(setting))
    with pytest.raises(ValueError, match="tfmot_clustered_wrapped/cluster_hidden: tfmot") as error:
        interop.load(path)
    assert message in str(error.value)


def test_tfmot_quantization_wrappers_are_named_with_an_alternative(tmp_path):
    path = tmp_path / "qat.h5"
    shutil.copy(PRUNED, path)
    edit_config(
        path,
        lambda c: layer_entry(c, "prune_low_magnitude_hidden").update(class_name="QuantizeWrapper"),
    )
    with pytest.raises(ValueError, match="prune_low_magnitude_hidden: tfmot QuantizeWrapper:") as e:
        interop.load(path)
    assert "quantize_model (QuantizeWrapperV2), which tfqnn maps" in str(e.value)


def test_tfmot_wrapped_weights_that_disagree(tmp_path):
    """A mask of another shape, or centroids that are not a vector: a ValueError."""
    path = tmp_path / "pruned.h5"
    shutil.copy(PRUNED, path)
    with h5py.File(path, "r+") as f:
        group = f["model_weights/prune_low_magnitude_hidden/prune_low_magnitude_hidden"]
        del group["mask:0"]
        group.create_dataset("mask:0", data=np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="PruneLowMagnitude of Dense with 1 masks"):
        interop.load(path)
    path = tmp_path / "clustered.h5"
    shutil.copy(CLUSTERED, path)
    with h5py.File(path, "r+") as f:
        group = f["model_weights/cluster_hidden/cluster_hidden"]
        del group["cluster_centroids_kernel:0"]
        group.create_dataset("cluster_centroids_kernel:0", data=np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="centroids 'cluster_centroids_kernel'.*shape \\(4, 4\\)"):
        interop.load(path)


@pytest.mark.parametrize("fixture_path", [PRUNED, CLUSTERED], ids=["pruned", "clustered"])
def test_fuzz_tfmot_wrapped_files(tmp_path, fixture_path):
    """Mutated configs and corrupted bytes of the tfmot fixtures: a model or a ValueError."""
    assert fuzz_count(fixture_path, tmp_path, np.random.default_rng(18), 25, 40) > 10
