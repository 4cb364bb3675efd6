"""`Codebook`: centroids and the indices that select them, the result of every method."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Codebook(NamedTuple):
    """Centroids plus one index per weight (or per sub-vector).

    Shapes by method: scalar methods (kmeans, optimal, uniform, ecsq,
    weighted_entropy) give ``centroids`` (k,) and ``indices`` (n,);
    ``product`` gives (k, d) and (m,), one index per sub-vector of d weights;
    ``residual`` gives (stages, k, d) and (stages, m), the sub-vector being
    the sum of one centroid per stage.
    """

    centroids: np.ndarray
    indices: np.ndarray

    def decode(self) -> np.ndarray:
        """The quantized values: (n,) for scalar codebooks, (m, d) for vector ones."""
        if self.centroids.ndim == 3:
            return sum(c[i] for c, i in zip(self.centroids, self.indices))
        return self.centroids[self.indices]
