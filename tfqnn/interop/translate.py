"""One tf_keras layer config to one Keras 3 layer: larq's to tfqnn's, tf_keras's to Keras 3's."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from tfqnn.interop import keras_layers, larq, qkeras, tfmot
from tfqnn.interop.report import LayerMapping, Report


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
        arrays = list((file_weights or {}).get(str(name), []))
        factory = functools.partial(layer, file_weights=file_weights)
        try:
            return tfmot.layer(class_name, config, path, model_name, arrays, factory, report)
        except keras_layers.CONFIG_ERRORS as error:
            report.unsupported(
                path,
                f"tfmot {class_name} with a config tfqnn rejects: {keras_layers.last_line(error)}",
            )
            return None
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
