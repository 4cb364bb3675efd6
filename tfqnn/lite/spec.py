"""The contract of tfqnn's TFLite custom ops (docs/lite_ops.md) as data and checks.

One module holds what the contract defines, so that the numpy reference
(`tfqnn.lite.reference`), the C++ kernels' test front end and the exporter's
composite functions (`tfqnn.export`) cannot drift apart: the op names, the
option codes, the bit layout, the convolution geometry and the argument
checks. It imports neither TensorFlow nor Keras.

Every check returns the value in its canonical form (a lower-case name, an
int, an int32 array) or raises ``ValueError("Invalid name=value: expected
...")`` naming the argument.

>>> conv_geometry(in_size=7, kernel_size=3, stride=2, dilation=1, padding="same")
AxisGeometry(out_size=4, pad_before=1, pad_after=1)
>>> OUTPUT_TYPES.index("bitpacked"), PADDING_CODES["valid"]
(2, 2)
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from tfqnn import _bits
from tfqnn._validation import check_bool, check_choice, check_int

# ---- op names ------------------------------------------------------------------

OP_PREFIX = "Tfqnn"
QUANTIZE = "TfqnnQuantize"
DEQUANTIZE = "TfqnnDequantize"
BDENSE = "TfqnnBdense"
BCONV2D = "TfqnnBconv2d"
BMAXPOOL2D = "TfqnnBMaxPool2d"
CODEBOOK_DECODE = "TfqnnCodebookDecode"
OPS = (QUANTIZE, DEQUANTIZE, BDENSE, BCONV2D, BMAXPOOL2D, CODEBOOK_DECODE)
"""Every custom op name, as it appears in a `.tflite` file."""

# ---- option values -------------------------------------------------------------

OUTPUT_TYPES = ("float", "int8", "bitpacked")
"""What Bdense and Bconv2d write; the ``output_type`` option is the index."""

ENCODINGS = ("thermometer", "binary")
"""How T thresholds become bitpacked bases: the ``encoding`` option of
TfqnnQuantize and the ``output_encoding`` option of Bdense and Bconv2d are the
index. ``"thermometer"``: T bases, basis ``i`` with bit 1 where ``x < t_i``.
``"binary"``: ``T = 2^k - 1`` non-decreasing thresholds, k bases, basis ``i``
with bit 1 where bit ``i`` of the level ``L = #{j : not x < t_j}`` is 0
(`threshold_bases`)."""

PADDINGS = ("same", "valid")
PADDING_CODES = {"same": 1, "valid": 2}
"""The ``padding`` option of Bconv2d and BMaxPool2d: TfLitePadding's codes."""

# ---- bit layout ----------------------------------------------------------------

BITS_PER_WORD = 32
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
# Most bases of a multi-basis op: input_bases, weight_bases, thresholds.
MAX_BASES = 32


def packed_words(channels: int) -> int:
    """``W = ceil(C / 32)``: the int32 words that hold ``channels`` binary channels."""
    return -(-channels // BITS_PER_WORD)


def padding_bits_mask(channels: int) -> int:
    """The bits of the last word that padding channels occupy (0 when ``C % 32 == 0``).

    As an int32 bit pattern, so that ``packed[..., -1] & mask`` is 0 for a
    well-formed operand.
    """
    used = channels % BITS_PER_WORD
    return int(np.int32(~((1 << used) - 1))) if used else 0


# ---- codebook indices -----------------------------------------------------------

MAX_INDEX_BITS = 16
"""The widest index of TfqnnCodebookDecode (a codebook of up to 65,536 entries)."""


def index_bits(codes: int) -> int:
    """``ceil(log2(codes))``, at least 1 (`tfqnn._bits.index_bits`), for at most 2^16 codes."""
    return _bits.index_bits(check_int("codes", codes, 1, 2**MAX_INDEX_BITS))


def packed_index_bytes(count: int, bits: int) -> int:
    """``ceil(count * bits / 8)``: the bytes of ``count`` packed ``bits``-bit indices."""
    return -(-count * bits // 8)


# ---- geometry ------------------------------------------------------------------


class AxisGeometry(NamedTuple):
    """The output size and the implicit padding of a window op along one axis."""

    out_size: int
    pad_before: int
    pad_after: int


def conv_geometry(
    in_size: int, kernel_size: int, stride: int, dilation: int, padding: str
) -> AxisGeometry:
    """Output size and padding along one axis, as TensorFlow computes them.

    With the dilated kernel ``k_eff = (kernel_size - 1) * dilation + 1``:

    * VALID: ``out = (in - k_eff) // stride + 1``, no padding; ValueError when
      ``in < k_eff`` (no window fits).
    * SAME: ``out = ceil(in / stride)``,
      ``pad_total = max((out - 1) * stride + k_eff - in, 0)``,
      ``pad_before = pad_total // 2``, ``pad_after = pad_total - pad_before``.

    Max pooling uses the same arithmetic with ``dilation = 1``.
    """
    in_size = check_int("in_size", in_size, low=1, high=INT32_MAX)
    kernel_size = check_int("kernel_size", kernel_size, low=1, high=INT32_MAX)
    stride = check_int("stride", stride, low=1, high=INT32_MAX)
    dilation = check_int("dilation", dilation, low=1, high=INT32_MAX)
    padding = check_padding(padding)
    effective = (kernel_size - 1) * dilation + 1
    if padding == "same":
        out_size = -(-in_size // stride)
        pad_total = max((out_size - 1) * stride + effective - in_size, 0)
        return AxisGeometry(out_size, pad_total // 2, pad_total - pad_total // 2)
    if in_size < effective:
        raise ValueError(
            f"Invalid in_size={in_size}: expected at least the dilated kernel size "
            f"{effective} (kernel_size={kernel_size}, dilation={dilation}) with padding 'valid'."
        )
    return AxisGeometry((in_size - effective) // stride + 1, 0, 0)


def window_geometry(
    name: str,
    window: tuple[int, int],
    in_size: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    padding: str,
) -> tuple[AxisGeometry, AxisGeometry]:
    """`conv_geometry` along height and width of a 2-D window op (Bconv2d, BMaxPool2d).

    A VALID window larger than the input raises a ValueError that names the
    window argument ``name`` (``"pool_size"``, say) instead of ``in_size``.
    """
    padding = check_padding(padding)
    effective = [(k - 1) * d + 1 for k, d in zip(window, dilations)]
    if padding == "valid" and any(e > i for e, i in zip(effective, in_size)):
        raise ValueError(
            f"Invalid {name}={tuple(window)!r}: expected a window that fits the "
            f"{in_size[0]}x{in_size[1]} input with padding 'valid', got "
            f"{effective[0]}x{effective[1]} with dilations={tuple(dilations)!r}."
        )
    rows = conv_geometry(in_size[0], window[0], strides[0], dilations[0], padding)
    cols = conv_geometry(in_size[1], window[1], strides[1], dilations[1], padding)
    return rows, cols


# ---- argument checks -----------------------------------------------------------


def check_padding(value: Any) -> str:
    """``"same"`` or ``"valid"``, in any case."""
    return check_choice("padding", _lower(value), PADDINGS)


def check_output_type(value: Any) -> str:
    """One of `OUTPUT_TYPES`, in any case."""
    return check_choice("output_type", _lower(value), OUTPUT_TYPES)


def check_encoding(name: str, value: Any) -> str:
    """One of `ENCODINGS`, in any case."""
    return check_choice(name, _lower(value), ENCODINGS)


def check_pad_values(value: Any) -> int:
    """The value of Bconv2d's padding pixels: 1 (+1), 0 (zero, as Keras pads) or -1."""
    return check_int("pad_values", value, low=-1, high=1)


def check_pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each >= 1, as a tuple of two ints."""
    if _is_int(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"Invalid {name}={value!r}: expected an integer or a pair of integers.")
    return (
        check_int(f"{name}[0]", value[0], low=1, high=INT32_MAX),
        check_int(f"{name}[1]", value[1], low=1, high=INT32_MAX),
    )


def check_packed(name: str, value: Any, ndim: int | None = None) -> np.ndarray:
    """Packed words: an integer array with int32 values, of rank ``ndim`` (or >= 1).

    Returns a C-contiguous np.int32 array with at least one word in its last axis.
    """
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"Invalid {name}.dtype={array.dtype}: expected an integer array of int32 words."
        )
    if array.size and (array.min() < INT32_MIN or array.max() > INT32_MAX):
        raise ValueError(
            f"Invalid {name}: expected values in the int32 range, got values from "
            f"{array.min()} to {array.max()}."
        )
    if ndim is None and array.ndim < 1:
        raise ValueError(f"Invalid {name}.shape={array.shape}: expected rank >= 1.")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"Invalid {name}.shape={array.shape}: expected rank {ndim}.")
    if not 1 <= array.shape[-1] <= INT32_MAX // BITS_PER_WORD:
        raise ValueError(
            f"Invalid {name}.shape={array.shape}: expected at least one word in the last axis."
        )
    return np.ascontiguousarray(array, dtype=np.int32)


def check_channels(name: str, value: Any, words: int) -> int:
    """The true channel count ``C`` of ``words`` packed words: ``32(W-1) < C <= 32W``."""
    low, high = BITS_PER_WORD * (words - 1) + 1, BITS_PER_WORD * words
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(
            f"Invalid {name}={value!r}: expected an integer from {low} to {high}, "
            f"the channels that {words} packed words hold."
        )
    return int(value)


def check_padding_bits(name: str, packed: np.ndarray, channels: int) -> None:
    """Raises unless the padding bits (channels ``C .. 32W-1``) of ``packed`` are all 0."""
    mask = padding_bits_mask(channels)
    if mask and np.any(packed[..., -1] & np.int32(mask)):
        raise ValueError(
            f"Invalid {name}: expected 0 in the padding bits (the bits of channels "
            f">= {channels}), got some set."
        )


def check_bitpack_input(x: Any, zero_point: Any = None) -> tuple[np.ndarray, int | None]:
    """The input of TfqnnQuantize: float ``x``, or int8 ``x`` with a zero point.

    Returns ``(x, zero_point)``: the zero point defaults to 0 for int8 and is
    None for float input, where passing one is an error.
    """
    array = np.asarray(x)
    if array.dtype == np.int8:
        zero_point = 0 if zero_point is None else check_int("zero_point", zero_point, -128, 127)
    elif np.issubdtype(array.dtype, np.floating):
        if zero_point is not None:
            raise ValueError(
                f"Invalid zero_point={zero_point!r}: expected None for {array.dtype} x "
                "(a zero point is for int8 x)."
            )
    else:
        raise ValueError(f"Invalid x.dtype={array.dtype}: expected a float or int8 array.")
    if array.ndim < 1 or not 1 <= array.shape[-1] <= INT32_MAX:
        raise ValueError(
            f"Invalid x.shape={array.shape}: expected at least one channel in the last axis."
        )
    return array, zero_point


def check_float32(
    name: str, value: Any, *, allow_inf: bool = False, positive: bool = False
) -> np.float32:
    """A real number as np.float32: never NaN, finite unless ``allow_inf``, > 0 if ``positive``."""
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes +-inf
        value32 = np.float32(value) if _is_real(value) else np.float32(np.nan)
    ok = not np.isnan(value32) and (allow_inf or np.isfinite(value32))
    if not ok or (positive and not value32 > 0):
        kind = "a float32 number (+-inf allowed)" if allow_inf else "a finite float32 number"
        if positive:
            kind = "a positive finite float32 number"
        raise ValueError(f"Invalid {name}={value!r}: expected {kind}.")
    return value32


def check_vector(name: str, value: Any, length: int, *, finite: bool = True) -> np.ndarray:
    """A float32 vector of one value per output channel, as a C-contiguous array.

    ``finite=False`` lets +-inf and NaN through (the kernels compute with them).
    """
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"Invalid {name}.dtype={array.dtype}: expected a float32 array.")
    if array.shape != (length,):
        raise ValueError(
            f"Invalid {name}.shape={array.shape}: expected ({length},), "
            "one value per output channel."
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    if finite and not np.all(np.isfinite(array)):
        raise ValueError(f"Invalid {name}: expected finite float32 values.")
    return array


def check_groups(groups: Any, channels_in: int, out_channels: int) -> int:
    """Bconv2d's ``groups``: divides ``channels_in`` and ``out_channels``.

    When ``groups > 1``, each group's input channels ``channels_in / groups``
    must be a multiple of 32, so that a group starts on a word boundary.
    """
    groups = check_int("groups", groups, low=1, high=INT32_MAX)
    if groups > 1 and (
        channels_in % groups or (channels_in // groups) % BITS_PER_WORD or out_channels % groups
    ):
        raise ValueError(
            f"Invalid groups={groups}: expected a divisor of channels_in={channels_in} into "
            f"multiples of 32 channels that also divides the {out_channels} output channels."
        )
    return groups


def check_filter_words(filter_packed: np.ndarray, channels_in: int, groups: int) -> None:
    """Bconv2d's ``filter_packed [O, KH, KW, W]``: ``W = ceil((channels_in / groups) / 32)``."""
    group_channels = channels_in // groups
    if filter_packed.shape[-1] != packed_words(group_channels):
        raise ValueError(
            f"Invalid filter_packed.shape={filter_packed.shape}: expected "
            f"ceil({group_channels}/32) = {packed_words(group_channels)} words in the last "
            f"axis (channels_in / groups = {group_channels})."
        )


class OutputTransform(NamedTuple):
    """The checked arguments of the output transform of Bdense and Bconv2d."""

    multiplier: np.ndarray  # float32 [N]
    bias: np.ndarray  # float32 [N]
    clamp_min: np.float32
    clamp_max: np.float32
    output_type: str
    int8_scale: np.float32
    int8_zero_point: int


def check_output_transform(
    channels: int,
    multiplier: Any,
    bias: Any,
    *,
    clamp_min: Any = -np.inf,
    clamp_max: Any = np.inf,
    output_type: Any = "float",
    int8_scale: Any = 1.0,
    int8_zero_point: Any = 0,
    finite: bool = True,
) -> OutputTransform:
    """Checks the output transform's arguments for ``channels`` output channels.

    ``finite=False`` lets non-finite multipliers and biases through (see `check_vector`).
    """
    clamp_min = check_float32("clamp_min", clamp_min, allow_inf=True)
    clamp_max = check_float32("clamp_max", clamp_max, allow_inf=True)
    if clamp_min > clamp_max:
        raise ValueError(
            f"Invalid clamp_min={float(clamp_min)!r}: expected at most "
            f"clamp_max={float(clamp_max)!r}."
        )
    return OutputTransform(
        multiplier=check_vector("multiplier", multiplier, channels, finite=finite),
        bias=check_vector("bias", bias, channels, finite=finite),
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        output_type=check_output_type(output_type),
        int8_scale=check_float32("int8_scale", int8_scale, positive=True),
        int8_zero_point=check_int("int8_zero_point", int8_zero_point, low=-128, high=127),
    )


class Int8Add(NamedTuple):
    """The integer parameters of an int8 ``ADD`` (the int8 fused shortcut).

    ``out = clamp(((bias + a * a_multiplier + b * b_multiplier) >> shift) +
    output_zero_point, output_min, output_max)``, int32 arithmetic, ``>>``
    arithmetic (round half up): XNNPACK's int8 ``ADD``, which runs TFLite's
    builtin int8 ``ADD`` in `tfqnn.lite.Interpreter` (`int8_add_params`).
    ``[output_min, output_max]`` is ``[-128, 127]``, or ``[output_zero_point,
    127]`` with a fused ReLU.
    """

    a_multiplier: int
    b_multiplier: int
    bias: int
    shift: int
    output_zero_point: int
    output_min: int = -128
    output_max: int = 127


INT8_ADD_MIN_RATIO = 2.0**-10
INT8_ADD_MAX_RATIO = 2.0**8
"""An int8 ``ADD``'s input-to-output scale ratios must lie in ``[2^-10, 2^8)``."""


def int8_add_params(
    a_scale: Any,
    a_zero_point: Any,
    b_scale: Any,
    b_zero_point: Any,
    output_scale: Any,
    output_zero_point: Any,
    relu: bool = False,
) -> Int8Add:
    """The `Int8Add` of ``a`` (scale, zero point) plus ``b`` into the output's scale and zero point.

    With the float32 ratios ``ra = a_scale / output_scale`` and ``rb``, each in
    ``[2^-10, 2^8)``, and ``e`` the binary exponent of ``max(ra, rb)``:
    ``shift = 20 - e``, ``a_multiplier = rint(ra 2^shift)`` (ties to even;
    ``b_multiplier`` alike), ``bias = 2^(shift - 1) - a_multiplier a_zero_point
    - b_multiplier b_zero_point``. These are XNNPACK's int8 ``ADD`` parameters;
    TFLite's reference kernel (gemmlowp fixed point, 64-bit products) can
    round a sum the other way, one int8 step apart. ``relu=True``: the
    ``ADD``'s fused ReLU, ``output_min = output_zero_point``.
    """
    scales = {
        "a_scale": check_float32("a_scale", a_scale, positive=True),
        "b_scale": check_float32("b_scale", b_scale, positive=True),
    }
    out_scale = check_float32("output_scale", output_scale, positive=True)
    zero_points = [
        check_int(name, value, low=-128, high=127)
        for name, value in (
            ("a_zero_point", a_zero_point),
            ("b_zero_point", b_zero_point),
            ("output_zero_point", output_zero_point),
        )
    ]
    ratios = []
    for name, scale in scales.items():
        with np.errstate(over="ignore", under="ignore"):
            ratio = np.float32(scale / out_scale)
        if not INT8_ADD_MIN_RATIO <= ratio < INT8_ADD_MAX_RATIO:
            raise ValueError(
                f"Invalid {name}={float(scale)!r}: expected {name} / output_scale in "
                f"[2^-10, 2^8) (output_scale={float(out_scale)!r}), got {float(ratio)!r}."
            )
        ratios.append(ratio)
    exponent = int(np.frexp(max(ratios))[1]) - 1  # ratio = m 2^e with 1 <= m < 2
    shift = 20 - exponent
    a_mult, b_mult = (int(np.rint(r * np.float32(2.0**shift))) for r in ratios)
    bias = 2 ** (shift - 1) - a_mult * zero_points[0] - b_mult * zero_points[1]
    low = zero_points[2] if check_bool("relu", relu) else -128
    return Int8Add(a_mult, b_mult, bias, shift, zero_points[2], low, 127)


def output_type_code(value: Any) -> int:
    """The ``output_type`` option value of an output type name."""
    return OUTPUT_TYPES.index(check_output_type(value))


def padding_code(value: Any) -> int:
    """The ``padding`` option value of a padding name."""
    return PADDING_CODES[check_padding(value)]


# ---- custom options ------------------------------------------------------------
#
# The FlexBuffer maps that the exporter writes into ``custom_options``: integer
# options as ints, the clamps as floats. Options at their default are left out
# (a missing key takes the default), except the geometry of Bconv2d and
# BMaxPool2d, which is always written.

Options = dict[str, int | float]


def quantize_options(encoding: Any = "thermometer") -> Options:
    """The options of TfqnnQuantize: ``encoding`` of its thresholds (`ENCODINGS`)."""
    code = ENCODINGS.index(check_encoding("encoding", encoding))
    return {"encoding": code} if code else {}


def bdense_options(
    in_features: Any,
    *,
    output_type: Any = "float",
    clamp_min: Any = None,
    clamp_max: Any = None,
    input_bases: Any = 1,
    weight_bases: Any = 1,
    output_encoding: Any = "thermometer",
) -> Options:
    """The options of TfqnnBdense; a clamp of None is no clamp.

    ``output_encoding`` (`ENCODINGS`): how the output thresholds of a
    bitpacked output become bases.
    """
    options: Options = {"in_features": check_int("in_features", in_features, 1, INT32_MAX)}
    options.update(_transform_options(output_type, clamp_min, clamp_max))
    options.update(_bases_options(input_bases, weight_bases))
    options.update(_encoding_options(output_encoding, output_type))
    return options


def bconv2d_options(
    channels_in: Any,
    *,
    strides: Any = (1, 1),
    dilations: Any = (1, 1),
    padding: Any = "valid",
    pad_values: Any = 1,
    groups: Any = 1,
    output_type: Any = "float",
    clamp_min: Any = None,
    clamp_max: Any = None,
    input_bases: Any = 1,
    weight_bases: Any = 1,
    residual: bool = False,
    y_scale: Any = None,
    y_zero_point: Any = 0,
    biased_scale: Any = None,
    biased_zero_point: Any = 0,
    residual_relu: bool = False,
    output_encoding: Any = "thermometer",
) -> Options:
    """The options of TfqnnBconv2d; a clamp of None is no clamp.

    ``groups`` is checked against ``channels_in`` here and against the output
    channels by `check_groups` where the filter is known. ``residual=True``
    (option ``residual`` 1, float or int8 output): a fifth input of the
    output's shape is added to the output after the clamp (a fused shortcut
    ``ADD``); with int8 output the op's own int8 result has scale ``y_scale``
    and zero point ``y_zero_point`` (options of the same names) and the
    residual is added as an int8 ``ADD`` (`Int8Add`); ``biased_scale`` and
    ``biased_zero_point`` quantize the sum of that result and an int8
    post-bias (the op's sixth input), when it has one; ``residual_relu=True``
    clamps the int8 sum at the output's zero point (the ``ADD``'s fused ReLU).
    ``output_encoding`` as `bdense_options`.
    """
    strides = check_pair("strides", strides)
    dilations = check_pair("dilations", dilations)
    options: Options = {
        "channels_in": check_int("channels_in", channels_in, 1, INT32_MAX),
        "stride_height": strides[0],
        "stride_width": strides[1],
        "dilation_height_factor": dilations[0],
        "dilation_width_factor": dilations[1],
        "padding": padding_code(padding),
        "pad_values": check_pad_values(pad_values),
    }
    groups = check_int("groups", groups, low=1, high=INT32_MAX)
    if groups != 1:
        options["groups"] = groups
    options.update(_transform_options(output_type, clamp_min, clamp_max))
    options.update(_bases_options(input_bases, weight_bases))
    if check_bool("residual", residual):
        if options.get("output_type", 0) == 2:
            raise ValueError(
                f"Invalid output_type={output_type!r}: a residual input needs 'float' or "
                "'int8' output."
            )
        options["residual"] = 1
        if options.get("output_type", 0) == 1:
            if y_scale is None:
                raise ValueError(
                    "Invalid y_scale=None: an int8 residual needs the scale of the op's "
                    "own int8 result (a positive finite float32)."
                )
            options["y_scale"] = float(check_float32("y_scale", y_scale, positive=True))
            options["y_zero_point"] = check_int("y_zero_point", y_zero_point, low=-128, high=127)
            if biased_scale is not None:
                options["biased_scale"] = float(
                    check_float32("biased_scale", biased_scale, positive=True)
                )
                options["biased_zero_point"] = check_int(
                    "biased_zero_point", biased_zero_point, low=-128, high=127
                )
            if check_bool("residual_relu", residual_relu):
                options["residual_relu"] = 1
    options.update(_encoding_options(output_encoding, output_type))
    return options


def bmaxpool2d_options(pool_size: Any, strides: Any, padding: Any = "valid") -> Options:
    """The options of TfqnnBMaxPool2d."""
    pool = check_pair("pool_size", pool_size)
    strides = check_pair("strides", strides)
    return {
        "filter_height": pool[0],
        "filter_width": pool[1],
        "stride_height": strides[0],
        "stride_width": strides[1],
        "padding": padding_code(padding),
    }


def codebook_decode_options(bits: Any) -> Options:
    """The options of TfqnnCodebookDecode: ``bits`` per index, 1..16."""
    return {"bits": check_int("bits", bits, 1, MAX_INDEX_BITS)}


def _transform_options(output_type: Any, clamp_min: Any, clamp_max: Any) -> Options:
    options: Options = {}
    code = output_type_code(output_type)
    if code != 0:
        options["output_type"] = code
    for name, value in (("clamp_min", clamp_min), ("clamp_max", clamp_max)):
        if value is not None:
            check_float32(name, value, allow_inf=True)
            options[name] = float(value)
    if options.get("clamp_min", -np.inf) > options.get("clamp_max", np.inf):
        raise ValueError(
            f"Invalid clamp_min={clamp_min!r}: expected at most clamp_max={clamp_max!r}."
        )
    return options


def check_bases(name: str, value: Any) -> int:
    """``input_bases`` or ``weight_bases`` of a multi-basis op: an int in 1..MAX_BASES."""
    return check_int(name, value, low=1, high=MAX_BASES)


def check_thresholds(name: str, value: Any) -> np.ndarray:
    """Thresholds of multi-basis bitpacking: float32 ``[T]``, 1 <= T <= MAX_BASES, no NaN."""
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"Invalid {name}.dtype={array.dtype}: expected a float32 array.")
    array = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    if not 1 <= array.size <= MAX_BASES or np.any(np.isnan(array)):
        raise ValueError(
            f"Invalid {name}={value!r}: expected 1 to {MAX_BASES} float32 values, none NaN."
        )
    return array


def threshold_bases(
    thresholds: Any, encoding: Any = "thermometer", name: str = "thresholds"
) -> int:
    """The bases that ``thresholds`` (`check_thresholds`) write in ``encoding``.

    ``"thermometer"``: one per threshold. ``"binary"``: ``k`` for ``T = 2^k - 1``
    non-decreasing thresholds (T = 1, 3, 7, 15 or 31); basis ``i`` is bit ``i``
    of the level ``L = #{j : not x < t_j}``, which for sorted thresholds is
    ``sum_i 2^i [bit i of L]`` (a DoReFa level in binary digits).
    """
    t = check_thresholds(name, thresholds)
    if check_encoding("encoding", encoding) == "thermometer":
        return int(t.size)
    bases = int(t.size).bit_length()
    if t.size != 2**bases - 1 or np.any(np.diff(t) < 0):
        raise ValueError(
            f"Invalid {name}={thresholds!r}: expected 2^k - 1 (1, 3, 7, 15 or 31) "
            "non-decreasing float32 values for binary encoding."
        )
    return bases


def _encoding_options(encoding: Any, output_type: Any) -> Options:
    code = ENCODINGS.index(check_encoding("output_encoding", encoding))
    if not code:
        return {}
    if check_output_type(output_type) != "bitpacked":
        raise ValueError(
            f"Invalid output_encoding={encoding!r}: expected 'thermometer' unless "
            f"output_type='bitpacked' (output thresholds), got output_type={output_type!r}."
        )
    return {"output_encoding": code}


def _bases_options(input_bases: Any, weight_bases: Any) -> Options:
    options: Options = {}
    for name, value in (("input_bases", input_bases), ("weight_bases", weight_bases)):
        bases = check_bases(name, value)
        if bases != 1:
            options[name] = bases
    return options


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value
