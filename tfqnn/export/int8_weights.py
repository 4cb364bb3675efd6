"""Post-conversion pass: low-bit weights stored as int8 with their scales (or float16).

TensorFlow's converter writes the quantized weights of the other tfqnn
layers (the recurrent ``W`` and ``U``, the kernels of `QuantDense` that are
not binary ops, the power-of-two kernels of `QuantConv2D`) as float32
weights of ``FULLY_CONNECTED`` / ``CONV_2D`` ops: a ternary matrix costs 32
bits per value. This pass stores such a weight as an int8 tensor ``k`` with one
float scale ``s[o]`` per output row (per-channel quantization along axis 0,
zero point 0) and inserts a builtin ``DEQUANTIZE`` that restores ``s[o] *
k[o, ...]``, the quantized weight within float rounding, for the float op.
No activation is quantized, so the outputs stay those of the float graph.

A weight qualifies when its quantizer has at most 8 bits and every row is a
multiple of one scale with integers in ``[-127, 127]``: binary, ternary,
`SymmetricUniform`, `FixedPoint`, `DoReFa` weights and `PowerOfTwo` (INQ)
up to their int8 limits. A row of powers of two spanning ``2^e .. 2^(e+7)``
(INQ's 5-bit codebook) needs the integer 128: such a weight is stored as
float16 instead, which holds every power of two from ``2^-24`` to ``2^15``
exactly, when its float16 values equal the float32 ones (16 bits per weight,
the same outputs). Others (`Uniform`, whose levels are offset by the
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


def float16_exact(weight: np.ndarray) -> np.ndarray | None:
    """``weight`` as float16 when that keeps every value (powers of two in range), or None."""
    with np.errstate(over="ignore"):
        half = weight.astype(np.float16)
    return half if np.array_equal(half.astype(np.float32), weight) else None


def _rows_match(rows: np.ndarray, block: np.ndarray) -> bool:
    """Whether each row of ``rows`` is its row of ``block`` times a factor ``c[o] != 0`` (a zero
    row of ``block``: a zero row), within float rounding."""
    norms = np.sum(block * block, axis=1)
    safe = np.where(norms == 0.0, 1.0, norms)
    factors = np.where(norms == 0.0, 1.0, np.sum(block * rows, axis=1) / safe)
    # The converter folds the quantizer's statistics (a mean over the tensor)
    # in another order than Keras: equal within that rounding.
    tolerance = 1e-5 * np.abs(rows).max(axis=1, keepdims=True)
    return bool(
        np.all(factors != 0.0) and np.all(np.abs(factors[:, None] * block - rows) <= tolerance)
    )


def _matches_conv(weight: np.ndarray, references: Iterable[np.ndarray]) -> bool:
    """Whether the ``[O, KH, KW, C]`` ``weight`` of a ``CONV_2D`` is a 4-D reference kernel
    ``[KH, KW, C, O]`` with each output channel times a factor ``c[o] != 0``.

    The factors: the converter folds a BatchNormalization's scale after the
    convolution into its weight, per output channel.
    """
    rows = weight.astype(np.float64).reshape(weight.shape[0], -1)
    for reference in references:
        if reference.ndim != 4 or np.transpose(reference, (3, 0, 1, 2)).shape != weight.shape:
            continue
        block = np.transpose(reference, (3, 0, 1, 2)).astype(np.float64).reshape(rows.shape)
        if _rows_match(rows, block):
            return True
    return False


def _matches(weight: np.ndarray, references: Iterable[np.ndarray]) -> bool:
    """Whether each row ``o`` of the [out, in] ``weight`` is ``c[o] != 0`` times its row of
    the transpose of a column block of a 2-D reference.

    The factors: the converter folds a constant multiplication of the input
    (the ``1 / n`` of an input quantizer's levels) and a BatchNormalization's
    scale after the layer into the weight.
    """
    out, fan_in = weight.shape
    rows = weight.astype(np.float64)
    for reference in references:
        if reference.ndim != 2 or reference.shape[0] != fan_in:
            continue
        for start in range(0, reference.shape[1] - out + 1):
            block = reference[:, start : start + out].T.astype(np.float64)
            if np.any(block) and _rows_match(rows, block):
                return True
    return False


def store_int8_weights(data: bytes, references: list[np.ndarray]) -> tuple[bytes, int]:
    """The model bytes with matching weights as int8 (or float16) + ``DEQUANTIZE``.

    ``references`` are the quantized weights (`quantized_recurrent_weights`,
    `tfqnn.export.frozen_weights.low_bit_matrices`): a constant float32
    weight of a ``FULLY_CONNECTED`` that is a positive multiple of the
    transpose of a column block of a 2-D one, or of a ``CONV_2D`` that is a
    4-D one with per-output-channel factors, is replaced when it passes
    `int8_rows`, else when `float16_exact` keeps it.
    Returns the bytes (``data`` itself when nothing changes) and how many
    weight tensors were replaced.
    """
    if not references:
        return bytes(data), 0
    codes: dict[str, int] = {}  # DEQUANTIZE's operator codes by input type, added once

    def rewrite(schema: Any, model: Any, subgraph: Any, index: int, weight: np.ndarray) -> Any:
        if weight.ndim == 2:
            matches = _matches(weight, references)
        elif weight.ndim == 4:
            matches = _matches_conv(weight, references)
        else:
            return None
        if not matches:
            return None
        found = int8_rows(weight)
        if found is not None:
            # version 5: per-channel int8
            kind, version, op = "int8", 5, _dequantize(schema, model, subgraph, index, *found)
        else:
            half = float16_exact(weight)
            if half is None:
                return None
            kind, version, op = "float16", 3, _dequantize_half(schema, model, subgraph, index, half)
        if kind not in codes:
            dequantize = schema.BuiltinOperator.DEQUANTIZE
            codes[kind] = weight_rewrite.add_operator_code(schema, model, dequantize, version)
        op.opcodeIndex = codes[kind]
        return op

    return weight_rewrite.rewrite_weights(data, {"FULLY_CONNECTED": 1, "CONV_2D": 1}, rewrite)


def _dequantize_half(schema: Any, model: Any, subgraph: Any, output: int, half: np.ndarray) -> Any:
    """A DEQUANTIZE op from a new float16 constant ``half`` to tensor ``output``."""
    name = weight_rewrite.tensor_name(subgraph, output) + "_float16"
    constant = weight_rewrite.add_constant(
        schema, model, subgraph, half, schema.TensorType.FLOAT16, name
    )
    op = schema.OperatorT()
    op.inputs = np.array([constant], np.int32)
    op.outputs = np.array([output], np.int32)
    return op


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
