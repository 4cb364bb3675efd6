"""Reading a tf_keras full-model ``.h5`` file with h5py alone.

A model saved by tf_keras (``model.save("m.h5")``) holds, as attributes of
the root group, ``keras_version``, ``backend`` and ``model_config`` (the
model's JSON config), and in the group ``model_weights`` one group per layer
whose attribute ``weight_names`` lists its weights, stored as datasets at
those names inside the layer's group. `read` takes all of it into memory and
turns every way a file can be wrong into a ValueError.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

# Keras versions whose .h5 layout and configs `read` understands: tf_keras
# and Keras 2 (2.x), and the Keras 1.2 name that TensorFlow's bundled Keras wrote before 2.2.
SUPPORTED_VERSIONS = ("2.",)

WEIGHTS_ONLY = (
    "it holds weights but no model config (saved with save_weights): build the "
    "model in tfqnn and call model.load_weights on it"
)


@dataclass
class SourceModel:
    """What `read` found in a file.

    Attributes:
        config: the model config, ``{"class_name": ..., "config": ...}``.
        keras_version: the ``keras_version`` attribute ("2.21.0" for tf_keras 2.21).
        weights: per layer name, its ``(weight name, array)`` pairs in file order.
        has_training_config: whether the file also holds a compiled state
            (loss, metrics, optimizer), which `tfqnn.interop.load` ignores.
    """

    config: dict[str, Any]
    keras_version: str
    weights: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict)
    has_training_config: bool = False


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    if not isinstance(value, str):
        raise ValueError(  # noqa: TRY004 (a malformed file is a ValueError)
            f"expected a string attribute, found {type(value).__name__}"
        )
    return value


def _names(group: Any, attribute: str) -> list[str]:
    names = group.attrs.get(attribute)
    if names is None:
        raise ValueError(f"group {group.name!r} has no attribute {attribute!r}")
    names = np.asarray(names)
    if names.ndim != 1:
        raise ValueError(f"attribute {attribute!r} of {group.name!r} is not a list of names")
    return [_text(name) for name in names]


def _read_weights(group: Any) -> dict[str, list[tuple[str, np.ndarray]]]:
    weights: dict[str, list[tuple[str, np.ndarray]]] = {}
    for layer_name in _names(group, "layer_names"):
        if layer_name not in group:
            raise ValueError(f"the weights of layer {layer_name!r} are missing")
        layer_group = group[layer_name]
        arrays = []
        for weight_name in _names(layer_group, "weight_names"):
            if weight_name not in layer_group:
                raise ValueError(f"weight {weight_name!r} of layer {layer_name!r} is missing")
            dataset = layer_group[weight_name]
            if not isinstance(dataset, h5py.Dataset):
                raise ValueError(  # noqa: TRY004 (a malformed file is a ValueError)
                    f"weight {weight_name!r} of layer {layer_name!r} is not an array"
                )
            array = np.asarray(dataset[()])
            if array.dtype.kind not in "fiub":
                raise ValueError(
                    f"weight {weight_name!r} of layer {layer_name!r} has dtype {array.dtype}"
                )
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise ValueError(
                    f"weight {weight_name!r} of layer {layer_name!r} holds NaN or infinite "
                    "values (a damaged file?)"
                )
            arrays.append((weight_name, array))
        weights[layer_name] = arrays
    return weights


def read(path: str | os.PathLike[str]) -> SourceModel:
    """Reads the model config and the weights of a tf_keras ``.h5`` file.

    Raises:
        ValueError: the file is missing, is not HDF5, is truncated or
            corrupted, holds weights only, comes from a Keras version other
            than 2.x, or its config is not JSON.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(
            f"{path} is a directory (a SavedModel?): tfqnn.interop.load reads the "
            "full-model .h5 file of tf_keras; save the model with model.save('model.h5')."
        )
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file.")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file (a tf_keras .h5 full-model file).")
    try:
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs:
                if "layer_names" in f.attrs or "model_weights" not in f:
                    raise ValueError(WEIGHTS_ONLY)
                raise ValueError("it has no model_config attribute")
            version = _text(f.attrs.get("keras_version", b"unknown"))
            if not version.startswith(SUPPORTED_VERSIONS):
                raise ValueError(
                    f"it was written by Keras {version}; tfqnn.interop.load reads the .h5 "
                    "files of tf_keras and Keras 2 (2.x). Keras 3 files load with "
                    "keras.models.load_model"
                )
            backend = _text(f.attrs.get("backend", b"tensorflow"))
            if backend != "tensorflow":
                raise ValueError(f"it was written with the {backend!r} backend, not tensorflow")
            config = json.loads(_text(f.attrs["model_config"]))
            if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
                raise ValueError("its model_config is not a model config")  # noqa: TRY004
            if "model_weights" not in f:
                raise ValueError("it has no model_weights group")
            weights = _read_weights(f["model_weights"])
            return SourceModel(config, version, weights, "training_config" in f.attrs)
    except ValueError as error:
        raise ValueError(f"Cannot load {path}: {error}.") from error
    except Exception as error:  # h5py raises many kinds on corrupted files
        raise ValueError(
            f"Cannot load {path}: the file is damaged or truncated "
            f"({type(error).__name__}: {error})."
        ) from error
