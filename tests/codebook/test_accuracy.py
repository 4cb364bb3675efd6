"""Deep Compression on the bundled 8x8 digits (1,347 / 450 images).

A 64-300-100-10 MLP (LeNet-300-100's shape) trained 20 epochs is the float
baseline. Clustering to 16 centroids per layer (4-bit indices) with one epoch
of centroid fine-tuning must stay within 0.5 points of it; pruning to 90 %
in four steps (50, 70, 80, 90 %, four epochs of masked fine-tuning each,
Han et al. 2015's iterative pruning) then clustering to 16 centroids with one
epoch of fine-tuning, within 1.5 points.

The figures for seeds 0..4 (float, clustered, pruned and clustered per
layer and with one threshold over all kernels, ``prune(..., scope="model")``)
come from ``benchmarks/codebook_digits.py``, which runs this procedure;
its committed table is in benchmarks/README.md. The tests run seed 0
(per-layer) and seed 4 (global: per-layer pruning loses 1.8 points there).
"""

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn import codebook

SEED = 0


@pytest.fixture(scope="module")
def digits():
    (x_train, y_train), (x_test, y_test) = tfqnn.datasets.load_digits()
    return (x_train.reshape(-1, 64), y_train), (x_test.reshape(-1, 64), y_test)


def _train(digits, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    _fit(model, digits, epochs=20, learning_rate=3e-3)
    return model


@pytest.fixture(scope="module")
def trained(digits):
    return _train(digits, SEED)


def _fit(model, digits, epochs, learning_rate):
    (x_train, y_train), _ = digits
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)


def _accuracy(model, digits):
    _, (x_test, y_test) = digits
    return float(np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test))


def test_sixteen_clusters_within_half_a_point(trained, digits):
    baseline = _accuracy(trained, digits)
    assert baseline > 0.95
    clustered = codebook.cluster(trained, 16)
    _fit(clustered, digits, epochs=1, learning_rate=1e-3)
    accuracy = _accuracy(clustered, digits)
    assert accuracy >= baseline - 0.005
    stripped = codebook.strip(clustered)
    for layer in stripped.layers:
        assert np.unique(layer.kernel.numpy()).size <= 16
    assert _accuracy(stripped, digits) == accuracy


@pytest.mark.slow  # about 20 s: 16 epochs of iterative pruning
def test_pruned_ninety_percent_and_four_bits_within_one_and_a_half_points(trained, digits):
    baseline = _accuracy(trained, digits)
    pruned = trained
    for sparsity in (0.5, 0.7, 0.8, 0.9):
        pruned = codebook.prune(pruned, sparsity)
        _fit(pruned, digits, epochs=4, learning_rate=1e-3)
    clustered = codebook.cluster(pruned, 16)
    _fit(clustered, digits, epochs=1, learning_rate=1e-3)
    accuracy = _accuracy(clustered, digits)
    assert accuracy >= baseline - 0.015
    for layer in codebook.strip(clustered).layers:
        kernel = layer.kernel.numpy()
        assert np.mean(kernel == 0) >= 0.9 - 1e-3
        assert np.unique(kernel[kernel != 0]).size <= 16
    assert codebook.report(clustered, print_fn=None).huffman_ratio > 20


@pytest.mark.slow  # about 30 s: training a float model and 16 epochs of iterative pruning
def test_global_pruning_ninety_percent_and_four_bits_on_a_seed_layer_pruning_misses(digits):
    trained = _train(digits, 4)
    baseline = _accuracy(trained, digits)
    pruned = trained
    for sparsity in (0.5, 0.7, 0.8, 0.9):
        pruned = codebook.prune(pruned, sparsity, scope="model")
        _fit(pruned, digits, epochs=4, learning_rate=1e-3)
    clustered = codebook.cluster(pruned, 16)
    _fit(clustered, digits, epochs=1, learning_rate=1e-3)
    assert _accuracy(clustered, digits) >= baseline - 0.015
    kernels = [layer.kernel.numpy() for layer in codebook.strip(clustered).layers]
    zeros = sum(int(np.sum(k == 0)) for k in kernels)
    assert zeros >= int(0.9 * sum(k.size for k in kernels))
    assert np.mean(kernels[-1] == 0) < 0.9  # the small output layer keeps more
