"""Scalar k-means (Lloyd's algorithm) with Deep Compression's initialisations.

Minimises ``sum_i h_i (w_i - c[I_i])^2`` over centroids c and assignments I,
where h is the importance (ones for plain k-means; a diagonal Hessian for
Choi et al. 2017's Hessian-weighted k-means, arXiv:1612.01543). Lloyd
alternates nearest-centroid assignment and weighted-mean update, so the
objective never increases. Initialisations (Han et al. 2016, arXiv:1510.00149,
section 3.2): ``"linear"`` (evenly spaced in [min, max]), ``"density"``
(evenly spaced quantiles of the weights), ``"random"`` (Forgy: k distinct
weights) and ``"kmeans++"`` (Arthur and Vassilvitskii 2007: D^2 sampling).

In one dimension the clusters are contiguous ranges of the sorted weights,
so one iteration costs O(k log n): the boundaries are the midpoints between
sorted centroids, found by binary search, and the means are differences of
prefix sums. Sorting (O(n log n)) is paid once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfqnn import _validation
from tfqnn.codebook import _arrays
from tfqnn.codebook.codebook import Codebook

INITS = ("linear", "density", "random", "kmeans++")
# kmeans++ samples its seeds from at most this many weights.
KMEANS_PP_SAMPLE = 100_000


def kmeans(
    values: Any,
    clusters: int,
    *,
    init: str = "linear",
    importance: Any = None,
    iterations: int = 300,
    seed: int | None = 0,
) -> Codebook:
    """Clusters scalar ``values`` into ``clusters`` centroids with Lloyd's algorithm.

    Args:
        values: the weights, any shape (flattened).
        clusters: k, in [2, 65536].
        init: ``"linear"``, ``"density"``, ``"random"`` or ``"kmeans++"``.
        importance: optional non-negative weight per value (same size):
            centroids are importance-weighted means.
        iterations: the most Lloyd iterations; it stops earlier when the
            assignment no longer changes.
        seed: seed of ``"random"`` and ``"kmeans++"``.

    Returns:
        A `Codebook` with ``centroids`` (k,) sorted ascending and
        ``indices`` (n,) in the order of ``values``.
    """
    clusters = _arrays.check_clusters(clusters)
    _validation.check_choice("init", init, INITS)
    iterations = _validation.check_int("iterations", iterations, 0)
    v, w = _arrays.as_values(values, importance)
    data = _arrays.Sorted.of(v, w, order=w is not None)
    sorted_weights = np.ones_like(v) if w is None else w[data.order]
    centroids = initial_centroids(data.values, sorted_weights, clusters, init, seed)
    centroids = lloyd(data, centroids, iterations)
    return Codebook(centroids, _arrays.nearest(v, centroids).astype(np.int32))


def lloyd(data: _arrays.Sorted, centroids: np.ndarray, iterations: int) -> np.ndarray:
    """Lloyd iterations on sorted data from ``centroids``; returns sorted centroids."""
    c = np.sort(centroids)
    stops = None
    for _ in range(iterations):
        new_stops = data.split(c)
        if stops is not None and np.array_equal(new_stops, stops):
            break
        stops = new_stops
        starts = np.concatenate([[0], stops])
        ends = np.concatenate([stops, [data.values.size]])
        c = np.sort(data.means(starts, ends, c))
    return c


def objective(values: Any, codebook: Codebook, importance: Any = None) -> float:
    """``sum_i h_i (w_i - c[I_i])^2``: the (importance-weighted) squared error."""
    v, w = _arrays.as_values(values, importance)
    error = (v - codebook.decode().ravel()) ** 2
    return float(np.sum(error if w is None else w * error))


def initial_centroids(
    sorted_values: np.ndarray,
    sorted_weights: np.ndarray,
    clusters: int,
    init: str,
    seed: int | None,
) -> np.ndarray:
    """The ``init`` centroids of ascending ``sorted_values``."""
    v = sorted_values
    if init == "linear":
        return np.linspace(v[0], v[-1], clusters)
    if init == "density":
        q = (np.arange(clusters) + 0.5) / clusters
        return v[np.minimum((q * v.size).astype(np.int64), v.size - 1)]
    rng = np.random.default_rng(seed)
    if init == "random":
        return rng.choice(v, clusters, replace=v.size < clusters)
    if v.size > KMEANS_PP_SAMPLE:
        pick = rng.choice(v.size, KMEANS_PP_SAMPLE, replace=False)
        v, sorted_weights = v[pick], sorted_weights[pick]
    return kmeans_plus_plus(v, sorted_weights, clusters, rng)


def kmeans_plus_plus(
    values: np.ndarray, weights: np.ndarray, clusters: int, rng: np.random.Generator
) -> np.ndarray:
    """D^2 seeding: each next centroid drawn with probability ~ importance * distance^2."""
    centroids = np.empty(clusters)
    centroids[0] = values[rng.integers(values.size)]
    distance = (values - centroids[0]) ** 2
    for j in range(1, clusters):
        p = weights * distance
        total = p.sum()
        if total <= 0:  # fewer distinct values than clusters
            centroids[j:] = centroids[0]
            break
        centroids[j] = values[rng.choice(values.size, p=p / total)]
        distance = np.minimum(distance, (values - centroids[j]) ** 2)
    return centroids
