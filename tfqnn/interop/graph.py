"""A Keras 3 model from a tf_keras model config: Sequential, or Functional with its node graph.

tf_keras writes a functional model's connections as, per layer, one list per
call ("node") of ``[inbound layer name, node index, tensor index, kwargs]``;
``input_layers`` and ``output_layers`` name the model's ends the same way.
`build` calls the translated layers along those lists, so shared layers,
several inputs and outputs, and skip connections keep their topology.

A Sequential or Functional model used as a layer of another (transfer
learning's backbone) is built the same way, recursively, as a nested Keras
3 model under its name (a frozen one's layers keep ``trainable=False``).
tf_keras counts the node that links such a model to its own ``Input`` as
its node 0, so the outer model's references to it start at node 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from tfqnn.interop.report import LayerMapping, Report

LayerFactory = Callable[[dict[str, Any], str, Report], Any]
MODELS = ("Sequential", "Functional", "Model")


def _is_model(entry: dict[str, Any]) -> bool:
    """Whether a layer entry is a Sequential or Functional model used as a layer."""
    config = entry.get("config")
    return (
        entry.get("class_name") in MODELS
        and isinstance(config, dict)
        and isinstance(config.get("layers"), list)
    )


def _first_node(entry: dict[str, Any]) -> int:
    """The node index of a layer's first call in the outer model's config (tf_keras's count)."""
    if not _is_model(entry):
        return 0
    layers = entry["config"]["layers"]
    return int(any(isinstance(e, dict) and e.get("class_name") == "InputLayer" for e in layers))


def _layer(entry: dict[str, Any], path: str, factory: LayerFactory, report: Report) -> Any:
    """``factory``'s layer for an entry, or the nested Keras 3 model of a nested model entry."""
    if not _is_model(entry):
        return factory(entry, path, report)
    name = str(entry["config"].get("name", entry.get("name")))
    model = build(entry, factory, report, f"{path}/{name}")
    if model is not None:
        if entry["config"].get("trainable") is False:  # else its layers' own flags hold
            model.trainable = False
        kind = "Sequential" if isinstance(model, keras.Sequential) else "Functional"
        report.mappings.append(
            LayerMapping(
                f"{path}/{name}", f"tf_keras.{entry['class_name']}", "", f"keras.{kind}", ""
            )
        )
    return model


def _input_shape(config: dict[str, Any]) -> list[Any] | None:
    for key in ("batch_input_shape", "batch_shape"):
        if isinstance(config.get(key), list):
            return list(config[key])
    return None


def _input(config: dict[str, Any], name: str | None = None) -> Any:
    shape = _input_shape(config)
    if shape is None:
        raise ValueError(f"input {name or config.get('name')!r} has no shape")
    return keras.Input(
        batch_shape=tuple(shape),
        dtype=config.get("dtype") if isinstance(config.get("dtype"), str) else None,
        name=name or config.get("name"),
    )


def _sequential(config: dict[str, Any], factory: LayerFactory, report: Report, path: str) -> Any:
    name = str(config.get("name", "sequential"))
    entries = config.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ValueError("the Sequential config has no layers")
    if entries[0].get("class_name") == "InputLayer":
        inputs = _input(entries[0]["config"])
        entries = entries[1:]
    else:
        first = entries[0].get("config", {})
        shape = _input_shape(first) or config.get("build_input_shape")
        if shape is None:
            raise ValueError("the Sequential model was saved unbuilt (no input shape)")
        inputs = keras.Input(batch_shape=tuple(shape))
    built = [_layer(entry, path, factory, report) for entry in entries]
    if any(layer is None for layer in built):
        return None
    return keras.Sequential([inputs, *built], name=name)


def _refs(value: Any) -> list[list[Any]]:
    """``input_layers``/``output_layers``: one ``[name, node, tensor]`` or a list of them."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, list) and len(v) >= 3 for v in value):
        return value
    raise ValueError(f"malformed model inputs or outputs {value!r}")


def _is_ref(value: Any, outputs: dict[str, list[Any]]) -> bool:
    """Whether a call argument is a tensor reference ``[layer name, node, tensor]``."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and value[0] in outputs
    )


def _functional(config: dict[str, Any], factory: LayerFactory, report: Report, path: str) -> Any:
    name = str(config.get("name", "model"))
    entries = config.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ValueError("the Functional config has no layers")
    layers: dict[str, Any] = {}
    nodes: dict[str, list[list[Any]]] = {}
    outputs: dict[str, list[Any]] = {}
    first_node: dict[str, int] = {}
    input_names = set()
    for entry in entries:
        layer_name = str(entry.get("name") or entry.get("config", {}).get("name"))
        if layer_name in layers:
            raise ValueError(f"two layers are named {layer_name!r}")
        if entry.get("class_name") == "InputLayer":
            layers[layer_name] = None
            input_names.add(layer_name)
            outputs[layer_name] = [_input(entry["config"], layer_name)]
            nodes[layer_name] = []
            continue
        layers[layer_name] = _layer(entry, path, factory, report)
        first_node[layer_name] = _first_node(entry)
        inbound = entry.get("inbound_nodes", [])
        if not isinstance(inbound, list) or not all(isinstance(n, list) for n in inbound):
            raise ValueError(f"layer {layer_name!r} has inbound nodes in a format tfqnn reads not")
        nodes[layer_name] = list(inbound)
        outputs[layer_name] = []
    if any(layers[key] is None for key in layers if key not in input_names):
        return None

    def tensor(ref: list[Any]) -> Any:
        layer_name, node, index = ref[0], ref[1], ref[2]
        if layer_name not in outputs:
            raise ValueError(f"a node refers to the unknown layer {layer_name!r}")
        if isinstance(node, int):
            node -= first_node.get(layer_name, 0)
        if not isinstance(node, int) or not 0 <= node < len(outputs[layer_name]):
            return None
        produced = outputs[layer_name][node]
        if isinstance(produced, (list, tuple)):
            return (
                produced[index] if isinstance(index, int) and 0 <= index < len(produced) else None
            )
        return produced if index == 0 else None

    two_tensor_ops = {
        str(entry.get("name") or entry.get("config", {}).get("name"))
        for entry in entries
        if entry.get("class_name") == "TFOpLambda"
    }
    progress = True
    while progress:
        progress = False
        for layer_name, pending in nodes.items():
            while len(outputs[layer_name]) < len(pending):
                node = pending[len(outputs[layer_name])]
                if node and isinstance(node[0], str):  # TFOpLambda: one reference, unwrapped
                    node = [node]
                if not node or not all(isinstance(r, list) and len(r) >= 3 for r in node):
                    raise ValueError(f"layer {layer_name!r} has a malformed inbound node")
                inputs = [tensor(ref) for ref in node]
                if any(t is None for t in inputs):
                    break
                kwargs = node[0][3] if len(node[0]) > 3 and isinstance(node[0][3], dict) else {}
                call_input = inputs[0] if len(inputs) == 1 else inputs
                if layer_name in two_tensor_ops:  # x + y: y is a tensor reference in kwargs
                    other: Any = kwargs.get("y")
                    y = tensor(other) if _is_ref(other, outputs) else None
                    if y is None and _is_ref(other, outputs):
                        break  # y not computed yet
                    if y is None:
                        raise ValueError(f"{layer_name!r} combines a tensor with a non-tensor")
                    call_input, kwargs = [call_input, y], {}
                outputs[layer_name].append(layers[layer_name](call_input, **kwargs))
                progress = True
    unresolved = [n for n, pending in nodes.items() if len(outputs[n]) < len(pending)]
    if unresolved:
        raise ValueError(f"the layer graph cannot be resolved at {unresolved}")
    model_inputs = [tensor(ref) for ref in _refs(config.get("input_layers"))]
    model_outputs = [tensor(ref) for ref in _refs(config.get("output_layers"))]
    if any(t is None for t in model_inputs + model_outputs):
        raise ValueError("the model's inputs or outputs refer to missing nodes")
    return keras.Model(
        model_inputs[0] if len(model_inputs) == 1 else model_inputs,
        model_outputs[0] if len(model_outputs) == 1 else model_outputs,
        name=name,
    )


def build(
    model_config: dict[str, Any], factory: LayerFactory, report: Report, path: str = ""
) -> Any:
    """The Keras 3 model of a tf_keras model config, or None when a layer cannot be mapped.

    ``path`` is the model's place in an outer model (``"outer/backbone"``);
    by default its name.

    Raises:
        ValueError: the config is not a Sequential or Functional model, or
            its graph is malformed.
    """
    class_name = model_config.get("class_name")
    config = model_config.get("config")
    if not isinstance(config, dict):
        raise ValueError("the model config has no 'config' entry")  # noqa: TRY004
    path = path or str(config.get("name", "model"))
    if class_name == "Sequential":
        return _sequential(config, factory, report, path)
    if class_name in ("Functional", "Model"):
        return _functional(config, factory, report, path)
    raise ValueError(
        f"the model is a {class_name!r}; tfqnn.interop.load reads Sequential and "
        "Functional models (a subclassed model has no config to rebuild it from)"
    )
