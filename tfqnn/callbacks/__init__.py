"""Keras callbacks for quantized training, one module per callback.

`IncrementalQuantization` runs INQ during ``fit``: a trained model's kernels
to power-of-two codebooks, portion by portion. `HyperparameterScheduler`
schedules any variable-backed hyperparameter of an optimizer (Bop's
``threshold`` and ``gamma``, a learning rate); `QuantizationMonitor` writes
what the quantized layers do to TensorBoard.
"""

from tfqnn.callbacks.hyperparameter_scheduler import HyperparameterScheduler
from tfqnn.callbacks.incremental_quantization import IncrementalQuantization
from tfqnn.callbacks.quantization_monitor import QuantizationMonitor

__all__ = ["HyperparameterScheduler", "IncrementalQuantization", "QuantizationMonitor"]
