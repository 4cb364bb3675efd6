"""Which layers of a Keras model become tfqnn custom ops, and what folds into them.

A *binary group* is a `QuantDense` or `QuantConv2D` whose input and kernel
quantizers are both binary, followed by the layers that fold into its output
transform ``y = clamp(dot * multiplier + bias)`` (docs/lite_ops.md):

* the kernel's scale (``ScaledSign``: ``q = alpha[o] * sign(w)``) and the bias;
* a `BatchNormalization` over the channel axis:
  ``s = gamma / sqrt(var + eps)``, ``multiplier *= s``,
  ``bias = s * (bias - mean) + beta``;
* a ReLU / ReLU6 / hard_tanh as the clamp;
* a `MaxPooling2D` anywhere in that chain, run after the transform, which is
  exact because the transform is non-decreasing per channel: a BatchNorm
  after the pool folds only if all its ``s >= 0``;
* a `BatchNormalization` after a ReLU (QuickNet's blocks), when all its
  ``s > 0``: ``s * max(z, 0) + t = max(s * z, 0) + t``, so ``s`` folds into
  multiplier and bias and ``t = beta - s * mean`` stays as one builtin
  ``ADD`` after the op (``post_bias``), in place of a ``MUL`` and an ``ADD``.

The group writes bitpacked output when every consumer of its result (directly
or through a `Flatten` of a multiple of 32 channels) is itself a binary group,
which then skips its own input bitpacking, or a max pool or concatenation that
runs on bitpacked tensors (`tfqnn.export.packed_graph`, `bitpacked_nodes`; a
group reading a concatenation with gaps gets gapped weights). Consumers that
are multi-basis groups with the same input thresholds ``t [N]`` get N
bitpacked bases, bit 1 where ``y < t_n`` (``output_thresholds``; through a
`Flatten` only for N = 1), or the k binary digits of the level for
``N = 2^k - 1`` when the consumers read a binary code (``output_encoding``;
not through a max pool or a packed concatenation: the digits are not
monotone in ``y``, so such a group writes float output, the pool stays a
builtin and the consumers' `TfqnnQuantize` writes the digits).

A layer whose input quantizer is a DoReFa activation of at most
`thermometer.MAX_BITS` (4) bits and whose kernel is binary (DoReFa-Net's W1A2)
is a multi-basis group of k input bases, the binary digits of the level
(``2^k - 1`` thermometer bases with ``thermometer.ENCODING = "thermometer"``;
`tfqnn.export.thermometer`): the constant half of its input goes into the
bias, and Keras's zero padding (``q = 0``) becomes the op's ``pad_values=-1``.

A convolution group whose (folded) output is the only input of an ``Add`` of
two tensors (Bi-Real Net's and ResNetE's shortcut: binary conv, BatchNorm,
``+ x``) absorbs the ``Add`` when the other tensor has the output's static
shape and both are float32 (``residual``): the op adds it after its
transform, ``out = clamp(dot * multiplier + bias) + residual``, and writes
float output. A post-ReLU BatchNorm's ``t`` (QuickNet's blocks) goes with it
as the op's ``post_bias``: ``out = (y + t) + residual``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tfqnn import activations as tfqnn_activations
from tfqnn.export import packed_graph, thermometer
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.lite import reference
from tfqnn.quantizers import MultiBinaryActivation


@dataclasses.dataclass
class BinaryGroup:
    """A binary layer with what folds into it."""

    layer: keras.layers.Layer
    packed_weights: np.ndarray  # int32, [N, W] (dense) or [O, KH, KW, W] (conv)
    in_channels: int  # K of dense, C of conv
    multiplier: np.ndarray  # float32 [N]
    bias: np.ndarray  # float32 [N]
    clamp_min: float | None = None
    clamp_max: float | None = None
    activation: Any = None  # a non-foldable activation applied after the op
    pool: keras.layers.Layer | None = None  # a MaxPooling2D run after the transform
    folded: list[Any] = dataclasses.field(default_factory=list)  # Keras nodes absorbed
    output_node: Any = None  # the Keras node whose output the group yields
    bitpacked_output: bool = False
    post_bias: np.ndarray | None = None  # float32 [N], added after the op (a post-ReLU BN)
    # Bitpacked output only: one output basis per threshold (bit where y < t); None: y < 0.
    output_thresholds: np.ndarray | None = None
    # How the output thresholds become bases (lite.spec.ENCODINGS): the consumers' input encoding.
    output_encoding: str = "thermometer"
    # A fused shortcut Add: the Keras tensor added to the op's float output.
    residual: Any = None

    @property
    def is_conv(self) -> bool:
        return isinstance(self.layer, QuantConv2D)

    @property
    def out_channels(self) -> int:
        return int(self.packed_weights.shape[0])


@dataclasses.dataclass
class MultiBasisGroup(BinaryGroup):
    """A layer whose kernel is ``sum_m alpha_m B_m`` and input ``sum_n beta_n A_n``.

    ABC-Net (`MultiBinary` kernel, `MultiBinaryActivation` input) or a
    sketched kernel (`ResidualSign`) with binary inputs, run as one
    `TfqnnBdense` / `TfqnnBconv2d` with ``input_bases`` N and
    ``weight_bases`` M (docs/lite_ops.md): ``A_n`` has bit 1 where
    ``x < thresholds[n]`` (one `TfqnnQuantize` with the thresholds, or the
    bitpacked output of the group before), the dot product of ``A_n`` with
    ``B_m`` is scaled by ``alpha_m[o] beta_n multiplier[o]`` and the N x M
    terms are summed in the op's output transform, which adds ``bias`` and
    clamps. ``multiplier`` and ``bias`` hold what folds in after the layer
    (BatchNorm).
    """

    kernel_bases: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int32))
    kernel_scales: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))  # [M, O]
    thresholds: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(1, np.float32))
    input_scales: np.ndarray = dataclasses.field(default_factory=lambda: np.ones(1))  # [N]
    # The op's pad_values when it is not Keras's (a DoReFa input: q = 0 is every basis at -1).
    op_pad_values: int | None = None
    # How `thresholds` become the input bases (lite.spec.ENCODINGS; "binary": a DoReFa
    # input as the digits of its level, one basis per input scale).
    input_encoding: str = "thermometer"

    @property
    def out_channels(self) -> int:
        return int(self.kernel_bases.shape[1])

    @property
    def input_thresholds(self) -> np.ndarray | None:
        """The thresholds of its input bases; None for a plain sign (one basis, t = 0)."""
        if self.thresholds.shape == (1,) and self.thresholds[0] == 0:
            return None
        return self.thresholds

    def packed_kernel(self) -> np.ndarray:
        """int32 ``[M * O, ...]``: the M packed kernel bases, basis-major."""
        bases = np.asarray(self.kernel_bases, np.int32)
        return bases.reshape(-1, *bases.shape[2:])

    def op_multipliers(self) -> np.ndarray:
        """float32 ``[N, M, O]``: ``alpha_m[o] beta_n multiplier[o]``, rounded once."""
        alpha = np.asarray(self.kernel_scales, np.float64)
        beta = np.asarray(self.input_scales, np.float64)
        folded = np.asarray(self.multiplier, np.float64)
        return (beta[:, None, None] * alpha[None] * folded).astype(np.float32)


@dataclasses.dataclass
class GroupPlan:
    """What `plan_groups` found in a model."""

    groups: dict[int, BinaryGroup]  # the binary groups, by the id of their head node
    nodes: list[Any]  # the graph's operation nodes, inputs first (`nodes_in_order`)
    folded: list[Any]  # the nodes folded into a group
    # The max pools and concatenations that run on bitpacked tensors, by node id
    # (`bitpacked_nodes`).
    packed: dict[int, packed_graph.PackedNode]


def functional_of(model: keras.Model) -> keras.Model:
    """The functional graph of a Sequential or functional model."""
    if isinstance(model, keras.Sequential):
        if not model.built or getattr(model, "_functional", None) is None:
            raise ValueError(
                "Invalid model: expected a Sequential model with an input shape; start it "
                "with keras.Input(...) or call it on data before exporting."
            )
        return model._functional
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        return model
    raise ValueError(
        f"Invalid model={type(model).__name__}: expected a Sequential or functional Keras "
        "model (a subclassed model has no graph to read)."
    )


def nodes_in_order(functional: keras.Model) -> list[Any]:
    """The graph's operation nodes, inputs first."""
    nodes = []
    for depth in sorted(functional._nodes_by_depth, reverse=True):
        for node in functional._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                nodes.append(node)
    return nodes


def plan_groups(model: keras.Model, *, fuse_residuals: bool = True) -> GroupPlan:
    """The binary groups of `model` and the nodes that run on their bitpacked outputs.

    ``fuse_residuals=False`` leaves shortcut ``Add`` layers as builtins.
    """
    nodes, consumers, model_outputs = _graph(model)

    def single_consumer(node: Any) -> Any:
        out = node.outputs
        if len(out) != 1 or id(out[0]) in model_outputs:
            return None
        users = consumers.get(id(out[0]), [])
        return users[0] if len(users) == 1 else None

    groups: dict[int, BinaryGroup] = {}
    claimed: set[int] = set()
    for node in nodes:
        if id(node) in claimed:
            continue
        group = _binary_group(node.operation) or _multi_basis_group(node.operation)
        if group is None:
            continue
        group.output_node = node
        _fold_followers(group, single_consumer)
        if fuse_residuals:
            _fold_residual(group, single_consumer)
        claimed.update(id(n) for n in group.folded)
        groups[id(node)] = group

    if thermometer.AFTER_POOL == "thermometer":
        for group in groups.values():
            users = consumers.get(id(group.output_node.outputs[0]), [])
            readers = [groups.get(id(u)) for u in users]
            if group.pool is not None and users and all(_reads_digits(r) for r in readers):
                for reader in readers:
                    _read_thermometer(reader)  # type: ignore[arg-type]

    group_thresholds = {head: _input_thresholds(group) for head, group in groups.items()}
    packed = _packed_nodes(nodes, consumers, model_outputs, groups)
    for head, parts in packed_graph.input_parts(nodes, packed).items():
        if head in groups:  # a group reading a concatenation with gaps
            group = groups[head]
            group.packed_weights, group.in_channels = packed_graph.gapped_weights(
                group.packed_weights, parts
            )

    def thresholds_of(users: list[Any]) -> tuple[bool, np.ndarray | None, str]:
        """Whether all `users` are groups (or max pools and concatenations run on
        bitpacked tensors) reading the same input bases, their thresholds and
        encoding."""
        ok, thresholds = packed_graph.common_thresholds(users, group_thresholds, packed)
        encodings = {
            _input_encoding(groups[id(u)]) if id(u) in groups else "thermometer" for u in users
        }
        if len(encodings) != 1:
            return False, None, "thermometer"
        return ok, thresholds, encodings.pop()

    for group in groups.values():
        tensor = group.output_node.outputs[0]
        if id(tensor) in model_outputs:
            continue
        users = consumers.get(id(tensor), [])
        ok, thresholds, encoding = thresholds_of(users)
        if not ok and len(users) == 1 and isinstance(users[0].operation, keras.layers.Flatten):
            flat_users = consumers.get(id(users[0].outputs[0]), [])
            ok, thresholds, encoding = thresholds_of(flat_users)
            ok = (
                ok
                and group.out_channels % 32 == 0
                and id(users[0].outputs[0]) not in model_outputs
                and (thresholds is None or thresholds.size == 1)
            )
        # Binary digits are not monotone in y: a max pool cannot run on them packed.
        pooled_digits = group.pool is not None and encoding == "binary"
        group.bitpacked_output = (
            ok
            and group.post_bias is None
            and group.activation is None
            and group.residual is None
            and not pooled_digits
        )
        if group.bitpacked_output:
            group.output_thresholds = thresholds
            if thresholds is not None:
                group.output_encoding = encoding
    return GroupPlan(groups, nodes, [n for g in groups.values() for n in g.folded], packed)


def bitpacked_nodes(
    model: keras.Model, groups: dict[int, BinaryGroup]
) -> dict[int, packed_graph.PackedNode]:
    """The max pools and concatenations of `model` that run on bitpacked tensors.

    By node id (`tfqnn.export.packed_graph`). ``groups`` is `plan_groups`'s,
    whose readers of concatenations with gaps already hold gapped weights;
    its result's ``packed`` is this map already (this walks the graph again).
    """
    return _packed_nodes(*_graph(model), groups)


def _graph(model: keras.Model) -> tuple[list[Any], dict[int, list[Any]], set[int]]:
    """The operation nodes inputs first, the readers of each tensor (by id) and the
    ids of the model's outputs."""
    functional = functional_of(model)
    nodes = nodes_in_order(functional)
    consumers: dict[int, list[Any]] = {}
    for node in nodes:
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    return nodes, consumers, {id(t) for t in functional.outputs}


def _packed_nodes(
    nodes: list[Any],
    consumers: dict[int, list[Any]],
    model_outputs: set[int],
    groups: dict[int, BinaryGroup],
) -> dict[int, packed_graph.PackedNode]:
    # Binary digits are not monotone in the input: groups that read them take
    # no packed max pool or concatenation.
    group_thresholds = {
        head: _input_thresholds(group) for head, group in groups.items() if not _reads_digits(group)
    }
    folded = {id(n) for group in groups.values() for n in group.folded}
    # One-basis, ungrouped layers take gapped input (packed_graph.gapped_weights).
    gap_groups = {
        head
        for head, group in groups.items()
        if type(group) is BinaryGroup and not (group.is_conv and group.layer.groups > 1)
    }
    return packed_graph.packed_nodes(
        nodes, consumers, model_outputs, group_thresholds, folded, gap_groups
    )


def _input_thresholds(group: BinaryGroup) -> np.ndarray | None:
    """The thresholds of a group's input bases: None for a sign (bit where x < 0)."""
    return group.input_thresholds if isinstance(group, MultiBasisGroup) else None


def _input_encoding(group: BinaryGroup) -> str:
    """How a group's input bases code its thresholds (`tfqnn.lite.spec.ENCODINGS`)."""
    return group.input_encoding if isinstance(group, MultiBasisGroup) else "thermometer"


def _reads_digits(group: BinaryGroup | None) -> bool:
    """Whether `group` reads a DoReFa input as binary digits."""
    return isinstance(group, MultiBasisGroup) and group.input_encoding == "binary"


def _read_thermometer(group: MultiBasisGroup) -> None:
    """Makes a group that reads binary digits read the thermometer code of its thresholds.

    ``q = 1/2 + sum_j s_j / (2n)`` over the ``n`` thresholds: the offset (in
    the bias) and the padding stay.
    """
    group.input_scales = thermometer.base_scales(group.thresholds.size, "thermometer")
    group.input_encoding = "thermometer"


# ---- one layer -------------------------------------------------------------


def _is_sign(quantizer: Any) -> bool:
    """True when `quantizer` computes exactly sign (sign(0) = +1) at inference."""
    if quantizer is None or getattr(quantizer, "precision", None) != 1:
        return False
    probe = np.array([[-2.0, -1.0, -0.3, -0.0, 0.0, 0.25, 1.0, 3.0]], np.float32)
    out = keras.ops.convert_to_numpy(quantizer(probe, training=False))
    return bool(np.array_equal(out, np.where(probe >= 0, 1.0, -1.0)))


def _binary_kernel(layer: keras.layers.Layer) -> tuple[np.ndarray, np.ndarray] | None:
    """(packed weights, per-channel scale) of a binary kernel, or None.

    The quantized kernel must be `alpha[o] * (+-1)` with `alpha[o] > 0`
    constant over each output channel.
    """
    quantizer = layer.kernel_quantizer
    if quantizer is None or quantizer.precision != 1:
        return None
    q = keras.ops.convert_to_numpy(quantizer(layer.kernel, training=False)).astype(np.float64)
    out_axis = q.ndim - 1  # Dense [K, N], Conv2D [KH, KW, C/g, O]
    magnitude = np.abs(q)
    alpha = magnitude.max(axis=tuple(range(out_axis)))
    if np.any(alpha <= 0) or not np.array_equal(magnitude, np.broadcast_to(alpha, q.shape)):
        return None
    signs = np.moveaxis(np.where(q < 0, -1.0, 1.0), out_axis, 0)  # [N, ...]
    return reference.bitpack(signs.astype(np.float32)), alpha


def _binary_in_channels(layer: keras.layers.Layer, pad_values: tuple[float, ...]) -> int | None:
    """The input channels of a Dense or Conv2D that binary ops can run, or None.

    A convolution must be channels-last with "valid" padding or "same"
    padding by one of ``pad_values``, and grouped only in groups of whole
    32-bit words of channels.
    """
    if not isinstance(layer, QuantConv2D):
        return int(layer.kernel.shape[0])
    if layer.data_format != "channels_last" or layer.padding not in ("same", "valid"):
        return None
    if layer.padding == "same" and layer.pad_values not in pad_values:
        return None
    channels = int(layer.kernel.shape[-2] * layer.groups)
    if layer.groups > 1 and (channels // layer.groups) % 32:
        return None
    return channels


def _bias(layer: keras.layers.Layer) -> np.ndarray | float:
    """The bias a binary op adds in its output transform: after ``bias_quantizer``, at inference."""
    if not layer.use_bias:
        return 0.0
    return keras.ops.convert_to_numpy(layer.quantized_bias(training=False)).astype(np.float64)


def _binary_group(layer: keras.layers.Layer) -> BinaryGroup | None:
    if type(layer) not in (QuantDense, QuantConv2D) or not _is_sign(layer.input_quantizer):
        return None
    channels = _binary_in_channels(layer, pad_values=(0.0, 1.0))
    if channels is None:
        return None
    kernel = _binary_kernel(layer)
    if kernel is None:
        return None
    packed, alpha = kernel
    bias = _bias(layer)
    group = BinaryGroup(
        layer=layer,
        packed_weights=packed,
        in_channels=int(channels),
        multiplier=alpha,
        bias=np.broadcast_to(np.asarray(bias, np.float64), alpha.shape).copy(),
    )
    clamp = _clamp_of(layer.activation)
    if clamp is None:
        group.activation = layer.activation
    else:
        group.clamp_min, group.clamp_max = clamp
    return _as_float32(group)


def _multi_basis_group(layer: keras.layers.Layer) -> MultiBasisGroup | None:
    """The layer as M x N binary ops, or None.

    Its kernel must be a sum of M binary bases with per-output-channel (or
    per-tensor) scales (a quantizer with ``decompose``, or a binary kernel
    for M = 1) and its input a sign, a `MultiBinaryActivation` or a DoReFa
    activation of at most `thermometer.MAX_BITS` bits (its code: k binary
    digits, or ``2^k - 1`` thermometer bases, the constant ``offset *
    sum(W)`` in the bias, Keras's zero padding as the op's
    ``pad_values=-1``); a sign input and a binary
    kernel is a plain binary group. "same" padding needs ``pad_values=0``
    (each op pads with zeros), or 1 for sign and DoReFa inputs.
    """
    if type(layer) not in (QuantDense, QuantConv2D):
        return None
    input_quantizer = layer.input_quantizer
    code = thermometer.dorefa_bases(input_quantizer)
    pad_values: tuple[float, ...]
    if isinstance(input_quantizer, MultiBinaryActivation) and input_quantizer.shifts is not None:
        shifts = keras.ops.convert_to_numpy(input_quantizer.shifts).astype(np.float64)
        thresholds = (0.5 - shifts).astype(np.float32)
        input_scales = keras.ops.convert_to_numpy(input_quantizer.scales).astype(np.float64)
        sign_input, pad_values = False, (0.0,)
    elif _is_sign(input_quantizer):
        thresholds, input_scales, sign_input = np.zeros(1, np.float32), np.ones(1), True
        pad_values = (0.0, 1.0)
    elif code is not None:
        thresholds, input_scales, sign_input = code.thresholds, code.scales, False
        pad_values = (0.0, 1.0)
    else:
        return None
    channels = _binary_in_channels(layer, pad_values=pad_values)
    if channels is None:
        return None
    kernel = _kernel_bases(layer)
    if kernel is None or (sign_input and kernel[0].shape[0] == 1):
        return None
    packed, alpha = kernel
    out_channels = alpha.shape[1]
    bias = np.broadcast_to(np.asarray(_bias(layer), np.float64), (out_channels,)).copy()
    if code is not None:
        # A DoReFa input's constant offset reads the kernel's sum per output channel.
        bias += code.offset * _kernel_sums(layer, packed, alpha)
    group = MultiBasisGroup(
        layer=layer,
        packed_weights=packed[0],
        in_channels=int(channels),
        multiplier=np.ones(out_channels),
        bias=bias,
        kernel_bases=packed,
        kernel_scales=alpha,
        thresholds=thresholds,
        input_scales=input_scales,
        input_encoding="thermometer" if code is None else code.encoding,
    )
    if code is not None and isinstance(layer, QuantConv2D) and layer.padding == "same":
        group.op_pad_values = code.pad_values(layer.pad_values)
    clamp = _clamp_of(layer.activation)
    if clamp is None:
        group.activation = layer.activation
    else:
        group.clamp_min, group.clamp_max = clamp
    _as_float32(group)
    return group


def _kernel_sums(layer: keras.layers.Layer, packed: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``sum(W)`` per output channel of ``W = sum_m alpha_m B_m`` (``[O]``).

    ``sum(B_m[o]) = K - 2 popcount(B_m[o])`` over the ``K`` weights of a
    channel, from the packed bases ``[M, O, ...]`` (bit 1 = -1).
    """
    weights_per_channel = int(np.prod(layer.kernel.shape[:-1]))
    popcounts = np.unpackbits(packed.reshape(*packed.shape[:2], -1).view(np.uint8), axis=-1)
    basis_sums = weights_per_channel - 2 * popcounts.sum(axis=-1, dtype=np.int64)  # [M, O]
    return np.sum(alpha * basis_sums, axis=0)


def _kernel_bases(layer: keras.layers.Layer) -> tuple[np.ndarray, np.ndarray] | None:
    """(packed bases ``[M, O, ...]``, scales ``[M, O]``) of a multi-basis kernel, or None."""
    quantizer = layer.kernel_quantizer
    decompose = getattr(quantizer, "decompose", None)
    if decompose is None:
        binary = _binary_kernel(layer)
        return None if binary is None else (binary[0][None], binary[1][None])
    scales, bases = (
        keras.ops.convert_to_numpy(t).astype(np.float64) for t in decompose(layer.kernel)
    )
    # [M, ...kernel], the kernel Dense [K, N] or Conv2D [KH, KW, C/g, O]
    flat = scales.reshape(scales.shape[0], -1, scales.shape[-1])
    alpha = flat[:, 0]  # [M, O]
    if not np.array_equal(flat, np.broadcast_to(alpha[:, None], flat.shape)):
        return None  # scales that vary within an output channel
    signs = np.moveaxis(bases, -1, 1)  # [M, O, ...]
    packed = np.stack([reference.bitpack(s.astype(np.float32)) for s in signs])
    return packed, alpha


def _as_float32(group: BinaryGroup) -> BinaryGroup:
    """Rounds the group's multiplier and bias (folded in float64) to the op's float32."""
    group.multiplier = np.asarray(group.multiplier, np.float32)
    group.bias = np.asarray(group.bias, np.float32)
    return group


# ---- folding -----------------------------------------------------------------


def _clamp_of(activation: Any) -> tuple[float | None, float | None] | None:
    """(clamp_min, clamp_max) of a foldable activation; (None, None) for linear."""
    if activation is None or activation is keras.activations.linear:
        return None, None
    if activation is keras.activations.relu:
        return 0.0, None
    if activation is keras.activations.relu6:
        return 0.0, 6.0
    if activation is tfqnn_activations.hard_tanh:
        return -1.0, 1.0
    return None


def _layer_clamp(layer: keras.layers.Layer) -> tuple[float | None, float | None] | None:
    if isinstance(layer, keras.layers.Activation):
        clamp = _clamp_of(layer.activation)
        return None if clamp == (None, None) else clamp
    if isinstance(layer, keras.layers.ReLU) and layer.negative_slope == 0 and layer.threshold == 0:
        max_value = layer.max_value
        return 0.0, None if max_value is None else float(max_value)
    return None


def _fold_followers(group: BinaryGroup, single_consumer: Callable[[Any], Any]) -> None:
    """Absorbs the BatchNorm, clamp and max-pool layers after the binary layer."""
    if group.activation is not None:
        return  # a non-foldable activation ends the chain
    seen: set[str] = set()
    if group.clamp_min is not None or group.clamp_max is not None:
        seen.update({"clamp", "bn", "pool"})  # the layer's own clamp: a post-ReLU BN only
    node = group.output_node
    while True:
        nxt = single_consumer(node)
        if nxt is None:
            return
        layer = nxt.operation
        if isinstance(layer, keras.layers.BatchNormalization) and "bn" not in seen:
            scale = _batch_norm_scale(layer, group)
            if scale is None or ("pool" in seen and np.any(scale[0] < 0)):
                return
            s, shift = scale
            group.multiplier = group.multiplier.astype(np.float64) * s
            group.bias = s * (group.bias.astype(np.float64) - shift[0]) + shift[1]
            _as_float32(group)
            seen.add("bn")
        elif _is_pool(layer, group) and "pool" not in seen:
            group.pool = layer
            seen.add("pool")
        elif (
            isinstance(layer, keras.layers.BatchNormalization)
            and "clamp" in seen
            and "post_bn" not in seen
            and (group.clamp_min, group.clamp_max) == (0.0, None)
        ):
            scale = _batch_norm_scale(layer, group)
            if scale is None or not np.all(scale[0] > 0):
                return
            s, (mean, beta) = scale
            group.multiplier = group.multiplier.astype(np.float64) * s
            group.bias = group.bias.astype(np.float64) * s
            group.post_bias = np.asarray(beta - s * mean, np.float32)
            _as_float32(group)
            seen.update({"post_bn", "pool"})
        elif (clamp := _layer_clamp(layer)) is not None and "clamp" not in seen:
            group.clamp_min, group.clamp_max = clamp
            seen.update({"clamp", "bn"})  # nothing affine may follow a clamp
        else:
            return
        group.folded.append(nxt)
        group.output_node = nxt
        node = nxt


def _fold_residual(group: BinaryGroup, single_consumer: Callable[[Any], Any]) -> None:
    """Absorbs the shortcut ``Add`` after a convolution group's folded chain.

    Only for float output with nothing after the transform but a post-ReLU
    bias (no pool or activation) and an ``Add`` of exactly two float32
    tensors of the same static shape.
    """
    if not group.is_conv or group.pool is not None or group.activation is not None:
        return
    nxt = single_consumer(group.output_node)
    if nxt is None or type(nxt.operation) is not keras.layers.Add:
        return
    inputs = list(nxt.input_tensors)
    ours = group.output_node.outputs[0]
    if len(inputs) != 2 or sum(t is ours for t in inputs) != 1:
        return
    other = inputs[1] if inputs[0] is ours else inputs[0]
    shape = tuple(ours.shape)
    if (
        tuple(other.shape) != shape
        or any(d is None for d in shape[1:])
        or len(shape) != 4
        or nxt.operation.compute_dtype != "float32"
        or group.layer.compute_dtype != "float32"
        or any(str(t.dtype) != "float32" for t in (ours, other, nxt.outputs[0]))
    ):
        return
    group.residual = other
    group.folded.append(nxt)
    group.output_node = nxt


def _is_pool(layer: keras.layers.Layer, group: BinaryGroup) -> bool:
    return (
        group.is_conv
        and isinstance(layer, keras.layers.MaxPooling2D)
        and layer.data_format == "channels_last"
        and layer.padding in ("same", "valid")
    )


def _batch_norm_scale(
    layer: keras.layers.Layer, group: BinaryGroup
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None:
    """(s, (mean, beta)) of an inference-mode BatchNorm over the last axis, or None."""
    rank = len(layer.input.shape) if hasattr(layer, "input") else None
    axis = layer.axis if isinstance(layer.axis, int) else None
    if axis is None or (axis != -1 and (rank is None or axis != rank - 1)):
        return None
    n = group.out_channels
    to_np = keras.ops.convert_to_numpy
    gamma = to_np(layer.gamma).astype(np.float64) if layer.scale else np.ones(n)
    beta = to_np(layer.beta).astype(np.float64) if layer.center else np.zeros(n)
    mean = to_np(layer.moving_mean).astype(np.float64)
    var = to_np(layer.moving_variance).astype(np.float64)
    if mean.shape != (n,):
        return None
    s = gamma / np.sqrt(var + layer.epsilon)
    return s, (mean, beta)
