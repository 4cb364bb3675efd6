"""Logarithmic (power-of-two) activation quantizer."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import Quantizer

FITS = (None, "weighted_entropy")


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
    Ahn and Yoo 2017 ("Weighted-Entropy-based Quantization for Deep Neural
    Networks", CVPR) add the step and the offset, both fitted to every batch
    by weighted entropy: with ``fit="weighted_entropy"`` each call replaces
    ``max_exponent`` and ``step`` by `fit_weighted_entropy` of the tensor it
    quantizes (so the output depends on the whole batch, in inference too;
    to deploy, fit once and pass the values as fixed arguments).

    Args:
        bits: bits per value, 2..8 (2^bits levels, zero included).
        max_exponent: log2 of the top level (when not fitted, or a tensor
            without positive values).
        step: octaves between neighbouring levels, positive (ditto).
        fit: None (``max_exponent`` and ``step`` fixed) or
            ``"weighted_entropy"`` (Park 2017's LogQuant).
    """

    def __init__(
        self,
        bits: int = 4,
        max_exponent: float = 0.0,
        step: float = 1.0,
        fit: str | None = None,
    ):
        self.bits = _validation.check_int("bits", bits, 2, 8)
        self.max_exponent = _validation.check_number("max_exponent", max_exponent)
        self.step = _validation.check_number("step", step, positive=True)
        self.fit = _validation.check_choice("fit", fit, FITS)
        self.precision = self.bits

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(0, 2^max_exponent)``; unbounded above when fitted to each batch."""
        if self.fit is not None:
            return 0.0, float("inf")
        return 0.0, float(2.0**self.max_exponent)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        top = 2**self.bits - 2
        max_exponent: Any = self.max_exponent
        step: Any = self.step
        if self.fit is not None:
            max_exponent, step = fit_weighted_entropy(
                tf.stop_gradient(x), self.bits, self.max_exponent, self.step
            )
            max_exponent = tf.cast(max_exponent, x.dtype)
            step = tf.cast(step, x.dtype)
        low = max_exponent - step * top
        positive = x > 0
        safe = tf.where(positive, x, tf.ones_like(x))
        log2 = tf.math.log(safe) / tf.math.log(tf.constant(2.0, x.dtype))
        index = tf.round((log2 - low) / step)
        level = tf.pow(tf.constant(2.0, x.dtype), low + step * tf.minimum(index, top))
        y = tf.where(positive & (index >= 0), level, tf.zeros_like(x))
        return _relu_ste(x, y)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "bits": self.bits,
            "max_exponent": self.max_exponent,
            "step": self.step,
        }
        if self.fit is not None:
            config["fit"] = self.fit
        return config


def fit_weighted_entropy(
    x: Any, bits: int, max_exponent: float = 0.0, step: float = 1.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """Park et al. 2017's LogQuant fit: ``(max_exponent, step)`` of maximal weighted entropy.

    On the grid of 1/16 octave: the step s is one of 2, 4, ..., 32
    sixteenths (1/8 to 2 octaves) and the top level 2^(t/16) has t = floor(16
    log2 v) for some positive input v (the top level lies among the data).
    The L = 2^bits - 1 nonzero levels are c_i = t - (L - i) s, i = 1 .. L;
    each positive input goes to its `Logarithmic` level (rounded in the log
    domain, below the lowest level to 0, above the top to the top), and
    with P_i the share of the positive inputs at level i and the importance
    of a level its value, the weighted entropy is

        S = - sum_i 2^(c_i / 16) P_i ln P_i      (the zero level has value 0).

    Returns the maximiser's ``(t / 16, s / 16)`` (the first in the order s
    ascending, then t ascending, on ties), computed from a histogram of
    floor(16 log2 v) (on which the levels' boundaries c_i +- s/2 fall
    exactly); ``(max_exponent, step)`` when no input is positive.

    Args:
        x: the tensor to quantize (activations).
        bits: bits per value, 2..8.
        max_exponent, step: the answer for a tensor without positive values.
    """
    bits = _validation.check_int("bits", bits, 2, 8)
    levels = 2**bits - 1
    x = tf.reshape(tf.cast(x, tf.float32), (-1,))
    positive = tf.boolean_mask(x, x > 0)
    bins = tf.cast(tf.floor(16.0 * tf.math.log(positive) / tf.math.log(2.0)), tf.int32)
    count = tf.size(bins)
    safe = tf.concat([bins, [0]], 0)[: tf.maximum(count, 1)]  # [0] without positive inputs
    lo_bin = tf.reduce_min(safe)
    hi_bin = tf.reduce_max(safe)
    span = hi_bin - lo_bin + 1
    histogram = tf.math.bincount(safe - lo_bin, minlength=span, maxlength=span, dtype=tf.float64)
    # below[j]: inputs whose bin is below lo_bin + j, j = 0 .. span
    below = tf.concat([tf.zeros((1,), tf.float64), tf.cumsum(histogram)], 0)
    total = tf.maximum(below[-1], 1.0)
    tops = tf.range(lo_bin, hi_bin + 1)  # candidate t
    i = tf.range(1, levels + 1)  # level index
    best = []
    for s in range(2, 33, 2):
        centres = tops[:, None] - (levels - i[None, :]) * s  # (candidates, L)
        lower = centres - s // 2
        upper = tf.where(i[None, :] == levels, hi_bin + 1, centres + s // 2)

        def at(edge: tf.Tensor) -> tf.Tensor:
            return tf.gather(below, tf.clip_by_value(edge - lo_bin, 0, span))

        p = (at(upper) - at(lower)) / total
        # Values relative to the largest input's bin: the argmax is unchanged.
        value = tf.pow(tf.constant(2.0, tf.float64), tf.cast(centres - hi_bin, tf.float64) / 16)
        terms = tf.where(p > 0, -value * p * tf.math.log(tf.where(p > 0, p, 1.0)), 0.0)
        best.append(tf.reduce_sum(terms, axis=1))
    entropy = tf.stack(best)  # (steps, candidates)
    flat = tf.argmax(tf.reshape(entropy, (-1,)), output_type=tf.int32)
    candidates = tf.size(tops)
    s_best = 2 * (flat // candidates + 1)
    t_best = tops[flat % candidates]
    fitted = count > 0
    exponent = tf.where(fitted, tf.cast(t_best, tf.float32) / 16, float(max_exponent))
    octaves = tf.where(fitted, tf.cast(s_best, tf.float32) / 16, float(step))
    return exponent, octaves


def _relu_ste(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``y`` forward; ``dy * 1[x > 0]`` backward (ReLU's gradient)."""

    @tf.custom_gradient
    def ste(x: tf.Tensor) -> Any:
        def grad(dy: tf.Tensor) -> tf.Tensor:
            return tf.where(x > 0, dy, tf.zeros((), dy.dtype))

        return tf.identity(y), grad

    return ste(x)
