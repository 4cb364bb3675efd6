"""Quantized recurrent cells and layers: SimpleRNN, LSTM and GRU.

Each cell subclasses its Keras 3 cell and computes one time step from
quantized operands: the input ``x_t`` (``input_quantizer``), the kernel
``W`` (``kernel_quantizer``), the recurrent kernel ``U``
(``recurrent_quantizer``), the bias ``b`` (``bias_quantizer``) and the
previous state ``h_{t-1}``, and for the LSTM also the carry ``c_{t-1}``
(``state_quantizer``). The LSTM and the GRU also take ``gate_quantizer``
(applied to the gate activations) and ``candidate_quantizer`` (applied to the
candidate activation), the "gates and interlinks" that He et al. 2016
quantize. The literature behind each quantizer:

- Weights ``W``, ``U`` (and biases): Ott et al. 2016, "Recurrent Neural
  Networks With Limited Numerical Precision" (arXiv:1608.06902): ternary and
  power-of-two weights work, unscaled binary weights do not; Hubara et al.
  2016, "Quantized Neural Networks" (arXiv:1609.07061).
- Inputs and states (the operands of the matrix products): Hubara et al.
  2016 quantize them with the weights (4 bits near float on Penn Treebank).
- Gates and candidate: He et al. 2016, "Effective Quantization Methods for
  Recurrent Neural Networks" (arXiv:1611.10176). The SimpleRNN has neither;
  its output is the next step's state, quantized there.

The layers `QuantSimpleRNN`, `QuantLSTM` and `QuantGRU` are
`keras.layers.RNN` around these cells. They never take Keras's fused (cuDNN)
path, which would run the latent float ``cell.kernel``: every step runs the
cell's ``call``. `keras.layers.RNN(cell)` and `keras.layers.Bidirectional`
work with the cells and layers as with Keras's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
from keras import ops

from tfqnn import quantizers
from tfqnn.layers.base import (
    BIAS,
    KERNEL,
    Activation,
    Constraint,
    Initializer,
    QuantizedKernel,
    QuantizerMixin,
    Regularizer,
    seed_generators,
)
from tfqnn.quantizers import Quantizer, QuantizerLike

__all__ = [
    "QuantGRU",
    "QuantGRUCell",
    "QuantLSTM",
    "QuantLSTMCell",
    "QuantRNN",
    "QuantSimpleRNN",
    "QuantSimpleRNNCell",
    "RecurrentQuantizerMixin",
]

RECURRENT_KERNEL = QuantizedKernel(
    "recurrent_quantizer", "recurrent_kernel", "recurrent_constraint"
)

# Activations whose outputs are never negative: with any other, h can be.
_NON_NEGATIVE_ACTIVATIONS = frozenset(
    {"relu", "relu6", "sigmoid", "hard_sigmoid", "softplus", "exponential"}
)


class RecurrentQuantizerMixin(QuantizerMixin):
    """Quantizers of a recurrent cell: W, U, b, the inputs, states and activations.

    Place it before the Keras cell in the bases. The cell's ``call`` reads
    `quantized_input`, `quantized_weights`, `quantized_state` and
    `quantized_activation`.

    Checks at construction (ValueError naming the argument):

    - a quantizer with a fixed ``axis`` (``ScaledSign``) on ``W`` or ``U``
      must keep one statistic per column, ``axis=-1`` (or 1): the columns
      are the concatenated gates times the units, so any other axis mixes
      the gates. On the bias the axis must be the last one too.
    - ``state_quantizer`` must hold the states, as its
      `Quantizer.output_range` tells: a quantizer whose outputs are never
      negative (DoReFa's activations mode, unsigned `FixedPoint`)
      is refused unless the activation is non-negative too (``relu``, ...);
      the LSTM also refuses one whose outputs lie within [-1, 1] (binary,
      unscaled ternary, `SymmetricUniform`, `FixedPoint` with one integer
      bit), since it quantizes the carry ``c`` as well, which is unbounded
      (``|c_t| <= |c_{t-1}| + 1``, so beyond 1 after two steps).
      Quantizers that scale with their input (``ScaledSign``, ``Uniform``,
      ...) are accepted.
    """

    _quantized_kernels = (KERNEL, RECURRENT_KERNEL, BIAS)
    # The activation quantizers of the cell, besides state_quantizer.
    _activation_quantizers: tuple[str, ...] = ()
    # Whether state_quantizer also quantizes an unbounded carry (the LSTM's c).
    _quantizes_carry = False
    # (W, U, b) quantized for the sequence being run (`weights_quantized_once`).
    _sequence_weights: tuple[Any, Any, Any] | None = None

    def __init__(
        self,
        *,
        input_quantizer: QuantizerLike,
        kernel_quantizer: QuantizerLike,
        recurrent_quantizer: QuantizerLike,
        bias_quantizer: QuantizerLike,
        state_quantizer: QuantizerLike,
        activation_quantizers: Mapping[str, QuantizerLike] | None = None,
        **kwargs: Any,
    ) -> None:
        activation_quantizers = dict(activation_quantizers or {})
        if sorted(activation_quantizers) != sorted(self._activation_quantizers):
            raise TypeError(
                f"{type(self).__name__} passes the activation quantizers "
                f"{sorted(activation_quantizers)}, but it has {sorted(self._activation_quantizers)}."
            )
        super().__init__(
            input_quantizer=input_quantizer,
            kernel_quantizers={
                "kernel_quantizer": kernel_quantizer,
                "recurrent_quantizer": recurrent_quantizer,
                "bias_quantizer": bias_quantizer,
            },
            **kwargs,
        )
        self.state_quantizer = quantizers.get(state_quantizer)
        for name, identifier in activation_quantizers.items():
            setattr(self, name, quantizers.get(identifier))
        self._check_axes()
        self._check_state_quantizer()
        self._quantizer_seed_generators = seed_generators(self.quantizers.values())

    @property
    def quantizers(self) -> dict[str, Quantizer | None]:
        """The cell's quantizers by argument name (None where unquantized)."""
        names = ["state_quantizer", *self._activation_quantizers]
        own = {name: getattr(self, name, None) for name in names}  # None until set
        return {**super().quantizers, **own}

    def _check_axes(self) -> None:
        cell: Any = self
        bias_rank = 2 if getattr(cell, "reset_after", False) else 1
        for spec, rank in ((KERNEL, 2), (RECURRENT_KERNEL, 2), (BIAS, bias_rank)):
            quantizer = getattr(self, spec.quantizer)
            axis = getattr(quantizer, "axis", None)
            if axis is None or axis in (-1, rank - 1):
                continue
            raise ValueError(
                f"Invalid {spec.quantizer}={quantizer!r}: expected axis=-1, "
                f"one statistic per column of the rank-{rank} {spec.weight}, whose "
                "columns are the gates times the units; another axis mixes the gates."
            )

    def _check_state_quantizer(self) -> None:
        quantizer = self.state_quantizer
        bounds = None if quantizer is None else quantizer.output_range
        if quantizer is None or bounds is None:
            return
        low, high = bounds
        activation = getattr(self, "activation", None)
        name = getattr(activation, "__name__", None)
        if low >= 0.0 and name not in _NON_NEGATIVE_ACTIVATIONS:
            raise ValueError(
                f"Invalid state_quantizer={quantizer!r}: expected a quantizer "
                f"with negative values, as the states of activation={name!r} take them; "
                f"this one's outputs lie in [{low}, {high}]."
            )
        if self._quantizes_carry and low >= -1.0 and high <= 1.0:
            raise ValueError(
                f"Invalid state_quantizer={quantizer!r}: expected a quantizer "
                "that can hold the LSTM's carry c, which it also quantizes and which is "
                f"unbounded; this one's outputs lie in [{low}, {high}]. Use a scaled "
                "quantizer (ScaledSign, Uniform) or a FixedPoint with integer_bits >= 2."
            )

    @contextlib.contextmanager
    def weights_quantized_once(self, training: bool | None) -> Iterator[None]:
        """Within the block every step reads ``(W, U, b)`` quantized once, here.

        A `QuantRNN` runs its sequence in this block: the weights are the
        same at every step, so quantizing them once per sequence instead of
        once per step changes nothing but the cost (a stochastic quantizer
        draws once per sequence). Gradients reach the latent weights as
        before, summed over the steps.
        """
        cell: Any = self  # the Keras cell's attributes
        dtype = cell.compute_dtype
        kernel, recurrent_kernel, bias = self.quantized_weights(training)
        self._sequence_weights = (
            ops.cast(kernel, dtype),
            ops.cast(recurrent_kernel, dtype),
            None if bias is None else ops.cast(bias, dtype),
        )
        try:
            yield
        finally:
            self._sequence_weights = None

    def quantized_weights(self, training: bool | None) -> tuple[Any, Any, Any]:
        """``(W, U, b)`` after their quantizers; ``b`` is None without a bias."""
        if self._sequence_weights is not None:
            return self._sequence_weights
        bias = None
        if getattr(self, "bias", None) is not None:
            bias = self.quantized_kernel(BIAS, training)
        kernel = self.quantized_kernel(KERNEL, training)
        return kernel, self.quantized_kernel(RECURRENT_KERNEL, training), bias

    def quantized_state(self, state: Any, training: bool | None) -> Any:
        """A state of the previous step after ``state_quantizer``."""
        return self._quantized("state_quantizer", state, training)

    def quantized_activation(
        self, name: str, activation: Callable[..., Any], x: Any, training: bool | None
    ) -> Any:
        """``activation(x)`` after the quantizer ``name`` (a gate or the candidate)."""
        return self._quantized(name, activation(x), training)

    def dropped(self, x: Any, mask: Any, training: bool | None, count: int) -> list[Any]:
        """``count`` copies of ``x``, each times its dropout mask in training.

        Keras's cells draw one mask, or one per gate (``implementation=1``,
        which recurrent dropout selects); the masks multiply the quantized
        operand, so that inference, which drops nothing, sees it as it is.
        """
        if not training or mask is None:
            return [x] * count
        masks = mask if isinstance(mask, (list, tuple)) else [mask] * count
        return [x * m for m in masks]


def _products(parts: Sequence[Any], matrix: Any, count: int) -> list[Any]:
    """``[parts[k] @ matrix_k]`` for the ``count`` column blocks ``matrix_k`` of ``matrix``.

    When every part is the same tensor this is one product, then split.
    """
    if all(part is parts[0] for part in parts):
        return list(ops.split(ops.matmul(parts[0], matrix), count, axis=-1))
    blocks = ops.split(matrix, count, axis=-1)
    return [ops.matmul(part, block) for part, block in zip(parts, blocks)]


def _masks(cell: Any, inputs: Any, h_tm1: Any, training: bool | None) -> tuple[Any, Any]:
    """The cell's dropout masks for the step (None where it does not drop)."""
    if not training:
        return None, None
    dp_mask = cell.get_dropout_mask(inputs) if 0.0 < cell.dropout < 1.0 else None
    rec_mask = None
    if 0.0 < cell.recurrent_dropout < 1.0:
        rec_mask = cell.get_recurrent_dropout_mask(h_tm1)
    return dp_mask, rec_mask


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantSimpleRNNCell(RecurrentQuantizerMixin, keras.layers.SimpleRNNCell):
    """`keras.layers.SimpleRNNCell` with quantized inputs, weights and state.

    ``h_t = activation(q_x(x_t) q_W(W) + q_b(b) + q_s(h_{t-1}) q_U(U))``,
    where ``q_x`` is ``input_quantizer``, ``q_W`` ``kernel_quantizer``,
    ``q_U`` ``recurrent_quantizer``, ``q_b`` ``bias_quantizer`` and ``q_s``
    ``state_quantizer``; a None quantizer is the identity. Dropout masks
    multiply the quantized ``x_t`` and ``h_{t-1}`` in training, as Keras's
    multiply its operands.

    Args:
        units: as `keras.layers.SimpleRNNCell`, as are the arguments up to
            ``seed``; ``kernel_constraint``, ``recurrent_constraint`` and
            ``bias_constraint`` also accept ``"weight_clip"``.
        input_quantizer, kernel_quantizer, recurrent_quantizer, bias_quantizer, state_quantizer:
            `tfqnn.quantizers` identifiers or None; see `RecurrentQuantizerMixin`
            for the checks.
        **kwargs: every other argument of the Keras cell (``name``, ``dtype``).

    Example:
    >>> cell = tfqnn.layers.QuantSimpleRNNCell(
    ...     32, kernel_quantizer="ste_tern", recurrent_quantizer="ste_tern")
    >>> layer = keras.layers.RNN(cell)
    """

    def __init__(
        self,
        units: int,
        activation: Activation = "tanh",
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        recurrent_initializer: Initializer = "orthogonal",
        bias_initializer: Initializer = "zeros",
        kernel_regularizer: Regularizer = None,
        recurrent_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        kernel_constraint: Constraint = None,
        recurrent_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
        recurrent_quantizer: QuantizerLike = None,
        bias_quantizer: QuantizerLike = None,
        state_quantizer: QuantizerLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            units=units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            recurrent_quantizer=recurrent_quantizer,
            bias_quantizer=bias_quantizer,
            state_quantizer=state_quantizer,
            **kwargs,
        )

    def call(self, sequence: Any, states: Any, training: bool | None = False) -> Any:
        nested = isinstance(states, (list, tuple))
        h_tm1 = states[0] if nested else states
        dp_mask, rec_mask = _masks(self, sequence, h_tm1, training)
        x = self.dropped(self.quantized_input(sequence, training), dp_mask, training, 1)[0]
        h = self.dropped(self.quantized_state(h_tm1, training), rec_mask, training, 1)[0]
        kernel, recurrent_kernel, bias = self.quantized_weights(training)
        output = ops.matmul(x, kernel)
        if bias is not None:
            output = output + bias
        output = output + ops.matmul(h, recurrent_kernel)
        if self.activation is not None:
            output = self.activation(output)
        return output, [output] if nested else output


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantLSTMCell(RecurrentQuantizerMixin, keras.layers.LSTMCell):
    """`keras.layers.LSTMCell` with quantized inputs, weights, states and gates.

    With ``x = q_x(x_t)``, ``h = q_s(h_{t-1})``, ``c = q_s(c_{t-1})`` and
    ``[z_i, z_f, z_c, z_o] = x q_W(W) + h q_U(U) + q_b(b)`` (the gates
    concatenated along the last axis, in Keras's order):
    ``i, f, o = q_g(recurrent_activation(z_i, z_f, z_o))``,
    ``g = q_c(activation(z_c))``, ``c_t = f c + i g``,
    ``h_t = o activation(c_t)``; the cell returns ``h_t, [h_t, c_t]``.
    ``q_g`` is ``gate_quantizer``, ``q_c`` ``candidate_quantizer``, the
    others as in `QuantSimpleRNNCell`. ``state_quantizer`` quantizes both
    ``h_{t-1}`` and ``c_{t-1}`` (as QKeras's ``QLSTMCell``); as ``c`` is
    unbounded, a quantizer with outputs in [-1, 1] is refused.

    ``unit_forget_bias`` keeps Keras's meaning and default (True), and is
    passed on as given (QKeras forces it to True).

    Args:
        units: as `keras.layers.LSTMCell`, as are the arguments up to
            ``seed``; the constraints also accept ``"weight_clip"``.
        input_quantizer, kernel_quantizer, recurrent_quantizer, bias_quantizer, state_quantizer:
            as `QuantSimpleRNNCell`.
        gate_quantizer: quantizer of the input, forget and output gates.
        candidate_quantizer: quantizer of the candidate ``g``.
        **kwargs: every other argument of the Keras cell.

    Example:
    >>> cell = tfqnn.layers.QuantLSTMCell(
    ...     32, kernel_quantizer="scaled_sign", recurrent_quantizer="scaled_sign",
    ...     kernel_constraint="weight_clip", recurrent_constraint="weight_clip")
    """

    _activation_quantizers = ("gate_quantizer", "candidate_quantizer")
    _quantizes_carry = True

    def __init__(
        self,
        units: int,
        activation: Activation = "tanh",
        recurrent_activation: Activation = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        recurrent_initializer: Initializer = "orthogonal",
        bias_initializer: Initializer = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Regularizer = None,
        recurrent_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        kernel_constraint: Constraint = None,
        recurrent_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
        recurrent_quantizer: QuantizerLike = None,
        bias_quantizer: QuantizerLike = None,
        state_quantizer: QuantizerLike = None,
        gate_quantizer: QuantizerLike = None,
        candidate_quantizer: QuantizerLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            units=units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            recurrent_quantizer=recurrent_quantizer,
            bias_quantizer=bias_quantizer,
            state_quantizer=state_quantizer,
            activation_quantizers={
                "gate_quantizer": gate_quantizer,
                "candidate_quantizer": candidate_quantizer,
            },
            **kwargs,
        )

    def call(self, inputs: Any, states: Any, training: bool | None = False) -> Any:
        h_tm1, c_tm1 = states[0], states[1]
        dp_mask, rec_mask = _masks(self, inputs, h_tm1, training)
        x = self.dropped(self.quantized_input(inputs, training), dp_mask, training, 4)
        h = self.dropped(self.quantized_state(h_tm1, training), rec_mask, training, 4)
        c_tm1 = self.quantized_state(c_tm1, training)
        kernel, recurrent_kernel, bias = self.quantized_weights(training)
        z = [a + b for a, b in zip(_products(x, kernel, 4), _products(h, recurrent_kernel, 4))]
        if bias is not None:
            z = [zk + bk for zk, bk in zip(z, ops.split(bias, 4, axis=-1))]
        i, f, o = (
            self.quantized_activation("gate_quantizer", self.recurrent_activation, zk, training)
            for zk in (z[0], z[1], z[3])
        )
        g = self.quantized_activation("candidate_quantizer", self.activation, z[2], training)
        c = f * c_tm1 + i * g
        h_t = o * self.activation(c)
        return h_t, [h_t, c]


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantGRUCell(RecurrentQuantizerMixin, keras.layers.GRUCell):
    """`keras.layers.GRUCell` with quantized inputs, weights, state and gates.

    With ``x = q_x(x_t)``, ``h = q_s(h_{t-1})``, ``W = q_W(W)``,
    ``U = q_U(U)`` and the bias ``q_b(b)`` split into ``b_x`` and ``b_h``
    (``reset_after=True``: its two rows; else ``b_x = b``, ``b_h = 0``), the
    blocks ``z, r, h`` of the last axis in Keras's order:
    ``z = q_g(recurrent_activation(x W_z + b_xz + h U_z + b_hz))``, ``r``
    likewise, the candidate
    ``n = q_c(activation(x W_h + b_xh + r (h U_h + b_hh)))`` with
    ``reset_after=True``, or ``q_c(activation(x W_h + b_xh + (r h) U_h))``,
    and ``h_t = z h + (1 - z) n``.

    The recurrent matrix is always ``U``, quantized or not (QKeras's
    ``QGRUCell`` uses ``W`` when it has no recurrent quantizer).

    Args:
        units: as `keras.layers.GRUCell`, as are the arguments up to
            ``seed``; the constraints also accept ``"weight_clip"``.
        input_quantizer, kernel_quantizer, recurrent_quantizer, bias_quantizer, state_quantizer:
            as `QuantSimpleRNNCell`.
        gate_quantizer: quantizer of the update and reset gates.
        candidate_quantizer: quantizer of the candidate ``n``.
        **kwargs: every other argument of the Keras cell.
    """

    _activation_quantizers = ("gate_quantizer", "candidate_quantizer")

    def __init__(
        self,
        units: int,
        activation: Activation = "tanh",
        recurrent_activation: Activation = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        recurrent_initializer: Initializer = "orthogonal",
        bias_initializer: Initializer = "zeros",
        kernel_regularizer: Regularizer = None,
        recurrent_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        kernel_constraint: Constraint = None,
        recurrent_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        reset_after: bool = True,
        seed: int | None = None,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
        recurrent_quantizer: QuantizerLike = None,
        bias_quantizer: QuantizerLike = None,
        state_quantizer: QuantizerLike = None,
        gate_quantizer: QuantizerLike = None,
        candidate_quantizer: QuantizerLike = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            units=units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            recurrent_quantizer=recurrent_quantizer,
            bias_quantizer=bias_quantizer,
            state_quantizer=state_quantizer,
            activation_quantizers={
                "gate_quantizer": gate_quantizer,
                "candidate_quantizer": candidate_quantizer,
            },
            **kwargs,
        )

    def call(self, inputs: Any, states: Any, training: bool | None = False) -> Any:
        nested = isinstance(states, (list, tuple))
        h_tm1 = states[0] if nested else states
        dp_mask, rec_mask = _masks(self, inputs, h_tm1, training)
        h_tm1 = self.quantized_state(h_tm1, training)
        x = self.dropped(self.quantized_input(inputs, training), dp_mask, training, 3)
        h = self.dropped(h_tm1, rec_mask, training, 3)
        kernel, recurrent_kernel, bias = self.quantized_weights(training)
        x_z, x_r, x_h = _products(x, kernel, 3)
        b_x = b_h = None
        if bias is not None and self.reset_after:
            b_x, b_h = bias[0], bias[1]
        elif bias is not None:
            b_x = bias
        if b_x is not None:
            x_z, x_r, x_h = (a + b for a, b in zip((x_z, x_r, x_h), ops.split(b_x, 3, axis=-1)))
        u_z, u_r, u_h = ops.split(recurrent_kernel, 3, axis=-1)
        if self.reset_after:
            rec_z, rec_r, rec_h = _products(h, recurrent_kernel, 3)
            if b_h is not None:
                rec_z, rec_r, rec_h = (
                    a + b for a, b in zip((rec_z, rec_r, rec_h), ops.split(b_h, 3, axis=-1))
                )
        else:
            rec_z, rec_r = _products(h[:2], ops.concatenate([u_z, u_r], axis=-1), 2)
        z = self.quantized_activation(
            "gate_quantizer", self.recurrent_activation, x_z + rec_z, training
        )
        r = self.quantized_activation(
            "gate_quantizer", self.recurrent_activation, x_r + rec_r, training
        )
        candidate = x_h + r * rec_h if self.reset_after else x_h + ops.matmul(r * h[2], u_h)
        n = self.quantized_activation("candidate_quantizer", self.activation, candidate, training)
        h_t = z * h_tm1 + (1.0 - z) * n
        return h_t, [h_t] if nested else h_t


class QuantRNN(keras.layers.RNN):
    """`keras.layers.RNN` around one tfqnn cell whose arguments it takes as its own.

    The base of `QuantSimpleRNN`, `QuantLSTM` and `QuantGRU`, as Keras's
    ``SimpleRNN``, ``LSTM`` and ``GRU`` are of ``RNN``, but without their
    fused kernels: each step calls the cell, which reads ``W``, ``U`` and
    ``b`` quantized once for the sequence (`weights_quantized_once`). The
    config is the RNN's arguments and the cell's, flat.
    """

    def __init__(
        self,
        cell: RecurrentQuantizerMixin,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        activity_regularizer: Regularizer = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    @staticmethod
    def cell_arguments(kwargs: dict[str, Any], name: str) -> dict[str, Any]:
        """The Keras arguments that a layer hands its cell, as Keras's layers do."""
        return {
            "dtype": kwargs.get("dtype"),
            "trainable": kwargs.get("trainable", True),
            "name": name,
        }

    @property
    def units(self) -> int:
        return int(self.cell.units)

    @property
    def quantizers(self) -> dict[str, Quantizer | None]:
        """The cell's quantizers by argument name."""
        return dict(self.cell.quantizers)

    def inner_loop(
        self, sequences: Any, initial_state: Any, mask: Any, training: bool | None = False
    ) -> Any:
        with self.cell.weights_quantized_once(training):
            return super().inner_loop(sequences, initial_state, mask, training=training)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QuantRNN:
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantSimpleRNN(QuantRNN):
    """`keras.layers.SimpleRNN` with quantized inputs, weights and state.

    A `keras.layers.RNN` of a `QuantSimpleRNNCell` (the math and the
    quantizer arguments are there). ``return_sequences``, ``return_state``,
    ``go_backwards``, ``stateful``, ``unroll``, masks and initial states
    behave as in Keras.

    Example:
    >>> layer = tfqnn.layers.QuantSimpleRNN(
    ...     32, kernel_quantizer="ste_tern", recurrent_quantizer="ste_tern")
    """

    def __init__(
        self,
        units: int,
        activation: Activation = "tanh",
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        recurrent_initializer: Initializer = "orthogonal",
        bias_initializer: Initializer = "zeros",
        kernel_regularizer: Regularizer = None,
        recurrent_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        activity_regularizer: Regularizer = None,
        kernel_constraint: Constraint = None,
        recurrent_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
        recurrent_quantizer: QuantizerLike = None,
        bias_quantizer: QuantizerLike = None,
        state_quantizer: QuantizerLike = None,
        **kwargs: Any,
    ) -> None:
        cell = QuantSimpleRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            recurrent_quantizer=recurrent_quantizer,
            bias_quantizer=bias_quantizer,
            state_quantizer=state_quantizer,
            **self.cell_arguments(kwargs, "quant_simple_rnn_cell"),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantLSTM(QuantRNN):
    """`keras.layers.LSTM` with quantized inputs, weights, states and gates.

    A `keras.layers.RNN` of a `QuantLSTMCell` (the math and the quantizer
    arguments are there). It has Keras's ``LSTM`` arguments but
    ``use_cudnn``: it never runs the fused kernel, which would read the
    latent float weights.

    Example:
    >>> layer = tfqnn.layers.QuantLSTM(
    ...     64, return_sequences=True,
    ...     kernel_quantizer="scaled_sign", recurrent_quantizer="scaled_sign",
    ...     kernel_constraint="weight_clip", recurrent_constraint="weight_clip")
    """

    def __init__(
        self,
        units: int,
        activation: Activation = "tanh",
        recurrent_activation: Activation = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        recurrent_initializer: Initializer = "orthogonal",
        bias_initializer: Initializer = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: Regularizer = None,
        recurrent_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        activity_regularizer: Regularizer = None,
        kernel_constraint: Constraint = None,
        recurrent_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
        recurrent_quantizer: QuantizerLike = None,
        bias_quantizer: QuantizerLike = None,
        state_quantizer: QuantizerLike = None,
        gate_quantizer: QuantizerLike = None,
        candidate_quantizer: QuantizerLike = None,
        **kwargs: Any,
    ) -> None:
        cell = QuantLSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            recurrent_quantizer=recurrent_quantizer,
            bias_quantizer=bias_quantizer,
            state_quantizer=state_quantizer,
            gate_quantizer=gate_quantizer,
            candidate_quantizer=candidate_quantizer,
            **self.cell_arguments(kwargs, "quant_lstm_cell"),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantGRU(QuantRNN):
    """`keras.layers.GRU` with quantized inputs, weights, state and gates.

    A `keras.layers.RNN` of a `QuantGRUCell` (the math and the quantizer
    arguments are there). It has Keras's ``GRU`` arguments but
    ``use_cudnn``: it never runs the fused kernel.

    Example:
    >>> layer = tfqnn.layers.QuantGRU(
    ...     64, kernel_quantizer="ste_tern", recurrent_quantizer="ste_tern")
    """

    def __init__(
        self,
        units: int,
        activation: Activation = "tanh",
        recurrent_activation: Activation = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        recurrent_initializer: Initializer = "orthogonal",
        bias_initializer: Initializer = "zeros",
        kernel_regularizer: Regularizer = None,
        recurrent_regularizer: Regularizer = None,
        bias_regularizer: Regularizer = None,
        activity_regularizer: Regularizer = None,
        kernel_constraint: Constraint = None,
        recurrent_constraint: Constraint = None,
        bias_constraint: Constraint = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        reset_after: bool = True,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
        recurrent_quantizer: QuantizerLike = None,
        bias_quantizer: QuantizerLike = None,
        state_quantizer: QuantizerLike = None,
        gate_quantizer: QuantizerLike = None,
        candidate_quantizer: QuantizerLike = None,
        **kwargs: Any,
    ) -> None:
        cell = QuantGRUCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            recurrent_quantizer=recurrent_quantizer,
            bias_quantizer=bias_quantizer,
            state_quantizer=state_quantizer,
            gate_quantizer=gate_quantizer,
            candidate_quantizer=candidate_quantizer,
            **self.cell_arguments(kwargs, "quant_gru_cell"),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
