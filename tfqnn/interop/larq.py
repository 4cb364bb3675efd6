"""larq 0.14: its quantized layers and quantizers as tfqnn's, with the same forward and backward.

| larq | tfqnn |
|---|---|
| ``QuantDense``, ``QuantConv1D``, ``QuantConv2D``, ``QuantDepthwiseConv2D``, ``QuantSeparableConv2D``, ``QuantConv2DTranspose`` | the tfqnn layer of the same name |
| ``SteSign(clip_value)``, ``ApproxSign``, ``SwishSign(beta)``, ``SteHeaviside(clip_value)``, ``MagnitudeAwareSign(clip_value)``, ``NoOp(precision)`` | the tfqnn quantizer of the same name |
| ``SteTern(threshold_value, ternary_weight_networks, clip_value)`` | ``SteTern(threshold, scaled=False, clip_value)`` |
| ``DoReFa(k_bit, "activations")`` / ``DoReFa(k_bit, "weights")`` | ``DoReFa(bits)`` / ``DoReFaWeights(bits)`` |
| ``WeightClip(clip_value)`` | `tfqnn.constraints.WeightClip` |
| larq-zoo's ``xnor_weight_scale`` / ``magnitude_aware_sign_unclipped`` | ``ClippedScaledSign()`` / ``DoReFa(1, "weights")`` |

larq's ``SteTern`` keeps ``|x| >= threshold_value``; tfqnn's keeps
``|x| > threshold``, so the threshold maps to the float32 just below it,
which keeps the same values. Quantizer ``metrics`` (``flip_ratio``) are
training statistics, not model state: they are dropped with a notice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfqnn import constraints, layers, quantizers
from tfqnn.interop.arguments import translate_quantizers
from tfqnn.interop.report import Report

# larq layer -> (tfqnn layer, its quantizer arguments).
LAYERS: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "QuantDense": (layers.QuantDense, ("input_quantizer", "kernel_quantizer")),
    "QuantConv1D": (layers.QuantConv1D, ("input_quantizer", "kernel_quantizer")),
    "QuantConv2D": (layers.QuantConv2D, ("input_quantizer", "kernel_quantizer")),
    "QuantDepthwiseConv2D": (
        layers.QuantDepthwiseConv2D,
        ("input_quantizer", "depthwise_quantizer"),
    ),
    "QuantSeparableConv2D": (
        layers.QuantSeparableConv2D,
        ("input_quantizer", "depthwise_quantizer", "pointwise_quantizer"),
    ),
    "QuantConv2DTranspose": (layers.QuantConv2DTranspose, ("input_quantizer", "kernel_quantizer")),
}
# larq layers tfqnn does not have, with what to use instead.
MISSING_LAYERS: dict[str, str] = {
    "QuantConv3D": "none yet: tfqnn has no 3-D convolution",
    "QuantConv3DTranspose": "none yet: tfqnn has no 3-D convolution",
    "QuantConv1DTranspose": "QuantConv2DTranspose on a (1, width) input",
    "QuantSeparableConv1D": "QuantSeparableConv2D on a (1, width) input",
    "QuantLocallyConnected1D": "none: Keras 3 has no locally connected layers",
    "QuantLocallyConnected2D": "none: Keras 3 has no locally connected layers",
}
# larq's quantizer aliases and former class names.
ALIASES = {
    "ste_sign": "SteSign",
    "approx_sign": "ApproxSign",
    "swish_sign": "SwishSign",
    "magnitude_aware_sign": "MagnitudeAwareSign",
    "ste_tern": "SteTern",
    "ste_heaviside": "SteHeaviside",
    "dorefa_quantizer": "DoReFa",
    "DoReFaQuantizer": "DoReFa",
    "NoOpQuantizer": "NoOp",
}


def _take(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The arguments in ``defaults`` from ``config``; any other entry is an error."""
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"unknown arguments {unknown}")
    return {key: config.get(key, default) for key, default in defaults.items()}


def _ste_tern(config: dict[str, Any]) -> quantizers.Quantizer:
    args = _take(
        config, {"threshold_value": 0.05, "ternary_weight_networks": False, "clip_value": 1.0}
    )
    threshold = None
    if not args["ternary_weight_networks"]:
        # larq keeps |x| >= t, tfqnn keeps |x| > threshold: the float32 just below t.
        t = np.float32(args["threshold_value"])
        threshold = float(np.nextafter(t, np.float32(0.0))) if t > 0 else 0.0
    return quantizers.SteTern(threshold=threshold, scaled=False, clip_value=args["clip_value"])


def _dorefa(config: dict[str, Any]) -> quantizers.Quantizer:
    args = _take(config, {"k_bit": 2, "mode": "activations"})
    if args["mode"] == "weights":
        return quantizers.DoReFaWeights(args["k_bit"])
    if args["mode"] != "activations":
        raise ValueError(f"unknown mode {args['mode']!r}")
    return quantizers.DoReFa(args["k_bit"], "activations")


def _noop(config: dict[str, Any]) -> quantizers.Quantizer:
    precision = _take(config, {"precision": None})["precision"]
    return quantizers.NoOp(32 if precision is None else precision)


QUANTIZERS: dict[str, Callable[[dict[str, Any]], quantizers.Quantizer]] = {
    # larq-zoo's quantizer functions, by the names larq-zoo registers them under.
    "xnor_weight_scale": lambda c: quantizers.ClippedScaledSign(**_take(c, {})),
    "magnitude_aware_sign_unclipped": lambda c: quantizers.DoReFa(
        **_take(c, {}), bits=1, mode="weights"
    ),
    "SteSign": lambda c: quantizers.SteSign(**_take(c, {"clip_value": 1.0})),
    "ApproxSign": lambda c: quantizers.ApproxSign(**_take(c, {})),
    "SwishSign": lambda c: quantizers.SwishSign(**_take(c, {"beta": 5.0})),
    "SteHeaviside": lambda c: quantizers.SteHeaviside(**_take(c, {"clip_value": 1.0})),
    "MagnitudeAwareSign": lambda c: quantizers.MagnitudeAwareSign(**_take(c, {"clip_value": 1.0})),
    "SteTern": _ste_tern,
    "DoReFa": _dorefa,
    "NoOp": _noop,
}


def describe(value: Any) -> str:
    """A short text for a serialized larq quantizer or constraint."""
    if isinstance(value, dict) and value.get("class_name") == "function":
        return str(value.get("config"))  # a Python function, saved by its name
    if isinstance(value, dict) and isinstance(value.get("config", {}), dict):
        config = {
            k: v
            for k, v in (value.get("config") or {}).items()
            if k not in ("name", "trainable", "dtype")
        }
        arguments = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{value.get('class_name')}({arguments})"
    return repr(value)


def quantizer(value: Any, path: str, report: Report) -> quantizers.Quantizer | None:
    """The tfqnn quantizer for a serialized larq quantizer (None stays None)."""
    if value is None:
        return None
    if isinstance(value, dict) and value.get("class_name") == "function":
        value = value.get("config")  # a Python function, saved by its name (larq-zoo's)
    if isinstance(value, str):
        class_name, config = ALIASES.get(value, value), {}
    elif isinstance(value, dict) and isinstance(value.get("config", {}), dict):
        class_name = ALIASES.get(str(value.get("class_name")), str(value.get("class_name")))
        config = dict(value.get("config") or {})
    else:
        report.unsupported(path, f"quantizer {value!r} is not a larq quantizer config")
        return None
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    if config.pop("metrics", None):
        report.notice("larq quantizer metrics (flip_ratio) are training statistics: ignored")
    build = QUANTIZERS.get(class_name)
    if build is None:
        report.unsupported(
            path,
            f"larq quantizer {class_name!r}",
            "a tfqnn.quantizers class (see docs/quantizers.md) or your own Quantizer subclass",
        )
        return None
    try:
        return build(config)
    except (TypeError, ValueError) as error:
        report.unsupported(path, f"larq {class_name} with config {config}: {error}")
        return None


def constraint(value: Any, path: str, report: Report) -> Any:
    """larq's ``weight_clip``/``WeightClip`` as tfqnn's `WeightClip`; others unchanged."""
    if value == "weight_clip":
        return constraints.WeightClip()
    if isinstance(value, dict) and value.get("class_name") in ("WeightClip", "weight_clip"):
        try:
            return constraints.WeightClip(
                **_take(dict(value.get("config") or {}), {"clip_value": 1.0})
            )
        except (TypeError, ValueError) as error:
            report.unsupported(path, f"larq WeightClip {value.get('config')}: {error}")
    return value


def layer_arguments(
    class_name: str, config: dict[str, Any], path: str, report: Report
) -> tuple[type[Any], dict[str, Any], str] | None:
    """The tfqnn class, its arguments and a description of the larq quantizers."""
    if class_name in MISSING_LAYERS:
        report.unsupported(path, f"larq {class_name}", MISSING_LAYERS[class_name])
        return None
    cls, quantizer_names = LAYERS[class_name]
    config = dict(config)
    described = translate_quantizers(config, quantizer_names, describe, quantizer, path, report)
    for key in [k for k in config if k.endswith("_constraint")]:
        config[key] = constraint(config[key], f"{path}/{key}", report)
    return cls, config, described


def is_larq_layer(class_name: str) -> bool:
    """Whether a tf_keras config's class name is one of larq's layers."""
    return class_name in LAYERS or class_name in MISSING_LAYERS
