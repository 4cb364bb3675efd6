"""Fake quantization between stored ranges: tensorflow-model-optimization's 8-bit scheme."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import Quantizer

MAX_BITS = 16
MAX_CHANNELS = 1 << 20
# How the range follows the inputs in training (tfmot's quantizers).
TRAINING_RANGES = ("fixed", "last_value", "all_values", "moving_average")


@keras.saving.register_keras_serializable(package="tfqnn")
class RangeFakeQuant(Quantizer):
    """Uniform fake quantization between a stored ``[min, max]``, per tensor or per channel.

    Forward: TensorFlow's ``fake_quant_with_min_max_vars`` (per channel:
    ``..._per_channel``, over the last axis). The range is first nudged so
    that 0 is a level: with ``q_lo = 1 if narrow_range else 0`` and
    ``q_hi = 2^bits - 1``, ``scale = (max - min) / (q_hi - q_lo)``,
    ``zero = round(q_lo - min / scale)`` clamped to ``[q_lo, q_hi]``; then
    ``y = (round((clip(x, lo, hi) - lo) / scale)) * scale + lo`` with
    ``lo = (q_lo - zero) * scale``, ``hi = (q_hi - zero) * scale``.
    Backward: straight through inside ``[lo, hi]``, zero outside.

    The ranges are non-trainable weights of the tfqnn layer the quantizer
    serves (`Quantizer.build_weights`), saved with it. At inference they are
    used as stored. In training (``training=True``) they first follow the
    inputs, as tfmot's quantizers do, then quantize them: from the batch's
    ``m = min(x)``, ``M = max(x)`` (per channel: over all axes but the
    last), made symmetric if ``symmetric`` (``m = min(m, -M)``,
    ``M = max(M, -m)``) and always containing 0, the new range is ``[m, M]``
    (``"last_value"``), the running extremes (``"all_values"``), or
    ``r <- r - (1 - decay)(r - [m, M])`` (``"moving_average"``);
    ``"fixed"`` keeps it. No gradient flows into the range.

    tfmot's default 8-bit ``quantize_model`` scheme is: weights
    ``narrow_range=True, symmetric=True, training_range="last_value"``
    (per channel for convolutions), activations
    ``training_range="moving_average", decay=0.999``, inputs
    ``training_range="all_values"``; `tfqnn.interop.load` maps it onto this
    quantizer with the file's ranges.

    Jacob et al. 2018, "Quantization and Training of Neural Networks for
    Efficient Integer-Arithmetic-Only Inference" (arXiv:1712.05877).

    Args:
        bits: bits per value, 2 to 16.
        narrow_range: whether the lowest level ``0`` is left out
            (``2^bits - 1`` levels, symmetric around zero).
        channels: None for one range over the tensor, else the size of
            the last axis, with one range per channel.
        min_value: the initial lower bound(s) of the range.
        max_value: the initial upper bound(s) of the range.
        training_range: how the range follows the inputs in training: one
            of ``"fixed"``, ``"last_value"``, ``"all_values"``,
            ``"moving_average"``.
        symmetric: whether the range followed in training is symmetric.
        decay: the moving average's decay, in [0, 1).
    """

    def __init__(
        self,
        bits: int = 8,
        narrow_range: bool = False,
        channels: int | None = None,
        min_value: float = -6.0,
        max_value: float = 6.0,
        training_range: str = "fixed",
        symmetric: bool = False,
        decay: float = 0.999,
    ):
        self.bits = _validation.check_int("bits", bits, 2, MAX_BITS)
        self.narrow_range = _validation.check_bool("narrow_range", narrow_range)
        self.channels = (
            None
            if channels is None
            else _validation.check_int("channels", channels, 1, MAX_CHANNELS)
        )
        self.min_value = float(_validation.check_number("min_value", min_value))
        self.max_value = float(_validation.check_number("max_value", max_value))
        if not self.min_value <= 0.0 <= self.max_value or self.min_value == self.max_value:
            raise ValueError(
                f"Invalid min_value={min_value!r}, max_value={max_value!r}: expected "
                "min_value <= 0 <= max_value and min_value < max_value."
            )
        self.training_range = _validation.check_choice(
            "training_range", training_range, TRAINING_RANGES
        )
        self.symmetric = _validation.check_bool("symmetric", symmetric)
        self.decay = float(_validation.check_number("decay", decay))
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"Invalid decay={decay!r}: expected a number in [0, 1).")
        self.precision = self.bits
        self.min_var: Any = None
        self.max_var: Any = None

    def build_weights(self, add_weight: Callable[..., Any], name: str) -> None:
        shape = () if self.channels is None else (self.channels,)
        for bound in ("min", "max"):
            variable = add_weight(
                shape=shape,
                initializer=keras.initializers.Constant(getattr(self, f"{bound}_value")),
                trainable=False,
                name=f"{name}_{bound}",
            )
            setattr(self, f"{bound}_var", variable)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.min_var is None:
            raise ValueError(
                f"{type(self).__name__} owns its range as weights, which a tfqnn layer "
                "creates: use it as a quantizer argument of a tfqnn layer or in "
                "tfqnn.layers.QuantActivation."
            )
        inputs = tf.cast(x, tf.float32)
        if training and self.training_range != "fixed":
            self._follow(tf.stop_gradient(inputs))
        low = tf.cast(tf.convert_to_tensor(self.min_var), tf.float32)
        high = tf.cast(tf.convert_to_tensor(self.max_var), tf.float32)
        if self.channels is None:
            y = tf.quantization.fake_quant_with_min_max_vars(
                inputs, low, high, num_bits=self.bits, narrow_range=self.narrow_range
            )
        else:
            y = tf.quantization.fake_quant_with_min_max_vars_per_channel(
                inputs, low, high, num_bits=self.bits, narrow_range=self.narrow_range
            )
        return tf.cast(y, x.dtype)

    def _follow(self, inputs: tf.Tensor) -> None:
        """Moves the stored range towards the batch's, per ``training_range``."""
        axes = None if self.channels is None else list(range(inputs.shape.rank - 1))
        low = tf.reduce_min(inputs, axis=axes)
        high = tf.reduce_max(inputs, axis=axes)
        if self.symmetric:
            low, high = tf.minimum(low, -high), tf.maximum(high, -low)
        low, high = tf.minimum(low, 0.0), tf.maximum(high, 0.0)
        old_low = tf.cast(tf.convert_to_tensor(self.min_var), tf.float32)
        old_high = tf.cast(tf.convert_to_tensor(self.max_var), tf.float32)
        if self.training_range == "all_values":
            low, high = tf.minimum(old_low, low), tf.maximum(old_high, high)
        elif self.training_range == "moving_average":
            low = old_low - (old_low - low) * (1.0 - self.decay)
            high = old_high - (old_high - high) * (1.0 - self.decay)
        self.min_var.assign(tf.cast(low, self.min_var.dtype))
        self.max_var.assign(tf.cast(high, self.max_var.dtype))

    def get_config(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "narrow_range": self.narrow_range,
            "channels": self.channels,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "training_range": self.training_range,
            "symmetric": self.symmetric,
            "decay": self.decay,
        }
