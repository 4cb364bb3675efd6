"""`OneBitEF`: 1-bit SGD with error feedback (Seide et al., Interspeech 2014)."""

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute import packing
from tfqnn.distribute.compressors.base import Compressor, Payload, bucketed, num_buckets


@keras.saving.register_keras_serializable(package="tfqnn")
class OneBitEF(Compressor):
    """The sign of each element, and two reconstruction values per bucket.

    Within each bucket of ``bucket_size`` consecutive elements of
    ``p = g + e`` (gradient plus residual), an element is sent as one bit,
    ``p_i < 0``, and decoded as the mean of the bucket's non-negative
    elements (``a+``) or of its negative ones (``a-``). The quantisation
    error stays in the residual, ``e <- p - D(C(p))``, so nothing is lost,
    only delayed: error feedback is what makes 1-bit SGD converge. Seide et
    al. reconstruct per column; buckets of the flattened tensor are the same
    idea for any layout.

    Payload: ``ceil(n / 32)`` words of signs and ``2 * ceil(n / bucket_size)``
    float scales; all-gathered (each worker's reconstruction values differ).

    Args:
        bucket_size: elements that share a pair of reconstruction values.

    >>> OneBitEF().bits_per_element(num_workers=4)  # 3 * (1 + 64 / 512)
    3.375
    """

    error_feedback = True

    def __init__(self, bucket_size=512):
        self.bucket_size = _validation.check_int("bucket_size", bucket_size, low=1)

    def compress(self, gradient, *, statistics=None, num_workers=1, seed=None):
        flat = self._flat(gradient)
        values, mask = bucketed(flat, self.bucket_size)
        negative = tf.cast(values < 0, tf.float32) * mask
        positive = mask - negative
        mean_positive = tf.math.divide_no_nan(tf.reduce_sum(values * positive, 1),
                                              tf.reduce_sum(positive, 1))
        mean_negative = tf.math.divide_no_nan(tf.reduce_sum(values * negative, 1),
                                              tf.reduce_sum(negative, 1))
        return Payload(words=packing.pack_bits(flat < 0),
                       scales=tf.reshape(tf.stack([mean_positive, mean_negative], 1), [-1]),
                       shape=gradient.shape, dtype=gradient.dtype, num_workers=num_workers)

    def decompress(self, payload):
        n = payload.shape.num_elements()
        negative = tf.cast(packing.unpack_bits(payload.words, n), tf.bool)
        negative, _ = bucketed(tf.cast(negative, tf.float32), self.bucket_size)
        means = tf.reshape(payload.scales, [-1, 2])
        flat = tf.where(negative > 0, means[:, 1:], means[:, :1])
        return self._restore(tf.reshape(flat, [-1])[:n], payload)

    def payload_bits(self, shape, num_workers=1):
        n = tf.TensorShape(shape).num_elements()
        return 32 * packing.num_words(n) + 64 * num_buckets(n, self.bucket_size)

    def get_config(self):
        return {"bucket_size": self.bucket_size}
