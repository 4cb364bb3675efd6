"""What every zoo builder shares: argument checks, the input, the head, the weights.

The builders take `keras.applications`' arguments with their meaning
(``include_top, weights, input_tensor, input_shape, pooling, classes,
classifier_activation, name``). `weights` is None or the path of a weights
file: tfqnn ships no pretrained ImageNet weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import numbers
import os
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any

import keras

from tfqnn import _validation
from tfqnn.layers import QuantDense

# Below this many pixels on the shorter side, a builder uses its small-input
# stem: the stem's stride-2 steps (strided convolution, max pool) become
# stride 1, as larq-zoo's ResNetE does below 50 px. The ImageNet stem would
# divide a 28x28 image by 4 before the first block.
SMALL_INPUT = 50

# ".h5": a tf_keras save_weights file (larq-zoo's weights), read by layer order.
WEIGHT_SUFFIXES = (".keras", ".h5")  # ".h5" also covers Keras 3's ".weights.h5"

# The model attribute that holds a zoo model's `PresetRecord`, and the group of
# a weights file where Keras writes the record's name.
PRESET_ATTRIBUTE = "_tfqnn_zoo_preset"
PRESET_GROUP = f"{PRESET_ATTRIBUTE}/vars"

# The arguments every builder takes, in keras.applications' order.
APPLICATION_ARGUMENTS = (
    "include_top",
    "weights",
    "input_tensor",
    "input_shape",
    "pooling",
    "classes",
    "classifier_activation",
    "name",
)


@dataclasses.dataclass
class Arguments:
    """The checked `keras.applications` arguments of one builder call."""

    include_top: bool
    weights: str | None
    pooling: str | None
    classes: int
    classifier_activation: Any
    name: str
    inputs: Any  # what keras.Model takes as inputs
    image: Any  # the image tensor the network starts from
    small_below: int = SMALL_INPUT
    builder: str = ""  # the builder's name, "ResNet18"

    @property
    def height(self) -> int:
        return int(self.image.shape[1])

    @property
    def width(self) -> int:
        return int(self.image.shape[2])

    @property
    def small(self) -> bool:
        """True when the builder should use its small-input stem."""
        return min(self.height, self.width) < self.small_below


def arguments_of(values: dict[str, Any]) -> dict[str, Any]:
    """The `APPLICATION_ARGUMENTS` among a builder's ``locals()``."""
    return {key: values[key] for key in APPLICATION_ARGUMENTS}


def check_arguments(
    model: str,
    *,
    include_top: Any,
    weights: Any,
    input_tensor: Any,
    input_shape: Any,
    pooling: Any,
    classes: Any,
    classifier_activation: Any,
    name: Any,
    min_size: int,
    small_below: int = SMALL_INPUT,
    default_size: int = 224,
) -> Arguments:
    """Checks the builder arguments and makes the model's input.

    ``min_size`` is the architecture's smallest side (with its small-input
    stem), ``small_below`` the side below which it uses that stem.

    Raises:
        ValueError: naming the argument and what is allowed.
    """
    include_top = _validation.check_bool("include_top", include_top)
    weights = check_weights(weights)
    pooling = _validation.check_choice("pooling", pooling, (None, "avg", "max"))
    classes = _validation.check_int("classes", classes, low=1)
    if classifier_activation is not None:
        try:
            keras.activations.get(classifier_activation)
        except (ValueError, TypeError):
            raise ValueError(
                f"Invalid classifier_activation={classifier_activation!r}: expected None, "
                "a Keras activation name or a callable."
            ) from None
    if not isinstance(name, str) or not name:
        raise ValueError(f"Invalid name={name!r}: expected a non-empty string.")
    inputs, image = _input(input_tensor, input_shape, default_size)
    height, width = int(image.shape[1]), int(image.shape[2])
    if min(height, width) < min_size:
        raise ValueError(
            f"Invalid input_shape={tuple(image.shape[1:])!r}: {model} needs images of at "
            f"least {min_size}x{min_size} pixels."
        )
    return Arguments(
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
        inputs=inputs,
        image=image,
        small_below=small_below,
        builder=model,
    )


def check_weights(weights: Any) -> str | None:
    """None, or the path of an existing weights file (``.weights.h5``, ``.keras`` or ``.h5``)."""
    if weights is None:
        return None
    expected = (
        "expected None (random initialization) or the path of an existing .weights.h5 or "
        ".keras file, or a tf_keras .h5 weights file such as larq-zoo's (tfqnn ships no "
        "pretrained ImageNet weights)"
    )
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"Invalid weights={weights!r}: {expected}.")  # noqa: TRY004
    path = os.fspath(weights)
    if not os.path.isfile(path) or not path.endswith(WEIGHT_SUFFIXES):
        raise ValueError(f"Invalid weights={weights!r}: {expected}.")
    return path


def _input(input_tensor: Any, input_shape: Any, default_size: int) -> tuple[Any, Any]:
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor) or len(input_tensor.shape) != 4:
            shown = getattr(input_tensor, "shape", None)
            shown = f"<{type(input_tensor).__name__} of shape {shown}>" if shown else input_tensor
            raise ValueError(
                f"Invalid input_tensor={shown!s}: expected a Keras tensor of shape "
                "(batch, height, width, channels), such as keras.Input((224, 224, 3))."
            )
        shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != shape:
            raise ValueError(
                f"Invalid input_shape={input_shape!r}: expected None or the shape of "
                f"input_tensor, {shape!r}."
            )
        _check_shape(shape, "input_tensor")
        sources = keras.utils.get_source_inputs(input_tensor)
        return (sources[0] if len(sources) == 1 else sources), input_tensor
    if input_shape is None:
        input_shape = (default_size, default_size, 3)
    _check_shape(input_shape, "input_shape")
    image = keras.Input(tuple(int(d) for d in input_shape))
    return image, image


def _check_shape(shape: Any, argument: str) -> None:
    ok = isinstance(shape, (tuple, list)) and len(shape) == 3
    ok = ok and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and int(d) >= 1 for d in shape
    )
    if not ok:
        raise ValueError(
            f"Invalid {argument}={shape!r}: expected (height, width, channels), three "
            "positive integers (channels last; None dimensions are not supported)."
        )


def head(x: Any, args: Arguments, dropout: float = 0.0) -> Any:
    """The classifier on top of the features, or `pooling` without the top.

    With the top: global average pooling, dropout, a float Dense classifier
    named "predictions" and the classifier activation in float32. Without: the features, pooled as `pooling` says.
    """
    if not args.include_top:
        return pool(x, args.pooling)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    x = QuantDense(args.classes, name="predictions")(x)
    return activation(x, args)


def pool(x: Any, pooling: str | None) -> Any:
    """``x``, or its global average or max pool."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def activation(x: Any, args: Arguments) -> Any:
    """The classifier activation, computed in float32 (None gives logits)."""
    if args.classifier_activation is None:
        return x
    return keras.layers.Activation(
        args.classifier_activation, dtype="float32", name="predictions_activation"
    )(x)


class PresetRecord(keras.layers.Layer):
    """The quantization preset of a zoo model, written into its weights files.

    A classic network's weights file of one preset has the variables of any
    other (the quantizers hold none), so the variables cannot tell a binary
    ResNet18's file from a float one's. Keras writes the name of every object
    its saving visits into the file (the ``name`` attribute of the group
    ``<path>/vars``); `finish` attaches this record, a layer without
    variables, to the model as the attribute `PRESET_ATTRIBUTE` (not one of
    the model's layers), so that ``save_weights`` and ``save`` write
    ``{"builder", "quantization", "bits"}`` (JSON, its name) into
    `PRESET_GROUP`, and `load_weights` compares it. Loading ignores the
    record; files without one (older ones, tf_keras ``.h5`` files such as
    larq-zoo's, a ``.keras`` model re-saved after ``load_model``) load as
    before.
    """

    def __init__(self, record: Mapping[str, Any]) -> None:
        super().__init__(name=json.dumps(dict(record), sort_keys=True))
        self.record = dict(record)
        self.built = True

    def save_own_variables(self, store: Any) -> None:
        """Nothing: the record is the group's name, which Keras writes."""

    def load_own_variables(self, store: Any) -> None:
        """Nothing: `load_weights` reads the record before Keras loads."""


def finish(x: Any, args: Arguments, preset: Mapping[str, Any] | None = None) -> keras.Model:
    """The functional model from the input to ``x``, with `weights` loaded.

    ``preset`` (``{"quantization": ..., "bits": ...}``, for the builders of
    classic networks) goes into the model's `PresetRecord`.
    """
    model = keras.Model(args.inputs, x, name=args.name)
    if preset is not None:
        record = PresetRecord({"builder": args.builder, **preset})
        # Not through Keras's __setattr__: the record must not become a
        # layer of the model, only an attribute that saving visits.
        object.__setattr__(model, PRESET_ATTRIBUTE, record)
    if args.weights is not None:
        load_weights(model, args.weights, args.classes if args.include_top else None)
    return model


def load_weights(model: keras.Model, path: str, classes: int | None) -> None:
    """Loads ``path`` into ``model``; a file of another model raises ValueError.

    A file whose `PresetRecord` names another quantization preset than the
    model's raises ValueError naming both. When the file's "predictions"
    layer has a different number of outputs than ``classes``, the error
    names `classes`. A file saved with the top loads into the same network
    without it (Keras skips the classifier).
    """
    mismatch = _preset_mismatch(model, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
            error = None
        except Exception as raised:  # noqa: BLE001 (re-raised below as ValueError)
            error = raised
    if error is None and mismatch is not None:
        raise ValueError(
            f"Invalid weights={path!r}: {mismatch}; the variables of both are the same, "
            "their quantizers are not."
        )
    if error is None:
        for warning in caught:  # Keras's own warnings of a successful load
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        return
    found = _classes_in_file(model, path)
    if classes is not None and found is not None and found != classes:
        raise ValueError(
            f"Invalid classes={classes}: the weights file {path!r} was saved with classes={found}."
        ) from error
    raise ValueError(
        f"Invalid weights={path!r}: the file does not hold weights of {model.name} with "
        f"these arguments{'' if mismatch is None else f' ({mismatch})'} "
        f"({type(error).__name__}: {error})."
    ) from error


def _preset_mismatch(model: keras.Model, path: str) -> str | None:
    """What differs between the file's `PresetRecord` and the model's, None if nothing
    (or where either has none)."""
    ours = getattr(model, PRESET_ATTRIBUTE, None)
    theirs = _preset_in_file(path)
    if ours is None or theirs is None:
        return None
    keys = ("quantization", "bits")
    if [theirs.get(k) for k in keys] == [ours.record.get(k) for k in keys]:
        return None
    return (
        f"the file holds the weights of {describe_preset(theirs)}, not of "
        f"{describe_preset(ours.record)}"
    )


def describe_preset(record: Mapping[str, Any]) -> str:
    """``ResNet18(quantization='dorefa', bits=(1, 2))`` for a `PresetRecord`'s record."""
    arguments = [f"quantization={record.get('quantization')!r}"]
    bits = record.get("bits")
    if bits is not None:
        arguments.append(f"bits={tuple(bits)!r}")
    return f"{record.get('builder', 'a zoo model')}({', '.join(arguments)})"


@contextlib.contextmanager
def _weights_h5(path: str) -> Iterator[Any]:
    """The weights file at ``path`` open with h5py (a ``.keras`` file's ``model.weights.h5``)."""
    import h5py

    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            source: Any = io.BytesIO(archive.read("model.weights.h5"))
    else:
        source = path
    with h5py.File(source, "r") as f:
        yield f


def _preset_in_file(path: str) -> dict[str, Any] | None:
    """The `PresetRecord` a weights file holds, None without one (or unreadable)."""
    try:
        with _weights_h5(path) as f:
            group = f.get(PRESET_GROUP)
            name = None if group is None else group.attrs.get("name")
        record = json.loads(name) if isinstance(name, (str, bytes)) else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    return record if isinstance(record, dict) else None


def _classes_in_file(model: keras.Model, path: str) -> int | None:
    """The output width of the "predictions" layer as a weights file stores it.

    Keras stores a functional model's layers under ``layers/<class>_<k>``
    (the snake-case class name, numbered from the second of a class on), not
    under their names; the path of "predictions" follows from the layer order.
    A ``.keras`` file holds the same layout in its ``model.weights.h5``.
    """
    counts: dict[str, int] = {}
    entry = None
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        k = counts.get(base, 0)
        counts[base] = k + 1
        if layer.name == "predictions":
            entry = base if k == 0 else f"{base}_{k}"
    if entry is None:
        return None
    try:
        with _weights_h5(path) as f:
            kernel = f.get(f"layers/{entry}/vars/0")
            return None if kernel is None else int(kernel.shape[-1])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _snake_case(name: str) -> str:
    """Keras's snake case of a class name (``QuantConv2D`` -> ``quant_conv2d``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def scaled_filters(filters: tuple[int, ...], width_multiplier: Any) -> tuple[int, ...]:
    """``filters`` times ``width_multiplier``, rounded, at least 1 each.

    Raises:
        ValueError: ``width_multiplier`` is not a positive number.
    """
    multiplier = _validation.check_number("width_multiplier", width_multiplier, positive=True)
    return tuple(max(1, round(f * multiplier)) for f in filters)


def stage_blocks(blocks: Any, default: tuple[int, ...]) -> tuple[int, ...]:
    """``blocks`` (blocks per stage) checked, or ``default`` when None.

    Raises:
        ValueError: ``blocks`` is not ``len(default)`` integers >= 1.
    """
    if blocks is None:
        return default
    ok = isinstance(blocks, (tuple, list)) and len(blocks) == len(default)
    ok = ok and all(
        isinstance(b, numbers.Integral) and not isinstance(b, bool) and int(b) >= 1 for b in blocks
    )
    if not ok:
        raise ValueError(
            f"Invalid blocks={blocks!r}: expected None or {len(default)} integers >= 1 "
            f"(blocks per stage, {default} by default)."
        )
    return tuple(int(b) for b in blocks)


@contextlib.contextmanager
def no_constraint_warning() -> Iterator[None]:
    """Silences the layers' warning about a 1-bit kernel without a constraint.

    DoReFa-Net's 1-bit weights pass every gradient (identity STE), so the
    paper and larq-zoo train them unclipped.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".* has a binary .* but no .*")
        yield
