"""`prune`: magnitude pruning, the first stage of Deep Compression.

Han, Pool, Tran and Dally 2015 (arXiv:1506.02626) and Han et al. 2016
(arXiv:1510.00149): the smallest-magnitude weights of each kernel are set
to zero and stay zero while the rest are fine-tuned.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from tfqnn.codebook import _rebuild
from tfqnn.codebook.wrappers import Clustered, Pruned, kernel_names


def prune(
    model: keras.Model, sparsity: float, *, layers: Sequence[str] | None = None
) -> keras.Model:
    """A copy of ``model`` whose selected kernels have their smallest weights pruned.

    In each selected kernel, the floor(sparsity * size) entries of least
    magnitude become zero; each layer becomes a `Pruned` wrapper whose mask
    keeps them exactly zero through ``fit`` and through `cluster` (as a
    fixed zero code). Pruning a `Pruned` model again prunes further.

    Args:
        model: a built Sequential or functional model.
        sparsity: the fraction of each kernel to prune, in [0, 1).
        layers: names of the layers to prune; all layers with kernels when None.
    """
    model = _rebuild.check_model(model)
    ok = isinstance(sparsity, (int, float)) and not isinstance(sparsity, bool)
    if not ok or not 0 <= sparsity < 1:
        raise ValueError(f"Invalid sparsity={sparsity!r}: expected a number in [0, 1).")
    selected = _rebuild.select(model, layers)
    for layer in selected:
        if isinstance(layer, Clustered):
            raise ValueError(  # noqa: TRY004 (tfqnn raises ValueError for every bad argument)
                f"Invalid layers entry {layer.name!r}: the layer is clustered; expected "
                "prune before cluster (Deep Compression's order)."
            )
    masks = {}
    for layer in selected:
        values = _rebuild.plain_values(layer)
        masks[layer.name] = {
            name: magnitude_mask(values[name], sparsity)
            for name in kernel_names(_rebuild.unwrapped(layer))
        }

    def wrap(layer_name: str) -> keras.Layer:
        return lambda inner: Pruned(inner, list(masks[layer_name]), name=inner.name)

    new = _rebuild.rebuild(model, {name: wrap(name) for name in masks})
    for layer in new.layers:
        for name, mask in masks.get(layer.name, {}).items():
            layer.mask(name).assign(mask.astype("float32"))
            kernel = next(v for v in layer.layer.weights if v.name == name)
            kernel.assign(np.asarray(kernel) * mask)
    return new


def magnitude_mask(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """0/1 mask keeping all but the floor(sparsity * size) smallest |kernel| entries."""
    flat = np.abs(np.asarray(kernel, dtype=np.float64)).ravel()
    pruned = int(np.floor(sparsity * flat.size))
    mask = np.ones(flat.size, dtype=bool)
    mask[np.argsort(flat, kind="stable")[:pruned]] = False
    return mask.reshape(np.shape(kernel))
