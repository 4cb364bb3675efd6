"""Exact 1-D k-means by dynamic programming (Wang and Song 2011, Ckmeans.1d.dp).

The clusters of an optimal 1-D k-means are contiguous ranges of the sorted
weights, so with ``D[m][i]`` the least (importance-weighted) squared error of
the first i sorted weights in m clusters,

    D[m][i] = min_{j <= i} D[m-1][j] + cost(j, i),

where cost(j, i) is the squared error of the range [j, i) around its mean,
O(1) from prefix sums. The optimal j is non-decreasing in i (the cost is a
Monge array), so each row is solved by divide and conquer in O(n log n):
the middle i of a range of i's is solved over its allowed j's, which split
the allowed j's of the two halves. tfqnn runs the recursion level by level,
all ranges of a level in one vectorised numpy pass, for O(k n log n) work and
O(k n) memory (the argmins, int32). The result is the global optimum of the
scalar k-means objective, which Lloyd only approaches locally.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfqnn.codebook import _arrays
from tfqnn.codebook.codebook import Codebook


def optimal(values: Any, clusters: int, *, importance: Any = None) -> Codebook:
    """The globally optimal scalar k-means codebook of ``values``.

    Args:
        values: the weights, any shape (flattened).
        clusters: k, in [2, 65536]. With fewer distinct values than k, the
            surplus centroids repeat values (the error is then zero).
        importance: optional non-negative weight per value.

    Returns:
        A `Codebook`, ``centroids`` (k,) ascending and ``indices`` (n,).
    """
    clusters = _arrays.check_clusters(clusters)
    v, w = _arrays.as_values(values, importance)
    data = _arrays.Sorted.of(v, w)
    n = v.size
    all_i = np.arange(n + 1)
    # One cluster: D[1][i] = cost(0, i).
    previous = data.costs(np.zeros(n + 1, dtype=np.int64), all_i)
    argmins = []
    for m in range(2, clusters + 1):
        if m == clusters:  # only i = n is needed in the last row
            j = np.arange(n + 1)
            total = previous + data.costs(j, np.full(n + 1, n))
            argmins.append(np.array([int(np.argmin(total))]))
            break
        previous, best = _next_row(data, previous)
        argmins.append(best)
    stops = [n]
    for m, best in zip(range(clusters, 1, -1), reversed(argmins)):
        i = stops[-1]
        stops.append(int(best[0] if m == clusters else best[i]))
    bounds = np.array([0, *stops[::-1]])  # clusters + 1 positions from 0 to n
    starts, ends = bounds[:-1], bounds[1:]
    fallback = data.values[np.minimum(starts, n - 1)]
    centroids = data.means(starts, ends, fallback)
    return Codebook(centroids, data.scatter(bounds[1:-1]))


def _next_row(data: _arrays.Sorted, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``D[m]`` and its argmins from ``D[m-1]``, by level-wise divide and conquer."""
    n = previous.size - 1
    # cost(j, i) = (Q_i - Q_j) - (S_i - S_j)^2 / (W_i - W_j); Q_i is common to a row.
    base = previous - data.Q
    row = np.empty(n + 1)
    best = np.zeros(n + 1, dtype=np.int32)
    # Ranges of i (inclusive) with their allowed j range (inclusive).
    ilo, ihi = np.array([0]), np.array([n])
    jlo, jhi = np.array([0]), np.array([n])
    while ilo.size:
        mid = (ilo + ihi) // 2
        lengths = np.minimum(jhi, mid) - jlo + 1
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        j = np.arange(int(lengths.sum())) - np.repeat(offsets - jlo, lengths)
        dw = np.repeat(data.W[mid], lengths) - data.W[j]
        ds = np.repeat(data.S[mid], lengths) - data.S[j]
        explained = np.divide(ds * ds, dw, out=np.zeros_like(dw), where=dw > 0)
        value = base[j] - explained
        mins = np.minimum.reduceat(value, offsets)
        # The first argmin of each range (ties are rare, so few candidates).
        hits = np.flatnonzero(value <= np.repeat(mins, lengths))
        owner = np.searchsorted(offsets, hits, side="right") - 1
        first = np.concatenate([[True], owner[1:] != owner[:-1]])
        opt = j[hits[first]]
        row[mid] = mins + data.Q[mid]
        best[mid] = opt
        left = ilo <= mid - 1
        right = mid + 1 <= ihi
        ilo, ihi, jlo, jhi = (
            np.concatenate([ilo[left], mid[right] + 1]),
            np.concatenate([mid[left] - 1, ihi[right]]),
            np.concatenate([jlo[left], opt[right]]),
            np.concatenate([opt[left], jhi[right]]),
        )
    return row, best
