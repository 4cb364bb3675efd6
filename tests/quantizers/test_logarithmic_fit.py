"""Logarithmic(fit="weighted_entropy"): Park et al. 2017's LogQuant fit against its definition."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import quantizers
from tfqnn.quantizers.logarithmic import fit_weighted_entropy

from .test_logarithmic import np_logarithmic


def weighted_entropy(x, bits, max_exponent, step):
    """-sum_i v_i P_i ln P_i over the nonzero output levels v_i of the quantized positive inputs.

    The levels by the numpy reference of test_logarithmic (checked there
    against the quantizer).
    """
    y = np_logarithmic(x[x > 0].astype(np.float64), bits, max_exponent, step)
    values, counts = np.unique(y, return_counts=True)
    p = counts / counts.sum()
    return -np.sum(np.where(values > 0, values * p * np.log(p), 0.0))


def activations(rng, n=3000):
    """ReLU-like activations: a third zero, the rest log-normal over several octaves."""
    x = np.exp(rng.normal(-1.0, 1.5, size=n)) * (rng.random(n) > 0.3)
    return x.astype(np.float32)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_fit_maximises_the_weighted_entropy_over_the_grid(rng, bits):
    x = activations(rng)
    exponent, step = (float(v) for v in fit_weighted_entropy(x, bits))
    # The fit lies on the grid: a step of 2..32 sixteenths, the top level at a data bin.
    bins = np.floor(16 * np.log2(x[x > 0].astype(np.float64))).astype(int)
    assert 16 * step in range(2, 33, 2)
    assert bins.min() <= 16 * exponent <= bins.max()
    # Brute force over the same grid, each candidate scored by quantizing x with it.
    scores = {
        (t, s): weighted_entropy(x, bits, t / 16, s / 16)
        for s in range(2, 33, 2)
        for t in range(bins.min(), bins.max() + 1)
    }
    best = max(scores.values())
    assert weighted_entropy(x, bits, exponent, step) == pytest.approx(best, rel=1e-9)


def test_fitted_quantizer_equals_the_fixed_one_with_the_fitted_values(rng, forward_backward):
    x = activations(rng, 1000) - 0.05  # some negative inputs too
    exponent, step = (float(v) for v in fit_weighted_entropy(x, 3))
    fitted = quantizers.Logarithmic(3, fit="weighted_entropy")
    y, grad, dy = forward_backward(fitted, x)
    expected = quantizers.Logarithmic(3, exponent, step)(x).numpy()
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(grad, dy * (x > 0))  # ReLU's gradient
    # Scaling the batch by 2^k shifts the top level by k octaves and keeps the step.
    exponent_4, step_4 = (float(v) for v in fit_weighted_entropy(16 * x, 3))
    assert (exponent_4, step_4) == (exponent + 4, step)
    # Inside a tf.function (a graph), as in fit.
    graph = tf.function(lambda v: fitted(v))(tf.constant(x)).numpy()
    np.testing.assert_array_equal(graph, expected)


def test_without_positive_inputs_the_fixed_values_stay(rng):
    exponent, step = fit_weighted_entropy(-np.abs(rng.normal(size=10)), 4, 2.0, 0.25)
    assert (float(exponent), float(step)) == (2.0, 0.25)
    q = quantizers.Logarithmic(4, fit="weighted_entropy")
    np.testing.assert_array_equal(q(np.array([-1.0, 0.0], np.float32)).numpy(), [0.0, 0.0])


def test_config_and_use_in_a_layer(rng, tmp_path):
    q = quantizers.Logarithmic(5, max_exponent=1.0, step=0.5, fit="weighted_entropy")
    again = quantizers.deserialize(quantizers.serialize(q))
    assert again.get_config() == {
        "bits": 5,
        "max_exponent": 1.0,
        "step": 0.5,
        "fit": "weighted_entropy",
    }
    assert quantizers.Logarithmic().get_config() == {"bits": 4, "max_exponent": 0.0, "step": 1.0}
    assert q.output_range == (0.0, float("inf"))
    model = keras.Sequential(
        [
            keras.Input((6,)),
            tfqnn.layers.QuantDense(4, input_quantizer=q, name="q"),
        ]
    )
    x = np.abs(rng.normal(size=(8, 6))).astype("float32")
    path = tmp_path / "log.keras"
    model.save(path)
    np.testing.assert_array_equal(
        keras.models.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0)
    )
    with pytest.raises(ValueError, match="fit='entropy'"):
        quantizers.Logarithmic(fit="entropy")
