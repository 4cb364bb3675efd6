"""Numpy reference of tfqnn's TFLite custom ops: the definition the kernels must match.

Bit layout (docs/lite_ops.md). A binary tensor of shape ``[..., C]`` is stored
as int32 ``[..., W]`` with ``W = ceil(C / 32)``: channel ``c`` is bit
``c % 32`` (lowest bit first) of word ``c // 32``. A set bit is -1, a clear
bit +1, so sign(0) = +1. The padding bits (channels ``C .. 32W-1``) are 0. For
two packed vectors of ``K`` true channels::

    dot = sum_c x[c] * w[c] = K - 2 * popcount(x XOR w)

Output transform. Bdense and Bconv2d map the dot product of output channel
``o`` to::

    y = float32(dot) * multiplier[o] + bias[o]    # float32, two roundings, no FMA
    y = min(max(y, clamp_min), clamp_max)

and write ``y`` as float32 (``"float"``), as int8 ``clamp(round_half_away(
float32(y / scale)) + zero_point, -128, 127)`` (``"int8"``), or bitpacked
with bit 1 where ``y < 0`` (``"bitpacked"``; -0.0 gives bit 0).

>>> bitpack(np.array([-1.0, 2.0, 0.0, -0.5], np.float32))
array([9], dtype=int32)
>>> unpack(np.array([9], np.int32), 4)
array([-1.,  1.,  1., -1.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfqnn._validation import check_int
from tfqnn.lite import spec
from tfqnn.lite.spec import (
    MAX_INDEX_BITS,
    check_bitpack_input,
    check_channels,
    check_filter_words,
    check_groups,
    check_output_transform,
    check_output_type,
    check_packed,
    check_pad_values,
    check_padding,
    check_padding_bits,
    check_pair,
    check_vector,
    packed_index_bytes,
    packed_words,
    window_geometry,
)


def _popcount(words: np.ndarray) -> np.ndarray:
    """Number of set bits of each int32 word (np.bitwise_count of a signed int counts |x|)."""
    return np.bitwise_count(np.asarray(words, np.int32).view(np.uint32))


# ---- quantize / dequantize ---------------------------------------------------


def bitpack(x: Any, zero_point: int | None = None) -> np.ndarray:
    """Packs ``x [..., C]`` into int32 ``[..., ceil(C/32)]``.

    Bit 1 where ``x < 0`` for a float ``x``; for an int8 ``x``, where
    ``x < zero_point`` (default 0). Padding bits are 0.
    """
    x, zero_point = check_bitpack_input(x, zero_point)
    negative = x < 0 if zero_point is None else x.astype(np.int32) < zero_point
    channels = x.shape[-1]
    words = packed_words(channels)
    bits = np.zeros(x.shape[:-1] + (32 * words,), np.uint32)
    bits[..., :channels] = negative
    bits = bits.reshape(x.shape[:-1] + (words, 32))
    packed = (bits << np.arange(32, dtype=np.uint32)).sum(axis=-1, dtype=np.uint32)
    return packed.view(np.int32)


def unpack(packed: Any, channels: int) -> np.ndarray:
    """Unpacks int32 ``[..., W]`` into float32 ``[..., channels]`` of +-1.0.

    ``channels`` must be in ``(32(W-1), 32W]``; padding bits are not read.
    """
    packed = check_packed("packed", packed)
    words = packed.shape[-1]
    channels = check_channels("channels", channels, words)
    bits = (packed.view(np.uint32)[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    bits = bits.reshape(packed.shape[:-1] + (32 * words,))[..., :channels]
    return np.where(bits == 1, np.float32(-1.0), np.float32(1.0))


def quantize(x: Any, zero_point: int | None = None) -> np.ndarray:
    """The TfqnnQuantize op: `bitpack`."""
    return bitpack(x, zero_point)


def dequantize(packed: Any, channels: int) -> np.ndarray:
    """The TfqnnDequantize op: `unpack`."""
    return unpack(packed, channels)


# ---- output transform ----------------------------------------------------------


def output_transform(
    dot: Any,
    multiplier: Any,
    bias: Any,
    *,
    clamp_min: float = -np.inf,
    clamp_max: float = np.inf,
    output_type: str = "float",
    int8_scale: float = 1.0,
    int8_zero_point: int = 0,
) -> np.ndarray:
    """Maps integer dot products ``[..., N]`` to the op's output (module docstring).

    Returns float32 ``[..., N]``, int8 ``[..., N]`` or int32 ``[..., ceil(N/32)]``.
    """
    dot = np.asarray(dot)
    if not np.issubdtype(dot.dtype, np.integer):
        raise ValueError(f"Invalid dot.dtype={dot.dtype}: expected an integer array.")
    if dot.ndim < 1 or dot.shape[-1] < 1:
        raise ValueError(f"Invalid dot.shape={dot.shape}: expected [..., N] with N >= 1.")
    transform = check_output_transform(
        dot.shape[-1],
        multiplier,
        bias,
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        output_type=output_type,
        int8_scale=int8_scale,
        int8_zero_point=int8_zero_point,
    )

    # float32 arrays: numpy rounds the product and then the sum (no FMA).
    y = dot.astype(np.float32) * transform.multiplier + transform.bias
    y = np.minimum(np.maximum(y, transform.clamp_min), transform.clamp_max)
    return _write(y, transform)


# ---- binary dense ----------------------------------------------------------------


def bdense(
    x_packed: Any,
    weights_packed: Any,
    multiplier: Any,
    bias: Any,
    in_features: int,
    *,
    clamp_min: float = -np.inf,
    clamp_max: float = np.inf,
    output_type: str = "float",
    int8_scale: float = 1.0,
    int8_zero_point: int = 0,
) -> np.ndarray:
    """The TfqnnBdense op: ``x_packed [..., W]`` times ``weights_packed [N, W]``.

    ``dot[..., n] = K - 2 popcount(x XOR w[n])`` with ``K = in_features``, then
    `output_transform`. Leading dimensions of ``x`` are kept.
    """
    x = check_packed("x_packed", x_packed)
    weights = check_packed("weights_packed", weights_packed, ndim=2)
    words = x.shape[-1]
    if weights.shape[1] != words:
        raise ValueError(
            f"Invalid weights_packed.shape={weights.shape}: expected (N, {words}), "
            "the words per row of x_packed."
        )
    in_features = check_channels("in_features", in_features, words)
    check_padding_bits("x_packed", x, in_features)
    check_padding_bits("weights_packed", weights, in_features)

    xor = x[..., None, :] ^ weights  # [..., N, W]
    dot = in_features - 2 * _popcount(xor).sum(axis=-1, dtype=np.int64)
    return output_transform(
        dot,
        multiplier,
        bias,
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        output_type=output_type,
        int8_scale=int8_scale,
        int8_zero_point=int8_zero_point,
    )


# ---- binary conv2d and max pooling ---------------------------------------------------


def _pad_2d(
    x: np.ndarray,
    window: tuple[str, tuple[int, int]],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    padding: str,
    value: int,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Pads axes 1 and 2 of ``x`` as `spec.window_geometry` says, with ``value``.

    ``window`` is the window argument's name and (height, width). Returns the
    padded array, a bool mask [Hp, Wp] of the real (unpadded) pixels and the
    output size (height, width).
    """
    name, size = window
    rows, cols = window_geometry(name, size, x.shape[1:3], strides, dilations, padding)
    pad_width = [(rows.pad_before, rows.pad_after), (cols.pad_before, cols.pad_after)]
    padded = np.pad(x, [(0, 0), *pad_width, (0, 0)], constant_values=value)
    real = np.pad(np.ones(x.shape[1:3], bool), pad_width, constant_values=False)
    return padded, real, (rows.out_size, cols.out_size)


def bconv2d(
    x_packed: Any,
    filter_packed: Any,
    multiplier: Any,
    bias: Any,
    channels_in: int,
    *,
    strides: int | tuple[int, int] = (1, 1),
    dilations: int | tuple[int, int] = (1, 1),
    padding: str = "valid",
    pad_values: int = 1,
    groups: int = 1,
    clamp_min: float = -np.inf,
    clamp_max: float = np.inf,
    output_type: str = "float",
    int8_scale: float = 1.0,
    int8_zero_point: int = 0,
    residual: Any = None,
    post_bias: Any = None,
    y_scale: float | None = None,
    y_zero_point: int = 0,
    residual_scale: float | None = None,
    residual_zero_point: int = 0,
    post_bias_scale: float | None = None,
    post_bias_zero_point: int = 0,
    biased_scale: float | None = None,
    biased_zero_point: int = 0,
    residual_relu: bool = False,
) -> np.ndarray:
    """The TfqnnBconv2d op: binary 2-D convolution, NHWC input, OHWI filter.

    ``x_packed [B, H, W, ceil(C/32)]``, ``filter_packed [O, KH, KW, ceil((C/groups)/32)]``.
    The dot product of an output pixel sums ``Cg - 2 popcount(x_tap XOR w_tap)``
    over its ``KH * KW`` taps (``Cg = C/groups``, the group's input channels); a
    padding tap is the +1 pixel (word 0) when ``pad_values = 1``, adds nothing
    when ``pad_values = 0`` and is the -1 pixel (adds ``-sum(w)``) when
    ``pad_values = -1``. Then `output_transform`, output NHWC.

    ``residual`` (option ``residual`` 1, float output only): float32 of the
    output's shape, added after the clamp, ``out = y + residual`` rounded
    once to float32 (a fused shortcut ``ADD``); with ``post_bias`` (float32
    ``[O]``, the op's sixth input) ``out = (y + post_bias) + residual``.
    With ``output_type="int8"`` the residual is int8 (``residual_scale``,
    ``residual_zero_point``): ``y`` is written as int8 with ``y_scale`` and
    ``y_zero_point`` and the result is `int8_add` of it and the residual into
    ``int8_scale`` / ``int8_zero_point`` (the unfused file's int8 ``ADD``);
    an int8 ``post_bias`` ``[O]`` (``post_bias_scale``, ``post_bias_zero_point``)
    is added to ``y`` first by `int8_add` into ``biased_scale`` /
    ``biased_zero_point``; ``residual_relu`` clamps the int8 sum at its zero
    point (the ``ADD``'s fused ReLU).
    """
    x = check_packed("x_packed", x_packed, ndim=4)
    filt = check_packed("filter_packed", filter_packed, ndim=4)
    batch, height, width, words = x.shape
    channels_in = check_channels("channels_in", channels_in, words)
    out_channels, kernel_h, kernel_w, filter_words = filt.shape
    groups = check_groups(groups, channels_in, out_channels)
    check_filter_words(filt, channels_in, groups)
    group_channels = channels_in // groups
    strides = check_pair("strides", strides)
    dilations = check_pair("dilations", dilations)
    padding = check_padding(padding)
    pad_values = check_pad_values(pad_values)
    check_padding_bits("x_packed", x, channels_in)
    check_padding_bits("filter_packed", filt, group_channels)

    # Padding pixels are word 0 (+1 in every channel); `real` marks the input pixels.
    padded, real, (out_h, out_w) = _pad_2d(
        x, ("kernel_size", (kernel_h, kernel_w)), strides, dilations, padding, 0
    )
    rows = np.arange(out_h) * strides[0]
    cols = np.arange(out_w) * strides[1]
    group_out = out_channels // groups

    dot = np.zeros((batch, out_h, out_w, out_channels), np.int64)
    for g in range(groups):
        x_group = padded[..., g * filter_words : (g + 1) * filter_words]
        outs = slice(g * group_out, (g + 1) * group_out)
        for i in range(kernel_h):
            for j in range(kernel_w):
                r = rows + i * dilations[0]
                c = cols + j * dilations[1]
                taps = x_group[:, r][:, :, c]  # [B, Ho, Wo, Fw]
                xor = taps[..., None, :] ^ filt[outs, i, j]  # [B, Ho, Wo, Og, Fw]
                mismatches = _popcount(xor).sum(axis=-1, dtype=np.int64)
                tap_dot = group_channels - 2 * mismatches  # [B, Ho, Wo, Og]
                if pad_values != 1:  # the +1 pixel's sum(w) becomes 0 or -sum(w)
                    inside = real[np.ix_(r, c)][None, :, :, None]
                    tap_dot = np.where(inside, tap_dot, pad_values * tap_dot)
                dot[..., outs] += tap_dot
    int8_residual = residual is not None and check_output_type(output_type) == "int8"
    if int8_residual:
        return _int8_residual_output(
            dot,
            multiplier,
            bias,
            clamp_min,
            clamp_max,
            (int8_scale, int8_zero_point),
            (y_scale, y_zero_point),
            (residual, residual_scale, residual_zero_point),
            (post_bias, post_bias_scale, post_bias_zero_point),
            (biased_scale, biased_zero_point),
            residual_relu,
        )
    out = output_transform(
        dot,
        multiplier,
        bias,
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        output_type=output_type,
        int8_scale=int8_scale,
        int8_zero_point=int8_zero_point,
    )
    if residual is None:
        if post_bias is not None:
            raise ValueError("Invalid post_bias: it needs a residual.")
        return out
    if check_output_type(output_type) != "float":
        raise ValueError(
            f"Invalid output_type={output_type!r}: a residual input needs 'float' or 'int8' output."
        )
    shortcut = np.asarray(residual)
    if shortcut.dtype != np.float32 or shortcut.shape != out.shape:
        raise ValueError(
            f"Invalid residual: expected float32 of shape {out.shape} (the output's), "
            f"got {shortcut.dtype} {shortcut.shape}."
        )
    if post_bias is not None:
        out = out + check_vector("post_bias", post_bias, out.shape[-1])
    return out + shortcut


def int8_add(a: Any, b: Any, params: spec.Int8Add) -> np.ndarray:
    """The int8 ``ADD`` of two int8 arrays of one shape (`spec.Int8Add`, XNNPACK's rounding)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.int8 or b.dtype != np.int8 or a.shape != b.shape:
        raise ValueError(
            f"Invalid a, b: expected two int8 arrays of one shape, got {a.dtype} {a.shape} "
            f"and {b.dtype} {b.shape}."
        )
    acc = (
        np.int64(params.bias)
        + a.astype(np.int64) * params.a_multiplier
        + b.astype(np.int64) * params.b_multiplier
    )
    out = (acc >> params.shift) + params.output_zero_point  # arithmetic shift: round half up
    return np.clip(out, params.output_min, params.output_max).astype(np.int8)


def _int8_residual_output(
    dot: np.ndarray,
    multiplier: Any,
    bias: Any,
    clamp_min: float,
    clamp_max: float,
    output: tuple[float, int],
    y: tuple[float | None, int],
    residual: tuple[Any, float | None, int],
    post_bias: tuple[Any, float | None, int],
    biased: tuple[float | None, int],
    relu: bool = False,
) -> np.ndarray:
    """Bconv2d's int8 output with an int8 residual: ``int8_add(int8(y), residual)``.

    With an int8 post-bias: ``int8_add(int8_add(int8(y), post_bias), residual)``.
    """
    shortcut, residual_scale, residual_zero_point = residual
    if y[0] is None or residual_scale is None:
        raise ValueError(
            "Invalid y_scale, residual_scale: an int8 residual needs both (positive floats)."
        )
    q = output_transform(
        dot,
        multiplier,
        bias,
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        output_type="int8",
        int8_scale=y[0],
        int8_zero_point=y[1],
    )
    shortcut = np.asarray(shortcut)
    if shortcut.dtype != np.int8 or shortcut.shape != q.shape:
        raise ValueError(
            f"Invalid residual: expected int8 of shape {q.shape} (the output's), "
            f"got {shortcut.dtype} {shortcut.shape}."
        )
    summand = y
    if post_bias[0] is not None:
        shift = np.asarray(post_bias[0])
        if shift.dtype != np.int8 or shift.shape != q.shape[-1:]:
            raise ValueError(
                f"Invalid post_bias: expected int8 of shape {q.shape[-1:]} with an int8 "
                f"residual, got {shift.dtype} {shift.shape}."
            )
        if post_bias[1] is None or biased[0] is None:
            raise ValueError(
                "Invalid post_bias_scale, biased_scale: an int8 post_bias needs both "
                "(positive floats)."
            )
        to_biased = spec.int8_add_params(y[0], y[1], post_bias[1], post_bias[2], *biased)
        q = int8_add(q, np.broadcast_to(shift, q.shape), to_biased)
        summand = (biased[0], biased[1])
    params = spec.int8_add_params(
        summand[0], summand[1], residual_scale, residual_zero_point, output[0], output[1], relu
    )
    return int8_add(q, shortcut, params)


def bmaxpool2d(
    x_packed: Any,
    pool_size: int | tuple[int, int],
    strides: int | tuple[int, int],
    padding: str = "valid",
) -> np.ndarray:
    """The TfqnnBMaxPool2d op: max pooling of packed +-1 values, int32 NHWC.

    The max of +-1 values is -1 only if all are -1, so each output word is the
    AND of the words in its window; padding positions are ignored (they hold
    all-ones words, the identity of AND). ``pool_size``, ``strides``: an int
    or a pair (height, width).
    """
    x = check_packed("x_packed", x_packed, ndim=4)
    pool = check_pair("pool_size", pool_size)
    strides = check_pair("strides", strides)
    padding = check_padding(padding)
    padded, _, (out_h, out_w) = _pad_2d(x, ("pool_size", pool), strides, (1, 1), padding, -1)
    rows = np.arange(out_h) * strides[0]
    cols = np.arange(out_w) * strides[1]
    out = np.full((x.shape[0], out_h, out_w, x.shape[3]), -1, np.int32)
    for i in range(pool[0]):
        for j in range(pool[1]):
            out &= padded[:, rows + i][:, :, cols + j]
    return out


# ---- multi-basis layers: a composite of the ops above --------------------------------


def threshold_quantize(
    x: Any,
    thresholds: Any,
    *,
    scale: float = 1.0,
    zero_point: int | None = None,
    encoding: str = "thermometer",
) -> np.ndarray:
    """TfqnnQuantize with thresholds: N bitpacked bases of ``x [..., C]``.

    Returns int32 ``[..., N * ceil(C/32)]``: basis ``n`` is the words
    ``[n W, (n + 1) W)``, bit 1 where ``x < thresholds[n]``. For an int8 ``x``
    (``zero_point`` given) the value compared is ``float32(q - zero_point) *
    float32(scale)``, the dequantized input. ``encoding="binary"`` (T = 2^k - 1
    non-decreasing thresholds): N = k bases, basis ``i`` with bit 1 where bit
    ``i`` of the level ``L = #{j : not x < t_j}`` is 0 (`spec.ENCODINGS`).
    """
    t = spec.check_thresholds("thresholds", thresholds)
    x, zero_point = check_bitpack_input(x, zero_point)
    if zero_point is not None:
        scale32 = spec.check_float32("scale", scale, positive=True)
        x = (x.astype(np.int32) - zero_point).astype(np.float32) * scale32
    return _bases(x, t, encoding)


def _below(x: np.ndarray, threshold: np.float32) -> np.ndarray:
    """Bitpacked ``x < threshold`` (bit 1 where below)."""
    return bitpack(np.where(x < threshold, np.float32(-1.0), np.float32(1.0)))


def _bases(x: np.ndarray, thresholds: np.ndarray, encoding: str) -> np.ndarray:
    """The bitpacked bases of ``x`` for ``thresholds`` in ``encoding`` (`spec.ENCODINGS`)."""
    bases = spec.threshold_bases(thresholds, encoding)
    if spec.check_encoding("encoding", encoding) == "thermometer":
        return np.concatenate([_below(x, v) for v in thresholds], axis=-1)
    level = np.zeros(x.shape, np.int64)
    for v in thresholds:
        level += ~(x < v)  # NaN passes every threshold, as the bitpacking's x < t is false
    digits = [(level >> i) & 1 for i in range(bases)]
    one, minus_one = np.float32(1.0), np.float32(-1.0)
    return np.concatenate([bitpack(np.where(d == 1, one, minus_one)) for d in digits], axis=-1)


def multi_basis_transform(
    dots: Any,
    multiplier: Any,
    bias: Any,
    *,
    thresholds: Any = None,
    clamp_min: float = -np.inf,
    clamp_max: float = np.inf,
    output_type: str = "float",
    int8_scale: float = 1.0,
    int8_zero_point: int = 0,
    output_encoding: str = "thermometer",
) -> np.ndarray:
    """The output transform of a multi-basis op on integer ``dots [N, M, ..., O]``.

    ``multiplier`` is float32 ``[N * M * O]`` (``[n][m][o]``), ``bias [O]``::

        acc = sum over n, then m, of float32(dots[n, m]) * multiplier[n, m]
        y = min(max(acc + bias, clamp_min), clamp_max)

    every product and sum rounded to float32, left to right. Output as
    `output_transform` says, except ``"bitpacked"`` with ``thresholds [T]``:
    int32 ``[..., T * ceil(O/32)]``, basis ``i`` with bit 1 where ``y < t_i``
    (``output_encoding="binary"``: the k bases of `threshold_quantize`'s
    binary encoding of ``y``).
    """
    dots = np.asarray(dots)
    if not np.issubdtype(dots.dtype, np.integer) or dots.ndim < 3:
        raise ValueError(
            f"Invalid dots: expected an integer array [N, M, ..., O], got {dots.dtype} "
            f"{dots.shape}."
        )
    n_in, n_w, channels = dots.shape[0], dots.shape[1], dots.shape[-1]
    flat = np.asarray(multiplier, np.float32).reshape(-1)
    if flat.size != n_in * n_w * channels:
        raise ValueError(
            f"Invalid multiplier.shape={np.shape(multiplier)}: expected "
            f"({n_in * n_w * channels},), input_bases x weight_bases x channels."
        )
    mult = flat.reshape(n_in, n_w, channels)
    transform = check_output_transform(
        channels,
        mult[0, 0],
        bias,
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        output_type=output_type,
        int8_scale=int8_scale,
        int8_zero_point=int8_zero_point,
    )
    acc: np.ndarray | None = None
    for n in range(n_in):
        for m in range(n_w):
            p = dots[n, m].astype(np.float32) * mult[n, m]
            acc = p if acc is None else acc + p
    assert acc is not None
    y = np.minimum(np.maximum(acc + transform.bias, transform.clamp_min), transform.clamp_max)
    if thresholds is not None:
        if transform.output_type != "bitpacked":
            raise ValueError(
                f"Invalid output_type={output_type!r}: thresholds need 'bitpacked' output."
            )
        t = spec.check_thresholds("thresholds", thresholds)
        return _bases(y, t, output_encoding)
    if spec.check_encoding("output_encoding", output_encoding) != "thermometer":
        raise ValueError(
            f"Invalid output_encoding={output_encoding!r}: expected 'thermometer' without "
            "output thresholds."
        )
    return _write(y, transform)


def _write(y: np.ndarray, transform: spec.OutputTransform) -> np.ndarray:
    """float32 ``y`` written as the output type says (`output_transform`'s last step)."""
    if transform.output_type == "float":
        return y
    if transform.output_type == "bitpacked":
        return bitpack(y)
    v = (y / transform.int8_scale).astype(np.float64)  # the quotient rounded to float32, then exact
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)  # half away from zero
    return np.clip(rounded + transform.int8_zero_point, -128, 127).astype(np.int8)


def _basis_dots(
    op: Callable[..., np.ndarray],
    x_packed: Any,
    weights: tuple[str, Any],
    input_bases: int,
    weight_bases: int,
    **options: Any,
) -> np.ndarray:
    """int64 ``[N, M, ..., O]``: the dot products of every input and weight basis.

    ``weights`` is (the op's argument name, its packed value).
    """
    weights_name, weights_packed = weights
    x = check_packed("x_packed", x_packed)
    w = check_packed(weights_name, weights_packed)
    n_in = spec.check_bases("input_bases", input_bases)
    n_w = spec.check_bases("weight_bases", weight_bases)
    if x.shape[-1] % n_in:
        raise ValueError(
            f"Invalid x_packed.shape={x.shape}: expected a last axis of input_bases={n_in} "
            "equal groups of words."
        )
    if w.shape[0] % n_w:
        raise ValueError(
            f"Invalid {weights_name}.shape={w.shape}: expected a first axis of "
            f"weight_bases={n_w} equal blocks of rows."
        )
    words, rows = x.shape[-1] // n_in, w.shape[0] // n_w
    ones, zeros = np.ones(rows, np.float32), np.zeros(rows, np.float32)
    return np.stack(
        [
            np.stack(
                [
                    op(
                        x[..., n * words : (n + 1) * words],
                        w[m * rows : (m + 1) * rows],
                        ones,
                        zeros,
                        **options,
                    ).astype(np.int64)  # float32(dot) * 1 + 0 is exact below 2^24
                    for m in range(n_w)
                ]
            )
            for n in range(n_in)
        ]
    )


def multi_basis_bdense(
    x_packed: Any,
    weights_packed: Any,
    multiplier: Any,
    bias: Any,
    in_features: int,
    *,
    input_bases: int = 1,
    weight_bases: int = 1,
    thresholds: Any = None,
    **transform: Any,
) -> np.ndarray:
    """TfqnnBdense with options ``input_bases`` N and ``weight_bases`` M.

    ``x_packed [..., N * W]`` holds N bitpacked bases per row (as
    `threshold_quantize` writes them), ``weights_packed [M * O, W]`` M bases
    of the O rows; the N x M dot products go through `multi_basis_transform`
    (``thresholds``, clamps, output type in ``transform``).
    """
    weights = ("weights_packed", weights_packed)
    dots = _basis_dots(
        bdense, x_packed, weights, input_bases, weight_bases, in_features=in_features
    )
    return multi_basis_transform(dots, multiplier, bias, thresholds=thresholds, **transform)


def multi_basis_bconv2d(
    x_packed: Any,
    filter_packed: Any,
    multiplier: Any,
    bias: Any,
    channels_in: int,
    *,
    input_bases: int = 1,
    weight_bases: int = 1,
    thresholds: Any = None,
    strides: int | tuple[int, int] = (1, 1),
    dilations: int | tuple[int, int] = (1, 1),
    padding: str = "valid",
    pad_values: int = 1,
    groups: int = 1,
    **transform: Any,
) -> np.ndarray:
    """TfqnnBconv2d with options ``input_bases`` N and ``weight_bases`` M.

    ``x_packed [B, H, W, N * ceil(C/32)]``, ``filter_packed [M * O, KH, KW,
    ceil((C/groups)/32)]``; each (n, m) is `bconv2d` of input basis n with
    filter basis m (the same padding for every basis), then
    `multi_basis_transform`.
    """
    geometry = dict(
        channels_in=channels_in,
        strides=strides,
        dilations=dilations,
        padding=padding,
        pad_values=pad_values,
        groups=groups,
    )
    weights = ("filter_packed", filter_packed)
    dots = _basis_dots(bconv2d, x_packed, weights, input_bases, weight_bases, **geometry)
    return multi_basis_transform(dots, multiplier, bias, thresholds=thresholds, **transform)


def multi_basis(
    x: Any,
    thresholds: Any,
    input_scales: Any,
    kernel_bases: Any,
    kernel_scales: Any,
    bias: Any,
    op: Callable[..., np.ndarray],
    *,
    encoding: str = "thermometer",
    **options: Any,
) -> np.ndarray:
    """A layer with kernel ``sum_m alpha_m B_m`` and input ``sum_n beta_n A_n``, as the fused op.

    ``A_n`` is +1 where ``x >= t_n`` for the float32 ``thresholds`` t ``[N]``
    (`threshold_quantize`; with ``encoding="binary"``, ``A_n`` is +1 where bit
    n of the level is 1, N = k bases of ``2^k - 1`` thresholds, so a DoReFa
    input is ``1/2 + sum_n 2^n / (2 (2^k - 1)) A_n``); ``kernel_bases [M, ...]`` are the packed
    weights of each basis as ``op`` (`bdense` or `bconv2d`) takes them and
    ``kernel_scales [M, O]`` their per-output-channel scales. The multi-basis
    op (`multi_basis_bdense` / `multi_basis_bconv2d`) gets ``multiplier[n, m]
    = float32(beta_n alpha_m[o])`` (rounded once from float64)::

        y = sum_n sum_m dot(A_n, B_m) * beta_n alpha_m + bias
          = conv(sum_n beta_n A_n, sum_m alpha_m B_m) + bias

    the second line by bilinearity (ABC-Net, Lin et al. 2017).
    ``options`` go to the op (``in_features`` or ``channels_in``, strides,
    padding, ...). Returns float32.
    """
    thresholds = np.asarray(thresholds, np.float32).reshape(-1)
    betas = np.asarray(input_scales, np.float64).reshape(-1)
    alphas = np.asarray(kernel_scales, np.float64)
    bases = np.asarray(kernel_bases)
    input_bases = spec.threshold_bases(thresholds, encoding)
    if betas.shape != (input_bases,):
        raise ValueError(
            f"Invalid input_scales.shape={betas.shape}: expected ({input_bases},), one "
            f"per input basis ({encoding} encoding of {thresholds.size} thresholds)."
        )
    if alphas.ndim != 2 or alphas.shape[0] != bases.shape[0]:
        raise ValueError(
            f"Invalid kernel_scales.shape={alphas.shape}: expected ({bases.shape[0]}, O), "
            "one row per kernel basis."
        )
    fused: Callable[..., np.ndarray]
    if op is bdense:
        fused = multi_basis_bdense
    elif op is bconv2d:
        fused = multi_basis_bconv2d
    else:
        raise ValueError(f"Invalid op={op!r}: expected reference.bdense or reference.bconv2d.")
    multiplier = (betas[:, None, None] * alphas[None]).astype(np.float32)
    packed = threshold_quantize(x, thresholds, encoding=encoding)
    weights = bases.reshape(-1, *bases.shape[2:])
    return fused(
        packed,
        weights,
        multiplier.reshape(-1),
        bias,
        input_bases=input_bases,
        weight_bases=len(bases),
        **options,
    )


def pack_indices(indices: Any, bits: int) -> np.ndarray:
    """Codebook indices (any shape, C order) as TfqnnCodebookDecode's uint8 stream.

    Index ``i`` is the ``bits``-bit field at bit ``i * bits`` of the
    little-endian bit stream: bit ``j`` of the stream is bit ``j % 8`` of byte
    ``j // 8`` (lowest bit first); the unused high bits of the last byte are 0.
    """
    bits = check_int("bits", bits, 1, MAX_INDEX_BITS)
    flat = np.asarray(indices).reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= 1 << bits):
        raise ValueError(
            f"Invalid indices: expected integers in [0, {1 << bits}) for bits={bits}, got "
            f"[{flat.min()}, {flat.max()}]."
        )
    stream = ((flat[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little")


def unpack_indices(packed: Any, count: int, bits: int) -> np.ndarray:
    """The ``count`` indices of a `pack_indices` stream, int64."""
    bits = check_int("bits", bits, 1, MAX_INDEX_BITS)
    data = np.asarray(packed, np.uint8).reshape(-1)
    if data.size != packed_index_bytes(count, bits):
        raise ValueError(
            f"Invalid packed: expected {packed_index_bytes(count, bits)} bytes for {count} "
            f"indices of {bits} bits, got {data.size}."
        )
    stream = np.unpackbits(data, bitorder="little")[: count * bits].reshape(count, bits)
    return (stream.astype(np.int64) << np.arange(bits)).sum(axis=1)


def codebook_decode(packed: Any, codebook: Any, shape: Any, bits: int) -> np.ndarray:
    """The TfqnnCodebookDecode op: ``out[i] = codebook[index_i]``, float32 of ``shape``.

    ``packed`` is the uint8 stream of `pack_indices`; an index outside the
    codebook is an error (ValueError), as in the kernel.
    """
    table = np.asarray(codebook, np.float32).reshape(-1)
    shape = tuple(int(d) for d in shape)
    count = int(np.prod(shape))
    indices = unpack_indices(packed, count, bits)
    if indices.size and indices.max() >= table.size:
        raise ValueError(
            f"Invalid packed: index {indices.max()} is out of range for a codebook of "
            f"{table.size} entries."
        )
    return table[indices].reshape(shape)
