"""Max pools and concatenations between binary layers, run on bitpacked tensors.

A binary layer reads only the bits of its input: bit 1 where ``x < t``,
``t`` its input threshold (0 for a sign, ``t_n`` per basis for a
multi-basis layer). Two float ops between binary layers commute with that
reading, so they can run on the bitpacked tensor instead of the float one:

* **Max pool.** ``x < t`` is non-increasing in ``x``, so the bit of
  ``max(window)`` is the AND of the window's bits:
  ``[max_i x_i < t] = AND_i [x_i < t]``. A `MaxPooling2D` (channels last,
  "same" or "valid": both ignore padded positions, as `TfqnnBMaxPool2d`
  does) whose every reader reads it through the same thresholds runs as
  `TfqnnBMaxPool2d` on its bitpacked input (every basis of a multi-basis
  input at once: the AND is per bit).
* **Concatenation** along the channel axis. Channel ``c`` of a bitpacked
  tensor is bit ``c % 32`` of word ``c // 32``, so when every part but the
  last has a multiple of 32 channels, the bitpacked concatenation is the
  concatenation of the bitpacked parts (an int32 ``CONCATENATION``). Only
  for one-basis (sign) readers: a multi-basis tensor is basis-major within
  each part.

* **Concatenation with gaps.** When a part before the last is not a
  multiple of 32 channels, its word is completed by ``g = 32 - C % 32``
  padding bits (0, i.e. +1) before the next part begins. If every reader is
  a one-basis binary layer (directly or behind such max pools), each gets
  ``g`` extra input channels there, with weights ``+1, -1, +1, ...``: for
  even ``g`` they add ``g/2 - g/2 = 0`` to every dot product (padding
  pixels of "same" convolutions included: a padded tap's channels sum to
  0 too), so the op computes exactly the dot product of the real channels
  (`gapped_weights`).

So GoogLeNet's Inception blocks need no float tensor between them: each
branch's binary op writes its bitpacked slice, and the block's pool branch
and the stage pools run on the bitpacked concatenation.

A node qualifies when its output is no model output, its input(s) float
with static channels, and every reader of its output is a binary group or
a qualifying node, all with the same thresholds; the exporter
(`tfqnn.export.plan`, `tfqnn.export.converter`) then writes the binary ops
before it with bitpacked output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

import keras
import numpy as np

from tfqnn.lite import reference


@dataclasses.dataclass(frozen=True)
class PackedNode:
    """A max pool or concatenation that runs on bitpacked tensors.

    Attributes:
        thresholds: what its readers read its output with (None: a sign);
            its input is bitpacked with them.
        parts: a concatenation with gaps: the channel counts of its parts,
            each bitpacked from a word boundary; None when the words are
            contiguous (and for pools).
        gap_readers: whether every reader takes gapped input (a one-basis
            binary group or such a pool).
    """

    thresholds: np.ndarray | None
    parts: tuple[int, ...] | None = None
    gap_readers: bool = False


def packed_nodes(
    nodes: list[Any],
    readers: Mapping[int, list[Any]],
    model_outputs: set[int],
    group_thresholds: Mapping[int, np.ndarray | None],
    folded: set[int],
    gap_groups: Collection[int],
) -> dict[int, PackedNode]:
    """The max-pool and concatenation nodes that run on bitpacked tensors.

    Args:
        nodes: the graph's operation nodes, inputs first.
        readers: the nodes reading each tensor, by the tensor's id.
        model_outputs: the ids of the model's output tensors.
        group_thresholds: by the id of each binary group's head node, the
            thresholds of its input bases (None for a sign).
        folded: the ids of the nodes folded into a binary group.
        gap_groups: the head ids of the groups that can take gapped input
            (one-basis, ungrouped `gapped_weights`).

    Returns:
        By node id, how it runs (`PackedNode`).
    """
    packed: dict[int, PackedNode] = {}
    for node in reversed(nodes):  # readers first
        if id(node) in folded or id(node) in group_thresholds or len(node.outputs) != 1:
            continue
        kind = _kind(node)
        if kind is None or id(node.outputs[0]) in model_outputs:
            continue
        users = readers.get(id(node.outputs[0]), [])
        same, thresholds = common_thresholds(users, group_thresholds, packed)
        if not same:
            continue
        gap_readers = all(
            id(u) in gap_groups or (id(u) in packed and packed[id(u)].gap_readers) for u in users
        )
        if kind == "pool":
            packed[id(node)] = PackedNode(thresholds, gap_readers=gap_readers)
        elif thresholds is None and kind == "concat":
            packed[id(node)] = PackedNode(None)
        elif thresholds is None and kind == "gapped" and gap_readers:
            parts = tuple(int(t.shape[-1]) for t in node.input_tensors)
            packed[id(node)] = PackedNode(None, parts=parts)
    return packed


def input_parts(nodes: list[Any], packed: Mapping[int, PackedNode]) -> dict[int, tuple[int, ...]]:
    """The parts of the gapped input of each node that reads one, by node id.

    A gapped concatenation's output, and the output of a pool of it, hold
    its parts; the nodes that read them (binary groups, pools) get them.
    """
    by_tensor: dict[int, tuple[int, ...]] = {}
    found: dict[int, tuple[int, ...]] = {}
    for node in nodes:
        here = packed.get(id(node))
        parts = here.parts if here is not None else None
        if parts is None:
            inputs = [by_tensor[id(t)] for t in node.input_tensors if id(t) in by_tensor]
            if inputs:
                found[id(node)] = inputs[0]
                if here is not None:  # a pool passes its input's parts on
                    parts = inputs[0]
        if parts is not None:
            by_tensor[id(node.outputs[0])] = parts
    return found


def gapped_weights(packed: np.ndarray, parts: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Packed weights ``[..., ceil(C/32)]`` of ``C = sum(parts)`` input channels for
    the gapped input of `parts`, and its channel count.

    After every part but the last, ``32 - C_i % 32`` channels (an even
    number, or 0) of weights ``+1, -1, ...``, which add 0 to each dot product.
    """
    signs = reference.unpack(packed, sum(parts))
    pieces, start = [], 0
    for i, channels in enumerate(parts):
        pieces.append(signs[..., start : start + channels])
        start += channels
        gap = -channels % 32 if i < len(parts) - 1 else 0
        if gap:
            pattern = np.where(np.arange(gap) % 2 == 0, 1.0, -1.0).astype(np.float32)
            pieces.append(np.broadcast_to(pattern, (*signs.shape[:-1], gap)))
    gapped = np.concatenate(pieces, axis=-1)
    return reference.bitpack(gapped), int(gapped.shape[-1])


def common_thresholds(
    users: list[Any],
    group_thresholds: Mapping[int, np.ndarray | None],
    packed: Mapping[int, PackedNode],
) -> tuple[bool, np.ndarray | None]:
    """Whether all `users` read bits with the same thresholds, and those thresholds.

    A user is a binary group's head node (its input thresholds) or a
    bitpacked node of `packed_nodes` (the thresholds its readers use).
    """
    found = []
    for user in users:
        if id(user) in group_thresholds:
            found.append(group_thresholds[id(user)])
        elif id(user) in packed:
            found.append(packed[id(user)].thresholds)
        else:
            return False, None
    if not found:
        return False, None
    first = found[0]
    same = all(
        (t is None and first is None)
        or (t is not None and first is not None and np.array_equal(t, first))
        for t in found
    )
    return same, first


def _kind(node: Any) -> str | None:
    """``"pool"``, ``"concat"`` (word-aligned) or ``"gapped"`` for a node that could
    run packed, else None."""
    layer = node.operation
    inputs = list(node.input_tensors)
    if not inputs or any(
        not _is_float(t) or t.shape[-1] is None or len(t.shape) < 2 for t in inputs
    ):
        return None
    if (
        type(layer) is keras.layers.MaxPooling2D
        and layer.data_format == "channels_last"
        and layer.padding in ("same", "valid")
        and len(inputs) == 1
        and len(inputs[0].shape) == 4
    ):
        return "pool"
    if type(layer) is keras.layers.Concatenate and len(inputs) >= 2:
        rank = len(inputs[0].shape)
        if layer.axis not in (-1, rank - 1) or any(len(t.shape) != rank for t in inputs):
            return None
        channels = [int(t.shape[-1]) for t in inputs[:-1]]
        if all(c % 32 == 0 for c in channels):
            return "concat"
        if all(c % 2 == 0 for c in channels):
            return "gapped"
    return None


def _is_float(tensor: Any) -> bool:
    return str(getattr(tensor, "dtype", "")) in ("float16", "bfloat16", "float32", "float64")
