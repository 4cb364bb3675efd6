"""Predicates on variables, for `CaseOptimizer`."""

from __future__ import annotations

from typing import Any

import keras

from tfqnn.layers.base import latent_quantizer


@keras.saving.register_keras_serializable(package="tfqnn")
def is_binary_variable(variable: Any) -> bool:
    """Whether ``variable`` is the latent weight of a binary kernel of a tfqnn layer.

    True for a kernel whose quantizer has ``precision == 1`` (``"ste_sign"``,
    ``"approx_sign"``, ...) once its layer is built; False for biases,
    BatchNorm variables, float or multi-bit kernels and variables of other
    layers. It is registered with Keras, so a `CaseOptimizer` that uses it
    saves and loads with the model.
    """
    quantizer = latent_quantizer(variable)
    return quantizer is not None and quantizer.precision == 1
