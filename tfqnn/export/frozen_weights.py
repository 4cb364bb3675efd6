"""Quantized kernels of the builtin-exported layers, computed once at export.

A tfqnn layer that does not become a custom op (a `QuantConv2D` with
DoReFa k-bit weights, binary weights on a float input, ternary weights)
converts to TFLite builtins by tracing its ``call``, which quantizes the
latent kernel ``w`` on every invoke: the file would store ``w`` in float32
and recompute ``q(w)`` (DoReFa: ``tanh``, ``max``, ``round``; sign:
``SELECT_V2``) each time. Instead the exporter evaluates
``q(w)`` once, in inference mode, and the traced call reads it as a
constant: the file holds the quantized values, and the builtins see a plain
convolution or matmul on constant weights (which XNNPACK packs once).

A quantized matrix of at most 8 bits (a `QuantDense` kernel) is also a
reference for `tfqnn.export.int8_weights`, which stores the converter's
float32 ``FULLY_CONNECTED`` weights as int8 with row scales when they sit
on an integer grid (DoReFa, binary, ternary). Recurrent layers keep their
own path there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfqnn.layers import QuantizerMixin, RecurrentQuantizerMixin
from tfqnn.quantizers import PowerOfTwo


def quantized_kernels(layer: Any) -> dict[str, np.ndarray]:
    """``{weight attribute: q(w)}`` of `layer`'s quantized kernels and bias, at inference.

    Empty for a layer that is not a built tfqnn layer with a kernel
    quantizer, and for recurrent layers (exported by their own path).
    """
    if (
        not isinstance(layer, QuantizerMixin)
        or isinstance(layer, (RecurrentQuantizerMixin, keras.layers.RNN))
        or not getattr(layer, "built", False)
    ):
        return {}
    frozen = {}
    for spec in layer._quantized_kernels:
        weight = getattr(layer, spec.weight, None)
        if weight is None or getattr(layer, spec.quantizer) is None:
            continue
        value = layer.quantized_kernel(spec, training=False)
        frozen[spec.weight] = np.asarray(keras.ops.convert_to_numpy(value))
    return frozen


def low_bit_matrices(layer: Any, kernels: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The 2-D `kernels` of `layer` whose quantizer has at most 8 bits, and its 4-D
    (convolution) kernels whose quantizer is `PowerOfTwo` (INQ) of at most 8 bits (float32)."""
    matrices = []
    for spec in getattr(layer, "_quantized_kernels", ()):
        quantizer = getattr(layer, spec.quantizer, None)
        value = kernels.get(spec.weight)
        if (
            value is not None
            and (value.ndim == 2 or (value.ndim == 4 and isinstance(quantizer, PowerOfTwo)))
            and quantizer is not None
            and quantizer.precision <= 8
        ):
            matrices.append(value.astype(np.float32))
    return matrices


@contextlib.contextmanager
def frozen(layer: Any, kernels: dict[str, np.ndarray]) -> Iterator[None]:
    """Within the block, `layer`'s ``quantized_kernel`` returns `kernels` as constants.

    `kernels` is `quantized_kernels` of the layer (a quantized bias
    included); their latent weights are not read, so a trace of the
    layer's call holds them as constants.
    """
    if not kernels:
        yield
        return

    computed = layer.quantized_kernel

    def quantized_kernel(spec: Any, training: bool | None = None) -> Any:
        if spec.weight not in kernels:  # an unquantized kernel or bias: the variable
            return computed(spec, training)
        return tf.constant(kernels[spec.weight])

    # An instance attribute shadows the method; object.__setattr__ keeps it
    # out of Keras's attribute tracking.
    object.__setattr__(layer, "quantized_kernel", quantized_kernel)
    try:
        yield
    finally:
        object.__delattr__(layer, "quantized_kernel")
