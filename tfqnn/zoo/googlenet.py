"""GoogLeNet, Inception v1 (Szegedy et al. 2015, arXiv:1409.4842), quantized by a preset.

Without the auxiliary classifiers and with BatchNorm in place of local
response normalization, as modern reimplementations train it.
"""

from __future__ import annotations

from typing import Any

import keras

from tfqnn.zoo import _builder, _presets

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection), the paper's Table 1.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def GoogLeNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "googlenet",
    *,
    quantization: str = "float",
    bits: int | tuple[int, int] | None = None,
) -> keras.Model:
    """GoogLeNet (Inception v1), quantized by a preset.

    Stem: 7x7/2 convolution (64), 3x3/2 max pool, 1x1 (64) and 3x3 (192)
    convolutions, 3x3/2 max pool; inception blocks 3a, 3b, pool, 4a-4e,
    pool, 5a, 5b (the paper's widths), each concatenating a 1x1, a 1x1-3x3,
    a 1x1-5x5 and a 3x3 max pool-1x1 branch; global average pool, dropout
    0.4, Dense classifier. Every convolution is followed by BatchNorm. The
    first convolution and the classifier stay float; `quantization` sets the
    rest (``"float"``, ``"binary"``, ``"xnor"``, ``"dorefa"`` with `bits`,
    ``"ternary"``). Small inputs (shorter side under 50 px): the stem's
    stride-2 convolution and pools run at stride 1.

    The other arguments are `keras.applications`' (see `tfqnn.zoo`).
    """
    preset = _presets.preset(quantization, bits)
    args = _builder.check_arguments("GoogLeNet", min_size=4, **_builder.arguments_of(locals()))
    strides = 1 if args.small else 2
    with _builder.no_constraint_warning():
        x = _presets.float_stem(args.image, 64, 7 if strides == 2 else 3, strides, "conv1")
        x = _pool(x, strides, "pool1")
        x = _presets.recentre(x, preset, "pool1_bn")
        x = _presets.conv_block(x, preset, 64, 1, "conv2_reduce")
        x = _presets.conv_block(x, preset, 192, 3, "conv2")
        x = _pool(x, strides, "pool2")
        for block, widths in INCEPTION.items():
            if block in ("4a", "5a"):
                x = _pool(x, 2, f"pool{block[0]}")
            x = _inception(x, preset, widths, f"inception{block}")
        x = _builder.head(x, args, dropout=0.4)
    return _builder.finish(x, args, preset.record())


def _pool(x: Any, strides: int, name: str) -> Any:
    return keras.layers.MaxPooling2D(3, strides, padding="same", name=name)(x)


def _inception(x: Any, preset: _presets.Preset, widths: tuple[int, ...], name: str) -> Any:
    b1, b3_reduce, b3, b5_reduce, b5, pool_proj = widths
    branch1 = _presets.conv_block(x, preset, b1, 1, f"{name}_1x1")
    branch3 = _presets.conv_block(x, preset, b3_reduce, 1, f"{name}_3x3_reduce")
    branch3 = _presets.conv_block(branch3, preset, b3, 3, f"{name}_3x3")
    branch5 = _presets.conv_block(x, preset, b5_reduce, 1, f"{name}_5x5_reduce")
    branch5 = _presets.conv_block(branch5, preset, b5, 5, f"{name}_5x5")
    pool = keras.layers.MaxPooling2D(3, 1, padding="same", name=f"{name}_pool")(x)
    pool = _presets.conv_block(pool, preset, pool_proj, 1, f"{name}_pool_proj")
    return keras.layers.Concatenate(name=f"{name}_concat")([branch1, branch3, branch5, pool])
