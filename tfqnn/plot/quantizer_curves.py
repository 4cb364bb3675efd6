"""`quantizer`: a quantizer's forward and backward curves."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfqnn import _validation, quantizers
from tfqnn.plot._figure import new_figure


def _ready(q: Any) -> Any:
    """``q`` itself, or, for a quantizer that owns weights (`Quantizer.build_weights`)
    and serves no layer yet, a copy with its initial weights."""
    if not q.owns_weights:
        return q
    try:
        q(np.zeros((1,), np.float32))
        return q
    except ValueError:
        from tfqnn.layers.base import QuantizerWeights

        fresh = type(q).from_config(q.get_config())
        fresh.build_weights(QuantizerWeights(name="plot").add_weight, "plot")
        return fresh


def curves(q: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``q(x)`` at inference (deterministic rounding) and ``d sum(q(x)) / dx`` in training:
    the forward pass and the straight-through estimator, elementwise."""
    import tensorflow as tf

    q = _ready(q)
    inputs = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        trained = q(inputs, training=True)
    gradient = tape.gradient(trained, inputs)
    forward = q(inputs, training=False)
    return np.asarray(forward), np.zeros_like(x) if gradient is None else np.asarray(gradient)


def quantizer(q: Any, x_range: tuple[float, float] = (-2.0, 2.0), points: int = 801) -> Any:
    """A quantizer's forward curve and its backward (straight-through) curve.

    Left: ``q(x)`` at inference over ``x_range`` (stochastic quantizers
    round deterministically there). Right: the gradient the training pass
    gives, ``d q(x) / d x`` for each ``x`` on its own. Quantizers with
    statistics over the tensor (`ScaledSign`, DoReFa's weights mode) see
    the whole range as one tensor. A quantizer that owns weights
    (`MultiBinaryActivation`) and serves no layer yet is drawn with its
    initial weights.

    Args:
        q: a quantizer or an identifier of `tfqnn.quantizers.get`.
        x_range: (low, high), low < high.
        points: the number of inputs, at least 2.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    q = quantizers.get(q)
    if q is None:
        raise ValueError("Invalid q=None: expected a quantizer or its identifier.")
    if (
        not isinstance(x_range, tuple | list)
        or len(x_range) != 2
        or not float(x_range[0]) < float(x_range[1])
    ):
        raise ValueError(f"Invalid x_range={x_range!r}: expected (low, high) with low < high.")
    points = _validation.check_int("points", points, low=2)
    x = np.linspace(float(x_range[0]), float(x_range[1]), points, dtype=np.float32)
    forward, backward = curves(q, x)
    figure = new_figure(8.0, 3.2)
    left, right = figure.subplots(1, 2, sharex=True)
    figure.suptitle(repr(q))
    left.plot(x, forward, color="C0")
    left.set_title("forward")
    left.set_ylabel("q(x)")
    right.plot(x, backward, color="C3")
    right.set_title("backward (STE)")
    right.set_ylabel("dq/dx")
    for ax in (left, right):
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    return figure
