"""Build small TFLite models around tfqnn's custom ops, without TensorFlow.

For tests, fuzzing and debugging the kernels: `op_model` writes a flatbuffer
holding one or more operators whose tensors, options and constant data are
exactly what the caller says, including shapes, types and option bytes that
the exporter would never write.

Example:
    >>> from tfqnn.lite.testing import Op, Tensor, op_model
    >>> x = np.array([[0.5, -2.0, 0.0]], np.float32)
    >>> data = op_model([Op("TfqnnQuantize", inputs=[0], outputs=[1])],
    ...                 tensors=[Tensor([1, 3], "float32"), Tensor([1, 1], "int32")],
    ...                 inputs=[0], outputs=[1])
    >>> tfqnn.lite.Interpreter(model_content=data).predict(x)
    array([[2]], dtype=int32)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flatbuffers
import numpy as np
from flatbuffers import flexbuffers

from tfqnn.lite.flatbuffer import schema


@dataclasses.dataclass
class Tensor:
    """A tensor of the model: shape, type, optional constant data and quantization.

    ``dtype`` names a TFLite tensor type in lower case (``"float32"``,
    ``"int32"``, ``"int8"``, ...); ``data`` is an array, or raw bytes, for a
    constant tensor; ``scale`` and ``zero_point`` quantize it per tensor.
    """

    shape: list[int]
    dtype: str = "float32"
    data: Any = None
    scale: float | None = None
    zero_point: int = 0
    shape_signature: list[int] | None = None


@dataclasses.dataclass
class Op:
    """A custom operator: name, tensor indices, and options (a dict, or raw bytes)."""

    name: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] | bytes | None = None


def options_bytes(options: dict[str, Any] | bytes | bytearray | None) -> bytes:
    """FlexBuffer map bytes of an options dict (as the TFLite converter writes them)."""
    if options is None:
        options = {}
    if isinstance(options, (bytes, bytearray)):
        return bytes(options)
    return bytes(flexbuffers.Dumps(dict(options)))


def op_model(ops: list[Op], tensors: list[Tensor], inputs: list[int], outputs: list[int]) -> bytes:
    """The bytes of a TFLite model with these operators and tensors."""
    tflite = schema()
    model = tflite.ModelT()
    model.version = 3
    model.description = "tfqnn.lite.testing"
    model.buffers = [tflite.BufferT()]
    subgraph = tflite.SubGraphT()
    subgraph.tensors = []
    for i, given in enumerate(tensors):
        tensor = tflite.TensorT()
        tensor.shape = np.asarray(given.shape, np.int32)
        if given.shape_signature is not None:
            tensor.shapeSignature = np.asarray(given.shape_signature, np.int32)
        tensor.type = getattr(tflite.TensorType, given.dtype.upper())
        tensor.name = f"t{i}"
        tensor.buffer = 0
        if given.data is not None:
            buffer = tflite.BufferT()
            raw = (
                given.data
                if isinstance(given.data, (bytes, bytearray))
                else (np.ascontiguousarray(given.data, np.dtype(given.dtype)).tobytes())
            )
            buffer.data = np.frombuffer(bytes(raw), np.uint8)
            model.buffers.append(buffer)
            tensor.buffer = len(model.buffers) - 1
        if given.scale is not None:
            quantization = tflite.QuantizationParametersT()
            quantization.scale = [float(given.scale)]
            quantization.zeroPoint = [int(given.zero_point)]
            tensor.quantization = quantization
        subgraph.tensors.append(tensor)
    names = sorted({op.name for op in ops})
    model.operatorCodes = []
    for name in names:
        code = tflite.OperatorCodeT()
        code.builtinCode = tflite.BuiltinOperator.CUSTOM
        code.deprecatedBuiltinCode = tflite.BuiltinOperator.CUSTOM
        code.customCode = name
        code.version = 1
        model.operatorCodes.append(code)
    subgraph.operators = []
    for op in ops:
        operator = tflite.OperatorT()
        operator.opcodeIndex = names.index(op.name)
        operator.inputs = np.asarray(op.inputs, np.int32)
        operator.outputs = np.asarray(op.outputs, np.int32)
        operator.customOptions = np.frombuffer(options_bytes(op.options), np.uint8)
        operator.customOptionsFormat = tflite.CustomOptionsFormat.FLEXBUFFERS
        subgraph.operators.append(operator)
    subgraph.inputs = np.asarray(inputs, np.int32)
    subgraph.outputs = np.asarray(outputs, np.int32)
    subgraph.name = "main"
    model.subgraphs = [subgraph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def single_op_model(
    name: str,
    options: dict[str, Any] | bytes | None,
    inputs: list[Tensor],
    outputs: list[Tensor],
) -> bytes:
    """One operator whose non-constant inputs are the model's inputs, in order."""
    tensors = list(inputs) + list(outputs)
    model_inputs = [i for i, t in enumerate(inputs) if t.data is None]
    model_outputs = list(range(len(inputs), len(tensors)))
    op = Op(name, list(range(len(inputs))), model_outputs, options)
    return op_model([op], tensors, model_inputs, model_outputs)
