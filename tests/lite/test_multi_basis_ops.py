"""The multi-basis forms of TfqnnQuantize, TfqnnBdense and TfqnnBconv2d through LiteRT.

Bit-exact against tfqnn.lite.reference (threshold_quantize, multi_basis_bdense,
multi_basis_bconv2d) on every instruction set this CPU has: the GEMM is the
ISA's, the multi-basis transform is portable code.
"""

import numpy as np
import pytest

from tests.lite.test_reference import float_conv
from tests.lite.test_tflite_ops import CODES, out_tensor, packed, run
from tfqnn.lite import _core, reference
from tfqnn.lite.testing import Tensor, single_op_model

ISAS = _core.supported_isas()


def operands(rng, n_in, n_w, out, thresholds):
    multiplier = rng.uniform(0.1, 1.0, n_in * n_w * out) * rng.choice([-1, 1], n_in * n_w * out)
    bias = rng.normal(size=out).astype(np.float32)
    t = None if thresholds == 0 else np.sort(rng.normal(size=thresholds)).astype(np.float32)
    return multiplier.astype(np.float32), bias, t


def affine_inputs(multiplier, bias, thresholds):
    inputs = [Tensor([multiplier.size], data=multiplier), Tensor([bias.size], data=bias)]
    if thresholds is not None:
        inputs.append(Tensor([thresholds.size], data=thresholds))
    return inputs


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "k, out, n_in, n_w, output_type, thresholds",
    [
        (45, 7, 3, 2, "float", 0),
        (64, 40, 1, 3, "int8", 0),
        (100, 33, 2, 1, "bitpacked", 0),
        (33, 70, 3, 3, "bitpacked", 3),
        (32, 32, 1, 1, "bitpacked", 2),  # a single-basis op with output thresholds
    ],
)
def test_multi_basis_bdense(rng, isa, k, out, n_in, n_w, output_type, thresholds):
    x = packed(rng, (5, n_in), k).reshape(5, -1)
    w = packed(rng, (n_w * out,), k)
    multiplier, bias, t = operands(rng, n_in, n_w, out, thresholds)
    kwargs = dict(input_bases=n_in, weight_bases=n_w, thresholds=t, output_type=output_type)
    kwargs.update(clamp_min=-1.5, int8_scale=0.37, int8_zero_point=-3)
    expected = reference.multi_basis_bdense(x, w, multiplier, bias, k, **kwargs)
    options = {"in_features": k, "output_type": CODES[output_type], "clamp_min": -1.5}
    options.update(input_bases=n_in, weight_bases=n_w)
    model = single_op_model(
        "TfqnnBdense",
        options,
        [Tensor(list(x.shape), "int32"), Tensor(list(w.shape), "int32", w)]
        + affine_inputs(multiplier, bias, t),
        [out_tensor(list(expected.shape), output_type)],
    )
    with _core.isa(isa):
        np.testing.assert_array_equal(run(model, x, num_threads=2), expected)


CONV_CASES = [
    # channels, out, kernel, strides, padding, pad_values, groups, N, M, output, thresholds
    (5, 6, (3, 3), (1, 1), "same", 0, 1, 3, 3, "float", 0),
    (33, 17, (3, 3), (2, 2), "same", 1, 1, 2, 3, "int8", 0),
    (64, 8, (3, 3), (1, 1), "same", 0, 2, 2, 2, "float", 0),
    (70, 40, (2, 3), (1, 2), "valid", 1, 1, 1, 2, "bitpacked", 3),
    (40, 33, (1, 1), (1, 1), "valid", 1, 1, 3, 1, "bitpacked", 0),
    # zero padding's border classes: strided, asymmetric kernels, bitpacked with thresholds
    (33, 20, (3, 3), (2, 2), "same", 0, 1, 2, 2, "bitpacked", 2),
    (7, 12, (5, 2), (1, 1), "same", 0, 1, 1, 3, "float", 0),
    (64, 64, (3, 3), (2, 1), "same", 0, 2, 1, 1, "bitpacked", 1),
    # -1 padding (DoReFa's q = 0 as three bases at -1), bitpacked for the next DoReFa layer
    (40, 36, (3, 3), (1, 1), "same", -1, 1, 3, 1, "bitpacked", 3),
    (128, 64, (5, 5), (2, 2), "same", -1, 2, 3, 1, "float", 0),
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_multi_basis_bconv2d(rng, isa, case):
    channels, out, kernel, strides, padding, pad_values, groups, n_in, n_w, output_type, nt = case
    x = np.concatenate([packed(rng, (2, 7, 9), channels) for _ in range(n_in)], axis=-1)
    f = packed(rng, (n_w * out, *kernel), channels // groups)
    multiplier, bias, t = operands(rng, n_in, n_w, out, nt)
    geometry = dict(strides=strides, padding=padding, pad_values=pad_values, groups=groups)
    expected = reference.multi_basis_bconv2d(
        x,
        f,
        multiplier,
        bias,
        channels,
        input_bases=n_in,
        weight_bases=n_w,
        thresholds=t,
        output_type=output_type,
        clamp_max=2.0,
        int8_scale=0.37,
        int8_zero_point=-3,
        **geometry,
    )
    options = {
        "channels_in": channels,
        "stride_height": strides[0],
        "stride_width": strides[1],
        "padding": 1 if padding == "same" else 2,
        "pad_values": pad_values,
        "groups": groups,
        "output_type": CODES[output_type],
        "clamp_max": 2.0,
        "input_bases": n_in,
        "weight_bases": n_w,
    }
    model = single_op_model(
        "TfqnnBconv2d",
        options,
        [Tensor(list(x.shape), "int32"), Tensor(list(f.shape), "int32", f)]
        + affine_inputs(multiplier, bias, t),
        [out_tensor(list(expected.shape), output_type)],
    )
    with _core.isa(isa):
        np.testing.assert_array_equal(run(model, x, num_threads=2), expected)


def test_multi_basis_bconv2d_reference_is_the_float_conv_of_the_sums(rng):
    # Independent of the packing: sum_(n,m) c[n,m,o] conv(A_n, B_m) with float convolutions.
    channels, out, n_in, n_w = 7, 5, 3, 2
    signs_x = rng.choice([-1.0, 1.0], (n_in, 1, 6, 6, channels)).astype(np.float32)
    signs_w = rng.choice([-1.0, 1.0], (n_w, out, 3, 3, channels)).astype(np.float32)
    x = np.concatenate([reference.bitpack(s) for s in signs_x], axis=-1)
    f = np.concatenate([reference.bitpack(s) for s in signs_w])
    multiplier, bias, _ = operands(rng, n_in, n_w, out, 0)
    y = reference.multi_basis_bconv2d(
        x,
        f,
        multiplier,
        bias,
        channels,
        input_bases=n_in,
        weight_bases=n_w,
        padding="same",
        pad_values=0,
    )
    c = multiplier.reshape(n_in, n_w, out).astype(np.float64)
    expected = bias.astype(np.float64)
    for n in range(n_in):
        for m in range(n_w):
            conv = float_conv(signs_x[n], signs_w[m], (1, 1), (1, 1), "same", 0.0, 1)
            expected = expected + c[n, m] * conv
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("int8", [False, True])
def test_quantize_with_thresholds(rng, isa, int8):
    channels, thresholds = 45, np.array([-0.3, 0.0, 0.5, 2.0], np.float32)
    if int8:
        x = rng.integers(-128, 128, (3, 4, channels)).astype(np.int8)
        expected = reference.threshold_quantize(x, thresholds, scale=0.02, zero_point=5)
        source = Tensor(list(x.shape), "int8", scale=0.02, zero_point=5)
    else:
        x = rng.normal(size=(3, 4, channels)).astype(np.float32)
        x[0, 0, :4] = thresholds  # on a threshold: not below it, bit 0
        expected = reference.threshold_quantize(x, thresholds)
        source = Tensor(list(x.shape))
    assert expected.shape == (3, 4, 4 * 2)
    value = x if not int8 else (x.astype(np.float32) - 5) * np.float32(0.02)
    for n, t in enumerate(thresholds):  # each basis is the plain bitpacking of x - t
        np.testing.assert_array_equal(
            expected[..., 2 * n : 2 * n + 2], reference.bitpack(np.where(value < t, -1.0, 1.0))
        )
    model = single_op_model(
        "TfqnnQuantize",
        None,
        [source, Tensor([4], data=thresholds)],
        [Tensor(list(expected.shape), "int32")],
    )
    with _core.isa(isa):
        np.testing.assert_array_equal(run(model, x), expected)


def packed_below(x, t):
    """Bit c % 32 of word c // 32 set where x[..., c] < t: numpy's packbits, little-endian."""
    channels = x.shape[-1]
    words = -(-channels // 32)
    bits = np.zeros((*x.shape[:-1], 32 * words), bool)
    bits[..., :channels] = x < t
    return np.packbits(bits, axis=-1, bitorder="little").view("<i4").astype(np.int32)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("channels", [1, 31, 32, 64, 100, 200])
def test_quantize_thresholds_in_the_isa_bitpacking(rng, isa, channels):
    """The ISA's bitpacking compares with each threshold: whole-word and tail paths, edge values."""
    x = rng.normal(size=(3, 5, channels)).astype(np.float32)
    t = np.float32(0.375)
    edges = [t, np.nextafter(t, np.float32(1)), np.nextafter(t, np.float32(0)), 0.0, -0.0]
    edges += [np.nan, np.inf, -np.inf]
    for i, v in enumerate(edges):
        x[0, i % 5, i % channels :: 7] = v
    for values in ([t], [-0.0], [0.0], [np.inf], [-np.inf], [-1.0, t, 2.0]):
        thresholds = np.array(values, np.float32)
        expected = np.concatenate([packed_below(x, v) for v in thresholds], axis=-1)
        np.testing.assert_array_equal(reference.threshold_quantize(x, thresholds), expected)
        model = single_op_model(
            "TfqnnQuantize",
            None,
            [Tensor(list(x.shape)), Tensor([thresholds.size], data=thresholds)],
            [Tensor(list(expected.shape), "int32")],
        )
        with _core.isa(isa):
            np.testing.assert_array_equal(run(model, x), expected, err_msg=f"{thresholds}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("zero_point", [-(2**31), -129, 2**31 - 1])
def test_quantize_thresholds_int8_any_zero_point(rng, isa, zero_point):
    """A zero point outside int8's range (the reference refuses it, the op takes any int32):
    q - zero_point is taken exactly (no int32 overflow), then rounded to float32."""
    x = rng.integers(-128, 128, (4, 40)).astype(np.int8)
    x[0, :2] = [-128, 127]
    scale = 1e-9
    value = (x.astype(np.float64) - zero_point).astype(np.float32) * np.float32(scale)
    thresholds = np.array([np.median(value), -1.0, 1.0], np.float32)
    expected = np.concatenate([packed_below(value, t) for t in thresholds], axis=-1)
    assert 0 < np.count_nonzero(expected) < expected.size * 32
    model = single_op_model(
        "TfqnnQuantize",
        None,
        [Tensor([4, 40], "int8", scale=scale, zero_point=zero_point), Tensor([3], data=thresholds)],
        [Tensor(list(expected.shape), "int32")],
    )
    with _core.isa(isa):
        np.testing.assert_array_equal(run(model, x), expected)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("scale", [0.02, 3e38, -0.02, np.nan, np.inf])
@pytest.mark.parametrize("encoding", [0, 1])
def test_quantize_thresholds_int8_as_int8_thresholds(rng, isa, scale, encoding):
    """Int8 input: each threshold becomes an int8 one where the dequantized value is monotone
    in q (a positive scale), else the values are dequantized (a negative, NaN or infinite
    scale); both give the bits of float32(q - zero_point) * scale < t, with thresholds on a
    dequantized value, next to it and infinite."""
    zero_point, channels = 7, 70
    x = np.tile(np.arange(-128, 128, dtype=np.int8), 2)[: 4 * channels]
    x = rng.permutation(x).reshape(4, channels)
    with np.errstate(over="ignore", invalid="ignore"):  # inf * 0, 3e38 * 135
        value = (x.astype(np.float64) - zero_point).astype(np.float32) * np.float32(scale)
        on = np.float32(20 - zero_point) * np.float32(scale)  # a dequantized value (q = 20)
    on = on if np.isfinite(on) else np.float32(0.5)
    lists = [[on], [np.nextafter(on, np.float32(np.inf))], [np.nextafter(on, np.float32(-np.inf))]]
    lists += [[np.inf], [-np.inf], [-1.0, on, 2.0], [-np.inf, on, np.inf]]
    for values in lists:
        t = np.sort(np.array(values, np.float32))
        if encoding == 1 and t.size != 3:
            continue
        expected = reference.threshold_quantize(
            value, t, encoding=("thermometer", "binary")[encoding]
        )
        model = single_op_model(
            "TfqnnQuantize",
            {"encoding": encoding} if encoding else None,
            [
                Tensor([4, channels], "int8", scale=scale, zero_point=zero_point),
                Tensor([t.size], data=t),
            ],
            [Tensor(list(expected.shape), "int32")],
        )
        with _core.isa(isa):
            np.testing.assert_array_equal(run(model, x), expected, err_msg=f"{t}")


def bad_dense(**change):
    """A 2 x 3 bases dense model with one thing changed; returns the model bytes."""
    k, out, n_in, n_w = 40, 6, 2, 3
    parts = dict(
        options={"in_features": k, "input_bases": n_in, "weight_bases": n_w, "output_type": 2},
        x=[4, 2 * n_in],
        weights=[n_w * out, 2],
        multiplier=[n_in * n_w * out],
        bias=[out],
        thresholds=np.array([0.0, 1.0], np.float32),
        out=[4, 2],
    )
    parts.update(change)
    inputs = [
        Tensor(parts["x"], "int32"),
        Tensor(parts["weights"], "int32", np.zeros(parts["weights"], np.int32)),
        Tensor(parts["multiplier"], data=np.ones(parts["multiplier"], np.float32)),
        Tensor(parts["bias"], data=np.zeros(parts["bias"], np.float32)),
    ]
    if parts["thresholds"] is not None:
        t = np.asarray(parts["thresholds"], np.float32)
        inputs.append(Tensor(list(t.shape), data=t))
    return single_op_model("TfqnnBdense", parts["options"], inputs, [Tensor(parts["out"], "int32")])


def test_the_well_formed_bad_dense_runs(rng):
    x = packed(rng, (4, 2), 40).reshape(4, -1)
    y = run(bad_dense(), x)
    assert y.shape == (4, 2)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(options={"in_features": 40, "input_bases": 33}), "input_bases"),
        (dict(options={"in_features": 40, "weight_bases": 0}), "weight_bases"),
        (dict(x=[4, 2]), "input's last dimension"),
        (dict(weights=[17, 2]), "multiple of weight_bases"),
        (dict(multiplier=[6]), "multiplier must have shape"),
        (dict(bias=[18]), "bias must have shape"),
        (dict(thresholds=np.array([0.0, np.nan], np.float32)), "NaN"),
        (dict(thresholds=np.zeros(33, np.float32)), "at most 32"),
        (
            dict(options={"in_features": 40, "input_bases": 2, "weight_bases": 3}),
            "need output_type 2",
        ),
    ],
)
def test_malformed_multi_basis_models_fail_to_prepare(change, message):
    from tfqnn.lite import Interpreter

    interpreter = Interpreter(model_content=bad_dense(**change))
    with pytest.raises(RuntimeError, match=message):
        interpreter.allocate_tensors()
