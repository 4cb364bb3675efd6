"""Weights as sums of scaled binary bases: ABC-Net's and network sketching's.

Both approximate a kernel, per tensor or per output channel, by
``sum_i alpha_i B_i`` with ``B_i`` in {-1, +1}: M bits per weight plus M
scales per channel, computed as M binary ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import Quantizer, straight_through
from tfqnn.quantizers.binary import _normalize_axis, reduction_axes, sign

MAX_BASES = 8


def as_rows(
    x: tf.Tensor, axis: int | tuple[int, ...] | None
) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
    """``x`` as a (channels, values) matrix and the function that maps such a matrix back.

    One row per index of ``axis`` (the output-channel axis or axes), or a
    single row holding the whole tensor for ``axis=None``.
    """
    shape = tf.shape(x)
    if axis is None:
        return tf.reshape(x, [1, -1]), lambda rows: tf.reshape(rows, shape)
    rank = x.shape.rank
    reduced = reduction_axes(rank, axis)
    kept = [a for a in range(rank) if a not in reduced]
    perm = kept + reduced
    channels = tf.reduce_prod(tf.gather(shape, kept))
    rows = tf.reshape(tf.transpose(x, perm), tf.stack([channels, -1]))
    inverse = np.argsort(perm).tolist()

    def restore(rows: tf.Tensor) -> tf.Tensor:
        return tf.transpose(tf.reshape(rows, tf.gather(shape, perm)), inverse)

    return rows, restore


def least_squares_scales(bases: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """The scales ``alpha`` (channels, M) minimizing ``||rows - sum_i alpha_i bases_i||^2``
    in each row; ``bases`` is (M, channels, values).

    Solved from the normal equations ``(B^T B) alpha = B^T r``: the M x M
    Gram matrix of +-1 bases holds integers, exact in float32, and its
    pseudo-inverse (in float64) gives rank-deficient bases (two equal ones)
    the minimum-norm solution.
    """
    gram = tf.einsum("icn,jcn->cij", bases, bases)
    rhs = tf.einsum("icn,cn->ci", bases, rows)
    alpha = tf.einsum(
        "cij,cj->ci", tf.linalg.pinv(tf.cast(gram, tf.float64)), tf.cast(rhs, tf.float64)
    )
    return tf.cast(alpha, rows.dtype)


def combine(alpha: tf.Tensor, bases: tf.Tensor) -> tf.Tensor:
    """``sum_i alpha[:, i] * bases[i]``: (channels, M) and (M, channels, values) to rows."""
    return tf.einsum("ci,icn->cn", alpha, bases)


def decompose(
    terms: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]],
    x: tf.Tensor,
    axis: int | tuple[int, ...] | None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The binary bases of ``x`` and their scales, each of shape ``(M, *x.shape)``.

    ``terms`` maps the (channels, values) matrix of ``x`` (`as_rows`) to
    ``(alpha, bases)``; the result broadcasts ``alpha`` over each channel's
    values, so that the quantized ``x`` is ``sum_i scales[i] * bases[i]``
    (the bases +-1). The exporter writes one binary op per basis from it.
    """
    x = tf.convert_to_tensor(x)
    rows, restore = as_rows(x, axis)
    rows = tf.cast(rows, _compute_dtype(x.dtype))
    alpha, bases = terms(rows)
    count = int(bases.shape[0])
    scales = [alpha[:, i : i + 1] * tf.ones_like(rows) for i in range(count)]
    return (
        tf.stack([tf.cast(restore(s), x.dtype) for s in scales]),
        tf.stack([tf.cast(restore(bases[i]), x.dtype) for i in range(count)]),
    )


def _compute_dtype(dtype: tf.DType) -> tf.DType:
    # Least squares in float32 at least: half precision has no lstsq kernel.
    return tf.float64 if dtype == tf.float64 else tf.float32


def _check_axis(axis: Any) -> int | tuple[int, ...] | None:
    return None if axis is None else _normalize_axis(axis)


def _axis_config(axis: int | tuple[int, ...] | None) -> int | list[int] | None:
    return list(axis) if isinstance(axis, tuple) else axis


class _BinaryBases(Quantizer):
    """A sum of scaled binary bases fitted per channel; subclasses give ``_rows_terms``."""

    axis: int | tuple[int, ...] | None

    def _rows_terms(self, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(alpha, bases)`` of a (channels, values) matrix: (channels, M), (M, channels, values)."""
        raise NotImplementedError

    def decompose(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(scales, bases)`` with ``call(x) = sum_i scales[i] * bases[i]``, see `decompose`."""
        return decompose(self._rows_terms, x, self.axis)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        rows, restore = as_rows(x, self.axis)
        rows = tf.cast(rows, _compute_dtype(x.dtype))
        approximation = combine(*self._rows_terms(rows))
        return straight_through(x, restore(tf.cast(approximation, x.dtype)))


@keras.saving.register_keras_serializable(package="tfqnn")
class MultiBinary(_BinaryBases):
    """ABC-Net's weights: a least-squares sum of ``bases`` shifted binary tensors.

    Forward: with the mean ``m`` and standard deviation ``s`` of ``x`` and
    ``u_i`` spread evenly over [-1, 1] (``u_i = -1 + 2 (i-1) / (M-1)``; 0
    for ``M = 1``), ``B_i = sign(x - m + u_i s)`` (sign(0) = +1) and the
    scales ``alpha = argmin ||vec(x) - [vec(B_1) ... vec(B_M)] alpha||^2``
    solved on the current ``x``; the output is ``sum_i alpha_i B_i``. With
    ``axis=None`` ``m``, ``s`` and ``alpha`` are per tensor; with ``axis``
    (the output-channel axis, such as -1), per channel.
    Backward: ``dy`` (straight through).

    ``precision`` is ``bases``: one bit per basis, plus M scales per channel.

    Lin, Zhao and Pan 2017, "Towards Accurate Binary Convolutional Neural
    Network" (ABC-Net, arXiv:1711.11294).

    Args:
        bases: the number of binary bases M, 1 to 8.
        axis: None for statistics over the whole tensor, or the axis (or
            axes) whose channels get their own.
    """

    def __init__(self, bases: int = 3, axis: int | Sequence[int] | None = None):
        self.bases = _validation.check_int("bases", bases, 1, MAX_BASES)
        self.axis = _check_axis(axis)
        self.precision = self.bases

    def shifts(self) -> np.ndarray:
        """The ``u_i``, evenly spaced in [-1, 1] (0 for one basis)."""
        return np.linspace(-1.0, 1.0, self.bases) if self.bases > 1 else np.zeros(1)

    def _rows_terms(self, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(alpha, bases)`` of a (channels, values) matrix: (channels, M), (M, channels, values)."""
        mean = tf.reduce_mean(rows, axis=1, keepdims=True)
        std = tf.math.reduce_std(rows, axis=1, keepdims=True)
        bases = tf.stack([sign(rows - mean + float(u) * std) for u in self.shifts()])
        return least_squares_scales(bases, rows), bases

    def get_config(self) -> dict[str, Any]:
        return {"bases": self.bases, "axis": _axis_config(self.axis)}


@keras.saving.register_keras_serializable(package="tfqnn")
class ResidualSign(_BinaryBases):
    """Network sketching: each output filter as a sum of binary bases fitted to residuals.

    Forward, per output channel (``axis``, -1 for Dense and Conv kernels),
    with ``R_0 = x``: ``B_j = sign(R_{j-1})`` (sign(0) = +1), then

    - direct sketching (``refined=False``): ``alpha_j = mean|R_{j-1}|``
      (= <B_j, R_{j-1}> / t), ``R_j = R_{j-1} - alpha_j B_j``;
    - refined sketching (``refined=True``): after each ``B_j`` every
      ``alpha_1..alpha_j`` is solved again by least squares on ``x``,
      ``R_j = x - sum_i alpha_i B_i``.

    The output is ``sum_j alpha_j B_j``; both residuals shrink with every
    basis. Backward: ``dy`` (straight through).

    ``precision`` is ``bases``: one bit per basis, plus M scales per filter.

    Guo, Yao, Zhao and Chen 2017, "Network Sketching: Exploiting Binary
    Structure in Deep CNNs" (arXiv:1706.02021).

    Args:
        bases: the number of binary bases m, 1 to 8.
        refined: least-squares scales (refined) or residual means (direct).
        axis: the output-channel axis (or axes), or None to sketch the
            tensor as one filter.
    """

    def __init__(self, bases: int = 3, refined: bool = True, axis: int | Sequence[int] | None = -1):
        self.bases = _validation.check_int("bases", bases, 1, MAX_BASES)
        self.refined = _validation.check_bool("refined", refined)
        self.axis = _check_axis(axis)
        self.precision = self.bases

    def _rows_terms(self, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(alpha, bases)`` of a (channels, values) matrix: (channels, M), (M, channels, values)."""
        residual = rows
        bases: list[tf.Tensor] = []
        alphas: list[tf.Tensor] = []
        alpha = tf.zeros_like(rows[:, :0])
        for _ in range(self.bases):
            basis = sign(residual)
            bases.append(basis)
            if self.refined:
                stacked = tf.stack(bases)
                alpha = least_squares_scales(stacked, rows)
                approximation = combine(alpha, stacked)
            else:
                alphas.append(tf.reduce_mean(tf.abs(residual), axis=1))
                alpha = tf.stack(alphas, axis=1)
                approximation = combine(alpha, tf.stack(bases))
            residual = rows - approximation
        return alpha, tf.stack(bases)

    def get_config(self) -> dict[str, Any]:
        return {"bases": self.bases, "refined": self.refined, "axis": _axis_config(self.axis)}


@keras.saving.register_keras_serializable(package="tfqnn")
class MultiBinaryActivation(Quantizer):
    """ABC-Net's activations: a sum of ``bases`` binary activations with trainable
    shifts and scales.

    Forward: ``sum_n beta_n A_n`` with ``A_n = sign(clip(x + v_n, 0, 1) - 0.5)``
    (+1 where ``x + v_n >= 0.5``, else -1). Backward: through the clip and
    straight through the sign, so ``d/dx = sum_n beta_n 1[0 <= x + v_n <= 1]``,
    the shifts ``v_n`` get the same per-basis terms and the scales ``beta_n``
    the gradient of ``A_n``.

    The shifts and scales (one each per basis) are trainable weights of
    the tfqnn layer the quantizer serves (``input_quantizer`` of any tfqnn
    layer, or `tfqnn.layers.QuantActivation`), which creates them
    (`Quantizer.build_weights`), trains them in ``fit`` and saves them.
    They start at thresholds ``0.5 - v_n = n / (N + 1)`` spread over (0, 1)
    and ``beta_n = 1 / (2N)``, so that the sum starts as a staircase from
    -0.5 to 0.5. An instance belongs to one layer: pass an alias or config
    to several.

    ``precision`` is ``bases``: one bit per basis.

    Lin, Zhao and Pan 2017, "Towards Accurate Binary Convolutional Neural
    Network" (ABC-Net, arXiv:1711.11294).

    Args:
        bases: the number of binary activations N, 1 to 8.
    """

    def __init__(self, bases: int = 3):
        self.bases = _validation.check_int("bases", bases, 1, MAX_BASES)
        self.precision = self.bases
        self.shifts: Any = None
        self.scales: Any = None

    def build_weights(self, add_weight: Callable[..., Any], name: str) -> None:
        thresholds = np.arange(1, self.bases + 1) / (self.bases + 1)
        self.shifts = add_weight(
            shape=(self.bases,),
            initializer=keras.initializers.Constant(0.5 - thresholds),
            name=f"{name}_shifts",
        )
        self.scales = add_weight(
            shape=(self.bases,),
            initializer=keras.initializers.Constant(1.0 / (2 * self.bases)),
            name=f"{name}_scales",
        )

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.shifts is None:
            raise ValueError(
                f"{type(self).__name__} owns trainable shifts and scales, which a tfqnn layer "
                "creates: use it as a layer's input_quantizer or in tfqnn.layers.QuantActivation."
            )
        shifts = tf.cast(tf.convert_to_tensor(self.shifts), x.dtype)
        scales = tf.cast(tf.convert_to_tensor(self.scales), x.dtype)
        total = tf.zeros_like(x)
        for n in range(self.bases):
            clipped = tf.clip_by_value(x + shifts[n], 0.0, 1.0)
            total += scales[n] * straight_through(clipped, sign(clipped - 0.5))
        return total

    def get_config(self) -> dict[str, Any]:
        return {"bases": self.bases}
