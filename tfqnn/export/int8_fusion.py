"""Post-conversion pass: binary ops read and write int8 tensors directly.

In a model with int8 builtins, the converter keeps tfqnn's ops in float and
surrounds them with conversions:

* ``TfqnnBconv2d/TfqnnBdense -> QUANTIZE -> int8 builtin``: the binary op
  writes the int8 tensor itself (``output_type = 1``, docs/lite_ops.md), with
  the QUANTIZE's scale and zero point;
* ``int8 builtin -> DEQUANTIZE -> TfqnnQuantize``: ``TfqnnQuantize`` reads the
  int8 tensor (the sign of ``scale * (q - zero_point)`` is that of
  ``q - zero_point``; with thresholds it compares the dequantized value).

The conversion ops go away when the intermediate float tensor has no other
consumer. The flatbuffer is read and rewritten with the TFLite schema's
object API (``ModelT``); every other table is written back unchanged.
"""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np
from flatbuffers import flexbuffers

from tfqnn.export._schema import tflite_schema
from tfqnn.lite import spec

_OUTPUT_WRITERS = (spec.BCONV2D, spec.BDENSE)


def fuse_int8_conversions(data: bytes) -> tuple[bytes, dict[str, int]]:
    """The model bytes with int8 conversions around tfqnn ops folded in.

    Returns the bytes (``data`` itself when nothing folds) and how many
    QUANTIZE and DEQUANTIZE ops were folded away.
    """
    schema = tflite_schema()
    quantize, dequantize = schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE
    int8_code = spec.output_type_code("int8")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytes(data), 0))
    codes = model.operatorCodes

    def builtin(op: Any) -> int:
        code = codes[op.opcodeIndex]
        return max(code.builtinCode, code.deprecatedBuiltinCode)

    def custom(op: Any) -> str | None:
        name = codes[op.opcodeIndex].customCode
        return name.decode() if isinstance(name, bytes) else name

    fused = {"QUANTIZE": 0, "DEQUANTIZE": 0}
    for subgraph in model.subgraphs:
        uses: dict[int, int] = {}
        for op in subgraph.operators:
            for t in op.inputs:
                uses[int(t)] = uses.get(int(t), 0) + 1
        for t in subgraph.outputs:
            uses[int(t)] = uses.get(int(t), 0) + 1
        producer = {int(t): op for op in subgraph.operators for t in op.outputs}
        removed = set()
        for op in subgraph.operators:
            if builtin(op) == quantize:
                source, target = int(op.inputs[0]), int(op.outputs[0])
                writer = producer.get(source)
                if (
                    writer is None
                    or custom(writer) not in _OUTPUT_WRITERS
                    or uses.get(source) != 1
                    or not _per_tensor_int8(schema, subgraph.tensors[target])
                ):
                    continue
                options = flexbuffers.Loads(bytes(writer.customOptions))
                if options.get("output_type", 0) != spec.output_type_code("float"):
                    continue
                options["output_type"] = int8_code
                writer.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8)
                writer.outputs = np.array([target], np.int32)
                removed.add(id(op))
                fused["QUANTIZE"] += 1
            elif builtin(op) == dequantize:
                source, target = int(op.inputs[0]), int(op.outputs[0])
                readers = [o for o in subgraph.operators if target in {int(t) for t in o.inputs}]
                if (
                    len(readers) != 1
                    or custom(readers[0]) != spec.QUANTIZE
                    or uses.get(target) != 1
                    or not _per_tensor_int8(schema, subgraph.tensors[source])
                ):
                    continue
                inputs = np.array(readers[0].inputs, np.int32)  # [x] or [x, thresholds]
                inputs[0] = source
                readers[0].inputs = inputs
                removed.add(id(op))
                fused["DEQUANTIZE"] += 1
        subgraph.operators = [op for op in subgraph.operators if id(op) not in removed]
    if not any(fused.values()):
        return bytes(data), fused
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), fused


def _per_tensor_int8(schema: Any, tensor: Any) -> bool:
    q = tensor.quantization
    return (
        tensor.type == schema.TensorType.INT8
        and q is not None
        and q.scale is not None
        and len(q.scale) == 1
        and q.zeroPoint is not None
        and len(q.zeroPoint) == 1
    )
