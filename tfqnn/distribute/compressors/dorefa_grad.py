"""`DoReFaGrad`: k-bit stochastic gradients on a shared range (Zhou et al., 2016)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute import packing
from tfqnn.distribute.compressors.base import Compressor, Payload


@keras.saving.register_keras_serializable(package="tfqnn")
class DoReFaGrad(Compressor):
    """DoReFa-Net's gradient quantiser, on the wire.

    With ``m = max|g|`` (the largest over all workers, shared first) and
    ``L = 2^k - 1`` levels: ``q = floor(L * (g / 2m + 1/2) + u)``,
    ``u ~ U[0, 1)``, an integer in ``[0, L]``, and ``D(q) = 2m (q / L - 1/2)``.
    This is the paper's ``2m [quant_k(g / 2m + 1/2 + N(k)) - 1/2]`` with its
    noise ``N(k) = sigma / L``, ``sigma ~ U(-1/2, 1/2)`` (Zhou, Wu, Ni, Zhou,
    Wen and Zou, "DoReFa-Net", 2016, section 2.4): stochastic rounding, so
    ``E[D(q)] = g``. The integers add across workers in fields of
    ``ceil(log2(L P + 1))`` bits.

    Args:
        bits: ``k``, from 1 to 16.

    >>> round(DoReFaGrad(4).bits_per_element(num_workers=4), 2)  # 1.5 * 32/5
    9.6
    """

    collective = "all_reduce"
    unbiased = True
    stochastic = True

    def __init__(self, bits: int = 4) -> None:
        self.bits = _validation.check_int("bits", bits, low=1, high=16)

    @property
    def levels(self) -> int:
        return 2**self.bits - 1

    def local_statistics(self, gradient: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.reduce_max(tf.abs(self._flat(gradient))), [1])

    def num_statistics(self, shape: Any) -> int:
        return 1

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
        unit = tf.math.divide_no_nan(flat, 2.0 * statistics[0]) + 0.5
        q = tf.floor(unit * self.levels + self._uniform(tf.shape(flat), seed))
        integers = tf.cast(tf.clip_by_value(q, 0.0, self.levels), tf.int32)
        return Payload(
            words=packing.pack_summable(integers, 0, self.levels, num_workers),
            scales=statistics,
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
        )

    def decompress(self, payload: Payload) -> tf.Tensor:
        q = self._summed_integers(payload, 0, self.levels)
        m = payload.scales[0]
        return self._restore(2.0 * m * (q / self.levels - 0.5 * payload.count), payload)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        return packing.summable_bits(tf.TensorShape(shape).num_elements(), self.levels, num_workers)

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits}
