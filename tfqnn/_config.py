"""What tfqnn's quantizers and gradient compressors share as config objects:
`ConfigObject` (config, repr, equality) and `resolve`, the lookup behind
their ``get`` functions (an instance, a config dict, an alias or a class
name)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import keras

T = TypeVar("T")


class ConfigObject:
    """``get_config``/``from_config`` round trips, a repr of the config, and
    equality of class and config."""

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))


def deserialize(
    config: dict[str, Any] | str,
    all_objects: Mapping[str, type],
    get: Callable[[str], Any],
    custom_objects: Mapping[str, Any] | None = None,
) -> Any:
    """An object from `keras.saving.serialize_keras_object`'s output (or, for
    a string, ``get(config)``)."""
    if isinstance(config, str):
        return get(config)
    return keras.saving.deserialize_keras_object(
        config, module_objects=all_objects, custom_objects=custom_objects
    )


def resolve(
    identifier: object,
    *,
    base: type[T],
    aliases: Mapping[str, type[T]],
    deserialize: Callable[[dict[str, Any]], object],
    noun: str,
    accepted: str,
) -> T:
    """``identifier`` as an instance of ``base``.

    Args:
        identifier: an instance, a config dict, an alias (built with its
            class's defaults) or a class name.
        base: the class every result is an instance of.
        aliases: alias -> class.
        deserialize: config dict -> object.
        noun, accepted: for the error message.

    Raises:
        ValueError: naming the identifier and the aliases.
    """
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, dict):
        try:
            obj = deserialize(identifier)
        except (TypeError, ValueError) as error:
            raise ValueError(f"Invalid {noun} config {identifier!r}: {error}") from error
        if isinstance(obj, base):
            return obj
    elif isinstance(identifier, str):
        by_name = {cls.__name__: cls for cls in aliases.values()}
        cls = aliases.get(identifier) or by_name.get(identifier)
        if cls is not None:
            return cls()
    raise ValueError(
        f"Invalid {noun} {identifier!r}: expected {accepted}, or one of the aliases "
        f"{', '.join(aliases)}."
    )
