"""Selecting layers of a model and rebuilding it with some layers replaced."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras.src.models.functional import Functional

from tfqnn.codebook.shared import SharedCodebook
from tfqnn.codebook.wrappers import Clustered, KernelWrapper, kernel_names


def check_model(model: Any) -> keras.Model:
    """``model`` if it is a built Sequential or functional Keras model."""
    if not isinstance(model, (keras.Sequential, Functional)):
        raise ValueError(  # noqa: TRY004 (tfqnn raises ValueError for every bad argument)
            f"Invalid model of type {type(model).__name__}: expected a built Sequential or "
            "functional keras.Model."
        )
    if not model.built:
        raise ValueError("Invalid model: expected a built model (call it or give it an Input).")
    return model


def unwrapped(layer: keras.Layer) -> keras.Layer:
    """The layer inside a tfqnn.codebook wrapper (the layer itself otherwise)."""
    return layer.layer if isinstance(layer, KernelWrapper) else layer


def select(model: keras.Model, layers: Sequence[str] | None) -> list[keras.Layer]:
    """The model's layers named in ``layers`` (all with kernels when None).

    Raises ValueError for a name not in the model or a named layer without kernels.
    """
    by_name = {layer.name: layer for layer in model.layers}
    if layers is None:
        return [layer for layer in model.layers if kernel_names(unwrapped(layer))]
    if isinstance(layers, str):
        layers = [layers]
    chosen = []
    for name in layers:
        if name not in by_name:
            raise ValueError(
                f"Invalid layers entry {name!r}: expected names of the model's layers "
                f"{sorted(by_name)}."
            )
        if not kernel_names(unwrapped(by_name[name])):
            raise ValueError(
                f"Invalid layers entry {name!r}: layer {name!r} "
                f"({type(by_name[name]).__name__}) has no kernel; expected layers with "
                "kernels (Dense, convolutions, tfqnn quantized layers)."
            )
        chosen.append(by_name[name])
    return chosen


def plain_values(layer: keras.Layer) -> dict[str, np.ndarray]:
    """The unwrapped layer's weights by variable name, kernels decoded."""
    if isinstance(layer, KernelWrapper):
        values = {v.name: np.asarray(v) for v in layer.layer.weights}
        values.update(layer.decoded_kernels())
        return values
    return {v.name: np.asarray(v) for v in layer.weights}


def fresh_copy(layer: keras.Layer) -> keras.Layer:
    """An unbuilt layer of the same class and config."""
    return type(layer).from_config(layer.get_config())


def rebuild(
    model: keras.Model, replacements: dict[str, Callable[[keras.Layer], keras.Layer]]
) -> keras.Model:
    """A clone of ``model`` in which layer ``name`` is ``replacements[name](fresh inner)``.

    Layers not replaced get the weights of the original; the replaced ones
    get their unwrapped layer's weights by variable name (kernels decoded),
    and the caller fills in the replacements' own state.
    """

    origins: dict[int, keras.Layer] = {}  # id of each new layer -> the layer it copies
    shared: dict[int, SharedCodebook] = {}  # id of an old shared codebook -> its copy

    def clone(layer: keras.Layer) -> keras.Layer:
        if layer.name in replacements:
            copy = replacements[layer.name](fresh_copy(unwrapped(layer)))
        elif isinstance(layer, Clustered) and layer.shared is not None:
            # Kept layers that shared a codebook share one copy of it, not the old one.
            config = layer.get_config()
            old = layer.shared
            config["shared"] = shared.setdefault(id(old), fresh_copy(old))
            copy = Clustered.from_config(config)
        else:
            copy = fresh_copy(layer)
        origins[id(copy)] = layer
        return copy

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in new.layers:
        # Matched by identity, not by name: a wrapper may be named unlike its
        # inner layer, and stripping it gives the new layer the inner name.
        old = origins.get(id(layer))
        if old is None:  # an InputLayer, recreated by clone_model (no weights)
            continue
        if old.name not in replacements:
            layer.set_weights(old.get_weights())
            continue
        values = plain_values(old)
        for variable in unwrapped(layer).weights:
            variable.assign(values[variable.name])
    return new
