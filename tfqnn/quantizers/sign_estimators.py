"""Binary quantizers with other estimators or outputs: SwishSign, MagnitudeAwareSign, SteHeaviside.

They complete `tfqnn.quantizers.binary` with the binary quantizers of larq
0.14, with the same forward and backward passes, so that larq models load
into tfqnn (`tfqnn.interop`) and keep training as they did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.quantizers.base import Quantizer, cast_like, clipped_ste
from tfqnn.quantizers.binary import sign


@keras.saving.register_keras_serializable(package="tfqnn")
class SwishSign(Quantizer):
    """Sign with the SignSwish gradient of BNN+.

    Forward: ``+1 if x >= 0 else -1``.
    Backward: ``dy * beta * (2 - beta x tanh(beta x / 2)) / (1 + cosh(beta x))``,
    the derivative of ``2 sigmoid(beta x)(1 + beta x (1 - sigmoid(beta x))) - 1``;
    larger ``beta`` approaches the derivative of sign.

    Darabi et al. 2018, "BNN+: Improved Binary Network Training"
    (arXiv:1812.11800).
    """

    precision = 1

    def __init__(self, beta: float = 5.0):
        self.beta = _validation.check_number("beta", beta, positive=True)

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(-1, 1)``: the two signs."""
        return -1.0, 1.0

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        beta = self.beta

        @tf.custom_gradient
        def swish_sign(x: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
            def grad(dy: tf.Tensor) -> tf.Tensor:
                bx = beta * x
                return dy * beta * (2.0 - bx * tf.tanh(bx * 0.5)) / (1.0 + tf.cosh(bx))

            return sign(x), grad

        return swish_sign(x)

    def get_config(self) -> dict[str, Any]:
        return {"beta": self.beta}


@keras.saving.register_keras_serializable(package="tfqnn")
class MagnitudeAwareSign(Quantizer):
    """Sign scaled by the mean magnitude over every axis but the last (Bi-Real Net).

    Forward: ``alpha * sign(x)``, ``alpha = mean(|x|)`` over all axes except
    the last (per output channel of a Dense or Conv kernel; per channel,
    batch included, of an activation), not differentiated.
    Backward: ``dy * alpha * 1[|x| <= clip_value]`` (``dy * alpha`` with
    ``clip_value=None``). Unlike `ScaledSign` the scale also multiplies the
    gradient and the estimator is clipped, as in larq's quantizer of that name.

    Liu et al. 2018, "Bi-Real Net" (arXiv:1808.00278), section 3.3.
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0):
        self.clip_value = _validation.check_number(
            "clip_value", clip_value, positive=True, allow_none=True
        )

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        rank = x.shape.rank
        if rank is None or rank < 1:
            raise ValueError("MagnitudeAwareSign needs a tensor of known rank of at least 1.")
        alpha = tf.stop_gradient(tf.reduce_mean(tf.abs(x), axis=list(range(rank - 1))))
        return alpha * clipped_ste(x, sign(x), self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}


@keras.saving.register_keras_serializable(package="tfqnn")
class SteHeaviside(Quantizer):
    """The Heaviside step, {0, 1}, with the clipped straight-through estimator.

    Forward: ``1 if x > 0 else 0``.
    Backward: ``dy * 1[|x| <= clip_value]`` (``dy`` with ``clip_value=None``).

    The {0, 1} binarization of activations, as in larq's ``SteHeaviside``;
    estimator after Courbariaux et al. 2016, "Binarized Neural Networks"
    (arXiv:1602.02830).
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0):
        self.clip_value = _validation.check_number(
            "clip_value", clip_value, positive=True, allow_none=True
        )

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(0, 1)``: the two steps."""
        return 0.0, 1.0

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return clipped_ste(x, cast_like(x > 0, x), self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {"clip_value": self.clip_value}
