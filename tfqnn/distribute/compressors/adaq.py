"""`AdaQ`: adaptive quantisation with error feedback (Dryden et al., MLHPC 2016)."""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute.compressors import sparse
from tfqnn.distribute.compressors.base import Compressor, Payload


@keras.saving.register_keras_serializable(package="tfqnn")
class AdaQ(Compressor):
    """The largest ``fraction`` of each sign, sent as indices and one mean per sign.

    With ``p = g + e``, the ``k = ceil(fraction * n / 2)`` largest positive
    elements of ``p`` are sent as their indices and decoded as their mean
    ``a+``; likewise the ``k`` most negative ones with their mean ``a-``.
    The residual keeps everything else and the error of the means (Dryden,
    Moon, Jacobs and Van Essen, "Communication quantization for
    data-parallel training of deep neural networks", 2016). Unlike a fixed
    threshold, the proportion sent adapts the threshold to each gradient.

    Payload: ``2 k`` words (-1 in slots a sign has no element for) and two
    float scales; all-gathered.

    Args:
        fraction: the proportion of elements sent, in (0, 1].

    >>> round(AdaQ(fraction=0.01).bits_per_element(num_workers=4), 3)  # 3 * 32 * 0.01
    0.96
    """

    error_feedback = True

    def __init__(self, fraction: float = 0.01) -> None:
        self.fraction = _validation.check_number("fraction", fraction, positive=True)
        if self.fraction > 1:
            raise ValueError(f"Invalid fraction={fraction!r}: expected a number in (0, 1].")

    def slots_per_sign(self, num_elements: int) -> int:
        # round() first: products like 0.07 * 100 are a hair above the integer.
        return min(num_elements, max(1, math.ceil(round(self.fraction * num_elements / 2, 6))))

    def compress(
        self,
        gradient: tf.Tensor,
        *,
        statistics: tf.Tensor | None = None,
        num_workers: int = 1,
        seed: tf.Tensor | None = None,
    ) -> Payload:
        flat = self._flat(gradient)
        n = flat.shape[0]
        sparse.check_size(n, self)
        k = self.slots_per_sign(n)
        words, means = [], []
        for sign in (1.0, -1.0):
            magnitude, indices = sparse.largest(sign * flat, k)
            valid = magnitude > 0
            chosen = tf.cast(valid, tf.float32)
            means.append(
                tf.math.divide_no_nan(tf.reduce_sum(magnitude * chosen), tf.reduce_sum(chosen))
            )
            words.append(sparse.encode(indices, tf.fill([k], sign < 0), valid))
        return Payload(
            words=tf.concat(words, 0),
            scales=tf.stack(means),
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
        )

    def decompress(self, payload: Payload) -> tf.Tensor:
        k = payload.words.shape[0] // 2
        magnitudes = tf.repeat(payload.scales, [k, k])
        flat = sparse.decode(payload.words, magnitudes, payload.shape.num_elements())
        return self._restore(flat, payload)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        return 64 * self.slots_per_sign(tf.TensorShape(shape).num_elements()) + 64

    def get_config(self) -> dict[str, Any]:
        return {"fraction": self.fraction}
