"""Importance of each weight for importance-weighted clustering (Choi et al. 2017).

A change of the weights by delta raises the loss by about
1/2 sum_i h_ii delta_i^2 at a minimum (zero gradient, diagonal Hessian), so
clustering should minimise the h-weighted squared error (arXiv:1612.01543,
section 3). Two estimates of h:

- `hessian`: the empirical Fisher approximation of the diagonal, the mean
  over samples of the squared per-sample gradient of the loss (true
  labels). It is non-negative (as LeCun's diagonal backpropagation, which
  Choi uses) and needs only first derivatives. For a piecewise-linear
  network (ReLU, max pooling) under softmax cross-entropy the exact
  diagonal equals the Gauss-Newton one, sum_c p_c (d log p_c / d w)^2
  averaged over samples. Both are means over samples, the scale of the
  Hessian of the average loss that Choi estimates, so the estimates of
  different layers are comparable (what ``scope="model"`` needs). On
  Fashion-MNIST (benchmarks/README.md, codebook_importance.py) neither that
  exact diagonal over 2,048 samples nor Choi's own estimate (Becker and
  LeCun's diagonal backpropagation over 12,000) clustered consistently
  better than this estimate over 256 (each won some settings, lost others).
- `adam`: Choi's free substitute, the square root of a trained Adam
  optimizer's second-moment estimates.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfqnn import _validation

# Samples of ``data`` used by `hessian` unless told otherwise.
HESSIAN_SAMPLES = 256


def hessian(
    model: keras.Model,
    data: Any,
    variables: list[Any],
    *,
    samples: int = HESSIAN_SAMPLES,
    loss: Any = None,
) -> list[np.ndarray]:
    """Empirical Fisher estimate of the diagonal of the Hessian of the loss, per variable.

    Args:
        model: the trained model.
        data: ``(x, y)`` arrays.
        variables: the model's variables to estimate (kernels).
        samples: how many samples of ``data`` to use (the first ones).
        loss: a Keras loss; by default the model's compiled loss.

    Returns:
        One array per variable, of its shape: mean_s (d loss_s / d w)^2.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(
            "Invalid data: expected a tuple (x, y) of arrays for importance='hessian'."
        )
    samples = _validation.check_int("samples", samples, 1)
    loss_fn = keras.losses.get(loss if loss is not None else getattr(model, "loss", None))
    if loss_fn is None:
        raise ValueError(
            "Invalid loss=None: importance='hessian' needs a loss; compile the model or pass one."
        )
    x = np.asarray(data[0])[:samples]
    y = np.asarray(data[1])[:samples]

    @tf.function
    def squared_gradient(xi: Any, yi: Any) -> list[Any]:
        with tf.GradientTape() as tape:
            value = loss_fn(yi, model(xi, training=False))
            value = tf.reduce_mean(value)
        return [tf.square(g) for g in tape.gradient(value, variables)]

    totals = [np.zeros(tuple(v.shape)) for v in variables]
    for i in range(x.shape[0]):
        for total, g in zip(totals, squared_gradient(x[i : i + 1], y[i : i + 1])):
            np.add(total, np.asarray(g), out=total)
    return [total / x.shape[0] for total in totals]


def adam(optimizer: Any, variables: list[Any]) -> list[np.ndarray]:
    """sqrt of the Adam second-moment estimate of each variable (Choi 2017, section 3.4).

    Raises ValueError when ``optimizer`` is not a built Keras Adam (or
    AdamW, Adamax...) that tracks the variables.
    """
    velocities = getattr(optimizer, "_velocities", None)
    if velocities is None:
        raise ValueError(
            f"Invalid optimizer {type(optimizer).__name__}: importance='adam' needs the "
            "model compiled with a trained Keras Adam optimizer."
        )
    out = []
    for variable in variables:
        try:
            index = optimizer._get_variable_index(variable)
        except KeyError as error:
            raise ValueError(
                f"Invalid importance='adam': the optimizer holds no moments of {variable.path!r}."
            ) from error
        out.append(np.sqrt(np.maximum(np.asarray(velocities[index]), 0.0)))
    return out
