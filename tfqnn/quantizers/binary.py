"""Binary quantizers: values in {-1, +1} (optionally scaled), with sign(0) = +1."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import (
    Quantizer,
    StochasticQuantizer,
    cast_like,
    clipped_ste,
    straight_through,
)


def sign(x: tf.Tensor) -> tf.Tensor:
    """+1 where x >= 0, else -1, in the dtype of ``x`` (so sign(0) = +1)."""
    return tf.where(x >= 0, tf.ones((), x.dtype), -tf.ones((), x.dtype))


@keras.saving.register_keras_serializable(package="tfqnn")
class SteSign(Quantizer):
    """Sign with the clipped straight-through estimator.

    Forward: ``+1 if x >= 0 else -1``.
    Backward: ``dy * 1[|x| <= clip_value]``; with ``clip_value=None`` the
    gradient passes unchanged.

    Courbariaux et al. 2016, "Binarized Neural Networks" (arXiv:1602.02830),
    after Hinton's straight-through estimator.

    Example:
    >>> tfqnn.quantizers.SteSign()([-0.5, 0.0, 2.0]).numpy()
    array([-1.,  1.,  1.], dtype=float32)
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0):
        self.clip_value = _validation.check_number(
            "clip_value", clip_value, positive=True, allow_none=True
        )

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(-1, 1)``: the two signs."""
        return -1.0, 1.0

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return clipped_ste(x, sign(x), self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


@keras.saving.register_keras_serializable(package="tfqnn")
class ApproxSign(Quantizer):
    """Sign with the piecewise-polynomial gradient of Bi-Real Net.

    Forward: ``+1 if x >= 0 else -1``.
    Backward: ``dy * (2 - 2|x|) * 1[|x| <= 1]``, the derivative of the
    quadratic approximation of sign.

    Liu et al. 2018, "Bi-Real Net" (arXiv:1808.00278).
    """

    precision = 1

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(-1, 1)``: the two signs."""
        return -1.0, 1.0

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        @tf.custom_gradient
        def approx_sign(x: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
            return sign(x), lambda dy: dy * tf.nn.relu(2.0 - 2.0 * tf.abs(x))

        return approx_sign(x)


def _normalize_axis(axis: int | Sequence[int]) -> int | tuple[int, ...]:
    if isinstance(axis, (list, tuple)):
        axes = tuple(_validation.check_int("axis", a) for a in axis)
        if not axes:
            raise ValueError(
                "Invalid axis=(): expected an integer or a non-empty tuple of integers."
            )
        return axes
    try:
        return _validation.check_int("axis", axis)
    except ValueError:
        raise ValueError(
            f"Invalid axis={axis!r}: expected an integer or a tuple of integers."
        ) from None


def reduction_axes(rank: int | None, axis: int | tuple[int, ...]) -> list[int]:
    """The axes of a rank-``rank`` tensor other than ``axis`` (an int or tuple)."""
    if rank is None:
        raise ValueError("ScaledSign needs a tensor of known rank to find its axis.")
    keep = axis if isinstance(axis, tuple) else (axis,)
    kept = set()
    for a in keep:
        if not -rank <= a < rank:
            raise ValueError(
                f"Invalid axis={axis!r} for a tensor of rank {rank}: "
                f"expected values from {-rank} to {rank - 1}."
            )
        kept.add(a % rank)
    return [i for i in range(rank) if i not in kept]


@keras.saving.register_keras_serializable(package="tfqnn")
class ScaledSign(Quantizer):
    """Sign scaled by the mean magnitude of each output channel (XNOR-Net).

    Forward: ``alpha * sign(x)`` with ``alpha = mean(|x|)`` over every axis
    except ``axis`` (the output-channel axis of a kernel: -1 for Dense and
    Conv kernels; the layers pass -2 for transposed convolutions and (-2, -1)
    for depthwise kernels). ``alpha`` is not differentiated.
    Backward: ``dy``.

    Rastegari et al. 2016, "XNOR-Net" (arXiv:1603.05279).
    """

    precision = 1

    def __init__(self, axis: int | Sequence[int] = -1):
        self.axis = _normalize_axis(axis)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        axes = reduction_axes(x.shape.rank, self.axis)

        alpha = tf.reduce_mean(tf.abs(x), axis=axes, keepdims=True)
        return straight_through(x, alpha * sign(x))

    def get_config(self) -> dict[str, Any]:
        return {"axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


@keras.saving.register_keras_serializable(package="tfqnn")
class StochasticSign(StochasticQuantizer):
    """Stochastic binarization of BinaryConnect.

    Forward (training): ``+1`` with probability ``hard_sigmoid(x) =
    clip((x + 1) / 2, 0, 1)``, else ``-1``; its mean is ``clip(x, -1, 1)``.
    At inference (``training=False``): ``sign(x)``.
    Backward: ``dy * 1[|x| <= 1]``.

    Courbariaux et al. 2015, "BinaryConnect" (arXiv:1511.00363).
    """

    precision = 1

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(-1, 1)``: the two signs."""
        return -1.0, 1.0

    def sample(self, x: tf.Tensor) -> tf.Tensor:
        p = tf.clip_by_value((x + 1.0) / 2.0, 0.0, 1.0)
        y = 2.0 * cast_like(self.uniform(x) < p, x) - 1.0
        return clipped_ste(x, y, 1.0)

    def round_nearest(self, x: tf.Tensor) -> tf.Tensor:
        return clipped_ste(x, sign(x), 1.0)
