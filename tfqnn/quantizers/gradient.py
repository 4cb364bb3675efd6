"""Quantizers of the backward pass: identity forward, quantized gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import StochasticQuantizer


@keras.saving.register_keras_serializable(package="tfqnn")
class DoReFaGradient(StochasticQuantizer):
    """DoReFa-Net's stochastic k-bit gradient quantizer.

    Forward: the identity.
    Backward: with ``m = max|dy|`` over all axes but the batch axis (axis 0)
    and ``n = 2^bits - 1``, the gradient is
    ``2m [round(n (dy / (2m) + 1/2 + N)) / n - 1/2]`` with ``N`` uniform
    noise in ``[-1/2, 1/2] / n``: stochastic rounding, so the quantized
    gradient is an unbiased estimate of ``dy``. Zero gradients stay zero.
    The noise is drawn whether or not the model is training, since the
    backward pass only runs in training.

    Zhou et al. 2016, "DoReFa-Net" (arXiv:1606.06160).
    """

    def __init__(self, bits: int = 8, seed: int | None = None):
        super().__init__(seed)
        self.bits = _validation.check_int("bits", bits, 1, 32)
        self.precision = self.bits

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        @tf.custom_gradient
        def quantize_gradient(
            x: tf.Tensor,
        ) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
            return tf.identity(x), self.quantize

        return quantize_gradient(x)

    def quantize(self, dy: tf.Tensor) -> tf.Tensor:
        """The quantized gradient for an upstream gradient ``dy``."""
        n = 2.0**self.bits - 1.0
        axes = tf.range(1, tf.rank(dy))
        m = tf.reduce_max(tf.abs(dy), axis=axes, keepdims=True)
        noise = (self.uniform(dy) - 0.5) / n
        z = tf.math.divide_no_nan(dy, 2.0 * m) + 0.5 + noise
        return 2.0 * m * (tf.round(z * n) / n - 0.5)

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits, "seed": self.seed}
