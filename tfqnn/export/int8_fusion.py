"""Post-conversion pass: binary ops read and write int8 tensors directly.

In a model with int8 builtins, the converter keeps tfqnn's ops in float and
surrounds them with conversions:

* ``TfqnnBconv2d/TfqnnBdense -> QUANTIZE -> int8 builtin``: the binary op
  writes the int8 tensor itself (``output_type = 1``, docs/lite_ops.md), with
  the QUANTIZE's scale and zero point;
* ``int8 builtin -> DEQUANTIZE -> TfqnnQuantize``: ``TfqnnQuantize`` reads the
  int8 tensor (the sign of ``scale * (q - zero_point)`` is that of
  ``q - zero_point``; with thresholds it compares the dequantized value);
  a DEQUANTIZE read only by ``TfqnnQuantize`` ops folds into all of them;
* ``binary ops -> CONCATENATION -> QUANTIZE -> int8 builtin`` (the branches
  of an Inception block): each binary op writes its slice in int8 with the
  QUANTIZE's scale and zero point, the concatenation joins int8 tensors of
  one scale (a copy), and the ``TfqnnQuantize`` ops that read the float
  concatenation read the int8 one.

The conversion ops go away when the intermediate float tensor has no other
consumer. The flatbuffer is read and rewritten with the TFLite schema's
object API (``ModelT``); every other table is written back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
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
                _set_output_type(writer, int8_code)
                writer.outputs = np.array([target], np.int32)
                removed.add(id(op))
                fused["QUANTIZE"] += 1
            elif builtin(op) == dequantize:
                source, target = int(op.inputs[0]), int(op.outputs[0])
                readers = [o for o in subgraph.operators if target in {int(t) for t in o.inputs}]
                if (
                    not readers
                    or any(custom(r) != spec.QUANTIZE for r in readers)
                    or uses.get(target) != len(readers)
                    or any(int(r.inputs[0]) != target for r in readers)
                    or not _per_tensor_int8(schema, subgraph.tensors[source])
                ):
                    continue
                for reader in readers:
                    inputs = np.array(reader.inputs, np.int32)  # [x] or [x, thresholds]
                    inputs[0] = source
                    reader.inputs = inputs
                removed.add(id(op))
                fused["DEQUANTIZE"] += 1
        subgraph.operators = [op for op in subgraph.operators if id(op) not in removed]
        fused["QUANTIZE"] += _int8_concatenations(schema, subgraph, builtin, custom)
    if not any(fused.values()):
        return bytes(data), fused
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), fused


def _int8_concatenations(
    schema: Any, subgraph: Any, builtin: Callable[[Any], int], custom: Callable[[Any], str | None]
) -> int:
    """Makes concatenations of binary ops' float outputs int8; returns the QUANTIZEs removed.

    A ``CONCATENATION`` qualifies when each of its inputs is the float output
    of a ``TfqnnBconv2d`` / ``TfqnnBdense`` read by nothing else, and its
    output is read by exactly one QUANTIZE to per-tensor int8 and otherwise
    only as the first input of ``TfqnnQuantize`` ops. Its inputs become int8
    tensors with the QUANTIZE's scale and zero point (the writers' output
    type int8), its output the QUANTIZE's int8 tensor, and the QUANTIZE goes.
    """
    concatenation = schema.BuiltinOperator.CONCATENATION
    quantize = schema.BuiltinOperator.QUANTIZE
    float_code, int8_code = spec.output_type_code("float"), spec.output_type_code("int8")
    outputs = {int(t) for t in subgraph.outputs}
    producer = {int(t): op for op in subgraph.operators for t in op.outputs}
    readers: dict[int, list[Any]] = {}
    for op in subgraph.operators:
        for t in op.inputs:
            readers.setdefault(int(t), []).append(op)
    removed = set()
    for op in subgraph.operators:
        if builtin(op) != concatenation or len(op.outputs) != 1:
            continue
        out = int(op.outputs[0])
        users = readers.get(out, [])
        quantizes = [u for u in users if builtin(u) == quantize and custom(u) is None]
        packers = [u for u in users if custom(u) == spec.QUANTIZE]
        if (
            out in outputs
            or len(quantizes) != 1
            or len(quantizes) + len(packers) != len(users)
            or any(int(p.inputs[0]) != out or list(p.inputs).count(out) != 1 for p in packers)
            or not _per_tensor_int8(schema, subgraph.tensors[int(quantizes[0].outputs[0])])
        ):
            continue
        sources = [int(t) for t in op.inputs]
        writers = [producer.get(t) for t in sources]
        if len(set(sources)) != len(sources) or any(
            w is None
            or custom(w) not in _OUTPUT_WRITERS
            or len(readers.get(t, [])) != 1
            or t in outputs
            or flexbuffers.Loads(bytes(w.customOptions)).get("output_type", 0) != float_code
            for t, w in zip(sources, writers)
        ):
            continue
        target = int(quantizes[0].outputs[0])
        q = subgraph.tensors[target].quantization
        for t in sources:
            _set_output_type(producer[t], int8_code)
            tensor = subgraph.tensors[t]
            tensor.type = schema.TensorType.INT8
            tensor.quantization = schema.QuantizationParametersT()
            tensor.quantization.scale = np.array(q.scale, np.float32)
            tensor.quantization.zeroPoint = np.array(q.zeroPoint, np.int64)
        op.outputs = np.array([target], np.int32)
        for packer in packers:
            inputs = np.array(packer.inputs, np.int32)
            inputs[0] = target
            packer.inputs = inputs
        removed.add(id(quantizes[0]))
    subgraph.operators = [op for op in subgraph.operators if id(op) not in removed]
    return len(removed)


def _set_output_type(writer: Any, code: int) -> None:
    """Rewrites a binary op's ``output_type`` option (its other options unchanged)."""
    options = flexbuffers.Loads(bytes(writer.customOptions))
    options["output_type"] = code
    writer.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8)


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
