"""TfqnnBconv2d's and TfqnnQuantize's work split over the kernels' threads, through LiteRT.

A binary convolution cuts its output among threads into row chunks (whole
8-row units) times column chunks (whole 32-column gemm panels, where the
output transform runs on a column range: one basis, one group), up to four
tasks per thread, columns only where the rows give fewer than two per
thread. These cases split unevenly: odd channel counts (a last panel of 1
to 31 columns), 1 output row (columns only), 7 units of rows (QuickNet's
7x7 convolutions: rows at 2 and 3 threads, columns too at 5), groups and multi-basis
transforms (rows only), the fused shortcut with and without the post-bias,
pad_values 0 and -1 (the border correction on a column range), float, int8
and bitpacked outputs (a bitpacked column chunk starts on a word). With the
kernels' per-thread minimum at 0 every threaded run really splits; each
output must equal the numpy reference and the one-thread run bit for bit,
on every instruction set this CPU has. TfqnnQuantize cuts its rows into
contiguous chunks (float, int8 with a zero point, thresholds), an odd
number of rows that splits unevenly. The int8 shortcut (and its int8
post-bias) adds only its chunk's columns.
"""

import numpy as np
import pytest

from tests.lite.test_tflite_ops import CODES, out_tensor, packed, run
from tfqnn.lite import _core, reference, spec
from tfqnn.lite.testing import Tensor, single_op_model

ISAS = _core.supported_isas()

# name: (batch, height, width, channels, out, kernel, strides, padding,
#        pad_values, groups, input_bases N, weight_bases M, output_type,
#        thresholds, shortcut: None | "residual" | "post_bias")
CASES = {
    # QuickNet's 7x7 block (49 rows, 7 units: rows only at 2 and 3 threads, columns too at 5),
    # 97 outputs: 4 panels, the last of 1.
    "7x7 residual post-bias": (
        1,
        7,
        7,
        64,
        97,
        (3, 3),
        (1, 1),
        "same",
        1,
        1,
        1,
        1,
        "float",
        0,
        "post_bias",
    ),
    # One output row: only the columns split; the border correction of a
    # pixel whose taps are all padding but the centre, per column range.
    "1 row, pad 0, bitpacked": (
        1,
        1,
        1,
        40,
        200,
        (3, 3),
        (1, 1),
        "same",
        0,
        1,
        1,
        1,
        "bitpacked",
        0,
        None,
    ),
    "1 row, pad -1, int8": (1, 1, 2, 33, 75, (3, 3), (1, 2), "same", -1, 1, 1, 1, "int8", 0, None),
    # Two images of 3x5 rows (30 rows, 4 units), pad -1, a threshold.
    "4 units, pad -1, threshold": (
        2,
        3,
        5,
        70,
        70,
        (3, 3),
        (1, 1),
        "same",
        -1,
        1,
        1,
        1,
        "bitpacked",
        1,
        None,
    ),
    "9 units, pad 0, residual": (
        1,
        9,
        8,
        45,
        33,
        (3, 3),
        (1, 1),
        "same",
        0,
        1,
        1,
        1,
        "float",
        0,
        "residual",
    ),
    # Rows only: groups (33 outputs per group), a multi-basis transform.
    "groups": (2, 5, 4, 64, 66, (3, 3), (1, 1), "same", 0, 2, 1, 1, "float", 0, None),
    "multi-basis residual": (
        1,
        6,
        7,
        40,
        33,
        (3, 3),
        (1, 1),
        "same",
        0,
        1,
        2,
        3,
        "float",
        0,
        "residual",
    ),
    "one basis, 2 thresholds": (
        1,
        4,
        4,
        32,
        70,
        (3, 3),
        (2, 2),
        "same",
        1,
        1,
        1,
        1,
        "bitpacked",
        2,
        None,
    ),
}


@pytest.fixture
def eager_threads():
    """Every op splits, whatever its size."""
    previous = _core.set_min_thread_work(0)
    yield
    _core.set_min_thread_work(previous)


def operands(rng, case):
    (
        batch,
        h,
        w,
        channels,
        out,
        kernel,
        strides,
        padding,
        pad_values,
        groups,
        n_in,
        n_w,
        output_type,
        n_thresholds,
        shortcut,
    ) = case
    x = np.concatenate([packed(rng, (batch, h, w), channels) for _ in range(n_in)], axis=-1)
    f = packed(rng, (n_w * out, *kernel), channels // groups)
    multiplier = rng.uniform(0.05, 1.0, n_in * n_w * out) * rng.choice([-1, 1], n_in * n_w * out)
    multiplier = multiplier.astype(np.float32)
    bias = rng.normal(size=out).astype(np.float32)
    thresholds = None
    if n_thresholds:
        thresholds = np.sort(rng.normal(size=n_thresholds)).astype(np.float32)
    kwargs = dict(
        strides=strides,
        padding=padding,
        pad_values=pad_values,
        groups=groups,
        output_type=output_type,
        clamp_min=0.0 if shortcut == "post_bias" else -1.5,  # QuickNet's ReLU
        int8_scale=0.37,
        int8_zero_point=-3,
    )
    if n_in == 1 and n_w == 1 and not n_thresholds:
        plain = reference.bconv2d(x, f, multiplier, bias, channels, **kwargs)
    else:
        plain = reference.multi_basis_bconv2d(
            x,
            f,
            multiplier,
            bias,
            channels,
            input_bases=n_in,
            weight_bases=n_w,
            thresholds=thresholds,
            **kwargs,
        )
    extra = {}
    if shortcut is not None:
        extra["residual"] = rng.normal(size=plain.shape).astype(np.float32)
    if shortcut == "post_bias":
        extra["post_bias"] = rng.normal(size=out).astype(np.float32)
    return x, f, multiplier, bias, thresholds, kwargs, plain, extra


def expected_output(case, x, f, multiplier, bias, kwargs, plain, extra):
    """The reference with the fused shortcut (the kernels' float32 steps)."""
    if "residual" not in extra:
        return plain
    if "post_bias" in extra:
        channels = case[3]
        return reference.bconv2d(x, f, multiplier, bias, channels, **kwargs, **extra)
    return plain + extra["residual"]


def conv_model(case, x, f, multiplier, bias, thresholds, kwargs, out_shape, extra):
    channels, n_in, n_w, output_type = case[3], case[10], case[11], case[12]
    options = {
        "channels_in": channels,
        "stride_height": kwargs["strides"][0],
        "stride_width": kwargs["strides"][1],
        "padding": spec.padding_code(kwargs["padding"]),
        "pad_values": kwargs["pad_values"],
        "groups": kwargs["groups"],
        "output_type": CODES[output_type],
        "clamp_min": kwargs["clamp_min"],
    }  # int8: the output tensor's scale and zero point (0.37, -3)
    if n_in != 1 or n_w != 1:
        options.update(input_bases=n_in, weight_bases=n_w)
    inputs = [
        Tensor(list(x.shape), "int32"),
        Tensor(list(f.shape), "int32", f),
        Tensor([multiplier.size], data=multiplier),
        Tensor([bias.size], data=bias),
    ]
    if thresholds is not None:
        inputs.append(Tensor([thresholds.size], data=thresholds))
    if "residual" in extra:
        options["residual"] = 1
        inputs.append(Tensor(list(out_shape)))
    if "post_bias" in extra:
        inputs.append(Tensor([extra["post_bias"].size], data=extra["post_bias"]))
    return single_op_model(
        "TfqnnBconv2d", options, inputs, [out_tensor(list(out_shape), output_type)]
    )


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", list(CASES))
def test_threads_give_the_reference_and_the_one_thread_output(rng, eager_threads, isa, name):
    case = CASES[name]
    x, f, multiplier, bias, thresholds, kwargs, plain, extra = operands(rng, case)
    expected = expected_output(case, x, f, multiplier, bias, kwargs, plain, extra)
    model = conv_model(case, x, f, multiplier, bias, thresholds, kwargs, plain.shape, extra)
    inputs = [x] + ([extra["residual"]] if "residual" in extra else [])
    with _core.isa(isa):
        one = run(model, *inputs, num_threads=1)
        np.testing.assert_array_equal(one, expected)
        for threads in (2, 3, 5):
            for _ in range(2):  # the pool's workers idle in between or not
                np.testing.assert_array_equal(run(model, *inputs, num_threads=threads), one)


# (input type, channels, thresholds): the rows of [3, 7, channels] split unevenly.
QUANTIZE_CASES = [
    ("float32", 45, 0),
    ("float32", 64, 0),
    ("int8", 33, 0),
    ("float32", 70, 3),
    ("int8", 40, 2),
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", QUANTIZE_CASES)
def test_quantize_threads_give_the_reference(rng, eager_threads, isa, case):
    dtype, channels, n_thresholds = case
    shape = [3, 7, channels]
    if dtype == "int8":
        x = rng.integers(-128, 128, shape).astype(np.int8)
        source = Tensor(shape, "int8", scale=0.02, zero_point=5)
    else:
        x = rng.normal(size=shape).astype(np.float32)
        source = Tensor(shape)
    inputs = [source]
    if n_thresholds:
        thresholds = np.sort(rng.normal(scale=0.5, size=n_thresholds)).astype(np.float32)
        inputs.append(Tensor([n_thresholds], data=thresholds))
        scale = dict(scale=0.02, zero_point=5) if dtype == "int8" else {}
        expected = reference.threshold_quantize(x, thresholds, **scale)
    else:
        expected = reference.quantize(x, 5 if dtype == "int8" else None)
    model = single_op_model("TfqnnQuantize", None, inputs, [Tensor(list(expected.shape), "int32")])
    with _core.isa(isa):
        for threads in (1, 2, 3, 5):
            np.testing.assert_array_equal(run(model, x, num_threads=threads), expected)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("post_bias", [False, True])
def test_int8_shortcut_on_column_chunks(rng, eager_threads, isa, post_bias):
    # 2 images of 1x2 pixels (one unit of rows), 70 outputs: the threads split
    # the columns, each chunk adds its columns of the int8 post-bias and shortcut.
    from tests.lite.test_int8_residual_ops import (
        POST_BIAS_SCALES,
        SCALES,
        conv_operands,
        int8_residual_model,
        int8_y,
    )

    case = (45, 70, (3, 3), (1, 1), "same", 1, (1, 2), 1, 1)
    x, f, multiplier, bias, geometry = conv_operands(rng, case)
    multiplier *= 0.05
    (sy, zy, sr, zr, so, zo), (st, zt, sb, zb) = SCALES[0], POST_BIAS_SCALES[0]
    q = int8_y(x, f, multiplier, bias, 45, 1, 1, (sy, zy, sr, zr, so, zo), geometry)
    residual = rng.integers(-128, 128, q.shape).astype(np.int8)
    change = {}
    if post_bias:
        t = rng.integers(-128, 128, 70).astype(np.int8)
        params = spec.int8_add_params(sy, zy, st, zt, sb, zb)
        q = reference.int8_add(q, np.broadcast_to(t, q.shape), params)
        change = dict(
            options={"biased_scale": sb, "biased_zero_point": zb},
            extra=[Tensor([70], "int8", t, scale=st, zero_point=zt)],
        )
        sy, zy = sb, zb
    expected = reference.int8_add(q, residual, spec.int8_add_params(sy, zy, sr, zr, so, zo))
    model = int8_residual_model(x, f, multiplier, bias, 45, geometry, q.shape, SCALES[0], **change)
    with _core.isa(isa):
        for threads in (1, 2, 3, 5):
            np.testing.assert_array_equal(run(model, x, residual, num_threads=threads), expected)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype, k", [("float32", 3), ("int8", 2)])
def test_quantize_binary_encoding_threads_give_the_reference(rng, eager_threads, isa, dtype, k):
    # DoReFa's binary digits of the level (option encoding 1): 2^k - 1 thresholds, k bases.
    shape = [3, 7, 45]
    if dtype == "int8":
        x = rng.integers(-128, 128, shape).astype(np.int8)
        source, scale = (
            Tensor(shape, "int8", scale=0.02, zero_point=5),
            dict(scale=0.02, zero_point=5),
        )
    else:
        x = rng.normal(size=shape).astype(np.float32)
        source, scale = Tensor(shape), {}
    t = np.sort(rng.normal(scale=0.5, size=2**k - 1)).astype(np.float32)
    expected = reference.threshold_quantize(x, t, encoding="binary", **scale)
    assert expected.shape == (3, 7, 2 * k)
    model = single_op_model(
        "TfqnnQuantize",
        {"encoding": 1},
        [source, Tensor([t.size], data=t)],
        [Tensor(list(expected.shape), "int32")],
    )
    with _core.isa(isa):
        for threads in (1, 2, 3, 5):
            np.testing.assert_array_equal(run(model, x, num_threads=threads), expected)
