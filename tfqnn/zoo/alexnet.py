"""AlexNet and its binary descendants: BinaryAlexNet, XNOR-Net and DoReFa-Net.

`AlexNet` is the single-column network of Krizhevsky 2014 ("One weird
trick", arXiv:1404.5997; torchvision's AlexNet) with BatchNorm after every
layer, quantized by a preset (`tfqnn.zoo` lists them). The other three are
larq-zoo's definitions, layer for layer, with their parameter counts.

Small inputs (shorter side under 57 px, 50 for DoReFa-Net): the 11x11 stride-4 (DoReFa: 12x12)
first convolution becomes 3x3 stride 1; XNOR-Net's 6x6 "fully connected"
convolution shrinks to the feature map's size.
"""

from __future__ import annotations

from typing import Any

import keras

from tfqnn import quantizers
from tfqnn.constraints import WeightClip
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.zoo import _builder, _presets

# The ImageNet stem (11x11 stride 4, then three 3/2 max pools) needs 57 px.
SMALL_BELOW = 57


def AlexNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "alexnet",
    *,
    quantization: str = "float",
    bits: int | tuple[int, int] | None = None,
) -> keras.Model:
    """AlexNet (Krizhevsky 2014, arXiv:1404.5997), quantized by a preset.

    Five convolutions (64 11x11/4, 192 5x5, 384, 256, 256 3x3; max pools
    3/2 after the first, second and fifth) and three dense layers (4096,
    4096, `classes`), each followed by BatchNorm. The first convolution and
    the classifier stay float; `quantization` sets the rest (``"float"``,
    ``"binary"``, ``"xnor"``, ``"dorefa"`` with `bits`, ``"ternary"``).

    The other arguments are `keras.applications`' (see `tfqnn.zoo`).
    """
    preset = _presets.preset(quantization, bits)
    args = _builder.check_arguments(
        "AlexNet", min_size=15, small_below=SMALL_BELOW, **_builder.arguments_of(locals())
    )
    with _builder.no_constraint_warning():
        x = _alexnet_features(args, preset)
        if args.include_top:
            x = keras.layers.Flatten(name="flatten")(x)
            x = _presets.dense_block(x, preset, 4096, "fc6", dropout=0.5)
            x = _presets.dense_block(x, preset, 4096, "fc7", dropout=0.5)
            x = QuantDense(args.classes, name="predictions")(x)
            x = _builder.activation(x, args)
        else:
            x = _builder.pool(x, args.pooling)
    return _builder.finish(x, args, preset.record())


def _alexnet_features(args: _builder.Arguments, preset: _presets.Preset) -> Any:
    kernel, strides = (3, 1) if args.small else (11, 4)
    x = _presets.float_stem(args.image, 64, kernel, strides, "conv1")
    x = keras.layers.MaxPooling2D(3, 2, name="pool1")(x)
    x = _presets.recentre(x, preset, "pool1_bn")
    x = _presets.conv_block(x, preset, 192, 5, "conv2")
    x = keras.layers.MaxPooling2D(3, 2, name="pool2")(x)
    x = _presets.conv_block(x, preset, 384, 3, "conv3")
    x = _presets.conv_block(x, preset, 256, 3, "conv4")
    x = _presets.conv_block(x, preset, 256, 3, "conv5")
    return keras.layers.MaxPooling2D(3, 2, name="pool5")(x)


def BinaryAlexNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "binary_alexnet",
) -> keras.Model:
    """BinaryNet's AlexNet (Hubara et al. 2016, "Binarized Neural Networks"), as larq-zoo.

    Every layer has unscaled ``ste_sign`` weights with `WeightClip`; every
    layer but the first also binarizes its input (the first reads the float
    image). Convolutions 64 11x11/4, 192 5x5, 384, 384, 256 3x3, max pools
    3/2 before the BatchNorm (no scale) of the first, second and fifth; the
    three dense layers (4096, 4096, `classes`) are 1x1 convolutions on the
    flattened features, the classifier binary too. 61.86 M parameters at
    224x224x3; larq-zoo reports 36.3 % ImageNet top-1.

    The arguments are `keras.applications`' (see `tfqnn.zoo`).
    """
    args = _builder.check_arguments(
        "BinaryAlexNet", min_size=15, small_below=SMALL_BELOW, **_builder.arguments_of(locals())
    )

    def block(
        x: Any, filters: int, kernel: int, name: str, strides: int = 1, pool: bool = False
    ) -> Any:
        first = name == "conv1"
        x = QuantConv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            input_quantizer=None if first else "ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            use_bias=False,
            name=name,
        )(x)
        if pool:
            x = keras.layers.MaxPooling2D(3, 2, name=f"{name}_pool")(x)
        return keras.layers.BatchNormalization(scale=False, momentum=0.9, name=f"{name}_bn")(x)

    kernel, strides = (3, 1) if args.small else (11, 4)
    x = block(args.image, 64, kernel, "conv1", strides=strides, pool=True)
    x = block(x, 192, 5, "conv2", pool=True)
    x = block(x, 384, 3, "conv3")
    x = block(x, 384, 3, "conv4")
    x = block(x, 256, 3, "conv5", pool=True)
    if args.include_top:
        height, width, channels = x.shape[1:]
        x = keras.layers.Reshape((1, 1, height * width * channels), name="flatten")(x)
        x = block(x, 4096, 1, "fc6")
        x = block(x, 4096, 1, "fc7")
        x = QuantConv2D(
            args.classes,
            1,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            use_bias=False,
            name="predictions",
        )(x)
        x = keras.layers.BatchNormalization(scale=False, momentum=0.9, name="predictions_bn")(x)
        x = keras.layers.Flatten(name="predictions_flatten")(x)
        x = _builder.activation(x, args)
    else:
        x = _builder.pool(x, args.pooling)
    return _builder.finish(x, args)


def XNORNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "xnornet",
) -> keras.Model:
    """XNOR-Net's AlexNet (Rastegari et al. 2016, arXiv:1603.05279), as larq-zoo.

    Float first convolution (96 11x11/4), BatchNorm, ReLU, max pool, BatchNorm;
    then binary convolutions 256 5x5, 384, 384, 256 3x3 and the "fully
    connected" 4096 6x6 valid and 4096 1x1 convolutions, each with
    ``ste_sign`` inputs and ``alpha_o * sign(w)`` weights (`ScaledSign`,
    `WeightClip`), BatchNorm without scale; max pools 3/2 after the first,
    second and fifth convolution; ReLU, flatten and a float Dense classifier
    without bias. L2 5e-7 on every kernel. 62.40 M parameters at 224x224x3;
    larq-zoo reports 45.0 % ImageNet top-1.

    The arguments are `keras.applications`' (see `tfqnn.zoo`). Without the
    top the features end after the 6x6 convolution, as in larq-zoo.
    """
    args = _builder.check_arguments(
        "XNORNet", min_size=15, small_below=SMALL_BELOW, **_builder.arguments_of(locals())
    )

    def regularizer() -> keras.regularizers.Regularizer:
        return keras.regularizers.L2(5e-7)

    def binary(x: Any, filters: int, kernel: int, name: str, padding: str = "same") -> Any:
        return QuantConv2D(
            filters,
            kernel,
            padding=padding,
            input_quantizer="ste_sign",
            kernel_quantizer=quantizers.ScaledSign(),
            kernel_constraint=WeightClip(),
            kernel_regularizer=regularizer(),
            use_bias=False,
            name=name,
        )(x)

    def bn(x: Any, name: str, epsilon: float = 1e-4) -> Any:
        return keras.layers.BatchNormalization(
            scale=False, momentum=0.9, epsilon=epsilon, name=name
        )(x)

    def pool(x: Any, name: str) -> Any:
        return keras.layers.MaxPooling2D(3, 2, name=name)(x)

    kernel, strides = (3, 1) if args.small else (11, 4)
    x = QuantConv2D(
        96,
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_regularizer=regularizer(),
        name="conv1",
    )(args.image)
    x = bn(x, "conv1_bn", epsilon=1e-5)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    x = bn(pool(x, "pool1"), "pool1_bn")
    x = bn(pool(binary(x, 256, 5, "conv2"), "pool2"), "pool2_bn")
    x = bn(binary(x, 384, 3, "conv3"), "conv3_bn")
    x = bn(binary(x, 384, 3, "conv4"), "conv4_bn")
    x = bn(pool(binary(x, 256, 3, "conv5"), "pool5"), "pool5_bn")
    fc6 = min(6, x.shape[1], x.shape[2])
    x = bn(binary(x, 4096, fc6, "fc6", padding="valid"), "fc6_bn")
    if args.include_top:
        x = bn(binary(x, 4096, 1, "fc7", padding="valid"), "fc7_bn", epsilon=1e-3)
        x = keras.layers.ReLU(name="fc7_relu")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = QuantDense(
            args.classes, use_bias=False, kernel_regularizer=regularizer(), name="predictions"
        )(x)
        x = _builder.activation(x, args)
    else:
        x = _builder.pool(x, args.pooling)
    return _builder.finish(x, args)


def DoReFaNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "dorefanet",
    *,
    activation_bits: int = 2,
) -> keras.Model:
    """DoReFa-Net's AlexNet, W1A2 (Zhou et al. 2016, arXiv:1606.06160), as larq-zoo.

    Float first convolution (96 12x12/4 valid, with bias, no BatchNorm); then
    convolutions 256 5x5, 384, 384, 256 3x3 and dense layers 4096, 4096 whose
    inputs are DoReFa-quantized to `activation_bits` bits (``clip(x, 0, 1)``
    rounded to ``2^k - 1`` levels) and whose weights are ``sign(w)`` times the
    layer's mean ``|w|`` with the identity gradient (``DoReFa(1, "weights")``,
    no constraint), each followed by BatchNorm without scale; max pools 3/2
    ("same" after the second and third convolution, "valid" after the last);
    ``clip(x, 0, 1)`` and a float Dense classifier. 62.40 M parameters at
    224x224x3; larq-zoo reports 53.4 % ImageNet top-1.

    The arguments are `keras.applications`' (see `tfqnn.zoo`), plus
    `activation_bits` (1 to 32).
    """
    activation_bits = quantizers.DoReFa(activation_bits).bits
    args = _builder.check_arguments("DoReFaNet", min_size=11, **_builder.arguments_of(locals()))

    def quantized(layer: type, *layer_args: Any, **kwargs: Any) -> Any:
        return layer(
            *layer_args,
            input_quantizer=quantizers.DoReFa(activation_bits, mode="activations"),
            kernel_quantizer=quantizers.DoReFa(1, mode="weights"),
            use_bias=False,
            **kwargs,
        )

    def bn(x: Any, name: str) -> Any:
        return keras.layers.BatchNormalization(scale=False, momentum=0.9, epsilon=1e-4, name=name)(
            x
        )

    def block(x: Any, filters: int, kernel: int, name: str, pool: str | None = None) -> Any:
        x = bn(quantized(QuantConv2D, filters, kernel, padding="same", name=name)(x), f"{name}_bn")
        if pool is not None:
            x = keras.layers.MaxPooling2D(3, 2, padding=pool, name=f"{name}_pool")(x)
        return x

    kernel, strides = (3, 1) if args.small else (12, 4)
    with _builder.no_constraint_warning():
        x = QuantConv2D(96, kernel, strides=strides, padding="valid", name="conv1")(args.image)
        x = block(x, 256, 5, "conv2", pool="same")
        x = block(x, 384, 3, "conv3", pool="same")
        x = block(x, 384, 3, "conv4")
        x = block(x, 256, 3, "conv5", pool="valid")
        if args.include_top:
            x = keras.layers.Flatten(name="flatten")(x)
            x = bn(quantized(QuantDense, 4096, name="fc6")(x), "fc6_bn")
            x = bn(quantized(QuantDense, 4096, name="fc7")(x), "fc7_bn")
            x = keras.layers.ReLU(max_value=1.0, name="fc7_clip")(x)
            x = QuantDense(args.classes, name="predictions")(x)
            x = _builder.activation(x, args)
        else:
            x = _builder.pool(x, args.pooling)
    return _builder.finish(x, args)
