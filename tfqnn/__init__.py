"""tfqnn: quantized neural networks on Keras 3 with the TensorFlow backend.

Quantizers with straight-through estimators (`tfqnn.quantizers`), quantized
Keras layers (`tfqnn.layers`), a model summary by precision
(`tfqnn.summary`) and offline data sets (`tfqnn.datasets`).
"""

from tfqnn import activations, constraints, datasets, layers, quantizers
from tfqnn.summary import ModelSummary, LayerSummary, summary

__version__ = "0.1.0"

__all__ = [
    "LayerSummary",
    "ModelSummary",
    "activations",
    "constraints",
    "datasets",
    "layers",
    "quantizers",
    "summary",
]
