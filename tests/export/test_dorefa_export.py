"""Export of layers that read DoReFa activations as multi-basis binary ops.

A k-bit DoReFa input ``q = round(n clip(x, 0, 1)) / n`` is k binary bases,
the digits of its level (or ``n = 2^k - 1`` thermometer bases;
`tfqnn.export.thermometer`); checked against the quantizer on every float32
around the steps, and whole layers against Keras.
"""

import keras
import numpy as np
import pytest
from flatbuffers import flexbuffers

import tfqnn
from tests._tflite import builtin_ops
from tfqnn.export import thermometer
from tfqnn.export.plan import MultiBasisGroup, plan_groups
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.lite import reference
from tfqnn.lite.flatbuffer import read_model
from tfqnn.quantizers import DoReFa

from .test_export import randomize

pytestmark = pytest.mark.filterwarnings("ignore:Quant.* has a binary kernel_quantizer")


def dorefa(bits=2):
    return dict(
        input_quantizer=DoReFa(bits, mode="activations"),
        kernel_quantizer=DoReFa(1, mode="weights"),
    )


def neighbours(values, count=40):
    """Every float32 within `count` steps of each value."""
    bits = np.asarray(values, np.float32).view(np.int32)[:, None] + np.arange(-count, count + 1)
    return bits.astype(np.int32).view(np.float32).reshape(-1)


def custom_op_options(data):
    """(name, options) of every custom op of a .tflite file, in order."""
    model = read_model(data)
    graph = model.Subgraphs(0)
    found = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex()).CustomCode()
        if code is not None:
            raw = op.CustomOptionsAsNumpy()
            options = flexbuffers.Loads(bytes(raw)) if not isinstance(raw, int) else {}
            found.append((code.decode(), options))
    return found


def base_values(x, code):
    """The bases s [..., N] of `code` for inputs x, as the ops write them (+1 / -1)."""
    below = x[:, None] < code.thresholds
    if code.encoding == "thermometer":
        return np.where(below, -1.0, 1.0)
    level = (~below).sum(axis=1)
    return np.stack([np.where((level >> i) & 1, 1.0, -1.0) for i in range(code.scales.size)], 1)


@pytest.mark.parametrize("encoding", ["binary", "thermometer"])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_dorefa_code_is_the_quantizer_on_every_float32_near_a_step(rng, bits, encoding):
    quantizer = DoReFa(bits, mode="activations")
    code = thermometer.dorefa_bases(quantizer, max_bits=4, encoding=encoding)
    n = 2**bits - 1
    assert code.encoding == (encoding if bits > 1 else "thermometer")  # one threshold: the same
    assert code.scales.shape == (bits if encoding == "binary" else n,)
    assert code.thresholds.shape == (n,) and np.all(np.diff(code.thresholds) > 0)
    np.testing.assert_allclose(code.thresholds, (np.arange(n) + 0.5) / n, atol=1e-6)
    # The round-to-even ties of n x (x = (j + 1/2) / n in float32) and their neighbours,
    # and values all over and outside [0, 1].
    x = np.concatenate(
        [
            neighbours((np.arange(n) + 0.5) / n),
            rng.uniform(-0.5, 1.5, 2000).astype(np.float32),
            np.float32([-np.inf, -1, -0.0, 0, 1, 2, np.inf]),
        ]
    )
    level = np.round(keras.ops.convert_to_numpy(quantizer(x, training=False)) * n)
    q = code.offset + base_values(x, code) @ code.scales
    np.testing.assert_array_equal(np.round(q * n), level)
    np.testing.assert_allclose(q * n, level, atol=1e-9)  # exact up to float64 rounding


def test_thresholds_split_ties_as_keras_rounds_them():
    # In float32, 3 x = 0.5 rounds to 0 and 3 x = 1.5 to 2 (ties to even): the
    # first step is above the tie, the second at it.
    quantizer = DoReFa(2, mode="activations")
    t = thermometer.dorefa_bases(quantizer).thresholds
    three = np.float32(3)
    assert np.float32(t[0] * three) > 0.5 and np.float32(np.nextafter(t[0], 0) * three) <= 0.5
    assert np.float32(t[1] * three) >= 1.5 and np.float32(np.nextafter(t[1], 0) * three) < 1.5


def test_only_small_dorefa_activations_become_bases():
    assert thermometer.MAX_BITS == 4 and thermometer.ENCODING == "binary"
    code = thermometer.dorefa_bases(DoReFa(4, mode="activations"))
    assert code.thresholds.shape == (15,) and code.encoding == "binary"
    np.testing.assert_array_equal(code.scales, np.array([1, 2, 4, 8]) / 30)
    assert thermometer.dorefa_bases(DoReFa(5, mode="activations")) is None
    assert thermometer.dorefa_bases(DoReFa(6, mode="activations"), max_bits=8) is None  # 63 > 32
    with pytest.raises(ValueError, match="Invalid encoding"):
        thermometer.dorefa_bases(DoReFa(2, mode="activations"), encoding="gray")
    assert thermometer.dorefa_bases(DoReFa(3, mode="activations"), max_bits=2) is None
    assert thermometer.dorefa_bases(DoReFa(2, mode="weights")) is None
    assert thermometer.dorefa_bases(None) is None
    assert thermometer.Thermometer.pad_values(0.0) == -1
    assert thermometer.Thermometer.pad_values(1.0) == 1
    assert thermometer.Thermometer.pad_values(0.5) is None


def dorefa_cnn(bits=2):
    """Every pattern: zero and one padding, valid, bias, BN, pool, Flatten, dense chain."""
    return keras.Sequential(
        [
            keras.Input((9, 10, 3)),
            keras.layers.Conv2D(40, 3, padding="same"),
            QuantConv2D(36, 3, padding="same", **dorefa(bits)),  # zero padding, bias
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(3, 2, padding="same"),
            QuantConv2D(33, 3, padding="same", pad_values=1.0, use_bias=False, **dorefa(bits)),
            keras.layers.BatchNormalization(scale=False),
            QuantConv2D(64, (2, 3), strides=(1, 2), use_bias=False, **dorefa(bits)),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            QuantDense(70, use_bias=False, **dorefa(bits)),
            keras.layers.BatchNormalization(),
            QuantDense(10, **dorefa(bits)),
        ]
    )


@pytest.mark.parametrize(
    "bits, encoding",
    [(2, "binary"), (1, "binary"), (3, "binary"), (4, "binary"), (2, "thermometer")],
)
def test_dorefa_cnn_exports_as_binary_ops_and_matches_keras(rng, monkeypatch, bits, encoding):
    monkeypatch.setattr(thermometer, "ENCODING", encoding)
    model = randomize(dorefa_cnn(bits), rng)
    # Inputs around the steps (the float conv before is the identity on them).
    x = rng.uniform(-0.3, 1.3, (3, 9, 10, 3)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, verbose=0)
    # One op per DoReFa layer; each writes the next one's bases, bitpacked, and the
    # pool runs packed on thermometer bases (monotone in y), not on binary digits: there
    # the op writes float, the pool is a builtin and a TfqnnQuantize writes the digits;
    # the Flatten passes packed bits for one basis only (1 bit).
    packed_pool = bits == 1 or encoding == "thermometer"
    expected_ops = {
        "TfqnnQuantize": 1 if bits == 1 else 2 if packed_pool else 3,
        "TfqnnBconv2d": 3,
        "TfqnnBMaxPool2d": 1,
        "TfqnnBdense": 2,
    }
    if not packed_pool:
        del expected_ops["TfqnnBMaxPool2d"]
    assert tfqnn.lite.custom_ops_in(data) == expected_ops
    assert builtin_ops(data).get("MAX_POOL_2D", 0) == (0 if packed_pool else 1)
    assert builtin_ops(data).get("CONV_2D") == 1  # the float convolution only
    assert "FULLY_CONNECTED" not in builtin_ops(data)
    # k bases per input (binary digits) or 2^k - 1 (thermometer), written as such by every
    # TfqnnQuantize and every op with bitpacked output thresholds.
    bases = bits if encoding == "binary" else 2**bits - 1
    code = int(encoding == "binary" and bits > 1)
    for name, options in custom_op_options(data):
        if name == "TfqnnQuantize":
            assert options == ({"encoding": 1} if code else {})
        elif name in ("TfqnnBconv2d", "TfqnnBdense"):
            assert options.get("input_bases", 1) == bases
            assert options.get("output_encoding", 0) == (code if options.get("output_type") else 0)
    expected = model.predict(x, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_a_layer_behind_a_max_pool_can_read_thermometer_bases(rng, monkeypatch):
    # thermometer.AFTER_POOL = "thermometer": the layer after the pool reads the 3
    # thermometer bases, which the layer before writes packed and the pool pools packed;
    # the others read the 2 digits.
    monkeypatch.setattr(thermometer, "AFTER_POOL", "thermometer")
    model = randomize(dorefa_cnn(2), rng)
    x = rng.uniform(-0.3, 1.3, (3, 9, 10, 3)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 2,
        "TfqnnBconv2d": 3,
        "TfqnnBMaxPool2d": 1,
        "TfqnnBdense": 2,
    }
    assert "MAX_POOL_2D" not in builtin_ops(data)
    convs = [options for name, options in custom_op_options(data) if name == "TfqnnBconv2d"]
    assert [options.get("input_bases") for options in convs] == [2, 3, 2]
    assert [options.get("output_encoding", 0) for options in convs] == [0, 1, 0]
    expected = model.predict(x, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_dorefa_conv_matches_keras_with_zero_padding_and_inputs_on_the_steps(rng):
    layer = QuantConv2D(48, 5, strides=2, padding="same", **dorefa())
    model = randomize(keras.Sequential([keras.Input((9, 8, 40)), layer]), rng)
    steps = thermometer.dorefa_bases(layer.input_quantizer).thresholds
    # Every input on a step or a float32 next to one (a grid of 0 / 1 elsewhere).
    values = neighbours(steps, 2)
    x = rng.choice(np.concatenate([values, [0.0, 1.0, -2.0, 3.0]]), (2, 9, 8, 40))
    x = x.astype(np.float32)
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 1, "TfqnnBconv2d": 1}
    expected = model.predict(x, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    # And the numpy reference: the two digits, scales 1/6 and 1/3, the constant in the bias.
    (group,) = plan_groups(model).groups.values()
    assert isinstance(group, MultiBasisGroup) and group.op_pad_values == -1
    assert group.input_encoding == "binary"
    np.testing.assert_allclose(group.input_scales, [1 / 6, 1 / 3])
    alpha = np.mean(np.abs(layer.kernel.numpy()))
    signs = np.where(layer.kernel.numpy() < 0, -1.0, 1.0)  # [KH, KW, C, O]
    bias = layer.bias.numpy() + 0.5 * alpha * signs.sum(axis=(0, 1, 2))
    y = reference.multi_basis(
        x,
        steps,
        np.array([1 / 6, 1 / 3]),
        reference.bitpack(np.moveaxis(signs, -1, 0).astype(np.float32))[None],
        np.full((1, 48), alpha),
        bias,
        reference.bconv2d,
        channels_in=40,
        strides=(2, 2),
        padding="same",
        pad_values=-1,
        encoding="binary",
    )
    np.testing.assert_allclose(actual, y, rtol=1e-5, atol=1e-5 * np.abs(y).max())


OTHER_LAYERS = {
    "5_bits": lambda: QuantConv2D(8, 3, padding="same", **dorefa(5)),  # 5 bases: int8 is faster
    "pad_half": lambda: QuantConv2D(8, 3, padding="same", pad_values=0.5, **dorefa(2)),
    "2_bit_kernel": lambda: QuantConv2D(
        8,
        3,
        input_quantizer=DoReFa(2, mode="activations"),
        kernel_quantizer=DoReFa(2, mode="weights"),  # not binary
    ),
}


@pytest.mark.parametrize("kind", OTHER_LAYERS)
def test_other_dorefa_layers_stay_float_builtins(rng, kind):
    model = randomize(keras.Sequential([keras.Input((6, 6, 8)), OTHER_LAYERS[kind]()]), rng)
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert not tfqnn.lite.custom_ops_in(data)
    x = rng.uniform(-0.2, 1.2, (2, 6, 6, 8)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_int8_export_reads_int8_neighbours_as_well_as_int8_builtins_do(rng, monkeypatch):
    # With int8 neighbours the bases compare dequantized int8 inputs with the
    # thresholds: an input within an int8 step of one may flip, as the int8
    # builtins' own rounding does; the error stays that of an int8 export.
    model = randomize(dorefa_cnn(2), rng)
    x = rng.uniform(-0.3, 1.3, (3, 9, 10, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    errors = {}
    for max_bits in (0, thermometer.MAX_BITS):
        monkeypatch.setattr(thermometer, "MAX_BITS", max_bits)
        data = tfqnn.export.to_tflite(model, verbose=0, int8_representative_data=x)
        ops = tfqnn.lite.custom_ops_in(data)
        assert ops.get("TfqnnBconv2d", 0) == (3 if max_bits else 0)
        actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
        errors[max_bits] = np.median(np.abs(actual - expected))
    assert errors[thermometer.MAX_BITS] <= 1.5 * errors[0]
