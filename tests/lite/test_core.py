"""The C++ core kernels, bit for bit against tfqnn.lite.reference, on every ISA.

The kernels are called through their test hooks (tfqnn.lite._core), once per
instruction set this CPU supports (scalar, AVX2, AVX-512, ...), so every
microkernel and its tails run here whatever the machine picks by default.
Threaded runs lower the kernels' work threshold so that num_threads > 1
really starts threads on these small shapes.
"""

import ctypes
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tfqnn.lite import _core as core
from tfqnn.lite import reference as ref
from tfqnn.lite import spec
from tfqnn.lite._library import library_path

ISAS = core.supported_isas()
OUTPUT_TYPES = spec.OUTPUT_TYPES
# (clamp_min, clamp_max, int8_scale, int8_zero_point), cycled through the cases.
TRANSFORMS = [
    (-np.inf, np.inf, 1.0, 0),
    (0.0, np.inf, 0.37, -3),
    (-1.5, 2.0, 0.05, 100),
    (-np.inf, 0.25, 0.013, -128),
]


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs the test with the kernels of one instruction set."""
    with core.isa(request.param):
        yield request.param


@pytest.fixture
def eager_threads():
    """num_threads > 1 starts threads even for tiny problems."""
    previous = core.set_min_thread_work(0)
    yield
    core.set_min_thread_work(previous)


def packed(rng, shape, channels):
    """Random bitpacked words of `channels` true channels (padding bits 0)."""
    return ref.bitpack(rng.choice(np.float32([-1.0, 1.0]), size=(*shape, channels)))


def transform_kwargs(index, output_type):
    clamp_min, clamp_max, scale, zero_point = TRANSFORMS[index % len(TRANSFORMS)]
    return {
        "clamp_min": clamp_min,
        "clamp_max": clamp_max,
        "output_type": output_type,
        "int8_scale": scale,
        "int8_zero_point": zero_point,
    }


def affine(rng, n, spread):
    """Multipliers (both signs) and biases of the size of the dot products."""
    multiplier = rng.normal(scale=1.0 / spread, size=n).astype(np.float32)
    return multiplier, rng.normal(size=n).astype(np.float32)


def assert_same(actual, expected):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


# ---- dispatch --------------------------------------------------------------------


def test_isa_selection():
    assert "scalar" in ISAS and core.active_isa() in ISAS
    with core.isa("scalar"):
        assert core.active_isa() == "scalar"
    for name in ISAS:
        core.set_isa(name)
        assert core.active_isa() == name
    core.set_isa(None)
    assert core.active_isa() == ISAS[-1] or os.environ.get("TFQNN_ISA")
    with pytest.raises(ValueError, match="isa"):
        core.set_isa("sse")
    for name in set(core.ISAS) - set(ISAS):
        with pytest.raises(ValueError, match=f"^Invalid isa='{name}': expected one this CPU"):
            core.set_isa(name)


def test_environment_variable_selects_the_isa():
    """TFQNN_ISA is read once per process: each value in its own process."""
    script = "import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).tfqnn_core_active_isa())"
    best = ISAS[-1]
    cases = {"scalar": "scalar", "": best, "bogus": best}
    if "avx2" in ISAS:
        cases["avx2"] = "avx2"
        # Naming an ISA the CPU lacks falls back to the best one below it.
        cases["avx512"] = "avx512" if "avx512" in ISAS else "avx2"
    if "neon" not in ISAS:
        cases["neon"] = "scalar"
    for value, expected in cases.items():
        env = dict(os.environ, TFQNN_ISA=value)
        result = subprocess.run(
            [sys.executable, "-c", script, library_path()],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert core.ISAS[int(result.stdout)] == expected, value


def test_library_exports_only_its_entry_points():
    lib = ctypes.CDLL(library_path())
    assert lib.tfqnn_core_active_isa() in range(4)
    with pytest.raises(AttributeError):
        lib._ZN5tfqnn4core10active_isaEv  # noqa: B018  (C++ symbols stay hidden)


# ---- bitpacking -----------------------------------------------------------------

CHANNELS = [1, 31, 32, 33, 65, 100, 200]


@pytest.mark.parametrize("channels", CHANNELS)
def test_bitpack_float(isa, rng, channels):
    x = rng.normal(size=(2, 5, channels)).astype(np.float32)
    x[0, 0] = 0.0
    x[0, 1] = -0.0
    x[0, 2, ::3] = np.nan
    x[0, 3, ::2] = -np.inf
    x[0, 4, 1::2] = np.inf
    assert_same(core.bitpack(x), ref.bitpack(x))
    assert_same(core.bitpack(x[1, 0]), ref.bitpack(x[1, 0]))
    assert_same(core.bitpack(x[:, :, ::-1]), ref.bitpack(x[:, :, ::-1]))  # strided view
    assert_same(core.bitpack(x.astype(np.float64)), ref.bitpack(x.astype(np.float32)))


@pytest.mark.parametrize("channels", CHANNELS)
def test_bitpack_int8(isa, rng, channels):
    q = rng.integers(-128, 128, size=(7, channels)).astype(np.int8)
    q[0] = -128
    q[1] = 127
    for zero_point in (None, -128, -5, 0, 7, 127):
        assert_same(core.bitpack(q, zero_point), ref.bitpack(q, zero_point))


@pytest.mark.parametrize("channels", CHANNELS)
def test_unpack(isa, rng, channels):
    words = packed(rng, (3, 4), channels)
    assert_same(core.unpack(words, channels), ref.unpack(words, channels))
    every_bit = rng.integers(-(2**31), 2**31, size=(5, -(-channels // 32))).astype(np.int32)
    assert_same(core.unpack(every_bit, channels), ref.unpack(every_bit, channels))


# ---- binary dense ---------------------------------------------------------------

# (leading dims of x, in_features, out_features, num_threads)
DENSE_CASES = [
    ((3,), 1, 5, 1),
    ((4,), 31, 33, 3),
    ((2, 3), 33, 64, 1),
    ((40,), 65, 31, 3),  # one column panel: threads split the rows
    ((1,), 100, 1, 1),
    ((9,), 200, 100, 3),
    ((), 50, 20, 1),
    ((17,), 64, 96, 3),
    ((70,), 1000, 130, 1),  # several register tiles, row and column tails
    ((70,), 1000, 130, 3),
    ((5,), 1000, 130, 3),  # threads split the column panels
    ((2, 35), 1000, 130, 1),
    # column tails of every width the vector transforms split on (the
    # AVX-512 transform once failed for 49-63 remaining columns)
    ((6,), 70, 49, 1),
    ((6,), 70, 55, 1),
    ((6,), 70, 63, 1),
    ((6,), 70, 79, 1),
    ((6,), 70, 113, 1),
    ((6,), 70, 127, 1),
]


@pytest.mark.parametrize("output_type", OUTPUT_TYPES)
@pytest.mark.parametrize("case", range(len(DENSE_CASES)))
def test_bdense(isa, rng, eager_threads, case, output_type):
    lead, in_features, out_features, threads = DENSE_CASES[case]
    x = packed(rng, lead, in_features)
    w = packed(rng, (out_features,), in_features)
    multiplier, bias = affine(rng, out_features, np.sqrt(in_features))
    kwargs = transform_kwargs(case, output_type)
    expected = ref.bdense(x, w, multiplier, bias, in_features, **kwargs)
    actual = core.bdense(x, w, multiplier, bias, in_features, num_threads=threads, **kwargs)
    assert_same(actual, expected)


def test_bdense_no_rows(isa):
    w = np.zeros((3, 2), np.int32)
    out = core.bdense(np.zeros((0, 2), np.int32), w, np.ones(3), np.zeros(3), 40)
    assert out.shape == (0, 3)


def test_int8_rounds_half_away_from_zero(isa):
    # x = +1 everywhere; weight row o has o bits set: dot = 32 - 2 o, y = dot + 0.5.
    w = np.array([[(1 << o) - 1] for o in range(32)], np.int64).astype(np.int32)
    x = np.zeros((1, 1), np.int32)
    dots = 32 - 2 * np.arange(32)
    for zero_point in (0, 10):
        q = core.bdense(
            x, w, np.ones(32), np.full(32, 0.5), 32, output_type="int8", int8_zero_point=zero_point
        )
        y = dots + 0.5
        expected = np.clip(np.sign(y) * np.floor(np.abs(y) + 0.5) + zero_point, -128, 127)
        np.testing.assert_array_equal(q[0], expected)
    below = np.nextafter(np.float32(0.5), np.float32(0))
    q = core.bdense(x, w[16:18], np.zeros(2), [below, -below], 32, output_type="int8")
    assert q[0].tolist() == [0, 0]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_overflow_to_infinity(isa, rng):
    x = packed(rng, (4,), 70)
    w = packed(rng, (40,), 70)
    multiplier = np.full(40, 3e38, np.float32) * rng.choice([-1, 1], size=40)
    bias = np.zeros(40, np.float32)
    for output_type in OUTPUT_TYPES:
        for clamp in ((-np.inf, np.inf), (-2.0, 5.0)):
            kwargs = {
                "clamp_min": clamp[0],
                "clamp_max": clamp[1],
                "output_type": output_type,
                "int8_scale": 0.01,
            }
            assert_same(
                core.bdense(x, w, multiplier, bias, 70, **kwargs),
                ref.bdense(x, w, multiplier, bias, 70, **kwargs),
            )


# ---- binary conv2d --------------------------------------------------------------

# (batch, height, width, channels_in, channels_out, kernel, strides, dilations,
#  padding, groups, num_threads)
CONV_CASES = [
    (1, 5, 6, 1, 3, (3, 3), (1, 1), (1, 1), "same", 1, 1),
    (2, 7, 5, 31, 5, (3, 3), (2, 2), (1, 1), "same", 1, 3),
    (2, 6, 7, 33, 33, (3, 2), (1, 1), (2, 2), "valid", 1, 1),
    (1, 9, 8, 65, 40, (3, 3), (2, 2), (2, 2), "same", 1, 3),
    (2, 5, 5, 100, 17, (1, 1), (1, 1), (1, 1), "valid", 1, 1),  # input rows as they are
    (1, 6, 5, 200, 64, (2, 2), (1, 1), (1, 1), "same", 1, 3),  # padding after only
    (2, 6, 6, 64, 6, (3, 3), (1, 1), (1, 1), "same", 2, 1),
    (1, 7, 7, 128, 66, (3, 3), (2, 1), (1, 1), "valid", 2, 3),  # 33 outputs per group
    (1, 4, 9, 32, 1, (1, 5), (1, 1), (1, 1), "same", 1, 1),
    (2, 8, 8, 96, 40, (1, 1), (2, 2), (2, 2), "same", 1, 3),
    (1, 3, 3, 33, 70, (5, 5), (1, 1), (1, 1), "same", 1, 1),  # kernel larger than input
    (1, 10, 3, 64, 32, (3, 1), (1, 1), (3, 1), "same", 2, 3),
    (2, 17, 19, 96, 40, (3, 3), (1, 1), (1, 1), "same", 1, 1),  # many row blocks
    (2, 17, 19, 96, 40, (3, 3), (1, 1), (1, 1), "same", 1, 3),
    (1, 9, 11, 256, 70, (3, 3), (2, 2), (1, 1), "valid", 1, 1),
    (2, 4, 5, 64, 10, (1, 1), (1, 1), (1, 1), "same", 2, 3),  # input rows, per group
    # pad_values=0's border classes: 4 / 3 distinct top and bottom rows per axis,
    (1, 13, 11, 64, 40, (3, 3), (1, 1), (4, 3), "same", 1, 1),
    # and a 7x7 stride-2 stem's, over blocks that start inside an output row.
    (2, 23, 21, 32, 33, (7, 7), (2, 2), (1, 1), "same", 1, 3),
    # Enough rows for several chunks per thread (taken one at a time), in
    # counts that split unevenly: 1517 rows, 190 units of 8, 8 chunks;
    (1, 37, 41, 40, 24, (3, 3), (1, 1), (1, 1), "same", 1, 2),
    # 2 x 12 x 29 rows, 87 units, 9 chunks over 3 threads.
    (2, 23, 29, 33, 20, (3, 3), (2, 1), (1, 1), "same", 1, 3),
]


@pytest.mark.parametrize("output_type", OUTPUT_TYPES)
@pytest.mark.parametrize("pad_values", [-1, 0, 1])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_bconv2d(isa, eager_threads, case, pad_values, output_type):
    batch, h, w, cin, cout, kernel, strides, dilations, padding, groups, threads = CONV_CASES[case]
    rng = np.random.default_rng(case)
    x = packed(rng, (batch, h, w), cin)
    filt = packed(rng, (cout, *kernel), cin // groups)
    multiplier, bias = affine(rng, cout, np.sqrt(kernel[0] * kernel[1] * cin / groups))
    kwargs = dict(
        strides=strides,
        dilations=dilations,
        padding=padding,
        pad_values=pad_values,
        groups=groups,
        **transform_kwargs(case + pad_values, output_type),
    )
    expected = _reference_conv(
        case, pad_values, output_type, x, filt, multiplier, bias, cin, kwargs
    )
    actual = core.bconv2d(x, filt, multiplier, bias, cin, num_threads=threads, **kwargs)
    assert_same(actual, expected)


_CONV_EXPECTED = {}


def _reference_conv(case, pad_values, output_type, x, filt, multiplier, bias, cin, kwargs):
    """The reference result, computed once for all ISAs (same seed, same data)."""
    key = (case, pad_values, output_type)
    if key not in _CONV_EXPECTED:
        _CONV_EXPECTED[key] = ref.bconv2d(x, filt, multiplier, bias, cin, **kwargs)
    return _CONV_EXPECTED[key]


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv_geometry(padding):
    for in_size in range(1, 12):
        for kernel in range(1, 6):
            for stride in (1, 2, 3):
                for dilation in (1, 2):
                    args = (in_size, kernel, stride, dilation, padding)
                    if padding == "valid" and in_size < (kernel - 1) * dilation + 1:
                        assert core.conv_geometry(*args) == (0, 0), args  # spec raises
                        continue
                    expected = spec.conv_geometry(*args)
                    assert core.conv_geometry(*args) == expected[:2], args


# ---- binary max pooling ---------------------------------------------------------

POOL_CASES = [
    ((2, 7, 6, 3), (2, 2), (2, 2), "valid"),
    ((1, 7, 6, 1), (3, 3), (2, 2), "same"),
    ((2, 5, 9, 2), (2, 3), (1, 2), "same"),
    ((1, 4, 4, 5), (1, 1), (1, 1), "valid"),
    ((1, 6, 5, 1), (3, 2), (3, 1), "same"),
    ((1, 2, 2, 4), (5, 5), (1, 1), "same"),  # window larger than the input
    ((1, 9, 8, 19), (3, 3), (1, 1), "same"),  # an Inception pool branch, many words
    ((2, 11, 10, 6), (3, 3), (2, 2), "same"),  # a stage pool
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_bmaxpool2d(rng, case):
    shape, pool, strides, padding = case
    # Mostly -1 (bits set), so that the AND keeps some bits.
    x = (
        rng.integers(-(2**31), 2**31, size=shape)
        | rng.integers(-(2**31), 2**31, size=shape)
        | rng.integers(-(2**31), 2**31, size=shape)
    ).astype(np.int32)
    assert_same(
        core.bmaxpool2d(x, pool, strides, padding), ref.bmaxpool2d(x, pool, strides, padding)
    )


# ---- arguments --------------------------------------------------------------------


def test_bad_arguments_raise_instead_of_reaching_the_kernels(rng):
    x = packed(rng, (2,), 40)
    w = packed(rng, (3,), 40)
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    image = packed(rng, (1, 4, 4), 64)
    filt = packed(rng, (3, 3, 3), 64)
    cases = [
        ("weights_packed.shape", lambda: core.bdense(x, w[:, :1], ones, zeros, 40)),
        ("in_features=65", lambda: core.bdense(x, w, ones, zeros, 65)),
        ("multiplier.shape", lambda: core.bdense(x, w, ones[:2], zeros, 40)),
        ("output_type='int4'", lambda: core.bdense(x, w, ones, zeros, 40, output_type="int4")),
        ("clamp_min=1.0", lambda: core.bdense(x, w, ones, zeros, 40, clamp_min=1.0, clamp_max=0.0)),
        ("int8_scale=0.0", lambda: core.bdense(x, w, ones, zeros, 40, int8_scale=0.0)),
        ("num_threads=0", lambda: core.bdense(x, w, ones, zeros, 40, num_threads=0)),
        ("filter_packed.shape", lambda: core.bconv2d(image, filt[..., :1], ones, zeros, 64)),
        ("groups=2", lambda: core.bconv2d(image, filt, ones, zeros, 64, groups=2)),
        ("kernel_size=(3, 3)", lambda: core.bconv2d(image, filt, ones, zeros, 64, dilations=2)),
        ("x_packed.shape", lambda: core.bconv2d(image[0], filt, ones, zeros, 64)),
        ("pad_values=2", lambda: core.bconv2d(image, filt, ones, zeros, 64, pad_values=2)),
        ("padding='full'", lambda: core.bconv2d(image, filt, ones, zeros, 64, padding="full")),
        ("zero_point=128", lambda: core.bitpack(np.zeros(3, np.int8), 128)),
        ("x.dtype", lambda: core.bitpack(np.zeros(3, np.int32))),
        ("channels=65", lambda: core.unpack(np.zeros((2, 2), np.int32), 65)),
        ("pool_size=(5, 1)", lambda: core.bmaxpool2d(image, (5, 1), 1)),
        ("isa='sse'", lambda: core.set_isa("sse")),
    ]
    for argument, call in cases:
        with pytest.raises(ValueError, match=f"^Invalid {re.escape(argument)}"):
            call()


def test_non_finite_transform_values_reach_the_kernels():
    # Unlike the reference, the front end lets them through: the kernels compute with them.
    x = np.zeros((2, 2), np.int32)  # +1 everywhere, as w: dot = 40
    w = np.zeros((2, 2), np.int32)
    y = core.bdense(x, w, [np.inf, 1.0], [0.0, np.nan], 40)
    assert np.isinf(y[:, 0]).all() and np.isnan(y[:, 1]).all()
