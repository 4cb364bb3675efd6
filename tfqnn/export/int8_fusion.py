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
* ``TfqnnBconv2d (int8) -> ADD (int8) <- shortcut (int8)`` (Bi-Real Net's
  and QuickNet's blocks): the op takes the shortcut as its ``residual``
  input and writes the ``ADD``'s output itself, its own int8 result's scale
  and zero point as the options ``y_scale`` and ``y_zero_point``
  (docs/lite_ops.md, "Fused shortcut"), and moves to the ``ADD``'s place in
  the operator order (the shortcut may be computed after the convolution);
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
    QUANTIZE, DEQUANTIZE and (shortcut) ADD ops were folded away.
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

    fused = {"QUANTIZE": 0, "DEQUANTIZE": 0, "ADD": 0}
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
        fused["ADD"] += _int8_residuals(schema, subgraph, model.buffers, builtin, custom)
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


def _int8_residuals(
    schema: Any,
    subgraph: Any,
    buffers: list[Any],
    builtin: Callable[[Any], int],
    custom: Callable[[Any], str | None],
) -> int:
    """Folds int8 shortcut ``ADD``s into the binary convolutions before them; returns how many.

    An ``ADD`` qualifies when one input is the int8 output of a
    ``TfqnnBconv2d`` (``output_type`` 1, no residual yet, four inputs) read
    by nothing else, the other an int8 tensor of the same shape, all
    tensors per-tensor int8, no fused activation but a ReLU (option
    ``residual_relu``), and the scale ratios within
    an int8 ``ADD``'s range (`spec.int8_add_params`). The op then takes the
    other input as its ``residual``, writes the ``ADD``'s output, and runs
    where the ``ADD`` ran. Between the op and the ``ADD`` may stand one more
    ``ADD`` of a constant int8 ``[O]`` read by nothing else (QuickNet's
    post-ReLU BatchNorm shift): it becomes the op's ``post_bias`` and goes too.
    """
    add = schema.BuiltinOperator.ADD
    none = schema.ActivationFunctionType.NONE
    int8_code = spec.output_type_code("int8")
    outputs = {int(t) for t in subgraph.outputs}
    producer = {int(t): op for op in subgraph.operators for t in op.outputs}
    readers: dict[int, int] = {}
    for op in subgraph.operators:
        for t in op.inputs:
            readers[int(t)] = readers.get(int(t), 0) + 1
    tensors = subgraph.tensors

    relu = schema.ActivationFunctionType.RELU

    def activation(op: Any) -> int:
        return int(getattr(op.builtinOptions, "fusedActivationFunction", none))

    def plain_int8_add(op: Any, activations: tuple[int, ...] = (none,)) -> bool:
        return (
            op is not None
            and builtin(op) == add
            and custom(op) is None
            and len(op.inputs) == 2
            and len(op.outputs) == 1
            and activation(op) in activations
            and all(_per_tensor_int8(schema, tensors[int(t)]) for t in [*op.inputs, *op.outputs])
        )

    def private(t: int) -> bool:
        return readers.get(t) == 1 and t not in outputs

    def int8_conv(t: int) -> Any:
        """The TfqnnBconv2d that writes int8 ``t`` and could take a residual, or None."""
        writer = producer.get(t)
        if writer is None or custom(writer) != spec.BCONV2D or len(writer.inputs) != 4:
            return None
        options = flexbuffers.Loads(bytes(writer.customOptions))
        if options.get("output_type", 0) != int8_code or options.get("residual", 0):
            return None
        return writer if private(t) else None

    def constant_vector(t: int, channels: int) -> bool:
        tensor = tensors[t]
        data = buffers[tensor.buffer].data
        return (
            data is not None
            and len(data) == channels
            and tensor.shape is not None
            and [int(d) for d in tensor.shape] == [channels]
        )

    def qparams(t: int) -> tuple[float, int]:
        q = tensors[t].quantization
        return float(q.scale[0]), int(q.zeroPoint[0])

    moved: dict[int, Any] = {}  # id(shortcut ADD) -> the convolution that replaces it
    removed: set[int] = set()  # ids of the post-bias ADDs folded too
    for op in subgraph.operators:
        # The shortcut ADD may have a fused ReLU (QuickNet's last block of a section).
        if not plain_int8_add(op, (none, relu)):
            continue
        with_relu = activation(op) == relu
        a, b = (int(t) for t in op.inputs)
        out = int(op.outputs[0])
        if a == b:
            continue
        for ours, other in ((a, b), (b, a)):
            # No broadcast: the shortcut has the sum's shape (and so, below,
            # has the op's output).
            if not private(ours) or not _same_shape(tensors[other], tensors[out]):
                continue
            writer = int8_conv(ours)
            bias_add: Any = None
            shift: int | None = None  # the post-bias constant, when there is one
            y = ours
            if writer is None:
                inner = producer.get(ours)
                if inner is None or not plain_int8_add(inner) or id(inner) in removed:
                    continue
                i, j = (int(t) for t in inner.inputs)
                for conv_out, constant in ((i, j), (j, i)):
                    candidate = int8_conv(conv_out)
                    if candidate is not None and constant_vector(
                        constant, int(tensors[conv_out].shape[-1])
                    ):
                        writer, bias_add, shift, y = candidate, inner, constant, conv_out
                        break
                if writer is None or id(writer) in {id(w) for w in moved.values()}:
                    continue
            if not _same_shape(tensors[y], tensors[out]):
                continue
            scales = [qparams(t) for t in (y, other, out)]
            try:
                if shift is not None:
                    biased = qparams(ours)
                    spec.int8_add_params(*scales[0], *qparams(shift), *biased)
                    spec.int8_add_params(*biased, *scales[1], *scales[2], with_relu)
                else:
                    spec.int8_add_params(*scales[0], *scales[1], *scales[2], with_relu)
            except ValueError:
                continue
            options = flexbuffers.Loads(bytes(writer.customOptions))
            options.update(
                residual=1,
                y_scale=float(np.float32(scales[0][0])),
                y_zero_point=scales[0][1],
            )
            if with_relu:
                options["residual_relu"] = 1
            inputs = [*writer.inputs, other]
            if shift is not None:
                options.update(
                    biased_scale=float(np.float32(qparams(ours)[0])),
                    biased_zero_point=qparams(ours)[1],
                )
                inputs.append(shift)
                removed.add(id(bias_add))
            writer.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), np.uint8)
            writer.inputs = np.array(inputs, np.int32)
            writer.outputs = np.array([out], np.int32)
            moved[id(op)] = writer
            break
    if not moved:
        return 0
    writers = {id(w) for w in moved.values()}
    subgraph.operators = [
        moved.get(id(op), op)
        for op in subgraph.operators
        if id(op) not in writers and id(op) not in removed
    ]
    return len(moved) + len(removed)


def _same_shape(a: Any, b: Any) -> bool:
    """Equal static shapes (and shape signatures, where the file has them)."""

    def listed(value: Any) -> list[int] | None:
        return None if value is None else [int(d) for d in value]

    return listed(a.shape) == listed(b.shape) and listed(a.shapeSignature) == listed(
        b.shapeSignature
    )


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
