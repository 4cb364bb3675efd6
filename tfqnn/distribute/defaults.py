"""Defaults shared by the compressed exchange's entry points.

A module of its own, below `config`, `communicator` and the compressors, so
that each of them reads the same value without an import cycle.
"""

from __future__ import annotations

# Gradients with fewer elements than this are exchanged uncompressed: biases
# and BatchNorm parameters cost little and lose most to quantization.
DEFAULT_MIN_ELEMENTS = 1024
