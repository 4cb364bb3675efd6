"""Reading a tf_keras SavedModel directory without tf_keras.

tf_keras's ``model.save("dir", save_format="tf")`` writes, beside
TensorFlow's graph (``saved_model.pb``, not read here), ``keras_metadata.pb``:
a ``SavedMetadata`` protocol buffer, one ``SavedObject`` (field 1) per Keras
object with its ``node_path`` (field 3: ``"root"``, ``"root.layer-1"``,
``"root.layer_with_weights-0"``), its ``identifier`` (field 4:
``"_tf_keras_network"``, ``"_tf_keras_layer"``) and its ``metadata``
(field 5: JSON, the root's holding the model config as the ``.h5`` file
does, with tuples written as ``{"class_name": "__tuple__", "items": [...]}``).
`read` decodes those fields with a minimal protobuf reader, then reads the
variables from the TensorFlow checkpoint in ``variables/``: its
``TrackableObjectGraph`` (``_CHECKPOINTABLE_OBJECT_GRAPH``, decoded by the
same reader) links each object to its children by name, so the variables
a layer reaches are its weights, whichever path the checkpoint keys them
by (the layer's own ``layer_with_weights-K/kernel``, or the model's
``variables/<index>`` for a tfmot wrapper's layer and a nested model's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from tfqnn.interop.h5file import SourceModel

METADATA = "keras_metadata.pb"
CHECKPOINT = os.path.join("variables", "variables")
# SavedObject identifiers of the models tfqnn.interop rebuilds.
MODEL_IDENTIFIERS = ("_tf_keras_network", "_tf_keras_model", "_tf_keras_sequential")
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"  # the checkpoint's TrackableObjectGraph


def _varint(data: bytes, start: int) -> tuple[int, int]:
    value, shift, index = 0, 0, start
    while True:
        if index >= len(data) or shift > 63:
            raise ValueError("a truncated or malformed varint")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index


def fields(data: bytes) -> Iterator[tuple[int, Any]]:
    """The ``(field number, value)`` pairs of one protobuf message.

    Varints (wire type 0) as ints, length-delimited fields (2) as bytes;
    fixed 64- and 32-bit fields (1, 5) are skipped as bytes.

    Raises:
        ValueError: a truncated message or an unknown wire type.
    """
    index = 0
    while index < len(data):
        key, index = _varint(data, index)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, index = _varint(data, index)
        elif wire == 2:
            size, index = _varint(data, index)
            if index + size > len(data):
                raise ValueError("a truncated field")
            value, index = data[index : index + size], index + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if index + size > len(data):
                raise ValueError("a truncated field")
            value, index = data[index : index + size], index + size
        else:
            raise ValueError(f"wire type {wire}, which keras_metadata.pb does not use")
        yield number, value


def _untupled(value: Any) -> Any:
    """The JSON with tf_keras's ``__tuple__`` objects as lists, as the .h5 config has them."""
    if isinstance(value, dict):
        if value.get("class_name") == "__tuple__" and isinstance(value.get("items"), list):
            return [_untupled(v) for v in value["items"]]
        return {k: _untupled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untupled(v) for v in value]
    return value


def _objects(data: bytes) -> list[dict[str, str]]:
    """The SavedObjects' ``node_path``, ``identifier`` and ``metadata`` as text."""
    objects = []
    for number, node in fields(data):
        if number != 1 or not isinstance(node, bytes):
            continue
        found = {}
        for key, value in fields(node):
            name = {3: "path", 4: "identifier", 5: "metadata"}.get(key)
            if name is not None and isinstance(value, bytes):
                found[name] = value.decode("utf-8")
        objects.append(found)
    return objects


def _object_graph(data: bytes) -> list[tuple[list[tuple[str, int]], list[str]]]:
    """The checkpoint's ``TrackableObjectGraph``: per node, its children and variable keys.

    Each node (field 1) lists its children (field 1: ``node_id`` 1,
    ``local_name`` 2) in the order the object tracked them, and its
    serialized tensors (field 2: ``name`` 1, ``checkpoint_key`` 3); a
    variable's value is the tensor named ``VARIABLE_VALUE``.
    """
    nodes = []
    for number, node in fields(data):
        if number != 1 or not isinstance(node, bytes):
            continue
        children: list[tuple[str, int]] = []
        keys: list[str] = []
        for key, value in fields(node):
            if not isinstance(value, bytes):
                continue
            entry = dict(fields(value))
            if key == 1 and isinstance(entry.get(1, 0), int) and isinstance(entry.get(2), bytes):
                children.append((entry[2].decode("utf-8"), int(entry.get(1, 0))))
            elif key == 2 and entry.get(1) == b"VARIABLE_VALUE" and isinstance(entry.get(3), bytes):
                keys.append(entry[3].decode("utf-8"))
        nodes.append((children, keys))
    return nodes


def _node(graph: list[tuple[list[tuple[str, int]], list[str]]], path: str) -> int | None:
    """The checkpoint node at a metadata ``node_path`` (``"root.layer-1.layer"``), or None."""
    node = 0
    for part in path.split(".")[1:]:
        if not 0 <= node < len(graph):
            return None
        found = [child for name, child in graph[node][0] if name == part]
        if not found:
            return None
        node = found[0]
    return node if 0 <= node < len(graph) else None


def _layer_name(metadata: str, path: str) -> str:
    found = json.loads(metadata or "{}")
    name = found.get("name") if isinstance(found, dict) else None
    if not isinstance(name, str):
        raise ValueError(f"the metadata of {path} has no layer name")  # noqa: TRY004
    return name


def _weights(
    objects: list[dict[str, str]],
    graph: list[tuple[list[tuple[str, int]], list[str]]],
    variables: dict[str, np.ndarray],
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per layer of the root model, its ``("<owner>/<weight>:0", array)`` pairs.

    A layer's variables are those the checkpoint's object graph reaches from
    it, in the order it tracked them. Each is named as the ``.h5`` file
    names it: ``<owner>`` is the innermost Keras object that holds it under
    a name (the layer itself, the layer a tfmot wrapper wraps, a recurrent
    layer's cell, the layer of a nested model), ``<weight>`` that name. The
    checkpoint's own key may be another path (tf_keras saves a wrapped
    layer's kernel as the model's ``variables/0``).
    """
    owners: dict[int, tuple[str, int]] = {}  # node: (layer name, depth of its path)
    top: list[tuple[str, int]] = []
    for found in objects:
        path = found.get("path", "")
        if not path.startswith("root.") or found.get("identifier") == "_tf_keras_metric":
            continue
        node = _node(graph, path)
        if node is None:
            continue  # objects outside the checkpoint's graph (Keras's keras_api)
        owners[node] = (_layer_name(found.get("metadata", ""), path), path.count("."))
        if path.count(".") == 1 and path.split(".")[1].startswith("layer"):
            top.append((owners[node][0], node))
    names: dict[int, tuple[str, int]] = {}  # variable node: ("<owner>/<weight>", depth)
    for parent, (owner, depth) in owners.items():
        for local, child in graph[parent][0]:
            if not 0 <= child < len(graph) or not graph[child][1] or local.isdigit():
                continue
            if depth > names.get(child, ("", -1))[1]:
                names[child] = (f"{owner}/{local}", depth)
    weights: dict[str, list[tuple[str, np.ndarray]]] = {}
    used: set[str] = set()
    for name, start in top:
        arrays = []
        stack, seen = [start], {start}
        while stack:
            node = stack.pop()
            for key in graph[node][1]:
                if key in variables and key not in used:
                    if node not in names:
                        raise ValueError(f"the checkpoint entry {key!r} has no weight name")
                    used.add(key)
                    array = variables[key]
                    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                        raise ValueError(
                            f"weight {key!r} holds NaN or infinite values (a damaged file?)"
                        )
                    arrays.append((f"{names[node][0]}:0", array))
            children = [c for _, c in graph[node][0] if 0 <= c < len(graph) and c not in seen]
            seen.update(children)
            stack += reversed(children)
        weights[name] = arrays
    return weights


def read(path: str | os.PathLike[str]) -> SourceModel:
    """Reads the model config and the weights of a tf_keras SavedModel directory.

    Raises:
        ValueError: the directory has no ``keras_metadata.pb`` (a SavedModel
            that tf_keras did not write, or Keras 3's export, which has no
            model config), or its metadata or checkpoint is damaged.
    """
    path = os.fspath(path)
    metadata_path = os.path.join(path, METADATA)
    if not os.path.isfile(metadata_path):
        raise ValueError(
            f"Cannot load {path}: a directory without {METADATA}, so not a tf_keras SavedModel "
            "(a Keras 3 export archive holds no model config); save the model with "
            "model.save('model.h5')."
        )
    try:
        with open(metadata_path, "rb") as f:
            objects = _objects(f.read())
        roots = [o for o in objects if o.get("path") == "root"]
        if len(roots) != 1 or roots[0].get("identifier") not in MODEL_IDENTIFIERS:
            raise ValueError(f"{METADATA} describes no tf_keras model at its root")
        root = _untupled(json.loads(roots[0].get("metadata", "")))
        if not isinstance(root, dict) or not isinstance(root.get("config"), dict):
            raise ValueError(f"the root metadata of {METADATA} holds no model config")  # noqa: TRY004
        config = {"class_name": root.get("class_name"), "config": root["config"]}
        if not os.path.isfile(os.path.join(path, CHECKPOINT + ".index")):
            raise ValueError("it has no variables/variables.index")
        try:
            reader = tf.train.load_checkpoint(os.path.join(path, CHECKPOINT))
            names = reader.get_variable_to_shape_map()
            graph_bytes = reader.get_tensor(OBJECT_GRAPH)
            variables = {
                k: np.asarray(reader.get_tensor(k))
                for k in names
                if k.endswith(VALUE_SUFFIX) and not k.startswith("optimizer/")
            }
        except Exception as error:  # TensorFlow raises many kinds on damaged checkpoints
            raise ValueError(
                f"its checkpoint is damaged or truncated ({type(error).__name__})"
            ) from error
        if not isinstance(graph_bytes, bytes):
            raise ValueError("its checkpoint has no object graph")  # noqa: TRY004
        weights = _weights(objects, _object_graph(graph_bytes), variables)
        version = str(root.get("keras_version", "2"))
        return SourceModel(config, version, weights, False)
    except ValueError as error:
        raise ValueError(f"Cannot load {path}: {error}.") from error
    except Exception as error:  # malformed metadata can fail anywhere in decoding
        raise ValueError(
            f"Cannot load {path}: {METADATA} is damaged ({type(error).__name__}: {error})."
        ) from error
