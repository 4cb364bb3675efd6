"""`tfqnn.export.to_tflite`: a trained Keras model to a `.tflite` with tfqnn's binary ops."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfqnn import _validation
from tfqnn._validation import check_int
from tfqnn.export import codebook_weights, composite, frozen_weights, int8_fusion, int8_weights
from tfqnn.export._schema import tflite_schema
from tfqnn.export.packed_graph import PackedNode
from tfqnn.export.plan import BinaryGroup, MultiBasisGroup, functional_of, plan_groups
from tfqnn.lite import custom_ops_in, load_library, spec


class ExportError(RuntimeError):
    """The converter's output is not what tfqnn expected (e.g. dropped custom ops)."""


def to_tflite(
    model: keras.Model,
    path: str | None = None,
    *,
    int8_representative_data: Any = None,
    batch_size: int | None = None,
    verbose: int | str = "auto",
) -> bytes:
    """Converts a trained Keras model to TFLite, binary layers as tfqnn custom ops.

    Every `QuantDense` and `QuantConv2D` whose input and kernel quantizers are
    both binary (`SteSign`, `ApproxSign`, `ScaledSign` on the kernel,
    `StochasticSign` at inference) becomes `TfqnnBdense` / `TfqnnBconv2d` on
    bitpacked weights; a following BatchNormalization, ReLU-like clamp and
    MaxPooling2D fold into it, and it writes bitpacked output when binary
    layers consume it (`tfqnn.export.plan`; a BatchNorm after its ReLU folds
    its positive scale, leaving one ADD). Max pools and channel
    concatenations read only by binary layers run on the bitpacked tensors
    (`TfqnnBMaxPool2d`, an int32 CONCATENATION of the parts' words:
    `tfqnn.export.packed_graph`). Everything else converts to TFLite
    builtins: float32, or int8 when `int8_representative_data` is given. The
    other tfqnn layers' kernels are quantized once, at export, and stored as
    constants of the quantized values (`tfqnn.export.frozen_weights`); those
    of at most 8 bits of dense layers, and power-of-two (INQ) kernels, are
    stored as int8 (or float16) and dequantized once (`tfqnn.export.int8_weights`).

    Recurrent layers (`QuantLSTM`, `QuantGRU`, `QuantSimpleRNN`, Keras's own,
    ``keras.layers.RNN`` of a tfqnn cell) become builtins: a ``WHILE`` loop
    over the time steps, which needs a fixed ``batch_size``, or with
    ``unroll=True`` a flat graph. Their quantized ``W`` and ``U`` of at most
    8 bits are stored as int8 with per-row scales, dequantized once for float
    ``FULLY_CONNECTED`` ops (`tfqnn.export.int8_weights`); other weights stay
    float32. A ``stateful=True`` layer's states become resource variables
    that start at their values at export and carry over from one invoke to
    the next (``batch_size`` must be the states' batch).

    Args:
        model: a built Sequential or functional Keras model.
        path: where to write the `.tflite` file (optional).
        int8_representative_data: samples (an array, or a list of arrays for
            several inputs) that calibrate full-integer quantization of the
            builtin ops; binary ops stay binary, reading and writing the int8
            tensors of their neighbours directly (`tfqnn.export.int8_fusion`).
            Inputs and outputs stay float32.
        batch_size: a fixed batch size for the signature; None keeps it
            dynamic (`resize_tensor_input` at run time).
        verbose: ``"auto"`` or 1 prints a line per stage (tracing,
            converting, checking) and a progress bar over the int8
            calibration samples; 2 the lines and one line for the
            calibration; 0 is silent.

    Returns:
        The model as bytes. Run it with `tfqnn.lite.Interpreter`.

    Raises:
        ValueError: a model without a graph, bad arguments, a recurrent
            layer without ``unroll=True`` and no ``batch_size``, or a
            stateful one whose states have another batch than ``batch_size``.
        ExportError: the converted file lacks the custom ops it should hold.

    Example:
        >>> data = tfqnn.export.to_tflite(model, "model.tflite")  # doctest: +SKIP
        >>> tfqnn.lite.Interpreter(model_content=data).predict(x)  # doctest: +SKIP
    """
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, low=1)
    verbose = _validation.check_verbose(verbose)
    say = print if verbose else _silent
    functional = functional_of(model)
    _check_stateful_batch(model, batch_size)
    if batch_size is None:
        _check_recurrent_batch(model)
    plan = plan_groups(model, fuse_residuals=int8_representative_data is None)
    groups, nodes = plan.groups, plan.nodes
    folded_ids = {id(n) for n in plan.folded}
    frozen_kernels = {
        id(node.operation): frozen_weights.quantized_kernels(node.operation)
        for node in nodes
        if id(node) not in groups and id(node) not in folded_ids
    }
    expected: dict[str, int] = {}
    serve = _serving_function(
        functional,
        nodes,
        groups,
        folded_ids,
        expected,
        frozen_kernels,
        int8=int8_representative_data is not None,
        packed_ops=plan.packed,
    )
    signature = [
        tf.TensorSpec([batch_size, *x.shape[1:]], x.dtype, name=_input_name(x, i))
        for i, x in enumerate(functional.inputs)
    ]
    say(f"to_tflite: tracing {model.name} ({len(groups)} binary layer groups)", flush=True)
    with tempfile.TemporaryDirectory() as directory:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", serve, input_signature=signature)
        archive.write_out(directory, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory, signature_keys=["serve"])
        converter.allow_custom_ops = True
        if int8_representative_data is not None:
            _configure_int8(converter, int8_representative_data, len(signature), verbose)
        say("to_tflite: converting", flush=True)
        data = converter.convert()
    if int8_representative_data is not None:
        data, _ = int8_fusion.fuse_int8_conversions(data)
    else:
        weights = int8_weights.quantized_recurrent_weights(model)
        for node in nodes:
            layer = node.operation
            weights += frozen_weights.low_bit_matrices(layer, frozen_kernels.get(id(layer), {}))
        data, _ = int8_weights.store_int8_weights(data, weights)
        kernels = codebook_weights.clustered_kernels(model)
        data, decoded = codebook_weights.store_codebook_weights(data, kernels)
        if decoded:
            expected[spec.CODEBOOK_DECODE] = decoded
    say("to_tflite: checking the custom ops", flush=True)
    counts = custom_ops_in(data, schema_module=tflite_schema())
    found = {k: v for k, v in counts.items() if k.startswith(spec.OP_PREFIX)}
    if found != expected:
        raise ExportError(
            f"The TFLite converter did not keep tfqnn's custom ops: expected {expected}, "
            f"found {found}. The tfl_fusable_op mechanism may have changed in this "
            f"TensorFlow version ({tf.__version__})."
        )
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    say(f"to_tflite: {len(data):,} bytes, custom ops {found}", flush=True)
    return data


def _silent(*args: Any, **kwargs: Any) -> None:
    """`print` for ``verbose=0``."""


def _check_recurrent_batch(model: keras.Model) -> None:
    """Raises ValueError for a looping RNN layer in a dynamic-batch export.

    TensorFlow's converter lowers the loop of a ``keras.layers.RNN`` (tfqnn's
    recurrent layers included) to a builtin ``WHILE`` only when the batch is
    fixed; with a dynamic batch it fails on the loop's tensor lists.
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.RNN) and not layer.unroll:
            raise ValueError(
                f"Invalid batch_size=None: layer {layer.name!r} ({type(layer).__name__}) "
                "loops over time steps, which TFLite's builtin WHILE runs only for a fixed "
                "batch; expected batch_size=1 (or another fixed size), or build the layer "
                "with unroll=True for a flat graph that keeps the batch dynamic."
            )


def _check_stateful_batch(model: keras.Model, batch_size: int | None) -> None:
    """Raises ValueError unless ``batch_size`` is the batch of every stateful layer's states.

    A stateful RNN keeps one state per sample of a fixed batch; the export
    stores them as TFLite resource variables of that shape.
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not (isinstance(layer, keras.layers.RNN) and layer.stateful and layer.states):
            continue
        batch = int(keras.tree.flatten(layer.states)[0].shape[0])
        if batch_size != batch:
            raise ValueError(
                f"Invalid batch_size={batch_size}: layer {layer.name!r} "
                f"({type(layer).__name__}) is stateful with states for a batch of {batch}; "
                f"expected batch_size={batch}."
            )


def _input_name(tensor: Any, index: int) -> str:
    name = getattr(tensor, "name", None) or f"input_{index}"
    return name.split(":")[0].replace("/", "_")


def _serving_function(
    functional: keras.Model,
    nodes: list[Any],
    groups: dict[int, BinaryGroup],
    folded_ids: set[int],
    expected: dict[str, int],
    kernels: dict[int, dict[str, np.ndarray]],
    int8: bool = False,
    packed_ops: dict[int, PackedNode] | None = None,
) -> Callable[..., Any]:
    """A function that evaluates the graph with binary groups as custom ops.

    `kernels` holds, by layer id, the quantized kernels that the other tfqnn
    layers read as constants (`tfqnn.export.frozen_weights`). With `int8`
    (int8 builtins), an average pool without padding becomes a depthwise
    convolution (`_average_pool_as_depthwise`). `packed_ops`: the max pools
    and concatenations that run on bitpacked tensors
    (`tfqnn.export.plan.GroupPlan`'s ``packed``).
    """
    packed_ops = packed_ops or {}

    def count(name: str) -> None:
        expected[name] = expected.get(name, 0) + 1

    def binary_op(
        group: BinaryGroup,
        x: tf.Tensor,
        weights: np.ndarray,
        multiplier: np.ndarray,
        bias: np.ndarray,
        output_type: str,
        clamps: dict[str, float | None],
        **bases: Any,
    ) -> tf.Tensor:
        layer = group.layer
        if group.bitpacked_output:
            bases["thresholds"] = group.output_thresholds
            if group.output_encoding != "thermometer":
                bases["output_encoding"] = group.output_encoding
        if group.residual is not None:
            bases["residual"] = residual_value(group)
            bases["post_bias"] = group.post_bias
        if group.is_conv:
            pad_values = int(layer.pad_values) if layer.padding == "same" else 1
            if isinstance(group, MultiBasisGroup) and group.op_pad_values is not None:
                pad_values = group.op_pad_values  # a DoReFa input's q = 0: every basis -1
            count(spec.BCONV2D)
            return composite.bconv2d(
                x,
                weights,
                multiplier,
                bias,
                group.in_channels,
                strides=layer.strides,
                dilations=layer.dilation_rate,
                padding=layer.padding,
                pad_values=pad_values,
                groups=layer.groups,
                output_type=output_type,
                clamp_min=clamps["clamp_min"],
                clamp_max=clamps["clamp_max"],
                **bases,
            )
        count(spec.BDENSE)
        return composite.bdense(
            x,
            weights,
            multiplier,
            bias,
            group.in_channels,
            output_type=output_type,
            clamp_min=clamps["clamp_min"],
            clamp_max=clamps["clamp_max"],
            **bases,
        )

    values: dict[int, Any] = {}

    def residual_value(group: BinaryGroup) -> tf.Tensor:
        """The traced value of the shortcut tensor that a group's op adds."""
        return tf.cast(values[id(group.residual)], tf.float32)

    # A group with a fused shortcut runs at its Add node, when the shortcut
    # (which may be computed after the group's head) is known.
    heads = {id(n): n for n in nodes if id(n) in groups}
    deferred = {
        id(g.output_node): heads[head] for head, g in groups.items() if g.residual is not None
    }

    # One TfqnnQuantize per (input tensor, thresholds, encoding): the branches of an
    # Inception block that read the same tensor share its bitpacking.
    # (The source tensor is kept with its result, so that its id stays its own.)
    packed: dict[tuple[int, bytes | None, str], tuple[tf.Tensor, tf.Tensor]] = {}

    def bitpacked(
        x: tf.Tensor, thresholds: np.ndarray | None = None, encoding: str = "thermometer"
    ) -> tf.Tensor:
        """``x`` bitpacked by one shared `TfqnnQuantize` (``x`` itself if packed already)."""
        if x.dtype == tf.int32:
            return x
        key = (id(x), None if thresholds is None else np.asarray(thresholds).tobytes(), encoding)
        if key not in packed:
            value = composite.quantize(tf.cast(x, tf.float32), thresholds, encoding)
            packed[key] = (x, value)
            count(spec.QUANTIZE)
        return packed[key][1]

    def run_multi_basis(group: MultiBasisGroup, x: tf.Tensor) -> tf.Tensor:
        """One binary op with N input and M weight bases on the thresholded input."""
        thresholds = group.input_thresholds
        x = bitpacked(x, thresholds, "thermometer" if thresholds is None else group.input_encoding)
        output_type = "bitpacked" if group.bitpacked_output else "float"
        clamps = dict(clamp_min=group.clamp_min, clamp_max=group.clamp_max)
        y = binary_op(
            group,
            x,
            group.packed_kernel(),
            group.op_multipliers().reshape(-1),
            group.bias,
            output_type,
            clamps,
            input_bases=len(group.input_scales),
            weight_bases=len(group.kernel_bases),
        )
        return finish(group, y)

    def finish(group: BinaryGroup, y: tf.Tensor) -> tf.Tensor:
        """What follows a group's op (or its summed ops): pool, post-ReLU BatchNorm's
        ``t``, activation, and the layer's dtype unless the output stays bitpacked."""
        if group.pool is not None:
            pool = group.pool
            if group.bitpacked_output:
                y = composite.bmaxpool2d(y, pool.pool_size, pool.strides, pool.padding)
                count(spec.BMAXPOOL2D)
            else:
                y = pool(y)
        if group.post_bias is not None and group.residual is None:
            y = y + tf.constant(group.post_bias)
        if group.activation is not None:
            y = group.activation(y)
        if not group.bitpacked_output:
            y = tf.cast(y, group.layer.compute_dtype)
        return y

    def run_group(group: BinaryGroup, x: tf.Tensor) -> tf.Tensor:
        if isinstance(group, MultiBasisGroup):
            return run_multi_basis(group, x)
        x = bitpacked(x)
        output_type = "bitpacked" if group.bitpacked_output else "float"
        clamps = dict(clamp_min=group.clamp_min, clamp_max=group.clamp_max)
        y = binary_op(
            group, x, group.packed_weights, group.multiplier, group.bias, output_type, clamps
        )
        return finish(group, y)

    def run_packed(operation: Any, args: Any, how: PackedNode) -> tf.Tensor:
        """A max pool (`TfqnnBMaxPool2d`) or a concatenation (int32) of bitpacked tensors,
        each part from a word boundary."""
        if isinstance(operation, keras.layers.MaxPooling2D):
            count(spec.BMAXPOOL2D)
            x = bitpacked(args[0], how.thresholds)
            return composite.bmaxpool2d(
                x, operation.pool_size, operation.strides, operation.padding
            )
        return tf.concat([bitpacked(part) for part in args[0]], axis=-1)

    def serve(*inputs: tf.Tensor) -> Any:
        expected.clear()  # the function may be traced more than once
        values.clear()
        packed.clear()
        values.update({id(x): y for x, y in zip(functional.inputs, inputs)})
        for graph_node in nodes:
            # A fused group runs at its Add, from its head node.
            node = deferred.get(id(graph_node), graph_node)
            if node is graph_node and (
                id(node) in folded_ids
                or (id(node) in groups and groups[id(node)].residual is not None)
            ):
                continue  # computed inside its group
            if any(id(x) not in values for x in node.input_tensors):
                continue
            args, kwargs = node.arguments.fill_in(values)
            group = groups.get(id(node))
            if group is not None:
                outputs = [run_group(group, args[0])]
                node_out = group.output_node.outputs
            elif id(node) in packed_ops:
                outputs = [run_packed(node.operation, args, packed_ops[id(node)])]
                node_out = node.outputs
            elif int8 and _is_valid_average_pool(node.operation, args):
                outputs = [_average_pool_as_depthwise(node.operation, args[0])]
                node_out = node.outputs
            elif _is_static_flatten(node.operation, args):
                # One RESHAPE with a constant shape instead of Keras's
                # shape arithmetic (SHAPE, STRIDED_SLICE, PACK) on the batch.
                outputs = [tf.reshape(args[0], [-1, int(np.prod(args[0].shape[1:]))])]
                node_out = node.outputs
            else:
                operation = node.operation
                with frozen_weights.frozen(operation, kernels.get(id(operation), {})):
                    result = operation(*args, **_inference(operation, kwargs))
                outputs = tf.nest.flatten(result)
                node_out = node.outputs
            for ref, value in zip(node_out, outputs):
                values[id(ref)] = value
        results = [values[id(x)] for x in functional.outputs]
        return results[0] if len(results) == 1 else results

    return serve


def _is_static_flatten(operation: Any, args: Any) -> bool:
    return (
        isinstance(operation, keras.layers.Flatten)
        and operation.data_format == "channels_last"
        and len(args) == 1
        and all(d is not None for d in args[0].shape[1:])
    )


def _is_valid_average_pool(operation: Any, args: Any) -> bool:
    """An `AveragePooling2D` whose every window lies inside the input.

    ``valid`` padding, or ``same`` padding that pads nothing (Bi-Real Net's
    2x2, stride 2 pools of an even input).
    """
    if not (
        type(operation) is keras.layers.AveragePooling2D
        and operation.data_format == "channels_last"
        and len(args) == 1
        and len(args[0].shape) == 4
        and args[0].shape[-1] is not None
    ):
        return False
    if operation.padding == "valid":
        return True
    sizes = args[0].shape[1:3]
    if operation.padding != "same" or any(d is None for d in sizes):
        return False
    return all(
        (-(-int(n) // s) - 1) * s + k - int(n) <= 0
        for n, k, s in zip(sizes, operation.pool_size, operation.strides)
    )


def _average_pool_as_depthwise(layer: keras.layers.AveragePooling2D, x: tf.Tensor) -> tf.Tensor:
    """An average pool without padding as a depthwise convolution, weights ``1 / (kh kw)``.

    The same sums (no padding: every window has k x k taps). XNNPACK runs an
    int8 depthwise convolution but leaves an int8 ``AVERAGE_POOL_2D`` to
    LiteRT's slower reference kernel (benchmarks/README.md).
    """
    kh, kw = layer.pool_size
    channels = int(x.shape[-1])
    weights = np.full((kh, kw, channels, 1), 1.0 / (kh * kw), np.float32)
    strides = [1, *layer.strides, 1]
    return tf.nn.depthwise_conv2d(x, tf.constant(weights), strides, "VALID")


def _inference(operation: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(operation, keras.layers.Layer):
        kwargs = dict(kwargs)
        kwargs["training"] = False
    return kwargs


def _configure_int8(
    converter: tf.lite.TFLiteConverter, data: Any, num_inputs: int, verbose: int = 0
) -> None:
    samples = list(data) if isinstance(data, (list, tuple)) else [data]
    samples = [np.asarray(s, np.float32) for s in samples]
    if len(samples) != num_inputs:
        raise ValueError(
            f"Invalid int8_representative_data: expected one array per model input "
            f"({num_inputs}), got {len(samples)}."
        )
    count = samples[0].shape[0]
    if count < 1 or any(s.shape[0] != count for s in samples):
        counts = [s.shape[0] for s in samples]
        raise ValueError(
            f"Invalid int8_representative_data: expected arrays with the same number (>= 1) "
            f"of samples, got {counts}."
        )

    used = min(count, 500)

    def representative() -> Iterator[list[np.ndarray]]:
        progress = keras.utils.Progbar(used, verbose=verbose, unit_name="sample")
        for i in range(used):
            yield [s[i : i + 1] for s in samples]
            progress.update(i + 1)

    # Calibration runs the float model in TensorFlow's interpreter, which
    # needs tfqnn's kernels through the op registerer.
    load_library()
    converter.target_spec._experimental_custom_op_registerers = ["TfqnnRegisterOps"]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
