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
from tfqnn.quantizers.gradient import DoReFaGradient
from tfqnn.quantizers.logarithmic import Logarithmic
from tfqnn.quantizers.multibit import (
    DoReFa,
    FixedPoint,
    NoOp,
    PowerOfTwo,
    SymmetricUniform,
    Uniform,
)
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
    "logarithmic": Logarithmic,
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
    "DoReFa",
    "DoReFaGradient",
    "FixedPoint",
    "Logarithmic",
    "NoOp",
    "PowerOfTwo",
    "Quantizer",
    "QuantizerLike",
    "ScaledSign",
    "SteSign",
    "SteTern",
    "StochasticQuantizer",
    "StochasticSign",
    "StochasticTern",
    "SymmetricUniform",
    "Uniform",
    "deserialize",
    "get",
    "serialize",
]
