"""Keras callbacks for quantized training, one module per callback.

`HyperparameterScheduler` schedules any variable-backed hyperparameter of
an optimizer (Bop's ``threshold`` and ``gamma``, a learning rate).
"""

from tfqnn.callbacks.hyperparameter_scheduler import HyperparameterScheduler

__all__ = ["HyperparameterScheduler"]
