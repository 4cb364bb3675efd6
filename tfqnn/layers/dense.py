"""Quantized densely-connected layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tfqnn.layers.base import (
    BIAS,
    KERNEL,
    Activation,
    Constraint,
    Initializer,
    QuantizerMixin,
    Regularizer,
)
from tfqnn.quantizers import QuantizerLike


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantDense(QuantizerMixin, keras.layers.Dense):
    """`keras.layers.Dense` with quantized inputs and kernel.

    ``outputs = activation(input_quantizer(inputs) @ kernel_quantizer(kernel)
    + bias_quantizer(bias))``. The latent float kernel and bias are trained;
    gradients reach them through the quantizers' straight-through estimators.

    Args:
        units: as `keras.layers.Dense`, as are the arguments up to
            ``bias_constraint``.
        kernel_constraint: as Keras, plus the alias ``"weight_clip"``.
        input_quantizer: quantizer of the inputs (a `tfqnn.quantizers`
            identifier), or None to keep them as they are.
        kernel_quantizer: quantizer of the kernel, or None.
        bias_quantizer: quantizer of the bias, or None (a float bias).
        **kwargs: every other argument of `keras.layers.Dense` (``name``,
            ``dtype``, ``lora_rank``, ...).

    Example:
    >>> layer = tfqnn.layers.QuantDense(
    ...     64, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
    ...     kernel_constraint="weight_clip", use_bias=False)
    """

    _quantized_kernels = (KERNEL, BIAS)

    def __init__(
        self,
        units: int,
        activation: Activation = None,
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        kernel_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        activity_regularizer: Regularizer = None,
        kernel_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
        bias_quantizer: QuantizerLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            units=units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            input_quantizer=input_quantizer,
            kernel_quantizers={
                "kernel_quantizer": kernel_quantizer,
                "bias_quantizer": bias_quantizer,
            },
            **kwargs,
        )

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        inputs = self.quantized_input(inputs, training)
        outputs = ops.matmul(inputs, self.quantized_kernel(KERNEL, training))
        return self.bias_and_activation(outputs, training)
