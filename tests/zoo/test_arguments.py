"""tfqnn.zoo arguments: keras.applications' meaning, weights files and bad input."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfqnn

SMALL = dict(input_shape=(28, 28, 1), classes=10)


def run(model, x):
    """The model's inference output as numpy (eager: no predict graph to trace)."""
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A QuickNetSmall at 28x28x1 with 10 classes, saved both ways."""
    directory = tmp_path_factory.mktemp("zoo")
    model = tfqnn.zoo.QuickNetSmall(**SMALL)
    weights = os.path.join(directory, "quicknet_small.weights.h5")
    model.save_weights(weights)
    archive = os.path.join(directory, "quicknet_small.keras")
    model.save(archive)
    return model, weights, archive


# The .keras variants repeat the .weights.h5 ones on a file four times the size.
KINDS = [0, pytest.param(1, marks=pytest.mark.slow)]


@pytest.mark.parametrize("kind", KINDS)
def test_weights_file_restores_the_model(saved, kind):
    model, *paths = saved
    loaded = tfqnn.zoo.QuickNetSmall(**SMALL, weights=paths[kind])
    x = np.random.default_rng(1).random((4, 28, 28, 1), np.float32)
    np.testing.assert_array_equal(run(loaded, x), run(model, x))


@pytest.mark.slow
def test_weights_with_the_top_load_into_the_features(saved):
    model, path, _ = saved
    features = tfqnn.zoo.QuickNetSmall(include_top=False, input_shape=(28, 28, 1), weights=path)
    x = np.random.default_rng(2).random((2, 28, 28, 1), np.float32)
    reference = keras.Model(model.input, model.get_layer("section4_block4_add").output)
    np.testing.assert_array_equal(run(features, x), run(reference, x))


@pytest.mark.parametrize("kind", KINDS)
def test_weights_of_another_number_of_classes_name_classes(saved, kind):
    path = saved[1 + kind]
    with pytest.raises(ValueError, match=r"Invalid classes=7: .* saved with classes=10"):
        tfqnn.zoo.QuickNetSmall(input_shape=(28, 28, 1), classes=7, weights=path)


@pytest.mark.parametrize(
    "builder, kwargs",
    [
        (tfqnn.zoo.ResNet18, SMALL),
        pytest.param(tfqnn.zoo.QuickNet, SMALL, marks=pytest.mark.slow),  # other widths
        pytest.param(
            tfqnn.zoo.QuickNetSmall,
            dict(input_shape=(28, 28, 3), classes=10),
            marks=pytest.mark.slow,
        ),
    ],
)
def test_weights_of_another_architecture_are_refused(saved, builder, kwargs):
    for path in saved[1:]:
        with pytest.raises(ValueError, match=r"Invalid weights=.*does not hold weights"):
            builder(**kwargs, weights=path)


@pytest.mark.slow
def test_features_file_does_not_load_into_the_full_model(tmp_path):
    features = tfqnn.zoo.BiRealNet(include_top=False, input_shape=(28, 28, 1))
    path = str(tmp_path / "features.weights.h5")
    features.save_weights(path)
    with pytest.raises(ValueError, match="Invalid weights="):
        tfqnn.zoo.BiRealNet(**SMALL, weights=path)


@pytest.mark.parametrize(
    "weights",
    ["imagenet", "missing.weights.h5", 3, ["a"]],
)
def test_weights_must_be_none_or_an_existing_file(weights):
    with pytest.raises(ValueError, match=r"Invalid weights=.*expected None .*existing"):
        tfqnn.zoo.ResNet18(**SMALL, weights=weights)


def test_weights_file_needs_a_keras_suffix(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"not weights")
    with pytest.raises(ValueError, match=r"\.weights\.h5 or \.keras"):
        tfqnn.zoo.ResNet18(**SMALL, weights=str(path))


def test_corrupt_weights_file_raises_value_error(tmp_path):
    path = tmp_path / "broken.weights.h5"
    path.write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(ValueError, match="Invalid weights="):
        tfqnn.zoo.ResNet18(**SMALL, weights=str(path))


def test_unknown_model_names_the_models():
    for function in (tfqnn.zoo.get, tfqnn.zoo.info):
        with pytest.raises(
            ValueError, match=r"Invalid model='ResNet50': expected one of .*QuickNet"
        ):
            function("ResNet50")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(quantization="int8"), r"Invalid quantization='int8': expected one of 'float'"),
        (dict(quantization="binary", bits=2), r"Invalid bits=2: expected None"),
        (dict(quantization="dorefa", bits=0), r"Invalid bits \(weights\)=0"),
        (dict(quantization="dorefa", bits=(1, 33)), r"Invalid bits \(activations\)=33"),
        (dict(quantization="dorefa", bits=(1, 2, 3)), r"Invalid bits=\(1, 2, 3\)"),
    ],
)
def test_bad_quantization_presets(kwargs, match):
    for name in ("AlexNet", "VGG16", "GoogLeNet", "ResNet18", "ResNet34"):
        with pytest.raises(ValueError, match=match):
            tfqnn.zoo.get(name)(**SMALL, **kwargs)


MIN_SIZES = {
    "AlexNet": 15,
    "VGG16": 16,
    "GoogLeNet": 4,
    "ResNet18": 8,
    "ResNet34": 8,
    "QuickNetSmall": 8,
    "QuickNet": 8,
    "QuickNetLarge": 8,
    "BiRealNet": 8,
    "BinaryResNetE18": 8,
    "BinaryAlexNet": 15,
    "XNORNet": 15,
    "DoReFaNet": 11,
}


@pytest.mark.parametrize("name", tfqnn.zoo.list_models())
def test_smallest_input(name):
    size = MIN_SIZES[name]
    builder = tfqnn.zoo.get(name)
    model = builder(include_top=False, input_shape=(size, size + 5, 1))
    assert min(model.output_shape[1:3]) >= 1
    with pytest.raises(ValueError, match=rf"Invalid input_shape=\({size - 1}, .* at least {size}x"):
        builder(input_shape=(size - 1, 64, 1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=(28, 28)), r"Invalid input_shape=\(28, 28\): expected \(height"),
        (dict(input_shape=(None, None, 3)), r"Invalid input_shape=.*three positive integers"),
        (dict(input_shape=(28, 0, 1)), r"Invalid input_shape"),
        (dict(input_tensor=np.zeros((1, 28, 28, 1))), r"Invalid input_tensor=.*Keras tensor"),
        (dict(input_tensor=keras.Input((28, 28))), r"Invalid input_tensor="),
        (
            dict(input_tensor=keras.Input((28, 28, 1)), input_shape=(32, 32, 1)),
            r"Invalid input_shape=\(32, 32, 1\): expected None or the shape of input_tensor",
        ),
        (dict(pooling="sum"), r"Invalid pooling='sum': expected one of None, 'avg', 'max'"),
        (dict(classes=0), r"Invalid classes=0: expected an integer >= 1"),
        (dict(classes=2.0), r"Invalid classes=2.0"),
        (dict(include_top=1), r"Invalid include_top=1: expected True or False"),
        (dict(classifier_activation="softmaxx"), r"Invalid classifier_activation='softmaxx'"),
        (dict(name=""), r"Invalid name=''"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = dict(input_shape=(28, 28, 1), classes=10)
    arguments.update(kwargs)
    if "input_tensor" in kwargs and "input_shape" not in kwargs:
        del arguments["input_shape"]
    with pytest.raises(ValueError, match=match):
        tfqnn.zoo.ResNet18(**arguments)


def test_input_shape_of_numpy_integers():
    model = tfqnn.zoo.ResNet18(input_shape=tuple(np.array([28, 28, 1])), classes=10)
    assert model.input_shape == (None, 28, 28, 1)


def test_dorefa_net_activation_bits_are_checked():
    with pytest.raises(ValueError, match="Invalid bits=0"):
        tfqnn.zoo.DoReFaNet(**SMALL, activation_bits=0)


def test_input_tensor_from_another_layer():
    inputs = keras.Input((28, 28, 1))
    scaled = keras.layers.Rescaling(1 / 255.0)(inputs)
    model = tfqnn.zoo.ResNet18(input_tensor=scaled, classes=10, quantization="binary")
    assert model.inputs[0] is inputs
    assert model.get_layer("conv1").strides == (1, 1)  # small stem from the tensor's shape
    plain = tfqnn.zoo.ResNet18(input_shape=(28, 28, 1), classes=10, quantization="binary")
    plain.set_weights(model.get_weights())
    x = np.random.default_rng(6).integers(0, 256, (2, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(run(model, x), run(plain, x / 255.0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["VGG16", "QuickNet", "XNORNet"])
@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_pooling_without_top(name, pooling):
    model = tfqnn.zoo.get(name)(include_top=False, pooling=pooling, input_shape=(32, 32, 3))
    features = model.layers[-1].input if pooling else model.output
    channels = features.shape[-1]
    if pooling is None:
        assert len(model.output_shape) == 4
        return
    assert model.output_shape == (None, channels)
    x = np.random.default_rng(3).random((2, 32, 32, 3), np.float32)
    inner = run(keras.Model(model.input, features), x)
    reduce = np.mean if pooling == "avg" else np.max
    # Float rounding of a mean grows with the features' magnitude (up to ~150 here).
    atol = 1e-6 * max(1.0, float(np.abs(inner).max()))
    np.testing.assert_allclose(run(model, x), reduce(inner, axis=(1, 2)), rtol=1e-5, atol=atol)


def test_classifier_activation_none_gives_logits():
    logits_model = tfqnn.zoo.BiRealNet(**SMALL, classifier_activation=None)
    softmax_model = tfqnn.zoo.BiRealNet(**SMALL)
    softmax_model.set_weights(logits_model.get_weights())
    x = np.random.default_rng(4).random((2, 28, 28, 1), np.float32)
    logits = run(logits_model, x)
    probabilities = run(softmax_model, x)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probabilities, expected / expected.sum(1, keepdims=True), rtol=1e-5)
    assert tfqnn.zoo.BiRealNet(**SMALL, name="mine").name == "mine"


@pytest.mark.slow
def test_saved_model_loads_in_a_fresh_process_with_import_tfqnn_only(saved, tmp_path):
    model, _, archive = saved
    x = np.random.default_rng(5).random((2, 28, 28, 1), np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, keras, numpy as np, tfqnn\n"
        "model = keras.models.load_model(sys.argv[1])\n"
        "x = np.load(sys.argv[2])\n"
        "np.save(sys.argv[3], keras.ops.convert_to_numpy(model(x, training=False)))\n"
    )
    out = tmp_path / "y.npy"
    result = subprocess.run(
        [sys.executable, "-c", script, archive, str(tmp_path / "x.npy"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out), run(model, x))


TINY = dict(SMALL, width_multiplier=0.125)


@pytest.fixture(scope="module")
def binary_resnet(tmp_path_factory):
    """A binary ResNet18 (1/8 width), saved both ways."""
    directory = tmp_path_factory.mktemp("preset")
    model = tfqnn.zoo.ResNet18(**TINY, quantization="binary")
    paths = [str(directory / "binary.weights.h5"), str(directory / "binary.keras")]
    model.save_weights(paths[0])
    model.save(paths[1])
    return model, paths


@pytest.mark.parametrize("kind", [0, 1], ids=["weights.h5", "keras"])
def test_weights_of_another_preset_are_refused(binary_resnet, kind):
    _, paths = binary_resnet
    # The variables of both presets are the same: only the record tells them apart.
    for quantization in ("float", "xnor"):
        message = (
            rf"Invalid weights=.*holds the weights of ResNet18\(quantization='binary'\), "
            rf"not of ResNet18\(quantization='{quantization}'\)"
        )
        with pytest.raises(ValueError, match=message):
            tfqnn.zoo.ResNet18(**TINY, quantization=quantization, weights=paths[kind])


def test_weights_of_other_dorefa_bits_are_refused(tmp_path):
    path = str(tmp_path / "w1a2.weights.h5")
    tfqnn.zoo.ResNet18(**TINY, quantization="dorefa").save_weights(path)
    message = r"ResNet18\(quantization='dorefa', bits=\(1, 2\)\), not of .*bits=\(2, 2\)"
    with pytest.raises(ValueError, match=message):
        tfqnn.zoo.ResNet18(**TINY, quantization="dorefa", bits=2, weights=path)
    loaded = tfqnn.zoo.ResNet18(**TINY, quantization="dorefa", bits=(1, 2), weights=path)
    assert loaded.get_layer("conv2_block1_1_conv").input_quantizer.bits == 2


def test_weights_of_the_same_preset_load(binary_resnet):
    model, paths = binary_resnet
    x = np.random.default_rng(3).random((2, 28, 28, 1), np.float32)
    loaded = tfqnn.zoo.ResNet18(**TINY, quantization="binary", weights=paths[0])
    np.testing.assert_array_equal(run(loaded, x), run(model, x))


def test_a_file_without_a_readable_record_loads_as_before(binary_resnet, tmp_path):
    import shutil

    import h5py

    from tfqnn.zoo._builder import PRESET_GROUP

    model, paths = binary_resnet
    for record in (None, "not json", b"\xff\xfe"):
        path = str(tmp_path / "older.weights.h5")
        shutil.copy(paths[0], path)
        with h5py.File(path, "r+") as f:
            if record is None:  # a file saved before the record, or by another tool
                del f[PRESET_GROUP.split("/")[0]]
            else:
                f[PRESET_GROUP].attrs["name"] = record
        # XNOR-Net's variables fit: without a record the presets are not compared.
        loaded = tfqnn.zoo.ResNet18(**TINY, quantization="xnor", weights=path)
        assert isinstance(
            loaded.get_layer("conv2_block1_1_conv").kernel_quantizer, tfqnn.quantizers.ScaledSign
        )
        np.testing.assert_array_equal(
            loaded.get_layer("conv2_block1_1_conv").kernel.numpy(),
            model.get_layer("conv2_block1_1_conv").kernel.numpy(),
        )
