"""Numpy front end of the C++ core kernels, for tests and debugging only.

The functions call the ``tfqnn_core_*`` test hooks of ``libtfqnn_ops.so``
(``tfqnn/lite/kernels/core/c_api.cc``) through ctypes, with the signatures of
`tfqnn.lite.reference` (plus ``num_threads`` where the kernel has threads), so
that tests compare the two bit for bit. The TFLite ops do not go through here.
`set_isa` switches the kernels' instruction set for the whole process.

Arguments are checked enough that a bad shape raises ValueError instead of
reaching the kernels; values that are merely unusual (padding bits set, say)
pass through.
"""

import contextlib
import ctypes
import functools
import math
import numbers

import numpy as np

from tfqnn.lite._library import load_library

ISAS = ("scalar", "avx2", "avx512", "neon")
OUTPUT_TYPES = ("float", "int8", "bitpacked")
_PADDINGS = {"same": 1, "valid": 2}
_INT_MAX = 2**31 - 1

_P = ctypes.c_void_p
_I = ctypes.c_int
_I64 = ctypes.c_int64
_F = ctypes.c_float
_SIGNATURES = {
    "tfqnn_core_set_isa": [_I],
    "tfqnn_core_active_isa": [],
    "tfqnn_core_isa_supported": [_I],
    "tfqnn_core_bitpack_float": [_P, _I64, _I, _P],
    "tfqnn_core_bitpack_int8": [_P, _I64, _I, _I, _P],
    "tfqnn_core_unpack_float": [_P, _I64, _I, _P],
    "tfqnn_core_bdense": [_P, _I64, _P, _I, _I, _P, _P, _F, _F, _I, _F, _I, _P, _I],
    "tfqnn_core_conv_geometry": [_I, _I, _I, _I, _I, _P, _P],
    "tfqnn_core_bconv2d": [_P, _P, _P, _P] + [_I] * 14 + [_F, _F, _I, _F, _I, _P, _I],
    "tfqnn_core_bmaxpool2d": [_P] + [_I] * 9 + [_P],
}


@functools.cache
def _lib():
    lib = load_library()
    for name, argtypes in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = _I
    lib.tfqnn_core_set_min_thread_work.argtypes = [ctypes.c_double]
    lib.tfqnn_core_set_min_thread_work.restype = ctypes.c_double
    return lib


def _call(name, *args):
    status = getattr(_lib(), name)(*args)
    if status == -1:
        raise ValueError(f"{name} rejected its arguments")
    if status == -2:
        raise MemoryError(f"{name} ran out of memory")
    return status


# ---- ISA -----------------------------------------------------------------------


def supported_isas():
    """The instruction sets the kernels can use on this CPU, e.g. ``("scalar", "avx2", "avx512")``."""
    return tuple(name for i, name in enumerate(ISAS) if _lib().tfqnn_core_isa_supported(i))


def active_isa():
    """The instruction set the kernels use now."""
    return ISAS[_lib().tfqnn_core_active_isa()]


def set_isa(name):
    """Makes the kernels of the whole process use ``name``; None goes back to the default.

    The default is the CPU's best, or the one ``TFQNN_ISA`` names. Raises
    ValueError for an unknown name or one this CPU does not support.
    """
    if name is None:
        _lib().tfqnn_core_set_isa(-1)
        return
    if name not in ISAS:
        raise ValueError(f"isa must be one of {ISAS} or None, got {name!r}")
    if not _lib().tfqnn_core_set_isa(ISAS.index(name)):
        raise ValueError(f"isa {name!r} is not supported on this CPU ({supported_isas()})")


def set_min_thread_work(nanoseconds):
    """Sets how long (estimated) a thread's share must take before the kernels start it.

    Returns the previous value. 0 makes ``num_threads > 1`` always start
    threads, even for tiny problems (tests).
    """
    return _lib().tfqnn_core_set_min_thread_work(float(nanoseconds))


@contextlib.contextmanager
def isa(name):
    """Context manager: the kernels use ``name`` inside, the previous ISA after."""
    previous = active_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(previous)


# ---- argument checks ------------------------------------------------------------


def _int(name, value, low=None, high=_INT_MAX):
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _pair(name, value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
    return _int(f"{name}[0]", value[0], 1), _int(f"{name}[1]", value[1], 1)


def _packed(name, value, ndim=None):
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be an int32 array, got dtype {array.dtype}")
    if array.size and (array.min() < -(2**31) or array.max() > 2**31 - 1):
        raise ValueError(f"{name} has values outside the int32 range")
    if (ndim is None and array.ndim < 1) or (ndim is not None and array.ndim != ndim):
        raise ValueError(f"{name} must have rank {ndim or '>= 1'}, got shape {array.shape}")
    if array.shape[-1] < 1 or array.shape[-1] > _INT_MAX // 32:
        raise ValueError(f"{name} has {array.shape[-1]} words in its last axis")
    return np.ascontiguousarray(array, dtype=np.int32)


def _channels(name, value, words):
    return _int(name, value, 32 * (words - 1) + 1, 32 * words)


def _vector(name, value, length):
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be a float32 array, got dtype {array.dtype}")
    if array.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _real(name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(np.float32(value))


def _choice(name, value, choices):
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value.lower()


def _transform(
    multiplier, bias, channels, clamp_min, clamp_max, output_type, int8_scale, int8_zero_point
):
    multiplier = _vector("multiplier", multiplier, channels)
    bias = _vector("bias", bias, channels)
    clamp_min = _real("clamp_min", clamp_min)
    clamp_max = _real("clamp_max", clamp_max)
    if clamp_min > clamp_max:
        raise ValueError(f"clamp_min must be <= clamp_max, got {clamp_min} > {clamp_max}")
    output_type = _choice("output_type", output_type, OUTPUT_TYPES)
    int8_scale = _real("int8_scale", int8_scale)
    if not 0 < int8_scale < math.inf:
        raise ValueError(f"int8_scale must be positive and finite, got {int8_scale!r}")
    int8_zero_point = _int("int8_zero_point", int8_zero_point, -128, 127)
    args = (
        multiplier.ctypes.data,
        bias.ctypes.data,
        clamp_min,
        clamp_max,
        OUTPUT_TYPES.index(output_type),
        int8_scale,
        int8_zero_point,
    )
    return args, (multiplier, bias), output_type


def _output(leading, channels, output_type):
    if output_type == "float":
        return np.empty(leading + (channels,), np.float32)
    if output_type == "int8":
        return np.empty(leading + (channels,), np.int8)
    return np.empty(leading + (-(-channels // 32),), np.int32)


# ---- kernels ----------------------------------------------------------------------


def bitpack(x, zero_point=None):
    """As `reference.bitpack`: float ``x`` bit where ``x < 0``, int8 where ``x < zero_point``.

    A float ``x`` is converted to float32 first (the kernel's input type).
    """
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[-1] < 1 or x.shape[-1] > _INT_MAX:
        raise ValueError(f"x must have at least one channel in its last axis, got shape {x.shape}")
    channels = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    out = np.empty(x.shape[:-1] + (-(-channels // 32),), np.int32)
    if x.dtype == np.int8:
        zero_point = 0 if zero_point is None else _int("zero_point", zero_point, -128, 127)
        x = np.ascontiguousarray(x)
        _call("tfqnn_core_bitpack_int8", x.ctypes.data, rows, channels, zero_point, out.ctypes.data)
    elif np.issubdtype(x.dtype, np.floating):
        if zero_point is not None:
            raise ValueError("zero_point is only for int8 x")
        x = np.ascontiguousarray(x, dtype=np.float32)
        _call("tfqnn_core_bitpack_float", x.ctypes.data, rows, channels, out.ctypes.data)
    else:
        raise ValueError(f"x must be a float or int8 array, got dtype {x.dtype}")
    return out


def unpack(packed, channels):
    """As `reference.unpack`: int32 ``[..., W]`` to float32 ``[..., channels]`` of +-1."""
    packed = _packed("packed", packed)
    channels = _channels("channels", channels, packed.shape[-1])
    out = np.empty(packed.shape[:-1] + (channels,), np.float32)
    _call(
        "tfqnn_core_unpack_float",
        packed.ctypes.data,
        math.prod(packed.shape[:-1]),
        channels,
        out.ctypes.data,
    )
    return out


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
    num_threads=1,
):
    """As `reference.bdense`, run by the C++ kernel with ``num_threads`` threads."""
    x = _packed("x_packed", x_packed)
    weights = _packed("weights_packed", weights_packed, ndim=2)
    words = x.shape[-1]
    if weights.shape[1] != words or weights.shape[0] < 1:
        raise ValueError(f"weights_packed must be [N, {words}], got shape {weights.shape}")
    in_features = _channels("in_features", in_features, words)
    num_threads = _int("num_threads", num_threads, 1, 1024)
    n = weights.shape[0]
    transform, keep, output_type = _transform(
        multiplier, bias, n, clamp_min, clamp_max, output_type, int8_scale, int8_zero_point
    )
    out = _output(x.shape[:-1], n, output_type)
    _call(
        "tfqnn_core_bdense",
        x.ctypes.data,
        math.prod(x.shape[:-1]),
        weights.ctypes.data,
        n,
        in_features,
        *transform,
        out.ctypes.data,
        num_threads,
    )
    del keep
    return out


def conv_geometry(in_size, kernel_size, stride, dilation, padding):
    """As `reference.conv_geometry`, computed by the core: ``(out_size, pad_before)``.

    Unlike the reference, a "valid" kernel larger than the input gives ``(0, 0)``.
    """
    out, pad = ctypes.c_int(), ctypes.c_int()
    padding = _PADDINGS[_choice("padding", padding, _PADDINGS)]
    _call(
        "tfqnn_core_conv_geometry",
        _int("in_size", in_size, 1),
        _int("kernel_size", kernel_size, 1),
        _int("stride", stride, 1),
        _int("dilation", dilation, 1),
        padding,
        ctypes.addressof(out),
        ctypes.addressof(pad),
    )
    return out.value, pad.value


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
    num_threads=1,
):
    """As `reference.bconv2d`, run by the C++ kernel with ``num_threads`` threads."""
    x = _packed("x_packed", x_packed, ndim=4)
    filt = _packed("filter_packed", filter_packed, ndim=4)
    batch, height, width, words = x.shape
    channels_in = _channels("channels_in", channels_in, words)
    groups = _int("groups", groups, 1)
    out_channels, kernel_h, kernel_w, filter_words = filt.shape
    if (
        channels_in % groups
        or out_channels % groups
        or out_channels < 1
        or (groups > 1 and (channels_in // groups) % 32)
    ):
        raise ValueError(
            f"groups={groups} must divide channels_in={channels_in} (into multiples of 32) "
            f"and the {out_channels} output channels"
        )
    if filter_words != -(-(channels_in // groups) // 32):
        raise ValueError(
            f"filter_packed has {filter_words} words per tap, expected "
            f"ceil({channels_in // groups}/32)"
        )
    strides = _pair("strides", strides)
    dilations = _pair("dilations", dilations)
    padding_name = _choice("padding", padding, _PADDINGS)
    pad_values = _int("pad_values", pad_values, 0, 1)
    num_threads = _int("num_threads", num_threads, 1, 1024)
    for name, value in (
        ("batch", batch),
        ("height", height),
        ("width", width),
        ("kernel height", kernel_h),
        ("kernel width", kernel_w),
    ):
        _int(name, value, 1)
    out_h, _ = conv_geometry(height, kernel_h, strides[0], dilations[0], padding_name)
    out_w, _ = conv_geometry(width, kernel_w, strides[1], dilations[1], padding_name)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"the dilated kernel does not fit the {height}x{width} input with padding 'valid'"
        )
    transform, keep, output_type = _transform(
        multiplier,
        bias,
        out_channels,
        clamp_min,
        clamp_max,
        output_type,
        int8_scale,
        int8_zero_point,
    )
    out = _output((batch, out_h, out_w), out_channels, output_type)
    _call(
        "tfqnn_core_bconv2d",
        x.ctypes.data,
        filt.ctypes.data,
        *transform[:2],
        batch,
        height,
        width,
        channels_in,
        groups,
        out_channels,
        kernel_h,
        kernel_w,
        strides[0],
        strides[1],
        dilations[0],
        dilations[1],
        _PADDINGS[padding_name],
        pad_values,
        *transform[2:],
        out.ctypes.data,
        num_threads,
    )
    del keep
    return out


def bmaxpool2d(x_packed, pool_size, strides, padding="valid"):
    """As `reference.bmaxpool2d`: the AND of the words in each window."""
    x = _packed("x_packed", x_packed, ndim=4)
    batch, height, width, words = x.shape
    pool = _pair("pool_size", pool_size)
    strides = _pair("strides", strides)
    padding_name = _choice("padding", padding, _PADDINGS)
    for name, value in (("batch", batch), ("height", height), ("width", width)):
        _int(name, value, 1)
    out_h, _ = conv_geometry(height, pool[0], strides[0], 1, padding_name)
    out_w, _ = conv_geometry(width, pool[1], strides[1], 1, padding_name)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"pool_size {pool} does not fit the {height}x{width} input with padding 'valid'"
        )
    out = np.empty((batch, out_h, out_w, words), np.int32)
    _call(
        "tfqnn_core_bmaxpool2d",
        x.ctypes.data,
        batch,
        height,
        width,
        words,
        *pool,
        *strides,
        _PADDINGS[padding_name],
        out.ctypes.data,
    )
    return out
