"""QuickNet, QuickNetSmall and QuickNetLarge (Bannink et al. 2021, arXiv:2011.09398), as larq-zoo.

A float stem (3x3/2 convolution with a quarter of the first width,
BatchNorm, ReLU, 3x3/2 depthwise convolution, BatchNorm without scale or
centre, 1x1 convolution, BatchNorm); sections of residual blocks, each a
binary 3x3 convolution (``SteSign(1.25)`` on inputs and weights,
``WeightClip(1.25)``, padding with +1) with a ReLU, then BatchNorm, added to
its input; between sections a transition: ReLU, 2x2 stride-1 max pool, a
fixed 3x3 blur pool of stride 2 (Zhang 2019, arXiv:1904.11486: the
depthwise kernel ``outer(k, k) / 16``, ``k = (1, 2, 1)``, not trained), a
float 1x1 convolution and BatchNorm. The top: ReLU, global average pool, a
float Dense classifier.

Small inputs (shorter side under 50 px): the stem's two stride-2 steps run
at stride 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tfqnn import quantizers
from tfqnn.constraints import WeightClip
from tfqnn.layers import QuantConv2D, QuantDepthwiseConv2D
from tfqnn.zoo import _builder


def QuickNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "quicknet",
    *,
    width_multiplier: float = 1.0,
    blocks: tuple[int, int, int, int] | None = None,
) -> keras.Model:
    """QuickNet: sections of (4, 4, 4, 4) blocks, 64, 128, 256, 512 filters.

    13.23 M parameters at 224x224x3; larq-zoo reports 63.3 % ImageNet top-1.
    The arguments are `keras.applications`' (see `tfqnn.zoo`), plus
    `width_multiplier`, which scales every width (the stem's is a quarter of
    the first section's), and `blocks`, the blocks of each of the four
    sections, for networks small enough to train on a CPU.
    """
    filters = _builder.scaled_filters((64, 128, 256, 512), width_multiplier)
    sections = _builder.stage_blocks(blocks, (4, 4, 4, 4))
    args = _builder.check_arguments("QuickNet", min_size=8, **_builder.arguments_of(locals()))
    return _quicknet(args, sections, filters)


def QuickNetSmall(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "quicknet_small",
    *,
    width_multiplier: float = 1.0,
    blocks: tuple[int, int, int, int] | None = None,
) -> keras.Model:
    """QuickNetSmall: sections of (4, 4, 4, 4) blocks, 32, 64, 256, 512 filters.

    12.66 M parameters at 224x224x3; larq-zoo reports 59.4 % ImageNet top-1.
    The arguments are `keras.applications`' (see `tfqnn.zoo`), and
    `width_multiplier` and `blocks` as in `QuickNet`.
    """
    filters = _builder.scaled_filters((32, 64, 256, 512), width_multiplier)
    sections = _builder.stage_blocks(blocks, (4, 4, 4, 4))
    args = _builder.check_arguments("QuickNetSmall", min_size=8, **_builder.arguments_of(locals()))
    return _quicknet(args, sections, filters)


def QuickNetLarge(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "quicknet_large",
    *,
    width_multiplier: float = 1.0,
    blocks: tuple[int, int, int, int] | None = None,
) -> keras.Model:
    """QuickNetLarge: sections of (6, 8, 12, 6) blocks, 64, 128, 256, 512 filters.

    23.34 M parameters at 224x224x3; larq-zoo reports 66.9 % ImageNet top-1.
    The arguments are `keras.applications`' (see `tfqnn.zoo`), and
    `width_multiplier` and `blocks` as in `QuickNet`.
    """
    filters = _builder.scaled_filters((64, 128, 256, 512), width_multiplier)
    sections = _builder.stage_blocks(blocks, (6, 8, 12, 6))
    args = _builder.check_arguments("QuickNetLarge", min_size=8, **_builder.arguments_of(locals()))
    return _quicknet(args, sections, filters)


def blur_kernel(channels: int, size: int = 3) -> np.ndarray:
    """The depthwise kernel ``[size, size, channels, 1]`` of a blur pool.

    Each channel's filter is ``outer(k, k) / sum(outer(k, k))`` with ``k`` a
    row of Pascal's triangle ((1, 1), (1, 2, 1) or (1, 4, 6, 4, 1));
    Zhang 2019, "Making Convolutional Networks Shift-Invariant Again"
    (arXiv:1904.11486).
    """
    rows = {2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}
    if size not in rows:
        raise ValueError(f"Invalid size={size!r}: expected one of 2, 3, 5.")
    k = np.outer(rows[size], rows[size])
    k = (k / k.sum()).astype(np.float32)
    return np.repeat(k[:, :, None, None], channels, axis=2)


def _quicknet(args: _builder.Arguments, blocks: Sequence[int], filters: Sequence[int]) -> Any:
    strides = 1 if args.small else 2
    width = filters[0]
    x = QuantConv2D(
        max(1, width // 4),
        3,
        strides=strides,
        padding="same",
        kernel_initializer="he_normal",
        use_bias=False,
        name="stem_conv",
    )(args.image)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = QuantDepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name="stem_dw")(x)
    x = keras.layers.BatchNormalization(scale=False, center=False, name="stem_dw_bn")(x)
    x = QuantConv2D(width, 1, kernel_initializer="he_normal", use_bias=False, name="stem_pw")(x)
    x = keras.layers.BatchNormalization(name="stem_pw_bn")(x)
    blurs = []
    for section, (count, width) in enumerate(zip(blocks, filters), start=1):
        for block in range(count):
            name = f"section{section}_block{block + 1}"
            if x.shape[-1] != width:
                x, blur = _transition(x, width, f"section{section}_transition")
                blurs.append(blur)
            x = _residual_block(x, name)
    if args.include_top:
        x = keras.layers.ReLU(name="top_relu")(x)
    model = _builder.finish(_builder.head(x, args), args)
    if args.weights is None:
        for blur in blurs:  # a weights file holds the kernels already
            blur.set_weights([blur_kernel(blur.kernel.shape[2])])
    return model


def _residual_block(x: Any, name: str) -> Any:
    y = QuantConv2D(
        x.shape[-1],
        3,
        padding="same",
        pad_values=1.0,
        activation="relu",
        input_quantizer=quantizers.SteSign(1.25),
        kernel_quantizer=quantizers.SteSign(1.25),
        kernel_constraint=WeightClip(1.25),
        kernel_initializer="glorot_normal",
        use_bias=False,
        name=f"{name}_conv",
    )(x)
    y = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(y)
    return keras.layers.Add(name=f"{name}_add")([y, x])


def _transition(x: Any, filters: int, name: str) -> tuple[Any, keras.layers.Layer]:
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    x = keras.layers.MaxPooling2D(2, strides=1, name=f"{name}_pool")(x)
    blur = keras.layers.DepthwiseConv2D(
        3, strides=2, padding="same", use_bias=False, trainable=False, name=f"{name}_blur"
    )
    x = blur(x)
    x = QuantConv2D(
        filters, 1, kernel_initializer="glorot_normal", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return x, blur
