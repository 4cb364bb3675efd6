"""Product quantization of a weight matrix (Gong et al. 2014, arXiv:1412.6115).

The kernel is cut into sub-vectors of ``subvector_size`` consecutive
entries along ``axis``; k-means (Lloyd, k-means++ seeding) in d dimensions
clusters the sub-vectors into k centroids of one codebook per layer (as
Stock et al. 2019 do) or, with ``blocks``, one per block of output channels
(Gong's per-block codebooks, which cost 32kd bits per block, more than they
save on small layers). Storage: log2(k) bits per sub-vector
plus k*d floats, about 32 d / log2(k) times smaller than float32. With
d = 1 it is scalar k-means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfqnn import _validation
from tfqnn.codebook import _arrays
from tfqnn.codebook.codebook import Codebook

# Sub-vectors per chunk of the distance matrix.
CHUNK = 1 << 15
# k-means++ seeds from at most this many sub-vectors.
SEED_SAMPLE = 20_000
# Lloyd stops when at most this share of the assignments changed in an iteration.
STABLE = 1e-3


def product(
    kernel: Any,
    clusters: int,
    *,
    subvector_size: int = 4,
    axis: int = -1,
    blocks: int = 1,
    importance: Any = None,
    iterations: int = 25,
    seed: int | None = 0,
) -> Codebook:
    """Product-quantizes ``kernel``: one index per sub-vector, a codebook per block.

    With ``blocks`` = B > 1 the kernel's last axis (the output channels of
    Dense and convolutions) is cut into B equal blocks and each block's
    sub-vectors get their own k-means codebook, independent of the others
    (Gong et al. 2014's per-block codebooks; with ``axis=-1`` and B =
    channels / d, exactly Gong's split of W into column blocks). Costs B k d
    floats of codebooks instead of k d.

    Args:
        kernel: the weights, at least 1-D.
        clusters: k per block, in [2, 65536].
        subvector_size: d, which must divide ``kernel.shape[axis]``.
        axis: the axis along which sub-vectors run.
        blocks: B, a divisor of the last axis whose blocks do not cut
            sub-vectors (see `block_ids`).
        importance: optional non-negative weight per kernel entry; a
            sub-vector's weight is the mean of its entries'.
        iterations: the most Lloyd iterations (25, as faiss; it stops once
            at most 0.1 % of the assignments change).
        seed: seed of the k-means++ seeding (block b uses seed + b).

    Returns:
        A `Codebook`: ``centroids`` (B k, d), block b's codebook in rows
        b k to (b + 1) k - 1, and ``indices`` (m,), m = size / d, in the
        order of `to_subvectors`, each into its own block's rows.
    """
    clusters = _arrays.check_clusters(clusters)
    rows = to_subvectors(kernel, subvector_size, axis)
    ids = block_ids(np.shape(kernel), axis, subvector_size, blocks)
    weights = None
    if importance is not None:
        _, h = _arrays.as_values(kernel, importance)
        if h is not None:
            weights = to_subvectors(h.reshape(np.shape(kernel)), subvector_size, axis).mean(axis=1)
    iterations = _validation.check_int("iterations", iterations, 0)
    centroids = np.empty((blocks * clusters, rows.shape[1]))
    indices = np.empty(rows.shape[0], dtype=np.int32)
    for b in range(blocks):
        members = ids == b
        part = vector_kmeans(
            rows[members],
            clusters,
            weights=None if weights is None else weights[members],
            iterations=iterations,
            seed=None if seed is None else seed + b,
        )
        centroids[b * clusters : (b + 1) * clusters] = part.centroids
        indices[members] = part.indices + b * clusters
    return Codebook(centroids, indices)


def to_subvectors(kernel: Any, subvector_size: int, axis: int) -> np.ndarray:
    """The (m, d) sub-vectors of ``kernel``: d consecutive entries along ``axis``."""
    array = np.asarray(kernel, dtype=np.float64)
    if array.ndim == 0:
        raise ValueError("Invalid kernel: expected an array of at least one dimension.")
    axis = _validation.check_int("axis", axis, -array.ndim, array.ndim - 1)
    size = array.shape[axis]
    d = _validation.check_int("subvector_size", subvector_size, 1)
    if size % d:
        raise ValueError(
            f"Invalid subvector_size={subvector_size}: expected a divisor of the kernel's "
            f"size {size} along axis {axis}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("Invalid kernel: expected finite numbers, got NaN or infinity.")
    return np.moveaxis(array, axis, -1).reshape(-1, d)


def block_ids(shape: Sequence[int], axis: int, subvector_size: int, blocks: int) -> np.ndarray:
    """The block (0 .. blocks - 1) of each sub-vector of a kernel of ``shape``.

    Blocks cut the last axis into ``blocks`` equal parts; sub-vectors are
    ordered as `to_subvectors` orders them. Raises
    ValueError when the blocks do not divide the last axis or cut a
    sub-vector.
    """
    shape = tuple(int(n) for n in shape)
    blocks = _validation.check_int("blocks", blocks, 1)
    if not shape or shape[-1] % blocks:
        raise ValueError(
            f"Invalid blocks={blocks}: expected a divisor of the kernel's last axis "
            f"{shape[-1] if shape else None} (shape {shape})."
        )
    ids = np.broadcast_to(np.arange(shape[-1]) // (shape[-1] // blocks), shape)
    rows = np.moveaxis(ids, axis, -1).reshape(-1, subvector_size)
    if np.any(rows != rows[:, :1]):
        raise ValueError(
            f"Invalid blocks={blocks} with subvector_size={subvector_size}: a block of "
            f"{shape[-1] // blocks} channels cuts sub-vectors; expected blocks whose width "
            "is a multiple of subvector_size."
        )
    return rows[:, 0].astype(np.int64)


def from_subvectors(rows: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """The kernel of ``shape`` whose `to_subvectors` are ``rows`` (the inverse)."""
    moved = list(shape)
    moved.append(moved.pop(axis % len(shape)))
    return np.moveaxis(rows.reshape(moved), -1, axis)


def vector_kmeans(
    rows: np.ndarray,
    clusters: int,
    *,
    weights: np.ndarray | None = None,
    iterations: int = 25,
    seed: int | None = 0,
) -> Codebook:
    """Lloyd's k-means of the (m, d) ``rows`` with k-means++ seeding.

    Stops after ``iterations``, or once at most `STABLE` (0.1 %) of the
    assignments change in an iteration; each index is the nearest of the
    returned centroids.
    """
    m, d = rows.shape
    w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
    rng = np.random.default_rng(seed)
    centroids = _seeds(rows, w, clusters, rng)
    indices = _assign(rows, centroids)
    for _ in range(iterations):
        weight = np.bincount(indices, weights=w, minlength=clusters)
        sums = np.stack(
            [np.bincount(indices, weights=w * rows[:, t], minlength=clusters) for t in range(d)],
            axis=1,
        )
        live = weight > 0
        centroids[live] = sums[live] / weight[live, None]
        new = _assign(rows, centroids)
        changed = np.count_nonzero(new != indices)
        indices = new
        if changed <= STABLE * m:
            break
    return Codebook(centroids, indices.astype(np.int32))


def _assign(rows: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean, in float32) of each row."""
    out = np.empty(rows.shape[0], dtype=np.int64)
    c = centroids.astype(np.float32)
    norms = (c * c).sum(axis=1)
    for begin in range(0, rows.shape[0], CHUNK):
        chunk = rows[begin : begin + CHUNK].astype(np.float32)
        out[begin : begin + CHUNK] = np.argmin(norms - 2 * chunk @ c.T, axis=1)
    return out


def _seeds(
    rows: np.ndarray, weights: np.ndarray, clusters: int, rng: np.random.Generator
) -> np.ndarray:
    """k-means++ seeds (on a sample of at most `SEED_SAMPLE` rows)."""
    if rows.shape[0] > SEED_SAMPLE:
        pick = rng.choice(rows.shape[0], SEED_SAMPLE, replace=False)
        rows, weights = rows[pick], weights[pick]
    centroids = np.empty((clusters, rows.shape[1]))
    centroids[0] = rows[rng.integers(rows.shape[0])]
    distance = ((rows - centroids[0]) ** 2).sum(axis=1)
    for j in range(1, clusters):
        p = weights * distance
        total = p.sum()
        if total <= 0:
            centroids[j:] = centroids[0]
            break
        centroids[j] = rows[rng.choice(rows.shape[0], p=p / total)]
        distance = np.minimum(distance, ((rows - centroids[j]) ** 2).sum(axis=1))
    return centroids
