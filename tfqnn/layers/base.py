"""The mixin that turns a Keras layer into a quantized one.

`QuantizerMixin` adds to a Keras layer:

- ``input_quantizer``, applied to the inputs in ``call``;
- one quantizer per kernel, named as Keras names the kernel's arguments
  (``kernel_quantizer``, ``depthwise_quantizer``, ``pointwise_quantizer``),
  applied to the latent float kernel in ``call`` so that gradients reach it
  through the quantizer's straight-through estimator;
- ``bias_quantizer`` for layers that list `BIAS` among their kernels: the
  bias is quantized the same way before `bias_and_activation` adds it;
- ``pad_values`` for convolutions: the value that "same" (and "causal")
  padding pads the quantized input with;
- the ``"weight_clip"`` constraint alias, a warning when a binary kernel has
  no constraint, and the config entries of all of the above.

A quantized layer lists its kernels in ``_quantized_kernels`` (`QuantizedKernel`
specs: data, not one base class per kernel layout), states its full signature
in ``__init__`` and computes its op from ``quantized_input(...)`` and
``quantized_kernel(...)`` in ``call``.

The layers compute with `keras.ops`, as their Keras parents do; TensorFlow
itself appears only in the quantizers, whose straight-through estimators are
``tf.custom_gradient`` functions.
"""

from __future__ import annotations

import os
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

import keras
import numpy as np
from keras import ops

from tfqnn import _validation, constraints, quantizers
from tfqnn.quantizers import Quantizer, QuantizerLike, StochasticQuantizer

# Annotations of the Keras arguments that the layers restate.
Activation: TypeAlias = str | Callable[..., Any] | None
Initializer: TypeAlias = str | dict[str, Any] | keras.initializers.Initializer
Regularizer: TypeAlias = str | dict[str, Any] | keras.regularizers.Regularizer | None
# A kernel constraint also takes the alias "weight_clip".
Constraint: TypeAlias = str | dict[str, Any] | keras.constraints.Constraint | None
IntOrTuple: TypeAlias = int | tuple[int, ...]


class QuantizedKernel:
    """How one kernel of a layer is quantized.

    Args:
        quantizer: the constructor argument and attribute of its quantizer.
        weight: the attribute holding the latent kernel variable.
        constraint: the constructor argument of its constraint.
        channel_axis: the output-channel axis(es) of the kernel, passed to
            quantizers with per-channel statistics (such as `ScaledSign`).
    """

    def __init__(
        self,
        quantizer: str,
        weight: str,
        constraint: str,
        channel_axis: int | tuple[int, ...] = -1,
    ):
        self.quantizer = quantizer
        self.weight = weight
        self.constraint = constraint
        self.channel_axis = channel_axis


KERNEL = QuantizedKernel("kernel_quantizer", "kernel", "kernel_constraint")
# The bias, quantized as a kernel is; layers that list it quantize it before adding it.
BIAS = QuantizedKernel("bias_quantizer", "bias", "bias_constraint")
# The attribute of a quantizer that owns weights: the paths of the weights it made
# for its layer (`build_quantizer_weights` lets an instance serve one layer only).
_WEIGHTS_OWNED = "_tfqnn_weights_owned"
# The attribute of a latent kernel variable that holds (a weak reference to the
# layer that owns it, the attribute of its quantizer), for `latent_quantizer`.
_LATENT_OWNER = "_tfqnn_latent_owner"


class QuantizerMixin:
    """Adds input and kernel quantizers (and ``pad_values``) to a Keras layer.

    Place it before the Keras layer in the bases (``class
    QuantDense(QuantizerMixin, keras.layers.Dense)``), list the kernels in
    ``_quantized_kernels``, set ``_has_pad_values`` for a convolution whose
    padding `convolve` applies, and restate the Keras signature in the
    layer's ``__init__``, which passes the quantizers on by name.

    Args:
        input_quantizer: quantizer of the inputs, or None.
        kernel_quantizers: the quantizer of each kernel of
            ``_quantized_kernels``, by its argument name.
        pad_values: the padding value, for layers with ``_has_pad_values``
            only (they pass 0.0 by default).
        **kwargs: the arguments of the Keras layer; each kernel's constraint
            may be ``"weight_clip"``.
    """

    _quantized_kernels: tuple[QuantizedKernel, ...] = (KERNEL,)
    _has_pad_values = False

    def __init__(
        self,
        *,
        input_quantizer: QuantizerLike,
        kernel_quantizers: Mapping[str, QuantizerLike],
        pad_values: float | None = None,
        **kwargs: Any,
    ) -> None:
        names = [spec.quantizer for spec in self._quantized_kernels]
        if sorted(kernel_quantizers) != sorted(names):
            raise TypeError(
                f"{type(self).__name__} passes the kernel quantizers "
                f"{sorted(kernel_quantizers)}, but its kernels have {sorted(names)}."
            )
        for spec in self._quantized_kernels:
            if spec.constraint in kwargs:
                kwargs[spec.constraint] = constraints.get(kwargs[spec.constraint])
        if pad_values is not None and not self._has_pad_values:
            kwargs["pad_values"] = pad_values  # Keras rejects it, as any unknown argument
        super().__init__(**kwargs)

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
                    stacklevel=user_stacklevel(),
                )
        if self._has_pad_values:
            self.pad_values = _validation.check_number("pad_values", pad_values)
        # Track the stochastic quantizers' seed generators as layer state.
        self._quantizer_seed_generators = seed_generators(self.quantizers.values())
        build_quantizer_weights(self, self.quantizers)

    def _post_build(self) -> None:
        # Keras runs this hook after ``build`` (whose signature Keras inspects,
        # so it is not overridden here). Each latent kernel variable (biases
        # are not kernels) learns where its quantizer is, for `latent_quantizer`:
        # optimizers' predicates see variables only. A reference, not the
        # quantizer, so that one set later (as INQ does) is the one found.
        super()._post_build()  # type: ignore[misc]
        for spec in self._quantized_kernels:
            weight = getattr(self, spec.weight, None)
            if spec.weight != "bias" and isinstance(weight, keras.Variable):
                setattr(weight, _LATENT_OWNER, (weakref.ref(self), spec.quantizer))

    @property
    def quantizers(self) -> dict[str, Quantizer | None]:
        """The layer's quantizers by argument name (None where unquantized)."""
        names = ["input_quantizer"] + [spec.quantizer for spec in self._quantized_kernels]
        return {name: getattr(self, name) for name in names}

    def quantized_input(self, inputs: Any, training: bool | None = None) -> Any:
        """The inputs after the input quantizer."""
        return self._quantized("input_quantizer", inputs, training)

    def quantized_kernel(self, spec: QuantizedKernel, training: bool | None = None) -> Any:
        """The latent kernel named by ``spec`` after its quantizer."""
        return self._quantized(spec.quantizer, getattr(self, spec.weight), training)

    def _quantized(self, name: str, x: Any, training: bool | None = None) -> Any:
        """``x`` after the quantizer in attribute ``name`` (as it is where that is None)."""
        quantizer = getattr(self, name)
        return x if quantizer is None else quantizer(x, training=bool(training))

    def weight_precisions(self) -> dict[str, int]:
        """Bits per value of each weight as stored after quantization, by variable path.

        A kernel the layer does not have (a recurrent cell's bias with
        ``use_bias=False``) has no entry.
        """
        bits = {}
        for spec in self._quantized_kernels:
            weight = getattr(self, spec.weight, None)
            quantizer = getattr(self, spec.quantizer)
            if weight is not None and quantizer is not None:
                bits[weight.path] = quantizer.precision
        return bits

    def quantized_bias(self, training: bool | None = None) -> Any:
        """The bias after ``bias_quantizer`` (as it is without one); None without a bias."""
        bias = getattr(self, "bias", None)
        if bias is None or BIAS not in self._quantized_kernels:
            return bias
        return self.quantized_kernel(BIAS, training)

    def bias_and_activation(self, outputs: Any, training: bool | None = None) -> Any:
        """Adds the (quantized) bias along the channel axis and applies the activation, as Keras."""
        layer: Any = self  # the Keras layer's attributes
        if layer.use_bias:
            shape: tuple[int, ...] = (-1,)
            if getattr(layer, "data_format", "channels_last") == "channels_first":
                shape += (1,) * (len(outputs.shape) - 2)
            # Broadcasting, not ops.add: Keras's TensorFlow ops.add adds a
            # (C, 1, ..., 1) bias along the last axis when that axis also has C
            # entries (its bias_add fast path), so channels-first outputs
            # whose width equals the filters would get the bias on the width.
            outputs = outputs + ops.reshape(self.quantized_bias(training), shape)
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs

    def convolve(self, op: Callable[[Any, str], Any], inputs: Any) -> Any:
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
        layer: Any = self
        padding = layer.padding
        if padding == "valid" or (padding == "same" and self.pad_values == 0.0):
            return op(inputs, padding)
        pads = self._explicit_padding(inputs)
        if padding == "same" and all(isinstance(p, int) for pair in pads for p in pair):
            indicator = np.pad(np.zeros([1, *inputs.shape[1:]]), pads, constant_values=1.0)
            correction = op(ops.convert_to_tensor(indicator, dtype=inputs.dtype), "valid")
            return op(inputs, "same") + self.pad_values * correction
        return op(ops.pad(inputs, pads, constant_values=self.pad_values), "valid")

    def _explicit_padding(self, inputs: Any) -> list[list[Any]]:
        """Per-axis [before, after] padding of "same" or "causal", as TensorFlow pads.

        An axis of unknown size gets tensor pads.
        """
        layer: Any = self
        first_spatial = 1 if layer.data_format == "channels_last" else 2
        pads: list[list[Any]] = [[0, 0] for _ in inputs.shape]
        for i, (k, s, d) in enumerate(zip(layer.kernel_size, layer.strides, layer.dilation_rate)):
            axis = first_spatial + i
            extent = (k - 1) * d + 1
            if layer.padding == "causal":
                pads[axis] = [extent - 1, 0]
                continue
            size = ops.shape(inputs)[axis]
            total = (-(-size // s) - 1) * s + extent - size
            total = max(total, 0) if isinstance(total, int) else ops.maximum(total, 0)
            pads[axis] = [total // 2, total - total // 2]
        return pads

    def quantize(
        self, mode: str | None = None, type_check: bool = True, config: Any = None
    ) -> None:
        """Keras's post-training ``quantize()`` does not apply: the layer's quantizers do.

        ``model.quantize("int8")`` skips tfqnn layers with a warning (Keras
        catches this NotImplementedError) and quantizes the others.
        """
        layer: Any = self
        raise NotImplementedError(
            f"Layer {layer.name!r} ({type(self).__name__}) is quantized by its tfqnn "
            "quantizers during training; Keras's post-training quantize() leaves it as it is."
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()  # type: ignore[misc]
        config.update({name: quantizers.serialize(q) for name, q in self.quantizers.items()})
        if self._has_pad_values:
            config["pad_values"] = self.pad_values
        return config


def latent_quantizer(variable: Any) -> Quantizer | None:
    """The quantizer a tfqnn layer applies to ``variable``, a latent kernel it owns.

    Looked up on the layer when asked, so a quantizer set after the layer was
    built counts. None for any other variable (a bias, quantized or not, a
    BatchNorm scale, an unquantized kernel) and before the layer is built.
    ``latent_quantizer(v).precision == 1`` marks the latent weights of
    binary kernels (`tfqnn.optimizers.is_binary_variable`).
    """
    owner = getattr(variable, _LATENT_OWNER, None)
    if owner is None:
        return None
    layer_ref, attribute = owner
    layer = layer_ref()
    return None if layer is None else getattr(layer, attribute, None)


def user_stacklevel() -> int:
    """The ``stacklevel`` at which `warnings.warn` names the user's line.

    Counted from the function that calls this one (level 1) up to the first
    frame outside tfqnn and Keras, so that a warning raised in a cell built
    by a layer built by the user names the user's line, however deep.
    """
    inside = tuple(
        os.path.dirname(os.path.abspath(package.__file__)) + os.sep
        for package in (sys.modules["tfqnn"], keras)
        if package.__file__ is not None
    )
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame = frame.f_back
        level += 1
    return level


def seed_generators(quantizer_list: Iterable[Quantizer | None]) -> list[Any]:
    """The seed generators of the stochastic quantizers among ``quantizer_list``.

    A layer stores them in an attribute so that Keras tracks them as layer
    state (``layer.variables``), as it does for ``keras.layers.Dropout``.
    """
    return [q.seed_generator for q in quantizer_list if isinstance(q, StochasticQuantizer)]


class QuantizerWeights(keras.layers.Layer):
    """Holds the weights a quantizer owns (`Quantizer.build_weights`).

    A sublayer of the layer the quantizer serves, so that ``fit`` trains
    the weights and saving keeps them (under the layer's attribute
    ``_<argument>_weights``) apart from the Keras parent's own variables,
    whose saving Keras fixes per layer class.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.built = True

    def call(self, inputs: Any) -> Any:
        return inputs


def build_quantizer_weights(layer: keras.Layer, by_name: Mapping[str, Quantizer | None]) -> None:
    """Lets each quantizer create its own weights (`Quantizer.build_weights`) for ``layer``.

    Called from the layer's ``__init__``: such weights do not depend on the
    input shape (ABC-Net's activation shifts and scales, one per basis).
    They go into a `QuantizerWeights` sublayer per quantizer that has any.

    Raises:
        ValueError: for a quantizer instance that already made weights for a
            layer: an instance that owns weights belongs to one layer.
    """
    for name, quantizer in by_name.items():
        if quantizer is None or not quantizer.owns_weights:
            continue
        owned = getattr(quantizer, _WEIGHTS_OWNED, None)
        if owned is not None:
            raise ValueError(
                f"This {type(quantizer).__name__} already owns the weights {owned!r}: an "
                "instance belongs to one layer; give each layer its own (an alias or a config "
                "dict builds a new one)."
            )
        holder = QuantizerWeights(name=f"{name}_weights", dtype=layer.dtype_policy)
        quantizer.build_weights(holder.add_weight, name)
        setattr(quantizer, _WEIGHTS_OWNED, [weight.path for weight in holder.weights])
        if holder.weights:
            setattr(layer, f"_{name}_weights", holder)


def _with_channel_axis(
    quantizer: Quantizer | None, channel_axis: int | tuple[int, ...]
) -> Quantizer | None:
    """A per-channel quantizer left at its default ``axis=-1`` gets the kernel's own axis."""
    if quantizer is None or channel_axis == -1 or getattr(quantizer, "axis", None) != -1:
        return quantizer
    config = quantizer.get_config()
    config["axis"] = list(channel_axis) if isinstance(channel_axis, tuple) else channel_axis
    return type(quantizer).from_config(config)
