"""``damping="auto"``: the importance damping chosen on held-out data.

`cluster` with an importance h clusters with h + lambda * mean(h) (the
damping of Optimal Brain Surgeon and GPTQ). lambda = 0 is Choi et al.
2017's Hessian weighting, lambda -> infinity plain k-means. ``"auto"``
clusters once per lambda of `GRID`, which holds that plain k-means limit
(first, so it wins ties), scores each clustered model (before any
fine-tuning) on ``validation_data`` and keeps the best. On that data the
result is therefore never worse than plain k-means by the chosen score;
on other data, and after fine-tuning, it can be (benchmarks/README.md
reports both). ``bias_correction="auto"`` doubles the candidates: each
uncorrected (first) and with `bias_correction.correct_biases`.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

# Candidate lambdas of damping="auto", plain k-means (infinity) first.
GRID = (math.inf, 0.0, 0.3, 1.0, 3.0, 10.0)
METRICS = ("accuracy", "loss")


def check_data(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """``validation_data`` as two arrays of equal length, at least one sample."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(
            "Invalid validation_data: expected a tuple (x, y) of arrays for damping='auto'."
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(
            f"Invalid validation_data: expected x and y with the same number (>= 1) of "
            f"samples, got shapes {x.shape} and {y.shape}."
        )
    return x, y


def score(
    model: keras.Model, data: tuple[np.ndarray, np.ndarray], metric: str, loss: Any = None
) -> float:
    """The score of ``model`` on ``data`` (higher is better).

    ``"accuracy"``: the fraction of samples whose largest output is the
    label (integer labels, or one-hot labels of the output's shape).
    ``"loss"``: minus the mean of ``loss`` (a Keras loss or its name).
    """
    x, y = data
    predictions = np.asarray(model.predict(x, batch_size=1024, verbose=0))
    if metric == "loss":
        loss_fn = keras.losses.get(loss)
        if loss_fn is None:
            raise ValueError(
                "Invalid damping_metric='loss': the model has no loss; compile it or use "
                "damping_metric='accuracy'."
            )
        return -float(np.mean(np.asarray(loss_fn(y, predictions))))
    if predictions.ndim < 2 or predictions.shape[-1] < 2:
        raise ValueError(
            f"Invalid damping_metric='accuracy' for outputs of shape {predictions.shape}: "
            "expected class scores (last axis >= 2); use damping_metric='loss'."
        )
    labels = y
    if y.shape == predictions.shape:  # one-hot
        labels = np.argmax(y, axis=-1)
    elif y.shape[:-1] == predictions.shape[:-1] and y.shape[-1:] == (1,):
        labels = y[..., 0]
    if labels.shape != predictions.shape[:-1]:
        raise ValueError(
            f"Invalid validation_data labels of shape {y.shape} for outputs of shape "
            f"{predictions.shape}: expected integer or one-hot labels."
        )
    return float(np.mean(np.argmax(predictions, axis=-1) == labels))
