"""`Threshold`: threshold quantisation with error feedback (Strom, Interspeech 2015)."""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute.compressors import sparse
from tfqnn.distribute.compressors.base import Compressor, Payload


@keras.saving.register_keras_serializable(package="tfqnn")
class Threshold(Compressor):
    """Sends ``+-tau`` where the residual-compensated gradient exceeds ``tau``.

    With ``p = g + e``: every element with ``|p_i| > tau`` is sent as its
    sign and index (one int32 word), decoded as ``sign(p_i) * tau``, and the
    residual keeps the rest, ``e_i <- p_i - sign(p_i) * tau`` (Strom 2015).
    ``tau`` is absolute, and Keras scales each worker's loss by ``1 / P``, so
    it sees gradients ``P`` times smaller than on one worker.

    Collectives need fixed sizes: a payload has ``ceil(max_density * n)``
    slots. When more elements exceed ``tau``, the largest of them are sent
    and the others wait in the residual; unused slots cost their word too.
    All-gathered.

    Args:
        tau: the threshold, > 0.
        max_density: the fraction of elements a payload can carry, in (0, 1].

    The defaults suit gradients of about 1e-3 per element (an MLP on
    digits): with ``max_density`` of the elements sent, ``tau`` must be about
    ``mean|g| / max_density`` for the residual not to grow.

    >>> round(Threshold().bits_per_element(num_workers=4), 2)  # 3 * 32 * 0.1
    9.6
    """

    error_feedback = True

    def __init__(self, tau: float = 0.01, max_density: float = 0.1) -> None:
        self.tau = _validation.check_number("tau", tau, positive=True)
        self.max_density = _validation.check_number("max_density", max_density, positive=True)
        if self.max_density > 1:
            raise ValueError(f"Invalid max_density={max_density!r}: expected a number in (0, 1].")

    def slots(self, num_elements: int) -> int:
        """Elements one payload can carry."""
        # round() first: 0.07 * 100 is 7.000000000000001 in floating point.
        return max(1, math.ceil(round(self.max_density * num_elements, 6)))

    def compress(
        self,
        gradient: tf.Tensor,
        *,
        statistics: tf.Tensor | None = None,
        num_workers: int = 1,
        seed: tf.Tensor | None = None,
    ) -> Payload:
        flat = self._flat(gradient)
        sparse.check_size(flat.shape[0], self)
        magnitude, indices = sparse.largest(tf.abs(flat), self.slots(flat.shape[0]))
        words = sparse.encode(indices, tf.gather(flat, indices) < 0, magnitude > self.tau)
        return Payload(
            words=words,
            scales=tf.zeros([0], tf.float32),
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
        )

    def decompress(self, payload: Payload) -> tf.Tensor:
        flat = sparse.decode(payload.words, self.tau, payload.shape.num_elements())
        return self._restore(flat, payload)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        return 32 * self.slots(tf.TensorShape(shape).num_elements())

    def get_config(self) -> dict[str, Any]:
        return {"tau": self.tau, "max_density": self.max_density}
