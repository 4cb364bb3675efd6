"""Codebook quantization: weight sharing, pruning and compressed files.

A model-level tool (docs/codebook.md): `cluster` replaces a model's kernels
with centroids plus indices (k-means and its exact 1-D optimum, uniform,
entropy-constrained, weighted-entropy, product and residual quantization,
optionally importance-weighted), `prune` zeroes the smallest weights,
`strip` returns the plain float model. The algorithms also work on numpy
arrays alone (`kmeans`, `optimal`, ...), each returning a `Codebook`.
Quantizers and layers never import this package.
"""

from tfqnn.codebook.cluster import METHODS, cluster
from tfqnn.codebook.codebook import Codebook
from tfqnn.codebook.ecsq import ecsq
from tfqnn.codebook.kmeans import INITS, kmeans
from tfqnn.codebook.optimal import optimal
from tfqnn.codebook.product import product
from tfqnn.codebook.prune import prune
from tfqnn.codebook.residual import residual
from tfqnn.codebook.strip import strip
from tfqnn.codebook.uniform import uniform
from tfqnn.codebook.weighted_entropy import weighted_entropy
from tfqnn.codebook.wrappers import Clustered, KernelWrapper, Pruned

__all__ = [
    "INITS",
    "METHODS",
    "Clustered",
    "Codebook",
    "KernelWrapper",
    "Pruned",
    "cluster",
    "ecsq",
    "kmeans",
    "optimal",
    "product",
    "prune",
    "residual",
    "strip",
    "uniform",
    "weighted_entropy",
]
