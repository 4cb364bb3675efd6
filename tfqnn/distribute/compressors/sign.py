"""Sign compressors: `SignSGD` (Bernstein et al., 2018-2019) and `EFSign` (Karimireddy et al., 2019)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute import packing
from tfqnn.distribute.compressors.base import Compressor, Payload


@keras.saving.register_keras_serializable(package="tfqnn")
class SignSGD(Compressor):
    """Every worker sends ``sign(g)``; the aggregate is the majority vote.

    Each worker sends one bit per element (``g_i < 0``), as a field wide
    enough to count the negative votes of all ``P`` workers, so one integer
    all-reduce gives the count ``c`` and the vote is ``sign(P - 2c)``
    (0 on a tie; Bernstein, Zhao, Azizzadenesheli and Anandkumar, "signSGD
    with majority vote is communication efficient and fault tolerant",
    ICLR 2019). With ``majority_vote=False`` the aggregate is the mean sign
    ``(P - 2c) / P`` (signSGD, Bernstein et al., ICML 2018). Either way the
    gradient's magnitude is gone: the learning rate sets the step, and the
    method wants momentum (Signum) and large batches.

    Args:
        majority_vote: aggregate by the sign of the vote, or by the mean sign.

    >>> round(SignSGD().bits_per_element(num_workers=4), 2)  # 1.5 * 32/10
    4.8
    """

    collective = "all_reduce"

    def __init__(self, majority_vote: bool = True) -> None:
        self.majority_vote = _validation.check_bool("majority_vote", majority_vote)

    def compress(
        self,
        gradient: tf.Tensor,
        *,
        statistics: tf.Tensor | None = None,
        num_workers: int = 1,
        seed: tf.Tensor | None = None,
    ) -> Payload:
        negative = tf.cast(self._flat(gradient) < 0, tf.int32)
        return Payload(
            words=packing.pack_summable(negative, 0, 1, num_workers),
            scales=tf.zeros([0], tf.float32),
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
        )

    def decompress(self, payload: Payload) -> tf.Tensor:
        votes = payload.count - 2.0 * self._summed_integers(payload, 0, 1)
        flat = tf.sign(votes) if self.majority_vote else votes / payload.count
        return self._restore(flat, payload)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        return packing.summable_bits(tf.TensorShape(shape).num_elements(), 1, num_workers)

    def get_config(self) -> dict[str, Any]:
        return {"majority_vote": self.majority_vote}


@keras.saving.register_keras_serializable(package="tfqnn")
class EFSign(Compressor):
    """Scaled sign with error feedback (Karimireddy, Rebjock, Stich and Jaggi, ICML 2019).

    With ``p = g + e`` of ``d`` elements: ``C(p) = (||p||_1 / d) * sign(p)``
    and ``e <- p - C(p)``. The scale keeps the step's size, error feedback the
    direction's history: it fixes signSGD's divergence and matches SGD's
    convergence rate. One bit per element and one float per tensor,
    all-gathered.

    >>> round(EFSign().bits_per_element(num_workers=4), 3)  # 3 * (1 + 32 / 2**20)
    3.0
    """

    error_feedback = True

    def compress(
        self,
        gradient: tf.Tensor,
        *,
        statistics: tf.Tensor | None = None,
        num_workers: int = 1,
        seed: tf.Tensor | None = None,
    ) -> Payload:
        flat = self._flat(gradient)
        return Payload(
            words=packing.pack_bits(flat < 0),
            scales=tf.reshape(tf.reduce_mean(tf.abs(flat)), [1]),
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
        )

    def decompress(self, payload: Payload) -> tf.Tensor:
        negative = packing.unpack_bits(payload.words, payload.shape.num_elements())
        flat = payload.scales[0] * (1.0 - 2.0 * tf.cast(negative, tf.float32))
        return self._restore(flat, payload)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        return 32 * packing.num_words(tf.TensorShape(shape).num_elements()) + 32
