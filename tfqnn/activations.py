"""Activations used beside quantizers."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfqnn")
def hard_tanh(x: keras.KerasTensor) -> keras.KerasTensor:
    """``clip(x, -1, 1)``: the identity on [-1, 1], the STE region of sign.

    Courbariaux et al. 2016 use it as the real-valued stand-in of sign.
    """
    return ops.clip(x, -1.0, 1.0)
