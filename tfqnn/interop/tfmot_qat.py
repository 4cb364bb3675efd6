"""tensorflow-model-optimization 0.8's ``quantize_model`` wrappers as tfqnn layers.

``quantize_model`` (the default 8-bit scheme) wraps each layer in a
``QuantizeWrapperV2`` whose ``quantize_config`` says what it fake-quantizes:
the kernel (``weight_attrs``), the activation (``activation_attrs``) and
the output (``quantize_output``). Its layout transforms write their choices
into those configs before saving (no fake quant between Conv2D or Dense and
the BatchNormalization after it: the kernel layer's activation becomes
``NoOpActivation`` and the BatchNormalization, or the ReLU after it,
quantizes the output; a ReLU after Add quantizes, the Add does not; the
layers feeding a Concatenate leave the quantization to it;
SeparableConv2D becomes DepthwiseConv2D then Conv2D). `layer` reads
the configs, so the loaded model quantizes where tfmot did:

| tfmot (default 8-bit scheme) | tfqnn |
|---|---|
| ``QuantizeLayer`` (``AllValuesQuantizer``) | ``QuantActivation(RangeFakeQuant(8, training_range="all_values"))`` |
| ``QuantizeWrapperV2(Dense)`` | ``Sequential([QuantDense(kernel_quantizer=RangeFakeQuant(8, narrow_range=True, training_range="last_value", symmetric=True)), Activation, QuantActivation(RangeFakeQuant(8, training_range="moving_average"))])`` |
| ``QuantizeWrapperV2(Conv2D)``, ``(DepthwiseConv2D)`` | the same with `QuantConv2D`, `QuantDepthwiseConv2D` and a kernel range per output channel (per depth multiplier) |
| ``QuantizeWrapperV2(Conv2DTranspose)`` | the same with `QuantConv2DTranspose`, one kernel range |
| a kernel layer with ``NoOpActivation`` (before BatchNormalization) | the tfqnn layer alone: kernel quantized, output not |
| ``QuantizeWrapperV2`` quantizing the output of another layer (ReLU, BatchNormalization, pooling, LeakyReLU, ``Activation("relu")``) | ``Sequential([layer, QuantActivation(RangeFakeQuant(8, training_range="moving_average"))])`` |
| the same of Add or Concatenate | a functional model of the two, built on the inputs' shapes |
| ``QuantizeWrapperV2`` that quantizes nothing (``NoOpQuantizeConfig``, MaxPooling2D, Dropout, softmax) | the layer itself |

The kernel layer's activation is fake-quantized after ``linear``,
``relu`` and ``swish`` (``post_activation_min/max``), before ``softmax``,
``sigmoid`` and ``tanh`` (``pre_activation_min/max``): the tfqnn layer with
a linear activation, then the activation and its `QuantActivation` in
tfmot's order. The ranges start as the file's. In inference they are used
as stored; in training they follow the inputs as tfmot's do: the kernel's
from the current kernel (symmetric, ``"last_value"``), the activations' and
outputs' by a moving average (decay 0.999), the model input's as running
extremes (`RangeFakeQuant`'s ``training_range``). Outputs equal tfmot's in
both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tfqnn.interop.report import LayerMapping, Report
from tfqnn.interop.weights import _short
from tfqnn.layers import (
    QuantActivation,
    QuantConv2D,
    QuantConv2DTranspose,
    QuantDense,
    QuantDepthwiseConv2D,
)
from tfqnn.quantizers import RangeFakeQuant

Arrays = list[tuple[str, np.ndarray]]
LayerFactory = Callable[[dict[str, Any], str, Report], Any]

CLASSES = ("QuantizeLayer", "QuantizeWrapperV2")
# The default 8-bit scheme's configs; the Conv one has per-channel kernel ranges.
PER_CHANNEL_CONFIG = "Default8BitConvQuantizeConfig"
QUANTIZE_CONFIGS = (
    "Default8BitQuantizeConfig",
    PER_CHANNEL_CONFIG,
    "Default8BitConvTransposeQuantizeConfig",
    "Default8BitOutputQuantizeConfig",
    "Default8BitActivationQuantizeConfig",
    "NoOpQuantizeConfig",
)
# Wrapped layers with a quantized kernel: the tfqnn class, the kernel's name
# in the file, the tfqnn quantizer argument, and the config entry that gives
# the number of per-channel ranges.
KERNEL_LAYERS: dict[str, tuple[type[keras.layers.Layer], str, str, str]] = {
    "Dense": (QuantDense, "kernel", "kernel_quantizer", "units"),
    "Conv2D": (QuantConv2D, "kernel", "kernel_quantizer", "filters"),
    "DepthwiseConv2D": (
        QuantDepthwiseConv2D,
        "depthwise_kernel",
        "depthwise_quantizer",
        "depth_multiplier",
    ),
    "Conv2DTranspose": (QuantConv2DTranspose, "kernel", "kernel_quantizer", "filters"),
}
# tfmot quantizes the input of these activations, and the output of the others.
PRE_QUANTIZED = ("softmax", "sigmoid", "tanh")
ACTIVATIONS = ("linear", "relu", "swish", *PRE_QUANTIZED)
NO_OP = "NoOpActivation"  # tfmot's marker of an activation it leaves unquantized
# Default8BitActivationQuantizeConfig: an Activation layer's output is
# quantized after these, and left alone after the others.
OUTPUT_QUANTIZED_ACTIVATIONS = ("relu", "swish", "gelu", "relu6")
UNQUANTIZED_ACTIVATIONS = ("linear", "softmax", "sigmoid", "tanh")
# Layers of several inputs, which a Sequential cannot hold.
MERGE_LAYERS = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
# The file's names of the wrapper's own variables and of the wrapped layer's.
RANGE_NAMES = {
    "pre_activation_min": "quantizer_min",
    "pre_activation_max": "quantizer_max",
    "post_activation_min": "quantizer_min",
    "post_activation_max": "quantizer_max",
    "output_min": "quantizer_min",
    "output_max": "quantizer_max",
}
LAYER_WEIGHTS = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


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
    """The wrapped layer's activation name: ``QuantizeAwareActivation`` unwrapped.

    ``"NoOpActivation"`` for tfmot's marker of an unquantized linear activation.
    """
    activation = config.get("activation", "linear")
    if isinstance(activation, dict) and activation.get("class_name") == "QuantizeAwareActivation":
        inner = activation.get("config")
        activation = inner.get("activation") if isinstance(inner, dict) else None
    if isinstance(activation, dict) and activation.get("class_name") == NO_OP:
        return NO_OP
    return "linear" if activation is None else activation


def _renamed(arrays: Arrays, names: dict[str, str]) -> Arrays:
    """The arrays in ``names`` under their tfqnn names; ``optimizer_step`` and others dropped."""
    return [(names[_short(n)], a) for n, a in arrays if _short(n) in names]


class Chain:
    """A merge layer then its output quantizer, called as one layer named ``name``.

    A Sequential takes one input; at its first call this builds a functional
    model of the two on the inputs' shapes, which the loaded model then holds
    (and saves) as one layer.
    """

    def __init__(self, layers: list[keras.layers.Layer], name: str) -> None:
        self.layers = layers
        self.name = name
        self.model: keras.Model | None = None

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        if self.model is None:
            tensors = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            sources = [keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in tensors]
            y = self.layers[0](sources if isinstance(inputs, (list, tuple)) else sources[0])
            for layer in self.layers[1:]:
                y = layer(y)
            self.model = keras.Model(sources, y, name=self.name)
        return self.model(inputs, **kwargs)


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
    # tfmot names the range after the layer: quantize_layer_min, or quantize_layer_1_min for
    # the second model quantize_model made in one process.
    report.weight_maps[name] = lambda found: _renamed(
        found, {f"{name}_min": "quantizer_min", f"{name}_max": "quantizer_max"}
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


def _moving_average(name: str) -> QuantActivation:
    return QuantActivation(
        RangeFakeQuant(8, training_range="moving_average", decay=0.999), name=name
    )


def _plan(
    inner_class: str,
    inner_config: dict[str, Any],
    config_class: str,
    settings: dict[str, Any],
) -> tuple[str | None, str, bool] | str:
    """What tfmot quantizes: (kernel attribute, activation position, output), or why not.

    The position is ``"pre"``, ``"post"`` or ``""`` (the activation is not
    quantized).
    """
    if config_class == "NoOpQuantizeConfig":
        return None, "", False
    if config_class == "Default8BitOutputQuantizeConfig":
        return None, "", bool(settings.get("quantize_output", True))
    quantize_output = bool(settings.get("quantize_output", False))
    if config_class == "Default8BitActivationQuantizeConfig":
        activation = inner_config.get("activation")
        if inner_class != "Activation" or not isinstance(activation, str):
            return f"{config_class} on {inner_class} (activation {activation!r})"
        if activation in OUTPUT_QUANTIZED_ACTIVATIONS:
            return None, "", bool(settings.get("quantize_output", True))
        if activation in UNQUANTIZED_ACTIVATIONS:
            return None, "", False
        return f"Activation({activation!r}), which tfmot does not quantize"
    weight_attrs = settings.get("weight_attrs", [])
    activation_attrs = settings.get("activation_attrs", [])
    if not weight_attrs and not activation_attrs:
        return None, "", quantize_output
    kernel = KERNEL_LAYERS.get(inner_class, (None, None))[1]
    activation = _activation_name(inner_config)
    if (
        kernel is None
        or weight_attrs != [kernel]
        or activation_attrs != ["activation"]
        or activation not in (*ACTIVATIONS, NO_OP)
        or (quantize_output and activation != NO_OP)
        or (config_class == PER_CHANNEL_CONFIG and inner_class not in ("Conv2D", "DepthwiseConv2D"))
    ):
        return (
            f"{config_class} of {inner_class} (activation {activation!r}, weight_attrs "
            f"{weight_attrs}, activation_attrs {activation_attrs}, quantize_output "
            f"{quantize_output}): only Dense, Conv2D, DepthwiseConv2D and Conv2DTranspose with "
            f"activation {', '.join(ACTIVATIONS)} (or tfmot's NoOpActivation) are mapped"
        )
    position = "" if activation == NO_OP else "pre" if activation in PRE_QUANTIZED else "post"
    return kernel, position, quantize_output


def _describe(config_class: str, kernel: bool, position: str, output: bool) -> str:
    """The source quantizers for the report: ``"8-bit kernel per channel, 8-bit output"``."""
    parts = []
    if kernel:
        per_channel = " per channel" if config_class == PER_CHANNEL_CONFIG else ""
        parts.append(f"8-bit kernel{per_channel}")
    if position:
        parts.append(f"8-bit {position}-activation")
    if output:
        parts.append("8-bit output")
    return ", ".join(parts)


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
    config_class = quantize_config.get("class_name") if isinstance(quantize_config, dict) else None
    if config_class not in QUANTIZE_CONFIGS or not isinstance(settings, dict):
        report.unsupported(
            path,
            f"tfmot QuantizeWrapperV2 of {inner_class} with quantize_config "
            f"{quantize_config!r}: only the default 8-bit scheme's "
            f"{', '.join(QUANTIZE_CONFIGS)} are mapped",
        )
        return None
    plan = _plan(inner_class, inner["config"], str(config_class), settings)
    if isinstance(plan, str):
        report.unsupported(
            path,
            f"tfmot QuantizeWrapperV2: {plan}",
            "rebuild the model with tfqnn layers and tfqnn.quantizers.RangeFakeQuant",
        )
        return None
    kernel, position, quantize_output = plan
    if kernel is None and not quantize_output:
        # A layer tfmot leaves as it is (MaxPooling2D, Dropout, BatchNormalization before
        # a ReLU): it keeps the wrapper's name and drops the optimizer_step.
        entry = {**inner, "config": {**inner["config"], "name": name}}
        unwrapped = factory(entry, model_name, report)
        if unwrapped is not None:
            report.weight_maps[name] = lambda found: [
                (n, a) for n, a in found if _short(n) != "optimizer_step"
            ]
        return unwrapped
    alone = not position and not quantize_output  # a kernel layer before BatchNormalization
    inner_config = {**inner["config"], "name": name if alone else f"{name}_layer"}
    activation = _activation_name(inner["config"])
    if kernel is not None:
        inner_config["activation"] = "linear"
    keras_layer = factory({**inner, "config": inner_config}, model_name, report)
    if keras_layer is None:
        return None
    del report.mappings[-1]  # the plain Keras layer, replaced below
    names = {w: w for w in LAYER_WEIGHTS}
    layers: list[Any] = []
    quantizers_text = []
    if kernel is not None:
        cls, _, argument, channels_key = KERNEL_LAYERS[inner_class]
        channels = None
        if config_class == PER_CHANNEL_CONFIG:
            channels = inner["config"].get(
                channels_key, 1 if channels_key.startswith("depth") else None
            )
        kernel_quantizer = RangeFakeQuant(
            8, narrow_range=True, channels=channels, training_range="last_value", symmetric=True
        )
        layer_config = {**keras_layer.get_config(), argument: kernel_quantizer}
        layers.append(cls.from_config(layer_config))
        names.update(
            {
                kernel: "kernel",
                f"{kernel}_min": f"{argument}_min",
                f"{kernel}_max": f"{argument}_max",
            }
        )
        quantizers_text.append(f"{argument}={kernel_quantizer!r}")
    else:
        layers.append(keras_layer)
    if position:
        quantized = _moving_average(f"{name}_activation_quantizer")
        function = keras.layers.Activation(activation, name=f"{name}_activation")
        if activation == "linear":
            layers.append(quantized)  # tfmot quantizes a linear activation's output
        elif position == "pre":
            layers += [quantized, function]
        else:
            layers += [function, quantized]
        names.update({f"{position}_activation_{b}": f"quantizer_{b}" for b in ("min", "max")})
        quantizers_text.append(f"{position}-activation RangeFakeQuant(8) ({activation})")
    if quantize_output:
        layers.append(_moving_average(f"{name}_output_quantizer"))
        names.update({f"output_{b}": f"quantizer_{b}" for b in ("min", "max")})
        quantizers_text.append("output RangeFakeQuant(8)")
    source = type(layers[0])
    if alone:
        result = layers[0]
    elif inner_class in MERGE_LAYERS:
        result = Chain(layers, name)
    else:
        result = keras.Sequential(layers, name=name)
    report.weight_maps[name] = lambda found: _renamed(found, names)
    report.mappings.append(
        LayerMapping(
            path,
            f"tfmot.QuantizeWrapperV2({inner_class})",
            _describe(str(config_class), kernel is not None, position, quantize_output),
            f"{source.__module__.split('.')[0]}.{source.__name__}"
            + (" + QuantActivation" if len(layers) > 1 else ""),
            ", ".join(quantizers_text),
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
