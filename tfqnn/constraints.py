"""Weight constraints for quantized training."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tfqnn import _validation


@keras.saving.register_keras_serializable(package="tfqnn")
class WeightClip(keras.constraints.Constraint):
    """Clips latent weights to ``[-clip_value, clip_value]`` after each update.

    Binary networks keep their latent weights in the region where the STE
    passes gradients, else a weight can grow without bound and never flip
    again (Courbariaux et al. 2016). tfqnn's layers accept the alias
    ``"weight_clip"`` for ``WeightClip()``.
    """

    def __init__(self, clip_value: float = 1.0):
        self.clip_value = _validation.check_number("clip_value", clip_value, positive=True)

    def __call__(self, w: Any) -> Any:
        return ops.clip(w, -self.clip_value, self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


def get(identifier: Any) -> keras.constraints.Constraint | None:
    """`keras.constraints.get` that also knows the alias ``"weight_clip"``."""
    if identifier == "weight_clip":
        return WeightClip()
    return keras.constraints.get(identifier)
