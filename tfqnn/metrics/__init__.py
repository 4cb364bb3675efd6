"""Metrics of quantized training that read the model's weights, not its outputs.

`FlipRatio` is the fraction of binary weights whose sign changed in a step.
"""

from tfqnn.metrics.flip_ratio import FlipRatio

__all__ = ["FlipRatio"]
