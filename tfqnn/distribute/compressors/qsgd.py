"""`QSGD`: stochastic quantisation to ``s`` levels (Alistarh et al., NeurIPS 2017)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute import packing
from tfqnn.distribute.compressors.base import Compressor, Payload, bucketed, num_buckets


@keras.saving.register_keras_serializable(package="tfqnn")
class QSGD(Compressor):
    """Unbiased stochastic quantisation of each bucket to ``levels`` levels.

    For a bucket ``v`` with norm ``r = ||v||_2`` and ``s = levels``:
    ``Q(v_i) = r * sign(v_i) * xi_i / s`` where, with ``l = floor(s |v_i| / r)``,
    ``xi_i = l + 1`` with probability ``s |v_i| / r - l`` and ``l`` otherwise.
    ``E[Q(v)] = v`` and ``E||Q(v) - v||^2 <= min(n / s^2, sqrt(n) / s) ||v||^2``
    (Alistarh, Grubic, Li, Tomioka and Vojnovic 2017, Lemma 3.1).

    Across workers the bucket norms are shared first (the maximum over the
    workers, which keeps the quantiser unbiased since it bounds every
    ``|v_i|``), so the integers ``sign * xi`` in ``[-s, s]`` are summable:
    fields of ``ceil(log2(2 s P + 1))`` bits, one integer all-reduce. The
    paper's Elias coding is smaller but not summable.

    Args:
        levels: ``s``, the number of levels above zero (>= 1).
        bucket_size: elements that share a norm.

    >>> round(QSGD().bits_per_element(num_workers=4), 2)  # 1.5 * 32/5 + 3 * 32/512
    9.79
    """

    collective = "all_reduce"
    unbiased = True
    stochastic = True

    def __init__(self, levels: int = 4, bucket_size: int = 512) -> None:
        self.levels = _validation.check_int("levels", levels, low=1, high=2**20)
        self.bucket_size = _validation.check_int("bucket_size", bucket_size, low=1)

    def local_statistics(self, gradient: tf.Tensor) -> tf.Tensor:
        values, _ = bucketed(self._flat(gradient), self.bucket_size)
        return tf.norm(values, axis=1)

    def num_statistics(self, shape: Any) -> int:
        return num_buckets(tf.TensorShape(shape).num_elements(), self.bucket_size)

    def compress(
        self,
        gradient: tf.Tensor,
        *,
        statistics: tf.Tensor | None = None,
        num_workers: int = 1,
        seed: tf.Tensor | None = None,
    ) -> Payload:
        if statistics is None:
            statistics = self.local_statistics(gradient)
        flat = self._flat(gradient)
        values, _ = bucketed(flat, self.bucket_size)
        s = float(self.levels)
        scaled = tf.math.divide_no_nan(s * tf.abs(values), statistics[:, None])
        lower = tf.floor(scaled)
        xi = lower + tf.cast(self._uniform(tf.shape(scaled), seed) < scaled - lower, tf.float32)
        xi = tf.minimum(xi, s)  # rounding can put s |v_i| / r a hair above s
        integers = tf.cast(tf.reshape(tf.sign(values) * xi, [-1])[: flat.shape[0]], tf.int32)
        words = packing.pack_summable(integers, self.levels, 2 * self.levels, num_workers)
        return Payload(
            words=words,
            scales=statistics,
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
        )

    def decompress(self, payload: Payload) -> tf.Tensor:
        integers = self._summed_integers(payload, self.levels, 2 * self.levels)
        values, _ = bucketed(integers, self.bucket_size)
        flat = values * payload.scales[:, None] / float(self.levels)
        return self._restore(tf.reshape(flat, [-1])[: payload.shape.num_elements()], payload)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        n = tf.TensorShape(shape).num_elements()
        return packing.summable_bits(n, 2 * self.levels, num_workers)

    def get_config(self) -> dict[str, Any]:
        return {"levels": self.levels, "bucket_size": self.bucket_size}
