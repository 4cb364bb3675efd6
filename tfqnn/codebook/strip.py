"""`strip`: the plain model, with float kernels decoded from their codebooks."""

from __future__ import annotations

import keras

from tfqnn.codebook import _rebuild
from tfqnn.codebook.wrappers import KernelWrapper


def strip(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with every `Clustered` or `Pruned` wrapper replaced by its layer.

    The layers get their decoded kernels: a clustered kernel has at most
    k distinct values (plus zero where pruned), what other tools consume.
    Predictions equal the wrapped model's.
    """
    model = _rebuild.check_model(model)
    wrapped = [layer.name for layer in model.layers if isinstance(layer, KernelWrapper)]
    return _rebuild.rebuild(model, {name: (lambda inner: inner) for name in wrapped})
