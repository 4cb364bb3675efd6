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

import numbers

import numpy as np

OUTPUT_TYPES = ("float", "int8", "bitpacked")
PADDINGS = ("same", "valid")


# ---- argument checks ---------------------------------------------------------


def _int(name, value, low=None, high=None):
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        if low is not None and high is not None:
            allowed = f"an integer in [{low}, {high}]"
        elif low is not None:
            allowed = f"an integer >= {low}"
        else:
            allowed = "an integer"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def _pair(name, value):
    """An int or a pair of ints, each >= 1, as a tuple of two ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
    return _int(f"{name}[0]", value[0], low=1), _int(f"{name}[1]", value[1], low=1)


def _padding(value):
    if not isinstance(value, str) or value.lower() not in PADDINGS:
        raise ValueError(f"padding must be 'same' or 'valid', got {value!r}")
    return value.lower()


def _output_type(value):
    if not isinstance(value, str) or value.lower() not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {value!r}")
    return value.lower()


def _float32(name, value, *, allow_inf=False, positive=False):
    """A real number as np.float32: not NaN, finite unless allow_inf."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value32 = np.float32(value)
        ok = not np.isnan(value32) and (allow_inf or np.isfinite(value32))
        ok = ok and (not positive or value32 > 0)
    if not ok:
        kind = "a non-NaN" if allow_inf else "a finite"
        kind = "a positive finite" if positive else kind
        raise ValueError(f"{name} must be {kind} float32 number, got {value!r}")
    return value32


def _packed(name, value, ndim=None):
    """An integer array with int32 values, as np.int32, of rank ndim (or >= 1)."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be an int32 array of packed words, got dtype {array.dtype}")
    if array.size and (array.min() < -(2**31) or array.max() > 2**31 - 1):
        raise ValueError(f"{name} has values outside the int32 range")
    if (ndim is None and array.ndim < 1) or (ndim is not None and array.ndim != ndim):
        rank = "at least 1" if ndim is None else str(ndim)
        raise ValueError(f"{name} must have rank {rank}, got shape {array.shape}")
    if array.shape[-1] < 1:
        raise ValueError(
            f"{name} must have at least one word in its last axis, got shape {array.shape}"
        )
    return array.astype(np.int32)


def _channels(name, value, words, operand):
    """The true channel count of `words` packed words: in (32(W-1), 32W]."""
    low, high = 32 * (words - 1), 32 * words
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or not low < value <= high:
        raise ValueError(
            f"{name} must be in (32*(W-1), 32*W] = ({low}, {high}] for {operand} of "
            f"{words} words, got {value!r}"
        )
    return int(value)


def _check_padding_bits(name, packed, channels):
    """Packed operands must have 0 in the bits of channels >= `channels`."""
    used = channels % 32
    if used and np.any(packed[..., -1] & np.int32(~((1 << used) - 1))):
        raise ValueError(f"{name} has padding bits set: bits of channels >= {channels} must be 0")


def _vector(name, value, length):
    """A finite float32 vector of shape (length,)."""
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be a float32 array, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if array.shape != (length,):
        raise ValueError(
            f"{name} must have shape ({length},), one value per output channel, got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite in float32")
    return array


def _popcount(words):
    """Number of set bits of each int32 word (np.bitwise_count of a signed int counts |x|)."""
    return np.bitwise_count(np.asarray(words, np.int32).view(np.uint32))


# ---- quantize / dequantize ---------------------------------------------------


def bitpack(x, zero_point=None):
    """Packs ``x [..., C]`` into int32 ``[..., ceil(C/32)]``.

    Bit 1 where ``x < 0`` for a float ``x``; for an int8 ``x``, where
    ``x < zero_point`` (default 0). Padding bits are 0.
    """
    x = np.asarray(x)
    if x.dtype == np.int8:
        zero_point = 0 if zero_point is None else _int("zero_point", zero_point, -128, 127)
        negative = x.astype(np.int32) < zero_point
    elif np.issubdtype(x.dtype, np.floating):
        if zero_point is not None:
            raise ValueError(
                f"zero_point is only for int8 x, got {zero_point!r} for dtype {x.dtype}"
            )
        negative = x < 0
    else:
        raise ValueError(f"x must be a float or int8 array, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have at least one channel in its last axis, got shape {x.shape}")
    channels = x.shape[-1]
    words = -(-channels // 32)
    bits = np.zeros(x.shape[:-1] + (32 * words,), np.uint32)
    bits[..., :channels] = negative
    bits = bits.reshape(x.shape[:-1] + (words, 32))
    packed = (bits << np.arange(32, dtype=np.uint32)).sum(axis=-1, dtype=np.uint32)
    return packed.view(np.int32)


def unpack(packed, channels):
    """Unpacks int32 ``[..., W]`` into float32 ``[..., channels]`` of +-1.0.

    ``channels`` must be in ``(32(W-1), 32W]``; padding bits are not read.
    """
    packed = _packed("packed", packed)
    words = packed.shape[-1]
    channels = _channels("channels", channels, words, "packed")
    bits = (packed.view(np.uint32)[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    bits = bits.reshape(packed.shape[:-1] + (32 * words,))[..., :channels]
    return np.where(bits == 1, np.float32(-1.0), np.float32(1.0))


def quantize(x, zero_point=None):
    """The TfqnnQuantize op: `bitpack`."""
    return bitpack(x, zero_point)


def dequantize(packed, channels):
    """The TfqnnDequantize op: `unpack`."""
    return unpack(packed, channels)


# ---- output transform ----------------------------------------------------------


def output_transform(
    dot,
    multiplier,
    bias,
    *,
    clamp_min=-np.inf,
    clamp_max=np.inf,
    output_type="float",
    int8_scale=1.0,
    int8_zero_point=0,
):
    """Maps integer dot products ``[..., N]`` to the op's output (module docstring).

    Returns float32 ``[..., N]``, int8 ``[..., N]`` or int32 ``[..., ceil(N/32)]``.
    """
    dot = np.asarray(dot)
    if not np.issubdtype(dot.dtype, np.integer) or dot.ndim < 1 or dot.shape[-1] < 1:
        raise ValueError(
            f"dot must be an integer array [..., N] with N >= 1, got {dot.dtype} {dot.shape}"
        )
    channels = dot.shape[-1]
    multiplier = _vector("multiplier", multiplier, channels)
    bias = _vector("bias", bias, channels)
    clamp_min = _float32("clamp_min", clamp_min, allow_inf=True)
    clamp_max = _float32("clamp_max", clamp_max, allow_inf=True)
    if clamp_min > clamp_max:
        raise ValueError(f"clamp_min must be <= clamp_max, got {clamp_min} > {clamp_max}")
    output_type = _output_type(output_type)
    scale = _float32("int8_scale", int8_scale, positive=True)
    zero_point = _int("int8_zero_point", int8_zero_point, -128, 127)

    # float32 arrays: numpy rounds the product and then the sum (no FMA).
    y = dot.astype(np.float32) * multiplier + bias
    y = np.minimum(np.maximum(y, clamp_min), clamp_max)
    if output_type == "float":
        return y
    if output_type == "bitpacked":
        return bitpack(y)
    v = (y / scale).astype(np.float64)  # the quotient rounded to float32, then exact
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)  # half away from zero
    return np.clip(rounded + zero_point, -128, 127).astype(np.int8)


# ---- binary dense ----------------------------------------------------------------


def bdense(
    x_packed,
    weights_packed,
    multiplier,
    bias,
    in_features,
    *,
    clamp_min=-np.inf,
    clamp_max=np.inf,
    output_type="float",
    int8_scale=1.0,
    int8_zero_point=0,
):
    """The TfqnnBdense op: ``x_packed [..., W]`` times ``weights_packed [N, W]``.

    ``dot[..., n] = K - 2 popcount(x XOR w[n])`` with ``K = in_features``, then
    `output_transform`. Leading dimensions of ``x`` are kept.
    """
    x = _packed("x_packed", x_packed)
    weights = _packed("weights_packed", weights_packed, ndim=2)
    words = x.shape[-1]
    if weights.shape[1] != words:
        raise ValueError(
            f"weights_packed must have {words} words per row like x_packed, got shape {weights.shape}"
        )
    in_features = _channels("in_features", in_features, words, "x")
    _check_padding_bits("x_packed", x, in_features)
    _check_padding_bits("weights_packed", weights, in_features)

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


# ---- convolution geometry, binary conv2d and max pooling ---------------------------


def conv_geometry(in_size, kernel_size, stride, dilation, padding):
    """Output size and padding before along one axis, as TensorFlow.

    VALID: ``out = (in - k_eff) // stride + 1`` with ``k_eff = (k-1) dilation + 1``
    (ValueError if ``in < k_eff``), no padding. SAME: ``out = ceil(in / stride)``,
    ``pad_total = max((out-1) stride + k_eff - in, 0)``, ``pad_before = pad_total // 2``.
    """
    in_size = _int("in_size", in_size, low=1)
    kernel_size = _int("kernel_size", kernel_size, low=1)
    stride = _int("stride", stride, low=1)
    dilation = _int("dilation", dilation, low=1)
    padding = _padding(padding)
    effective = (kernel_size - 1) * dilation + 1
    if padding == "same":
        out_size = -(-in_size // stride)
        pad_total = max((out_size - 1) * stride + effective - in_size, 0)
        return out_size, pad_total // 2
    if in_size < effective:
        raise ValueError(
            f"in_size {in_size} is smaller than the kernel_size {kernel_size} dilated by "
            f"{dilation} ({effective}) with padding 'valid'"
        )
    return (in_size - effective) // stride + 1, 0


def _pad_2d(x, out_shape, pads_before, kernel, strides, dilations, value):
    """Pads axes 1 and 2 of ``x`` so that every tap of every output lies inside.

    Returns the padded array and a bool mask [Hp, Wp] of the real (unpadded) pixels.
    """
    pad_width = [(0, 0)]
    for axis in range(2):
        span = (out_shape[axis] - 1) * strides[axis] + (kernel[axis] - 1) * dilations[axis] + 1
        after = max(span - pads_before[axis] - x.shape[1 + axis], 0)
        pad_width.append((pads_before[axis], after))
    padded = np.pad(x, pad_width + [(0, 0)], constant_values=value)
    real = np.pad(np.ones(x.shape[1:3], bool), pad_width[1:], constant_values=False)
    return padded, real


def bconv2d(
    x_packed,
    filter_packed,
    multiplier,
    bias,
    channels_in,
    *,
    strides=(1, 1),
    dilations=(1, 1),
    padding="valid",
    pad_values=1,
    groups=1,
    clamp_min=-np.inf,
    clamp_max=np.inf,
    output_type="float",
    int8_scale=1.0,
    int8_zero_point=0,
):
    """The TfqnnBconv2d op: binary 2-D convolution, NHWC input, OHWI filter.

    ``x_packed [B, H, W, ceil(C/32)]``, ``filter_packed [O, KH, KW, ceil((C/groups)/32)]``.
    The dot product of an output pixel sums ``Cg - 2 popcount(x_tap XOR w_tap)``
    over its ``KH * KW`` taps (``Cg = C/groups``, the group's input channels); a
    padding tap is the +1 pixel (word 0) when ``pad_values = 1`` and adds nothing
    when ``pad_values = 0``. Then `output_transform`, output NHWC.
    """
    x = _packed("x_packed", x_packed, ndim=4)
    filt = _packed("filter_packed", filter_packed, ndim=4)
    batch, height, width, words = x.shape
    channels_in = _channels("channels_in", channels_in, words, "x_packed")
    groups = _int("groups", groups, low=1)
    out_channels, kernel_h, kernel_w, filter_words = filt.shape
    if groups > 1:
        if channels_in % groups or (channels_in // groups) % 32:
            raise ValueError(
                f"groups={groups} needs channels_in / groups to be a multiple of 32, "
                f"got channels_in={channels_in}"
            )
        if out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide the output channels of filter_packed, got {out_channels}"
            )
    group_channels = channels_in // groups
    if filter_words != -(-group_channels // 32):
        raise ValueError(
            f"filter_packed must have ceil({group_channels}/32) = {-(-group_channels // 32)} words "
            f"in its last axis (channels_in / groups = {group_channels}), got shape {filt.shape}"
        )
    strides = _pair("strides", strides)
    dilations = _pair("dilations", dilations)
    padding = _padding(padding)
    if (
        not isinstance(pad_values, numbers.Integral)
        or isinstance(pad_values, bool)
        or pad_values not in (0, 1)
    ):
        raise ValueError(f"pad_values must be 0 or 1, got {pad_values!r}")
    _check_padding_bits("x_packed", x, channels_in)
    _check_padding_bits("filter_packed", filt, group_channels)

    out_h, pad_top = conv_geometry(height, kernel_h, strides[0], dilations[0], padding)
    out_w, pad_left = conv_geometry(width, kernel_w, strides[1], dilations[1], padding)
    # Padding pixels are word 0 (+1 in every channel); `real` marks the input pixels.
    padded, real = _pad_2d(
        x,
        (out_h, out_w),
        (pad_top, pad_left),
        (kernel_h, kernel_w),
        strides,
        dilations,
        0,
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
                if pad_values == 0:
                    tap_dot = tap_dot * real[np.ix_(r, c)][None, :, :, None]
                dot[..., outs] += tap_dot
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


def bmaxpool2d(x_packed, pool_size, strides, padding="valid"):
    """The TfqnnBMaxPool2d op: max pooling of packed +-1 values, int32 NHWC.

    The max of +-1 values is -1 only if all are -1, so each output word is the
    AND of the words in its window; padding positions are ignored (they hold
    all-ones words, the identity of AND). ``pool_size``, ``strides``: an int
    or a pair (height, width).
    """
    x = _packed("x_packed", x_packed, ndim=4)
    pool = _pair("pool_size", pool_size)
    strides = _pair("strides", strides)
    padding = _padding(padding)
    batch, height, width, words = x.shape
    out_h, pad_top = conv_geometry(height, pool[0], strides[0], 1, padding)
    out_w, pad_left = conv_geometry(width, pool[1], strides[1], 1, padding)
    padded, _ = _pad_2d(x, (out_h, out_w), (pad_top, pad_left), pool, strides, (1, 1), -1)
    rows = np.arange(out_h) * strides[0]
    cols = np.arange(out_w) * strides[1]
    out = np.full((batch, out_h, out_w, words), -1, np.int32)
    for i in range(pool[0]):
        for j in range(pool[1]):
            out &= padded[:, rows + i][:, :, cols + j]
    return out
