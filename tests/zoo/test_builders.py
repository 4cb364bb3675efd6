"""tfqnn.zoo builders: architectures, parameter counts, small inputs, presets."""

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.quantizers import DoReFa, ScaledSign, SteSign, SteTern
from tfqnn.zoo import quicknet

CLASSIC = ["AlexNet", "VGG16", "GoogLeNet", "ResNet18", "ResNet34"]
LITERATURE = [
    "QuickNetSmall",
    "QuickNet",
    "QuickNetLarge",
    "BiRealNet",
    "BinaryResNetE18",
    "BinaryAlexNet",
    "XNORNet",
    "DoReFaNet",
]
# larq-zoo's docstrings count every variable for these; for the QuickNets they
# leave out the moving statistics of BatchNorms that have gamma and beta
# (0.07 % of the total), so those match within the 0.5 % only.
EXACT = {"BiRealNet", "BinaryResNetE18", "BinaryAlexNet", "XNORNet", "DoReFaNet"}


def test_list_models_names_every_builder_once():
    names = tfqnn.zoo.list_models()
    assert names == CLASSIC + LITERATURE
    for name in names:
        builder = tfqnn.zoo.get(name)
        assert builder is getattr(tfqnn.zoo, name)
        assert builder.__name__ == name
        assert tfqnn.zoo.info(name).name == name


@pytest.mark.parametrize(
    "name",
    # The three 62 M-parameter AlexNets take a few seconds each to build.
    [
        n
        if "AlexNet" not in n and "NORNet" not in n and "DoReFa" not in n
        else pytest.param(n, marks=pytest.mark.slow)
        for n in LITERATURE
    ],
)
def test_literature_parameter_counts_match_larq_zoo(name):
    published = tfqnn.zoo.info(name).params
    model = tfqnn.zoo.get(name)()  # 224x224x3, 1000 classes
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)
    count = model.count_params()
    assert abs(count - published) <= 0.005 * published
    if name in EXACT:
        assert count == published


@pytest.mark.parametrize(
    "name, torchvision",
    # torchvision's resnet18 / resnet34 trainable parameters (conv without
    # bias, BatchNorm gamma and beta, fc with bias): the same architecture.
    [("ResNet18", 11_689_512), ("ResNet34", 21_797_672)],
)
def test_float_resnets_have_torchvisions_trainable_parameters(name, torchvision):
    model = tfqnn.zoo.get(name)()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == torchvision


@pytest.mark.parametrize("name", CLASSIC + LITERATURE)
@pytest.mark.parametrize("shape", [(28, 28, 1), pytest.param((32, 32, 3), marks=pytest.mark.slow)])
def test_small_inputs_build_with_a_stride_one_stem(name, shape):
    model = tfqnn.zoo.get(name)(input_shape=shape, classes=10)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, 10)
    first = next(layer for layer in model.layers if isinstance(layer, QuantConv2D))
    assert first.strides == (1, 1)


@pytest.mark.parametrize("name", ["QuickNetSmall", "DoReFaNet"])
def test_small_model_predicts_a_distribution(name):
    model = tfqnn.zoo.get(name)(input_shape=(28, 28, 1), classes=10)
    x = np.random.default_rng(0).random((3, 28, 28, 1), np.float32)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == (3, 10) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "name, first, small_below, strides",
    [
        ("ResNet18", "conv1", 50, 2),
        ("QuickNet", "stem_conv", 50, 2),
        ("BinaryResNetE18", "conv1", 50, 2),
        ("AlexNet", "conv1", 57, 4),  # its ImageNet stem needs 57 px
        ("XNORNet", "conv1", 57, 4),
    ],
)
def test_small_stem_below_the_threshold_only(name, first, small_below, strides):
    builder = tfqnn.zoo.get(name)
    below = builder(include_top=False, input_shape=(small_below - 1, 64, 3))
    assert below.get_layer(first).strides == (1, 1)
    at = builder(include_top=False, input_shape=(small_below, 64, 3))
    assert at.get_layer(first).strides == (strides, strides)


def _quantized_layers(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, (QuantConv2D, QuantDense)) and layer.kernel_quantizer is not None
    ]


@pytest.mark.parametrize(
    "name",
    [
        "AlexNet",
        "ResNet18",
        *(pytest.param(n, marks=pytest.mark.slow) for n in CLASSIC[1:3] + CLASSIC[4:]),
    ],
)
@pytest.mark.parametrize("quantization", ["binary", "xnor", "dorefa", "ternary"])
def test_presets_quantize_all_but_first_layer_classifier_and_shortcuts(name, quantization):
    model = tfqnn.zoo.get(name)(input_shape=(32, 32, 3), classes=10, quantization=quantization)
    convs = [layer for layer in model.layers if isinstance(layer, (QuantConv2D, QuantDense))]
    quantized = _quantized_layers(model)
    assert convs[0] not in quantized  # the first convolution
    assert model.get_layer("predictions") not in quantized
    shortcuts = [layer for layer in convs if layer.name.endswith("_0_conv")]
    assert (len(shortcuts) == 3) == name.startswith("ResNet")
    assert len(quantized) == len(convs) - 2 - len(shortcuts)
    for layer in quantized:
        kernel, inputs = layer.kernel_quantizer, layer.input_quantizer
        if quantization == "binary":
            assert type(kernel) is SteSign and type(inputs) is SteSign
            assert layer.kernel_constraint is not None
        elif quantization == "xnor":
            assert type(kernel) is ScaledSign and type(inputs) is SteSign
        elif quantization == "dorefa":
            assert kernel.get_config() == {"bits": 1, "mode": "weights"}
            assert inputs.get_config() == {"bits": 2, "mode": "activations"}
        else:
            assert type(kernel) is SteTern and inputs is None
        if isinstance(layer, QuantConv2D) and layer.padding == "same":
            assert layer.pad_values == (1.0 if quantization in ("binary", "xnor") else 0.0)
    # A ReLU between layers only where no sign or clip follows.
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    if quantization == "ternary":
        assert len(relus) > len(quantized) // 2
    else:
        assert len(relus) == 1  # the float stem's


@pytest.mark.parametrize(
    "name",
    ["GoogLeNet", *(pytest.param(n, marks=pytest.mark.slow) for n in CLASSIC if n != "GoogLeNet")],
)
def test_binary_presets_do_most_macs_in_binary(name):
    binary = tfqnn.summary(
        tfqnn.zoo.get(name)(input_shape=(32, 32, 3), classes=10, quantization="binary"),
        print_fn=None,
    )
    assert binary.binary_mac_fraction > 0.95
    float_ = tfqnn.summary(tfqnn.zoo.get(name)(input_shape=(32, 32, 3)), print_fn=None)
    assert float_.binary_mac_fraction == 0.0


def test_dorefa_bits():
    model = tfqnn.zoo.ResNet18(input_shape=(28, 28, 1), quantization="dorefa", bits=(2, 4))
    for layer in _quantized_layers(model):
        assert layer.kernel_quantizer.get_config() == {"bits": 2, "mode": "weights"}
        assert layer.input_quantizer.get_config() == {"bits": 4, "mode": "activations"}
    model = tfqnn.zoo.VGG16(input_shape=(28, 28, 1), quantization="dorefa", bits=3)
    bits = {
        (layer.kernel_quantizer.bits, layer.input_quantizer.bits)
        for layer in _quantized_layers(model)
    }
    assert bits == {(3, 3)}


def test_literature_quantizers_follow_larq_zoo():
    def binary_convs(model):
        return [layer for layer in _quantized_layers(model) if layer.input_quantizer is not None]

    quick = binary_convs(tfqnn.zoo.QuickNetSmall(input_shape=(32, 32, 3)))
    assert len(quick) == 16
    for layer in quick:
        assert layer.input_quantizer.get_config() == {"clip_value": 1.25}
        assert layer.kernel_constraint.clip_value == 1.25
        assert layer.pad_values == 1.0 and layer.activation is keras.activations.relu
    bireal = binary_convs(tfqnn.zoo.BiRealNet(input_shape=(32, 32, 3)))
    assert len(bireal) == 16
    assert all(type(layer.kernel_quantizer) is ScaledSign for layer in bireal)
    assert all(layer.pad_values == 0.0 for layer in bireal)
    resnet_e = binary_convs(tfqnn.zoo.BinaryResNetE18(input_shape=(32, 32, 3)))
    assert len(resnet_e) == 16
    assert all(layer.kernel_quantizer.clip_value == 1.25 for layer in resnet_e)
    alex = tfqnn.zoo.BinaryAlexNet(input_shape=(32, 32, 3), classes=10)
    first = alex.get_layer("conv1")
    assert first.input_quantizer is None and type(first.kernel_quantizer) is SteSign
    assert type(alex.get_layer("predictions").input_quantizer) is SteSign  # binary classifier
    dorefa = tfqnn.zoo.DoReFaNet(input_shape=(32, 32, 3), activation_bits=3)
    for layer in _quantized_layers(dorefa):
        assert isinstance(layer.kernel_quantizer, DoReFa) and layer.kernel_constraint is None
        assert layer.input_quantizer.bits == 3


def test_blur_pool_kernel_is_the_binomial_filter_and_frozen():
    k = np.array([1.0, 2.0, 1.0])
    expected = np.outer(k, k) / 16.0
    kernel = quicknet.blur_kernel(5)
    assert kernel.shape == (3, 3, 5, 1)
    for c in range(5):
        np.testing.assert_allclose(kernel[:, :, c, 0], expected, rtol=0, atol=0)
    np.testing.assert_allclose(quicknet.blur_kernel(1, size=5)[2, :, 0, 0].sum(), 6 / 16)
    with pytest.raises(ValueError, match="size=4"):
        quicknet.blur_kernel(1, size=4)
    model = tfqnn.zoo.QuickNetSmall(input_shape=(32, 32, 3), classes=10)
    blurs = [layer for layer in model.layers if layer.name.endswith("_blur")]
    assert len(blurs) == 3
    for layer in blurs:
        assert not layer.trainable
        np.testing.assert_array_equal(
            layer.get_weights()[0], quicknet.blur_kernel(layer.kernel.shape[2])
        )


@pytest.mark.slow
def test_fit_trains_and_keeps_blur_and_clip():
    model = tfqnn.zoo.QuickNetSmall(input_shape=(16, 16, 1), classes=3)
    model.compile("adam", "sparse_categorical_crossentropy")
    blur = model.get_layer("section2_transition_blur")
    before_blur = blur.get_weights()[0]
    conv = model.get_layer("section1_block1_conv")
    before = conv.get_weights()[0].copy()
    rng = np.random.default_rng(1)
    x, y = rng.random((16, 16, 16, 1), np.float32), rng.integers(0, 3, 16)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = conv.get_weights()[0]
    assert not np.array_equal(before, after)  # the binary layer learns
    assert np.abs(after).max() <= 1.25  # WeightClip(1.25)
    np.testing.assert_array_equal(blur.get_weights()[0], before_blur)
