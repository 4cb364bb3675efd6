"""tfqnn.lite.spec: the op contract as data, against docs/lite_ops.md, brute force and TensorFlow.

The geometry is checked against properties that define it (which windows fit,
which output positions exist, the least padding that makes them fit) rather
than against its own formulas, and SAME padding against TensorFlow's own
convolution where TensorFlow is installed.
"""

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from tfqnn.lite import reference, spec

DOCS = Path(__file__).resolve().parents[2] / "docs" / "lite_ops.md"

SIZES = range(1, 18)
KERNELS = range(1, 6)
STRIDES = range(1, 5)
DILATIONS = range(1, 4)


# ---- the contract's vocabulary matches docs/lite_ops.md ---------------------------


def test_op_names_are_the_documented_ones():
    documented = re.findall(r"^### `(\w+)`", DOCS.read_text(), flags=re.MULTILINE)
    assert sorted(documented) == sorted(spec.OPS)
    assert all(name.startswith(spec.OP_PREFIX) for name in spec.OPS)


def test_option_codes_are_the_documented_ones():
    text = DOCS.read_text()
    for code, name in enumerate(spec.OUTPUT_TYPES):
        assert f"| {code} {name} |" in text
        assert spec.output_type_code(name) == code
    assert re.search(r"`padding` \(1 =\s+SAME, 2 =\s+VALID", text)
    assert spec.PADDING_CODES == {"same": 1, "valid": 2}
    assert spec.padding_code("SAME") == 1 and spec.padding_code("valid") == 2


# ---- bit layout -------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 5, 31, 32, 33, 63, 64, 65, 100])
def test_packed_words_and_padding_mask_match_packing(channels):
    packed = reference.bitpack(-np.ones(channels, np.float32))  # every true bit set
    assert spec.packed_words(channels) == len(packed) == -(-channels // 32)
    mask = spec.padding_bits_mask(channels)
    assert packed[-1] & np.int32(mask) == 0  # the true bits and the mask are disjoint
    assert (packed[-1] | np.int32(mask)) == -1 or mask == 0  # and cover the word
    assert (mask == 0) == (channels % 32 == 0)


def test_padding_bits_check():
    words = reference.bitpack(-np.ones((2, 40), np.float32))
    spec.check_padding_bits("x", words, 40)
    with pytest.raises(ValueError, match=r"^Invalid x: expected 0 in the padding bits"):
        spec.check_padding_bits("x", words | np.int32(1 << 8), 40)
    spec.check_padding_bits("x", words | np.int32(1 << 8), 41)  # bit 8 of word 1 is channel 40


# ---- geometry ------------------------------------------------------------------------


def taps(start, kernel, dilation):
    return [start + j * dilation for j in range(kernel)]


def valid_windows(in_size, kernel, stride, dilation):
    """The windows whose every tap lies inside the input, by enumeration."""
    return [
        p
        for p in range(0, in_size, stride)
        if all(0 <= t < in_size for t in taps(p, kernel, dilation))
    ]


def same_fits(in_size, kernel, stride, dilation, out_size, before, after):
    """True when out_size windows, the first at -before, have every tap in the padded input."""
    return all(
        -before <= t < in_size + after
        for o in range(out_size)
        for t in taps(o * stride - before, kernel, dilation)
    )


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv_geometry_brute_force(padding):
    for in_size, kernel, stride, dilation in itertools.product(SIZES, KERNELS, STRIDES, DILATIONS):
        args = (in_size, kernel, stride, dilation, padding)
        if padding == "valid":
            windows = valid_windows(in_size, kernel, stride, dilation)
            if not windows:
                with pytest.raises(ValueError, match=r"^Invalid in_size="):
                    spec.conv_geometry(*args)
                continue
            assert spec.conv_geometry(*args) == (len(windows), 0, 0), args
            continue
        geometry = spec.conv_geometry(*args)
        # One output per stride step that starts inside the input.
        assert geometry.out_size == len(range(0, in_size, stride)), args
        total = geometry.pad_before + geometry.pad_after
        assert geometry.pad_before == total // 2, args  # the extra pixel goes after
        assert same_fits(in_size, kernel, stride, dilation, geometry.out_size, 0, total), args
        if total:  # the least padding that fits
            assert not same_fits(
                in_size, kernel, stride, dilation, geometry.out_size, 0, total - 1
            ), args


def test_same_padding_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    # TensorFlow's convolution cannot combine strides and dilations > 1.
    combos = [(s, 1) for s in STRIDES] + [(1, d) for d in DILATIONS]
    for in_size, kernel, (stride, dilation) in itertools.product(range(1, 12), KERNELS, combos):
        x = np.arange(1, in_size + 1, dtype=np.float32).reshape(1, in_size, 1)
        geometry = spec.conv_geometry(in_size, kernel, stride, dilation, "same")
        padded = np.pad(x[0, :, 0], (geometry.pad_before, geometry.pad_after))
        for tap in range(kernel):  # a one-hot kernel reads that tap of every window
            w = np.zeros((kernel, 1, 1), np.float32)
            w[tap] = 1.0
            y = tf.nn.convolution(x, w, strides=stride, padding="SAME", dilations=dilation)
            starts = np.arange(geometry.out_size) * stride + tap * dilation
            np.testing.assert_array_equal(y.numpy()[0, :, 0], padded[starts])


def test_window_geometry_names_the_window():
    rows, cols = spec.window_geometry("pool_size", (3, 2), (7, 5), (2, 1), (1, 1), "same")
    assert rows == spec.conv_geometry(7, 3, 2, 1, "same")
    assert cols == spec.conv_geometry(5, 2, 1, 1, "same")
    with pytest.raises(ValueError, match=r"^Invalid pool_size=\(3, 6\): expected a window"):
        spec.window_geometry("pool_size", (3, 6), (7, 5), (1, 1), (1, 1), "valid")
    with pytest.raises(ValueError, match=r"^Invalid kernel_size=\(3, 3\): .*got 5x5"):
        spec.window_geometry("kernel_size", (3, 3), (4, 9), (1, 1), (2, 2), "valid")


# ---- checks --------------------------------------------------------------------------

INVALID = [
    # (argument, call)
    ("padding", lambda: spec.check_padding("full")),
    ("output_type", lambda: spec.check_output_type("int4")),
    ("pad_values", lambda: spec.check_pad_values(2)),
    ("pad_values", lambda: spec.check_pad_values(-2)),
    ("pad_values", lambda: spec.check_pad_values(True)),
    ("strides", lambda: spec.check_pair("strides", (1, 2, 3))),
    ("strides[1]", lambda: spec.check_pair("strides", (1, 0))),
    ("dilations[0]", lambda: spec.check_pair("dilations", (1.5, 1))),
    ("x_packed.dtype", lambda: spec.check_packed("x_packed", np.zeros(3))),
    ("x_packed", lambda: spec.check_packed("x_packed", np.array([2**31]))),
    ("x_packed.shape", lambda: spec.check_packed("x_packed", np.zeros((2, 3), int), ndim=4)),
    ("x_packed.shape", lambda: spec.check_packed("x_packed", np.zeros((2, 0), int))),
    ("in_features", lambda: spec.check_channels("in_features", 64, 3)),
    ("in_features", lambda: spec.check_channels("in_features", 97, 3)),
    ("x.dtype", lambda: spec.check_bitpack_input(np.zeros(3, np.int32))),
    ("x.shape", lambda: spec.check_bitpack_input(np.zeros((2, 0), np.float32))),
    ("zero_point", lambda: spec.check_bitpack_input(np.zeros(3, np.int8), 128)),
    ("zero_point", lambda: spec.check_bitpack_input(np.zeros(3, np.float32), 0)),
    ("int8_scale", lambda: spec.check_float32("int8_scale", 0.0, positive=True)),
    ("int8_scale", lambda: spec.check_float32("int8_scale", 1e39, positive=True)),
    ("clamp_min", lambda: spec.check_float32("clamp_min", float("nan"), allow_inf=True)),
    ("bias", lambda: spec.check_float32("bias", float("inf"))),
    ("multiplier.dtype", lambda: spec.check_vector("multiplier", ["a"], 1)),
    ("multiplier.shape", lambda: spec.check_vector("multiplier", np.ones(3), 4)),
    ("multiplier", lambda: spec.check_vector("multiplier", [1.0, np.inf], 2)),
    ("groups", lambda: spec.check_groups(0, 64, 4)),
    ("groups", lambda: spec.check_groups(2, 48, 4)),  # 24 channels a group
    ("groups", lambda: spec.check_groups(2, 64, 3)),
    # 64 channels in 2 groups: 1 word per tap, not 2
    ("filter_packed.shape", lambda: spec.check_filter_words(np.zeros((4, 3, 3, 2)), 64, 2)),
    ("clamp_min", lambda: spec.check_output_transform(1, [1], [0], clamp_min=1, clamp_max=0)),
    ("int8_zero_point", lambda: spec.check_output_transform(1, [1], [0], int8_zero_point=-129)),
    ("in_size", lambda: spec.conv_geometry(0, 1, 1, 1, "same")),
    ("kernel_size", lambda: spec.conv_geometry(3, 0, 1, 1, "same")),
    ("stride", lambda: spec.conv_geometry(3, 1, 0, 1, "same")),
    ("dilation", lambda: spec.conv_geometry(3, 1, 1, 2**31, "same")),
    ("in_features", lambda: spec.bdense_options(-1)),
    ("clamp_min", lambda: spec.bdense_options(8, clamp_min=2.0, clamp_max=1.0)),
    ("clamp_max", lambda: spec.bdense_options(8, clamp_max=float("nan"))),
    ("groups", lambda: spec.bconv2d_options(64, groups=0)),
    ("pool_size[0]", lambda: spec.bmaxpool2d_options((0, 2), 1)),
    ("encoding", lambda: spec.quantize_options("unary")),
    ("encoding", lambda: spec.check_encoding("encoding", 1)),
    ("output_encoding", lambda: spec.bdense_options(8, output_encoding="gray")),
    ("output_encoding", lambda: spec.bdense_options(8, output_encoding="binary")),  # float out
    ("output_encoding", lambda: spec.bconv2d_options(8, output_encoding="binary")),
    ("thresholds", lambda: spec.threshold_bases([0.0, 1.0], "binary")),  # not 2^k - 1
    ("thresholds", lambda: spec.threshold_bases([0.0, 2.0, 1.0], "binary")),  # decreasing
    ("thresholds", lambda: spec.threshold_bases(np.arange(33), "thermometer")),
    ("encoding", lambda: spec.threshold_bases([0.0], "digits")),
]


@pytest.mark.parametrize(
    "argument, call", INVALID, ids=[f"{a}-{i}" for i, (a, _) in enumerate(INVALID)]
)
def test_every_check_names_its_argument(argument, call):
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert message.startswith(f"Invalid {argument}"), message
    assert ": expected " in message, message


def test_checks_return_canonical_values():
    assert spec.check_padding("SAME") == "same"
    assert spec.check_output_type("Int8") == "int8"
    assert spec.check_pair("strides", 2) == (2, 2)
    assert spec.check_pair("strides", [3, np.int64(1)]) == (3, 1)
    assert type(spec.check_pair("strides", [3, np.int64(1)])[1]) is int
    packed = spec.check_packed("x", np.arange(6, dtype=np.int64).reshape(2, 3)[:, ::2])
    assert packed.dtype == np.int32 and packed.flags.c_contiguous
    assert spec.check_channels("in_features", 96, 3) == 96
    assert spec.check_float32("clamp_max", np.inf, allow_inf=True) == np.inf
    assert spec.check_float32("s", 0.1).dtype == np.float32
    vector = spec.check_vector("bias", [1, np.nan], 2, finite=False)
    assert vector.dtype == np.float32 and np.isnan(vector[1])
    x, zero_point = spec.check_bitpack_input(np.zeros(3, np.int8))
    assert zero_point == 0
    assert spec.check_bitpack_input(np.zeros(3, np.float16))[1] is None
    transform = spec.check_output_transform(2, [1, 2], [0, 0], output_type="BITPACKED")
    assert transform.output_type == "bitpacked" and transform.clamp_min == -np.inf
    spec.check_filter_words(np.zeros((4, 3, 3, 1)), 64, 2)  # ceil(32/32) = 1 word: passes


# ---- custom options ---------------------------------------------------------------------


def test_options_omit_defaults_and_use_the_codes():
    assert spec.bdense_options(np.int64(70)) == {"in_features": 70}
    assert spec.bdense_options(70, output_type="bitpacked", clamp_min=0, clamp_max=6) == {
        "in_features": 70,
        "output_type": 2,
        "clamp_min": 0.0,
        "clamp_max": 6.0,
    }
    assert spec.bconv2d_options(64, strides=2, padding="same", pad_values=0, groups=2) == {
        "channels_in": 64,
        "stride_height": 2,
        "stride_width": 2,
        "dilation_height_factor": 1,
        "dilation_width_factor": 1,
        "padding": 1,
        "pad_values": 0,
        "groups": 2,
    }
    assert spec.bmaxpool2d_options((3, 2), (2, 1)) == {
        "filter_height": 3,
        "filter_width": 2,
        "stride_height": 2,
        "stride_width": 1,
        "padding": 2,
    }
    for options in (spec.bconv2d_options(33, clamp_min=-1.0), spec.bmaxpool2d_options(2, 2)):
        assert all(type(v) in (int, float) for v in options.values())  # FlexBuffer-ready


def test_encodings_count_their_bases_and_write_their_codes():
    text = DOCS.read_text()
    for code, name in enumerate(spec.ENCODINGS):
        assert f"{code} {name}" in text  # docs/lite_ops.md: "`encoding` [0] (0 thermometer, ..."
    assert spec.quantize_options() == {} and spec.quantize_options("Binary") == {"encoding": 1}
    assert spec.bdense_options(8, output_type="bitpacked", output_encoding="binary") == {
        "in_features": 8,
        "output_type": 2,
        "output_encoding": 1,
    }
    assert (
        spec.bconv2d_options(8, output_type="bitpacked", output_encoding="binary")[
            "output_encoding"
        ]
        == 1
    )
    assert "output_encoding" not in spec.bconv2d_options(8, output_type="bitpacked")
    for k in range(1, 6):
        t = np.linspace(0, 1, 2**k - 1)
        assert spec.threshold_bases(t, "binary") == k
        assert spec.threshold_bases(t) == 2**k - 1
    assert spec.threshold_bases([0.5, 0.5, 0.5], "binary") == 2  # ties: non-decreasing is enough
