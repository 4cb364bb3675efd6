"""Post-conversion pass: quantized recurrent weights stored as int8 with their scales.

TensorFlow's converter writes the quantized ``W`` and ``U`` of a recurrent
layer as the float32 weights of ``FULLY_CONNECTED`` ops: a ternary matrix
costs 32 bits per value. This pass stores such a weight as an int8 tensor
``k`` with one float scale ``s[o]`` per output row (per-channel quantization
along axis 0, zero point 0) and inserts a builtin ``DEQUANTIZE`` that
restores ``s[o] * k[o, i]``, the quantized weight within float rounding, for
the float ``FULLY_CONNECTED``. No activation is quantized, so the outputs
stay those of the float graph.

A weight qualifies when its quantizer has at most 8 bits and every row is a
multiple of one scale with integers in ``[-127, 127]``: binary, ternary,
`SymmetricUniform`, `FixedPoint`, `DoReFa` weights and `PowerOfTwo` up to
their int8 limits. Others (`Uniform`, whose levels are offset by the
tensor's minimum; more than 8 bits) stay float32.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

from tfqnn.export import weight_rewrite
from tfqnn.layers import RecurrentQuantizerMixin

# The widest integer a symmetric int8 weight holds.
INT8_MAX = 127


def quantized_recurrent_weights(model: keras.Model) -> list[np.ndarray]:
    """The quantized ``W`` and ``U`` ([in, out]) of the model's recurrent cells with <= 8 bits."""
    weights = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, RecurrentQuantizerMixin):
            continue
        cell: Any = layer  # a Keras cell with the mixin
        if not cell.built:
            continue
        kernel, recurrent_kernel, _ = cell.quantized_weights(False)
        pairs = ((cell.kernel_quantizer, kernel), (cell.recurrent_quantizer, recurrent_kernel))
        for quantizer, value in pairs:
            if quantizer is not None and quantizer.precision <= 8:
                weights.append(np.asarray(keras.ops.convert_to_numpy(value), np.float32))
    return weights


def int8_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(k, s)`` with ``weight[o] = s[o] * k[o]`` (float rounding), int8 ``k``; or None.

    ``s[o] = max|weight[o]| / m`` for the smallest ``m`` in 1..127 that makes
    every entry of the row an integer multiple of ``s[o]``; an all-zero row
    gets ``s = 1``.
    """
    rows = weight.astype(np.float64).reshape(weight.shape[0], -1)
    ints = np.zeros(rows.shape, np.int8)
    scales = np.ones(rows.shape[0], np.float64)
    for o, row in enumerate(rows):
        top = np.abs(row).max()
        if top == 0.0:
            continue
        for m in range(1, INT8_MAX + 1):
            k = np.round(row * (m / top))
            if np.all(np.abs(k * (top / m) - row) <= 1e-6 * top):
                ints[o], scales[o] = k.astype(np.int8), top / m
                break
        else:
            return None
    return ints.reshape(weight.shape), scales.astype(np.float32)


def _matches(weight: np.ndarray, references: Iterable[np.ndarray]) -> bool:
    """Whether the [out, in] ``weight`` is ``c`` times the transpose of a column block of a
    reference, for some ``c > 0``.

    The factor: the converter folds a constant multiplication of the input
    (the ``1 / n`` of an input quantizer's levels) into the weight.
    """
    out, fan_in = weight.shape
    for reference in references:
        if reference.shape[0] != fan_in:
            continue
        for start in range(0, reference.shape[1] - out + 1):
            block = reference[:, start : start + out].T.astype(np.float64)
            norm = float(np.sum(block * block))
            if norm == 0.0:
                continue
            factor = float(np.sum(block * weight)) / norm
            # The converter folds the quantizer's statistics (a mean over the
            # tensor) in another order than Keras: equal within that rounding.
            tolerance = 1e-5 * float(np.abs(weight).max())
            if factor > 0.0 and np.allclose(factor * block, weight, rtol=0.0, atol=tolerance):
                return True
    return False


def store_int8_weights(data: bytes, references: list[np.ndarray]) -> tuple[bytes, int]:
    """The model bytes with matching ``FULLY_CONNECTED`` weights as int8 + ``DEQUANTIZE``.

    ``references`` are the quantized weights (`quantized_recurrent_weights`);
    a constant float32 weight of a ``FULLY_CONNECTED`` that is a positive
    multiple of the transpose of a column block of one, and passes
    `int8_rows`, is replaced.
    Returns the bytes (``data`` itself when nothing changes) and how many
    weight tensors became int8.
    """
    if not references:
        return bytes(data), 0
    dequantize_code: list[int] = []  # DEQUANTIZE's operator code, added once

    def rewrite(schema: Any, model: Any, subgraph: Any, index: int, weight: np.ndarray) -> Any:
        if weight.ndim != 2:
            return None
        found = int8_rows(weight) if _matches(weight, references) else None
        if found is None:
            return None
        if not dequantize_code:
            # version 5: per-channel int8
            dequantize = schema.BuiltinOperator.DEQUANTIZE
            dequantize_code.append(weight_rewrite.add_operator_code(schema, model, dequantize, 5))
        op = _dequantize(schema, model, subgraph, index, *found)
        op.opcodeIndex = dequantize_code[0]
        return op

    return weight_rewrite.rewrite_weights(data, {"FULLY_CONNECTED": 1}, rewrite)


def _dequantize(
    schema: Any, model: Any, subgraph: Any, output: int, ints: np.ndarray, scales: np.ndarray
) -> Any:
    """A DEQUANTIZE op from a new int8 constant ``ints`` (row scales) to tensor ``output``."""
    quantization = schema.QuantizationParametersT()
    quantization.scale = [float(s) for s in scales]
    quantization.zeroPoint = [0] * len(scales)
    quantization.quantizedDimension = 0
    name = weight_rewrite.tensor_name(subgraph, output) + "_int8"
    kind = schema.TensorType.INT8
    constant = weight_rewrite.add_constant(schema, model, subgraph, ints, kind, name, quantization)
    op = schema.OperatorT()
    op.inputs = np.array([constant], np.int32)
    op.outputs = np.array([output], np.int32)
    return op
