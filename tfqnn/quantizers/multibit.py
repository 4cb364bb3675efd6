"""k-bit quantizers: DoReFa, fixed point, uniform, WAGE's symmetric uniform, power of two."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import (
    Quantizer,
    StochasticQuantizer,
    cast_like,
    round_ste,
    straight_through,
)
from tfqnn.quantizers.binary import sign


@keras.saving.register_keras_serializable(package="tfqnn")
class DoReFa(Quantizer):
    """DoReFa-Net quantizer of activations or weights, k bits.

    With ``n = 2^bits - 1``:

    - ``mode="activations"``: forward ``round(clip(x, 0, 1) * n) / n``;
      backward ``dy * 1[0 <= x <= 1]``.
    - ``mode="weights"``: ``t = tanh(x)``, ``u = t / (2 max|t|) + 1/2``,
      forward ``2 round(u * n) / n - 1``; backward through tanh and the
      normalisation (the max included), with rounding as the identity.
      For ``bits=1`` the forward is ``sign(x) * mean(|x|)`` (sign(0) = +1,
      the mean not differentiated) and the backward ``dy``.

    Rounding breaks ties to even. ``bits`` runs from 1 to 16 for weights and
    1 to 32 for activations.

    Zhou et al. 2016, "DoReFa-Net" (arXiv:1606.06160).
    """

    def __init__(self, bits: int = 2, mode: str = "activations"):
        self.mode = _validation.check_choice("mode", mode, ("activations", "weights"))
        max_bits = 32 if mode == "activations" else 16
        self.bits = _validation.check_int("bits", bits, 1, max_bits)
        self.precision = self.bits

    @property
    def output_range(self) -> tuple[float, float] | None:
        """[0, 1] for activations, [-1, 1] for weights; None for 1-bit weights (scaled)."""
        if self.mode == "activations":
            return 0.0, 1.0
        return None if self.bits == 1 else (-1.0, 1.0)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        n = 2.0**self.bits - 1.0
        if self.mode == "activations":
            y = tf.round(tf.clip_by_value(x, 0.0, 1.0) * n) / n
            return straight_through(x, y, 0.0, 1.0)
        if self.bits == 1:
            return straight_through(x, sign(x) * tf.reduce_mean(tf.abs(x)))
        t = tf.tanh(x)
        u = tf.math.divide_no_nan(t, 2.0 * tf.reduce_max(tf.abs(t))) + 0.5
        return 2.0 * round_ste(u * n) / n - 1.0

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits, "mode": self.mode}


@keras.saving.register_keras_serializable(package="tfqnn")
class FixedPoint(StochasticQuantizer):
    """Fixed-point numbers with ``integer_bits`` + ``fractional_bits`` bits.

    Forward: with ``eps = 2^-fractional_bits``, round ``x`` to a multiple of
    ``eps``, to the nearest (``rounding="nearest"``, ties to even) or
    stochastically (``"stochastic"``: with ``f = eps * floor(x / eps)``,
    ``f + eps`` with probability ``(x - f) / eps``, else ``f``), then
    saturate to ``[-2^(integer_bits-1), 2^(integer_bits-1) - eps]`` when
    ``signed`` (``integer_bits`` counts the sign bit) or
    ``[0, 2^integer_bits - eps]``. Stochastic rounding is used in training
    and when called on its own; at inference (``training=False``) it rounds
    to the nearest.
    Backward: ``dy`` inside the representable range, 0 outside.

    Gupta et al. 2015, "Deep Learning with Limited Numerical Precision"
    (arXiv:1502.02551).
    """

    def __init__(
        self,
        integer_bits: int = 4,
        fractional_bits: int = 4,
        rounding: str = "nearest",
        signed: bool = True,
        seed: int | None = None,
    ):
        super().__init__(seed)
        self.signed = _validation.check_bool("signed", signed)
        self.integer_bits = _validation.check_int(
            "integer_bits", integer_bits, 1 if signed else 0, 32
        )
        self.fractional_bits = _validation.check_int(
            "fractional_bits", fractional_bits, 0, 32 - self.integer_bits
        )
        if self.integer_bits + self.fractional_bits < 1:
            raise ValueError(
                "Invalid integer_bits=0 and fractional_bits=0: "
                "a fixed-point number needs at least 1 bit."
            )
        self.rounding = _validation.check_choice("rounding", rounding, ("nearest", "stochastic"))
        self.precision = self.integer_bits + self.fractional_bits

    @property
    def range(self) -> tuple[float, float]:
        """The smallest and the largest representable value."""
        eps = 2.0**-self.fractional_bits
        if self.signed:
            half = 2.0 ** (self.integer_bits - 1)
            return -half, half - eps
        return 0.0, 2.0**self.integer_bits - eps

    @property
    def output_range(self) -> tuple[float, float] | None:
        """`range`: the outputs saturate to it."""
        return self.range

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.rounding == "nearest":
            return self.round_nearest(x)
        return super().call(x, training)

    def round_nearest(self, x: tf.Tensor) -> tf.Tensor:
        scale = 2.0**self.fractional_bits
        return self._saturate(x, tf.round(x * scale) / scale)

    def sample(self, x: tf.Tensor) -> tf.Tensor:
        scale = 2.0**self.fractional_bits
        scaled = x * scale
        floor = tf.floor(scaled)
        up = cast_like(self.uniform(x) < scaled - floor, x)
        return self._saturate(x, (floor + up) / scale)

    def _saturate(self, x: tf.Tensor, rounded: tf.Tensor) -> tf.Tensor:
        low, high = self.range
        y = tf.clip_by_value(rounded, low, high)
        return straight_through(x, y, low, high)

    def get_config(self) -> dict[str, Any]:
        return {
            "integer_bits": self.integer_bits,
            "fractional_bits": self.fractional_bits,
            "rounding": self.rounding,
            "signed": self.signed,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="tfqnn")
class Uniform(StochasticQuantizer):
    """Uniform quantization between the tensor's minimum and maximum.

    Forward: ``z = (x - min) / (max - min)`` maps ``x`` to [0, 1]; ``z`` is
    rounded to the nearest of the ``levels + 1`` points ``k / levels``
    (``stochastic=True``: up with probability equal to the remainder, in
    training and when called on its own) and mapped back. A constant tensor
    is returned unchanged. Backward: ``dy``.

    ``precision`` is ``ceil(log2(levels + 1))`` bits.

    Polino, Pascanu and Alistarh 2018, "Model compression via distillation
    and quantization" (arXiv:1802.05668).
    """

    def __init__(self, levels: int = 255, stochastic: bool = False, seed: int | None = None):
        super().__init__(seed)
        self.levels = _validation.check_int("levels", levels, 1, 2**32 - 1)
        self.stochastic = _validation.check_bool("stochastic", stochastic)
        self.precision = max(1, math.ceil(math.log2(self.levels + 1)))

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if not self.stochastic:
            return self.round_nearest(x)
        return super().call(x, training)

    def round_nearest(self, x: tf.Tensor) -> tf.Tensor:
        return self._quantize(x, tf.round)

    def sample(self, x: tf.Tensor) -> tf.Tensor:
        def stochastic_round(v: tf.Tensor) -> tf.Tensor:
            floor = tf.floor(v)
            return floor + cast_like(self.uniform(v) < v - floor, v)

        return self._quantize(x, stochastic_round)

    def _quantize(self, x: tf.Tensor, rounding: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
        low = tf.reduce_min(x)
        width = tf.reduce_max(x) - low
        z = tf.math.divide_no_nan(x - low, width)
        y = rounding(z * self.levels) / self.levels * width + low
        return straight_through(x, tf.where(width > 0, y, x))

    def get_config(self) -> dict[str, Any]:
        return {
            "levels": self.levels,
            "stochastic": self.stochastic,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="tfqnn")
class SymmetricUniform(Quantizer):
    """WAGE's symmetric uniform quantizer on (-1, 1), k bits.

    Forward: with ``s = 2^(1 - bits)``, ``clip(s * round(x / s), -1 + s, 1 - s)``.
    Backward: ``dy`` where ``-1 + s <= x <= 1 - s``, 0 outside.

    Wu et al. 2018, "Training and Inference with Integers in Deep Neural
    Networks" (WAGE, arXiv:1802.04680).
    """

    def __init__(self, bits: int = 2):
        self.bits = _validation.check_int("bits", bits, 2, 32)
        self.precision = self.bits

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(-1 + s, 1 - s)`` with ``s = 2^(1 - bits)``."""
        s = 2.0 ** (1 - self.bits)
        return -1.0 + s, 1.0 - s

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        s = 2.0 ** (1 - self.bits)
        y = tf.clip_by_value(s * tf.round(x / s), -1.0 + s, 1.0 - s)
        return straight_through(x, y, -1.0 + s, 1.0 - s)

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits}


def _tiny(dtype: tf.DType) -> float:
    return float(np.finfo(dtype.as_numpy_dtype).tiny)


def floor_log2(a: tf.Tensor) -> tf.Tensor:
    """``floor(log2(a))`` for positive ``a``, exact at powers of two."""
    two = tf.constant(2.0, a.dtype)
    k = tf.floor(tf.math.log(a) / math.log(2.0))
    k = tf.where(tf.pow(two, k) > a, k - 1.0, k)
    return tf.where(tf.pow(two, k + 1.0) <= a, k + 1.0, k)


def power_of_two_exponents(x: Any, bits: int) -> tuple[tf.Tensor, tf.Tensor]:
    """INQ's exponent range ``(n1, n2)`` of the codebook of ``x``, float64 scalars.

    ``n1 = floor(log2(4 s / 3))`` with ``s = max|x|``, exact (computed in
    float64), and ``n2 = n1 + 1 - 2^(bits-2)``: the codebook
    ``{0, +-2^n2, ..., +-2^n1}`` has one bit for zero and ``bits - 1`` for
    ``2^(bits-1)`` signed powers. An all-zero ``x`` gets the range of the
    smallest positive normal value of its dtype.

    Zhou et al. 2017, "Incremental Network Quantization" (arXiv:1702.03044).
    """
    x = tf.convert_to_tensor(x)
    largest = tf.cast(tf.reduce_max(tf.abs(x)), tf.float64)
    n1 = floor_log2(tf.maximum(4.0 * largest / 3.0, tf.constant(_tiny(x.dtype), tf.float64)))
    return n1, n1 + 1.0 - 2.0 ** (bits - 2)


def nearest_power_of_two(x: Any, n1: Any, n2: Any) -> tf.Tensor:
    """Each ``x`` to the nearest value of ``{0, +-2^n2, ..., +-2^n1}``, ties away from zero.

    INQ's eq. 4: ``beta sgn(x)`` where ``(alpha + beta) / 2 <= |x| < 3 beta / 2``
    for adjacent levels ``alpha < beta``; magnitudes under ``2^(n2-1)``
    become 0 and those over ``2^n1`` become ``+-2^n1``. Computed in the
    dtype of ``x``, exactly: the levels and the midpoints ``1.5 * 2^k`` are
    representable.
    """
    x = tf.convert_to_tensor(x)
    n1 = tf.cast(n1, x.dtype)
    n2 = tf.cast(n2, x.dtype)
    magnitude = tf.abs(x)
    safe = tf.maximum(magnitude, _tiny(x.dtype))
    two = tf.constant(2.0, x.dtype)
    k = floor_log2(safe)
    # Between 2^k and 2^(k+1) the midpoint is 1.5 * 2^k.
    k = tf.where(safe >= 1.5 * tf.pow(two, k), k + 1.0, k)
    k = tf.clip_by_value(k, n2, n1)
    y = tf.sign(x) * tf.pow(two, k)
    return tf.where(magnitude < tf.pow(two, n2 - 1.0), tf.zeros_like(x), y)


@keras.saving.register_keras_serializable(package="tfqnn")
class PowerOfTwo(Quantizer):
    """Power-of-two weights from the INQ codebook, k bits (bits >= 2).

    Forward: ``n1 = floor(log2(4 max|x| / 3))``, ``n2 = n1 + 1 - 2^(bits-2)``
    (`power_of_two_exponents`); each ``x`` goes to the nearest value, in
    linear distance, of ``{0, +-2^n2, ..., +-2^n1}`` (ties away from zero, as
    INQ's rule: `nearest_power_of_two`), so magnitudes under ``2^(n2-1)``
    become 0. ``n1`` and ``n2`` are per tensor. Backward: ``dy``.

    Zhou et al. 2017, "Incremental Network Quantization" (arXiv:1702.03044).
    """

    def __init__(self, bits: int = 4):
        self.bits = _validation.check_int("bits", bits, 2, 32)
        self.precision = self.bits

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        n1, n2 = power_of_two_exponents(x, self.bits)
        return straight_through(x, nearest_power_of_two(x, n1, n2))

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits}


@keras.saving.register_keras_serializable(package="tfqnn")
class NoOp(Quantizer):
    """The identity, forward and backward; ``precision`` says how values are stored.

    Useful to mark a float path explicitly, or 16-bit storage in the summary.
    """

    def __init__(self, precision: int = 32):
        self.precision = _validation.check_int("precision", precision, 1, 64)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return tf.identity(x)

    def get_config(self) -> dict[str, Any]:
        return {"precision": self.precision}
