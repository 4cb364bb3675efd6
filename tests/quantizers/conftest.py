"""Shared fixtures of the quantizer tests.

The helpers are fixtures (not an importable module) so that the suite does
not depend on how pytest names the test package.
"""

import numpy as np
import pytest
import tensorflow as tf


def _forward_backward(quantizer, x, dy=None, training=None, dtype="float32", seed=0):
    """Runs ``quantizer`` on ``x`` under a GradientTape.

    Returns ``(y, grad, dy)`` as numpy arrays, where ``grad`` is the gradient
    to ``x`` for the upstream gradient ``dy``. When ``dy`` is None a
    non-uniform one is drawn (magnitudes in [0.5, 2], random signs), so that
    a gradient that ignores ``dy`` or permutes it cannot pass.
    """
    x = tf.constant(np.asarray(x), dtype=dtype)
    if dy is None:
        rng = np.random.default_rng(seed)
        shape = x.shape
        dy = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    dy = tf.constant(np.asarray(dy), dtype=dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x, training=training)
    grad = tape.gradient(y, x, output_gradients=dy)
    assert y.dtype == x.dtype
    assert grad is not None, "no gradient reached the input"
    assert grad.dtype == x.dtype
    return y.numpy(), grad.numpy(), dy.numpy()


@pytest.fixture
def forward_backward():
    """``forward_backward(q, x, dy=None, training=None, dtype="float32") -> (y, grad, dy)``."""
    return _forward_backward


def binomial_tolerance(p, n, sigmas=5.0):
    """``sigmas`` standard errors of a frequency estimated from ``n`` draws."""
    return sigmas * np.sqrt(np.asarray(p) * (1.0 - np.asarray(p)) / n) + 1e-12


@pytest.fixture
def binomial_tol():
    """``binomial_tol(p, n, sigmas=5)``: the allowed error of a frequency."""
    return binomial_tolerance
