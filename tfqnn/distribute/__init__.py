"""Gradient compression for tf.distribute (work in progress: see issue 4).

`packing` holds the int32 bit and field packing that compressed gradients
travel in.
"""

from tfqnn.distribute import packing

__all__ = ["packing"]
