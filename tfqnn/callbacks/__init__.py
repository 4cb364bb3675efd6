"""Keras callbacks that drive quantization procedures during ``fit``."""

from tfqnn.callbacks.incremental_quantization import IncrementalQuantization

__all__ = [
    "IncrementalQuantization",
]
