"""`save_compressed` / `load_compressed`: a file as small as the report says.

Format (little-endian; docs/codebook.md has the full description):

    magic   8 bytes   b"TFQNNCB2"
    length  uint64    bytes of the header
    header  zlib-compressed UTF-8 JSON
                      {"format": 2, "model": <Keras config of the stripped model>,
                       "tensors": [one entry per model weight, in order]}
    payload the bytes the entries point into ("offset", "length")

Format 1 (magic b"TFQNNCB1", ``"format": 1``) is the same with the JSON
header stored uncompressed; files of either format load. Deflate shrinks
the Keras config, most of a small model's header, about fivefold. The
inflated header is limited to ``MAX_HEADER`` bytes.

A weight is ``"raw"`` (its bytes) or, for a clustered kernel,
``"codebook"``: float32 centroids (stages, B k, d; B > 1 for per-block
product codebooks, with block-local indices) plus one index stream per
stage, Huffman-coded densely or, for a pruned kernel where smaller,
Deep Compression's sparse pairs (gap, index) with both Huffman-coded
(`storage`). The payload of a codebook kernel is exactly the report's
Huffman prediction rounded up to whole bytes per stream, so the file is the
report's prediction plus the header and the raw tensors. A codebook that
several kernels share (``scope="model"``) is written once: their entries
point at the same centroid bytes.

Reading never trusts the file: every size is checked against the bytes
that describe it before anything is allocated (a stream of b bits holds at
most b symbols, a sparse stream at most 2^gap_bits entries per pair), and
the model is built with deferred variables whose shapes are compared with
the entries before they are allocated. Any inconsistency raises ValueError.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from typing import Any

import keras
import numpy as np
from keras.src.backend.common import global_state

from tfqnn.codebook import _rebuild, huffman, storage
from tfqnn.codebook.product import from_subvectors
from tfqnn.codebook.strip import strip
from tfqnn.codebook.wrappers import Clustered, block_ids, kernel_variable

MAGIC = b"TFQNNCB2"
FORMAT = 2
MAGIC_V1 = b"TFQNNCB1"  # format 1: the same with an uncompressed header (still read)
MAGICS = {MAGIC_V1: 1, MAGIC: 2}
MAX_HEADER = 1 << 26  # bytes of an inflated header
DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")
MAX_NDIM = 8


def save_compressed(model: keras.Model, path: str | os.PathLike[str]) -> int:
    """Writes ``model`` (from `cluster`, or any model) to ``path``; returns the file's bytes.

    Clustered kernels are stored as codebooks and coded indices, all other
    weights raw. `load_compressed` returns the stripped model (plain layers,
    decoded kernels) with identical predictions.
    """
    data = to_bytes(model)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def to_bytes(model: keras.Model) -> bytes:
    """The bytes `save_compressed` writes."""
    model = _rebuild.check_model(model)
    plain = strip(model)
    codebooks: dict[str, tuple[Clustered, str]] = {}
    for layer, new in zip(model.layers, plain.layers):
        if isinstance(layer, Clustered):
            for name in layer.kernels:
                variable = kernel_variable(new, name)
                codebooks[variable.path] = (layer, name)
    payload = bytearray()
    tables: dict[bytes, dict[str, int]] = {}  # centroid bytes -> where they were written
    entries = []
    for variable in plain.weights:
        value = np.asarray(variable)
        entry: dict[str, Any] = {
            "path": variable.path,
            "shape": list(value.shape),
            "dtype": str(value.dtype),
        }
        if variable.path in codebooks:
            entry.update(_codebook_entry(*codebooks[variable.path], payload, tables))
        else:
            entry.update(encoding="raw", **_append(payload, value.tobytes()))
        entries.append(entry)
    config = keras.saving.serialize_keras_object(plain)
    config.pop("compile_config", None)  # the file holds the model, not its training setup
    header = {
        "format": FORMAT,
        "model": config,
        "tensors": entries,
    }
    text = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    return MAGIC + struct.pack("<Q", len(text)) + text + bytes(payload)


def _append(payload: bytearray, data: bytes) -> dict[str, int]:
    offset = len(payload)
    payload.extend(data)
    return {"offset": offset, "length": len(data)}


def _codebook_entry(
    layer: Clustered, name: str, payload: bytearray, tables: dict[bytes, dict[str, int]]
) -> dict[str, Any]:
    spec = layer.codebooks[name]
    table, indices = layer.codebook(name)
    k = spec["clusters"]
    blocks = spec["blocks"]
    centroids = np.ascontiguousarray(table[:, : blocks * k, :], dtype="<f4")
    raw = centroids.tobytes()
    if raw not in tables:  # a shared codebook is written once, then pointed at
        tables[raw] = _append(payload, raw)
    codes = k + int(spec["pruned"])
    zero_code = k if spec["pruned"] else None
    streams = []
    for stream in indices.astype(np.int64):
        plan = storage.best(stream, codes, zero_code)
        if plan.kind == "huffman":
            lengths = huffman.code_lengths(np.bincount(stream, minlength=codes))
            data, bits = huffman.encode(stream, lengths)
            streams.append(
                {
                    "kind": "huffman",
                    "count": int(stream.size),
                    "bits": bits,
                    "lengths": lengths.tolist(),
                    **_append(payload, data.tobytes()),
                }
            )
            continue
        gaps, pair_codes = storage.to_sparse(stream, codes - 1, plan.gap_bits)
        gap_lengths = huffman.code_lengths(np.bincount(gaps, minlength=1 << plan.gap_bits))
        code_lengths = huffman.code_lengths(np.bincount(pair_codes, minlength=codes))
        gap_data, gap_bits = huffman.encode(gaps, gap_lengths)
        code_data, code_bits = huffman.encode(pair_codes, code_lengths)
        streams.append(
            {
                "kind": "sparse",
                "count": int(stream.size),
                "pairs": int(gaps.size),
                "gap_bits": plan.gap_bits,
                "gap_lengths": gap_lengths.tolist(),
                "lengths": code_lengths.tolist(),
                "bits": gap_bits,
                "code_bits": code_bits,
                "code_offset": len(payload) + gap_data.size,
                **_append(payload, gap_data.tobytes() + code_data.tobytes()),
            }
        )
    entry = {
        "encoding": "codebook",
        "axis": spec["axis"],
        "codes": codes,
        "centroids": {"shape": list(centroids.shape), **tables[raw]},
        "streams": streams,
    }
    if blocks > 1:
        entry["blocks"] = blocks
    return entry


def load_compressed(path: str | os.PathLike[str]) -> keras.Model:
    """The model of a `save_compressed` file: plain layers with decoded kernels.

    Raises ValueError on any malformed file (truncated, corrupted or
    crafted), before allocating more than the file describes.
    """
    with open(path, "rb") as f:
        data = f.read()
    return from_bytes(data)


def from_bytes(data: bytes) -> keras.Model:
    """The model of `to_bytes`'s ``data``."""
    config, tensors = parse(data)
    return _build(config, tensors)


def parse(data: bytes) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """The model config and the decoded (path, array) tensors of a file's bytes."""
    version = MAGICS.get(bytes(data[: len(MAGIC)])) if len(data) >= len(MAGIC) + 8 else None
    if version is None:
        raise ValueError(
            "Invalid compressed file: it does not start with b'TFQNNCB2' (or b'TFQNNCB1')."
        )
    (length,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    if length > len(data) - start:
        raise ValueError("Invalid compressed file: the header runs past the end (truncated?).")
    text = bytes(data[start : start + length])
    if version == 2:
        text = _inflate(text)
    try:
        header = json.loads(text.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"Invalid compressed file: unreadable header ({error}).") from None
    payload = memoryview(data)[start + length :]
    if not isinstance(header, dict) or header.get("format") != version:
        raise ValueError(f"Invalid compressed file: expected format {version}.")
    config = header.get("model")
    entries = header.get("tensors")
    if not isinstance(config, dict) or not isinstance(entries, list):
        raise ValueError("Invalid compressed file: the header lacks the model or its tensors.")  # noqa: TRY004 (a malformed file is a ValueError)
    tensors = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"Invalid compressed file: tensor {i} is not an object.")  # noqa: TRY004 (a malformed file is a ValueError)
        try:
            tensors.append((str(entry.get("path")), _tensor(entry, payload)))
        except ValueError as error:
            raise ValueError(f"Invalid compressed file: tensor {i}: {error}") from None
    return config, tensors


def _inflate(text: bytes) -> bytes:
    """A format 2 header's JSON: ``text`` inflated, at most ``MAX_HEADER`` bytes."""
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(text, MAX_HEADER)
    except zlib.error as error:
        raise ValueError(f"Invalid compressed file: unreadable header ({error}).") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"Invalid compressed file: the header inflates past {MAX_HEADER} bytes.")
    if not inflater.eof or inflater.unused_data:
        raise ValueError("Invalid compressed file: the header's deflate stream is cut or padded.")
    return inflated


def _int(entry: dict[str, Any], key: str, low: int = 0, high: int | None = None) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key}={value!r} is not an integer.")  # noqa: TRY004 (a malformed file is a ValueError)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{key}={value!r} is not in [{low}, {high}].")
    return value


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_NDIM:
        raise ValueError(f"shape={value!r} is not a list of at most {MAX_NDIM} sizes.")
    for size in value:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"shape={value!r} has an invalid size.")
    return tuple(value)


def _bytes(entry: dict[str, Any], payload: memoryview) -> memoryview:
    offset = _int(entry, "offset")
    length = _int(entry, "length")
    if offset + length > len(payload):
        raise ValueError("its bytes run past the end of the file (truncated?).")
    return payload[offset : offset + length]


def _lengths(value: Any, alphabet: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) != alphabet:
        raise ValueError(f"a Huffman table must have {alphabet} lengths.")
    if not all(
        isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= huffman.MAX_LENGTH
        for x in value
    ):
        raise ValueError(f"a Huffman table has a length outside [0, {huffman.MAX_LENGTH}].")
    lengths = np.asarray(value, dtype=np.int64)
    if not huffman.check_lengths(lengths):
        raise ValueError("a Huffman table is not a prefix code.")
    return lengths


def _tensor(entry: dict[str, Any], payload: memoryview) -> np.ndarray:
    shape = _shape(entry.get("shape"))
    dtype = entry.get("dtype")
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {DTYPES}.")
    size = math.prod(shape)
    encoding = entry.get("encoding")
    if encoding == "raw":
        raw = _bytes(entry, payload)
        if len(raw) != size * np.dtype(dtype).itemsize:
            raise ValueError(f"{len(raw)} bytes do not hold {shape} of {dtype}.")
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()
    if encoding != "codebook":
        raise ValueError(f"encoding={encoding!r} is not 'raw' or 'codebook'.")
    if dtype not in ("float16", "float32", "float64") or not shape:
        raise ValueError("a codebook tensor must be a float array of at least one axis.")
    return _codebook(entry, shape, dtype, payload)


def _codebook(
    entry: dict[str, Any], shape: tuple[int, ...], dtype: str, payload: memoryview
) -> np.ndarray:
    axis = entry.get("axis")
    if not isinstance(axis, int) or isinstance(axis, bool) or not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis={axis!r} is not an axis of shape {shape}.")
    centroids_entry = entry.get("centroids")
    if not isinstance(centroids_entry, dict):
        raise ValueError("centroids is not an object.")  # noqa: TRY004 (a malformed file is a ValueError)
    stages, rows_k, d = (_shape(centroids_entry.get("shape")) + (0, 0, 0))[:3]
    if len(_shape(centroids_entry.get("shape"))) != 3 or min(stages, rows_k, d) < 1:
        raise ValueError("centroids shape must be (stages, blocks * k, d), all positive.")
    raw = _bytes(centroids_entry, payload)
    if len(raw) != stages * rows_k * d * 4:
        raise ValueError("the centroids' bytes do not match their shape.")
    centroids = np.frombuffer(raw, dtype="<f4").reshape(stages, rows_k, d)
    blocks = _int(entry, "blocks", 1, rows_k) if "blocks" in entry else 1
    if rows_k % blocks or (blocks > 1 and stages > 1):
        raise ValueError(f"blocks={blocks} must divide {rows_k} centroids of one stage.")
    k = rows_k // blocks
    codes = _int(entry, "codes", k, k + 1 if blocks == 1 else k)
    table = centroids
    if codes == k + 1:
        table = np.concatenate([centroids, np.zeros((stages, 1, d), "<f4")], axis=1)
    streams = entry.get("streams")
    if not isinstance(streams, list) or len(streams) != stages:
        raise ValueError(f"expected {stages} index streams.")
    if shape[axis] % d or math.prod(shape) // d * d != math.prod(shape):
        raise ValueError(f"subvectors of {d} do not tile shape {shape} along axis {axis}.")
    m = math.prod(shape) // d
    decoded = []
    for stream in streams:  # each bounds m by its bits before the rows exist
        if not isinstance(stream, dict):
            raise ValueError("an index stream is not an object.")  # noqa: TRY004 (a malformed file is a ValueError)
        decoded.append(_stream(stream, codes, m, payload))
    if blocks > 1:  # block-local indices: offset into the concatenated tables
        offsets = block_ids(shape, axis, d, blocks) * k
        decoded = [indices + offsets for indices in decoded]
    rows = np.zeros((m, d), dtype=np.float64)
    for stage, indices in enumerate(decoded):
        rows += table[stage][indices]
    return from_subvectors(rows, shape, axis).astype(dtype)


def _stream(stream: dict[str, Any], codes: int, m: int, payload: memoryview) -> np.ndarray:
    """The m indices of one stream, checked to be below ``codes``."""
    if _int(stream, "count") != m:
        raise ValueError(f"an index stream must hold {m} indices.")
    data = np.frombuffer(_bytes(stream, payload), dtype=np.uint8)
    kind = stream.get("kind")
    if kind == "huffman":
        bits = _int(stream, "bits", 0, 8 * data.size)
        if m > bits:
            raise ValueError("an index stream has fewer bits than indices.")
        indices = huffman.decode(data, bits, m, _lengths(stream.get("lengths"), codes))
    elif kind == "sparse":
        gap_bits = _int(stream, "gap_bits", 1, max(storage.GAP_BITS))
        pairs = _int(stream, "pairs")
        bits = _int(stream, "bits", 0, 8 * data.size)
        code_offset = _int(stream, "code_offset") - _int(stream, "offset")
        code_bits = _int(stream, "code_bits", 0)
        if not 0 <= code_offset <= data.size or code_bits > 8 * (data.size - code_offset):
            raise ValueError("a sparse stream's index codes run past its bytes.")
        if pairs > min(bits, code_bits) or bits > 8 * code_offset:
            raise ValueError("a sparse stream has fewer bits than pairs.")
        if m > (pairs + 1) << gap_bits:
            raise ValueError("a sparse stream's pairs cannot cover its indices.")
        gap_lengths = _lengths(stream.get("gap_lengths"), 1 << gap_bits)
        gaps = huffman.decode(data[:code_offset], bits, pairs, gap_lengths)
        pair_codes = huffman.decode(
            data[code_offset:], code_bits, pairs, _lengths(stream.get("lengths"), codes)
        )
        if codes < 2:
            raise ValueError("a sparse stream needs a zero code.")
        indices = storage.from_sparse(gaps, pair_codes, m, codes - 1)
    else:
        raise ValueError(f"kind={kind!r} is not 'huffman' or 'sparse'.")
    if indices.size != m or (indices.size and int(indices.max()) >= codes):
        raise ValueError("an index stream has an index beyond its codebook.")
    return indices


def _build(config: dict[str, Any], tensors: list[tuple[str, np.ndarray]]) -> keras.Model:
    """The model of ``config`` with ``tensors``, variables allocated only once they match."""
    config = {key: value for key, value in config.items() if key != "compile_config"}
    before = list(global_state.get_global_attribute("uninitialized_variables") or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as error:  # noqa: BLE001 (any Keras error on a corrupted config)
        _forget_new_variables(before)
        raise ValueError(f"Invalid compressed file: the model config fails ({error}).") from None
    created = [
        v
        for v in (global_state.get_global_attribute("uninitialized_variables") or [])
        if not any(v is b for b in before)
    ]
    _forget_new_variables(before)
    weights = model.weights if isinstance(model, keras.Model) else []
    shapes_ok = len(weights) == len(tensors) and all(
        tuple(v.shape) == t.shape for v, (_, t) in zip(weights, tensors)
    )
    if not isinstance(model, keras.Model) or not shapes_ok:
        raise ValueError("Invalid compressed file: its tensors do not match the model's weights.")
    for variable in created:
        variable._deferred_initialize()
    for variable, (_, value) in zip(weights, tensors):
        variable.assign(value)
    return model


def _forget_new_variables(before: list[Any]) -> None:
    """Drops the deferred variables created since ``before`` from Keras's global list."""
    global_state.set_global_attribute("uninitialized_variables", before)
