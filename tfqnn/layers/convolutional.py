"""Quantized convolution layers.

Each takes ``input_quantizer``, the quantizers of its kernels, named after
Keras's kernel arguments, and ``bias_quantizer``; all but the transposed
convolution take ``pad_values``, the value that "same" (and "causal")
padding pads the quantized input with. A binarized input needs ``pad_values=1.0`` so that
every padded value is still +1 or -1.
"""

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
    IntOrTuple,
    QuantizedKernel,
    QuantizerMixin,
    Regularizer,
)
from tfqnn.quantizers import QuantizerLike

# Keras's DepthwiseConv2D keeps its depthwise kernel (height, width, input
# channels, multiplier) in ``kernel``; its output channels are the last two axes.
DEPTHWISE = QuantizedKernel("depthwise_quantizer", "kernel", "depthwise_constraint", (-2, -1))
# SeparableConv2D's first kernel, shaped as DepthwiseConv2D's, in ``depthwise_kernel``.
SEPARABLE_DEPTHWISE = QuantizedKernel(
    "depthwise_quantizer", "depthwise_kernel", "depthwise_constraint", (-2, -1)
)
POINTWISE = QuantizedKernel("pointwise_quantizer", "pointwise_kernel", "pointwise_constraint")
# A transposed kernel is (height, width, output channels, input channels).
TRANSPOSED_KERNEL = QuantizedKernel("kernel_quantizer", "kernel", "kernel_constraint", -2)


class _QuantConv(QuantizerMixin):
    """The call of the quantized convolutions that take ``pad_values``.

    ``_conv_op`` is the Keras op, called with the quantized kernels in the
    order of ``_quantized_kernels`` (the bias apart: `bias_and_activation` adds it).
    """

    _quantized_kernels: tuple[QuantizedKernel, ...] = (KERNEL, BIAS)
    _has_pad_values = True
    _conv_op = staticmethod(ops.conv)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        layer: Any = self  # the Keras convolution's attributes
        kernels = [
            self.quantized_kernel(spec, training)
            for spec in self._quantized_kernels
            if spec is not BIAS
        ]

        def conv(x: Any, padding: str) -> Any:
            return self._conv_op(
                x,
                *kernels,
                strides=layer.strides,
                padding=padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )

        outputs = self.convolve(conv, self.quantized_input(inputs, training))
        return self.bias_and_activation(outputs, training)


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantConv1D(_QuantConv, keras.layers.Conv1D):
    """`keras.layers.Conv1D` with quantized inputs and kernel, and ``pad_values``.

    Args:
        filters, kernel_size, ...: as `keras.layers.Conv1D`; ``kernel_constraint``
            also takes ``"weight_clip"``.
        input_quantizer: quantizer of the inputs (a `tfqnn.quantizers`
            identifier), or None.
        kernel_quantizer: quantizer of the kernel, or None.
        bias_quantizer: quantizer of the bias, or None (a float bias).
        pad_values: value of "same" and "causal" padding (default 0.0).
        **kwargs: the base layer's arguments (``name``, ``dtype``, ...).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: IntOrTuple,
        strides: IntOrTuple = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: IntOrTuple = 1,
        groups: int = 1,
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
        pad_values: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            groups=groups,
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
            pad_values=pad_values,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantConv2D(_QuantConv, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with quantized inputs and kernel, and ``pad_values``.

    Args:
        filters, kernel_size, ...: as `keras.layers.Conv2D`; ``kernel_constraint``
            also takes ``"weight_clip"``.
        input_quantizer: quantizer of the inputs (a `tfqnn.quantizers`
            identifier), or None.
        kernel_quantizer: quantizer of the kernel, or None.
        bias_quantizer: quantizer of the bias, or None (a float bias).
        pad_values: value of "same" padding (default 0.0; 1.0 for binary inputs).
        **kwargs: the base layer's arguments (``name``, ``dtype``, ...).

    Example:
    >>> layer = tfqnn.layers.QuantConv2D(
    ...     32, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
    ...     kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    """

    def __init__(
        self,
        filters: int,
        kernel_size: IntOrTuple,
        strides: IntOrTuple = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: IntOrTuple = (1, 1),
        groups: int = 1,
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
        pad_values: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            groups=groups,
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
            pad_values=pad_values,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantDepthwiseConv2D(_QuantConv, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` with quantized inputs and kernel.

    Args:
        kernel_size, strides, ...: as `keras.layers.DepthwiseConv2D`;
            ``depthwise_constraint`` also takes ``"weight_clip"``.
        input_quantizer: quantizer of the inputs (a `tfqnn.quantizers`
            identifier), or None.
        depthwise_quantizer: quantizer of the depthwise kernel, or None; its
            per-channel statistics run over the (input channel, multiplier)
            pairs, the output channels.
        bias_quantizer: quantizer of the bias, or None (a float bias).
        pad_values: value of "same" padding (default 0.0).
        **kwargs: the base layer's arguments (``name``, ``dtype``, ...).
    """

    _quantized_kernels = (DEPTHWISE, BIAS)
    _conv_op = staticmethod(ops.depthwise_conv)

    def __init__(
        self,
        kernel_size: IntOrTuple,
        strides: IntOrTuple = (1, 1),
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: IntOrTuple = (1, 1),
        activation: Activation = None,
        use_bias: bool = True,
        depthwise_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        depthwise_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        activity_regularizer: Regularizer = None,
        depthwise_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        *,
        input_quantizer: QuantizerLike = None,
        depthwise_quantizer: QuantizerLike = None,
        bias_quantizer: QuantizerLike = None,
        pad_values: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            depth_multiplier=depth_multiplier,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            depthwise_initializer=depthwise_initializer,
            bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint,
            bias_constraint=bias_constraint,
            input_quantizer=input_quantizer,
            kernel_quantizers={
                "depthwise_quantizer": depthwise_quantizer,
                "bias_quantizer": bias_quantizer,
            },
            pad_values=pad_values,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantSeparableConv2D(_QuantConv, keras.layers.SeparableConv2D):
    """`keras.layers.SeparableConv2D` with quantized inputs and kernels.

    Args:
        filters, kernel_size, ...: as `keras.layers.SeparableConv2D`; the
            depthwise and pointwise constraints also take ``"weight_clip"``.
        input_quantizer: quantizer of the inputs (a `tfqnn.quantizers`
            identifier), or None.
        depthwise_quantizer: quantizer of the depthwise kernel, or None.
        pointwise_quantizer: quantizer of the pointwise kernel, or None.
        bias_quantizer: quantizer of the bias, or None (a float bias).
        pad_values: value of "same" padding (default 0.0).
        **kwargs: the base layer's arguments (``name``, ``dtype``, ...).
    """

    _quantized_kernels = (SEPARABLE_DEPTHWISE, POINTWISE, BIAS)
    _conv_op = staticmethod(ops.separable_conv)

    def __init__(
        self,
        filters: int,
        kernel_size: IntOrTuple,
        strides: IntOrTuple = (1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: IntOrTuple = (1, 1),
        depth_multiplier: int = 1,
        activation: Activation = None,
        use_bias: bool = True,
        depthwise_initializer: Initializer = "glorot_uniform",
        pointwise_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        depthwise_regularizer: Regularizer = None,
        pointwise_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        activity_regularizer: Regularizer = None,
        depthwise_constraint: Constraint = None,
        pointwise_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        *,
        input_quantizer: QuantizerLike = None,
        depthwise_quantizer: QuantizerLike = None,
        pointwise_quantizer: QuantizerLike = None,
        bias_quantizer: QuantizerLike = None,
        pad_values: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            depth_multiplier=depth_multiplier,
            activation=activation,
            use_bias=use_bias,
            depthwise_initializer=depthwise_initializer,
            pointwise_initializer=pointwise_initializer,
            bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer,
            pointwise_regularizer=pointwise_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint,
            pointwise_constraint=pointwise_constraint,
            bias_constraint=bias_constraint,
            input_quantizer=input_quantizer,
            kernel_quantizers={
                "depthwise_quantizer": depthwise_quantizer,
                "pointwise_quantizer": pointwise_quantizer,
                "bias_quantizer": bias_quantizer,
            },
            pad_values=pad_values,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantConv2DTranspose(QuantizerMixin, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` with quantized inputs and kernel.

    The kernel is shaped (height, width, filters, input channels), so a
    per-channel kernel quantizer works along axis -2. The layer has no
    ``pad_values``: a transposed convolution's padding crops its output.

    Args:
        filters, kernel_size, ...: as `keras.layers.Conv2DTranspose`;
            ``kernel_constraint`` also takes ``"weight_clip"``.
        input_quantizer: quantizer of the inputs (a `tfqnn.quantizers`
            identifier), or None.
        kernel_quantizer: quantizer of the kernel, or None.
        bias_quantizer: quantizer of the bias, or None (a float bias).
        **kwargs: the base layer's arguments (``name``, ``dtype``, ...).
    """

    _quantized_kernels = (TRANSPOSED_KERNEL, BIAS)

    def __init__(
        self,
        filters: int,
        kernel_size: IntOrTuple,
        strides: IntOrTuple = (1, 1),
        padding: str = "valid",
        output_padding: IntOrTuple | None = None,
        data_format: str | None = None,
        dilation_rate: IntOrTuple = (1, 1),
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
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            output_padding=output_padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
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
        layer: Any = self
        outputs = ops.conv_transpose(
            self.quantized_input(inputs, training),
            self.quantized_kernel(TRANSPOSED_KERNEL, training),
            strides=list(layer.strides),
            padding=layer.padding,
            output_padding=layer.output_padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )
        return self.bias_and_activation(outputs, training)
