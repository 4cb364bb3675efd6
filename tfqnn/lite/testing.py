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

import dataclasses

import flatbuffers
import numpy as np
from flatbuffers import flexbuffers

from tfqnn.lite.interpreter import _schema

_TYPES = {
    "float32": 0,
    "int32": 2,
    "int8": 9,
    "float16": 1,
    "uint8": 3,
    "int64": 4,
    "bool": 6,
    "int16": 7,
}
_BUILTIN_CUSTOM = 32


@dataclasses.dataclass
class Tensor:
    """A tensor of the model: shape, type, optional constant data and quantization."""

    shape: list
    dtype: str = "float32"
    data: object = None  # an array, or raw bytes, for a constant tensor
    scale: float = None  # int8 quantization
    zero_point: int = 0
    shape_signature: list = None


@dataclasses.dataclass
class Op:
    """A custom operator: name, tensor indices, and options (a dict, or raw bytes)."""

    name: str
    inputs: list
    outputs: list
    options: object = None


def options_bytes(options):
    """FlexBuffer map bytes of an options dict (as the TFLite converter writes them)."""
    if options is None:
        options = {}
    if isinstance(options, (bytes, bytearray)):
        return bytes(options)
    return bytes(flexbuffers.Dumps(dict(options)))


def op_model(ops, tensors, inputs, outputs):
    """The bytes of a TFLite model with these operators and tensors."""
    schema = _schema()
    model = schema.ModelT()
    model.version = 3
    model.description = "tfqnn.lite.testing"
    model.buffers = [schema.BufferT()]
    subgraph = schema.SubGraphT()
    subgraph.tensors = []
    for i, spec in enumerate(tensors):
        tensor = schema.TensorT()
        tensor.shape = np.asarray(spec.shape, np.int32)
        if spec.shape_signature is not None:
            tensor.shapeSignature = np.asarray(spec.shape_signature, np.int32)
        tensor.type = _TYPES[spec.dtype]
        tensor.name = f"t{i}"
        tensor.buffer = 0
        if spec.data is not None:
            buffer = schema.BufferT()
            raw = (
                spec.data
                if isinstance(spec.data, (bytes, bytearray))
                else (np.ascontiguousarray(spec.data, np.dtype(spec.dtype)).tobytes())
            )
            buffer.data = np.frombuffer(bytes(raw), np.uint8)
            model.buffers.append(buffer)
            tensor.buffer = len(model.buffers) - 1
        if spec.scale is not None:
            quantization = schema.QuantizationParametersT()
            quantization.scale = [float(spec.scale)]
            quantization.zeroPoint = [int(spec.zero_point)]
            tensor.quantization = quantization
        subgraph.tensors.append(tensor)
    names = sorted({op.name for op in ops})
    model.operatorCodes = []
    for name in names:
        code = schema.OperatorCodeT()
        code.builtinCode = _BUILTIN_CUSTOM
        code.deprecatedBuiltinCode = _BUILTIN_CUSTOM
        code.customCode = name
        code.version = 1
        model.operatorCodes.append(code)
    subgraph.operators = []
    for op in ops:
        operator = schema.OperatorT()
        operator.opcodeIndex = names.index(op.name)
        operator.inputs = np.asarray(op.inputs, np.int32)
        operator.outputs = np.asarray(op.outputs, np.int32)
        operator.customOptions = np.frombuffer(options_bytes(op.options), np.uint8)
        operator.customOptionsFormat = 0  # FLEXBUFFERS
        subgraph.operators.append(operator)
    subgraph.inputs = np.asarray(inputs, np.int32)
    subgraph.outputs = np.asarray(outputs, np.int32)
    subgraph.name = "main"
    model.subgraphs = [subgraph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def single_op_model(name, options, inputs, outputs):
    """One operator whose non-constant inputs are the model's inputs, in order."""
    tensors = list(inputs) + list(outputs)
    model_inputs = [i for i, t in enumerate(inputs) if t.data is None]
    model_outputs = list(range(len(inputs), len(tensors)))
    op = Op(name, list(range(len(inputs))), model_outputs, options)
    return op_model([op], tensors, model_inputs, model_outputs)
