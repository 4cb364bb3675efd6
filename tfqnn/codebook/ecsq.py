"""Entropy-constrained scalar quantization (Chou, Lookabaugh and Gray 1989).

Choi et al. 2017 (arXiv:1612.01543, section 4.3) quantize network weights by
minimising distortion plus lambda times the entropy of the indices, which a
Huffman code attains within a bit:

    J = sum_i h_i (w_i - c[I_i])^2 / (sum_i h_i * var_h(w)) + lambda * H(I),

H(I) = -sum_j p_j log2 p_j, p_j = |C_j| / n, h the importance. The
distortion is normalised by the weighted variance, so ``lagrange_multiplier``
is scale-free: J is in "bits" per weight. Iterations (Lloyd-like): assign
each weight to argmin_j h_i (w_i - c_j)^2 / var + lambda * (-log2 p_j),
then set c_j to the weighted mean and p_j to the share of cluster j; both
steps lower J. Clusters that empty out are dropped, so the codebook can end
with fewer than ``clusters`` centroids. With ``target_bits``, lambda is
found by bisection: the smallest lambda whose entropy is at most
``target_bits``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfqnn import _validation
from tfqnn.codebook import _arrays
from tfqnn.codebook.codebook import Codebook
from tfqnn.codebook.uniform import uniform

# Weights assigned per chunk (bounds the n x k cost matrix).
CHUNK = 1 << 16


def ecsq(
    values: Any,
    clusters: int,
    *,
    target_bits: float | None = None,
    lagrange_multiplier: float | None = None,
    importance: Any = None,
    iterations: int = 100,
) -> Codebook:
    """Entropy-constrained scalar quantization of ``values``.

    Args:
        values: the weights, any shape (flattened).
        clusters: the number of centroids it starts from (a uniform
            quantizer's bins), in [2, 65536].
        target_bits: the largest entropy of the indices, in bits per weight;
            exclusive with ``lagrange_multiplier``.
        lagrange_multiplier: lambda >= 0, the price of one bit of entropy in
            units of the normalised distortion. With neither given,
            ``target_bits = log2(clusters) - 1``.
        importance: optional non-negative weight per value.
        iterations: the most iterations per lambda.

    Returns:
        A `Codebook` whose centroids (ascending, at most ``clusters``) are all used.
    """
    clusters = _arrays.check_clusters(clusters)
    iterations = _validation.check_int("iterations", iterations, 1)
    if target_bits is not None and lagrange_multiplier is not None:
        raise ValueError(
            "Invalid target_bits and lagrange_multiplier: expected at most one of them."
        )
    v, h = _arrays.as_values(values, importance)
    w = np.ones_like(v) if h is None else h
    if lagrange_multiplier is not None:
        lam = _validation.check_number(
            "lagrange_multiplier", lagrange_multiplier, non_negative=True
        )
        return _compact(*_ecsq(v, w, clusters, lam, iterations))
    bits = np.log2(clusters) - 1 if target_bits is None else target_bits
    bits = _validation.check_number("target_bits", bits, non_negative=True)
    best = _ecsq(v, w, clusters, 0.0, iterations)
    if _arrays.entropy(best[1]) <= bits:
        return _compact(*best)
    low, high = 0.0, 1.0
    while True:
        result = _ecsq(v, w, clusters, high, iterations)
        if _arrays.entropy(result[1]) <= bits:
            best = result
            break
        low, high = high, high * 2
    for _ in range(20):
        mid = (low + high) / 2
        result = _ecsq(v, w, clusters, mid, iterations)
        if _arrays.entropy(result[1]) <= bits:
            high, best = mid, result
        else:
            low = mid
    return _compact(*best)


def _ecsq(
    v: np.ndarray, w: np.ndarray, clusters: int, lam: float, iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """Centroids and indices of iterative ECSQ at multiplier ``lam``, from a uniform start."""
    start = uniform(v, clusters, importance=w)
    centroids, indices = start.centroids, start.indices.astype(np.int64)
    h = w / w.mean()
    variance = float(np.average((v - np.average(v, weights=w)) ** 2, weights=w))
    scale = 1.0 / variance if variance > 0 else 1.0
    for _ in range(iterations):
        counts = np.bincount(indices, minlength=clusters)
        live = counts > 0
        price = np.full(clusters, np.inf)  # lambda * code length; dead clusters never win
        price[live] = lam * -np.log2(counts[live] / v.size)
        new = np.empty_like(indices)
        for begin in range(0, v.size, CHUNK):
            chunk = slice(begin, begin + CHUNK)
            cost = h[chunk, None] * scale * (v[chunk, None] - centroids) ** 2 + price
            new[chunk] = np.argmin(cost, axis=1)
        weight = np.bincount(new, weights=w, minlength=clusters)
        total = np.bincount(new, weights=w * v, minlength=clusters)
        safe = np.where(weight > 0, weight, 1.0)
        centroids = np.where(weight > 0, total / safe, centroids)
        if np.array_equal(new, indices):
            break
        indices = new
    return centroids, indices


def _compact(centroids: np.ndarray, indices: np.ndarray) -> Codebook:
    """The used centroids in ascending order, indices renumbered (at least two centroids)."""
    used = np.unique(indices)
    order = used[np.argsort(centroids[used], kind="stable")]
    if order.size == 1:  # keep a valid codebook of two entries
        order = np.array([order[0], order[0]])
    remap = np.zeros(centroids.size, dtype=np.int32)
    remap[order[::-1]] = np.arange(order.size, dtype=np.int32)[::-1]
    return Codebook(centroids[order], remap[indices])
