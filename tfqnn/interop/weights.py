"""Moving the weights read from the file into the rebuilt model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tfqnn.interop.report import WeightMap


def _short(weight_name: str) -> str:
    """``"dense/kernel:0"`` -> ``"kernel"``."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _state(layer: Any) -> list[Any]:
    """A layer's variables that the file holds: all but seed generators' states."""
    return [v for v in layer.weights if "seed_generator" not in v.path]


def _by_layer(
    model: keras.Model,
    arrays: list[tuple[str, np.ndarray]],
    aliases: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A nested model's arrays grouped by its layers, the way `assign` takes them.

    tf_keras lists a nested model's weights under its own name, each named
    ``<inner layer>/<weight>:0`` (layers nested deeper name only themselves):
    each goes to the direct layer of that name, or to the nested model that
    holds a layer of that name. A tfmot wrapper's weights name the layer it
    wraps: ``aliases`` gives the wrapper's name for it.
    """
    owners: dict[str, str] = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            for inner in layer._flatten_layers(include_self=False, recursive=True):
                owners.setdefault(inner.name, layer.name)
    owners.update({layer.name: layer.name for layer in model.layers})
    grouped: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, array in arrays:
        parts = [p if p in owners else (aliases or {}).get(p, p) for p in name.split("/")[:-1]]
        owner = next((owners[p] for p in reversed(parts) if p in owners), None)
        if owner is None:
            raise ValueError(
                f"weight {name!r} of the nested model {model.name!r} names none of its layers"
            )
        grouped.setdefault(owner, []).append((name, array))
    return grouped


def assign(
    model: keras.Model,
    weights: dict[str, list[tuple[str, np.ndarray]]],
    maps: Mapping[str, WeightMap] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Sets each layer's variables from the file's arrays, matched by name, else by order.

    ``maps`` turns a layer's arrays into its variables' (by layer name);
    ``aliases`` names the layer that holds a wrapped layer's weights
    (`Report.aliases`).

    Raises:
        ValueError: a layer with weights is missing from the model, a layer's
            weights differ in number or names from the file's, or a shape
            differs.
    """
    by_name = {layer.name: layer for layer in model.layers}
    for layer_name, found in weights.items():
        arrays = maps[layer_name](found) if maps and layer_name in maps else found
        layer = by_name.get(layer_name)
        if layer is None:
            if arrays:
                raise ValueError(f"the file has weights for {layer_name!r}, not in the config")
            continue
        if isinstance(layer, keras.Model) and not (maps and layer_name in maps):
            assign(layer, _by_layer(layer, arrays, aliases), maps, aliases)  # by its layers
            continue
        variables = _state(layer)
        if len(variables) != len(arrays):
            raise ValueError(
                f"layer {layer_name!r} has {len(variables)} weights in its config but "
                f"{len(arrays)} in the file"
            )
        names = [_short(name) for name, _ in arrays]
        targets = {v.name: v for v in variables}
        if sorted(names) == sorted(targets):
            pairs = [(targets[n], a) for n, (_, a) in zip(names, arrays)]
        else:
            pairs = [(v, a) for v, (_, a) in zip(variables, arrays)]
        for variable, (name, array) in zip([p[0] for p in pairs], arrays):
            if tuple(variable.shape) != array.shape:
                raise ValueError(
                    f"weight {name!r} of layer {layer_name!r} has shape {array.shape} in "
                    f"the file but {tuple(variable.shape)} in its config"
                )
        for variable, array in pairs:
            variable.assign(array.astype(variable.dtype))
    missing = [layer.name for layer in model.layers if _state(layer) and layer.name not in weights]
    if missing:
        raise ValueError(f"the file has no weights for the layers {missing}")
