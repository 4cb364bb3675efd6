"""`TernGrad`: stochastic ternary gradients with a shared scaler (Wen et al., NeurIPS 2017)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute import packing
from tfqnn.distribute.compressors.base import Compressor, Payload


@keras.saving.register_keras_serializable(package="tfqnn")
class TernGrad(Compressor):
    """Each element becomes ``s * sign(g_i) * b_i`` with ``b_i ~ Bernoulli(|g_i| / s)``.

    ``s`` is the scaler: the largest ``|g_i|`` of the tensor, and across
    workers the largest over all of them ("scaler sharing", Wen, Xu, Yan,
    Wu, Wang, Chen and Li 2017, section 3.1), shared before quantising. With
    one ``s``, the ternary integers of all workers add: fields of
    ``ceil(log2(2P + 1))`` bits, one integer all-reduce, and the aggregate
    is ``s * sum(q)``. ``E[s * sign(g) * b] = g``.

    Gradient clipping (section 3.3) first limits each element to
    ``clip_sigma`` standard deviations of its tensor, which shrinks ``s``
    and the variance; the result is then unbiased for the clipped gradient.

    Args:
        clip_sigma: clipping at that many standard deviations, or None.

    >>> round(TernGrad().bits_per_element(num_workers=4), 2)  # 1.5 * 32/7
    6.86
    """

    collective = "all_reduce"
    stochastic = True

    def __init__(self, clip_sigma: float | None = 2.5) -> None:
        self.clip_sigma = _validation.check_number(
            "clip_sigma", clip_sigma, positive=True, allow_none=True
        )

    @property
    def unbiased(self) -> bool:  # type: ignore[override]
        return self.clip_sigma is None

    def clip(self, gradient: tf.Tensor) -> tf.Tensor:
        """The gradient clipped to ``clip_sigma`` standard deviations (float32, flat)."""
        flat = self._flat(gradient)
        if self.clip_sigma is None:
            return flat
        bound = self.clip_sigma * tf.math.reduce_std(flat)
        return tf.clip_by_value(flat, -bound, bound)

    def local_statistics(self, gradient: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.reduce_max(tf.abs(self.clip(gradient))), [1])

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
        flat = self.clip(gradient)
        if statistics is None:
            statistics = self.local_statistics(gradient)
        probability = tf.math.divide_no_nan(tf.abs(flat), statistics[0])
        keep = self._uniform(tf.shape(flat), seed) < probability
        integers = tf.cast(tf.sign(flat), tf.int32) * tf.cast(keep, tf.int32)
        return Payload(
            words=packing.pack_summable(integers, 1, 2, num_workers),
            scales=statistics,
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
        )

    def decompress(self, payload: Payload) -> tf.Tensor:
        return self._restore(self._summed_integers(payload, 1, 2) * payload.scales[0], payload)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        return packing.summable_bits(tf.TensorShape(shape).num_elements(), 2, num_workers)

    def get_config(self) -> dict[str, Any]:
        return {"clip_sigma": self.clip_sigma}
