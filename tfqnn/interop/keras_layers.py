"""The layers of tf_keras itself: the same class in Keras 3, with the config made current.

tf_keras and Keras 3 share the names and most arguments of their built-in
layers. `clean_config` removes what tf_keras writes that Keras 3 does not
take when it has no effect (``groups=1``, the unused ``kernel_*`` entries of
separable convolutions, an ``input_length`` or ``noise_shape`` of None) and
names the activations Keras 3 computes differently by tfqnn's copy of
tf_keras's (``hard_sigmoid``, the only one of tf_keras 2.21's 18 names; the
others call the same TensorFlow ops in both);
anything else Keras 3 rejects is reported as unsupported rather than
dropped, since dropping it could change the model.
"""

from __future__ import annotations

from typing import Any

import keras

from tfqnn import activations
from tfqnn.interop.report import Report

# What a Keras from_config raises on a config it does not take.
CONFIG_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError)
# Arguments tf_keras writes that mean nothing when they hold these values.
NEUTRAL: dict[str, Any] = {
    "groups": 1,
    "input_length": None,
    "noise_shape": None,
    "time_major": False,  # tf_keras's recurrent layers write it; Keras 3's are batch-major
}
# Arguments tf_keras writes for classes that never use them.
UNUSED: dict[str, tuple[str, ...]] = {
    "SeparableConv1D": ("kernel_initializer", "kernel_regularizer", "kernel_constraint"),
    "SeparableConv2D": ("kernel_initializer", "kernel_regularizer", "kernel_constraint"),
    "QuantSeparableConv2D": ("kernel_initializer", "kernel_regularizer", "kernel_constraint"),
    "QSeparableConv2D": ("kernel_initializer", "kernel_regularizer", "kernel_constraint"),
}
# tf_keras activations that Keras 3 computes differently under the same name, and
# larq-zoo's DoReFaNet activation, by the name larq-zoo registers it under.
ACTIVATIONS: dict[str, Any] = {
    "hard_sigmoid": activations.tf_keras_hard_sigmoid,
    "clip_by_value_activation": activations.clip_unit_interval,
}
# tf_keras classes with no Keras 3 equivalent that would keep the model's outputs.
UNSUPPORTED: dict[str, str] = {
    "SlicingOpLambda": "a tensor slice; rebuild it as a Keras 3 layer",
}
# TensorFlow ops of two tensors that tf_keras records as TFOpLambda layers
# (``x + y`` on Keras tensors), and the Keras 3 merge layer that computes them.
BINARY_OPS: dict[str, str] = {
    "__operators__.add": "Add",
    "math.add": "Add",
    "math.subtract": "Subtract",
    "math.multiply": "Multiply",
    "math.maximum": "Maximum",
    "math.minimum": "Minimum",
}


def clean_config(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a tf_keras layer config without the entries Keras 3 neither needs nor takes."""
    config = dict(config)
    for key, neutral in NEUTRAL.items():
        if key in config and config[key] == neutral:
            del config[key]
    for key in UNUSED.get(class_name, ()):
        config.pop(key, None)
    for key in ("batch_input_shape", "batch_shape", "input_shape"):
        config.pop(key, None)  # the model's Input carries the shape
    axis = config.get("axis")
    if class_name == "BatchNormalization" and isinstance(axis, list) and len(axis) == 1:
        config["axis"] = axis[0]  # tf_keras writes [3], Keras 3 takes 3
    for key in ("activation", "recurrent_activation"):
        value = config.get(key)
        if isinstance(value, dict) and value.get("class_name") == "function":
            value = value.get("config")  # a Python function, saved by its name
        if isinstance(value, str) and value in ACTIVATIONS:
            config[key] = keras.saving.serialize_keras_object(ACTIVATIONS[value])
    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # a tf_keras DTypePolicy: Keras 3 takes its name
        config["dtype"] = dtype.get("config", {}).get("name", "float32")
    return config


def last_line(error: BaseException) -> str:
    """The last line of an error's message (Keras repeats the whole config before it)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def keras_class(class_name: str) -> type[keras.layers.Layer] | None:
    """The Keras 3 layer class of that name, or None."""
    cls = getattr(keras.layers, class_name, None)
    if isinstance(cls, type) and issubclass(cls, keras.layers.Layer):
        return cls
    return None


def layer(class_name: str, config: dict[str, Any], path: str, report: Report) -> Any:
    """The Keras 3 layer for a tf_keras layer, or None after reporting why not."""
    if class_name in UNSUPPORTED:
        report.unsupported(path, f"tf_keras {class_name}: {UNSUPPORTED[class_name]}")
        return None
    if class_name == "TFOpLambda":
        function = config.get("function")
        if function not in BINARY_OPS:
            report.unsupported(
                path,
                f"tf_keras TFOpLambda of tf.{function} (a TensorFlow op called on a Keras "
                "tensor); only tf.add, subtract, multiply, maximum, minimum and + of two "
                "tensors are mapped",
                "a Keras 3 layer or keras.ops in a custom layer",
            )
            return None
        merge = getattr(keras.layers, BINARY_OPS[str(function)])
        return merge(name=config.get("name"), dtype=clean_config("", config).get("dtype"))
    cls = keras_class(class_name)
    if cls is None:
        report.unsupported(path, f"layer class {class_name!r} is neither tf_keras's nor a peer's")
        return None
    try:
        return cls.from_config(clean_config(class_name, config))
    except CONFIG_ERRORS as error:
        report.unsupported(
            path, f"tf_keras {class_name} with a config Keras 3 rejects: {last_line(error)}"
        )
        return None
