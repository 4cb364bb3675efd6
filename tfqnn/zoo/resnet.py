"""ResNets: ResNet-18/34 quantized by a preset, Bi-Real Net and Binary ResNetE-18.

`ResNet18` and `ResNet34` are He et al. 2016's basic-block networks
(arXiv:1512.03385) with float stem, float 1x1 shortcut projections and a
float classifier, the block convolutions quantized by a preset (`tfqnn.zoo`
lists them). `BiRealNet` and `BinaryResNetE18` are larq-zoo's definitions,
with a shortcut around every binary 3x3 convolution and their parameter
counts.

Small inputs (shorter side under 50 px): the 7x7 stride-2 stem and its max
pool become one 3x3 stride-1 convolution (and BatchNorm), as larq-zoo's
ResNetE; the four stages then run at 1, 1/2, 1/4 and 1/8 of the input.
"""

from __future__ import annotations

from typing import Any

import keras

from tfqnn import quantizers
from tfqnn.constraints import WeightClip
from tfqnn.layers import QuantConv2D
from tfqnn.zoo import _builder, _presets

STAGE_FILTERS = (64, 128, 256, 512)


def ResNet18(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "resnet18",
    *,
    quantization: str = "float",
    bits: int | tuple[int, int] | None = None,
    width_multiplier: float = 1.0,
) -> keras.Model:
    """ResNet-18 (He et al. 2016, arXiv:1512.03385), quantized by a preset.

    Stages of (2, 2, 2, 2) basic blocks with 64, 128, 256, 512 filters. The
    7x7 stem, the 1x1 shortcut projections and the classifier stay float;
    `quantization` sets the 3x3 convolutions (``"float"``, ``"binary"``,
    ``"xnor"``, ``"dorefa"`` with `bits`, ``"ternary"``). `width_multiplier`
    scales every width, the stem's too (0.25: 16, 32, 64, 128 filters), for
    networks small enough to train on a CPU.

    The other arguments are `keras.applications`' (see `tfqnn.zoo`).
    """
    preset = _presets.preset(quantization, bits)
    filters = _builder.scaled_filters(STAGE_FILTERS, width_multiplier)
    args = _builder.check_arguments("ResNet18", min_size=8, **_builder.arguments_of(locals()))
    return _resnet(args, preset, (2, 2, 2, 2), filters)


def ResNet34(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "resnet34",
    *,
    quantization: str = "float",
    bits: int | tuple[int, int] | None = None,
    width_multiplier: float = 1.0,
) -> keras.Model:
    """ResNet-34 (He et al. 2016, arXiv:1512.03385), quantized by a preset.

    As `ResNet18` (`width_multiplier` included) with stages of (3, 4, 6, 3)
    basic blocks.
    """
    preset = _presets.preset(quantization, bits)
    filters = _builder.scaled_filters(STAGE_FILTERS, width_multiplier)
    args = _builder.check_arguments("ResNet34", min_size=8, **_builder.arguments_of(locals()))
    return _resnet(args, preset, (3, 4, 6, 3), filters)


def _resnet(
    args: _builder.Arguments,
    preset: _presets.Preset,
    blocks: tuple[int, ...],
    stage_filters: tuple[int, ...],
) -> Any:
    if args.small:
        x = _presets.float_stem(args.image, stage_filters[0], 3, 1, "conv1")
    else:
        x = _presets.float_stem(args.image, stage_filters[0], 7, 2, "conv1")
        x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _presets.recentre(x, preset, "pool1_bn")
    with _builder.no_constraint_warning():
        for stage, (count, filters) in enumerate(zip(blocks, stage_filters), start=2):
            for block in range(count):
                strides = 2 if block == 0 and stage > 2 else 1
                x = _basic_block(x, preset, filters, strides, f"conv{stage}_block{block + 1}")
    return _builder.finish(_builder.head(x, args), args, preset.record())


def _basic_block(x: Any, preset: _presets.Preset, filters: int, strides: int, name: str) -> Any:
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = QuantConv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_0_conv")(
            x
        )
        shortcut = keras.layers.BatchNormalization(name=f"{name}_0_bn")(shortcut)
    x = _presets.conv_block(x, preset, filters, 3, f"{name}_1_conv", strides=strides)
    x = QuantConv2D(filters, 3, padding="same", name=f"{name}_2_conv", **preset.conv_kwargs())(x)
    x = keras.layers.BatchNormalization(name=f"{name}_2_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    if preset.relu:
        x = keras.layers.ReLU(name=f"{name}_out")(x)
    return x


def BiRealNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "birealnet18",
) -> keras.Model:
    """Bi-Real Net 18 (Liu et al. 2018, arXiv:1808.00278), as larq-zoo.

    A float 7x7/2 stem, BatchNorm and 3x3/2 max pool; 16 binary 3x3
    convolutions (``approx_sign`` inputs, ``alpha_o * sign(w)`` weights,
    `WeightClip`, zero padding), each followed by BatchNorm (momentum 0.8)
    and added to a shortcut: the identity, or where the width doubles a 2x2
    average pool, float 1x1 convolution and BatchNorm; global average pool
    and a float Dense classifier. 11.70 M parameters at 224x224x3; larq-zoo
    reports 57.5 % ImageNet top-1.

    The arguments are `keras.applications`' (see `tfqnn.zoo`).
    """
    args = _builder.check_arguments("BiRealNet", min_size=8, **_builder.arguments_of(locals()))
    x = _stem(args, momentum=0.8, epsilon=1e-3, relu=False, recentre=False)
    for stage, filters in enumerate(STAGE_FILTERS, start=2):
        for block in range(4):
            x = _shortcut_block(
                x,
                filters,
                input_quantizer=quantizers.ApproxSign(),
                kernel_quantizer=quantizers.ScaledSign(),
                kernel_constraint=WeightClip(),
                momentum=0.8,
                epsilon=1e-3,
                name=f"conv{stage}_block{block + 1}",
            )
    return _builder.finish(_builder.head(x, args), args)


def BinaryResNetE18(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "binary_resnet_e_18",
) -> keras.Model:
    """Binary ResNetE-18 (Bethge et al. 2019, arXiv:1906.08637), as larq-zoo.

    A float 7x7/2 stem, BatchNorm, ReLU, 3x3/2 max pool and BatchNorm; 16
    binary 3x3 convolutions (``SteSign(1.25)`` on inputs and weights,
    ``WeightClip(1.25)``, zero padding), each followed by BatchNorm and added
    to a shortcut: the identity, or where the width doubles a 2x2 average
    pool, float 1x1 convolution and BatchNorm; ReLU, global average pool and
    a float Dense classifier. 11.70 M parameters at 224x224x3; larq-zoo
    reports 58.3 % ImageNet top-1. (The shortcut's average pool pads "same",
    so that odd feature maps, 7x7 at a 28x28 input, line up.)

    The arguments are `keras.applications`' (see `tfqnn.zoo`).
    """
    args = _builder.check_arguments(
        "BinaryResNetE18", min_size=8, **_builder.arguments_of(locals())
    )
    x = _stem(args, momentum=0.9, epsilon=1e-5, relu=True, recentre=True)
    for stage, filters in enumerate(STAGE_FILTERS, start=2):
        for block in range(4):
            x = _shortcut_block(
                x,
                filters,
                input_quantizer=quantizers.SteSign(1.25),
                kernel_quantizer=quantizers.SteSign(1.25),
                kernel_constraint=WeightClip(1.25),
                momentum=0.9,
                epsilon=1e-5,
                name=f"conv{stage}_block{block + 1}",
                strides=2 if block == 0 and stage > 2 else 1,
            )
    x = keras.layers.ReLU(name="out_relu")(x)
    return _builder.finish(_builder.head(x, args), args)


def _stem(
    args: _builder.Arguments, momentum: float, epsilon: float, relu: bool, recentre: bool
) -> Any:
    """The float 7x7/2 stem with max pool, or the small-input 3x3/1 one."""

    def bn(x: Any, name: str) -> Any:
        return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name=name)(x)

    kernel, strides = (3, 1) if args.small else (7, 2)
    x = QuantConv2D(64, kernel, strides=strides, padding="same", use_bias=False, name="conv1")(
        args.image
    )
    x = bn(x, "conv1_bn")
    if args.small:
        return x
    if relu:
        x = keras.layers.ReLU(name="conv1_relu")(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    return bn(x, "pool1_bn") if recentre else x


def _shortcut_block(
    x: Any,
    filters: int,
    *,
    input_quantizer: Any,
    kernel_quantizer: Any,
    kernel_constraint: Any,
    momentum: float,
    epsilon: float,
    name: str,
    strides: int | None = None,
) -> Any:
    """A binary 3x3 convolution and BatchNorm added to a (projected) shortcut."""
    shortcut = x
    if x.shape[-1] != filters:
        strides = 2 if strides is None else strides
        shortcut = keras.layers.AveragePooling2D(2, 2, padding="same", name=f"{name}_0_pool")(x)
        shortcut = QuantConv2D(filters, 1, use_bias=False, name=f"{name}_0_conv")(shortcut)
        shortcut = keras.layers.BatchNormalization(
            momentum=momentum, epsilon=epsilon, name=f"{name}_0_bn"
        )(shortcut)
    x = QuantConv2D(
        filters,
        3,
        strides=1 if strides is None else strides,
        padding="same",
        input_quantizer=input_quantizer,
        kernel_quantizer=kernel_quantizer,
        kernel_constraint=kernel_constraint,
        kernel_initializer="glorot_normal",
        use_bias=False,
        name=f"{name}_1_conv",
    )(x)
    x = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name=f"{name}_1_bn")(x)
    return keras.layers.Add(name=f"{name}_add")([x, shortcut])
