"""Codebook quantization: weight sharing, pruning and compressed files.

A model-level tool (docs/codebook.md): `cluster` replaces a model's kernels
with centroids plus indices (k-means and its exact 1-D optimum, uniform,
entropy-constrained, weighted-entropy, product and residual quantization,
optionally importance-weighted, with the damping chosen on held-out data
by ``damping="auto"``; with ``scope="model"`` all layers share one
`SharedCodebook`; `correct_biases` restores hidden layers' mean
pre-activations), `prune` zeroes the smallest weights,
`strip` returns the plain float model, `report` gives the sizes and
`save_compressed` writes a file of that size; `sketch` approximates each
float kernel by a sum of binary bases (network sketching), without
retraining. The algorithms also work on numpy
arrays alone (`kmeans`, `optimal`, ...), each returning a `Codebook`.
Quantizers and layers never import this package.
"""

from tfqnn.codebook.bias_correction import correct_biases
from tfqnn.codebook.cluster import METHODS, cluster
from tfqnn.codebook.codebook import Codebook
from tfqnn.codebook.compressed import load_compressed, save_compressed
from tfqnn.codebook.ecsq import ecsq
from tfqnn.codebook.kmeans import INITS, kmeans
from tfqnn.codebook.optimal import optimal
from tfqnn.codebook.product import product
from tfqnn.codebook.prune import prune
from tfqnn.codebook.report import CodebookReport, KernelReport, report
from tfqnn.codebook.residual import residual
from tfqnn.codebook.shared import SharedCodebook
from tfqnn.codebook.sketch import sketch
from tfqnn.codebook.strip import strip
from tfqnn.codebook.uniform import uniform
from tfqnn.codebook.weighted_entropy import weighted_entropy
from tfqnn.codebook.wrappers import Clustered, KernelWrapper, Pruned

__all__ = [
    "INITS",
    "METHODS",
    "Clustered",
    "Codebook",
    "CodebookReport",
    "KernelReport",
    "KernelWrapper",
    "Pruned",
    "SharedCodebook",
    "cluster",
    "correct_biases",
    "ecsq",
    "kmeans",
    "load_compressed",
    "optimal",
    "product",
    "prune",
    "report",
    "residual",
    "save_compressed",
    "sketch",
    "strip",
    "uniform",
    "weighted_entropy",
]
