"""Model summary by precision: parameters, memory and MACs per bit width.

`summary(model)` prints a table and returns a `ModelSummary`. Weights count
at the precision their quantizer stores them in (a binary kernel is 1 bit per
value, a bias with a ``bias_quantizer`` its bits; other biases, BatchNorm
statistics and unquantized weights keep their dtype's width). A layer's MACs count at ``max(input bits, weight bits)``, so a MAC is
1-bit only when both operands are.

Binary work: a MAC of two binary operands is one binary MAC, and a MAC of a
k-bit DoReFa activation (``DoReFa(k, "activations")``) with a binary kernel
is k binary MACs, *bit-serial*: the input ``q = L / (2^k - 1)`` is
``1/2 + sum_i 2^i / (2 (2^k - 1)) s_i``, k binary bases ``s_i = +-1`` (the
digits of the level ``L``), so the layer is k binary layers plus a
constant (how `tfqnn.export` runs it for k up to
``tfqnn.export.thermometer.MAX_BITS``, docs/lite_ops.md). Such MACs count
at k bits in ``macs``, and in the binary share (``binary_mac_fraction``,
each MAC once) and in ``binary_macs`` (k each).

Recurrent layers (`keras.layers.RNN` and its subclasses, tfqnn's
`QuantLSTM` and the others, and `keras.layers.Bidirectional` of them) count
their cells' weights, and the MACs of one time step: ``W``'s at
``max(input bits, W bits)`` and ``U``'s at ``max(state bits, U bits)``.
Multiply by the sequence length for a whole sequence.

A `keras.layers.Wrapper` with a ``weight_precisions()`` method (tfqnn.codebook's
``Clustered`` and ``Pruned``) counts its weights at the precisions it gives
(a clustered kernel at its index bits; 0 bits for a variable it does not
store) and the MACs of the layer it wraps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import keras

from tfqnn.layers import selection
from tfqnn.layers.base import QuantizerMixin
from tfqnn.quantizers import DoReFa


@dataclasses.dataclass
class LayerSummary:
    """One layer's row of the summary.

    Attributes:
        name, class_name: the layer's name and class.
        output_shape: the output shape, None where Keras does not know it.
        input_bits: bits of the quantized input, None without input quantizer.
        weight_bits: the fewest bits among its quantized kernels (not the
            bias), None without one.
        params: parameter count by bits per value.
        memory_bytes: bytes to store the parameters at their precision.
        macs: multiply-accumulates per sample by precision.
        bit_serial_macs: the MACs (among ``macs``) of a k-bit DoReFa
            activation with a binary kernel, k binary MACs each.
        binary_macs: binary MACs per sample: one per MAC of binary
            operands, k per bit-serial MAC.
    """

    name: str
    class_name: str
    output_shape: tuple[int | None, ...] | None
    input_bits: int | None
    weight_bits: int | None
    params: dict[int, int]
    memory_bytes: float
    macs: dict[int, int]
    bit_serial_macs: int = 0
    binary_macs: int = 0


@dataclasses.dataclass
class ModelSummary:
    """A model's summary: its layers and totals.

    Attributes:
        layers: the `LayerSummary` of each layer.
        params: total parameter count by bits per value.
        macs: total MACs per sample by precision.
        float32_bytes: size of all parameters as float32.
        quantized_bytes: size of all parameters at their precision.
        compression_ratio: ``float32_bytes / quantized_bytes``.
        binary_mac_fraction: share of MACs that run as binary MACs: both
            operands binary, or bit-serial (a binary kernel on a k-bit DoReFa
            activation); each MAC counts once.
        binary_macs: binary MACs per sample (a bit-serial MAC counts k).
    """

    name: str
    layers: list[LayerSummary]
    params: dict[int, int]
    macs: dict[int, int]
    float32_bytes: int
    quantized_bytes: float
    compression_ratio: float
    binary_mac_fraction: float
    binary_macs: int = 0

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return _format(self)


def summary(model: keras.Model, print_fn: Callable[[str], Any] | None = print) -> ModelSummary:
    """Prints and returns the summary of a built Keras model by precision.

    Args:
        model: a built `keras.Model` (Sequential, functional or subclassed).
        print_fn: called with the table's text; None prints nothing.

    Returns:
        A `ModelSummary`.

    Example:
    >>> model = keras.Sequential([
    ...     keras.Input((64,)),
    ...     tfqnn.layers.QuantDense(32, input_quantizer="ste_sign",
    ...         kernel_quantizer="ste_sign", kernel_constraint="weight_clip"),
    ...     tfqnn.layers.QuantDense(10)])
    >>> result = tfqnn.summary(model, print_fn=None)
    >>> result.params   # 64*32 binary kernel values; biases and the float layer in 32 bits
    {1: 2048, 32: 362}
    >>> result.macs     # binary MACs of the first layer, float MACs of the second
    {1: 2048, 32: 320}
    >>> round(result.compression_ratio, 2)
    5.66
    """
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} is not built: call it on data or build it "
            "(model.build(input_shape)) before summarising it."
        )
    rows = [_summarize_layer(layer) for layer in _leaf_layers(model)]
    params = _add_counts(row.params for row in rows)
    macs = _add_counts(row.macs for row in rows)
    float32_bytes = 4 * sum(params.values())
    quantized_bytes = sum(row.memory_bytes for row in rows)
    total_macs = sum(macs.values())
    binary_share = macs.get(1, 0) + sum(row.bit_serial_macs for row in rows)
    result = ModelSummary(
        name=model.name,
        layers=rows,
        params=params,
        macs=macs,
        float32_bytes=float32_bytes,
        quantized_bytes=quantized_bytes,
        compression_ratio=float32_bytes / quantized_bytes if quantized_bytes else 1.0,
        binary_mac_fraction=binary_share / total_macs if total_macs else 0.0,
        binary_macs=sum(row.binary_macs for row in rows),
    )
    if print_fn is not None:
        print_fn(str(result))
    return result


def _leaf_layers(model: keras.Model) -> Iterator[keras.Layer]:
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _summarize_layer(layer: keras.Layer) -> LayerSummary:
    cells = selection.recurrent_cells(layer)
    if cells:
        return _summarize_recurrent(layer, cells)
    wrapped = _stored_differently(layer)
    quantized = isinstance(layer, QuantizerMixin) or wrapped is not None
    precisions = layer.weight_precisions() if quantized else {}
    if isinstance(wrapped, QuantizerMixin):
        precisions = {**wrapped.weight_precisions(), **precisions}
    params = _params_by_bits(layer, precisions)
    input_bits = _quantizer_bits(wrapped or layer, "input_quantizer")
    bias = getattr(wrapped or layer, "bias", None)
    stored = [
        bits
        for path, bits in precisions.items()
        if bits > 0 and (bias is None or path != bias.path)
    ]
    weight_bits = min(stored) if stored else None
    macs = _macs(wrapped or layer, input_bits, precisions, shapes=layer)
    bit_serial = _bit_serial_macs(wrapped or layer, precisions, shapes=layer)
    return LayerSummary(
        name=layer.name,
        class_name=type(layer).__name__,
        output_shape=_shape(layer, "output"),
        input_bits=input_bits,
        weight_bits=weight_bits,
        params=params,
        memory_bytes=sum(bits * count for bits, count in params.items()) / 8,
        macs=macs,
        bit_serial_macs=bit_serial,
        binary_macs=macs.get(1, 0) + (input_bits or 0) * bit_serial,
    )


def _stored_differently(layer: keras.Layer) -> keras.Layer | None:
    """The layer inside a wrapper that states its weights' precisions, else None."""
    if isinstance(layer, keras.layers.Wrapper) and hasattr(layer, "weight_precisions"):
        return layer.layer
    return None


def _summarize_recurrent(layer: keras.Layer, cells: list[keras.Layer]) -> LayerSummary:
    """A recurrent layer's row: its cells' weights, the MACs of one time step."""
    precisions: dict[str, int] = {}
    for cell in cells:
        if isinstance(cell, QuantizerMixin):
            precisions.update(cell.weight_precisions())
    params = _params_by_bits(layer, precisions)
    input_bits = _quantizer_bits(cells[0], "input_quantizer")
    macs: dict[int, int] = {}
    for cell in cells:
        operands = (
            (cell.kernel, _quantizer_bits(cell, "input_quantizer")),
            (cell.recurrent_kernel, _quantizer_bits(cell, "state_quantizer")),
        )
        for matrix, operand_bits in operands:
            weight_bits = precisions.get(matrix.path, _dtype_bits(matrix.dtype))
            bits = max(operand_bits or 32, weight_bits)
            macs[bits] = macs.get(bits, 0) + math.prod(matrix.shape)
    return LayerSummary(
        name=layer.name,
        class_name=type(layer).__name__,
        output_shape=_shape(layer, "output"),
        input_bits=input_bits,
        weight_bits=min(precisions.values()) if precisions else None,
        params=params,
        memory_bytes=sum(bits * count for bits, count in params.items()) / 8,
        macs=macs,
        binary_macs=macs.get(1, 0),
    )


def _params_by_bits(layer: keras.Layer, precisions: dict[str, int]) -> dict[int, int]:
    """The layer's parameter counts keyed by bits per value: a quantized
    weight's precision, else its dtype's width; a weight at 0 bits is not stored."""
    params: dict[int, int] = {}
    for weight in layer.weights:
        bits = precisions.get(weight.path, _dtype_bits(weight.dtype))
        if bits == 0:
            continue
        params[bits] = params.get(bits, 0) + math.prod(weight.shape)
    return params


def _quantizer_bits(layer: keras.Layer, name: str) -> int | None:
    """The precision of the layer's quantizer ``name``, None without one."""
    quantizer = getattr(layer, name, None) if isinstance(layer, QuantizerMixin) else None
    return None if quantizer is None else int(quantizer.precision)


def _macs(
    layer: keras.Layer,
    input_bits: int | None,
    precisions: dict[str, int],
    shapes: keras.Layer | None = None,
) -> dict[int, int]:
    """MACs per sample, keyed by max(input bits, weight bits); ``shapes`` (the
    layer by default) is the layer whose input and output shapes count."""
    macs: dict[int, int] = {}
    for kernel, count in _kernel_macs(layer, shapes):
        bits = max(input_bits or 32, precisions.get(kernel.path, _dtype_bits(kernel.dtype)))
        macs[bits] = macs.get(bits, 0) + count
    return macs


def _bit_serial_macs(
    layer: keras.Layer, precisions: dict[str, int], shapes: keras.Layer | None = None
) -> int:
    """The MACs of a binary kernel on a k-bit DoReFa activation (k >= 2): k binary MACs each.

    Only kernels that read the quantized input: a separable convolution's
    pointwise kernel reads the depthwise output.
    """
    quantizer = (
        getattr(layer, "input_quantizer", None) if isinstance(layer, QuantizerMixin) else None
    )
    if type(quantizer) is not DoReFa or quantizer.mode != "activations" or quantizer.bits < 2:
        return 0
    pointwise = getattr(layer, "pointwise_kernel", None)
    return sum(
        count
        for kernel, count in _kernel_macs(layer, shapes)
        if kernel is not pointwise and precisions.get(kernel.path, _dtype_bits(kernel.dtype)) == 1
    )


def _kernel_macs(layer: keras.Layer, shapes: keras.Layer | None = None) -> list[tuple[Any, int]]:
    """(kernel variable, MACs per sample) of each kernel of the layer; ``shapes`` as `_macs`."""
    output_shape = _sample_shape(shapes or layer, "output")
    input_shape = _sample_shape(shapes or layer, "input")
    kernels: list[tuple[Any, int]] = []  # (variable, MACs per sample)
    if isinstance(layer, keras.layers.Dense) and output_shape:
        kernels.append((layer.kernel, math.prod(output_shape) * layer.kernel.shape[0]))
    elif isinstance(layer, keras.layers.SeparableConv2D) and output_shape:
        spatial = _spatial_size(layer, output_shape)
        kernels.append((layer.depthwise_kernel, spatial * math.prod(layer.depthwise_kernel.shape)))
        kernels.append(
            (layer.pointwise_kernel, math.prod(output_shape) * layer.pointwise_kernel.shape[-2])
        )
    elif isinstance(layer, keras.layers.DepthwiseConv2D) and output_shape:
        kernels.append((layer.kernel, math.prod(output_shape) * math.prod(layer.kernel.shape[:-2])))
    elif isinstance(layer, keras.layers.Conv2DTranspose) and input_shape:
        kernels.append((layer.kernel, math.prod(input_shape) * math.prod(layer.kernel.shape[:-1])))
    elif (
        isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D))
        and output_shape
    ):
        kernels.append((layer.kernel, math.prod(output_shape) * math.prod(layer.kernel.shape[:-1])))
    return kernels


def _spatial_size(layer: keras.Layer, sample_shape: tuple[int, ...]) -> int:
    """The number of spatial positions of one sample's feature map."""
    channels_last = layer.data_format == "channels_last"
    return math.prod(sample_shape[:-1] if channels_last else sample_shape[1:])


def _shape(layer: keras.Layer, which: str) -> tuple[int | None, ...] | None:
    """The layer's ``which`` ("input" or "output") shape, None unless known but for the batch."""
    try:
        shape = tuple(getattr(layer, which).shape)
    except (AttributeError, ValueError):
        return None
    return shape if all(d is not None for d in shape[1:]) else None


def _sample_shape(layer: keras.Layer, which: str) -> tuple[int, ...] | None:
    """`_shape` without the batch axis."""
    shape = _shape(layer, which)
    return None if shape is None else tuple(int(d) for d in shape[1:] if d is not None)


def _dtype_bits(dtype: Any) -> int:
    return _BITS.get(keras.backend.standardize_dtype(dtype), 32)


_BITS = {
    "float16": 16,
    "bfloat16": 16,
    "float32": 32,
    "float64": 64,
    "int8": 8,
    "uint8": 8,
    "int16": 16,
    "int32": 32,
    "int64": 64,
    "bool": 8,
}


def _add_counts(dicts: Iterable[dict[int, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for counts in dicts:
        for bits, count in counts.items():
            total[bits] = total.get(bits, 0) + count
    return dict(sorted(total.items()))


def _format_counts(counts: dict[int, int]) -> str:
    if not counts:
        return "0"
    return " ".join(f"{bits}b:{_thousands(count)}" for bits, count in sorted(counts.items()))


def _thousands(n: int) -> str:
    return f"{n:,}"


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"


def _format(result: ModelSummary) -> str:
    header = (
        "Layer (type)",
        "Output shape",
        "In bits",
        "W bits",
        "Params by bits",
        "Memory",
        "MACs by bits",
    )
    rows = [header]
    for row in result.layers:
        rows.append(
            (
                f"{row.name} ({row.class_name})",
                str(row.output_shape) if row.output_shape else "?",
                "-" if row.input_bits is None else str(row.input_bits),
                "-" if row.weight_bits is None else str(row.weight_bits),
                _format_counts(row.params),
                _format_bytes(row.memory_bytes),
                _format_counts(row.macs),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"Model: {result.name}"]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    for i, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append(rule)
    lines.append(rule)
    lines.append(
        f"Total params: {_thousands(result.total_params)} ({_format_counts(result.params)})"
    )
    lines.append(
        f"Total MACs per sample: {_thousands(result.total_macs)} ({_format_counts(result.macs)})"
    )
    lines.append(f"Float32 size: {_format_bytes(result.float32_bytes)}")
    lines.append(f"Quantized size: {_format_bytes(result.quantized_bytes)}")
    lines.append(f"Compression ratio: {result.compression_ratio:.2f}x")
    lines.append(f"Binary MACs: {100 * result.binary_mac_fraction:.2f} %")
    if result.binary_macs != result.macs.get(1, 0):
        lines.append(
            f"Binary MACs with bit-serial inputs (k per MAC of a k-bit DoReFa input): "
            f"{_thousands(result.binary_macs)}"
        )
    return "\n".join(lines)
