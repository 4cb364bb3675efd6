"""Keras registrations of `tfqnn.distribute`'s classes before it is imported.

`tfqnn.distribute` loads on first use (it patches Keras' MWMS ``fit`` on
import), yet a `.keras` file whose optimizer is a `CompressedOptimizer` must
load after a plain ``import tfqnn``. For each class that package registers,
``import tfqnn`` registers a stand-in under the same name; the stand-in's
``from_config`` imports `tfqnn.distribute` (whose decorators put the real
classes in the stand-ins' places) and builds the real object.
"""

from __future__ import annotations

import importlib
from typing import Any

import keras

PACKAGE = "tfqnn.distribute"
# The classes tfqnn.distribute registers as "tfqnn>Name" (a test keeps this
# list complete).
CLASSES = (
    "CompressedOptimizer",
    "AdaQ",
    "DoReFaGrad",
    "EFSign",
    "Float16",
    "OneBitEF",
    "PowerSGD",
    "QSGD",
    "SignSGD",
    "TernGrad",
    "Threshold",
)


def _stand_in(name: str) -> type:
    def from_config(cls: type, config: dict[str, Any], custom_objects: Any = None) -> Any:
        importlib.import_module(PACKAGE)
        real = keras.saving.get_custom_objects()[f"tfqnn>{name}"]
        if real is cls:
            raise TypeError(f"{PACKAGE} did not register tfqnn>{name}.")
        return real.from_config(config)

    return type(
        name,
        (),
        {
            "__module__": PACKAGE,
            "from_config": classmethod(from_config),
            "get_config": _empty_config,
        },
    )


def _empty_config(self: object) -> dict[str, Any]:
    return {}


def register() -> None:
    """Registers a stand-in for every class of `CLASSES` not yet registered."""
    objects = keras.saving.get_custom_objects()
    for name in CLASSES:
        objects.setdefault(f"tfqnn>{name}", _stand_in(name))
