"""prune(scope="model"): global magnitude pruning against a numpy reference."""

import keras
import numpy as np
import pytest

from tfqnn import codebook
from tfqnn.codebook.prune import global_magnitude_masks


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((10,))
    h = keras.layers.Dense(40, name="wide")(inputs)
    h = keras.layers.Reshape((4, 10, 1))(h)
    h = keras.layers.Conv2D(3, 2, name="conv")(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(4, name="out")(h)
    m = keras.Model(inputs, outputs)
    # Layers of different scales, so one global threshold prunes them unequally.
    for name, scale in (("wide", 0.1), ("conv", 1.0), ("out", 3.0)):
        kernel = m.get_layer(name).kernel
        kernel.assign(kernel.numpy() * scale)
    return m


def _kernels(model):
    return {
        layer.name: np.asarray(layer.decoded_kernels()["kernel"])
        for layer in model.layers
        if hasattr(layer, "decoded_kernels")
    }


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9])
def test_global_pruning_matches_one_threshold_over_all_kernels(model, sparsity):
    originals = {n: model.get_layer(n).kernel.numpy() for n in ("wide", "conv", "out")}
    magnitudes = np.concatenate([np.abs(k).ravel() for k in originals.values()])
    pruned_count = int(np.floor(sparsity * magnitudes.size))
    # Reference: the pruned_count-th smallest magnitude is the threshold (no ties here).
    assert np.unique(magnitudes).size == magnitudes.size
    threshold = np.sort(magnitudes)[pruned_count] if pruned_count else -np.inf
    kernels = _kernels(codebook.prune(model, sparsity, scope="model"))
    assert sum(int(np.sum(k == 0)) for k in kernels.values()) == pruned_count
    for name, kernel in kernels.items():
        kept = np.abs(originals[name]) >= threshold
        np.testing.assert_array_equal(kernel != 0, kept)
        np.testing.assert_array_equal(kernel[kept], originals[name][kept])


def test_global_pruning_prunes_small_layers_more_and_layer_scope_evenly(model):
    by_model = {
        n: np.mean(k == 0) for n, k in _kernels(codebook.prune(model, 0.5, scope="model")).items()
    }
    by_layer = {n: np.mean(k == 0) for n, k in _kernels(codebook.prune(model, 0.5)).items()}
    assert by_model["wide"] > 0.8 and by_model["out"] < 0.2
    for name, fraction in by_layer.items():
        size = model.get_layer(name).kernel.numpy().size
        assert fraction == np.floor(0.5 * size) / size


def test_global_pruning_of_selected_layers_and_repruning(model):
    once = codebook.prune(model, 0.4, scope="model", layers=["conv", "out"])
    kernels = _kernels(once)
    assert set(kernels) == {"conv", "out"}
    total = sum(k.size for k in kernels.values())
    assert sum(int(np.sum(k == 0)) for k in kernels.values()) == int(np.floor(0.4 * total))
    twice = _kernels(codebook.prune(once, 0.7, scope="model", layers=["conv", "out"]))
    assert sum(int(np.sum(k == 0)) for k in twice.values()) == int(np.floor(0.7 * total))
    for name in kernels:  # pruning further keeps the earlier zeros
        assert np.all(twice[name][kernels[name] == 0] == 0)


def test_global_masks_break_ties_by_position():
    masks = global_magnitude_masks([np.ones((2, 2)), -np.ones(3)], 3 / 7)
    np.testing.assert_array_equal(masks[0], [[False, False], [False, True]])
    np.testing.assert_array_equal(masks[1], [True, True, True])


def test_prune_bad_scope(model):
    with pytest.raises(ValueError, match="scope='net'"):
        codebook.prune(model, 0.5, scope="net")
