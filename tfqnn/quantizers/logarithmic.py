"""Logarithmic (power-of-two) activation quantizer."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import Quantizer


@keras.saving.register_keras_serializable(package="tfqnn")
class Logarithmic(Quantizer):
    """Activations on power-of-two levels: 0 and 2^(max_exponent - step j).

    Levels: ``{0} U {2^(low + step i) : i = 0 .. 2^bits - 2}`` with ``low =
    max_exponent - step (2^bits - 2)``, so the top level is ``2^max_exponent``
    and neighbours are ``step`` octaves apart. Forward: ``x <= 0`` gives 0;
    otherwise ``i = round((log2 x - low) / step)`` (rounding in the log
    domain, ties to even); ``i < 0`` gives 0 (below the lowest level), ``i >
    2^bits - 2`` the top level. Backward: ReLU's, ``dy * 1[x > 0]``.

    Miyashita, Lee and Murmann 2016, "Convolutional Neural Networks using
    Logarithmic Data Representation" (arXiv:1603.01025), with step 1; Park,
    Ahn and Yoo 2017's LogQuant adds the step (in 1/16 octaves there) and the
    offset, which they fit per batch by weighted entropy (not done here:
    ``max_exponent`` and ``step`` are fixed).

    Args:
        bits: bits per value, 2..8 (2^bits levels, zero included).
        max_exponent: log2 of the top level.
        step: octaves between neighbouring levels, positive.
    """

    def __init__(self, bits: int = 4, max_exponent: float = 0.0, step: float = 1.0):
        self.bits = _validation.check_int("bits", bits, 2, 8)
        self.max_exponent = _validation.check_number("max_exponent", max_exponent)
        self.step = _validation.check_number("step", step, positive=True)
        self.precision = self.bits

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(0, 2^max_exponent)``: non-positive inputs give 0, large ones the top level."""
        return 0.0, float(2.0**self.max_exponent)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        top = 2**self.bits - 2
        low = self.max_exponent - self.step * top
        positive = x > 0
        safe = tf.where(positive, x, tf.ones_like(x))
        log2 = tf.math.log(safe) / tf.math.log(tf.constant(2.0, x.dtype))
        index = tf.round((log2 - low) / self.step)
        level = tf.pow(tf.constant(2.0, x.dtype), low + self.step * tf.minimum(index, top))
        y = tf.where(positive & (index >= 0), level, tf.zeros_like(x))
        return _relu_ste(x, y)

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits, "max_exponent": self.max_exponent, "step": self.step}


def _relu_ste(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``y`` forward; ``dy * 1[x > 0]`` backward (ReLU's gradient)."""

    @tf.custom_gradient
    def ste(x: tf.Tensor) -> Any:
        def grad(dy: tf.Tensor) -> tf.Tensor:
            return tf.where(x > 0, dy, tf.zeros((), dy.dtype))

        return tf.identity(y), grad

    return ste(x)
