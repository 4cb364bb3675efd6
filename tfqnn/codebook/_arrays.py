"""Checks and sorted prefix sums shared by the clustering algorithms."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from tfqnn import _validation

MAX_CLUSTERS = 65_536


def check_clusters(clusters: Any) -> int:
    """``clusters`` as an int in [2, 65536]."""
    return _validation.check_int("clusters", clusters, 2, MAX_CLUSTERS)


def as_values(values: Any, importance: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Flat float64 values and their importance (None when None or all zero), both finite.

    Raises ValueError for an empty array, non-finite values, an importance of
    another size, or negative importance.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("Invalid values: expected at least one value, got an empty array.")
    if not np.all(np.isfinite(v)):
        raise ValueError("Invalid values: expected finite numbers, got NaN or infinity.")
    if importance is None:
        return v, None
    w = np.asarray(importance, dtype=np.float64).ravel()
    if w.shape != v.shape:
        raise ValueError(
            f"Invalid importance of shape {np.shape(importance)}: expected {v.size} values, "
            "one per weight."
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("Invalid importance: expected finite non-negative numbers.")
    if not np.any(w > 0):
        return v, None
    return v, w


class Sorted(NamedTuple):
    """Values sorted ascending with prefix sums of weight, weight*value and weight*value².

    ``W[i]`` is the total weight of the first i sorted values (``W[0] = 0``);
    the sums of a range [j, i) are differences. Values are centred on their
    weighted mean (``shift``) so that the sums of squares lose no precision.
    """

    values: np.ndarray
    order: np.ndarray
    W: np.ndarray
    S: np.ndarray
    Q: np.ndarray
    shift: float

    @classmethod
    def of(cls, values: np.ndarray, weights: np.ndarray | None, order: bool = True) -> Sorted:
        """Sorts ``values`` (with ``weights``; None: all ones).

        Without ``order`` (np.sort instead of argsort, faster) `scatter` is
        unavailable.
        """
        if order:
            indices = np.argsort(values, kind="stable")
            v = values[indices]
        else:
            indices = np.empty(0, dtype=np.int64)
            v = np.sort(values)
        zero = np.zeros(1)
        if weights is None:
            shift = float(v.mean())
            c = v - shift
            W = np.arange(v.size + 1, dtype=np.float64)
            S = np.concatenate([zero, np.cumsum(c)])
            c *= c
            Q = np.concatenate([zero, np.cumsum(c)])
            return cls(values=v, order=indices, W=W, S=S, Q=Q, shift=shift)
        w = weights[indices] if order else weights
        shift = float(np.sum(w * v) / np.sum(w))
        c = v - shift
        return cls(
            values=v,
            order=indices,
            W=np.concatenate([zero, np.cumsum(w)]),
            S=np.concatenate([zero, np.cumsum(w * c)]),
            Q=np.concatenate([zero, np.cumsum(w * c * c)]),
            shift=shift,
        )

    def means(self, starts: np.ndarray, stops: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """Weighted mean of each sorted range [start, stop); ``fallback`` where it is empty."""
        weight = self.W[stops] - self.W[starts]
        total = self.S[stops] - self.S[starts]
        safe = np.where(weight > 0, weight, 1.0)
        return np.where(weight > 0, total / safe + self.shift, fallback)

    def split(self, centroids: np.ndarray) -> np.ndarray:
        """End of each nearest-centroid range but the last, for ascending ``centroids``."""
        boundaries = (centroids[:-1] + centroids[1:]) / 2
        return np.searchsorted(self.values, boundaries, side="right")

    def scatter(self, stops: np.ndarray) -> np.ndarray:
        """Indices in the original order of the ranges ending at ``stops`` (and n)."""
        n = self.values.size
        counts = np.diff(np.concatenate([[0], stops, [n]]))
        indices = np.empty(n, dtype=np.int32)
        indices[self.order] = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
        return indices

    def costs(self, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
        """Weighted squared error of each range [start, stop) around its weighted mean."""
        weight = self.W[stops] - self.W[starts]
        total = self.S[stops] - self.S[starts]
        squares = self.Q[stops] - self.Q[starts]
        safe = np.where(weight > 0, weight, 1.0)
        return np.maximum(squares - np.where(weight > 0, total * total / safe, 0.0), 0.0)


def nearest(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of each value (the lower one on a tie)."""
    order = np.argsort(centroids, kind="stable")
    c = centroids[order]
    boundaries = (c[:-1] + c[1:]) / 2
    return order[np.searchsorted(boundaries, values, side="left")]


def entropy(indices: np.ndarray, clusters: int | None = None) -> float:
    """Entropy in bits per symbol of the index distribution."""
    counts = np.bincount(np.asarray(indices).ravel(), minlength=clusters or 0)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())
