"""Fixed-point, ReLU and power-of-two quantizers with QKeras's levels and identity estimators.

QKeras 0.9 quantizes with ``x + stop_gradient(xq - x)``: the forward pass is
the quantized value and the gradient passes unchanged, saturation included
(`FixedPoint` and `PowerOfTwo` differ there). These classes reproduce
``quantized_bits``, ``quantized_relu`` and ``quantized_po2`` so that QKeras
models load into tfqnn (`tfqnn.interop`) and train as they did.

Coelho et al. 2021, "Automatic heterogeneous quantization of deep neural
networks for low-latency inference on the edge for particle detectors"
(Nature Machine Intelligence; arXiv:2006.10159), the QKeras paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import Quantizer, straight_through
from tfqnn.quantizers.binary import sign

_EPSILON = 1e-7  # Keras's epsilon, as QKeras uses it


def _round_po2(scale: tf.Tensor) -> tf.Tensor:
    """``2^round(log2(scale + 1e-7))``, as QKeras rounds a scale to a power of two."""
    return tf.pow(2.0, tf.round(tf.math.log(scale + _EPSILON) / np.log(2.0)))


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantizedBits(Quantizer):
    """Signed or unsigned fixed point with ``bits`` bits, ``integer`` of them above the point.

    With ``m = 2^(bits - keep_negative)`` and ``mi = 2^integer``:
    forward ``alpha * mi * clip(round(x m / mi), -keep_negative (m - symmetric), m - 1) / m``
    (round ties to even), so the levels are multiples of ``mi / m``; for
    ``bits - keep_negative = 0`` the forward is ``sign(x)`` (``(sign(x) + 1) / 2``
    unsigned). ``alpha`` is None (1), a number, or ``"auto"``: then, per
    channel (over every axis but the last), ``s = 2 max|x| / levels`` with
    ``levels = 2 (2^(bits-1) - 1)``, and the forward is ``s * sign(x) *
    min(floor(|x| / s + 1/2), levels / 2)`` (symmetric, 0 for an all-zero channel).
    ``"auto_po2"`` rounds ``s`` to a power of two, then five times sets the
    levels ``z`` from ``s`` and ``s`` to the least-squares
    ``mean(x z) / (mean(z z) + 1e-7)`` per channel, rounded to a power of
    two; the output is the last ``s`` times the ``z`` of the one before.
    Backward: ``dy`` everywhere (QKeras's straight-through estimator).

    QKeras's ``quantized_bits(bits, integer, symmetric, keep_negative, alpha)``;
    Coelho et al. 2021 (arXiv:2006.10159).
    """

    def __init__(
        self,
        bits: int = 8,
        integer: int = 0,
        symmetric: bool = False,
        keep_negative: bool = True,
        alpha: float | str | None = None,
    ):
        self.bits = _validation.check_int("bits", bits, 1, 32)
        self.integer = _validation.check_int("integer", integer, -32, 32)
        self.symmetric = _validation.check_bool("symmetric", bool(symmetric))
        self.keep_negative = _validation.check_bool("keep_negative", bool(keep_negative))
        if isinstance(alpha, str):
            self.alpha: float | str | None = _validation.check_choice(
                "alpha", alpha, ("auto", "auto_po2")
            )
            self.symmetric = True
            if self.bits < 2:
                raise ValueError('Invalid bits=1 with alpha="auto": expected at least 2 bits.')
        else:
            self.alpha = _validation.check_number("alpha", alpha, positive=True, allow_none=True)
        self.precision = self.bits

    @property
    def output_range(self) -> tuple[float, float] | None:
        """The extreme levels times ``alpha``; None for the automatic scales."""
        if isinstance(self.alpha, str):
            return None
        alpha = 1.0 if self.alpha is None else self.alpha
        m = 2.0 ** (self.bits - int(self.keep_negative))
        if self.bits - int(self.keep_negative) == 0:
            return (-alpha if self.keep_negative else 0.0), alpha
        mi = 2.0**self.integer
        low = -float(self.keep_negative) * (m - float(self.symmetric)) * mi / m
        return low * alpha, (m - 1.0) * mi / m * alpha

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        m = 2.0 ** (self.bits - int(self.keep_negative))
        mi = 2.0**self.integer
        if isinstance(self.alpha, str):
            rank = x.shape.rank
            axes = list(range(rank - 1)) if rank and rank > 1 else [0]
            xs = x / mi
            levels = (2.0 ** (self.bits - 1) - 1.0) * 2.0
            # One multiplication by 2 / levels: the same rounding eagerly and in a
            # graph (where grappler would fold "* 2 / levels" into it anyway).
            scale = tf.reduce_max(tf.abs(xs), axis=axes, keepdims=True) * (2.0 / levels)
            if self.alpha == "auto":
                z = self._levels(xs, scale, levels)
            else:
                scale = _round_po2(scale)
                for _ in range(5):  # QKeras's refinement: z from the scale before the last
                    z = self._levels(xs, scale, levels)
                    if rank and rank > 1:
                        xz = tf.reduce_mean(xs * z, axis=axes, keepdims=True)
                        zz = tf.reduce_mean(z * z, axis=axes, keepdims=True)
                    else:
                        xz, zz = xs * z, z * z
                    scale = _round_po2(xz / (zz + _EPSILON))
            y = (scale * m) * (mi * z / m)
        else:
            if self.bits - int(self.keep_negative) > 0:
                low = -float(self.keep_negative) * (m - float(self.symmetric))
                y = mi * tf.clip_by_value(tf.round(x * m / mi), low, m - 1.0) / m
            else:
                y = sign(x) if self.keep_negative else (sign(x) + 1.0) / 2.0
            if self.alpha is not None:
                y = self.alpha * y
        return straight_through(x, y)

    @staticmethod
    def _levels(xs: tf.Tensor, scale: tf.Tensor, levels: float) -> tf.Tensor:
        """``sign(x) min(floor(|x| / scale + 1/2), levels / 2)``, 0 where the scale is 0."""
        v = tf.floor(tf.math.divide_no_nan(tf.abs(xs), scale) + 0.5)
        return tf.sign(xs) * tf.minimum(v, levels / 2.0)

    def get_config(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "integer": self.integer,
            "symmetric": self.symmetric,
            "keep_negative": self.keep_negative,
            "alpha": self.alpha,
        }


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantizedRelu(Quantizer):
    """ReLU quantized to ``bits`` unsigned bits, ``integer`` of them above the point.

    With ``m = 2^bits``, ``mi = 2^integer`` and the largest level
    ``top = mi - 2^(integer - bits)``: forward ``mi * clip(round(x m / mi) / m,
    0, 1 - 1/m)`` (ties to even): multiples of ``mi / m`` in ``[0, top]``.
    Backward: ``dy`` where ``0 < x <= top``, else 0 (the gradient of the
    saturated ReLU it rounds).

    QKeras's ``quantized_relu(bits, integer)``; Coelho et al. 2021
    (arXiv:2006.10159).
    """

    def __init__(self, bits: int = 8, integer: int = 0):
        self.bits = _validation.check_int("bits", bits, 1, 32)
        self.integer = _validation.check_int("integer", integer, -32, 32)
        self.precision = self.bits

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(0, 2^integer - 2^(integer - bits))``."""
        return 0.0, 2.0**self.integer - 2.0 ** (self.integer - self.bits)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        m = 2.0**self.bits
        mi = 2.0**self.integer
        top = mi - 2.0 ** (self.integer - self.bits)
        y = mi * tf.clip_by_value(tf.round(x * m / mi) / m, 0.0, 1.0 - 1.0 / m)

        @tf.custom_gradient
        def ste(x: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
            def grad(dy: tf.Tensor) -> tf.Tensor:
                return tf.where((x > 0) & (x <= top), dy, tf.zeros((), dy.dtype))

            return tf.identity(y), grad

        return ste(x)

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits, "integer": self.integer}


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantizedPo2(Quantizer):
    """Signed powers of two, ``bits`` bits: ``sign(x) * 2^clip(round(log2|x|), lo, hi)``.

    One bit holds the sign; of the other ``bits - 1``, one holds the sign of
    the exponent unless ``max_value <= 1``; with ``e`` bits left,
    ``lo = -2^e`` and ``hi = 2^e - 1``. ``|x|`` is first clamped to
    ``max_value`` (if given); ``|x| < 1e-7`` gives ``2^lo``; ``sign(0) = +1``;
    round ties to even. There is no zero level.
    Backward: ``dy`` everywhere.

    QKeras's ``quantized_po2(bits, max_value)``; logarithmic weights after
    Miyashita, Lee and Murmann 2016 (arXiv:1603.01025).
    """

    def __init__(self, bits: int = 8, max_value: float | None = None):
        self.bits = _validation.check_int("bits", bits, 2, 32)
        self.max_value = _validation.check_number(
            "max_value", max_value, positive=True, allow_none=True
        )
        self.precision = self.bits
        sign_bit = 1 if self.max_value is None or self.max_value > 1 else 0
        effective = self.bits - 1 - sign_bit  # >= 0 as bits >= 2
        self.min_exponent = -(2**effective)
        self.max_exponent = 2**effective - 1

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(-2^e, 2^e)``, ``e`` the largest exponent (lower when ``max_value`` clamps)."""
        top = float(self.max_exponent)
        if self.max_value is not None:
            exponent = float(round(math.log(self.max_value) / math.log(2.0)))
            top = min(max(exponent, float(self.min_exponent)), top)
        return -(2.0**top), 2.0**top

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        eps = _EPSILON
        magnitude = tf.abs(x)
        clamped = tf.where(magnitude < eps, tf.constant(eps, x.dtype), magnitude)
        if self.max_value is not None:
            clamped = tf.minimum(clamped, tf.constant(self.max_value, x.dtype))
        log2 = tf.round(tf.math.log(clamped) / tf.constant(np.log(2.0), x.dtype))
        exponent = tf.clip_by_value(log2, float(self.min_exponent), float(self.max_exponent))
        exponent = tf.where(magnitude < eps, float(self.min_exponent), exponent)
        return straight_through(x, sign(x) * tf.pow(2.0, exponent))

    def get_config(self) -> dict[str, Any]:
        return {"bits": self.bits, "max_value": self.max_value}


def _channel_axes(rank: int | None) -> list[int] | None:
    """Every axis but the last (None, all of them, for a vector), as QKeras reduces."""
    return list(range(rank - 1)) if rank and rank > 1 else None


def _least_squares_scale(x: tf.Tensor, q: tf.Tensor, alpha: str) -> tf.Tensor:
    """QKeras's per-channel ``mean(x q) / (mean(q q) + 1e-7)``, power-of-two for auto_po2."""
    axes = _channel_axes(x.shape.rank)
    if axes is None:  # a vector: one scale per element, as QKeras
        xq, qq = x * q, q * q
    else:
        xq = tf.reduce_mean(x * q, axis=axes, keepdims=True)
        qq = tf.reduce_mean(q * q, axis=axes, keepdims=True)
    scale = xq / (qq + _EPSILON)
    return _round_po2(scale) if alpha == "auto_po2" else scale


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantizedBinary(Quantizer):
    """Sign with QKeras's least-squares scale per channel: ``s * sign(x)``.

    Forward: ``sign(x)`` (``sign(0) = +1``) times, per channel (every axis
    but the last), ``s = mean(x sign(x)) / (1 + 1e-7)`` = ``mean|x|`` (up to
    rounding); ``alpha="auto_po2"`` rounds ``s`` to a power of two.
    Backward: ``dy``.

    QKeras's ``binary(alpha="auto")`` and ``binary(alpha="auto_po2")``, the
    kernel quantizer QKeras layers make of ``binary()``; the scale is
    XNOR-Net's (Rastegari et al. 2016, arXiv:1603.05279).
    """

    precision = 1

    def __init__(self, alpha: str = "auto_po2"):
        self.alpha = _validation.check_choice("alpha", alpha, ("auto", "auto_po2"))

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        signs = sign(x)
        return straight_through(x, _least_squares_scale(x, signs, self.alpha) * signs)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantizedTernary(Quantizer):
    """Ternary values with QKeras's iterated least-squares scale per channel.

    Forward: ``s = 2 max|x| / 3`` per channel (every axis but the last;
    ``"auto_po2"`` rounds it to a power of two), then five times:
    ``q = sign(x) 1[|s round(x / s)| >= s / 2]`` and ``s = mean(x q) /
    (mean(q q) + 1e-7)`` (a power of two for ``"auto_po2"``); the output is
    the last ``s`` times the last ``q``. Backward: ``dy``.

    QKeras's ``ternary(alpha="auto")`` and ``ternary(alpha="auto_po2")``,
    the kernel quantizer QKeras layers make of ``ternary()``; ternary
    weights after Li, Zhang and Liu 2016 (TWN, arXiv:1605.04711).
    """

    precision = 2

    def __init__(self, alpha: str = "auto_po2"):
        self.alpha = _validation.check_choice("alpha", alpha, ("auto", "auto_po2"))

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        axes = _channel_axes(x.shape.rank)
        scale = 2.0 * tf.reduce_max(tf.abs(x), axis=axes, keepdims=True) / 3.0
        if self.alpha == "auto_po2":
            scale = _round_po2(scale)
        q = tf.zeros_like(x)
        for _ in range(5):
            v = scale * tf.round(tf.math.divide_no_nan(x, scale))
            q = tf.cast(tf.abs(v) >= scale / 2.0, x.dtype) * tf.sign(x)
            scale = _least_squares_scale(x, q, self.alpha)
        return straight_through(x, scale * q)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


def _rounded_and_clipped(p: tf.Tensor, m: float, low: float, high: float) -> tf.Tensor:
    """QKeras's ``clip((p m + stop_gradient(round(p m) - p m)) / m, low, high)``.

    The same operations in the same order, so that the values and the
    gradients (zero where the rounded value is clipped) are QKeras's, bit for bit.
    """
    pm = p * m
    rounded = pm + tf.stop_gradient(-pm + tf.round(pm))
    return tf.clip_by_value(rounded / m, low, high)


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantizedTanh(Quantizer):
    """A tanh rounded to ``bits`` signed bits: multiples of ``1 / m`` in ``[-1, 1 - 1/m]``.

    With ``m = 2^(bits - 1)`` and ``p = tanh(x)`` (``use_real_tanh``) or
    ``p = clip(x, -1, 1)`` (QKeras's default ``2 hard_sigmoid(x) - 1``):
    forward ``clip(round(p m) / m, -1 + symmetric / m, 1 - 1/m)`` (ties to
    even). Backward: ``dp/dx dy`` where the rounded value is not clipped,
    else 0 (the rounding's straight-through estimator inside the clip).

    QKeras's ``quantized_tanh(bits, symmetric=symmetric,
    use_real_tanh=use_real_tanh)`` with its default hard sigmoid (after
    Moons et al. 2017, "Minimum energy quantized neural networks",
    arXiv:1711.00215); Coelho et al. 2021 (arXiv:2006.10159).
    """

    def __init__(self, bits: int = 8, symmetric: bool = False, use_real_tanh: bool = False):
        self.bits = _validation.check_int("bits", bits, 2, 32)
        self.symmetric = _validation.check_bool("symmetric", symmetric)
        self.use_real_tanh = _validation.check_bool("use_real_tanh", use_real_tanh)
        self.precision = self.bits

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(-1 + symmetric / m, 1 - 1/m)``."""
        m = 2.0 ** (self.bits - 1)
        return -1.0 + float(self.symmetric) / m, 1.0 - 1.0 / m

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        p = (
            tf.tanh(x)
            if self.use_real_tanh
            else 2.0 * tf.clip_by_value(0.5 * x + 0.5, 0.0, 1.0) - 1.0
        )
        low, high = self.output_range or (-1.0, 1.0)
        return _rounded_and_clipped(p, 2.0 ** (self.bits - 1), low, high)

    def get_config(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "symmetric": self.symmetric,
            "use_real_tanh": self.use_real_tanh,
        }


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantizedSigmoid(Quantizer):
    """A sigmoid rounded to ``bits`` unsigned bits: multiples of ``1 / m`` in ``[0, 1 - 1/m]``.

    With ``m = 2^bits`` and ``p = sigmoid(x)`` (``use_real_sigmoid``) or
    ``p = clip((x + 1) / 2, 0, 1)`` (QKeras's default hard sigmoid): forward
    ``clip(round(p m) / m, symmetric / m, 1 - 1/m)`` (ties to even).
    Backward: ``dp/dx dy`` where the rounded value is not clipped, else 0.

    QKeras's ``quantized_sigmoid(bits, symmetric=symmetric,
    use_real_sigmoid=use_real_sigmoid)``; Coelho et al. 2021 (arXiv:2006.10159).
    """

    def __init__(self, bits: int = 8, symmetric: bool = False, use_real_sigmoid: bool = False):
        self.bits = _validation.check_int("bits", bits, 1, 32)
        self.symmetric = _validation.check_bool("symmetric", symmetric)
        self.use_real_sigmoid = _validation.check_bool("use_real_sigmoid", use_real_sigmoid)
        self.precision = self.bits

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(symmetric / m, 1 - 1/m)``."""
        m = 2.0**self.bits
        return float(self.symmetric) / m, 1.0 - 1.0 / m

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        p = tf.sigmoid(x) if self.use_real_sigmoid else tf.clip_by_value(0.5 * x + 0.5, 0.0, 1.0)
        low, high = self.output_range or (0.0, 1.0)
        return _rounded_and_clipped(p, 2.0**self.bits, low, high)

    def get_config(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "symmetric": self.symmetric,
            "use_real_sigmoid": self.use_real_sigmoid,
        }
