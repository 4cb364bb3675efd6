"""`prune`: magnitude pruning, the first stage of Deep Compression.

Han, Pool, Tran and Dally 2015 (arXiv:1506.02626) and Han et al. 2016
(arXiv:1510.00149): the smallest-magnitude weights of each kernel are set
to zero and stay zero while the rest are fine-tuned. With ``scope="model"``
one threshold is taken over all selected kernels together (global magnitude
pruning, as in Frankle and Carbin 2019 and Blalock et al. 2020), so layers
with many small weights lose more of them than small, dense layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from tfqnn import _validation
from tfqnn.codebook import _rebuild
from tfqnn.codebook.wrappers import Clustered, Pruned, kernel_names, kernel_variable

SCOPES = ("layer", "model")


def prune(
    model: keras.Model,
    sparsity: float,
    *,
    layers: Sequence[str] | None = None,
    scope: str = "layer",
) -> keras.Model:
    """A copy of ``model`` whose selected kernels have their smallest weights pruned.

    In each selected kernel (``scope="layer"``), or over all selected
    kernels together (``scope="model"``: global magnitude pruning, one
    threshold for the whole model), the floor(sparsity * size) entries of
    least magnitude become zero; each layer becomes a `Pruned` wrapper whose mask
    keeps them exactly zero through ``fit`` and through `cluster` (as a
    fixed zero code). Pruning a `Pruned` model again prunes further.

    Args:
        model: a built Sequential or functional model.
        sparsity: the fraction of each kernel to prune, in [0, 1).
        layers: names of the layers to prune; all layers with kernels when None.
        scope: ``"layer"`` (each kernel pruned to ``sparsity``) or ``"model"``
            (the selected kernels pruned to ``sparsity`` in total).
    """
    model = _rebuild.check_model(model)
    ok = isinstance(sparsity, (int, float)) and not isinstance(sparsity, bool)
    if not ok or not 0 <= sparsity < 1:
        raise ValueError(f"Invalid sparsity={sparsity!r}: expected a number in [0, 1).")
    _validation.check_choice("scope", scope, SCOPES)
    selected = _rebuild.select(model, layers)
    for layer in selected:
        if isinstance(layer, Clustered):
            raise ValueError(  # noqa: TRY004 (tfqnn raises ValueError for every bad argument)
                f"Invalid layers entry {layer.name!r}: the layer is clustered; expected "
                "prune before cluster (Deep Compression's order)."
            )
    kernels = [
        (layer.name, name, _rebuild.plain_values(layer)[name])
        for layer in selected
        for name in kernel_names(_rebuild.unwrapped(layer))
    ]
    if scope == "model":
        flat = global_magnitude_masks([value for _, _, value in kernels], sparsity)
    else:
        flat = [magnitude_mask(value, sparsity) for _, _, value in kernels]
    masks: dict[str, dict[str, np.ndarray]] = {}
    for (layer_name, name, _), mask in zip(kernels, flat):
        masks.setdefault(layer_name, {})[name] = mask

    def wrap(layer_name: str) -> keras.Layer:
        return lambda inner: Pruned(inner, list(masks[layer_name]), name=inner.name)

    new = _rebuild.rebuild(model, {name: wrap(name) for name in masks})
    for layer in new.layers:
        for name, mask in masks.get(layer.name, {}).items():
            layer.mask(name).assign(mask.astype("float32"))
            kernel = kernel_variable(layer, name)
            kernel.assign(np.asarray(kernel) * mask)
    return new


def magnitude_mask(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """0/1 mask keeping all but the floor(sparsity * size) smallest |kernel| entries."""
    return global_magnitude_masks([kernel], sparsity)[0]


def global_magnitude_masks(kernels: Sequence[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """0/1 masks of ``kernels`` keeping all but the floor(sparsity * total) smallest |entries|.

    One ranking over the entries of all kernels together (ties broken by
    position: earlier kernels first), so the threshold is shared.
    """
    flat = np.concatenate([np.abs(np.asarray(k, dtype=np.float64)).ravel() for k in kernels])
    pruned = int(np.floor(sparsity * flat.size))
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:pruned]] = False
    sizes = np.cumsum([0] + [int(np.size(k)) for k in kernels])
    return [keep[a:b].reshape(np.shape(k)) for k, a, b in zip(kernels, sizes[:-1], sizes[1:])]
