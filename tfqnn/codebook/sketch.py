"""Post-training network sketching: a model's float kernels as sums of binary bases."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import keras

from tfqnn import _validation, quantizers
from tfqnn.layers import selection
from tfqnn.quantizers.multibase import MAX_BASES


def sketch(
    model: keras.Model,
    bases: int = 3,
    refined: bool = True,
    layers: Sequence[str] | None = None,
) -> keras.Model:
    """A copy of ``model`` whose float kernels are sketched, without retraining.

    Each selected kernel gets the quantizer `tfqnn.quantizers.ResidualSign`
    ``(bases, refined)``: per output filter, ``W ~ sum_j alpha_j B_j`` with
    binary ``B_j`` fitted to the residuals, direct or refined (least-squares
    scales). The copy keeps the trained latent kernels, so it predicts with
    the sketched ones at once and can be fine-tuned with ``fit``;
    `tfqnn.summary` counts ``bases`` bits per sketched weight. ``model`` is
    left as it is.

    Guo, Yao, Zhao and Chen 2017, "Network Sketching: Exploiting Binary
    Structure in Deep CNNs" (arXiv:1706.02021).

    Args:
        model: a built Sequential or functional model.
        bases: binary bases per filter, 1 to 8.
        refined: refined sketching (least-squares scales) or direct.
        layers: names of the layers to sketch, or None for every tfqnn layer
            whose kernels have no quantizer (biases stay float).

    Returns:
        The sketched copy, with the weights of ``model``.

    Raises:
        ValueError: for bad arguments, a name that is not a layer of the
            model or a layer without float kernels, or a model without any.
    """
    bases = _validation.check_int("bases", bases, 1, MAX_BASES)
    refined = _validation.check_bool("refined", refined)
    names = selection.check_layer_names(layers)
    if not isinstance(model, keras.Model) or not model.built:
        raise ValueError(f"Invalid model={model!r}: expected a built keras.Model.")
    selected = _select(model, names)
    quantizer = quantizers.serialize(quantizers.ResidualSign(bases, refined))

    def clone(layer: keras.Layer) -> keras.Layer:
        config = layer.get_config()
        _set_quantizers(layer, config, selected, quantizer)
        return layer.__class__.from_config(config)

    try:
        with warnings.catch_warnings():
            # The mixin warns about a 1-bit kernel without weight_clip, for the
            # clipped STE of sign; ResidualSign's estimator does not clip.
            warnings.filterwarnings("ignore", r".* has a binary \w+ but no ")
            copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except ValueError as error:
        raise ValueError(
            f"Invalid model={model.name!r}: sketch copies Sequential and functional models; "
            f"Keras could not clone this one ({error})."
        ) from error
    copy.set_weights(model.get_weights())
    return copy


def _select(model: keras.Model, names: tuple[str, ...] | None) -> dict[int, list[str]]:
    """id(owner) -> the quantizer arguments to set, for the selected layers and cells."""
    selected: dict[int, list[str]] = {}
    for _, owner, spec in selection.select_float_kernels(model, names, "sketch", "sketch"):
        selected.setdefault(id(owner), []).append(spec.quantizer)
    return selected


def _set_quantizers(
    layer: keras.Layer, config: dict[str, Any], selected: dict[int, list[str]], quantizer: Any
) -> None:
    """Sets ``quantizer`` in ``config`` (``layer``'s) for each argument ``selected`` names,
    down to the configs of the cells of a recurrent layer (`selection.named_cells`)."""
    for name in selected.get(id(layer), []):
        config[name] = quantizer
    if isinstance(layer, keras.layers.Bidirectional):
        for direction, key in (
            (layer.forward_layer, "layer"),
            (layer.backward_layer, "backward_layer"),
        ):
            _set_quantizers(direction, config[key]["config"], selected, quantizer)
    elif isinstance(layer, keras.layers.RNN):
        # A tfqnn RNN (QuantLSTM, ...) holds its cell's arguments in its own config.
        cell_config = config["cell"]["config"] if "cell" in config else config
        _set_quantizers(layer.cell, cell_config, selected, quantizer)
    elif isinstance(layer, keras.layers.StackedRNNCells):
        for cell, entry in zip(layer.cells, config["cells"]):
            _set_quantizers(cell, entry["config"], selected, quantizer)
