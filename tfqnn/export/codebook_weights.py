"""Post-conversion pass: clustered kernels stored as packed indices plus a codebook.

TensorFlow's converter folds the ``GATHER`` of a `tfqnn.codebook.Clustered`
kernel (constant centroids, constant indices) into a dense float32 weight
(``GatherOp::fold``), so a clustered model's `.tflite` would be as large as
the float model. This pass finds each such weight of a ``FULLY_CONNECTED``,
``CONV_2D``, ``DEPTHWISE_CONV_2D`` or ``TRANSPOSE_CONV`` and stores it as
a uint8 stream of ``ceil(log2(k))``-bit indices plus the ``k`` float32 values
it takes, restored by one ``TfqnnCodebookDecode`` custom op
(docs/lite_ops.md) that decodes once, when the interpreter prepares the
model, into a persistent tensor the builtin op reads as its weights. Kernels whose
tables are equal (a ``scope="model"`` codebook) read one constant table.

A weight is replaced when its values are exactly ``table[index]`` for the
kernel's cluster indices laid out as the builtin op lays out its weights
(Dense ``[in, out]`` -> ``[out, in]``, Conv ``HWIO`` -> ``OHWI``, depthwise
``HWCM`` -> ``[1, H, W, C*M]``, ...): so a kernel quantizer that maps each
centroid to one value (a tfqnn ``Quant*`` layer) or a constant factor that
the converter folds in is kept exact, and the decoded weight equals the
converted one bit for bit. Scalar codebooks only (``stages = 1``,
``subvector_size = 1``, one block); product and residual codebooks, and weights the
converter scales per output channel (a folded BatchNormalization), stay
float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

from tfqnn.codebook import Clustered
from tfqnn.codebook.product import from_subvectors
from tfqnn.export import weight_rewrite
from tfqnn.lite import reference, spec


@dataclasses.dataclass
class ClusteredKernel:
    """One scalar-clustered kernel of a model: its cluster indices and code count."""

    name: str  # "<layer>/<kernel>"
    indices: np.ndarray  # int64, the kernel's shape
    codes: int  # entries of the codebook (k, plus the zero code of a pruned kernel)
    table: np.ndarray | None = None  # the layer's float32 table: values of unused codes

    def layouts(self) -> list[np.ndarray]:
        """The index array as the builtin ops may lay out this kernel (unreshaped)."""
        i = self.indices
        candidates = [i, np.moveaxis(i, -1, 0)]  # for 2-D, the second is the transpose
        if i.ndim == 4:  # Conv2DTranspose [kh, kw, out, in] -> [out, kh, kw, in]
            candidates.append(np.transpose(i, (2, 0, 1, 3)))
        return candidates


def clustered_kernels(model: keras.Model) -> list[ClusteredKernel]:
    """The scalar-clustered kernels of ``model``'s `Clustered` layers.

    Kernels whose codebook has more than 2**16 entries are left out (the
    op's indices have at most 16 bits).
    """
    kernels = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, Clustered) or not layer.built:
            continue
        for name in layer.kernels:
            codebook = layer.codebooks[name]
            if (
                codebook["stages"] != 1
                or codebook["subvector_size"] != 1
                or codebook["blocks"] != 1
            ):
                continue
            table, indices = layer.codebook(name)
            codes = int(table.shape[1])
            if codes > 2**spec.MAX_INDEX_BITS:
                continue
            shape = tuple(layer.kernel_shapes[name])
            kernel_indices = from_subvectors(indices[0].astype(np.int64), shape, codebook["axis"])
            values = np.asarray(table[0, :, 0], np.float32)
            kernels.append(ClusteredKernel(f"{layer.name}/{name}", kernel_indices, codes, values))
    return kernels


def codebook_of(
    weight: np.ndarray, indices: np.ndarray, codes: int, fill: np.ndarray | None = None
) -> np.ndarray | None:
    """The float32 table with ``table[indices] == weight`` bit for bit, or None.

    Codes that no entry uses get their value in ``fill`` (``codes`` float32
    values; 0 without it), so that kernels sharing a codebook get equal tables.
    """
    if indices.size != weight.size:
        return None
    flat = indices.reshape(-1)
    bits = np.ascontiguousarray(weight, np.float32).reshape(-1).view(np.uint32)
    table = np.zeros(codes, np.uint32)
    if fill is not None and np.size(fill) == codes:
        table[:] = np.ascontiguousarray(fill, np.float32).view(np.uint32)
    table[flat] = bits
    if not np.array_equal(table[flat], bits):
        return None
    return table.view(np.float32)


# The weight input of each builtin that reads a kernel.
_WEIGHT_INPUT = {
    "FULLY_CONNECTED": 1,
    "CONV_2D": 1,
    "DEPTHWISE_CONV_2D": 1,
    "TRANSPOSE_CONV": 1,
}


def store_codebook_weights(data: bytes, kernels: list[ClusteredKernel]) -> tuple[bytes, int]:
    """The model bytes with clustered float32 weights as indices + codebook + decode op.

    Returns the bytes (``data`` itself when nothing changes) and how many
    weight tensors were replaced.
    """
    if not kernels:
        return bytes(data), 0
    decode_code: list[int] = []  # the decode op's operator code, added once
    tables: dict[tuple[int, bytes], int] = {}  # (subgraph, table bytes) -> its constant tensor

    def rewrite(schema: Any, model: Any, subgraph: Any, index: int, weight: np.ndarray) -> Any:
        found = _match(weight.reshape(-1), kernels)
        if found is None:
            return None
        indices, table, bits = found
        packed = reference.pack_indices(indices, bits)
        if packed.size + 4 * table.size >= 4 * weight.size:
            return None  # not smaller
        if not decode_code:
            custom = schema.BuiltinOperator.CUSTOM
            decode_code.append(
                weight_rewrite.add_operator_code(schema, model, custom, 1, spec.CODEBOOK_DECODE)
            )
        key = (id(subgraph), table.tobytes())  # a shared codebook is one constant
        op = _decode_op(schema, model, subgraph, index, packed, table, bits, tables.get(key))
        tables[key] = int(op.inputs[1])
        op.opcodeIndex = decode_code[0]
        return op

    return weight_rewrite.rewrite_weights(data, _WEIGHT_INPUT, rewrite)


def _match(
    weight: np.ndarray, kernels: list[ClusteredKernel]
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(indices in the weight's order, table, bits) of the kernel that ``weight`` is, or None."""
    for kernel in kernels:
        if kernel.indices.size != weight.size:
            continue
        for layout in kernel.layouts():
            flat = np.ascontiguousarray(layout).reshape(-1)
            table = codebook_of(weight, flat, kernel.codes, kernel.table)
            if table is not None:
                return flat, table, spec.index_bits(kernel.codes)
    return None


def _decode_op(
    schema: Any,
    model: Any,
    subgraph: Any,
    output: int,
    packed: np.ndarray,
    table: np.ndarray,
    bits: int,
    codebook: int | None = None,
) -> Any:
    """A TfqnnCodebookDecode op from new constants ``packed``, ``table`` to tensor ``output``.

    ``codebook``: an existing constant tensor that holds ``table`` (used
    instead of a new one).
    """
    from flatbuffers import flexbuffers

    name = weight_rewrite.tensor_name(subgraph, output)
    types = schema.TensorType
    constant = weight_rewrite.add_constant
    indices = constant(schema, model, subgraph, packed, types.UINT8, f"{name}_indices")
    if codebook is None:
        codebook = constant(schema, model, subgraph, table, types.FLOAT32, f"{name}_codebook")
    op = schema.OperatorT()
    op.inputs = np.array([indices, codebook], np.int32)
    op.outputs = np.array([output], np.int32)
    options = flexbuffers.Dumps(spec.codebook_decode_options(bits))
    op.customOptions = np.frombuffer(bytes(options), np.uint8)
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    return op
