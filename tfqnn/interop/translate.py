"""One tf_keras layer config to one Keras 3 layer: larq's to tfqnn's, tf_keras's to Keras 3's."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tfqnn.interop import keras_layers, lambdas, larq, qkeras, tfmot
from tfqnn.interop.keras_layers import keras_class
from tfqnn.interop.report import LayerMapping, Report


def _wrapper_arrays(
    file_weights: Mapping[str, list[tuple[str, np.ndarray]]], name: str, config: dict[str, Any]
) -> list[tuple[str, np.ndarray]]:
    """A tfmot wrapper's arrays in the file: its own group, or its part of a nested model's.

    tf_keras lists a nested model's weights under the nested model's name:
    the wrapper's own as ``<wrapper>/<weight>:0``, the wrapped layer's as
    ``<wrapped layer>/<weight>:0``, in the group that holds the wrapper's.
    """
    if name in file_weights:
        return list(file_weights[name])
    inner = config.get("layer")
    wrapped = inner.get("config", {}).get("name") if isinstance(inner, dict) else None
    for arrays in file_weights.values():
        owners = [weight_name.split("/")[:-1] for weight_name, _ in arrays]
        if any(name in parts for parts in owners):
            return [a for a, parts in zip(arrays, owners) if name in parts or wrapped in parts]
    return []


def _quantizers_text(layer: Any) -> str:
    found = getattr(layer, "quantizers", None)
    if not found:
        single = getattr(layer, "quantizer", None)  # QuantActivation
        return "" if single is None else repr(single)
    return ", ".join(f"{name}={q!r}" for name, q in found.items() if q is not None)


def layer(
    entry: dict[str, Any],
    model_name: str,
    report: Report,
    file_weights: Mapping[str, list[tuple[str, np.ndarray]]] | None = None,
) -> Any:
    """The Keras 3 layer for one entry of a tf_keras model config's ``layers``, or None.

    Records the mapping in ``report``, or the reason it cannot be made.
    ``file_weights`` (the file's arrays by layer name) tell tfmot's wrappers
    which kernels they prune or cluster.
    """
    class_name = str(entry.get("class_name"))
    config = entry.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    path = f"{model_name}/{name or entry.get('name') or class_name}"
    if not isinstance(config, dict):
        report.unsupported(path, f"layer {class_name!r} has no config")
        return None
    if tfmot.is_tfmot_wrapper(class_name):
        arrays = _wrapper_arrays(file_weights or {}, str(name), config)
        factory = functools.partial(layer, file_weights=file_weights)
        try:
            return tfmot.layer(class_name, config, path, model_name, arrays, factory, report)
        except keras_layers.CONFIG_ERRORS as error:
            report.unsupported(
                path,
                f"tfmot {class_name} with a config tfqnn rejects: {keras_layers.last_line(error)}",
            )
            return None
    if _holds_layers(class_name, config):
        return _holder(class_name, config, path, model_name, report, file_weights)
    config = dict(config)
    for key in [k for k in config if k.endswith("_initializer")]:
        value = config[key]
        if isinstance(value, dict) and (
            value.get("module") == "builtins"
            or "function" in (value.get("class_name"), value.get("registered_name"))
        ):
            del config[key]  # a Python function; the weights come from the file
            report.notice(
                "initializers that are Python functions are replaced by the layer's default "
                "(the weights come from the file)"
            )
    for key in [k for k in config if k.endswith("_constraint")]:
        config[key] = larq.constraint(config[key], f"{path}/{key}", report)
        config[key] = qkeras.constraint(config[key], f"{path}/{key}", report)
    peer = "larq" if larq.is_larq_layer(class_name) else None
    peer = "QKeras" if qkeras.is_qkeras_layer(class_name) else peer
    if peer is not None:
        mapper = larq if peer == "larq" else qkeras
        found = mapper.layer_arguments(class_name, config, path, report)
        if found is None:
            return None
        cls, arguments, source_quantizers = found
        try:
            result = cls.from_config(keras_layers.clean_config(class_name, arguments))
        except keras_layers.CONFIG_ERRORS as error:
            report.unsupported(
                path,
                f"{peer} {class_name} with a config tfqnn rejects: {keras_layers.last_line(error)}",
            )
            return None
        source = f"{peer}.{class_name}"
    else:
        if class_name == "Lambda":  # Python bytecode: refused in safe mode
            result = lambdas.layer(config, path, report)
        else:
            result = keras_layers.layer(class_name, config, path, report)
        if result is None:
            return None
        source, source_quantizers = f"tf_keras.{class_name}", ""
    report.mappings.append(
        LayerMapping(
            path,
            source,
            source_quantizers,
            f"{type(result).__module__.split('.')[0]}.{type(result).__name__}",
            _quantizers_text(result),
        )
    )
    return result


# tf_keras layers that hold other layers, and the config entries that hold them
# (a layer config, or a list of them for StackedRNNCells' cells).
HOLDERS: dict[str, tuple[str, ...]] = {
    "Bidirectional": ("layer", "backward_layer"),
    "QBidirectional": ("layer", "backward_layer"),
    "TimeDistributed": ("layer",),
    "RNN": ("cell",),
    "StackedRNNCells": ("cells",),
}


def _holds_layers(class_name: str, config: dict[str, Any]) -> bool:
    """Whether a layer holds others: ``Bidirectional``, ``TimeDistributed``, ``RNN`` of a cell.

    The held layers are translated as layers of their own: a larq or QKeras
    layer to tfqnn's, a tf_keras one with its config made current (its
    ``"hard_sigmoid"`` kept tf_keras's), which Keras 3's own ``from_config``
    of the holder would not do.
    """
    keys = HOLDERS.get(class_name, ())
    return class_name == "QBidirectional" or (
        bool(keys) and isinstance(config.get(keys[0]), (dict, list))
    )


def _holder(
    class_name: str,
    config: dict[str, Any],
    path: str,
    model_name: str,
    report: Report,
    file_weights: Mapping[str, list[tuple[str, np.ndarray]]] | None,
) -> Any:
    """The Keras 3 holder around the mapped held layers.

    QKeras's ``QBidirectional`` is tf_keras's ``Bidirectional`` with a
    quantizer listing; the weights are the forward layer's, then the
    backward layer's, in both. An ``RNN``'s cells keep their weights'
    order, the first cell's first.
    """
    keys = HOLDERS[class_name]
    inner_path = f"{model_name}/{config.get('name')}"
    held: dict[str, Any] = {}
    for key in keys:
        value = config.get(key)
        if value is None and key != keys[0]:
            continue
        entries: list[Any] = value if isinstance(value, list) else [value]
        if not entries or not all(isinstance(e, dict) for e in entries):
            report.unsupported(path, f"{class_name} with a malformed {key!r} config")
            return None
        translated = [layer(e, inner_path, report, file_weights) for e in entries]
        if any(t is None for t in translated):
            return None  # the held layers' problems are reported
        held[key] = translated if isinstance(value, list) else translated[0]
    rest = {k: v for k, v in config.items() if k not in keys}
    cls = keras.layers.Bidirectional if class_name == "QBidirectional" else keras_class(class_name)
    try:
        result = cls(**held, **keras_layers.clean_config(class_name, rest))  # type: ignore[misc]
    except keras_layers.CONFIG_ERRORS as error:
        report.unsupported(
            path, f"{class_name} with a config Keras 3 rejects: {keras_layers.last_line(error)}"
        )
        return None
    source = "QKeras" if class_name == "QBidirectional" else "tf_keras"
    report.mappings.append(
        LayerMapping(path, f"{source}.{class_name}", "", f"keras.{type(result).__name__}", "")
    )
    return result
