"""The binary encoding of thresholds (docs/lite_ops.md) through LiteRT on every ISA.

``TfqnnQuantize`` with option ``encoding`` 1 and ``TfqnnBdense`` /
``TfqnnBconv2d`` with ``output_encoding`` 1 write, from ``2^k - 1`` sorted
thresholds, the k binary digits of the level ``L = #{j : not x < t_j}``
(bit 1 where the digit is 0). Checked against an independent level
(``np.searchsorted``), the numpy reference bit for bit, and malformed models.
"""

import numpy as np
import pytest

from tests.lite.test_multi_basis_ops import affine_inputs, bad_dense, operands, packed_below
from tests.lite.test_tflite_ops import packed, run
from tfqnn.lite import Interpreter, _core, reference
from tfqnn.lite.testing import Tensor, single_op_model

ISAS = _core.supported_isas()


def digit_planes(value, thresholds):
    """The k digit planes of the level of `value`, from numpy's sorted search (independent)."""
    k = int(thresholds.size).bit_length()
    level = np.searchsorted(thresholds, value, side="right")  # #{t <= x}; NaN sorts past all
    digits = [(level >> i) & 1 for i in range(k)]
    return np.concatenate([packed_below(d, 0.5) for d in digits], axis=-1)


def binary_output(op, args, t, **kwargs):
    """The reference `op` (a multi-basis one) with output thresholds `t` in binary
    encoding, after checking it against the digit planes of its float output."""
    expected = op(*args, thresholds=t, output_type="bitpacked", output_encoding="binary", **kwargs)
    np.testing.assert_array_equal(expected, digit_planes(op(*args, **kwargs), t))
    return expected


def binary_output_model(name, options, x, weights, multiplier, bias, t, expected):
    """A file of one `name` op with binary-encoded output thresholds `t`."""
    return single_op_model(
        name,
        {**options, "output_type": 2, "output_encoding": 1},
        [Tensor(list(x.shape), "int32"), Tensor(list(weights.shape), "int32", weights)]
        + affine_inputs(multiplier, bias, t),
        [Tensor(list(expected.shape), "int32")],
    )


def sorted_thresholds(rng, k, ties=False):
    t = np.sort(rng.normal(0.3, 0.6, 2**k - 1)).astype(np.float32)
    if ties and t.size >= 3:
        t[1] = t[2]  # equal thresholds: still a non-decreasing code
    return t


def edge_inputs(rng, shape, thresholds):
    """Random values with the thresholds, their float32 neighbours, 0, -0, NaN and infinities."""
    x = rng.normal(0.3, 0.8, shape).astype(np.float32)
    t = thresholds
    edges = np.concatenate(
        [t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))]
    )
    edges = np.concatenate([edges, np.float32([0.0, -0.0, np.nan, np.inf, -np.inf])])
    flat = x.reshape(-1)
    positions = rng.choice(flat.size, min(flat.size, 3 * edges.size), replace=False)
    flat[positions] = np.resize(edges, positions.size)
    return x


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_quantize_binary_encoding_float(rng, isa, k):
    for channels, ties in ((1, False), (33, True), (64, False), (100, True)):
        t = sorted_thresholds(rng, k, ties)
        x = edge_inputs(rng, (3, 4, channels), t)
        expected = reference.threshold_quantize(x, t, encoding="binary")
        assert expected.shape == (3, 4, k * -(-channels // 32))
        np.testing.assert_array_equal(expected, digit_planes(x, t))
        model = single_op_model(
            "TfqnnQuantize",
            {"encoding": 1},
            [Tensor(list(x.shape)), Tensor([t.size], data=t)],
            [Tensor(list(expected.shape), "int32")],
        )
        with _core.isa(isa):
            np.testing.assert_array_equal(run(model, x), expected, err_msg=f"{channels}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("k", [2, 3])
def test_quantize_binary_encoding_int8(rng, isa, k):
    # The dequantized int8 value float32(q - z) * s against the thresholds; some on one.
    scale, zero_point = 0.01, -7
    x = rng.integers(-128, 128, (5, 70)).astype(np.int8)
    value = (x.astype(np.float32) - zero_point) * np.float32(scale)
    t = np.sort(rng.choice(value.reshape(-1), 2**k - 1, replace=False)).astype(np.float32)
    expected = reference.threshold_quantize(
        x, t, scale=scale, zero_point=zero_point, encoding="binary"
    )
    np.testing.assert_array_equal(expected, digit_planes(value, t))
    model = single_op_model(
        "TfqnnQuantize",
        {"encoding": 1},
        [Tensor([5, 70], "int8", scale=scale, zero_point=zero_point), Tensor([t.size], data=t)],
        [Tensor(list(expected.shape), "int32")],
    )
    with _core.isa(isa):
        np.testing.assert_array_equal(run(model, x), expected)


def test_binary_code_is_the_thermometer_code_in_binary(rng):
    # sum_i 2^i b_i = sum_j [not x < t_j]: the digits of the level, from either code.
    t = sorted_thresholds(rng, 3)
    x = edge_inputs(rng, (40, 32), t)
    thermometer = reference.threshold_quantize(x, t)  # [40, 7]: one word per basis
    binary = reference.threshold_quantize(x, t, encoding="binary")  # [40, 3]
    passed = sum(
        (reference.unpack(thermometer[:, j : j + 1], 32) > 0).astype(int) for j in range(7)
    )
    level = sum((reference.unpack(binary[:, i : i + 1], 32) > 0).astype(int) << i for i in range(3))
    assert len(np.unique(level)) == 8
    np.testing.assert_array_equal(level, passed)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("k", [2, 3])
def test_bdense_binary_output_encoding(rng, isa, k):
    in_features, out, n_in, n_w = 70, 40, 2, 1
    x = packed(rng, (6, n_in), in_features).reshape(6, -1)
    w = packed(rng, (n_w * out,), in_features)
    multiplier, bias, _ = operands(rng, n_in, n_w, out, 0)
    t = sorted_thresholds(rng, k, ties=True)
    kwargs = dict(input_bases=n_in, weight_bases=n_w, clamp_min=-1.0)
    args = (x, w, multiplier, bias, in_features)
    expected = binary_output(reference.multi_basis_bdense, args, t, **kwargs)
    assert expected.shape == (6, k * 2)
    options = {"in_features": in_features, "clamp_min": -1.0, "input_bases": n_in}
    model = binary_output_model("TfqnnBdense", options, x, w, multiplier, bias, t, expected)
    with _core.isa(isa):
        np.testing.assert_array_equal(run(model, x, num_threads=2), expected)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(
    "channels, out, pad_values, n_in, k",
    [(40, 36, -1, 2, 2), (96, 33, 0, 3, 3), (7, 64, 1, 1, 1)],
)
def test_bconv2d_binary_output_encoding(rng, isa, channels, out, pad_values, n_in, k):
    x = np.concatenate([packed(rng, (2, 7, 9), channels) for _ in range(n_in)], axis=-1)
    f = packed(rng, (out, 3, 3), channels)
    multiplier, bias, _ = operands(rng, n_in, 1, out, 0)
    t = sorted_thresholds(rng, k)
    geometry = dict(padding="same", pad_values=pad_values, input_bases=n_in)
    args = (x, f, multiplier, bias, channels)
    expected = binary_output(reference.multi_basis_bconv2d, args, t, **geometry)
    options = {"channels_in": channels, "padding": 1, "pad_values": pad_values, "input_bases": n_in}
    model = binary_output_model("TfqnnBconv2d", options, x, f, multiplier, bias, t, expected)
    with _core.isa(isa):
        np.testing.assert_array_equal(run(model, x, num_threads=2), expected)


def quantize_model(options, thresholds, channels=40):
    inputs = [Tensor([2, channels])]
    if thresholds is not None:
        t = np.asarray(thresholds, np.float32)
        inputs.append(Tensor([t.size], data=t))
    return single_op_model("TfqnnQuantize", options, inputs, [Tensor([2, 2], "int32")])


def dense_model(encoding, thresholds):
    """A one-basis Bdense with bitpacked output, output_encoding `encoding`."""
    return bad_dense(
        options={"in_features": 40, "output_type": 2, "output_encoding": encoding},
        x=[4, 2],
        weights=[6, 2],
        multiplier=[6],
        thresholds=thresholds,
    )


@pytest.mark.parametrize(
    "model, message",
    [
        (lambda: quantize_model({"encoding": 2}, [0.0]), "encoding"),
        (lambda: quantize_model({"encoding": -1}, [0.0]), "encoding"),
        (lambda: quantize_model({"encoding": 1}, None), "needs thresholds"),
        (lambda: quantize_model({"encoding": 1}, [0.0, 1.0]), "2\\^k - 1"),
        (lambda: quantize_model({"encoding": 1}, [0.0, 2.0, 1.0]), "must not decrease"),
        (lambda: quantize_model({"bits": 1}, [0.0]), "unknown option"),
        (lambda: dense_model(1, [0.0, 1.0]), "2\\^k - 1"),
        (lambda: dense_model(1, [1.0, 0.0, 2.0]), "must not decrease"),
        (lambda: dense_model(1, None), "needs output thresholds"),
        (lambda: dense_model(3, [0.0, 1.0, 2.0]), "output_encoding"),
    ],
)
def test_malformed_encodings_fail_to_prepare(model, message):
    interpreter = Interpreter(model_content=model())
    with pytest.raises(RuntimeError, match=message):
        interpreter.allocate_tensors()


def test_binary_output_encoding_with_a_residual_fails_to_prepare(rng):
    options = {
        "channels_in": 40,
        "padding": 2,
        "residual": 1,
        "output_encoding": 1,
    }
    f = packed(rng, (8, 1, 1), 40)
    model = single_op_model(
        "TfqnnBconv2d",
        options,
        [
            Tensor([1, 3, 3, 2], "int32"),
            Tensor(list(f.shape), "int32", f),
            Tensor([8], data=np.ones(8, np.float32)),
            Tensor([8], data=np.zeros(8, np.float32)),
            Tensor([1, 3, 3, 8]),
        ],
        [Tensor([1, 3, 3, 8])],
    )
    with pytest.raises(RuntimeError, match="needs output thresholds"):
        Interpreter(model_content=model).allocate_tensors()
