"""Quantized densely-connected layer."""

import keras
from keras import ops

from tfqnn.layers.base import KERNEL, QuantizerMixin


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantDense(QuantizerMixin, keras.layers.Dense):
    """`keras.layers.Dense` with quantized inputs and kernel.

    ``outputs = activation(input_quantizer(inputs) @ kernel_quantizer(kernel) + bias)``.
    The latent float kernel is trained; gradients reach it through the
    kernel quantizer's straight-through estimator.

    Args:
        units: as `keras.layers.Dense`.
        input_quantizer: quantizer of the inputs (a `tfqnn.quantizers`
            identifier), or None to keep them as they are.
        kernel_quantizer: quantizer of the kernel, or None.
        kernel_constraint: as Keras, plus the alias ``"weight_clip"``.
        **kwargs: every other argument of `keras.layers.Dense`.

    Example:
    >>> layer = tfqnn.layers.QuantDense(
    ...     64, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
    ...     kernel_constraint="weight_clip", use_bias=False)
    """

    def call(self, inputs, training=None):
        inputs = self.quantized_input(inputs, training)
        outputs = ops.matmul(inputs, self.quantized_kernel(KERNEL, training))
        return self.bias_and_activation(outputs)
