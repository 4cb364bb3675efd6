"""Post-conversion rewriting of constant float32 weights in a `.tflite` file.

The passes that store weights smaller than the converter does
(`int8_weights`, `codebook_weights`) share one walk: for each builtin op
that reads a weight, look at the constant float32 tensor in its weight
input; when a pass can express it as smaller constants plus one op that
computes it (a ``DEQUANTIZE``, a ``TfqnnCodebookDecode``), that op writes
the tensor, which loses its buffer. The new ops read only constants, so
they run first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flatbuffers
import numpy as np

from tfqnn.export._schema import tflite_schema

# rewrite(schema, model, subgraph, tensor index, float32 weight in its
# tensor's shape) -> the op that computes the tensor from new constants, or
# None to keep the weight as it is.
Rewrite = Callable[[Any, Any, Any, int, np.ndarray], Any | None]


def rewrite_weights(
    data: bytes, weight_inputs: Mapping[str, int], rewrite: Rewrite
) -> tuple[bytes, int]:
    """The model bytes with constant weights replaced where ``rewrite`` returns an op.

    ``weight_inputs`` maps a builtin op's name (``"FULLY_CONNECTED"``) to
    the position of its weight input. Each weight tensor is offered once.
    Returns the bytes (``data`` itself when nothing changes) and how many
    weights were replaced.
    """
    schema = tflite_schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytes(data), 0))
    codes = model.operatorCodes
    positions = {getattr(schema.BuiltinOperator, name): i for name, i in weight_inputs.items()}

    def builtin(op: Any) -> int:
        code = codes[op.opcodeIndex]
        return int(max(code.builtinCode, code.deprecatedBuiltinCode))

    buffer_users: dict[int, int] = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer_users[tensor.buffer] = buffer_users.get(tensor.buffer, 0) + 1
    replaced = 0
    for subgraph in model.subgraphs:
        new_ops = []
        seen: set[int] = set()
        for op in subgraph.operators:
            position = positions.get(builtin(op))
            if position is None or op.inputs is None or len(op.inputs) <= position:
                continue
            index = int(op.inputs[position])
            if index < 0 or index in seen:
                continue
            tensor = subgraph.tensors[index]
            buffer = model.buffers[tensor.buffer]
            if tensor.type != schema.TensorType.FLOAT32 or tensor.shape is None:
                continue
            if buffer.data is None or len(buffer.data) == 0:
                continue
            seen.add(index)
            shape = tuple(int(d) for d in tensor.shape)
            weight = np.frombuffer(bytes(buffer.data), np.float32)
            if weight.size != int(np.prod(shape)):
                continue
            new_op = rewrite(schema, model, subgraph, index, weight.reshape(shape))
            if new_op is None:
                continue
            new_ops.append(new_op)
            if buffer_users[tensor.buffer] == 1:
                buffer.data = None  # the float copy is no longer read
            tensor.buffer = 0  # the empty buffer: the new op computes it
            replaced += 1
        subgraph.operators = new_ops + list(subgraph.operators)
    if not replaced:
        return bytes(data), 0
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), replaced


def add_operator_code(
    schema: Any, model: Any, builtin: int, version: int, custom: str | None = None
) -> int:
    """Appends an operator code (a builtin, or the custom op ``custom``); returns its index."""
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    if custom is not None:
        code.customCode = custom
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def add_constant(
    schema: Any,
    model: Any,
    subgraph: Any,
    array: np.ndarray,
    kind: int,
    name: str,
    quantization: Any = None,
) -> int:
    """Appends a constant tensor holding ``array`` (TFLite type ``kind``); returns its index."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape = np.asarray(array.shape, np.int32)
    tensor.type = kind
    tensor.buffer = len(model.buffers) - 1
    tensor.name = name
    if quantization is not None:
        tensor.quantization = quantization
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def tensor_name(subgraph: Any, index: int) -> str:
    """The name of tensor ``index`` as a str (``"weight"`` when it has none)."""
    name = subgraph.tensors[index].name or b"weight"
    return name.decode() if isinstance(name, bytes) else name
