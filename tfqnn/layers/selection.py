"""Which kernels of a model a model-level tool works on.

`IncrementalQuantization` and `tfqnn.codebook.sketch` both act on the
unquantized kernels (``kernel_quantizer=None``; biases excluded) of tfqnn
layers, all of them or those of the layers named by their ``layers``
argument, nested models included. One selection rule, one set of errors.

The walk into recurrent layers (`recurrent_cells`, `quantizer_owners`) is
shared by those tools, `tfqnn.summary` and `QuantizationMonitor`: a tfqnn
cell inside `keras.layers.RNN`, `keras.layers.StackedRNNCells` or
`keras.layers.Bidirectional` holds its layer's quantizers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import keras

from tfqnn.layers.base import QuantizedKernel, QuantizerMixin


def check_layer_names(names: Any) -> tuple[str, ...] | None:
    """``names`` as a tuple, or None: the ``layers`` argument of a model-level tool.

    Raises:
        ValueError: unless ``names`` is None or a non-empty sequence of strings.
    """
    if names is None:
        return None
    ok = isinstance(names, Sequence) and not isinstance(names, str) and len(names) > 0
    if not (ok and all(isinstance(name, str) for name in names)):
        raise ValueError(
            f"Invalid layers={names!r}: expected None or a non-empty list of layer names."
        )
    return tuple(names)


def walk(model: keras.Layer) -> Iterator[keras.Layer]:
    """The layers of ``model``, nested models' layers included, depth first."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from walk(layer)


def named_cells(layer: keras.Layer) -> list[tuple[str, keras.Layer]]:
    """(path, cell) of each cell of a recurrent layer, else [].

    The cell of a `keras.layers.RNN` (tfqnn's `QuantLSTM` and the others
    included), each cell of a `keras.layers.StackedRNNCells`, and both
    directions of a `keras.layers.Bidirectional`. The path joins the names
    from ``layer`` down to the cell (``"lstm/quant_lstm_cell"``,
    ``"bidirectional/forward_lstm/quant_lstm_cell"``); a stack adds no name
    of its own.
    """
    if isinstance(layer, keras.layers.Bidirectional):
        return [
            (f"{layer.name}/{path}", cell)
            for direction in (layer.forward_layer, layer.backward_layer)
            for path, cell in named_cells(direction)
        ]
    if not isinstance(layer, keras.layers.RNN):
        return []
    cell = layer.cell
    cells = list(cell.cells) if isinstance(cell, keras.layers.StackedRNNCells) else [cell]
    return [(f"{layer.name}/{cell.name}", cell) for cell in cells]


def recurrent_cells(layer: keras.Layer) -> list[keras.Layer]:
    """The cells of a recurrent layer (see `named_cells`), else []."""
    return [cell for _, cell in named_cells(layer)]


def quantizer_owners(layer: keras.Layer) -> list[tuple[str, QuantizerMixin]]:
    """(name, owner) of each tfqnn layer that holds ``layer``'s quantizers.

    A recurrent layer's tfqnn cells, named by their `named_cells` path; else
    ``layer`` itself, under its name, if it is a tfqnn layer; else [].
    """
    cells = named_cells(layer)
    if cells:
        return [(path, cell) for path, cell in cells if isinstance(cell, QuantizerMixin)]
    name = layer.name
    return [(name, layer)] if isinstance(layer, QuantizerMixin) else []


def float_kernels(layer: keras.Layer) -> list[tuple[QuantizerMixin, QuantizedKernel]]:
    """(owner, spec) of each unquantized kernel (not bias) of a tfqnn layer; for a
    recurrent layer the owners are its tfqnn cells (`quantizer_owners`)."""
    return [
        (owner, spec)
        for _, owner in quantizer_owners(layer)
        for spec in owner._quantized_kernels
        if spec.weight != "bias"
        and getattr(owner, spec.weight, None) is not None
        and getattr(owner, spec.quantizer) is None
    ]


def select_float_kernels(
    model: keras.Model, names: tuple[str, ...] | None, tool: str, action: str
) -> list[tuple[keras.Layer, QuantizerMixin, QuantizedKernel]]:
    """(layer, owner, spec) of every `float_kernels` entry of the selected layers.

    Args:
        model: the model.
        names: the layers to select (from `check_layer_names`), or None for all.
        tool, action: the caller and what it does, for the error of a model
            with nothing to select (``"sketch"``, ``"sketch"``).

    Raises:
        ValueError: for a name that is not a layer of ``model``, a named layer
            without an unquantized kernel, or (``names`` None) a model without any.
    """
    all_layers = list(walk(model))
    if names is None:
        found = [(layer, *kernel) for layer in all_layers for kernel in float_kernels(layer)]
        if not found:
            raise ValueError(
                f"{tool} found no kernel to {action} in model {model.name!r}: it works on the "
                "kernels of tfqnn layers (tfqnn.layers.QuantDense, QuantConv2D, ...) built with "
                "kernel_quantizer=None."
            )
        return found
    by_name = {layer.name: layer for layer in all_layers}
    found = []
    for name in names:
        if name not in by_name:
            raise ValueError(
                f"Invalid layers={list(names)!r}: {name!r} is not a layer of model "
                f"{model.name!r}; its layers are {sorted(by_name)}."
            )
        kernels = float_kernels(by_name[name])
        if not kernels:
            raise ValueError(
                f"Invalid layers={list(names)!r}: layer {name!r} "
                f"({type(by_name[name]).__name__}) has no unquantized kernel; expected a tfqnn "
                "layer (tfqnn.layers.QuantDense, QuantConv2D, ...) with kernel_quantizer=None."
            )
        found.extend((by_name[name], *kernel) for kernel in kernels)
    return found
