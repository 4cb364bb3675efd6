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
variables from the TensorFlow checkpoint in ``variables/``, where the
weights of the layer at ``root.layer_with_weights-K`` are the entries
``layer_with_weights-K/<weight>/.ATTRIBUTES/VARIABLE_VALUE``.
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


def _weights(
    objects: list[dict[str, str]], variables: dict[str, np.ndarray]
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per layer name, its ``("<layer>/<weight>:0", array)`` pairs from the checkpoint."""
    weights: dict[str, list[tuple[str, np.ndarray]]] = {}
    for found in objects:
        path = found.get("path", "")
        parts = path.split(".")
        if len(parts) != 2 or parts[0] != "root" or not parts[1].startswith("layer"):
            continue  # the root, and objects inside layers (nested models are not read)
        metadata = json.loads(found.get("metadata", "{}"))
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"the metadata of {path} has no layer name")  # noqa: TRY004
        prefix = parts[1] + "/"
        arrays = []
        for key in sorted(k for k in variables if k.startswith(prefix)):
            weight = key[len(prefix) :]
            if not weight.endswith(VALUE_SUFFIX) or "/" in weight[: -len(VALUE_SUFFIX)]:
                raise ValueError(
                    f"the checkpoint entry {key!r} is not a weight of layer {name!r} (a nested "
                    "model or a layer tracking other objects: save it as .h5)"
                )
            array = variables[key]
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise ValueError(f"weight {key!r} holds NaN or infinite values (a damaged file?)")
            arrays.append((f"{name}/{weight[: -len(VALUE_SUFFIX)]}:0", array))
        weights[name] = arrays
    return weights


def read(path: str | os.PathLike[str]) -> SourceModel:
    """Reads the model config and the weights of a tf_keras SavedModel directory.

    Raises:
        ValueError: the directory has no ``keras_metadata.pb`` (a SavedModel
            that tf_keras did not write, or Keras 3's export, which has no
            model config), its metadata or checkpoint is damaged, or a layer
            holds a nested model.
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
            variables = {
                k: np.asarray(reader.get_tensor(k))
                for k in names
                if k.endswith(VALUE_SUFFIX) and not k.startswith("optimizer/")
            }
        except Exception as error:  # TensorFlow raises many kinds on damaged checkpoints
            raise ValueError(
                f"its checkpoint is damaged or truncated ({type(error).__name__})"
            ) from error
        weights = _weights(objects, variables)
        version = str(root.get("keras_version", "2"))
        return SourceModel(config, version, weights, False)
    except ValueError as error:
        raise ValueError(f"Cannot load {path}: {error}.") from error
    except Exception as error:  # malformed metadata can fail anywhere in decoding
        raise ValueError(
            f"Cannot load {path}: {METADATA} is damaged ({type(error).__name__}: {error})."
        ) from error
