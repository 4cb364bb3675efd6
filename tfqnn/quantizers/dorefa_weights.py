"""DoReFa's weight quantizer with the normalising maximum held constant in the gradient."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import Quantizer, round_ste


@keras.saving.register_keras_serializable(package="tfqnn")
class DoReFaWeights(Quantizer):
    """DoReFa-Net weights, k bits, with ``max|tanh x|`` not differentiated.

    With ``n = 2^bits - 1``, ``t = tanh(x)`` and ``m = max|t|`` over the tensor:
    forward ``u = t / (2 m) + 1/2`` (0 where ``m = 0``) and
    ``2 round(u n) / n - 1``; backward ``dy (1 - t^2) / m`` (rounding as the
    identity, ``m`` a constant). ``bits = 1`` follows the same formula, so a
    zero weight rounds ``u = 1/2`` to even and becomes -1.

    This is larq's ``DoReFa(mode="weights")``; `DoReFa` with
    ``mode="weights"`` differentiates the maximum too and scales 1-bit
    weights by their mean magnitude.

    Zhou et al. 2016, "DoReFa-Net" (arXiv:1606.06160), section 2.3.
    """

    def __init__(self, bits: int = 2):
        self.bits = _validation.check_int("bits", bits, 1, 16)
        self.precision = self.bits

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(-1, 1)``: the extreme levels, at the largest magnitudes of each sign."""
        return -1.0, 1.0

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        n = 2.0**self.bits - 1.0
        t = tf.tanh(x)
        m = tf.stop_gradient(tf.reduce_max(tf.abs(t)))
        u = tf.math.divide_no_nan(t, 2.0 * m) + 0.5
        return 2.0 * (round_ste(u * n) / n) - 1.0

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits}
