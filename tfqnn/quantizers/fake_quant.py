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
    serves (`Quantizer.build_weights`), saved with it; they stay fixed in
    training. This is the inference computation of tfmot's default 8-bit
    ``quantize_model`` scheme (weights: ``narrow_range=True``, per channel
    for convolutions; activations: ``narrow_range=False``, per tensor),
    which `tfqnn.interop.load` maps onto it with the file's ranges. tfmot
    recomputes weight ranges from the kernel and follows activation ranges
    by a moving average in training; this quantizer does not.

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
    """

    def __init__(
        self,
        bits: int = 8,
        narrow_range: bool = False,
        channels: int | None = None,
        min_value: float = -6.0,
        max_value: float = 6.0,
    ):
        self.bits = _validation.check_int("bits", bits, 2, MAX_BITS)
        if not isinstance(narrow_range, bool):
            raise ValueError(  # noqa: TRY004
                f"Invalid narrow_range={narrow_range!r}: expected True or False."
            )
        self.narrow_range = narrow_range
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
        self.precision = self.bits
        self.min_var: Any = None
        self.max_var: Any = None

    def build_weights(self, add_weight: Callable[..., Any], name: str) -> None:
        if self.min_var is not None:
            raise ValueError(
                f"This {type(self).__name__} already owns the weights {self.min_var.path!r}: "
                "an instance belongs to one layer; give each layer its own (a config dict "
                "builds a new one)."
            )
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
        low = tf.cast(tf.convert_to_tensor(self.min_var), tf.float32)
        high = tf.cast(tf.convert_to_tensor(self.max_var), tf.float32)
        inputs = tf.cast(x, tf.float32)
        if self.channels is None:
            y = tf.quantization.fake_quant_with_min_max_vars(
                inputs, low, high, num_bits=self.bits, narrow_range=self.narrow_range
            )
        else:
            y = tf.quantization.fake_quant_with_min_max_vars_per_channel(
                inputs, low, high, num_bits=self.bits, narrow_range=self.narrow_range
            )
        return tf.cast(y, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "narrow_range": self.narrow_range,
            "channels": self.channels,
            "min_value": self.min_value,
            "max_value": self.max_value,
        }
