"""QKeras 0.9: its quantized layers and quantizers as tfqnn's, with the same forward and backward.

| QKeras | tfqnn |
|---|---|
| ``QDense``, ``QConv1D``, ``QConv2D``, ``QDepthwiseConv2D``, ``QSeparableConv2D`` | the tfqnn ``Quant*`` layer, the QKeras kernel and bias quantizers as its own |
| ``QActivation(quantizer)`` | ``QuantActivation(quantizer)`` (``keras.layers.Activation`` for a plain activation) |
| ``quantized_bits(bits, integer, symmetric, keep_negative, alpha=None, a number, "auto" or "auto_po2")`` | ``QuantizedBits`` |
| ``quantized_relu(bits, integer)`` | ``QuantizedRelu`` |
| ``quantized_po2(bits, max_value)`` | ``QuantizedPo2`` |
| ``ternary(alpha=1, threshold)`` | ``SteTern(threshold=<float32 below threshold>, scaled=False, clip_value=None)`` |
| ``ternary(alpha="auto" or "auto_po2")`` | ``QuantizedTernary(alpha)`` |
| ``binary(alpha=1)`` | ``SteSign(clip_value=None)`` |
| ``binary(alpha="auto" or "auto_po2")`` | ``QuantizedBinary(alpha)`` |
| ``stochastic_binary(alpha)``, ``stochastic_ternary(alpha, threshold)`` | as ``binary(alpha)``, ``ternary(alpha, threshold)``: what they compute on TensorFlow 2 (`SAMPLING_ONLY`) |
| ``quantized_tanh(bits, symmetric, use_real_tanh)`` | ``QuantizedTanh`` |
| ``quantized_sigmoid(bits, symmetric, use_real_sigmoid)`` | ``QuantizedSigmoid`` |
| ``QBidirectional(layer)`` | ``keras.layers.Bidirectional`` around the mapped layer (`tfqnn.interop.translate`) |
| ``QSimpleRNN``, ``QLSTM``, ``QGRU`` | ``QuantSimpleRNN``, ``QuantLSTM``, ``QuantGRU`` with the same four quantizers |
| activation ``"hard_sigmoid"``, ``"hard_tanh"`` (QKeras's own) | ``activations.hard_sigmoid_half``, ``activations.hard_tanh`` |

A QKeras quantizer given as a layer's ``activation`` becomes the tfqnn
quantizer as the layer's activation (Keras takes any callable).

What changes the outputs or the gradients is reported, not approximated:
stochastic rounding, ``qnoise_factor`` other than 1, ``alpha`` None (a tanh estimator)
or a number other than 1 on ``binary`` and ``ternary``, and the other
QKeras quantizers.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tfqnn import activations, constraints, layers, quantizers
from tfqnn.interop.arguments import translate_quantizers
from tfqnn.interop.report import Report

# QKeras layer -> (tfqnn layer, its quantizer arguments); QKeras's names match.
LAYERS: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "QDense": (layers.QuantDense, ("kernel_quantizer", "bias_quantizer")),
    "QConv1D": (layers.QuantConv1D, ("kernel_quantizer", "bias_quantizer")),
    "QConv2D": (layers.QuantConv2D, ("kernel_quantizer", "bias_quantizer")),
    "QDepthwiseConv2D": (layers.QuantDepthwiseConv2D, ("depthwise_quantizer", "bias_quantizer")),
    "QSeparableConv2D": (
        layers.QuantSeparableConv2D,
        ("depthwise_quantizer", "pointwise_quantizer", "bias_quantizer"),
    ),
}
# QKeras recurrent layer -> tfqnn layer; all four quantizers keep their names.
RECURRENT: dict[str, type[Any]] = {
    "QSimpleRNN": layers.QuantSimpleRNN,
    "QLSTM": layers.QuantLSTM,
    "QGRU": layers.QuantGRU,
}
RECURRENT_QUANTIZERS = (
    "kernel_quantizer",
    "recurrent_quantizer",
    "bias_quantizer",
    "state_quantizer",
)
# QKeras layers tfqnn does not map, with what to use instead.
MISSING_LAYERS: dict[str, str] = {
    "QBatchNormalization": "keras.layers.BatchNormalization (float parameters)",
    "QConv2DBatchnorm": "QuantConv2D followed by BatchNormalization",
    "QDepthwiseConv2DBatchnorm": "QuantDepthwiseConv2D followed by BatchNormalization",
    "QSeparableConv1D": "QuantSeparableConv2D on a (1, width) input",
    "QConv2DTranspose": "QuantConv2DTranspose (not mapped yet)",
    "QAdaptiveActivation": "QuantActivation with a fixed quantizer",
    "QAveragePooling2D": "AveragePooling2D then QuantActivation",
    "QGlobalAveragePooling2D": "GlobalAveragePooling2D then QuantActivation",
}
# QKeras reads activation names in its own module first: these differ from Keras's.
ACTIVATIONS: dict[str, Any] = {
    "hard_sigmoid": activations.hard_sigmoid_half,  # clip((x + 1) / 2, 0, 1)
    "hard_tanh": activations.hard_tanh,  # clip(x, -1, 1)
}
# QKeras activations with no tfqnn equivalent (a rounding with a straight-through gradient).
MISSING_ACTIVATIONS = ("binary_sigmoid", "binary_tanh", "smooth_sigmoid", "smooth_tanh")
# Each quantizer's arguments in QKeras's order (for the string form "quantized_bits(4,0,1)").
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "quantized_bits": (
        "bits",
        "integer",
        "symmetric",
        "keep_negative",
        "alpha",
        "use_stochastic_rounding",
        "scale_axis",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
    ),
    "quantized_relu": (
        "bits",
        "integer",
        "use_sigmoid",
        "negative_slope",
        "use_stochastic_rounding",
        "relu_upper_bound",
        "is_quantized_clip",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
    ),
    "quantized_po2": (
        "bits",
        "max_value",
        "use_stochastic_rounding",
        "quadratic_approximation",
        "log2_rounding",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
    ),
    "ternary": ("alpha", "threshold", "use_stochastic_rounding", "number_of_unrolls"),
    "binary": ("use_01", "alpha", "use_stochastic_rounding"),
    "stochastic_ternary": (
        "alpha",
        "threshold",
        "temperature",
        "use_real_sigmoid",
        "number_of_unrolls",
    ),
    "stochastic_binary": ("alpha", "temperature", "use_real_sigmoid"),
    "quantized_tanh": ("bits", "use_stochastic_rounding", "symmetric", "use_real_tanh"),
    "quantized_sigmoid": ("bits", "symmetric", "use_real_sigmoid", "use_stochastic_rounding"),
}
# Arguments that must keep these values for the mapping to be exact.
REQUIRED: dict[str, Any] = {
    "use_stochastic_rounding": False,
    "qnoise_factor": 1.0,
    "use_ste": True,
    "scale_axis": None,
    "use_sigmoid": 0,
    "negative_slope": 0.0,
    "relu_upper_bound": None,
    "is_quantized_clip": True,
    "quadratic_approximation": False,
    "log2_rounding": "rnd",
    "use_01": False,
    "number_of_unrolls": 5,  # QuantizedTernary's five refinements of the scale
}
# Arguments with no effect on the values (names of variables, their creation).
IGNORED = ("var_name", "use_variables")
# QKeras 0.9's stochastic_binary and stochastic_ternary sample only while tf_keras's
# global learning phase is 1 (``K.learning_phase()``, which ``fit`` and
# ``model(x, training=True)`` leave at 0 on TensorFlow 2): in training and in
# inference they compute binary(alpha) and ternary(alpha, threshold). Their
# sampling arguments change nothing then.
SAMPLING_ONLY: dict[str, tuple[str, ...]] = {
    "stochastic_binary": ("temperature", "use_real_sigmoid"),
    "stochastic_ternary": ("temperature", "use_real_sigmoid"),
}
SAMPLING_NOTICE = (
    "QKeras's stochastic_binary and stochastic_ternary are mapped onto what they compute on "
    "TensorFlow 2, in fit and predict alike: binary(alpha) and ternary(alpha, threshold) "
    "(they sample only under tf_keras's deprecated global learning phase 1)"
)
ALTERNATIVES = {
    "bernoulli": "StochasticSign",
    "quantized_relu_po2": "QuantizedPo2 after a ReLU",
    "quantized_ulaw": "",
    "quantized_hswish": "",
}


def parse(value: Any) -> tuple[str, dict[str, Any]]:
    """A QKeras quantizer config (dict or string such as ``"quantized_bits(4,0,1)"``).

    Returns its class name and its arguments by name.

    Raises:
        ValueError: ``value`` is neither.
    """
    if isinstance(value, dict):
        config = value.get("config")
        if not isinstance(config, dict) or not isinstance(value.get("class_name"), str):
            raise ValueError(f"{value!r} is not a quantizer config")  # noqa: TRY004
        return value["class_name"], dict(config)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a quantizer config")  # noqa: TRY004
    try:
        node = ast.parse(value.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError) as error:
        raise ValueError(f"{value!r} is not a quantizer expression") from error
    if isinstance(node, ast.Name):
        return node.id, {}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"{value!r} is not a quantizer expression")  # noqa: TRY004
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except (ValueError, TypeError, SyntaxError, RecursionError) as error:
        raise ValueError(f"{value!r} has arguments that are not literals") from error
    names = ARGUMENTS.get(node.func.id, ())
    if len(args) > len(names):
        raise ValueError(f"{value!r} has too many arguments")
    return node.func.id, {**dict(zip(names, args)), **kwargs}


def _exact(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """The value-relevant arguments; raises where a setting has no exact tfqnn equivalent."""
    unknown = sorted(set(config) - set(ARGUMENTS[name]))
    if unknown:
        raise ValueError(f"unknown arguments {unknown}")
    for key, required in REQUIRED.items():
        if key in config and config[key] != required:
            raise ValueError(f"{key}={config[key]!r} (only {required!r} maps exactly)")
    return {k: v for k, v in config.items() if k not in REQUIRED and k not in IGNORED}


def _bits(c: dict[str, Any]) -> quantizers.Quantizer:
    return quantizers.QuantizedBits(**c)


def _ternary(c: dict[str, Any]) -> quantizers.Quantizer:
    if c.get("alpha") in ("auto", "auto_po2") and c.get("threshold") is None:
        return quantizers.QuantizedTernary(c["alpha"])
    if c.get("alpha") not in (1, 1.0):
        raise ValueError(f"alpha={c.get('alpha')!r} (only alpha=1 maps exactly, onto SteTern)")
    t = np.float32(0.33 if c.get("threshold") is None else c["threshold"])
    threshold = float(np.nextafter(t, np.float32(0.0))) if t > 0 else 0.0
    return quantizers.SteTern(threshold=threshold, scaled=False, clip_value=None)


def _binary(c: dict[str, Any]) -> quantizers.Quantizer:
    if c.get("alpha") in ("auto", "auto_po2"):
        return quantizers.QuantizedBinary(c["alpha"])
    if c.get("alpha") not in (1, 1.0):
        raise ValueError(f"alpha={c.get('alpha')!r} (only alpha=1 maps exactly, onto SteSign)")
    return quantizers.SteSign(clip_value=None)


def _stochastic_ternary(c: dict[str, Any]) -> quantizers.Quantizer:
    if c.get("alpha") in ("auto", "auto_po2") and c.get("threshold") is not None:
        # ternary's inference path asserts that an automatic alpha has no threshold.
        raise ValueError(f"alpha={c['alpha']!r} with threshold={c['threshold']!r}")
    return _ternary(c)


QUANTIZERS: dict[str, Callable[[dict[str, Any]], quantizers.Quantizer]] = {
    "quantized_bits": _bits,
    "quantized_relu": lambda c: quantizers.QuantizedRelu(**c),
    "quantized_po2": lambda c: quantizers.QuantizedPo2(**c),
    "ternary": _ternary,
    "binary": _binary,
    "stochastic_ternary": _stochastic_ternary,
    "stochastic_binary": _binary,
    "quantized_tanh": lambda c: quantizers.QuantizedTanh(
        c.get("bits", 8), bool(c.get("symmetric", False)), bool(c.get("use_real_tanh", False))
    ),
    "quantized_sigmoid": lambda c: quantizers.QuantizedSigmoid(
        c.get("bits", 8), bool(c.get("symmetric", False)), bool(c.get("use_real_sigmoid", False))
    ),
}


def quantizer(value: Any, path: str, report: Report) -> quantizers.Quantizer | None:
    """The tfqnn quantizer for a QKeras quantizer config (None stays None)."""
    if value is None:
        return None
    try:
        name, config = parse(value)
    except ValueError as error:
        report.unsupported(path, f"QKeras quantizer: {error}")
        return None
    if name not in QUANTIZERS:
        report.unsupported(path, f"QKeras quantizer {name!r}", ALTERNATIVES.get(name, ""))
        return None
    if name in SAMPLING_ONLY:
        config = {k: v for k, v in config.items() if k not in SAMPLING_ONLY[name]}
    try:
        found = QUANTIZERS[name](_exact(name, config))
    except (TypeError, ValueError) as error:
        report.unsupported(path, f"QKeras {name}: {error}")
        return None
    if name in SAMPLING_ONLY:
        report.notice(SAMPLING_NOTICE)
    return found


def describe(value: Any) -> str:
    """A short text for a QKeras quantizer config."""
    try:
        name, config = parse(value)
    except ValueError:
        return repr(value)
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


def is_qkeras_quantizer(value: Any) -> bool:
    """Whether an ``activation`` entry names a QKeras quantizer rather than a Keras activation."""
    try:
        name, _ = parse(value)
    except ValueError:
        # A known name with arguments parse cannot name (a quantizer tfqnn lacks).
        head = value.split("(", 1)[0].strip() if isinstance(value, str) else ""
        return head in ALTERNATIVES
    return name in QUANTIZERS or name in ALTERNATIVES


def _activations(config: dict[str, Any], path: str, report: Report) -> bool:
    """Replaces QKeras's own activation names in ``config`` by tfqnn's functions.

    Returns False after reporting one that tfqnn lacks.
    """
    ok = True
    for key in ("activation", "recurrent_activation"):
        value = config.get(key)
        if not isinstance(value, str):
            continue
        if value in ACTIVATIONS:
            config[key] = keras.saving.serialize_keras_object(ACTIVATIONS[value])
        elif value in MISSING_ACTIVATIONS:
            report.unsupported(
                f"{path}/{key}",
                f"QKeras activation {value!r} (a rounding with a straight-through gradient)",
                "QuantActivation with a tfqnn quantizer",
            )
            ok = False
    return ok


def _quantizer_activations(config: dict[str, Any], path: str, report: Report) -> str:
    """Replaces QKeras quantizers given as ``activation`` or ``recurrent_activation``.

    A tfqnn quantizer is a callable that Keras takes as an activation and
    serializes: the layer applies it where QKeras applies its quantizer
    (after the bias; in a recurrent cell, at every place the activation is
    used). Returns the source quantizers as text.
    """
    described = []
    for key in ("activation", "recurrent_activation"):
        value = config.get(key)
        if is_qkeras_quantizer(value):
            described.append(f"{key}={describe(value)}")
            config[key] = quantizer(value, f"{path}/{key}", report)
    return ", ".join(described)


def layer_arguments(
    class_name: str, config: dict[str, Any], path: str, report: Report
) -> tuple[type[Any], dict[str, Any], str] | None:
    """The tfqnn class, its arguments and a description of the QKeras quantizers."""
    if class_name == "QActivation":
        activation = config.get("activation")
        if not is_qkeras_quantizer(activation):
            plain = dict(config)
            if not _activations(plain, path, report):
                return None
            return keras.layers.Activation, plain, ""
        found = quantizer(activation, f"{path}/activation", report)
        rest = {k: v for k, v in config.items() if k != "activation"}
        return layers.QuantActivation, {**rest, "quantizer": found}, describe(activation)
    if class_name in RECURRENT:
        return _recurrent(class_name, config, path, report)
    if class_name in MISSING_LAYERS:
        report.unsupported(path, f"QKeras {class_name}", MISSING_LAYERS[class_name])
        return None
    cls, quantizer_names = LAYERS[class_name]
    config = dict(config)
    if not _activations(config, path, report):
        return None
    for key in ("kernel_range", "bias_range", "depthwise_range", "pointwise_range"):
        config.pop(key, None)  # QKeras's deprecated ranges: unused
    for key in [k for k in config if k.endswith("_initializer")]:
        value = config[key]
        if isinstance(value, dict) and value.get("class_name") == "QInitializer":
            # Only a new layer's first weights depend on it: keep the wrapped one.
            config[key] = (value.get("config") or {}).get("initializer", "glorot_uniform")
    described_activation = _quantizer_activations(config, path, report)
    described = translate_quantizers(config, quantizer_names, describe, quantizer, path, report)
    return cls, config, ", ".join(d for d in (described, described_activation) if d)


def _recurrent(
    class_name: str, config: dict[str, Any], path: str, report: Report
) -> tuple[type[Any], dict[str, Any], str] | None:
    """``QSimpleRNN``, ``QLSTM`` or ``QGRU`` as tfqnn's layer with the same quantizers.

    QKeras's cells compute as tfqnn's with ``input_quantizer``, the gate and
    candidate quantizers None: ``W``, ``U`` and ``b`` quantized, the states
    ``h`` (and the LSTM's ``c``) quantized when read. A QKeras quantizer as
    ``activation`` (QKeras's default ``quantized_tanh``) or
    ``recurrent_activation`` becomes the tfqnn quantizer as that activation:
    the cell applies it wherever QKeras does (the candidate and ``c`` of the
    LSTM, the gates). What differs is reported: a ``QGRU`` without
    ``recurrent_quantizer`` (QKeras 0.9's ``QGRUCell`` then multiplies ``h``
    by the kernel ``W``) and ``time_major=True``.
    ``QLSTM`` forces ``unit_forget_bias=True``, which only sets the first
    bias: the file's bias is loaded as it is.
    """
    config = dict(config)
    ok = _activations(config, path, report)
    described_activation = _quantizer_activations(config, path, report)
    if class_name == "QGRU" and config.get("recurrent_quantizer") is None:
        report.unsupported(
            f"{path}/recurrent_quantizer",
            "QKeras QGRU without recurrent_quantizer: QKeras 0.9's QGRUCell then uses the "
            "kernel W as the recurrent matrix (a bug), which no tfqnn GRU computes",
            "save the model with a recurrent_quantizer",
        )
        ok = False
    if config.pop("time_major", False):
        report.unsupported(path, f"QKeras {class_name} with time_major=True", "time_major=False")
        ok = False
    config.pop("implementation", None)  # Keras's two orders of the same products
    for key in [k for k in config if k.endswith("_initializer")]:
        value = config[key]
        if isinstance(value, dict) and value.get("class_name") == "QInitializer":
            config[key] = (value.get("config") or {}).get("initializer", "glorot_uniform")
    described = translate_quantizers(
        config, RECURRENT_QUANTIZERS, describe, quantizer, path, report
    )
    described = ", ".join(d for d in (described, described_activation) if d)
    return (RECURRENT[class_name], config, described) if ok else None


def constraint(value: Any, path: str, report: Report) -> Any:
    """QKeras's ``Clip(-c, c)`` kernel constraint as tfqnn's `WeightClip(c)`; others unchanged."""
    if not (isinstance(value, dict) and value.get("class_name") == "Clip"):
        return value
    config = value.get("config") or {}
    low, high = config.get("min_value"), config.get("max_value")
    if (
        isinstance(high, (int, float))
        and isinstance(low, (int, float))
        and low == -high
        and high > 0
    ):
        return constraints.WeightClip(float(high))
    report.unsupported(path, f"QKeras Clip({low!r}, {high!r})", "WeightClip(c) clips to [-c, c]")
    return None


def is_qkeras_layer(class_name: str) -> bool:
    """Whether a tf_keras config's class name is one of QKeras's layers."""
    return (
        class_name in LAYERS
        or class_name in RECURRENT
        or class_name in MISSING_LAYERS
        or class_name == "QActivation"
    )
