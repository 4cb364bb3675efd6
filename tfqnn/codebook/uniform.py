"""Uniform quantization: equal-width bins, each represented by its members' mean.

Choi et al. 2017 (arXiv:1612.01543, section 4.2) use it as the simple
entropy-constrained scalar quantizer: with variable-length (Huffman) codes,
uniform thresholds are asymptotically optimal (Gish and Pierce 1968). The k
bins split [min, max] evenly; a bin's value is the importance-weighted mean
of its weights (an empty bin keeps its midpoint).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfqnn.codebook import _arrays
from tfqnn.codebook.codebook import Codebook


def uniform(values: Any, clusters: int, *, importance: Any = None) -> Codebook:
    """Equal-width bins over [min, max] with (importance-weighted) member means.

    Returns a `Codebook`, ``centroids`` (k,) ascending and ``indices`` (n,).
    """
    clusters = _arrays.check_clusters(clusters)
    v, h = _arrays.as_values(values, importance)
    w = np.ones_like(v) if h is None else h
    low, high = float(v.min()), float(v.max())
    width = (high - low) / clusters
    if width > 0:
        indices = np.clip(((v - low) / width).astype(np.int64), 0, clusters - 1)
    else:
        indices = np.zeros(v.size, dtype=np.int64)
    midpoints = low + (np.arange(clusters) + 0.5) * width
    weight = np.bincount(indices, weights=w, minlength=clusters)
    total = np.bincount(indices, weights=w * v, minlength=clusters)
    safe = np.where(weight > 0, weight, 1.0)
    centroids = np.where(weight > 0, total / safe, midpoints)
    return Codebook(centroids, indices.astype(np.int32))
