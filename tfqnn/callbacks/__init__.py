"""Keras callbacks for quantized training, one module per callback.

`HyperparameterScheduler` schedules any variable-backed hyperparameter of
an optimizer (Bop's ``threshold`` and ``gamma``, a learning rate);
`QuantizationMonitor` writes what the quantized layers do to TensorBoard.
"""

from tfqnn.callbacks.hyperparameter_scheduler import HyperparameterScheduler
from tfqnn.callbacks.quantization_monitor import QuantizationMonitor

__all__ = ["HyperparameterScheduler", "QuantizationMonitor"]
