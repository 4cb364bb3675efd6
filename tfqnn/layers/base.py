"""The mixin that turns a Keras layer into a quantized one.

`QuantizerMixin` adds to a Keras layer:

- ``input_quantizer``, applied to the inputs in ``call``;
- one quantizer per kernel, named as Keras names the kernel's arguments
  (``kernel_quantizer``, ``depthwise_quantizer``, ``pointwise_quantizer``),
  applied to the latent float kernel in ``call`` so that gradients reach it
  through the quantizer's straight-through estimator;
- ``pad_values`` for convolutions: the value that "same" (and "causal")
  padding pads the quantized input with;
- the ``"weight_clip"`` constraint alias, a warning when a binary kernel has
  no constraint, and the config entries of all of the above.

A quantized layer lists its kernels in ``_quantized_kernels`` and computes its
op from ``quantized_input(...)`` and ``quantized_kernel(...)`` in ``call``.
"""

import warnings

import numpy as np
import tensorflow as tf

from tfqnn import _validation, constraints, quantizers
from tfqnn.quantizers import StochasticQuantizer


class QuantizedKernel:
    """How one kernel of a layer is quantized.

    Args:
        quantizer: the constructor argument and attribute of its quantizer.
        weight: the attribute holding the latent kernel variable.
        constraint: the constructor argument of its constraint.
        channel_axis: the output-channel axis(es) of the kernel, passed to
            quantizers with per-channel statistics (such as `ScaledSign`).
    """

    def __init__(self, quantizer, weight, constraint, channel_axis=-1):
        self.quantizer = quantizer
        self.weight = weight
        self.constraint = constraint
        self.channel_axis = channel_axis


KERNEL = QuantizedKernel("kernel_quantizer", "kernel", "kernel_constraint")


class QuantizerMixin:
    """Adds input and kernel quantizers (and ``pad_values``) to a Keras layer.

    Place it before the Keras layer in the bases: ``class
    QuantDense(QuantizerMixin, keras.layers.Dense)``.
    """

    _quantized_kernels = (KERNEL,)
    _has_pad_values = False

    def __init__(self, *args, input_quantizer=None, **kwargs):
        kernel_quantizers = {
            spec.quantizer: kwargs.pop(spec.quantizer, None) for spec in self._quantized_kernels
        }
        pad_values = kwargs.pop("pad_values", 0.0) if self._has_pad_values else 0.0
        for spec in self._quantized_kernels:
            if spec.constraint in kwargs:
                kwargs[spec.constraint] = constraints.get(kwargs[spec.constraint])
        super().__init__(*args, **kwargs)

        self.input_quantizer = quantizers.get(input_quantizer)
        for spec in self._quantized_kernels:
            quantizer = _with_channel_axis(
                quantizers.get(kernel_quantizers[spec.quantizer]), spec.channel_axis
            )
            setattr(self, spec.quantizer, quantizer)
            binary = quantizer is not None and quantizer.precision == 1
            if binary and getattr(self, spec.constraint, None) is None:
                warnings.warn(
                    f"{type(self).__name__} has a binary {spec.quantizer} but no "
                    f"{spec.constraint}: latent weights can grow past the STE's "
                    f'clip range and stop learning. Pass {spec.constraint}="weight_clip".',
                    stacklevel=2,
                )
        if self._has_pad_values:
            self.pad_values = _validation.check_number("pad_values", pad_values)
        # Track the stochastic quantizers' seed generators as layer state.
        self._quantizer_seed_generators = seed_generators(self.quantizers.values())

    @property
    def quantizers(self):
        """The layer's quantizers by argument name (None where unquantized)."""
        names = ["input_quantizer"] + [spec.quantizer for spec in self._quantized_kernels]
        return {name: getattr(self, name) for name in names}

    def quantized_input(self, inputs, training=None):
        """The inputs after the input quantizer."""
        if self.input_quantizer is None:
            return inputs
        return self.input_quantizer(inputs, training=bool(training))

    def quantized_kernel(self, spec, training=None):
        """The latent kernel named by ``spec`` after its quantizer."""
        kernel = getattr(self, spec.weight)
        quantizer = getattr(self, spec.quantizer)
        if quantizer is None:
            return kernel
        return quantizer(kernel, training=bool(training))

    def weight_precisions(self):
        """Bits per value of each weight as stored after quantization, by variable path."""
        bits = {}
        for spec in self._quantized_kernels:
            quantizer = getattr(self, spec.quantizer)
            if quantizer is not None:
                bits[getattr(self, spec.weight).path] = quantizer.precision
        return bits

    def bias_and_activation(self, outputs):
        """Adds the bias along the channel axis and applies the activation, as Keras does."""
        if self.use_bias:
            channels_first = getattr(self, "data_format", "channels_last") == "channels_first"
            outputs = tf.nn.bias_add(
                outputs, self.bias, data_format="NC..." if channels_first else None
            )
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def convolve(self, op, inputs):
        """Runs ``op(inputs, padding)`` with the layer's padding and ``pad_values``.

        ``op`` is a convolution, linear in its input. "valid" padding and
        "same" padding with ``pad_values=0`` go to the Keras op as they are.
        Otherwise the input is padded explicitly and convolved with "valid"
        padding, except for "same" padding on a known spatial shape: there,
        as convolution is linear, padding with ``v`` is the zero-padded
        convolution plus ``v`` times the convolution of the padding's
        indicator, a constant of batch size 1, which is cheaper than padding
        every batch.
        """
        padding = self.padding
        if padding == "valid" or (padding == "same" and self.pad_values == 0.0):
            return op(inputs, padding)
        pads = self._explicit_padding(inputs)
        if padding == "same" and all(isinstance(p, int) for pair in pads for p in pair):
            indicator = np.pad(np.zeros([1, *inputs.shape[1:]]), pads, constant_values=1.0)
            correction = op(tf.constant(indicator, inputs.dtype), "valid")
            return op(inputs, "same") + self.pad_values * correction
        return op(tf.pad(inputs, pads, constant_values=self.pad_values), "valid")

    def _explicit_padding(self, inputs):
        """Per-axis [before, after] padding of "same" or "causal", as TensorFlow pads."""
        first_spatial = 1 if self.data_format == "channels_last" else 2
        pads = [[0, 0] for _ in inputs.shape]
        for i, (k, s, d) in enumerate(zip(self.kernel_size, self.strides, self.dilation_rate)):
            axis = first_spatial + i
            extent = (k - 1) * d + 1
            if self.padding == "causal":
                pads[axis] = [extent - 1, 0]
                continue
            size = inputs.shape[axis]
            size = tf.shape(inputs)[axis] if size is None else size
            total = (-(-size // s) - 1) * s + extent - size
            total = max(total, 0) if isinstance(total, int) else tf.maximum(total, 0)
            pads[axis] = [total // 2, total - total // 2]
        return pads

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras's post-training ``quantize()`` does not apply: the layer's quantizers do.

        ``model.quantize("int8")`` skips tfqnn layers with a warning (Keras
        catches this NotImplementedError) and quantizes the others.
        """
        raise NotImplementedError(
            f"Layer {self.name!r} ({type(self).__name__}) is quantized by its tfqnn "
            "quantizers during training; Keras's post-training quantize() leaves it as it is."
        )

    def get_config(self):
        config = super().get_config()
        config.update({name: quantizers.serialize(q) for name, q in self.quantizers.items()})
        if self._has_pad_values:
            config["pad_values"] = self.pad_values
        return config


def seed_generators(quantizer_list):
    """The seed generators of the stochastic quantizers among ``quantizer_list``.

    A layer stores them in an attribute so that Keras tracks them as layer
    state (``layer.variables``), as it does for ``keras.layers.Dropout``.
    """
    return [q.seed_generator for q in quantizer_list if isinstance(q, StochasticQuantizer)]


def _with_channel_axis(quantizer, channel_axis):
    """A per-channel quantizer left at its default ``axis=-1`` gets the kernel's own axis."""
    if channel_axis == -1 or getattr(quantizer, "axis", None) != -1:
        return quantizer
    config = quantizer.get_config()
    config["axis"] = list(channel_axis) if isinstance(channel_axis, tuple) else channel_axis
    return type(quantizer).from_config(config)
