"""Scaled zoo networks: `width_multiplier` (ResNets, QuickNets) and `blocks` (QuickNets)."""

import numpy as np
import pytest

import tfqnn
from tfqnn.layers import QuantConv2D

SMALL = dict(input_shape=(28, 28, 1), classes=10)


def resnet_trainable_params(widths, blocks, channels, classes, stem_kernel):
    """Trainable parameters of a float basic-block ResNet, counted from its definition:
    convolutions without bias, BatchNorm gamma and beta, a Dense classifier with bias."""

    def conv_bn(k, c_in, c_out):
        return k * k * c_in * c_out + 2 * c_out

    total = conv_bn(stem_kernel, channels, widths[0])
    c_in = widths[0]
    for count, width in zip(blocks, widths):
        for _ in range(count):
            total += conv_bn(3, c_in, width) + conv_bn(3, width, width)
            if c_in != width:  # the 1x1 projection of the first block of a stage
                total += conv_bn(1, c_in, width)
            c_in = width
    return total + c_in * classes + classes


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "name, blocks, multiplier, widths",
    [
        ("ResNet18", (2, 2, 2, 2), 0.125, (8, 16, 32, 64)),
        ("ResNet18", (2, 2, 2, 2), 0.3, (19, 38, 77, 154)),
        ("ResNet34", (3, 4, 6, 3), 0.125, (8, 16, 32, 64)),
    ],
)
def test_resnet_width_multiplier_scales_every_width(name, blocks, multiplier, widths):
    model = tfqnn.zoo.get(name)(**SMALL, width_multiplier=multiplier, quantization="float")
    assert trainable(model) == resnet_trainable_params(widths, blocks, 1, 10, 3)
    assert model.get_layer("conv1").filters == widths[0]
    assert model.get_layer("conv5_block1_2_conv").filters == widths[3]


def test_resnet_width_multiplier_one_is_the_default_network():
    assert trainable(tfqnn.zoo.ResNet18(width_multiplier=1.0)) == resnet_trainable_params(
        (64, 128, 256, 512), (2, 2, 2, 2), 3, 1000, 7
    )


def test_binary_resnet_keeps_its_presets_when_scaled():
    model = tfqnn.zoo.ResNet18(**SMALL, width_multiplier=0.125, quantization="binary")
    binary = [
        layer
        for layer in model.layers
        if isinstance(layer, QuantConv2D) and layer.input_quantizer is not None
    ]
    assert len(binary) == 16
    assert sorted({layer.filters for layer in binary}) == [8, 16, 32, 64]


def quicknet_layout(model):
    """(filters of each binary block convolution, per section), read from the layer names."""
    sections = {}
    for layer in model.layers:
        if layer.name.startswith("section") and layer.name.endswith("_conv"):
            if "transition" in layer.name:
                continue
            section = int(layer.name[len("section")])
            sections.setdefault(section, []).append(layer.filters)
    return [sections[s] for s in sorted(sections)]


@pytest.mark.parametrize(
    "name, multiplier, blocks, widths",
    [
        ("QuickNetSmall", 0.25, (2, 2, 2, 2), (8, 16, 64, 128)),
        ("QuickNet", 0.125, (1, 2, 1, 3), (8, 16, 32, 64)),
        ("QuickNetLarge", 0.0625, None, (4, 8, 16, 32)),
    ],
)
def test_quicknet_width_multiplier_and_blocks(name, multiplier, blocks, widths):
    model = tfqnn.zoo.get(name)(**SMALL, width_multiplier=multiplier, blocks=blocks)
    expected_blocks = blocks or (6, 8, 12, 6)
    assert quicknet_layout(model) == [
        [width] * count for width, count in zip(widths, expected_blocks)
    ]
    assert model.get_layer("stem_conv").filters == max(1, widths[0] // 4)
    assert model.get_layer("stem_pw").filters == widths[0]
    x = np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)).astype(np.float32)
    probabilities = np.asarray(model(x, training=False))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_quicknet_defaults_are_unchanged():
    # (Its parameter count at 224x224x3 is checked against larq-zoo's in test_builders.)
    default = tfqnn.zoo.QuickNetSmall(**SMALL, width_multiplier=1.0, blocks=(4, 4, 4, 4))
    assert quicknet_layout(default) == [[w] * 4 for w in (32, 64, 256, 512)]


@pytest.mark.parametrize("value", [0, -0.5, "half", True, float("nan"), None])
def test_bad_width_multiplier(value):
    for builder in (tfqnn.zoo.ResNet18, tfqnn.zoo.QuickNetSmall):
        with pytest.raises(ValueError, match=r"Invalid width_multiplier=.*positive number"):
            builder(**SMALL, width_multiplier=value)


@pytest.mark.parametrize("value", [(4, 4, 4), (4, 0, 4, 4), "4444", (4, 4.0, 4, 4), (True,) * 4])
def test_bad_blocks(value):
    with pytest.raises(ValueError, match=r"Invalid blocks=.*4 integers >= 1"):
        tfqnn.zoo.QuickNet(**SMALL, blocks=value)


def test_weights_of_another_width_or_classes_are_refused(tmp_path):
    model = tfqnn.zoo.ResNet18(**SMALL, width_multiplier=0.125, quantization="binary")
    path = tmp_path / "small.weights.h5"
    model.save_weights(path)
    loaded = tfqnn.zoo.ResNet18(
        **SMALL, width_multiplier=0.125, quantization="binary", weights=path
    )
    for mine, theirs in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match=r"Invalid weights=.*does not hold weights of resnet18"):
        tfqnn.zoo.ResNet18(**SMALL, width_multiplier=0.25, weights=str(path))
    with pytest.raises(ValueError, match=r"Invalid classes=3: .* saved with classes=10"):
        tfqnn.zoo.ResNet18(
            input_shape=(28, 28, 1), classes=3, width_multiplier=0.125, weights=str(path)
        )
