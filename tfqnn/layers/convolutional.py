"""Quantized convolution layers.

Each takes ``input_quantizer`` and the quantizers of its kernels, named after
Keras's kernel arguments; all but the transposed convolution take
``pad_values``, the value that "same" (and "causal") padding pads the
quantized input with. A binarized input needs ``pad_values=1.0`` so that
every padded value is still +1 or -1.
"""

import keras
from keras import ops

from tfqnn.layers.base import QuantizedKernel, QuantizerMixin

DEPTHWISE = QuantizedKernel(
    "depthwise_quantizer", "depthwise_kernel", "depthwise_constraint", channel_axis=(-2, -1)
)
POINTWISE = QuantizedKernel("pointwise_quantizer", "pointwise_kernel", "pointwise_constraint")
# Keras's DepthwiseConv2D keeps its depthwise kernel in ``kernel``.
DEPTHWISE_KERNEL = QuantizedKernel(
    "depthwise_quantizer", "kernel", "depthwise_constraint", channel_axis=(-2, -1)
)
# A transposed kernel is (height, width, output channels, input channels).
TRANSPOSED_KERNEL = QuantizedKernel(
    "kernel_quantizer", "kernel", "kernel_constraint", channel_axis=-2
)


class _QuantConv(QuantizerMixin):
    """The call of the quantized convolutions that take ``pad_values``.

    ``_conv_op`` is the Keras op, called with the quantized kernels in the
    order of ``_quantized_kernels``.
    """

    _has_pad_values = True
    _conv_op = staticmethod(ops.conv)

    def call(self, inputs, training=None):
        kernels = [self.quantized_kernel(spec, training) for spec in self._quantized_kernels]

        def conv(x, padding):
            return self._conv_op(
                x,
                *kernels,
                strides=self.strides,
                padding=padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )

        outputs = self.convolve(conv, self.quantized_input(inputs, training))
        return self.bias_and_activation(outputs)


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantConv1D(_QuantConv, keras.layers.Conv1D):
    """`keras.layers.Conv1D` with quantized inputs and kernel, and ``pad_values``.

    Args:
        input_quantizer: quantizer of the inputs, or None.
        kernel_quantizer: quantizer of the kernel, or None.
        pad_values: value of "same" and "causal" padding (default 0.0).
        **kwargs: every argument of `keras.layers.Conv1D`; ``kernel_constraint``
            also takes ``"weight_clip"``.
    """


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantConv2D(_QuantConv, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with quantized inputs and kernel, and ``pad_values``.

    Args:
        input_quantizer: quantizer of the inputs, or None.
        kernel_quantizer: quantizer of the kernel, or None.
        pad_values: value of "same" padding (default 0.0; 1.0 for binary inputs).
        **kwargs: every argument of `keras.layers.Conv2D`; ``kernel_constraint``
            also takes ``"weight_clip"``.

    Example:
    >>> layer = tfqnn.layers.QuantConv2D(
    ...     32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
    ...     kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    """


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantDepthwiseConv2D(_QuantConv, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` with quantized inputs and kernel.

    Args:
        input_quantizer: quantizer of the inputs, or None.
        depthwise_quantizer: quantizer of the depthwise kernel, or None; its
            per-channel statistics run over the (input channel, multiplier)
            pairs, the output channels.
        pad_values: value of "same" padding (default 0.0).
        **kwargs: every argument of `keras.layers.DepthwiseConv2D`;
            ``depthwise_constraint`` also takes ``"weight_clip"``.
    """

    _quantized_kernels = (DEPTHWISE_KERNEL,)
    _conv_op = staticmethod(ops.depthwise_conv)


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantSeparableConv2D(_QuantConv, keras.layers.SeparableConv2D):
    """`keras.layers.SeparableConv2D` with quantized inputs and kernels.

    Args:
        input_quantizer: quantizer of the inputs, or None.
        depthwise_quantizer: quantizer of the depthwise kernel, or None.
        pointwise_quantizer: quantizer of the pointwise kernel, or None.
        pad_values: value of "same" padding (default 0.0).
        **kwargs: every argument of `keras.layers.SeparableConv2D`; the
            depthwise and pointwise constraints also take ``"weight_clip"``.
    """

    _quantized_kernels = (DEPTHWISE, POINTWISE)
    _conv_op = staticmethod(ops.separable_conv)


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantConv2DTranspose(QuantizerMixin, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` with quantized inputs and kernel.

    The kernel is shaped (height, width, filters, input channels), so a
    per-channel kernel quantizer works along axis -2.

    Args:
        input_quantizer: quantizer of the inputs, or None.
        kernel_quantizer: quantizer of the kernel, or None.
        **kwargs: every argument of `keras.layers.Conv2DTranspose`;
            ``kernel_constraint`` also takes ``"weight_clip"``.
    """

    _quantized_kernels = (TRANSPOSED_KERNEL,)

    def call(self, inputs, training=None):
        outputs = ops.conv_transpose(
            self.quantized_input(inputs, training),
            self.quantized_kernel(TRANSPOSED_KERNEL, training),
            strides=list(self.strides),
            padding=self.padding,
            output_padding=self.output_padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        return self.bias_and_activation(outputs)
