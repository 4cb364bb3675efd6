"""Ternary quantizers: values in {-a, 0, +a}."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import Quantizer, StochasticQuantizer, cast_like, clipped_ste


@keras.saving.register_keras_serializable(package="tfqnn")
class SteTern(Quantizer):
    """Ternary weights (TWN) with the clipped straight-through estimator.

    Forward: ``a * sign(x) * 1[|x| > delta]``, where
    ``delta = 0.7 * mean(|x|)`` when ``threshold`` is None (the TWN rule),
    else ``delta = threshold``; ``a = mean(|x|)`` over the entries with
    ``|x| > delta`` when ``scaled`` (0 if there are none), else ``a = 1``.
    Statistics are per tensor and not differentiated.
    Backward: ``dy * 1[|x| <= clip_value]`` (``dy`` when ``clip_value=None``).

    Li, Zhang and Liu 2016, "Ternary Weight Networks" (arXiv:1605.04711).
    """

    precision = 2

    def __init__(
        self, threshold: float | None = None, scaled: bool = True, clip_value: float | None = 1.0
    ):
        self.threshold = _validation.check_number(
            "threshold", threshold, non_negative=True, allow_none=True
        )
        self.scaled = _validation.check_bool("scaled", scaled)
        self.clip_value = _validation.check_number(
            "clip_value", clip_value, positive=True, allow_none=True
        )

    @property
    def output_range(self) -> tuple[float, float] | None:
        """[-1, 1] unscaled; None when ``scaled`` (``a`` follows the input)."""
        return None if self.scaled else (-1.0, 1.0)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        magnitude = tf.abs(x)
        if self.threshold is None:
            delta = 0.7 * tf.reduce_mean(magnitude)
        else:
            delta = tf.constant(self.threshold, x.dtype)
        nonzero = cast_like(magnitude > delta, x)
        y = tf.sign(x) * nonzero
        if self.scaled:
            y *= tf.math.divide_no_nan(tf.reduce_sum(magnitude * nonzero), tf.reduce_sum(nonzero))
        return clipped_ste(x, y, self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "scaled": self.scaled,
            "clip_value": self.clip_value,
        }


@keras.saving.register_keras_serializable(package="tfqnn")
class StochasticTern(StochasticQuantizer):
    """Stochastic ternarization, unbiased on [-1, 1].

    Forward (training): ``x`` clipped to [-1, 1]; for ``x > 0`` +1 with
    probability ``x``, else 0; for ``x < 0`` -1 with probability ``-x``, else
    0. At inference (``training=False``): the nearest of {-1, 0, +1}.
    Backward: ``dy * 1[|x| <= 1]``.

    Lin et al. 2015, "Neural Networks with Few Multiplications"
    (arXiv:1510.03009).
    """

    precision = 2

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(-1, 1)``: the nonzero levels."""
        return -1.0, 1.0

    def sample(self, x: tf.Tensor) -> tf.Tensor:
        clipped_x = tf.clip_by_value(x, -1.0, 1.0)
        keep = cast_like(self.uniform(x) < tf.abs(clipped_x), x)
        return clipped_ste(x, tf.sign(clipped_x) * keep, 1.0)

    def round_nearest(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.round(tf.clip_by_value(x, -1.0, 1.0))
        return clipped_ste(x, y, 1.0)
