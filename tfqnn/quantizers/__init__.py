"""Quantizers: serializable callables with straight-through estimators.

``tfqnn.quantizers.get`` resolves what a layer's ``*_quantizer`` argument
accepts: a `Quantizer`, a config dict, an alias such as ``"ste_sign"``, a
class name, or None.
"""

from __future__ import annotations

from typing import Any

import keras

from tfqnn import _config
from tfqnn.quantizers.base import Quantizer, QuantizerLike, StochasticQuantizer
from tfqnn.quantizers.binary import ApproxSign, ScaledSign, SteSign, StochasticSign
from tfqnn.quantizers.clipped_scaled_sign import ClippedScaledSign
from tfqnn.quantizers.dorefa_weights import DoReFaWeights
from tfqnn.quantizers.fake_quant import RangeFakeQuant
from tfqnn.quantizers.gradient import DoReFaGradient
from tfqnn.quantizers.logarithmic import Logarithmic
from tfqnn.quantizers.multibase import MultiBinary, MultiBinaryActivation, ResidualSign
from tfqnn.quantizers.multibit import (
    DoReFa,
    FixedPoint,
    NoOp,
    PowerOfTwo,
    SymmetricUniform,
    Uniform,
)
from tfqnn.quantizers.qkeras_style import (
    QuantizedBinary,
    QuantizedBits,
    QuantizedPo2,
    QuantizedRelu,
    QuantizedSigmoid,
    QuantizedTanh,
    QuantizedTernary,
)
from tfqnn.quantizers.sign_estimators import MagnitudeAwareSign, SteHeaviside, SwishSign
from tfqnn.quantizers.ternary import SteTern, StochasticTern

ALIASES: dict[str, type[Quantizer]] = {
    "ste_sign": SteSign,
    "approx_sign": ApproxSign,
    "scaled_sign": ScaledSign,
    "stochastic_sign": StochasticSign,
    "ste_tern": SteTern,
    "stochastic_tern": StochasticTern,
    "dorefa": DoReFa,
    "dorefa_gradient": DoReFaGradient,
    "fixed_point": FixedPoint,
    "uniform": Uniform,
    "symmetric_uniform": SymmetricUniform,
    "power_of_two": PowerOfTwo,
    "noop": NoOp,
    "swish_sign": SwishSign,
    "magnitude_aware_sign": MagnitudeAwareSign,
    "ste_heaviside": SteHeaviside,
    "dorefa_weights": DoReFaWeights,
    "quantized_bits": QuantizedBits,
    "quantized_relu": QuantizedRelu,
    "quantized_po2": QuantizedPo2,
    "quantized_binary": QuantizedBinary,
    "quantized_ternary": QuantizedTernary,
    "multi_binary": MultiBinary,
    "residual_sign": ResidualSign,
    "multi_binary_activation": MultiBinaryActivation,
    "logarithmic": Logarithmic,
    "range_fake_quant": RangeFakeQuant,
    "quantized_tanh": QuantizedTanh,
    "quantized_sigmoid": QuantizedSigmoid,
}

ALL_OBJECTS = {cls.__name__: cls for cls in ALIASES.values()}


def serialize(quantizer: Quantizer | None) -> dict[str, Any] | None:
    """The config dict of a quantizer (None stays None), as `keras.activations.serialize`."""
    if quantizer is None:
        return None
    return keras.saving.serialize_keras_object(quantizer)


def deserialize(
    config: dict[str, Any] | str, custom_objects: dict[str, Any] | None = None
) -> Quantizer:
    """A quantizer from the output of `serialize`, an alias or a class name."""
    return _config.deserialize(config, ALL_OBJECTS, get, custom_objects)


def get(identifier: QuantizerLike) -> Quantizer | None:
    """Resolves ``identifier`` to a `Quantizer` instance, or None.

    Args:
        identifier: a `Quantizer`, a dict made by `serialize`, an alias
            (``"ste_sign"``, ``"dorefa"``, ...: see ``ALIASES``; an alias
            builds its class with the defaults), a class name, or None.

    Raises:
        ValueError: for anything else, naming the allowed aliases.
    """
    if identifier is None:
        return None
    return _config.resolve(
        identifier,
        base=Quantizer,
        aliases=ALIASES,
        deserialize=deserialize,
        noun="quantizer identifier",
        accepted="a tfqnn Quantizer, a config dict, None",
    )


__all__ = [
    "ALIASES",
    "ApproxSign",
    "ClippedScaledSign",
    "DoReFa",
    "DoReFaGradient",
    "DoReFaWeights",
    "FixedPoint",
    "MagnitudeAwareSign",
    "MultiBinary",
    "MultiBinaryActivation",
    "Logarithmic",
    "NoOp",
    "PowerOfTwo",
    "Quantizer",
    "QuantizedBinary",
    "QuantizedBits",
    "QuantizedPo2",
    "QuantizedRelu",
    "QuantizedSigmoid",
    "QuantizedTanh",
    "QuantizedTernary",
    "QuantizerLike",
    "RangeFakeQuant",
    "ResidualSign",
    "ScaledSign",
    "SteHeaviside",
    "SteSign",
    "SteTern",
    "StochasticQuantizer",
    "StochasticSign",
    "StochasticTern",
    "SwishSign",
    "SymmetricUniform",
    "Uniform",
    "deserialize",
    "get",
    "serialize",
]
