"""The base classes that every tfqnn quantizer shares.

A quantizer is a serializable callable ``q(x, training=None) -> y``. Its
forward pass and its straight-through estimator (STE) are written with
``tf.custom_gradient``; ``precision`` is the number of bits one quantized
value needs, which `tfqnn.summary` uses to size a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import keras
import tensorflow as tf

from tfqnn import _config, _validation


class Quantizer(_config.ConfigObject):
    """Base class of tfqnn's quantizers.

    Subclasses implement `call(x, training)` on a float tensor and
    `get_config()`; they set `precision` (bits per quantized value) and,
    when their outputs lie in a fixed interval whatever the input, override
    `output_range`.

    Calling a quantizer converts its input to a tensor first: a Keras Variable
    cannot enter a `tf.custom_gradient` function directly.
    """

    precision: int = 32

    @property
    def output_range(self) -> tuple[float, float] | None:
        """``(low, high)``: the smallest and largest output for any input, or None.

        None means the outputs are unbounded or follow the input's scale (a
        scaled sign, uniform levels between the tensor's extremes). Some
        input reaches each bound. The recurrent cells read it to refuse a
        ``state_quantizer`` that cannot hold their states.
        """
        return None

    def __call__(self, inputs: Any, training: bool | None = None) -> tf.Tensor:
        return self.call(tf.convert_to_tensor(inputs), training=training)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement call().")

    def build_weights(self, add_weight: Callable[..., Any], name: str) -> None:
        """Creates the quantizer's own weights, if it has any, through ``add_weight``.

        A tfqnn layer calls this once, with its ``add_weight`` and the
        quantizer's argument name (to prefix the weights' names), so that
        the weights are the layer's: trained by ``fit``, saved with the
        layer. Most quantizers own none and do nothing here. The layer
        (`tfqnn.layers.base.build_quantizer_weights`) refuses an instance
        that made weights for another layer already.
        """

    @property
    def owns_weights(self) -> bool:
        """Whether this quantizer creates weights of its own (overrides `build_weights`)."""
        return type(self).build_weights is not Quantizer.build_weights


class StochasticQuantizer(Quantizer):
    """A quantizer that samples: random in training, deterministic at inference.

    Called on its own or with ``training=True`` it draws from its own
    ``keras.random.SeedGenerator``, so two quantizers built with the same
    ``seed`` produce the same sequence of outputs. With ``training=False`` (a
    layer's inference pass) it applies `round_nearest`, its rounding to the
    nearest value, so that predictions and exported models are deterministic.

    Subclasses implement `sample` and `round_nearest`.
    """

    def __init__(self, seed: int | None = None):
        self.seed = _validation.check_seed("seed", seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if training is False:
            return self.round_nearest(x)
        return self.sample(x)

    def sample(self, x: tf.Tensor) -> tf.Tensor:
        """The random quantization of ``x``, drawn from `uniform` noise."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample().")

    def round_nearest(self, x: tf.Tensor) -> tf.Tensor:
        """The deterministic quantization of ``x``: each value to its nearest level."""
        raise NotImplementedError(f"{type(self).__name__} must implement round_nearest().")

    def uniform(self, x: tf.Tensor) -> tf.Tensor:
        """Uniform noise in [0, 1) shaped and typed like ``x``."""
        return keras.random.uniform(tf.shape(x), dtype=x.dtype, seed=self.seed_generator)

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


# What a layer's ``*_quantizer`` argument and `tfqnn.quantizers.get` accept.
QuantizerLike: TypeAlias = Quantizer | str | dict[str, Any] | None


def cast_like(condition: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """A boolean tensor as 0/1 in the dtype of ``x``."""
    return tf.cast(condition, x.dtype)


def _gradient_within(
    x: tf.Tensor, dy: tf.Tensor, low: float | None, high: float | None
) -> tf.Tensor:
    """``dy`` where ``low <= x <= high`` (a None bound is no bound), else 0."""
    if low is None:
        keep = x <= high
    elif high is None:
        keep = x >= low
    elif low == -high:
        keep = tf.abs(x) <= high
    else:
        keep = (x >= low) & (x <= high)
    return tf.where(keep, dy, tf.zeros((), dy.dtype))


def straight_through(
    x: tf.Tensor, y: tf.Tensor, low: float | None = None, high: float | None = None
) -> tf.Tensor:
    """Returns ``y`` in the forward pass; the gradient to ``x`` is ``dy * 1[low <= x <= high]``.

    A bound of None is no bound: with neither, the gradient is ``dy`` itself.
    Unlike ``x + stop_gradient(y - x)`` the forward value is exactly ``y``.
    The mask is computed in the backward pass only, so inference pays nothing.
    """

    @tf.custom_gradient
    def ste(x: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
        def grad(dy: tf.Tensor) -> tf.Tensor:
            if low is None and high is None:
                return dy
            return _gradient_within(x, dy, low, high)

        return tf.identity(y), grad

    return ste(x)


def clipped_ste(x: tf.Tensor, y: tf.Tensor, clip_value: float | None) -> tf.Tensor:
    """`straight_through` with the clipped STE ``dy * 1[|x| <= clip_value]`` (None: no clip)."""
    if clip_value is None:
        return straight_through(x, y)
    return straight_through(x, y, -clip_value, clip_value)


@tf.custom_gradient
def round_ste(x: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
    """``tf.round`` (ties to even) with the identity as gradient."""
    return tf.round(x), lambda dy: dy
