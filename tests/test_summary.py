"""tfqnn.summary: parameters, memory and MACs by precision, checked by hand.

Every expectation below is computed from the shapes written in the test with
the textbook formulas, not from the library's output.
"""

import dataclasses
import inspect
import sys
import warnings

import keras
import pytest

import tfqnn
from tfqnn.layers import (
    QuantActivation,
    QuantConv1D,
    QuantConv2D,
    QuantConv2DTranspose,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantSeparableConv2D,
)
from tfqnn.quantizers import DoReFa, NoOp, StochasticSign

CLIP = "weight_clip"

# The 2D model: 6x6x2 input.
H = W = 6
CIN = 2
# conv: 4 filters, 3x3, valid, float input, binary kernel -> 4x4x4
CONV_F, K = 4, 3
CONV_OUT = H - K + 1  # 4
# depthwise: 3x3 same, multiplier 2, binary input and kernel, no bias -> 4x4x8
DW_MULT = 2
DW_C = CONV_F * DW_MULT  # 8
# separable: 6 filters, 3x3 valid, 2-bit input, 2-bit depthwise, binary pointwise -> 2x2x6
SEP_F = 6
SEP_OUT = CONV_OUT - K + 1  # 2
# transpose: 3 filters, 2x2, stride 2, binary input and kernel -> 4x4x3
TR_F, TR_K, TR_S = 3, 2, 2
TR_OUT = SEP_OUT * TR_S  # 4
# dense: 5 units from the flattened 4x4x3, binary input, stochastic binary kernel
DENSE_IN = TR_OUT * TR_OUT * TR_F  # 48
DENSE_UNITS = 5
# float head: keras Dense(3)
HEAD_UNITS = 3


def build_model():
    return keras.Sequential(
        [
            keras.Input((H, W, CIN)),
            QuantConv2D(
                CONV_F, K, kernel_quantizer="ste_sign", kernel_constraint=CLIP, name="conv"
            ),
            keras.layers.BatchNormalization(name="bn"),
            QuantDepthwiseConv2D(
                K,
                depth_multiplier=DW_MULT,
                padding="same",
                pad_values=1.0,
                input_quantizer="ste_sign",
                depthwise_quantizer="ste_sign",
                depthwise_constraint=CLIP,
                use_bias=False,
                name="depthwise",
            ),
            QuantSeparableConv2D(
                SEP_F,
                K,
                input_quantizer=DoReFa(2),
                depthwise_quantizer=DoReFa(2, mode="weights"),
                pointwise_quantizer="ste_sign",
                pointwise_constraint=CLIP,
                name="separable",
            ),
            QuantConv2DTranspose(
                TR_F,
                TR_K,
                strides=TR_S,
                input_quantizer="ste_sign",
                kernel_quantizer="ste_sign",
                kernel_constraint=CLIP,
                name="transpose",
            ),
            keras.layers.Flatten(name="flatten"),
            QuantDense(
                DENSE_UNITS,
                input_quantizer="ste_sign",
                kernel_quantizer=StochasticSign(seed=0),
                kernel_constraint=CLIP,
                name="dense",
            ),
            QuantActivation("ste_sign", name="sign"),
            keras.layers.Dense(HEAD_UNITS, name="head"),
        ],
        name="known",
    )


@pytest.fixture(scope="module")
def result():
    lines = []
    summary = tfqnn.summary(build_model(), print_fn=lines.append)
    summary.printed = "\n".join(lines)
    return summary


# Hand-computed expectations per layer: params by bits, MACs by bits.
EXPECTED = {
    "conv": (
        {1: K * K * CIN * CONV_F, 32: CONV_F},
        {32: CONV_OUT * CONV_OUT * CONV_F * K * K * CIN},  # float input: max(32, 1)
    ),
    "bn": ({32: 4 * CONV_F}, {}),  # gamma, beta, moving mean, moving variance
    "depthwise": (
        {1: K * K * CONV_F * DW_MULT},
        {1: CONV_OUT * CONV_OUT * DW_C * K * K},
    ),
    "separable": (
        {2: K * K * DW_C, 1: DW_C * SEP_F, 32: SEP_F},
        # depthwise: out_h*out_w*channels*kh*kw at max(2, 2); pointwise: out_h*out_w*filters*channels at max(2, 1)
        {2: SEP_OUT * SEP_OUT * DW_C * K * K + SEP_OUT * SEP_OUT * SEP_F * DW_C},
    ),
    "transpose": (
        {1: TR_K * TR_K * TR_F * SEP_F, 32: TR_F},
        # every input value meets the kh*kw*filters kernel entries once
        {1: SEP_OUT * SEP_OUT * SEP_F * TR_K * TR_K * TR_F},
    ),
    "flatten": ({}, {}),
    "dense": ({1: DENSE_IN * DENSE_UNITS, 32: DENSE_UNITS}, {1: DENSE_IN * DENSE_UNITS}),
    "sign": ({}, {}),
    "head": ({32: DENSE_UNITS * HEAD_UNITS + HEAD_UNITS}, {32: DENSE_UNITS * HEAD_UNITS}),
}


def _total(key):
    total = {}
    for per_layer in EXPECTED.values():
        for bits, count in per_layer[key].items():
            total[bits] = total.get(bits, 0) + count
    return total


def test_layer_rows(result):
    assert [row.name for row in result.layers] == list(EXPECTED)
    for row in result.layers:
        params, macs = EXPECTED[row.name]
        assert {b: c for b, c in row.params.items() if c} == params, row.name
        assert {b: c for b, c in row.macs.items() if c} == macs, row.name
        assert row.memory_bytes == sum(bits * count for bits, count in params.items()) / 8, row.name


def test_layer_bits_and_shapes(result):
    rows = {row.name: row for row in result.layers}
    assert rows["conv"].input_bits is None and rows["conv"].weight_bits == 1
    assert rows["depthwise"].input_bits == 1 and rows["depthwise"].weight_bits == 1
    assert rows["separable"].input_bits == 2
    assert rows["dense"].input_bits == 1 and rows["dense"].weight_bits == 1
    assert rows["head"].input_bits is None and rows["head"].weight_bits is None
    assert rows["bn"].weight_bits is None
    assert rows["conv"].class_name == "QuantConv2D"
    assert rows["conv"].output_shape == (None, CONV_OUT, CONV_OUT, CONV_F)
    assert rows["depthwise"].output_shape == (None, CONV_OUT, CONV_OUT, DW_C)
    assert rows["separable"].output_shape == (None, SEP_OUT, SEP_OUT, SEP_F)
    assert rows["transpose"].output_shape == (None, TR_OUT, TR_OUT, TR_F)


def test_totals(result):
    params, macs = _total(0), _total(1)
    # Written out once by hand as well: 1 bit 72+72+48+72+240, 2 bits 72, 32 bits 4+16+6+3+5+18.
    assert params == {1: 504, 2: 72, 32: 52}
    assert {b: c for b, c in result.params.items() if c} == params
    assert result.total_params == 628
    assert {b: c for b, c in result.macs.items() if c} == macs
    assert macs == {1: 1152 + 288 + 240, 2: 288 + 192, 32: 1152 + 15}
    assert result.total_macs == 3327
    quantized_bytes = (504 * 1 + 72 * 2 + 52 * 32) / 8
    assert result.quantized_bytes == quantized_bytes == 289.0
    assert result.float32_bytes == 4 * 628
    assert result.compression_ratio == pytest.approx(4 * 628 / 289.0)
    assert result.binary_mac_fraction == pytest.approx(1680 / 3327)


def test_total_params_agree_with_keras(result):
    assert result.total_params == build_model().count_params()


def test_printed_text(result):
    text = result.printed
    assert text == str(result)
    assert "known" in text
    for name in EXPECTED:
        assert name in text
    for cls in [
        "QuantConv2D",
        "QuantDepthwiseConv2D",
        "QuantSeparableConv2D",
        "QuantConv2DTranspose",
        "QuantDense",
        "QuantActivation",
        "BatchNormalization",
    ]:
        assert cls in text
    assert "628" in text
    assert "3,327" in text
    assert f"{4 * 628 / 289.0:.2f}x" in text
    assert f"{100 * 1680 / 3327:.2f}" in text


def test_print_fn_none_prints_nothing(capsys):
    tfqnn.summary(build_model(), print_fn=None)
    assert capsys.readouterr().out == ""


def test_default_prints(capsys):
    tfqnn.summary(build_model())
    out = capsys.readouterr().out
    assert "depthwise" in out and "Compression ratio" in out


def test_conv1d_dense_on_sequences_and_16_bit_storage():
    length, channels, filters, units = 10, 3, 4, 5
    model = keras.Sequential(
        [
            keras.Input((length, channels)),
            QuantConv1D(
                filters,
                3,
                padding="causal",
                pad_values=1.0,
                input_quantizer="ste_sign",
                kernel_quantizer="ste_sign",
                kernel_constraint=CLIP,
                name="c1",
            ),
            # A Dense on (length, filters) inputs: one matmul per time step.
            QuantDense(units, input_quantizer=DoReFa(4), kernel_quantizer=NoOp(16), name="d16"),
        ]
    )
    result = tfqnn.summary(model, print_fn=None)
    c1, d16 = result.layers
    assert c1.params == {1: 3 * channels * filters, 32: filters}
    assert c1.macs == {1: length * filters * 3 * channels}
    assert d16.params == {16: filters * units, 32: units}
    assert d16.weight_bits == 16
    # MAC precision is max(input bits, weight bits) = max(4, 16).
    assert d16.macs == {16: length * units * filters}
    expected_bytes = (36 * 1 + 4 * 32 + 20 * 16 + 5 * 32) / 8
    assert result.quantized_bytes == expected_bytes
    assert result.compression_ratio == pytest.approx(4 * (36 + 4 + 20 + 5) / expected_bytes)
    assert result.binary_mac_fraction == pytest.approx(360 / (360 + 200))


def test_separable_with_depth_multiplier_and_stride():
    size, channels, mult, filters, k, stride = 7, 3, 2, 5, 3, 2
    out = -(-size // stride)  # "same": 4
    model = keras.Sequential(
        [
            keras.Input((size, size, channels)),
            QuantSeparableConv2D(
                filters,
                k,
                strides=stride,
                padding="same",
                depth_multiplier=mult,
                input_quantizer="ste_sign",
                depthwise_quantizer="ste_sign",
                pointwise_quantizer=DoReFa(3, mode="weights"),
                depthwise_constraint=CLIP,
                use_bias=False,
            ),
        ]
    )
    (row,) = tfqnn.summary(model, print_fn=None).layers
    assert row.params == {1: k * k * channels * mult, 3: channels * mult * filters}
    depthwise_macs = out * out * channels * mult * k * k
    pointwise_macs = out * out * filters * channels * mult
    assert row.macs == {1: depthwise_macs, 3: pointwise_macs}
    assert row.memory_bytes == (k * k * channels * mult + 3 * channels * mult * filters) / 8


def test_nested_model_counts_leaf_layers():
    inner = keras.Sequential(
        [
            keras.Input((4,)),
            QuantDense(6, kernel_quantizer="ste_tern", use_bias=False, name="inner_dense"),
        ],
        name="inner",
    )
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="outer_dense")(inner(inputs))
    result = tfqnn.summary(keras.Model(inputs, outputs), print_fn=None)
    names = [row.name for row in result.layers]
    assert "inner_dense" in names and "outer_dense" in names and "inner" not in names
    assert result.params == {2: 24, 32: 14}
    assert result.macs == {32: 24 + 12}  # float inputs: max(32, 2)
    assert result.binary_mac_fraction == 0.0


def test_float_model_has_ratio_one():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    result = tfqnn.summary(model, print_fn=None)
    assert result.compression_ratio == 1.0
    assert result.binary_mac_fraction == 0.0
    assert result.params == {32: 8}


def test_to_dict(result):
    d = result.to_dict()
    assert d["compression_ratio"] == result.compression_ratio
    assert len(d["layers"]) == len(EXPECTED)


def test_unbuilt_model_raises():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = keras.Sequential([QuantDense(3, kernel_quantizer="ste_sign")])
    assert not model.built
    with pytest.raises(ValueError, match="not built"):
        tfqnn.summary(model, print_fn=None)


def test_summary_and_its_result_types_are_plain_names_of_tfqnn(result):
    # A function and two dataclasses, not a module made callable.
    assert inspect.isfunction(tfqnn.summary)
    assert inspect.signature(tfqnn.summary).parameters["print_fn"].default is print
    assert dataclasses.is_dataclass(tfqnn.ModelSummary)
    assert dataclasses.is_dataclass(tfqnn.LayerSummary)
    assert type(result) is tfqnn.ModelSummary
    assert all(type(row) is tfqnn.LayerSummary for row in result.layers)
    assert "tfqnn.summary" not in sys.modules
    assert {"summary", "ModelSummary", "LayerSummary"} <= set(tfqnn.__all__)


def test_recurrent_layers_count_one_time_step():
    """A quantized LSTM, a Bidirectional GRU and a float SimpleRNN over 7
    steps: weights at their bits, MACs of one step at max(operand, weight)."""
    T, F, U1, U2, U3 = 7, 5, 4, 3, 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lstm = tfqnn.layers.QuantLSTM(
            U1,
            return_sequences=True,
            input_quantizer=DoReFa(4),
            kernel_quantizer="ste_sign",
            recurrent_quantizer="ste_tern",
            state_quantizer=tfqnn.quantizers.FixedPoint(3, 5),
        )
        gru = tfqnn.layers.QuantGRU(
            U2, return_sequences=True, kernel_quantizer=NoOp(8), recurrent_quantizer=NoOp(8)
        )
    model = keras.Sequential(
        [
            keras.Input((T, F)),
            lstm,
            keras.layers.Bidirectional(gru),
            keras.layers.SimpleRNN(U3),
        ]
    )
    result = tfqnn.summary(model, print_fn=None)
    lstm_row, gru_row, rnn_row = result.layers
    # LSTM: W (F, 4 U1) binary, U (U1, 4 U1) ternary, bias float.
    assert lstm_row.params == {1: F * 4 * U1, 2: U1 * 4 * U1, 32: 4 * U1}
    assert lstm_row.memory_bytes == (F * 4 * U1 * 1 + U1 * 4 * U1 * 2 + 4 * U1 * 32) / 8
    # x: 4 bits with 1-bit W -> 4-bit MACs; h: 8 bits with 2-bit U -> 8-bit MACs.
    assert lstm_row.macs == {4: F * 4 * U1, 8: U1 * 4 * U1}
    assert (lstm_row.input_bits, lstm_row.weight_bits) == (4, 1)
    assert lstm_row.output_shape == (None, T, U1)
    # Bidirectional GRU: two cells of W (U1, 3 U2), U (U2, 3 U2), bias (2, 3 U2);
    # float inputs and states make 32-bit MACs.
    assert gru_row.params == {8: 2 * (U1 * 3 * U2 + U2 * 3 * U2), 32: 2 * 2 * 3 * U2}
    assert gru_row.macs == {32: 2 * (U1 * 3 * U2 + U2 * 3 * U2)}
    assert gru_row.weight_bits == 8
    # Keras's own SimpleRNN: float throughout.
    assert rnn_row.params == {32: 2 * U2 * U3 + U3 * U3 + U3}
    assert rnn_row.macs == {32: 2 * U2 * U3 + U3 * U3}
    assert result.total_params == model.count_params()


@pytest.mark.filterwarnings("ignore:Quant.* has a binary")
def test_dorefa_inputs_with_binary_kernels_are_bit_serial_binary_macs():
    # A k-bit DoReFa input with a binary kernel is k binary bases: its MACs count at k bits,
    # in the binary share once and as k binary MACs each. Shapes by hand: 5x5x3 input.
    model = keras.Sequential(
        [
            keras.Input((5, 5, 3)),
            # 3x3 valid -> 3x3x4: 3*3*4 outputs x 3*3*3 taps = 972 MACs, W1A2
            QuantConv2D(
                4,
                3,
                input_quantizer=DoReFa(2),
                kernel_quantizer=DoReFa(1, mode="weights"),
                name="w1a2",
            ),
            # 1x1 -> 3x3x6: 54 outputs x 4 = 216 MACs, W2A3: not binary
            QuantConv2D(
                6,
                1,
                input_quantizer=DoReFa(3),
                kernel_quantizer=DoReFa(2, mode="weights"),
                name="w2a3",
            ),
            # depthwise 3x3 valid on 3x3x6 -> 1x1x6: 54 MACs (reads the 3-bit input, binary);
            # pointwise 1x1x6 -> 8: 48 MACs (reads the depthwise output: not bit-serial)
            QuantSeparableConv2D(
                8,
                3,
                input_quantizer=DoReFa(3),
                depthwise_quantizer="ste_sign",
                pointwise_quantizer="ste_sign",
                name="sep",
            ),
            keras.layers.Flatten(),
            # 8 -> 2, binary both: 16 MACs
            QuantDense(2, input_quantizer="ste_sign", kernel_quantizer="ste_sign", name="bnn"),
        ]
    )
    result = tfqnn.summary(model, print_fn=None)
    rows = {row.name: row for row in result.layers}
    assert rows["w1a2"].macs == {2: 972}
    assert (rows["w1a2"].bit_serial_macs, rows["w1a2"].binary_macs) == (972, 2 * 972)
    assert (rows["w2a3"].bit_serial_macs, rows["w2a3"].binary_macs) == (0, 0)
    assert rows["sep"].macs == {3: 54 + 48}
    assert (rows["sep"].bit_serial_macs, rows["sep"].binary_macs) == (54, 3 * 54)
    assert (rows["bnn"].bit_serial_macs, rows["bnn"].binary_macs) == (0, 16)
    assert result.macs == {1: 16, 2: 972, 3: 216 + 54 + 48}
    assert result.binary_mac_fraction == pytest.approx((16 + 972 + 54) / 1306)
    assert result.binary_macs == 16 + 1944 + 162
    assert "Binary MACs with bit-serial inputs" in str(result) and "2,122" in str(result)
