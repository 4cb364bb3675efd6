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

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from tfqnn._validation import check_choice, check_int
from tfqnn.lite import spec
from tfqnn.lite._library import load_library

ISAS = ("scalar", "avx2", "avx512", "neon")

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
    "tfqnn_core_codebook_decode": [_P, _I64, _I, _P, _I64, _P],
}


@functools.cache
def _lib() -> ctypes.CDLL:
    lib = load_library()
    for name, argtypes in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = _I
    lib.tfqnn_core_set_min_thread_work.argtypes = [ctypes.c_double]
    lib.tfqnn_core_set_min_thread_work.restype = ctypes.c_double
    lib.tfqnn_core_set_thread_spin_ns.argtypes = [ctypes.c_int64]
    lib.tfqnn_core_set_thread_spin_ns.restype = ctypes.c_int64
    lib.tfqnn_core_codebook_decode_count.argtypes = []
    lib.tfqnn_core_codebook_decode_count.restype = _I64
    return lib


def _call(name: str, *args: Any) -> int:
    status = getattr(_lib(), name)(*args)
    if status == -1:
        raise ValueError(f"{name} rejected its arguments")
    if status == -2:
        raise MemoryError(f"{name} ran out of memory")
    return int(status)


# ---- ISA -----------------------------------------------------------------------


def supported_isas() -> tuple[str, ...]:
    """The instruction sets the kernels can use on this CPU, e.g. ``("scalar", "avx2", "avx512")``."""
    return tuple(name for i, name in enumerate(ISAS) if _lib().tfqnn_core_isa_supported(i))


def active_isa() -> str:
    """The instruction set the kernels use now."""
    return ISAS[_lib().tfqnn_core_active_isa()]


def set_isa(name: str | None) -> None:
    """Makes the kernels of the whole process use ``name``; None goes back to the default.

    The default is the CPU's best, or the one ``TFQNN_ISA`` names. Raises
    ValueError for an unknown name or one this CPU does not support.
    """
    if name is None:
        _lib().tfqnn_core_set_isa(-1)
        return
    check_choice("isa", name, ISAS)
    if not _lib().tfqnn_core_set_isa(ISAS.index(name)):
        supported = ", ".join(repr(isa) for isa in supported_isas())
        raise ValueError(f"Invalid isa={name!r}: expected one this CPU supports: {supported}.")


def set_min_thread_work(nanoseconds: float) -> float:
    """Sets how long (estimated) a thread's share must take before the kernels start it.

    Returns the previous value. 0 makes ``num_threads > 1`` always start
    threads, even for tiny problems (tests).
    """
    return float(_lib().tfqnn_core_set_min_thread_work(float(nanoseconds)))


def set_thread_spin(nanoseconds: int) -> int:
    """Sets how long the kernels' idle worker threads spin before they sleep (ns).

    Returns the previous value (30000 by default); 0 makes them sleep as
    soon as they are idle, so that every split op wakes them (tests,
    benchmarks). Values are clamped to [0, 1e9].
    """
    return int(_lib().tfqnn_core_set_thread_spin_ns(int(nanoseconds)))


@contextlib.contextmanager
def isa(name: str | None) -> Iterator[None]:
    """Context manager: the kernels use ``name`` inside, the previous ISA after."""
    previous = active_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(previous)


# ---- arguments ------------------------------------------------------------------


def _transform(channels: int, **kwargs: Any) -> tuple[tuple[Any, ...], spec.OutputTransform]:
    """The output transform's ctypes arguments, and the checked values they point into.

    Non-finite multipliers and biases pass through: the kernels compute with them.
    """
    transform = spec.check_output_transform(channels, finite=False, **kwargs)
    args = (
        transform.multiplier.ctypes.data,
        transform.bias.ctypes.data,
        float(transform.clamp_min),
        float(transform.clamp_max),
        spec.output_type_code(transform.output_type),
        float(transform.int8_scale),
        transform.int8_zero_point,
    )
    return args, transform


def _output(leading: tuple[int, ...], channels: int, output_type: str) -> np.ndarray:
    if output_type == "float":
        return np.empty(leading + (channels,), np.float32)
    if output_type == "int8":
        return np.empty(leading + (channels,), np.int8)
    return np.empty(leading + (spec.packed_words(channels),), np.int32)


def _num_threads(value: Any) -> int:
    return check_int("num_threads", value, low=1, high=1024)


# ---- kernels ----------------------------------------------------------------------


def bitpack(x: Any, zero_point: int | None = None) -> np.ndarray:
    """As `reference.bitpack`: float ``x`` bit where ``x < 0``, int8 where ``x < zero_point``.

    A float ``x`` is converted to float32 first (the kernel's input type).
    """
    x, zero_point = spec.check_bitpack_input(x, zero_point)
    channels = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    out = np.empty(x.shape[:-1] + (spec.packed_words(channels),), np.int32)
    if zero_point is None:
        x = np.ascontiguousarray(x, dtype=np.float32)
        _call("tfqnn_core_bitpack_float", x.ctypes.data, rows, channels, out.ctypes.data)
    else:
        x = np.ascontiguousarray(x)
        _call("tfqnn_core_bitpack_int8", x.ctypes.data, rows, channels, zero_point, out.ctypes.data)
    return out


def unpack(packed: Any, channels: int) -> np.ndarray:
    """As `reference.unpack`: int32 ``[..., W]`` to float32 ``[..., channels]`` of +-1."""
    packed = spec.check_packed("packed", packed)
    channels = spec.check_channels("channels", channels, packed.shape[-1])
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
    num_threads: int = 1,
) -> np.ndarray:
    """As `reference.bdense`, run by the C++ kernel with ``num_threads`` threads."""
    x = spec.check_packed("x_packed", x_packed)
    weights = spec.check_packed("weights_packed", weights_packed, ndim=2)
    words = x.shape[-1]
    if weights.shape[1] != words or weights.shape[0] < 1:
        raise ValueError(
            f"Invalid weights_packed.shape={weights.shape}: expected (N, {words}) with N >= 1, "
            "the words per row of x_packed."
        )
    in_features = spec.check_channels("in_features", in_features, words)
    num_threads = _num_threads(num_threads)
    n = weights.shape[0]
    transform, checked = _transform(
        n,
        multiplier=multiplier,
        bias=bias,
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        output_type=output_type,
        int8_scale=int8_scale,
        int8_zero_point=int8_zero_point,
    )
    out = _output(x.shape[:-1], n, checked.output_type)
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
    return out


def conv_geometry(
    in_size: int, kernel_size: int, stride: int, dilation: int, padding: str
) -> tuple[int, int]:
    """``(out_size, pad_before)`` as the C++ core computes them, for tests against `spec`.

    Unlike `spec.conv_geometry`, a "valid" kernel larger than the input gives ``(0, 0)``.
    """
    out, pad = ctypes.c_int(), ctypes.c_int()
    _call(
        "tfqnn_core_conv_geometry",
        check_int("in_size", in_size, low=1, high=spec.INT32_MAX),
        check_int("kernel_size", kernel_size, low=1, high=spec.INT32_MAX),
        check_int("stride", stride, low=1, high=spec.INT32_MAX),
        check_int("dilation", dilation, low=1, high=spec.INT32_MAX),
        spec.padding_code(padding),
        ctypes.addressof(out),
        ctypes.addressof(pad),
    )
    return out.value, pad.value


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
    num_threads: int = 1,
) -> np.ndarray:
    """As `reference.bconv2d`, run by the C++ kernel with ``num_threads`` threads."""
    x = spec.check_packed("x_packed", x_packed, ndim=4)
    filt = spec.check_packed("filter_packed", filter_packed, ndim=4)
    batch, height, width, words = x.shape
    if batch < 1 or height < 1 or width < 1:
        raise ValueError(f"Invalid x_packed.shape={x.shape}: expected no empty axis.")
    channels_in = spec.check_channels("channels_in", channels_in, words)
    out_channels, kernel_h, kernel_w, _ = filt.shape
    if out_channels < 1 or kernel_h < 1 or kernel_w < 1:
        raise ValueError(f"Invalid filter_packed.shape={filt.shape}: expected no empty axis.")
    groups = spec.check_groups(groups, channels_in, out_channels)
    spec.check_filter_words(filt, channels_in, groups)
    strides = spec.check_pair("strides", strides)
    dilations = spec.check_pair("dilations", dilations)
    padding = spec.check_padding(padding)
    pad_values = spec.check_pad_values(pad_values)
    num_threads = _num_threads(num_threads)
    rows, cols = spec.window_geometry(
        "kernel_size", (kernel_h, kernel_w), (height, width), strides, dilations, padding
    )
    transform, checked = _transform(
        out_channels,
        multiplier=multiplier,
        bias=bias,
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        output_type=output_type,
        int8_scale=int8_scale,
        int8_zero_point=int8_zero_point,
    )
    out = _output((batch, rows.out_size, cols.out_size), out_channels, checked.output_type)
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
        spec.PADDING_CODES[padding],
        pad_values,
        *transform[2:],
        out.ctypes.data,
        num_threads,
    )
    return out


def bmaxpool2d(
    x_packed: Any,
    pool_size: int | tuple[int, int],
    strides: int | tuple[int, int],
    padding: str = "valid",
) -> np.ndarray:
    """As `reference.bmaxpool2d`: the AND of the words in each window."""
    x = spec.check_packed("x_packed", x_packed, ndim=4)
    batch, height, width, words = x.shape
    if batch < 1 or height < 1 or width < 1:
        raise ValueError(f"Invalid x_packed.shape={x.shape}: expected no empty axis.")
    pool = spec.check_pair("pool_size", pool_size)
    strides = spec.check_pair("strides", strides)
    padding = spec.check_padding(padding)
    rows, cols = spec.window_geometry("pool_size", pool, (height, width), strides, (1, 1), padding)
    out = np.empty((batch, rows.out_size, cols.out_size, words), np.int32)
    _call(
        "tfqnn_core_bmaxpool2d",
        x.ctypes.data,
        batch,
        height,
        width,
        words,
        *pool,
        *strides,
        spec.PADDING_CODES[padding],
        out.ctypes.data,
    )
    return out


def codebook_decode(packed: Any, codebook: Any, shape: Any, bits: int) -> np.ndarray:
    """As `tfqnn.lite.reference.codebook_decode`, in the C++ core.

    An index outside the codebook raises ValueError (the kernel's status 1).
    """
    bits = check_int("bits", bits, 1, spec.MAX_INDEX_BITS)
    shape = tuple(int(d) for d in shape)
    count = math.prod(shape)
    data = np.ascontiguousarray(packed, np.uint8).reshape(-1)
    table = np.ascontiguousarray(codebook, np.float32).reshape(-1)
    if count < 1 or data.size != spec.packed_index_bytes(count, bits):
        raise ValueError(
            f"Invalid packed: expected {spec.packed_index_bytes(count, bits)} bytes for "
            f"{count} indices of {bits} bits, got {data.size}."
        )
    out = np.empty(shape, np.float32)
    status = _call(
        "tfqnn_core_codebook_decode",
        data.ctypes.data,
        count,
        bits,
        table.ctypes.data,
        table.size,
        out.ctypes.data,
    )
    if status == 1:
        raise ValueError(f"Invalid packed: an index is out of range for {table.size} codes.")
    return out


def codebook_decode_count() -> int:
    """How many times the kernels have decoded a codebook in this process."""
    return int(_lib().tfqnn_core_codebook_decode_count())
