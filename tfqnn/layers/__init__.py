"""Quantized Keras layers: each subclasses its Keras 3 parent and restates its
signature, with the quantizers as keyword-only arguments.

`QuantizerMixin` and `QuantizedKernel` are what a new quantized layer is
built from (docs/layers.md, "Adding a layer").
"""

from tfqnn.layers.activation import QuantActivation
from tfqnn.layers.base import QuantizedKernel, QuantizerMixin
from tfqnn.layers.convolutional import (
    QuantConv1D,
    QuantConv2D,
    QuantConv2DTranspose,
    QuantDepthwiseConv2D,
    QuantSeparableConv2D,
)
from tfqnn.layers.dense import QuantDense
from tfqnn.layers.recurrent import (
    QuantGRU,
    QuantGRUCell,
    QuantLSTM,
    QuantLSTMCell,
    QuantRNN,
    QuantSimpleRNN,
    QuantSimpleRNNCell,
    RecurrentQuantizerMixin,
)

__all__ = [
    "QuantActivation",
    "QuantConv1D",
    "QuantConv2D",
    "QuantConv2DTranspose",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "QuantGRU",
    "QuantGRUCell",
    "QuantLSTM",
    "QuantLSTMCell",
    "QuantRNN",
    "QuantSeparableConv2D",
    "QuantSimpleRNN",
    "QuantSimpleRNNCell",
    "QuantizedKernel",
    "QuantizerMixin",
    "RecurrentQuantizerMixin",
]
