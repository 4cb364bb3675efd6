"""Each custom op through a real LiteRT interpreter, bit-exact against tfqnn.lite.reference.

The models are written directly as flatbuffers (tfqnn.lite.testing), so these
tests cover the TFLite glue (options, shapes, the delegate) and the kernels
of the CPU path this machine picks; tests/lite/test_core.py covers every CPU
path of the kernels themselves.
"""

import numpy as np
import pytest

from tfqnn.lite import Interpreter, reference
from tfqnn.lite.testing import Tensor, single_op_model

CODES = {"float": 0, "int8": 1, "bitpacked": 2}


def packed(rng, shape, channels):
    """Random bitpacked words of `channels` true channels (padding bits 0)."""
    return reference.bitpack(rng.choice([-1.0, 1.0], size=(*shape, channels)).astype(np.float32))


def out_tensor(shape, output_type, scale=0.37, zero_point=-3):
    if output_type == "int8":
        return Tensor(shape, "int8", scale=scale, zero_point=zero_point)
    return Tensor(shape, "int32" if output_type == "bitpacked" else "float32")


def run(model, *inputs, num_threads=1):
    return Interpreter(model_content=model, num_threads=num_threads).predict(*inputs)


@pytest.mark.parametrize("channels", [1, 31, 32, 33, 100])
def test_quantize_and_dequantize(rng, channels):
    x = rng.normal(size=(2, 3, channels)).astype(np.float32)
    x[0, 0, 0] = 0.0
    words = -(-channels // 32)
    model = single_op_model(
        "TfqnnQuantize", {}, [Tensor([2, 3, channels])], [Tensor([2, 3, words], "int32")]
    )
    np.testing.assert_array_equal(run(model, x), reference.quantize(x))
    model = single_op_model(
        "TfqnnDequantize",
        {"channels": channels},
        [Tensor([2, 3, words], "int32")],
        [Tensor([2, 3, channels])],
    )
    p = reference.quantize(x)
    np.testing.assert_array_equal(run(model, p), reference.dequantize(p, channels))


def test_quantize_int8_input_uses_the_zero_point(rng):
    q = rng.integers(-128, 128, size=(4, 40)).astype(np.int8)
    model = single_op_model(
        "TfqnnQuantize",
        {},
        [Tensor([4, 40], "int8", scale=0.1, zero_point=5)],
        [Tensor([4, 2], "int32")],
    )
    np.testing.assert_array_equal(run(model, q), reference.quantize(q, zero_point=5))


@pytest.mark.parametrize(
    "in_features, out_features, rows, output_type",
    [
        (1, 1, 1, "float"),
        (33, 7, 3, "float"),
        (100, 70, 5, "int8"),
        (256, 65, 4, "bitpacked"),
        (1000, 130, 17, "float"),
    ],
)
@pytest.mark.parametrize("num_threads", [1, 2])
def test_bdense(rng, in_features, out_features, rows, output_type, num_threads):
    words = -(-in_features // 32)
    x = packed(rng, (rows,), in_features)
    w = packed(rng, (out_features,), in_features)
    m = rng.uniform(-2, 2, out_features).astype(np.float32)
    b = rng.normal(size=out_features).astype(np.float32)
    options = {
        "in_features": in_features,
        "output_type": CODES[output_type],
        "clamp_min": -3.5,
        "clamp_max": 40.0,
    }
    out_channels = -(-out_features // 32) if output_type == "bitpacked" else out_features
    model = single_op_model(
        "TfqnnBdense",
        options,
        [
            Tensor([rows, words], "int32"),
            Tensor(w.shape, "int32", w),
            Tensor([out_features], data=m),
            Tensor([out_features], data=b),
        ],
        [out_tensor([rows, out_channels], output_type)],
    )
    expected = reference.bdense(
        x,
        w,
        m,
        b,
        in_features,
        clamp_min=-3.5,
        clamp_max=40.0,
        output_type=output_type,
        int8_scale=0.37,
        int8_zero_point=-3,
    )
    np.testing.assert_array_equal(run(model, x, num_threads=num_threads), expected)


def test_bdense_keeps_leading_dimensions(rng):
    x = packed(rng, (2, 3), 50)
    w = packed(rng, (6,), 50)
    m, b = np.ones(6, np.float32), np.zeros(6, np.float32)
    model = single_op_model(
        "TfqnnBdense",
        {"in_features": 50},
        [
            Tensor([2, 3, 2], "int32"),
            Tensor(w.shape, "int32", w),
            Tensor([6], data=m),
            Tensor([6], data=b),
        ],
        [Tensor([2, 3, 6])],
    )
    np.testing.assert_array_equal(run(model, x), reference.bdense(x, w, m, b, 50))


CONV_CASES = [
    # channels, out, kernel, strides, dilations, padding, pad_values, groups, output_type
    (3, 8, (3, 3), (1, 1), (1, 1), "same", 1, 1, "float"),
    (33, 17, (3, 3), (2, 2), (1, 1), "same", 0, 1, "float"),
    (64, 40, (3, 3), (1, 1), (2, 2), "same", 0, 1, "bitpacked"),
    (70, 33, (5, 3), (2, 1), (1, 2), "valid", 1, 1, "int8"),
    (64, 32, (3, 3), (1, 1), (1, 1), "same", 1, 2, "float"),
    (100, 64, (1, 1), (1, 1), (1, 1), "valid", 1, 1, "bitpacked"),
    (40, 24, (3, 3), (2, 1), (1, 1), "same", -1, 1, "float"),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_bconv2d(rng, case):
    channels, out, kernel, strides, dilations, padding, pad_values, groups, output_type = case
    batch, height, width = 2, 9, 11
    x = packed(rng, (batch, height, width), channels)
    f = packed(rng, (out, *kernel), channels // groups)
    m = rng.uniform(-2, 2, out).astype(np.float32)
    b = rng.normal(size=out).astype(np.float32)
    kwargs = dict(
        strides=strides,
        dilations=dilations,
        padding=padding,
        pad_values=pad_values,
        groups=groups,
        output_type=output_type,
        int8_scale=0.37,
        int8_zero_point=-3,
    )
    expected = reference.bconv2d(x, f, m, b, channels, **kwargs)
    options = {
        "channels_in": channels,
        "stride_height": strides[0],
        "stride_width": strides[1],
        "dilation_height_factor": dilations[0],
        "dilation_width_factor": dilations[1],
        "padding": 1 if padding == "same" else 2,
        "pad_values": pad_values,
        "groups": groups,
        "output_type": CODES[output_type],
    }
    model = single_op_model(
        "TfqnnBconv2d",
        options,
        [
            Tensor(list(x.shape), "int32"),
            Tensor(f.shape, "int32", f),
            Tensor([out], data=m),
            Tensor([out], data=b),
        ],
        [out_tensor(list(expected.shape), output_type)],
    )
    np.testing.assert_array_equal(run(model, x, num_threads=2), expected)


@pytest.mark.parametrize(
    "pool, strides, padding",
    [
        ((2, 2), (2, 2), "valid"),
        ((3, 3), (2, 2), "same"),
        ((3, 2), (1, 1), "valid"),
    ],
)
def test_bmaxpool2d(rng, pool, strides, padding):
    x = packed(rng, (2, 7, 9), 70)
    expected = reference.bmaxpool2d(x, pool, strides, padding)
    model = single_op_model(
        "TfqnnBMaxPool2d",
        {
            "filter_height": pool[0],
            "filter_width": pool[1],
            "stride_height": strides[0],
            "stride_width": strides[1],
            "padding": 1 if padding == "same" else 2,
        },
        [Tensor(list(x.shape), "int32")],
        [Tensor(list(expected.shape), "int32")],
    )
    np.testing.assert_array_equal(run(model, x), expected)
