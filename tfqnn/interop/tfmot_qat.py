"""tensorflow-model-optimization 0.8's ``quantize_model`` wrappers as tfqnn layers.

| tfmot (default 8-bit scheme) | tfqnn |
|---|---|
| ``QuantizeLayer`` (``AllValuesQuantizer``) | ``QuantActivation(RangeFakeQuant(8, training_range="all_values"))`` |
| ``QuantizeWrapperV2(Dense)`` | ``Sequential([QuantDense(kernel_quantizer=RangeFakeQuant(8, narrow_range=True, training_range="last_value", symmetric=True)), Activation, QuantActivation(RangeFakeQuant(8, training_range="moving_average"))])`` |
| ``QuantizeWrapperV2(Conv2D)`` | the same with `QuantConv2D` and a kernel range per filter |
| ``QuantizeWrapperV2`` of a layer without weights or quantizers | the layer itself |

tfmot's wrapper fake-quantizes the kernel with ``kernel_min/max`` and the
activation with ``post_activation_min/max`` after ReLU (``relu(x)`` then
quantized) or ``pre_activation_min/max`` before softmax, sigmoid and tanh
(quantized, then the activation). The wrapped layer becomes a
`keras.Sequential` under the wrapper's name: the tfqnn layer with a linear
activation, then the activation and its `QuantActivation` in tfmot's order.
The ranges start as the file's. In inference they are used as stored; in
training they follow the inputs as tfmot's do: the kernel's from the
current kernel (symmetric, ``"last_value"``), the activations' by a moving
average (decay 0.999), the model input's as running extremes
(`RangeFakeQuant`'s ``training_range``). Outputs equal tfmot's in both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tfqnn.interop.report import LayerMapping, Report
from tfqnn.interop.weights import _short
from tfqnn.layers import QuantActivation, QuantConv2D, QuantDense
from tfqnn.quantizers import RangeFakeQuant

Arrays = list[tuple[str, np.ndarray]]
LayerFactory = Callable[[dict[str, Any], str, Report], Any]

CLASSES = ("QuantizeLayer", "QuantizeWrapperV2")
# The default 8-bit scheme's configs (the Conv one: per-channel kernel ranges).
QUANTIZE_CONFIGS = ("Default8BitQuantizeConfig", "Default8BitConvQuantizeConfig")
# The wrapped layers mapped, with their tfqnn class and whether tfmot's kernel ranges are per channel.
KERNEL_LAYERS: dict[str, tuple[type[keras.layers.Layer], bool]] = {
    "Dense": (QuantDense, False),
    "Conv2D": (QuantConv2D, True),
}
# tfmot quantizes the input of these activations, and the output of the others.
PRE_QUANTIZED = ("softmax", "sigmoid", "tanh")
ACTIVATIONS = ("linear", "relu", *PRE_QUANTIZED)


def _default_quantizer(quantizer: Any) -> bool:
    """Whether a serialized tfmot quantizer is the default scheme's 8-bit asymmetric one."""
    if not isinstance(quantizer, dict):
        return False
    config = quantizer.get("config", {})
    return (
        quantizer.get("class_name") in ("AllValuesQuantizer", "MovingAverageQuantizer")
        and isinstance(config, dict)
        and config.get("num_bits") == 8
        and not config.get("per_axis")
        and not config.get("symmetric")
        and not config.get("narrow_range")
    )


def _activation_name(config: dict[str, Any]) -> Any:
    """The wrapped layer's activation name: ``QuantizeAwareActivation`` unwrapped."""
    activation = config.get("activation", "linear")
    if isinstance(activation, dict):
        inner = activation.get("config")
        activation = inner.get("activation") if isinstance(inner, dict) else None
    return "linear" if activation is None else activation


def _renamed(arrays: Arrays, names: dict[str, str]) -> Arrays:
    """The arrays in ``names`` under their tfqnn names; ``optimizer_step`` and others dropped."""
    return [(names[_short(n)], a) for n, a in arrays if _short(n) in names]


def _quantize_layer(config: dict[str, Any], path: str, report: Report) -> Any:
    if not _default_quantizer(config.get("quantizer")):
        report.unsupported(
            path,
            f"tfmot QuantizeLayer with quantizer {config.get('quantizer')!r}: only the default "
            "8-bit scheme's AllValuesQuantizer is mapped",
        )
        return None
    name = str(config.get("name"))
    result = QuantActivation(RangeFakeQuant(8, training_range="all_values"), name=name)
    report.weight_maps[name] = lambda found: _renamed(
        found,
        {"quantize_layer_min": "quantizer_min", "quantize_layer_max": "quantizer_max"},
    )
    report.mappings.append(
        LayerMapping(
            path,
            "tfmot.QuantizeLayer",
            "AllValuesQuantizer(8)",
            "tfqnn.QuantActivation",
            "RangeFakeQuant(8)",
        )
    )
    return result


def _wrapper(
    config: dict[str, Any], path: str, model_name: str, factory: LayerFactory, report: Report
) -> Any:
    name = str(config.get("name"))
    inner = config.get("layer")
    if not isinstance(inner, dict) or not isinstance(inner.get("config"), dict):
        raise ValueError("the wrapper has no wrapped layer config")  # noqa: TRY004
    inner_class = str(inner.get("class_name"))
    quantize_config = config.get("quantize_config")
    settings = quantize_config.get("config", {}) if isinstance(quantize_config, dict) else {}
    if not isinstance(quantize_config, dict) or quantize_config.get("class_name") not in (
        QUANTIZE_CONFIGS
    ):
        report.unsupported(
            path,
            f"tfmot QuantizeWrapperV2 of {inner_class} with quantize_config "
            f"{quantize_config!r}: only the default 8-bit scheme's "
            f"{' and '.join(QUANTIZE_CONFIGS)} are mapped",
        )
        return None
    weight_attrs = settings.get("weight_attrs", [])
    activation_attrs = settings.get("activation_attrs", [])
    if not weight_attrs and not activation_attrs and not settings.get("quantize_output"):
        # A layer tfmot leaves as it is (pooling, Flatten): only an optimizer_step.
        entry = {**inner, "config": {**inner["config"], "name": name}}
        result = factory(entry, model_name, report)
        if result is not None:
            report.weight_maps[name] = lambda found: [
                (n, a) for n, a in found if _short(n) != "optimizer_step"
            ]
        return result
    activation = _activation_name(inner["config"])
    if (
        inner_class not in KERNEL_LAYERS
        or weight_attrs != ["kernel"]
        or activation_attrs != ["activation"]
        or settings.get("quantize_output")
        or activation not in ACTIVATIONS
    ):
        report.unsupported(
            path,
            f"tfmot QuantizeWrapperV2 of {inner_class} (activation {activation!r}, "
            f"weight_attrs {weight_attrs}, activation_attrs {activation_attrs}): only Dense "
            f"and Conv2D with activation {', '.join(ACTIVATIONS)} are mapped",
            "rebuild the model with tfqnn layers and tfqnn.quantizers.RangeFakeQuant",
        )
        return None
    cls, per_channel = KERNEL_LAYERS[inner_class]
    entry = {
        **inner,
        "config": {**inner["config"], "name": f"{name}_layer", "activation": "linear"},
    }
    keras_layer = factory(entry, model_name, report)
    if keras_layer is None:
        return None
    del report.mappings[-1]  # the plain Keras layer, replaced below
    channels = inner["config"].get("filters") if per_channel else None
    kernel_quantizer = RangeFakeQuant(
        8, narrow_range=True, channels=channels, training_range="last_value", symmetric=True
    )
    layer_config = {**keras_layer.get_config(), "kernel_quantizer": kernel_quantizer}
    layers: list[Any] = [cls.from_config(layer_config)]
    quantized = QuantActivation(
        RangeFakeQuant(8, training_range="moving_average", decay=0.999),
        name=f"{name}_activation_quantizer",
    )
    position = "pre" if activation in PRE_QUANTIZED else "post"
    if activation == "linear":
        layers.append(quantized)  # tfmot quantizes a linear activation's output
    elif position == "pre":
        layers += [quantized, keras.layers.Activation(activation, name=f"{name}_activation")]
    else:
        layers += [keras.layers.Activation(activation, name=f"{name}_activation"), quantized]
    result = keras.Sequential(layers, name=name)
    names = {
        "kernel": "kernel",
        "bias": "bias",
        "kernel_min": "kernel_quantizer_min",
        "kernel_max": "kernel_quantizer_max",
        f"{position}_activation_min": "quantizer_min",
        f"{position}_activation_max": "quantizer_max",
    }
    report.weight_maps[name] = lambda found: _renamed(found, names)
    report.mappings.append(
        LayerMapping(
            path,
            f"tfmot.QuantizeWrapperV2({inner_class})",
            f"8-bit kernel{' per channel' if per_channel else ''}, {position}-activation "
            f"8-bit ({activation})",
            f"tfqnn.{cls.__name__} + QuantActivation",
            f"kernel_quantizer={kernel_quantizer!r}, RangeFakeQuant(8)",
        )
    )
    return result


def layer(
    class_name: str,
    config: dict[str, Any],
    path: str,
    model_name: str,
    factory: LayerFactory,
    report: Report,
) -> Any:
    """The tfqnn layer for a ``QuantizeLayer`` or ``QuantizeWrapperV2`` entry, or None.

    Records why not in ``report``, and how the file's weights become the
    new layer's in ``report.weight_maps``.
    """
    if class_name == "QuantizeLayer":
        return _quantize_layer(config, path, report)
    return _wrapper(config, path, model_name, factory, report)
