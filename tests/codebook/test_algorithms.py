"""The clustering algorithms against their definitions and numpy references."""

import itertools

import numpy as np
import pytest

from tfqnn import codebook
from tfqnn.codebook import _arrays
from tfqnn.codebook.kmeans import initial_centroids, objective
from tfqnn.codebook.product import from_subvectors, to_subvectors
from tfqnn.codebook.weighted_entropy import weighted_entropy_score


def brute_force_kmeans(v, k, h):
    """The least weighted squared error over all k^n assignments."""
    best = np.inf
    for assignment in itertools.product(range(k), repeat=v.size):
        a = np.array(assignment)
        error = 0.0
        for c in set(a.tolist()):
            members = a == c
            mean = np.average(v[members], weights=h[members])
            error += np.sum(h[members] * (v[members] - mean) ** 2)
        best = min(best, error)
    return best


def reference_lloyd(v, centroids, iterations=300):
    """Textbook Lloyd on an n x k distance matrix."""
    c = np.array(centroids, dtype=float)
    for _ in range(iterations):
        a = np.argmin(np.abs(v[:, None] - c[None]), axis=1)
        new = np.array([v[a == j].mean() if np.any(a == j) else c[j] for j in range(c.size)])
        if np.allclose(new, c, rtol=0, atol=0):
            break
        c = new
    return np.sort(c)


def test_optimal_equals_brute_force(rng):
    for _ in range(60):
        n = int(rng.integers(1, 8))
        k = int(rng.integers(2, 4))
        v = rng.normal(size=n).round(1)
        h = rng.uniform(0.1, 2.0, size=n)
        result = codebook.optimal(v, k, importance=h)
        assert objective(v, result, h) == pytest.approx(brute_force_kmeans(v, k, h), abs=1e-9)
        assert result.centroids.shape == (k,) and result.indices.shape == (n,)


def test_optimal_never_worse_than_lloyd(rng):
    v = np.concatenate([rng.normal(size=3000), rng.normal(4, 0.3, size=500)])
    exact = objective(v, codebook.optimal(v, 8))
    for init in codebook.INITS:
        assert exact <= objective(v, codebook.kmeans(v, 8, init=init)) + 1e-9


@pytest.mark.parametrize("init", ["linear", "density", "random", "kmeans++"])
def test_kmeans_matches_reference_lloyd(rng, init):
    v = rng.laplace(size=2000)
    s = np.sort(v)
    start = initial_centroids(s, np.ones_like(s), 8, init, 0)
    expected = reference_lloyd(v, start)
    result = codebook.kmeans(v, 8, init=init, seed=0)
    np.testing.assert_allclose(result.centroids, expected, rtol=1e-9, atol=1e-12)
    nearest = np.argmin(np.abs(v[:, None] - result.centroids[None]), axis=1)
    np.testing.assert_array_equal(result.centroids[result.indices], result.centroids[nearest])


def test_lloyd_never_increases_the_objective(rng):
    v = rng.standard_t(3, size=4000)
    previous = np.inf
    for iterations in range(0, 12):
        value = objective(v, codebook.kmeans(v, 6, init="random", iterations=iterations))
        assert value <= previous + 1e-9
        previous = value


def test_initialisations(rng):
    v = np.sort(rng.normal(size=1001))
    w = np.ones_like(v)
    np.testing.assert_allclose(initial_centroids(v, w, 5, "linear", 0), np.linspace(v[0], v[-1], 5))
    density = initial_centroids(v, w, 4, "density", 0)
    np.testing.assert_allclose(density, np.quantile(v, [0.125, 0.375, 0.625, 0.875]), atol=0.02)
    for init in ("random", "kmeans++"):
        seeds = initial_centroids(v, w, 6, init, 3)
        assert np.isin(seeds, v).all()
        np.testing.assert_array_equal(seeds, initial_centroids(v, w, 6, init, 3))


def test_uniform_importance_reduces_to_plain_kmeans(rng):
    v = rng.normal(size=3000)
    for method in (codebook.kmeans, codebook.optimal, codebook.uniform):
        plain = method(v, 8)
        weighted = method(v, 8, importance=np.full(v.size, 2.5))
        np.testing.assert_allclose(weighted.centroids, plain.centroids, rtol=1e-12)
        np.testing.assert_array_equal(weighted.indices, plain.indices)


def test_importance_pulls_centroids(rng):
    v = np.array([0.0, 1.0, 10.0, 11.0])
    h = np.array([1.0, 3.0, 1.0, 1.0])
    result = codebook.optimal(v, 2, importance=h)
    np.testing.assert_allclose(result.centroids, [0.75, 10.5])


def test_uniform_bins_and_means(rng):
    v = rng.uniform(-1, 3, size=500)
    result = codebook.uniform(v, 4)
    edges = np.linspace(v.min(), v.max(), 5)
    expected_bins = np.clip(np.digitize(v, edges[1:-1]), 0, 3)
    np.testing.assert_array_equal(result.indices, expected_bins)
    for j in range(4):
        assert result.centroids[j] == pytest.approx(v[expected_bins == j].mean())


def test_ecsq_entropy_falls_as_lambda_grows(rng):
    v = rng.normal(size=3000)
    entropies, errors = [], []
    for lam in (0.0, 0.01, 0.05, 0.2, 1.0):
        result = codebook.ecsq(v, 16, lagrange_multiplier=lam)
        entropies.append(_arrays.entropy(result.indices))
        errors.append(np.mean((v - result.decode()) ** 2))
    assert all(a >= b - 1e-12 for a, b in zip(entropies, entropies[1:]))
    assert entropies[0] > entropies[-1] + 1
    assert all(a <= b + 1e-12 for a, b in zip(errors, errors[1:]))


def test_ecsq_target_bits(rng):
    v = rng.normal(size=3000)
    for bits in (1.5, 2.5):
        result = codebook.ecsq(v, 16, target_bits=bits)
        entropy = _arrays.entropy(result.indices)
        assert bits - 0.3 <= entropy <= bits
        assert np.unique(result.indices).size == result.centroids.size


def test_weighted_entropy_boundaries_are_optimal_on_small_input(rng):
    v = rng.normal(size=12)
    result = codebook.weighted_entropy(v, 6)  # three magnitude ranges
    importance = np.sort(v * v)
    prefix = np.concatenate([[0.0], np.cumsum(importance)])
    best = max(
        weighted_entropy_score(prefix, np.array([0, a, b, 12]))
        for a, b in itertools.combinations(range(1, 12), 2)
    )
    magnitudes = np.abs(result.centroids[result.indices])
    counts = [np.sum(magnitudes == m) for m in np.unique(magnitudes)]
    got = weighted_entropy_score(prefix, np.concatenate([[0], np.cumsum(counts)]))
    # Coordinate ascent reaches a local maximum: at least as good as equal counts.
    assert got <= best + 1e-12
    assert got >= weighted_entropy_score(prefix, np.array([0, 4, 8, 12])) - 1e-12


def test_weighted_entropy_levels_are_signed_rms(rng):
    v = rng.normal(size=1000)
    for k in (4, 5):
        result = codebook.weighted_entropy(v, k)
        assert result.centroids.size == k
        np.testing.assert_allclose(result.centroids, -result.centroids[::-1], atol=1e-15)
        decoded = result.decode()
        assert np.all(np.sign(decoded[decoded != 0]) == np.sign(v[decoded != 0]))
        for level in np.unique(np.abs(decoded)):
            if level > 0:
                members = np.abs(decoded) == level
                assert level == pytest.approx(np.sqrt(np.mean(v[members] ** 2)))
        if k % 2:
            assert 0.0 in result.centroids


def test_subvector_layout_round_trips(rng):
    kernel = rng.normal(size=(3, 4, 6))
    for axis in (0, 1, 2, -1):
        d = kernel.shape[axis] // 2 if kernel.shape[axis] % 2 == 0 else 1
        rows = to_subvectors(kernel, d, axis)
        assert rows.shape == (kernel.size // d, d)
        np.testing.assert_array_equal(from_subvectors(rows, kernel.shape, axis), kernel)
    rows = to_subvectors(kernel, 2, 1)
    np.testing.assert_array_equal(rows[0], kernel[0, 0:2, 0])


def test_product_quantization(rng):
    centers = rng.normal(size=(8, 4))
    kernel = (centers[rng.integers(8, size=64)] + 0.01 * rng.normal(size=(64, 4))).T
    result = codebook.product(kernel, 8, subvector_size=4, axis=0)
    rows = to_subvectors(kernel, 4, 0)
    assert result.centroids.shape == (8, 4) and result.indices.shape == (64,)
    assert np.mean((rows - result.decode()) ** 2) < 1e-3
    # Each sub-vector goes to its nearest centroid.
    distance = ((rows[:, None] - result.centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(result.indices, np.argmin(distance, axis=1))


def test_residual_stages_lower_the_error(rng):
    kernel = rng.normal(size=(32, 16))
    errors = []
    for stages in (1, 2, 3):
        result = codebook.residual(kernel, 4, stages=stages, subvector_size=2)
        assert result.centroids.shape == (stages, 4, 2)
        rows = to_subvectors(kernel, 2, -1)
        errors.append(np.mean((rows - result.decode()) ** 2))
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: codebook.kmeans([1.0, 2.0], 1), "clusters=1"),
        (lambda: codebook.kmeans([1.0, 2.0], 65_537), "clusters=65537"),
        (lambda: codebook.kmeans([1.0, 2.0], 2, init="forgy"), "init='forgy'"),
        (lambda: codebook.optimal([1.0, np.nan], 2), "finite"),
        (lambda: codebook.uniform([], 2), "empty"),
        (lambda: codebook.kmeans([1.0, 2.0], 2, importance=[1.0]), "importance"),
        (lambda: codebook.ecsq([1.0, 2.0], 2, target_bits=1, lagrange_multiplier=1), "at most"),
        (lambda: codebook.ecsq([1.0, 2.0], 2, lagrange_multiplier=-1), "lagrange"),
        (lambda: codebook.product(np.ones((3, 4)), 2, subvector_size=3), "subvector_size"),
        (lambda: codebook.residual(np.ones(4), 2, stages=0), "stages"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
