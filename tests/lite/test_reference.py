"""Tests of the numpy reference of the TFLite ops against independent formulations.

The binary ops are checked against float arithmetic on the +-1 values they
pack (matmul, convolution with explicit padding, max pooling), the packing
against a bit-by-bit loop, and the output transform against float64 math.
"""

import math
import re

import numpy as np
import pytest

from tfqnn.lite import reference as ref


def signs(rng, shape):
    """Random +-1.0 float32 values."""
    return rng.choice(np.array([-1.0, 1.0], np.float32), size=shape)


def pack_loop(values):
    """Packs a 2-D float array bit by bit with Python ints (bit c%32 of word c//32 set where < 0)."""
    rows, channels = values.shape
    words = (channels + 31) // 32
    out = np.zeros((rows, words), np.int64)
    for r in range(rows):
        for w in range(words):
            word = 0
            for bit in range(32):
                c = 32 * w + bit
                if c < channels and values[r, c] < 0:
                    word |= 1 << bit
            out[r, w] = word - (1 << 32) if word >= 1 << 31 else word  # two's complement
    return out.astype(np.int32)


def same_pads(in_size, k_eff, stride):
    """TensorFlow's SAME padding: (out, before, after)."""
    out = math.ceil(in_size / stride)
    total = max((out - 1) * stride + k_eff - in_size, 0)
    return out, total // 2, total - total // 2


# ---- bitpack / unpack -------------------------------------------------------------


def test_bit_layout_hand_example():
    x = np.ones(40, np.float32)
    x[[0, 33]] = -1.0
    np.testing.assert_array_equal(ref.bitpack(x), np.array([1, 2], np.int32))
    x = np.ones(32, np.float32)
    x[31] = -3.0  # the sign bit of the word
    np.testing.assert_array_equal(ref.bitpack(x), np.array([-(2**31)], np.int32))
    assert ref.bitpack(-np.ones(32, np.float32))[0] == -1
    assert ref.bitpack(x).dtype == np.int32


@pytest.mark.parametrize("channels", [1, 31, 32, 33, 65, 100])
def test_bitpack_matches_bit_loop_and_round_trips(rng, channels):
    x = rng.normal(size=(2, 3, channels)).astype(np.float32)
    x[0, 0, 0] = 0.0
    packed = ref.bitpack(x)
    assert packed.shape == (2, 3, (channels + 31) // 32) and packed.dtype == np.int32
    np.testing.assert_array_equal(packed.reshape(6, -1), pack_loop(x.reshape(6, channels)))
    back = ref.unpack(packed, channels)
    assert back.dtype == np.float32 and back.shape == x.shape
    np.testing.assert_array_equal(back, np.where(x < 0, -1.0, 1.0))
    assert ref.quantize(x).tolist() == packed.tolist()
    np.testing.assert_array_equal(ref.dequantize(packed, channels), back)


@pytest.mark.parametrize("channels", [1, 31, 33, 100])
def test_padding_bits_are_zero(channels):
    packed = ref.bitpack(-np.ones((4, channels), np.float32))
    last = packed[:, -1].astype(np.int64) & 0xFFFFFFFF
    assert np.all(last == (1 << (channels % 32)) - 1)  # exactly the true channels set


def test_unpack_reads_each_bit(rng):
    words = rng.integers(-(2**31), 2**31, size=(3, 2), dtype=np.int64).astype(np.int32)
    out = ref.unpack(words, 50)
    for r in range(3):
        for c in range(50):
            bit = (int(words[r, c // 32]) >> (c % 32)) & 1
            assert out[r, c] == (-1.0 if bit else 1.0)


def test_sign_of_zero_is_plus_one():
    np.testing.assert_array_equal(ref.bitpack(np.array([0.0, -0.0, 1e-30, -1e-30])), [8])


def test_int8_with_zero_point():
    q = np.array([-128, -5, -4, -3, 0, 127], np.int8)
    assert ref.bitpack(q, zero_point=-4)[0] == 0b11
    assert ref.bitpack(q)[0] == 0b1111  # default zero point 0
    assert ref.quantize(q, zero_point=127)[0] == 0b11111


# ---- output transform ---------------------------------------------------------------


def two_roundings(dot, multiplier, bias):
    """float32(float32(dot * m) + b), each step exact in float64 then rounded once."""
    product = (dot.astype(np.float64) * multiplier.astype(np.float64)).astype(np.float32)
    return (product.astype(np.float64) + bias.astype(np.float64)).astype(np.float32)


def test_output_transform_formula(rng):
    dot = rng.integers(-500, 500, size=(4, 6, 16))
    multiplier = rng.normal(size=16).astype(np.float32)
    bias = rng.normal(size=16).astype(np.float32)
    y = ref.output_transform(dot, multiplier, bias)
    assert y.dtype == np.float32 and y.shape == dot.shape
    np.testing.assert_array_equal(y, two_roundings(dot, multiplier, bias))


def test_output_transform_does_not_fuse(rng):
    # Find inputs where a fused multiply-add rounds differently, and check that
    # the reference rounds the product first.
    dot = rng.integers(-1000, 1000, size=(20000, 1))
    multiplier = np.float32(rng.normal())
    bias = np.float32(rng.normal())
    exact = dot[:, 0] * np.float64(multiplier) + np.float64(bias)
    fused = exact.astype(np.float32)
    two_step = two_roundings(dot[:, 0], np.full(len(dot), multiplier), np.full(len(dot), bias))
    differs = fused != two_step
    assert differs.any()
    y = ref.output_transform(dot[differs], [multiplier], [bias])[:, 0]
    np.testing.assert_array_equal(y, two_step[differs])


def test_clamps(rng):
    dot = rng.integers(-50, 50, size=(100, 8))
    multiplier = rng.uniform(0.5, 2, size=8).astype(np.float32)
    bias = rng.normal(size=8).astype(np.float32)
    free = ref.output_transform(dot, multiplier, bias)
    assert free.min() < -3 and free.max() > 6
    y = ref.output_transform(dot, multiplier, bias, clamp_min=-3.0, clamp_max=6.0)
    np.testing.assert_array_equal(y, np.clip(free, -3, 6))
    relu = ref.output_transform(dot, multiplier, bias, clamp_min=0.0)
    np.testing.assert_array_equal(relu, np.maximum(free, 0))


def test_int8_rounds_half_away_from_zero():
    dot = np.arange(-3, 4)[None, :]  # y = dot + 0.5 exactly
    q = ref.output_transform(dot, np.ones(7), np.full(7, 0.5), output_type="int8")
    assert q.dtype == np.int8
    assert q[0].tolist() == [-3, -2, -1, 1, 2, 3, 4]  # -2.5 .. 3.5
    q = ref.output_transform(
        dot, np.ones(7), np.full(7, -0.5), output_type="int8", int8_zero_point=10
    )
    assert q[0].tolist() == [6, 7, 8, 9, 11, 12, 13]  # -3.5 .. 2.5, + 10
    # y / scale = 2.5 and -1.5 exactly with scale 0.25
    q = ref.output_transform(
        np.array([[5, -3]]),
        [0.125, 0.125],
        [0.0, 0.0],
        output_type="int8",
        int8_scale=0.25,
    )
    assert q[0].tolist() == [3, -2]


def test_int8_just_below_half_rounds_down():
    below = np.nextafter(np.float32(0.5), np.float32(0))  # float32(v + 0.5) would be 1.0
    q = ref.output_transform(np.zeros((1, 2), int), [1.0, 1.0], [below, -below], output_type="int8")
    assert q[0].tolist() == [0, 0]


def test_int8_scale_zero_point_and_saturation(rng):
    dot = rng.integers(-300, 300, size=(50, 5))
    multiplier = rng.uniform(0.1, 1, size=5).astype(np.float32)
    bias = rng.normal(size=5).astype(np.float32)
    scale, zero_point = 0.37, -7
    q = ref.output_transform(
        dot,
        multiplier,
        bias,
        output_type="int8",
        int8_scale=scale,
        int8_zero_point=zero_point,
    )
    v = (two_roundings(dot, multiplier, bias) / np.float32(scale)).astype(np.float64)
    expected = np.array(
        [math.floor(a + 0.5) if a >= 0 else -math.floor(-a + 0.5) for a in v.ravel()]
    )
    expected = np.clip(expected + zero_point, -128, 127).reshape(v.shape)
    assert (expected == 127).any() and (expected == -128).any()
    np.testing.assert_array_equal(q, expected)


def test_bitpacked_output(rng):
    dot = rng.integers(-20, 20, size=(3, 70))
    dot[0, 0] = 0
    bias = rng.normal(size=70).astype(np.float32)
    multiplier = np.ones(70, np.float32)
    multiplier[0], bias[0] = -1.0, -0.0  # y = 0 * -1 + -0.0 = -0.0, not negative
    y = ref.output_transform(dot, multiplier, bias)
    assert y[0, 0] == 0 and np.signbit(y[0, 0])
    packed = ref.output_transform(dot, multiplier, bias, output_type="bitpacked")
    assert packed.shape == (3, 3) and packed.dtype == np.int32
    np.testing.assert_array_equal(packed, pack_loop(y))
    assert ref.unpack(packed, 70)[0, 0] == 1.0


# ---- bdense ------------------------------------------------------------------------------


@pytest.mark.parametrize("in_features", [1, 31, 32, 33, 100])
def test_bdense_matches_float_matmul(rng, in_features):
    x = signs(rng, (5, in_features))
    w = signs(rng, (7, in_features))
    y = ref.bdense(ref.bitpack(x), ref.bitpack(w), np.ones(7), np.zeros(7), in_features)
    np.testing.assert_array_equal(y, x @ w.T)


def test_bdense_output_types_and_leading_dims(rng):
    x = signs(rng, (2, 3, 70))
    w = signs(rng, (40, 70))
    multiplier = rng.normal(size=40).astype(np.float32)
    bias = rng.normal(size=40).astype(np.float32)
    dot = np.einsum("abk,nk->abn", x, w).astype(np.int64)
    args = (ref.bitpack(x), ref.bitpack(w), multiplier, bias, 70)
    y = ref.bdense(*args, clamp_min=-2.0, clamp_max=5.0)
    assert y.shape == (2, 3, 40)
    np.testing.assert_array_equal(y, np.clip(two_roundings(dot, multiplier, bias), -2, 5))
    q = ref.bdense(*args, output_type="int8", int8_scale=0.1, int8_zero_point=3)
    np.testing.assert_array_equal(
        q,
        ref.output_transform(
            dot, multiplier, bias, output_type="int8", int8_scale=0.1, int8_zero_point=3
        ),
    )
    packed = ref.bdense(*args, output_type="bitpacked")
    assert packed.shape == (2, 3, 2)
    np.testing.assert_array_equal(packed.reshape(6, 2), pack_loop(ref.bdense(*args).reshape(6, 40)))


# ---- conv2d --------------------------------------------------------------------------------


def float_conv(x, w, strides, dilations, padding, pad_value, groups):
    """Convolution of float NHWC x with OHWI w, with explicit padding by pad_value."""
    _, height, width, _ = x.shape
    out_channels, kh, kw, group_channels = w.shape
    eff_h, eff_w = (kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1
    if padding == "same":
        out_h, top, bottom = same_pads(height, eff_h, strides[0])
        out_w, left, right = same_pads(width, eff_w, strides[1])
    else:
        out_h = len([p for p in range(0, height, strides[0]) if p + eff_h <= height])
        out_w = len([p for p in range(0, width, strides[1]) if p + eff_w <= width])
        top = bottom = left = right = 0
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    out = np.zeros((x.shape[0], out_h, out_w, out_channels))
    group_out = out_channels // groups
    for g in range(groups):
        xg = xp[..., g * group_channels : (g + 1) * group_channels]
        wg = w[g * group_out : (g + 1) * group_out]
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilations[0], j * dilations[1]
                window = xg[
                    :,
                    r0 : r0 + (out_h - 1) * strides[0] + 1 : strides[0],
                    c0 : c0 + (out_w - 1) * strides[1] + 1 : strides[1],
                ]
                out[..., g * group_out : (g + 1) * group_out] += np.einsum(
                    "bhwc,oc->bhwo", window, wg[:, i, j]
                )
    return out


CONV_CASES = [
    # (channels, groups, out_channels, kernel, strides, dilations)
    (1, 1, 3, (3, 3), (1, 1), (1, 1)),
    (31, 1, 5, (1, 1), (2, 2), (1, 1)),
    (32, 1, 4, (3, 3), (2, 2), (1, 1)),
    (33, 1, 6, (5, 3), (1, 2), (2, 2)),
    (64, 1, 3, (3, 3), (1, 1), (2, 2)),
    (70, 1, 5, (5, 3), (2, 1), (1, 1)),
    (64, 2, 6, (3, 3), (1, 1), (1, 1)),
    (128, 2, 4, (5, 3), (2, 2), (2, 1)),
]


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("pad_values", [-1, 0, 1])
@pytest.mark.parametrize("case", CONV_CASES)
def test_bconv2d_matches_float_conv(rng, case, padding, pad_values):
    channels, groups, out_channels, kernel, strides, dilations = case
    for height, width in [(10, 9), (11, 7)]:
        x = signs(rng, (2, height, width, channels))
        w = signs(rng, (out_channels, *kernel, channels // groups))
        y = ref.bconv2d(
            ref.bitpack(x),
            ref.bitpack(w),
            np.ones(out_channels),
            np.zeros(out_channels),
            channels,
            strides=strides,
            dilations=dilations,
            padding=padding.upper(),
            pad_values=pad_values,
            groups=groups,
        )
        expected = float_conv(x, w, strides, dilations, padding, float(pad_values), groups)
        assert y.shape == expected.shape
        np.testing.assert_array_equal(y, expected)


def test_bconv2d_pad_values_differ_at_border(rng):
    x = signs(rng, (1, 5, 5, 40))
    w = -np.ones((2, 3, 3, 40), np.float32)  # every padded tap adds -40 with +1 padding
    args = (ref.bitpack(x), ref.bitpack(w), np.ones(2), np.zeros(2), 40)
    ones = ref.bconv2d(*args, padding="same", pad_values=1)
    zeros = ref.bconv2d(*args, padding="same", pad_values=0)
    minus = ref.bconv2d(*args, padding="same", pad_values=-1)
    assert ones[0, 0, 0, 0] - zeros[0, 0, 0, 0] == -40 * 5  # 5 padded taps at a corner
    assert minus[0, 0, 0, 0] - zeros[0, 0, 0, 0] == 40 * 5  # a -1 pixel adds -w = +40
    np.testing.assert_array_equal(ones[0, 1:4, 1:4], zeros[0, 1:4, 1:4])
    np.testing.assert_array_equal(minus[0, 1:4, 1:4], zeros[0, 1:4, 1:4])


def test_bconv2d_output_transform(rng):
    x = signs(rng, (2, 6, 6, 33))
    w = signs(rng, (40, 3, 3, 33))
    multiplier = rng.normal(size=40).astype(np.float32)
    bias = rng.normal(size=40).astype(np.float32)
    dot = float_conv(x, w, (1, 1), (1, 1), "same", 0.0, 1).astype(np.int64)
    args = (ref.bitpack(x), ref.bitpack(w), multiplier, bias, 33)
    clamps = {"clamp_min": -4.0, "clamp_max": 9.0}
    y = ref.bconv2d(*args, padding="same", pad_values=0, **clamps)
    np.testing.assert_array_equal(y, np.clip(two_roundings(dot, multiplier, bias), -4, 9))
    packed = ref.bconv2d(*args, padding="same", pad_values=0, **clamps, output_type="bitpacked")
    assert packed.shape == (2, 6, 6, 2)
    np.testing.assert_array_equal(packed.reshape(72, 2), pack_loop(y.reshape(72, 40)))
    q = ref.bconv2d(
        *args,
        padding="same",
        pad_values=0,
        **clamps,
        output_type="int8",
        int8_scale=0.05,
    )
    expected = ref.output_transform(
        dot, multiplier, bias, **clamps, output_type="int8", int8_scale=0.05
    )
    assert len(np.unique(q)) > 20
    np.testing.assert_array_equal(q, expected)


# ---- max pooling -----------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize(
    "pool, strides",
    [((2, 2), (2, 2)), ((3, 3), (1, 1)), ((3, 2), (2, 1)), ((1, 1), (2, 2))],
)
def test_bmaxpool2d_matches_float_max_pool(rng, pool, strides, padding):
    x = signs(rng, (2, 7, 8, 70))
    x[0, :3, :3, 5] = -1.0  # a channel that is -1 over whole windows
    _, height, width, _ = x.shape
    if padding == "same":
        out_h, top, bottom = same_pads(height, pool[0], strides[0])
        out_w, left, right = same_pads(width, pool[1], strides[1])
    else:
        out_h = (height - pool[0]) // strides[0] + 1
        out_w = (width - pool[1]) // strides[1] + 1
        top = bottom = left = right = 0
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    expected = np.empty((2, out_h, out_w, 70), np.float32)
    for a in range(out_h):
        for b in range(out_w):
            r, c = a * strides[0], b * strides[1]
            expected[:, a, b] = xp[:, r : r + pool[0], c : c + pool[1]].max(axis=(1, 2))
    out = ref.bmaxpool2d(ref.bitpack(x), pool, strides, padding)
    assert out.dtype == np.int32 and out.shape == (2, out_h, out_w, 3)
    assert (expected == -1).any() and (expected == 1).any()
    np.testing.assert_array_equal(out, ref.bitpack(expected))  # padding bits stay 0 too


# ---- errors --------------------------------------------------------------------------------------


def test_errors_name_the_argument(rng):
    x3 = ref.bitpack(signs(rng, (2, 70)))
    w3 = ref.bitpack(signs(rng, (4, 70)))
    ones, zeros = np.ones(4), np.zeros(4)
    x = ref.bitpack(signs(rng, (1, 5, 5, 48)))
    f = ref.bitpack(signs(rng, (4, 3, 3, 48)))
    f24 = ref.bitpack(signs(rng, (4, 3, 3, 24)))
    cases = [
        ("in_features=200", lambda: ref.bdense(x3, w3, ones, zeros, 200)),
        ("multiplier.shape", lambda: ref.bdense(x3, w3, np.ones(3), zeros, 70)),
        ("bias", lambda: ref.bdense(x3, w3, ones, [0, 0, 0, np.nan], 70)),
        ("output_type", lambda: ref.bdense(x3, w3, ones, zeros, 70, output_type="int4")),
        ("weights_packed.shape", lambda: ref.bdense(x3, w3[:, :2], ones, zeros, 70)),
        (
            "x_packed: expected 0 in the padding bits",
            lambda: ref.bdense(x3 | np.int32(-(2**31)), w3, ones, zeros, 70),
        ),
        ("int8_zero_point", lambda: ref.bdense(x3, w3, ones, zeros, 70, int8_zero_point=200)),
        ("int8_scale", lambda: ref.bdense(x3, w3, ones, zeros, 70, int8_scale=-1.0)),
        ("channels=64", lambda: ref.unpack(x3, 64)),
        ("dot.dtype", lambda: ref.output_transform(np.ones((1, 4)), ones, zeros)),
        ("groups=2", lambda: ref.bconv2d(x, f24, ones, zeros, 48, groups=2)),
        ("padding='full'", lambda: ref.bconv2d(x, f, ones, zeros, 48, padding="full")),
        ("pad_values=2", lambda: ref.bconv2d(x, f, ones, zeros, 48, pad_values=2)),
        ("strides[0]=0", lambda: ref.bconv2d(x, f, ones, zeros, 48, strides=(0, 1))),
        ("dilations=(1, 2, 3)", lambda: ref.bconv2d(x, f, ones, zeros, 48, dilations=(1, 2, 3))),
        ("kernel_size=(3, 3)", lambda: ref.bconv2d(x, f, ones, zeros, 48, dilations=3)),
        ("filter_packed.shape", lambda: ref.bconv2d(x, f[..., :1], ones, zeros, 48)),
        ("x_packed.shape", lambda: ref.bconv2d(x[0], f, ones, zeros, 48)),
        ("zero_point=128", lambda: ref.bitpack(np.zeros(3, np.int8), zero_point=128)),
        ("zero_point=0", lambda: ref.bitpack(np.zeros(3, np.float32), zero_point=0)),
        ("x.dtype", lambda: ref.bitpack(np.zeros(3, np.int32))),
        ("pool_size[0]=0", lambda: ref.bmaxpool2d(x, 0, 1)),
        ("pool_size=(6, 1)", lambda: ref.bmaxpool2d(x, (6, 1), 1)),
    ]
    for argument, call in cases:
        with pytest.raises(ValueError, match=f"^Invalid {re.escape(argument)}"):
            call()
