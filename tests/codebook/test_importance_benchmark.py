"""benchmarks/codebook_importance.py: Becker and LeCun's diagonal backpropagation (`lecun`).

Checked against numpy implementations of the same recursion (Choi 2017's
Hessian estimate): s = p (1 - p) at the logits, s_in = relu'(a) (W*W) s_out
between layers, and a weight's entry s_out x^2 averaged over samples; on
the last layer that is the exact diagonal of the Hessian, also checked
against the script's exact Gauss-Newton diagonal.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tfqnn

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def script() -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("codebook_importance")
    finally:
        sys.path.remove(str(BENCHMARKS))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_lecun_mlp_matches_numpy_recursion(script):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((3, 4)),
            keras.layers.Flatten(),
            keras.layers.Dense(5, activation="relu", bias_initializer="random_normal"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x = np.random.default_rng(0).uniform(0, 1, (20, 3, 4)).astype("float32")
    w1, b1, w2, b2 = (w.astype(np.float64) for w in model.get_weights())
    flat = x.reshape(20, -1).astype(np.float64)
    a1 = flat @ w1 + b1
    hidden = np.maximum(a1, 0)
    p = softmax(hidden @ w2 + b2)
    s2 = p * (1 - p)
    s1 = (a1 > 0) * (s2 @ (w2**2).T)
    expected = [
        np.einsum("si,sj->ij", flat**2, s1) / 20,
        np.einsum("si,sj->ij", hidden**2, s2) / 20,
    ]
    h = script.lecun(model, x)
    for got, want in zip(h, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-10)
    # the last layer's entry is the exact diagonal: the Gauss-Newton one
    ggn = script.gauss_newton(model, x, script.kernels(model))
    np.testing.assert_allclose(h[1], ggn[1], rtol=1e-3, atol=1e-10)
    assert not np.allclose(h[0], ggn[0], rtol=1e-3)  # dropped cross terms below it


def test_lecun_conv_and_pool_match_numpy_loops(script):
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((6, 6)),
            keras.layers.Reshape((6, 6, 1)),
            keras.layers.Conv2D(2, 3, activation="relu", bias_initializer="random_normal"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x = np.random.default_rng(1).uniform(0, 1, (7, 6, 6)).astype("float32")
    kernel, bias, w2, b2 = (w.astype(np.float64) for w in model.get_weights())
    xs = x.astype(np.float64)
    pre = np.zeros((7, 4, 4, 2))
    for i in range(4):
        for j in range(4):
            pre[:, i, j] = np.einsum("sab,abc->sc", xs[:, i : i + 3, j : j + 3], kernel[:, :, 0])
    pre += bias
    act = np.maximum(pre, 0)
    pooled = act.reshape(7, 2, 2, 2, 2, 2).max(axis=(2, 4))  # (s, 2, 2, c)
    p = softmax(pooled.reshape(7, -1) @ w2 + b2)
    s_out = p * (1 - p)
    s_pooled = (s_out @ (w2**2).T).reshape(7, 2, 2, 2)
    s_act = np.zeros_like(act)  # the pool routes to the first maximum of each window
    for s in range(7):
        for i in range(2):
            for j in range(2):
                for c in range(2):
                    window = act[s, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
                    a, b = np.unravel_index(np.argmax(window), (2, 2))
                    s_act[s, 2 * i + a, 2 * j + b, c] = s_pooled[s, i, j, c]
    s_pre = s_act * (pre > 0)
    want = np.zeros((3, 3, 1, 2))
    for i in range(4):
        for j in range(4):
            want[:, :, 0] += np.einsum(
                "sab,sc->abc", xs[:, i : i + 3, j : j + 3] ** 2, s_pre[:, i, j]
            )
    h = script.lecun(model, x)
    np.testing.assert_allclose(h[0], want / 7, rtol=1e-4, atol=1e-10)
    np.testing.assert_allclose(
        h[1], np.einsum("si,sj->ij", pooled.reshape(7, -1) ** 2, s_out) / 7, rtol=1e-4, atol=1e-10
    )


def test_lecun_on_a_pruned_model_uses_the_masked_kernel(script):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="relu", bias_initializer="ones"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    pruned = tfqnn.codebook.prune(model, 0.5)
    x = np.random.default_rng(2).uniform(0, 1, (9, 4)).astype("float32")
    masked = keras.models.clone_model(model)
    masked.set_weights(
        [
            np.asarray(pruned.layers[0].decoded_kernels()["kernel"]),
            model.get_weights()[1],
            np.asarray(pruned.layers[1].decoded_kernels()["kernel"]),
            model.get_weights()[3],
        ]
    )
    for got, want, dense in zip(
        script.lecun(pruned, x), script.lecun(masked, x), script.lecun(model, x)
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
        assert not np.allclose(got, dense)  # the unpruned kernel gives another estimate


def test_bias_correction_matches_the_mean_pre_activations(script):
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((6, 6)),
            keras.layers.Reshape((6, 6, 1)),
            keras.layers.Conv2D(3, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(5, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x = np.random.default_rng(1).uniform(0, 1, (40, 6, 6)).astype("float32")
    clustered = tfqnn.codebook.cluster(model, 2, verbose=0)
    conv = clustered.layers[1]
    w = model.layers[1].kernel.numpy().astype(np.float64)
    q = conv.decoded_kernels()["kernel"].astype(np.float64)
    before = conv.layer.bias.numpy().copy()
    script.bias_corrected(model, clustered, x)
    # first layer, same input: (W - Q) applied to the mean zero-padded 3x3 patch
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    patches = np.stack(
        [padded[:, i : i + 6, j : j + 6] for i in range(3) for j in range(3)], axis=-1
    )
    mean_patch = patches.reshape(-1, 9).mean(0)
    expected = mean_patch @ (w - q).reshape(9, 3)
    assert np.max(np.abs(expected)) > 1e-3  # the clustering did shift the mean
    np.testing.assert_allclose(conv.layer.bias.numpy() - before, expected, rtol=1e-4, atol=1e-6)

    # every clustered layer's mean pre-activation now equals the float model's
    def pre_activations(m):
        out, h = [], x
        for layer in m.layers:
            inner = getattr(layer, "layer", layer)
            if hasattr(inner, "kernel"):
                activation, inner.activation = inner.activation, keras.activations.linear
                out.append(np.asarray(layer(h)).reshape(-1, inner.bias.shape[0]).mean(0))
                inner.activation = activation
            h = layer(h)
        return out

    for got, want in zip(pre_activations(clustered), pre_activations(model)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_bias_correction_can_leave_the_logits_alone(script):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x = np.random.default_rng(2).uniform(0, 1, (30, 4)).astype("float32")
    clustered = tfqnn.codebook.cluster(model, 2, verbose=0)
    first, last = clustered.layers
    before = [first.layer.bias.numpy().copy(), last.layer.bias.numpy().copy()]
    script.bias_corrected(model, clustered, x, output=False)
    w = model.layers[0].kernel.numpy().astype(np.float64)
    q = first.decoded_kernels()["kernel"].astype(np.float64)
    np.testing.assert_allclose(
        first.layer.bias.numpy() - before[0], x.mean(0) @ (w - q), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_array_equal(last.layer.bias.numpy(), before[1])
