"""XNOR-Net's weight binarization as larq-zoo trains it: clipped, scaled, the scale differentiated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tfqnn.quantizers.base import Quantizer, clipped_ste
from tfqnn.quantizers.binary import _normalize_axis, reduction_axes, sign


@keras.saving.register_keras_serializable(package="tfqnn")
class ClippedScaledSign(Quantizer):
    """Sign times the mean magnitude of the weights clipped to [-1, 1], per output channel.

    Forward: with ``c = clip(x, -1, 1)`` and ``alpha = mean(|c|)`` over every
    axis except ``axis`` (the output-channel axis; the layers set it as for
    `ScaledSign`), ``alpha * sign(x)`` (sign(0) = +1).
    Backward: the derivative of ``alpha * s`` with ``s = sign(c)`` passed
    straight through (``ds/dc = 1[|c| <= 1]``) and ``alpha`` differentiated,
    through the clip: ``dx_i = 1[|x_i| <= 1] (alpha dy_i + sign0(c_i) / N
    sum_j dy_j s_j)`` over the ``N`` weights of a channel, ``sign0(0) = 0``.
    `ScaledSign` holds ``alpha`` constant and does not clip.

    This is larq-zoo's ``xnor_weight_scale``, the kernel quantizer of its
    XNORNet. Rastegari et al. 2016, "XNOR-Net" (arXiv:1603.05279).
    """

    precision = 1

    def __init__(self, axis: int | Sequence[int] = -1):
        self.axis = _normalize_axis(axis)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        c = tf.clip_by_value(x, -1.0, 1.0)
        alpha = tf.reduce_mean(
            tf.abs(c), axis=reduction_axes(x.shape.rank, self.axis), keepdims=True
        )
        return alpha * clipped_ste(c, sign(c), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {"axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}
