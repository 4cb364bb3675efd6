"""Gradient compressors: quantisers and low-rank schemes of the literature.

``get(name)`` builds one by alias with its defaults:

========================  =============================================
alias                     compressor
========================  =============================================
``"float16"``             `Float16`: cast baseline
``"onebit_ef"``           `OneBitEF`: 1-bit SGD with error feedback
``"threshold"``           `Threshold`: Strom's threshold quantisation
``"qsgd"``                `QSGD`: stochastic s-level quantisation
``"terngrad"``            `TernGrad`: stochastic ternary, shared scaler
``"dorefa_grad"``         `DoReFaGrad`: k-bit stochastic, shared maximum
``"adaq"``                `AdaQ`: adaptive top fraction per sign
``"signsgd"``             `SignSGD`: sign with majority vote
``"ef_sign"``             `EFSign`: scaled sign with error feedback
``"powersgd"``            `PowerSGD`: rank-r power iteration
========================  =============================================

Every compressor has ``compress(gradient) -> Payload``,
``decompress(payload) -> gradient``, ``bits_per_element(num_workers)``,
``summable`` and ``error_feedback``; see `base.Compressor`.
"""

from __future__ import annotations

from typing import Any

import keras

from tfqnn import _config
from tfqnn.distribute.compressors.adaq import AdaQ
from tfqnn.distribute.compressors.base import Compressor, Payload
from tfqnn.distribute.compressors.dorefa_grad import DoReFaGrad
from tfqnn.distribute.compressors.float16 import Float16
from tfqnn.distribute.compressors.onebit import OneBitEF
from tfqnn.distribute.compressors.powersgd import PowerSGD
from tfqnn.distribute.compressors.qsgd import QSGD
from tfqnn.distribute.compressors.sign import EFSign, SignSGD
from tfqnn.distribute.compressors.terngrad import TernGrad
from tfqnn.distribute.compressors.threshold import Threshold

ALIASES = {
    "float16": Float16,
    "onebit_ef": OneBitEF,
    "threshold": Threshold,
    "qsgd": QSGD,
    "terngrad": TernGrad,
    "dorefa_grad": DoReFaGrad,
    "adaq": AdaQ,
    "signsgd": SignSGD,
    "ef_sign": EFSign,
    "powersgd": PowerSGD,
}

ALL_OBJECTS = {cls.__name__: cls for cls in ALIASES.values()}


def serialize(compressor: Compressor) -> dict[str, Any]:
    """The config dict of a compressor, as `keras.saving.serialize_keras_object`."""
    return keras.saving.serialize_keras_object(compressor)


def deserialize(config: Any, custom_objects: dict[str, Any] | None = None) -> Compressor:
    """A compressor from the output of `serialize`, an alias or a class name."""
    return _config.deserialize(config, ALL_OBJECTS, get, custom_objects)


def get(identifier: Any) -> Compressor:
    """Resolves ``identifier`` to a `Compressor` instance.

    Args:
        identifier: a `Compressor`, a dict made by `serialize`, an alias (see
            ``ALIASES``; it builds its class with the defaults) or a class name.

    Raises:
        ValueError: for anything else, naming the allowed aliases.

    >>> get("onebit_ef")
    OneBitEF(bucket_size=512, two_phase=False, column_major=True)
    """
    return _config.resolve(
        identifier,
        base=Compressor,
        aliases=ALIASES,
        deserialize=deserialize,
        noun="compressor",
        accepted="a tfqnn Compressor, a config dict",
    )


__all__ = [
    "ALIASES",
    "QSGD",
    "AdaQ",
    "Compressor",
    "DoReFaGrad",
    "EFSign",
    "Float16",
    "OneBitEF",
    "Payload",
    "PowerSGD",
    "SignSGD",
    "TernGrad",
    "Threshold",
    "deserialize",
    "get",
    "serialize",
]
