"""weighted_entropy's zero level: Park's odd-k zero, and none on pruned kernels."""

import keras
import numpy as np
import pytest

from tfqnn import codebook


def _check_signed_rms(v, result):
    decoded = result.decode()
    nonzero = decoded != 0
    assert np.all(np.sign(decoded[nonzero]) == np.sign(v[nonzero]))
    for level in np.unique(np.abs(decoded[nonzero])):
        members = np.abs(decoded) == level
        assert level == pytest.approx(np.sqrt(np.mean(v[members] ** 2)))


@pytest.mark.parametrize("k", [3, 7, 15])
def test_odd_k_without_zero_level_gives_only_nonzero_levels(rng, k):
    v = rng.normal(size=2000)
    result = codebook.weighted_entropy(v, k, zero_level=False)
    assert result.centroids.size == k
    assert np.all(result.centroids != 0)
    decoded = result.decode()
    assert np.all(decoded != 0)
    # floor(k/2) magnitude ranges, each +-RMS: k - 1 distinct levels.
    assert np.unique(decoded).size == k - 1
    assert np.unique(np.abs(decoded)).size == k // 2
    _check_signed_rms(v, result)
    # The same ranges as the even k - 1 (the boundaries depend only on the ranges).
    np.testing.assert_array_equal(decoded, codebook.weighted_entropy(v, k - 1).decode())


def test_zero_level_default_follows_parity_and_can_be_forced(rng):
    v = rng.normal(size=2000)
    odd = codebook.weighted_entropy(v, 7)
    assert np.mean(odd.decode() == 0) > 0.05  # Park's zero: the smallest magnitudes
    np.testing.assert_array_equal(
        odd.decode(), codebook.weighted_entropy(v, 7, zero_level=True).decode()
    )
    even = codebook.weighted_entropy(v, 8, zero_level=True)
    assert 0.0 in even.centroids
    assert np.unique(even.decode()).size == 7  # 4 ranges: 0 and +-3 levels
    _check_signed_rms(v, even)
    assert not np.any(codebook.weighted_entropy(v, 8).decode() == 0)


def test_bad_zero_level(rng):
    with pytest.raises(ValueError, match="zero_level"):
        codebook.weighted_entropy(rng.normal(size=10), 4, zero_level="yes")


def test_pruned_kernel_keeps_every_surviving_weight_nonzero():
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(30, name="fc"), keras.layers.Dense(5, name="out")]
    )
    pruned = codebook.prune(model, 0.5)
    survivors = {
        name: pruned.get_layer(name).decoded_kernels()["kernel"] != 0 for name in ("fc", "out")
    }
    for scope in ("layer", "model"):
        clustered = codebook.cluster(pruned, 7, method="weighted_entropy", scope=scope)
        stripped = codebook.strip(clustered)
        for name, keep in survivors.items():
            kernel = stripped.get_layer(name).kernel.numpy()
            # zeros exactly where pruned: no second zero level among the survivors
            np.testing.assert_array_equal(kernel != 0, keep)
            values = np.unique(kernel[keep])
            assert values.size == 6  # 3 magnitude ranges, +-RMS each
            np.testing.assert_allclose(values, -values[::-1], rtol=1e-6)
    x = rng.normal(size=(4, 20)).astype("float32")
    assert np.all(np.isfinite(clustered.predict(x, verbose=0)))
