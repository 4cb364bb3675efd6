"""tfqnn: quantized neural networks on Keras 3 with the TensorFlow backend.

Quantizers with straight-through estimators (`tfqnn.quantizers`), quantized
Keras layers (`tfqnn.layers`), a model summary by precision
(`tfqnn.summary`), callbacks that quantize during ``fit``
(`tfqnn.callbacks`), offline data sets (`tfqnn.datasets`), TFLite export with
bitpacked binary kernels (`tfqnn.export`) and the runtime that runs them
(`tfqnn.lite`), and networks built from the layers (`tfqnn.zoo`);
`tfqnn.interop` loads the models of the tf_keras peers. Training tools:
`tfqnn.optimizers` (Bop, CaseOptimizer), `tfqnn.metrics` (FlipRatio),
`tfqnn.callbacks` (also HyperparameterScheduler, QuantizationMonitor);
codebook quantization and sketching of trained models: `tfqnn.codebook`;
figures: `tfqnn.plot` (matplotlib).

Where TensorFlow is installed, `import tfqnn` registers every layer and
quantizer with Keras, so `keras.models.load_model` needs no
`custom_objects`. Where it is not (an inference-only device), only the
TensorFlow-free `tfqnn.lite` is available.
"""

from __future__ import annotations

import importlib
import types

__version__ = "0.1.0"

_SUBMODULES = (
    "activations",
    "callbacks",
    "codebook",
    "constraints",
    "datasets",
    "distribute",
    "export",
    "layers",
    "lite",
    "quantizers",
    "zoo",
    "interop",
    "metrics",
    "optimizers",
    "plot",
)

__all__ = [
    "LayerSummary",
    "ModelSummary",
    "activations",
    "callbacks",
    "codebook",
    "constraints",
    "datasets",
    "distribute",
    "export",
    "layers",
    "lite",
    "metrics",
    "optimizers",
    "plot",
    "quantizers",
    "summary",
    "zoo",
    "interop",
]

try:
    from tfqnn import _deferred, activations, codebook, constraints, datasets, layers, quantizers
    from tfqnn._summary import LayerSummary, ModelSummary, summary

    _deferred.register()
    from tfqnn import metrics, optimizers  # register their Keras classes
except ModuleNotFoundError as error:  # no TensorFlow: tfqnn.lite only
    if (error.name or "").split(".")[0] not in ("tensorflow", "keras"):
        raise


def __getattr__(name: str) -> types.ModuleType:
    # The submodules not imported above load on first use.
    if name in _SUBMODULES:
        return importlib.import_module(f"tfqnn.{name}")
    raise AttributeError(f"module 'tfqnn' has no attribute {name!r}")
