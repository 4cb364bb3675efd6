"""`Float16`: the cast baseline (Horovod's ``Compression.fp16``)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfqnn.distribute.compressors.base import Compressor, Payload


@keras.saving.register_keras_serializable(package="tfqnn")
class Float16(Compressor):
    """Sends each gradient as float16 and all-reduces it in float16.

    ``C(g) = fp16(g)`` (round to nearest, 10-bit mantissa); the sum over the
    workers is taken in float16, then cast back. Magnitudes above 65504
    overflow to inf, which the exchange reports as a non-finite step.
    16 bits per element; a ring all-reduce sends ``2 (P-1)/P * 16`` per
    worker.

    >>> c = Float16()
    >>> c.bits_per_element(num_workers=4)
    24.0
    """

    collective = "linear"

    def compress(
        self,
        gradient: tf.Tensor,
        *,
        statistics: tf.Tensor | None = None,
        num_workers: int = 1,
        seed: tf.Tensor | None = None,
    ) -> Payload:
        return Payload(
            words=tf.zeros([0], tf.int32),
            scales=tf.zeros([0], tf.float32),
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
            values=tf.cast(self._flat(gradient), tf.float16),
        )

    def decompress(self, payload: Payload) -> tf.Tensor:
        return self._restore(tf.cast(payload.values, tf.float32), payload)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        return 16 * tf.TensorShape(shape).num_elements()
