"""VGG16 (Simonyan and Zisserman 2015, arXiv:1409.1556), quantized by a preset."""

from __future__ import annotations

from typing import Any

import keras

from tfqnn.layers import QuantDense
from tfqnn.zoo import _builder, _presets

BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def VGG16(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    name: str = "vgg16",
    *,
    quantization: str = "float",
    bits: int | tuple[int, int] | None = None,
) -> keras.Model:
    """VGG16 with BatchNorm, quantized by a preset.

    Five blocks of 3x3 convolutions (2x64, 2x128, 3x256, 3x512, 3x512), each
    followed by BatchNorm and each block by a 2x2 max pool ("same" padding,
    so that 28x28 inputs work: 28, 14, 7, 4, 2, 1); the top is flatten and
    dense layers of 4096, 4096 and `classes`. The first convolution and the
    classifier stay float; `quantization` sets the rest (``"float"``,
    ``"binary"``, ``"xnor"``, ``"dorefa"`` with `bits`, ``"ternary"``).

    The other arguments are `keras.applications`' (see `tfqnn.zoo`).
    """
    preset = _presets.preset(quantization, bits)
    args = _builder.check_arguments("VGG16", min_size=16, **_builder.arguments_of(locals()))
    x = args.image
    with _builder.no_constraint_warning():
        for block, (count, filters) in enumerate(BLOCKS, start=1):
            for conv in range(1, count + 1):
                name = f"block{block}_conv{conv}"
                if block == conv == 1:
                    x = _presets.float_stem(x, filters, 3, 1, name)
                    x = _presets.recentre(x, preset, f"{name}_recentre")
                else:
                    x = _presets.conv_block(x, preset, filters, 3, name)
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"block{block}_pool")(x)
        if args.include_top:
            x = keras.layers.Flatten(name="flatten")(x)
            x = _presets.dense_block(x, preset, 4096, "fc1", dropout=0.5)
            x = _presets.dense_block(x, preset, 4096, "fc2", dropout=0.5)
            x = QuantDense(args.classes, name="predictions")(x)
            x = _builder.activation(x, args)
        else:
            x = _builder.pool(x, args.pooling)
    return _builder.finish(x, args, preset.record())
