"""Residual quantization (Gong et al. 2014, arXiv:1412.6115, section 3.2.4).

Stage 1 clusters the sub-vectors of the kernel with k-means; each next stage
clusters what the previous stages left (the residuals), so a sub-vector is
the sum of one centroid per stage, w ~ c1[I1] + ... + ct[It]. Storage: t
indices of log2(k) bits per sub-vector plus t*k*d floats. Each stage lowers
(never raises) the squared error, as k-means of a residual can always pick
a centroid near zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfqnn import _validation
from tfqnn.codebook import _arrays
from tfqnn.codebook.codebook import Codebook
from tfqnn.codebook.kmeans import kmeans
from tfqnn.codebook.product import to_subvectors, vector_kmeans


def residual(
    kernel: Any,
    clusters: int,
    *,
    stages: int = 2,
    subvector_size: int = 1,
    axis: int = -1,
    iterations: int = 25,
    seed: int | None = 0,
) -> Codebook:
    """Residual-quantizes ``kernel`` in ``stages`` of k-means.

    Args:
        kernel: the weights, at least 1-D.
        clusters: k per stage, in [2, 65536].
        stages: t >= 1.
        subvector_size: d (1: scalar), a divisor of ``kernel.shape[axis]``.
        axis: the axis along which sub-vectors run.
        iterations: the most Lloyd iterations per stage (scalar stages,
            d = 1, use `kmeans` with linear init; vector ones k-means++).
        seed: seed of the k-means++ seeding.

    Returns:
        A `Codebook`: ``centroids`` (t, k, d) and ``indices`` (t, m).
    """
    clusters = _arrays.check_clusters(clusters)
    stages = _validation.check_int("stages", stages, 1)
    rows = to_subvectors(kernel, subvector_size, axis)
    left = rows.copy()
    centroids, indices = [], []
    for stage in range(stages):
        seed_t = None if seed is None else seed + stage
        if left.shape[1] == 1:  # scalar: the sorted 1-D Lloyd, linear init
            scalar = kmeans(left[:, 0], clusters, iterations=iterations)
            codebook = Codebook(scalar.centroids[:, None], scalar.indices)
        else:
            codebook = vector_kmeans(left, clusters, iterations=iterations, seed=seed_t)
        centroids.append(codebook.centroids)
        indices.append(codebook.indices)
        left = left - codebook.centroids[codebook.indices]
    return Codebook(np.stack(centroids), np.stack(indices))
