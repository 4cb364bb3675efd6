"""Weighted-entropy quantization of weights (Park, Ahn and Yoo, CVPR 2017).

A weight's importance is its square, I = w^2. The magnitudes |w| are split
into ceil(k/2) contiguous ranges of the sorted importance C_1..C_B chosen to
maximise the weighted entropy

    S = -sum_n I_n P_n log P_n,   P_n = |C_n| / N,   I_n = mean importance in C_n,

starting from equal counts and moving each boundary, one at a time, to its
best position between its neighbours until S stops rising. Each range is
represented by its RMS sqrt(I_n) with the sign of the weight, giving the
levels +-sqrt(I_n). With a zero level (by default when k is odd, as in
Park's caffe-WQ, which clusters |w| into ceil(k/2) bins and restores signs)
the range of the smallest magnitudes becomes 0. The surviving weights of a
pruned kernel already have their zero (the pruned code), so `cluster` asks
for no zero level there: floor(k/2) ranges give k - k % 2 nonzero levels
(an odd k leaves one code unused) instead of turning the smallest surviving
eighth of the weights into a second zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfqnn import _validation
from tfqnn.codebook import _arrays
from tfqnn.codebook.codebook import Codebook


def weighted_entropy(
    values: Any, clusters: int, *, sweeps: int = 50, zero_level: bool | None = None
) -> Codebook:
    """Park 2017's weighted-entropy codebook of ``values`` (importance w^2).

    Args:
        values: the weights, any shape (flattened).
        clusters: k levels, in [2, 65536]: ceil(k/2) magnitude ranges, each
            giving +-RMS, the first giving 0, with a zero level; floor(k/2)
            ranges without (an odd k then repeats the largest level).
        sweeps: the most passes over the boundaries.
        zero_level: whether the smallest magnitudes become 0; None: when k
            is odd (Park's caffe-WQ). ``cluster`` passes False for pruned
            kernels, whose zero is the pruned code.

    Returns:
        A `Codebook`, ``centroids`` (k,) ascending and ``indices`` (n,).
    """
    clusters = _arrays.check_clusters(clusters)
    sweeps = _validation.check_int("sweeps", sweeps, 1)
    if zero_level not in (None, True, False):
        raise ValueError(f"Invalid zero_level={zero_level!r}: expected None, True or False.")
    zero = clusters % 2 == 1 if zero_level is None else bool(zero_level)
    v, _ = _arrays.as_values(values)
    n = v.size
    importance = v * v
    order = np.argsort(importance, kind="stable")
    prefix = np.concatenate([[0.0], np.cumsum(importance[order])])
    bins = min((clusters + 1) // 2 if zero else clusters // 2, n)
    bounds = np.round(np.linspace(0, n, bins + 1)).astype(np.int64)
    score = weighted_entropy_score(prefix, bounds)
    for _ in range(sweeps):
        for t in range(1, bins):
            candidates = np.arange(bounds[t - 1] + 1, bounds[t + 1])
            if candidates.size == 0:
                continue
            left = _term(prefix, bounds[t - 1], candidates, n)
            right = _term(prefix, candidates, bounds[t + 1], n)
            bounds[t] = candidates[np.argmax(left + right)]
        new_score = weighted_entropy_score(prefix, bounds)
        if new_score <= score:
            break
        score = new_score
    counts = np.diff(bounds)
    rms = np.sqrt((prefix[bounds[1:]] - prefix[bounds[:-1]]) / np.maximum(counts, 1))
    if zero:
        rms[0] = 0.0
    magnitudes = np.repeat(np.arange(bins), counts)
    bin_of = np.empty(n, dtype=np.int64)
    bin_of[order] = magnitudes
    # Codes: negatives -rms[B-1..], (zero), positives ..rms[B-1], ascending.
    negative = 0.0 - rms[::-1]
    positive = rms[1:] if zero else rms
    centroids = np.concatenate([negative, positive])
    offset = bins  # first positive code
    codes = np.where(v < 0, bins - 1 - bin_of, offset + bin_of - (1 if zero else 0))
    if zero:
        codes = np.where(bin_of == 0, bins - 1, codes)
    if centroids.size < clusters:  # few weights, or odd k without zero: repeat the largest
        centroids = np.concatenate([centroids, np.full(clusters - centroids.size, centroids[-1])])
    return Codebook(centroids, codes.astype(np.int32))


def weighted_entropy_score(prefix: np.ndarray, bounds: np.ndarray) -> float:
    """S = -sum_n I_n P_n log P_n of the ranges of sorted importance between ``bounds``."""
    n = int(bounds[-1])
    return float(np.sum(_term(prefix, bounds[:-1], bounds[1:], n)))


def _term(prefix: np.ndarray, start: Any, stop: Any, n: int) -> np.ndarray:
    """-I P log P of range [start, stop): -(sum of importance / N) log(count / N)."""
    count = np.asarray(stop - start, dtype=np.float64)
    total = prefix[stop] - prefix[start]
    p = np.maximum(count, 1) / n
    return np.where(count > 0, -(total / n) * np.log(p), 0.0)
