"""The quantization presets of the classic networks (AlexNet, VGG16, GoogLeNet, ResNets), and their blocks.

Each preset says how the hidden convolutions and dense layers are
quantized; the first convolution, the classifier and the ResNet shortcuts
stay float (the convention of XNOR-Net, DoReFa-Net and TWN):

- ``"float"``: no quantizer; BatchNorm then ReLU after each layer.
- ``"binary"``: BinaryNet (Hubara et al. 2016, arXiv:1602.02830): ``sign``
  of the weights and of the inputs, unscaled, with the clipped STE and
  `WeightClip`; BatchNorm after each layer, no ReLU (the sign of the next
  layer is the nonlinearity); "same" padding pads with +1.
- ``"xnor"``: XNOR-Net (Rastegari et al. 2016, arXiv:1603.05279): as
  ``"binary"`` with weights ``alpha_o * sign(w)``, ``alpha_o`` the mean
  magnitude of output channel ``o`` (`ScaledSign`).
- ``"dorefa"``: DoReFa-Net (Zhou et al. 2016, arXiv:1606.06160): weights
  and activations of ``bits = (weight_bits, activation_bits)`` bits (an int
  sets both; default W1A2); activations are clipped to [0, 1] by the
  quantizer, so no ReLU.
- ``"ternary"``: TWN (Li et al. 2016, arXiv:1605.04711): ternary weights
  ``a * {-1, 0, 1}`` with threshold ``0.7 mean|w|``, float activations, ReLU.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from tfqnn import _validation, quantizers
from tfqnn.constraints import WeightClip
from tfqnn.layers import QuantConv2D, QuantDense

QUANTIZATIONS = ("float", "binary", "xnor", "dorefa", "ternary")


@dataclasses.dataclass(frozen=True)
class Preset:
    """How a classic network quantizes its hidden layers.

    Attributes:
        name: one of `QUANTIZATIONS`.
        bits: ``(weight_bits, activation_bits)`` for ``"dorefa"``, else None.
    """

    name: str
    bits: tuple[int, int] | None = None

    def record(self) -> dict[str, Any]:
        """``{"quantization", "bits"}``, what a zoo model's weights files record of it."""
        return {"quantization": self.name, "bits": None if self.bits is None else list(self.bits)}

    @property
    def relu(self) -> bool:
        """Whether hidden layers end with a ReLU (not before a sign or DoReFa's clip)."""
        return self.name in ("float", "ternary")

    @property
    def signed_input(self) -> bool:
        """Whether the quantized layers read a sign or a clipped input, which a
        float stem must feed with a centred (BatchNorm) rather than a ReLU output."""
        return not self.relu

    def layer_kwargs(self) -> dict[str, Any]:
        """Fresh quantizer arguments of one hidden QuantConv2D / QuantDense."""
        if self.name == "float":
            return {"use_bias": False}  # a BatchNorm follows
        if self.name in ("binary", "xnor"):
            kernel = quantizers.SteSign() if self.name == "binary" else quantizers.ScaledSign()
            return {
                "input_quantizer": quantizers.SteSign(),
                "kernel_quantizer": kernel,
                "kernel_constraint": WeightClip(),
                "use_bias": False,
            }
        if self.name == "dorefa":
            assert self.bits is not None
            weight_bits, activation_bits = self.bits
            # No constraint: DoReFa's weight STE passes every gradient (the
            # builders silence the layers' warning about 1-bit kernels).
            return {
                "input_quantizer": quantizers.DoReFa(activation_bits, mode="activations"),
                "kernel_quantizer": quantizers.DoReFa(weight_bits, mode="weights"),
                "use_bias": False,
            }
        return {"kernel_quantizer": quantizers.SteTern(), "use_bias": False}

    def conv_kwargs(self) -> dict[str, Any]:
        """`layer_kwargs` plus the pad value (+1 beside a sign input, else 0)."""
        pad = 1.0 if self.name in ("binary", "xnor") else 0.0
        return {**self.layer_kwargs(), "pad_values": pad}


def preset(quantization: Any, bits: Any = None) -> Preset:
    """Checks ``quantization`` and ``bits`` and returns their `Preset`.

    Raises:
        ValueError: an unknown preset, or ``bits`` given to another preset
            than ``"dorefa"`` or outside 1..16 (weights) / 1..32 (activations).
    """
    quantization = _validation.check_choice("quantization", quantization, QUANTIZATIONS)
    if quantization != "dorefa":
        if bits is not None:
            raise ValueError(
                f"Invalid bits={bits!r}: expected None with quantization={quantization!r} "
                "(bits applies to quantization='dorefa')."
            )
        return Preset(quantization)
    if bits is None:
        return Preset("dorefa", (1, 2))
    if isinstance(bits, (tuple, list)) and len(bits) == 2:
        weight_bits, activation_bits = bits
    elif isinstance(bits, (tuple, list)):
        raise ValueError(
            f"Invalid bits={bits!r}: expected an integer or (weight_bits, activation_bits)."
        )
    else:
        weight_bits = activation_bits = bits
    return Preset(
        "dorefa",
        (
            _validation.check_int("bits (weights)", weight_bits, 1, 16),
            _validation.check_int("bits (activations)", activation_bits, 1, 32),
        ),
    )


# ---- the blocks of the classic networks ---------------------------------------


def conv_block(
    x: Any,
    preset: Preset,
    filters: int,
    kernel_size: int,
    name: str,
    strides: int = 1,
    padding: str = "same",
) -> Any:
    """A hidden convolution quantized as `preset` says, BatchNorm and (float presets) ReLU."""
    x = QuantConv2D(
        filters, kernel_size, strides=strides, padding=padding, name=name, **preset.conv_kwargs()
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if preset.relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def dense_block(x: Any, preset: Preset, units: int, name: str, dropout: float = 0.0) -> Any:
    """A hidden dense layer quantized as `preset` says, BatchNorm, ReLU and dropout
    (the last two for float presets only: dropout zeros read as +1 by a sign)."""
    x = QuantDense(units, name=name, **preset.layer_kwargs())(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if preset.relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def float_stem(x: Any, filters: int, kernel_size: int, strides: int, name: str) -> Any:
    """The float first convolution, BatchNorm and ReLU."""
    x = QuantConv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=name
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def recentre(x: Any, preset: Preset, name: str) -> Any:
    """A BatchNorm after the float stem when the next layer reads a sign or a
    clipped input: the sign of a ReLU output is +1 everywhere (larq-zoo's
    XNOR-Net and ResNetE stems do the same)."""
    if preset.signed_input:
        x = keras.layers.BatchNormalization(name=name)(x)
    return x
