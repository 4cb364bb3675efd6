"""Quantized recurrent cells and layers against numpy references written from
the equations: one time step, whole sequences, STE gradients through time,
the fused-path pitfall, wrappers, saving, argument checks and the adding
problem."""

import inspect
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn.layers import (
    QuantGRU,
    QuantGRUCell,
    QuantLSTM,
    QuantLSTMCell,
    QuantSimpleRNN,
    QuantSimpleRNNCell,
)
from tfqnn.quantizers import DoReFa, FixedPoint, ScaledSign, SteTern, SymmetricUniform, Uniform

from .factories import f32

# ---------------------------------------------------------------------------
# numpy quantizers, from their definitions


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def np_tern(x):
    """TWN: threshold 0.7 mean|x|, scale the mean magnitude above it (per tensor)."""
    magnitude = np.abs(x)
    nonzero = magnitude > 0.7 * magnitude.mean()
    return np.sign(x) * nonzero * (magnitude * nonzero).sum() / nonzero.sum()


def np_scaled_sign_columns(x):
    """sign(x) times the mean |x| of its column (one scale per gate and unit)."""
    return np_sign(x) * np.abs(x).mean(axis=tuple(range(x.ndim - 1)), keepdims=True)


def np_fixed_point(x, integer_bits, fractional_bits):
    eps = 2.0**-fractional_bits
    half = 2.0 ** (integer_bits - 1)
    return np.clip(np.round(x / eps) * eps, -half, half - eps)


def np_symmetric_uniform(x, bits):
    s = 2.0 ** (1 - bits)
    return np.clip(s * np.round(x / s), -1.0 + s, 1.0 - s)


def np_dorefa_activations(x, bits):
    n = 2.0**bits - 1.0
    return np.round(np.clip(x, 0.0, 1.0) * n) / n


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# The quantizers of the reference tests and their numpy twins.
QUANTIZERS = {
    "input_quantizer": "ste_sign",
    "kernel_quantizer": SteTern(),
    "recurrent_quantizer": ScaledSign(),
    "bias_quantizer": FixedPoint(2, 3),
}
STATE = {
    "simple_rnn": SymmetricUniform(3),
    "gru": SymmetricUniform(3),
    "lstm": FixedPoint(2, 4),  # c is unbounded: two integer bits hold [-2, 2)
}
GATES = {"gate_quantizer": DoReFa(2), "candidate_quantizer": SymmetricUniform(4)}


def np_state(kind, s):
    if kind == "lstm":
        return np_fixed_point(s, 2, 4)
    return np_symmetric_uniform(s, 3)


def np_weights(w, u, b):
    return np_tern(w), np_scaled_sign_columns(u), np_fixed_point(b, 2, 3)


def np_simple_rnn_step(x, h, w, u, b):
    w, u, b = np_weights(w, u, b)
    return np.tanh(np_sign(x) @ w + b + np_state("simple_rnn", h) @ u)


def np_gate(v, gates):
    return np_dorefa_activations(sigmoid(v), 2) if gates else sigmoid(v)


def np_candidate(v, gates):
    return np_symmetric_uniform(np.tanh(v), 4) if gates else np.tanh(v)


def np_lstm_step(x, h, c, w, u, b, gates=True):
    w, u, b = np_weights(w, u, b)
    z = np_sign(x) @ w + np_state("lstm", h) @ u + b
    zi, zf, zc, zo = np.split(z, 4, axis=-1)
    i, f, o = (np_gate(v, gates) for v in (zi, zf, zo))
    g = np_candidate(zc, gates)
    c_t = f * np_state("lstm", c) + i * g
    return o * np.tanh(c_t), c_t


def np_gru_step(x, h, w, u, b, reset_after=True, gates=True):
    w, u, b = np_weights(w, u, b)
    h = np_state("gru", h)
    xw = np.split(np_sign(x) @ w + (b[0] if reset_after else b), 3, axis=-1)
    u_z, u_r, u_h = np.split(u, 3, axis=-1)
    b_h = np.split(b[1], 3) if reset_after else (0.0, 0.0, 0.0)
    z = np_gate(xw[0] + h @ u_z + b_h[0], gates)
    r = np_gate(xw[1] + h @ u_r + b_h[1], gates)
    if reset_after:
        n = np_candidate(xw[2] + r * (h @ u_h + b_h[2]), gates)
    else:
        n = np_candidate(xw[2] + (r * h) @ u_h, gates)
    return z * h + (1 - z) * n


# ---------------------------------------------------------------------------
# helpers

UNITS, FEATURES = 4, 3


def make_cell(kind, **extra):
    """A cell with every quantizer it has (``extra`` overrides them)."""
    arguments = {**QUANTIZERS, "state_quantizer": STATE[kind]}
    if kind == "simple_rnn":
        return QuantSimpleRNNCell(UNITS, **arguments, **extra)
    arguments.update(GATES)
    arguments.update(extra)
    if kind == "lstm":
        return QuantLSTMCell(UNITS, **arguments)
    return QuantGRUCell(UNITS, **arguments)


def make_layer(kind, **extra):
    """A layer with quantized x, W, U, b and states, float gates.

    Over several steps quantized gates and states land on each other's
    rounding ties, where float32 and numpy's float64 may round apart, so
    the sequence tests leave the gates to the one-step tests.
    """
    arguments = {**QUANTIZERS, "state_quantizer": STATE[kind], **extra}
    if kind == "simple_rnn":
        return QuantSimpleRNN(UNITS, **arguments)
    if kind == "lstm":
        return QuantLSTM(UNITS, **arguments)
    return QuantGRU(UNITS, **arguments)


GATE_COUNT = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def random_weights(rng, kind, reset_after=True):
    gates = GATE_COUNT[kind] * UNITS
    w = f32(rng.normal(0, 0.8, (FEATURES, gates)))
    u = f32(rng.normal(0, 0.8, (UNITS, gates)))
    bias_shape = (2, gates) if kind == "gru" and reset_after else (gates,)
    b = f32(rng.normal(0, 0.7, bias_shape))
    return w, u, b


KINDS = ["simple_rnn", "lstm", "gru"]


# ---------------------------------------------------------------------------
# one step and whole sequences against numpy


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_matches_numpy(kind, rng):
    cell = make_cell(kind)
    cell.build((5, FEATURES))
    w, u, b = random_weights(rng, kind)
    cell.set_weights([w, u, b])
    x = f32(rng.normal(0, 1, (5, FEATURES)))
    h = f32(rng.uniform(-1, 1, (5, UNITS)))
    if kind == "lstm":
        c = f32(rng.normal(0, 1.5, (5, UNITS)))
        out, (h_t, c_t) = cell(x, [h, c])
        expected_h, expected_c = np_lstm_step(x, h, c, w, u, b)
        np.testing.assert_allclose(c_t, expected_c, atol=1e-5)
    else:
        out, states = cell(x, [h])
        h_t = states[0]
        step = np_simple_rnn_step if kind == "simple_rnn" else np_gru_step
        expected_h = step(x, h, w, u, b)
    np.testing.assert_allclose(out, expected_h, atol=1e-5)
    np.testing.assert_allclose(h_t, expected_h, atol=1e-5)


def test_gru_reset_before_matches_numpy(rng):
    cell = make_cell("gru", reset_after=False)
    cell.build((5, FEATURES))
    w, u, b = random_weights(rng, "gru", reset_after=False)
    cell.set_weights([w, u, b])
    x = f32(rng.normal(0, 1, (5, FEATURES)))
    h = f32(rng.uniform(-1, 1, (5, UNITS)))
    out, _ = cell(x, [h])
    np.testing.assert_allclose(out, np_gru_step(x, h, w, u, b, reset_after=False), atol=1e-5)


def np_sequence(kind, x, w, u, b, go_backwards=False):
    batch, steps, _ = x.shape
    h = np.zeros((batch, UNITS))
    c = np.zeros((batch, UNITS))
    outputs = []
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    for t in order:
        if kind == "lstm":
            h, c = np_lstm_step(x[:, t], h, c, w, u, b, gates=False)
        elif kind == "gru":
            h = np_gru_step(x[:, t], h, w, u, b, gates=False)
        else:
            h = np_simple_rnn_step(x[:, t], h, w, u, b)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("unroll", [False, True])
def test_sequence_matches_numpy(kind, unroll, rng):
    layer = make_layer(kind, return_sequences=True, return_state=True, unroll=unroll)
    x = f32(rng.normal(0, 1, (3, 6, FEATURES)))
    layer.build(x.shape)
    w, u, b = random_weights(rng, kind)
    layer.set_weights([w, u, b])
    outputs = layer(x)
    expected, h, c = np_sequence(kind, x, w, u, b)
    np.testing.assert_allclose(outputs[0], expected, atol=1e-4)
    np.testing.assert_allclose(outputs[1], h, atol=1e-4)
    if kind == "lstm":
        np.testing.assert_allclose(outputs[2], c, atol=1e-4)


def test_go_backwards_and_masking_follow_keras(rng):
    layer = make_layer("lstm", go_backwards=True)
    x = f32(rng.normal(0, 1, (3, 6, FEATURES)))
    layer.build(x.shape)
    w, u, b = random_weights(rng, "lstm")
    layer.set_weights([w, u, b])
    _, h, _ = np_sequence("lstm", x, w, u, b, go_backwards=True)
    np.testing.assert_allclose(layer(x), h, atol=1e-4)
    # A mask holds the state over masked steps: the last 2 steps masked give
    # the output of the first 4.
    mask = np.ones((3, 6), bool)
    mask[:, 4:] = False
    forward = make_layer("lstm")
    forward.build(x.shape)
    forward.set_weights([w, u, b])
    _, h4, _ = np_sequence("lstm", x[:, :4], w, u, b)
    np.testing.assert_allclose(forward(x, mask=mask), h4, atol=1e-4)


def test_stateful_layer_carries_its_state(rng):
    x = f32(rng.normal(0, 1, (2, 6, FEATURES)))
    layer = make_layer("gru", stateful=True)
    layer.build(x.shape)
    w, u, b = random_weights(rng, "gru")
    layer.set_weights([w, u, b])
    layer(x[:, :3])
    second_half = layer(x[:, 3:])
    _, h, _ = np_sequence("gru", x, w, u, b)
    np.testing.assert_allclose(second_half, h, atol=1e-4)


KERAS_LAYERS = {
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
    "simple_rnn": keras.layers.SimpleRNN,
}
TFQNN_LAYERS = {"lstm": QuantLSTM, "gru": QuantGRU, "simple_rnn": QuantSimpleRNN}


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quantized"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn"])
def test_nan_inputs_behave_as_in_keras(kind, quantized, rng):
    """A NaN input makes the rest of its sequence NaN and leaves the other
    sequences alone, as in Keras's layer; without quantizers the numbers are
    Keras's. Multi-bit quantizers (FixedPoint on x, h and c here) pass NaN
    on; a sign quantizer on the input would map it to -1 (sign(NaN) = -1)."""
    x = f32(rng.normal(0, 1, (3, 5, FEATURES)))
    x[1, 2, 0] = np.nan
    arguments = {}
    if quantized:
        arguments = dict(
            input_quantizer=FixedPoint(3, 5),
            kernel_quantizer="ste_tern",
            recurrent_quantizer="ste_tern",
            state_quantizer=FixedPoint(3, 5),
        )
    ours = TFQNN_LAYERS[kind](UNITS, return_sequences=True, **arguments)
    theirs = KERAS_LAYERS[kind](UNITS, return_sequences=True)
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    a, b = np.asarray(ours(x)), np.asarray(theirs(x))
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    assert np.isnan(a[1, 2:]).all() and not np.isnan(a[[0, 2]]).any()
    assert not np.isnan(a[1, :2]).any()
    if not quantized:
        np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_float_layer_equals_keras(kind, rng):
    """With no quantizer the layers compute what Keras's do, dropout-free."""
    x = f32(rng.normal(0, 1, (3, 5, FEATURES)))
    ours = QuantLSTM(UNITS) if kind == "lstm" else QuantGRU(UNITS)
    theirs = keras.layers.LSTM(UNITS) if kind == "lstm" else keras.layers.GRU(UNITS)
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights([f32(rng.normal(0, 0.5, w.shape)) for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x), theirs(x), atol=1e-5)


# ---------------------------------------------------------------------------
# the fused path and the gates' per-channel axis


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_layer_runs_the_quantized_weights_not_the_latent_ones(kind, rng):
    """Keras's LSTM/GRU hand ``cell.kernel`` to cuDNN; ours must run q(W)."""
    x = f32(rng.normal(0, 1, (4, 5, FEATURES)))
    signs = dict(kernel_quantizer="ste_sign", recurrent_quantizer="ste_sign")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = QuantLSTM(UNITS, **signs) if kind == "lstm" else QuantGRU(UNITS, **signs)
    keras_class = keras.layers.LSTM if kind == "lstm" else keras.layers.GRU
    assert not isinstance(ours, keras_class)  # so Keras's fused dispatch never applies
    ours.build(x.shape)
    w, u, b = random_weights(rng, kind)
    w, u = 0.3 * w, 0.3 * u  # latent weights far from their signs
    ours.set_weights([w, u, b])
    quantized, latent = keras_class(UNITS), keras_class(UNITS)
    for reference, weights in ((quantized, [np_sign(w), np_sign(u), b]), (latent, [w, u, b])):
        reference.build(x.shape)
        reference.set_weights([f32(v) for v in weights])
    output = np.asarray(ours(x))
    np.testing.assert_allclose(output, quantized(x), atol=1e-5)
    assert np.abs(output - np.asarray(latent(x))).max() > 0.1


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_recurrent_matrix_is_u_when_only_w_is_quantized(reset_after, rng):
    """QKeras's QGRUCell multiplies h by W when recurrent_quantizer is None."""
    x = f32(rng.normal(0, 1, (3, 5, FEATURES)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = QuantGRU(UNITS, reset_after=reset_after, kernel_quantizer="ste_sign")
    reference = keras.layers.GRU(UNITS, reset_after=reset_after)
    ours.build(x.shape)
    reference.build(x.shape)
    w, u, b = random_weights(rng, "gru", reset_after=reset_after)
    ours.set_weights([w, u, b])
    reference.set_weights([f32(np_sign(w)), u, b])
    np.testing.assert_allclose(ours(x), reference(x), atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_scaled_sign_keeps_one_scale_per_gate_and_unit(kind, rng):
    cell = make_cell(kind, kernel_quantizer=ScaledSign(), recurrent_quantizer=ScaledSign())
    cell.build((2, FEATURES))
    w, u, b = random_weights(rng, kind)
    cell.set_weights([w, u, b])
    before = np.asarray(cell.quantized_weights(training=False)[0])
    # One gate's columns ten times larger: a scale mixing gates would leak it.
    w[:, :UNITS] *= 10.0
    cell.set_weights([w, u, b])
    kernel, recurrent, _ = cell.quantized_weights(training=False)
    np.testing.assert_allclose(kernel, np_scaled_sign_columns(w), rtol=1e-6)
    np.testing.assert_allclose(recurrent, np_scaled_sign_columns(u), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(kernel)[:, UNITS:], before[:, UNITS:])
    np.testing.assert_allclose(np.asarray(kernel)[:, :UNITS], 10 * before[:, :UNITS], rtol=1e-6)


@pytest.mark.parametrize("axis", [0, (0, 1), 2])
def test_a_scale_axis_that_mixes_gates_is_refused(axis):
    with pytest.raises(ValueError, match="Invalid kernel_quantizer=ScaledSign"):
        QuantLSTMCell(4, kernel_quantizer=ScaledSign(axis=axis))
    with pytest.raises(ValueError, match="Invalid recurrent_quantizer=ScaledSign"):
        QuantGRU(4, recurrent_quantizer=ScaledSign(axis=axis))
    QuantLSTMCell(4, kernel_quantizer=ScaledSign(axis=1), recurrent_quantizer=ScaledSign(-1))


class CountingNoOp(tfqnn.quantizers.NoOp):
    """The identity, counting its calls."""

    calls = 0

    def call(self, x, training=None):
        CountingNoOp.calls += 1
        return super().call(x, training)


def test_layers_quantize_the_weights_once_per_sequence(rng):
    """Unrolled over 6 steps: the layer quantizes W once, RNN(cell) at every step."""
    x = f32(rng.normal(0, 1, (2, 6, FEATURES)))
    layer = QuantGRU(UNITS, kernel_quantizer=CountingNoOp(), unroll=True)
    wrapped = keras.layers.RNN(QuantGRUCell(UNITS, kernel_quantizer=CountingNoOp()), unroll=True)
    for rnn, calls in ((layer, 1), (wrapped, 6)):
        rnn.build(x.shape)
        CountingNoOp.calls = 0
        rnn(x)
        assert CountingNoOp.calls == calls
    wrapped.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x), wrapped(x), atol=1e-6)
    assert layer.cell._sequence_weights is None  # nothing outlives the call


# ---------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_latent_weights_through_the_ste_across_steps(kind, rng):
    """d loss / d latent = (d loss / d quantized weight) * 1[|w| <= 1]: the
    quantized weights' gradient comes from Keras's float layer run on them."""
    x = f32(rng.normal(0, 1, (3, 6, FEATURES)))
    signs = dict(kernel_quantizer="ste_sign", recurrent_quantizer="ste_sign")
    layers = {
        "simple_rnn": (QuantSimpleRNN, keras.layers.SimpleRNN),
        "lstm": (QuantLSTM, keras.layers.LSTM),
        "gru": (QuantGRU, keras.layers.GRU),
    }
    ours_class, keras_class = layers[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = ours_class(UNITS, return_sequences=True, **signs)
    reference = keras_class(UNITS, return_sequences=True)
    ours.build(x.shape)
    reference.build(x.shape)
    w, u, b = random_weights(rng, kind)
    w, u = 1.2 * w, 1.2 * u  # some latent weights beyond the STE's clip
    ours.set_weights([w, u, b])
    reference.set_weights([np_sign(w), np_sign(u), b])
    target = f32(rng.normal(0, 1, (3, 6, UNITS)))
    gradients = []
    for layer in (ours, reference):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum((layer(x, training=True) - target) ** 2)
        gradients.append(tape.gradient(loss, layer.trainable_weights))
    for latent, grad, ref in zip((w, u), gradients[0][:2], gradients[1][:2]):
        expected = np.asarray(ref) * (np.abs(latent) <= 1.0)
        np.testing.assert_allclose(grad, expected, atol=1e-4)
        assert np.abs(expected).max() > 0  # the test sees a gradient
    np.testing.assert_allclose(gradients[0][2], gradients[1][2], atol=1e-4)


def test_dropout_trains_and_inference_is_deterministic(rng):
    x = f32(rng.normal(0, 1, (4, 5, FEATURES)))
    layer = make_layer("lstm", dropout=0.3, recurrent_dropout=0.3, seed=1)
    layer.build(x.shape)
    a, b = np.asarray(layer(x, training=True)), np.asarray(layer(x, training=True))
    assert np.abs(a - b).max() > 0  # fresh masks each call
    np.testing.assert_array_equal(layer(x), layer(x))
    w, u, b_ = layer.get_weights()
    _, h, _ = np_sequence("lstm", x, w, u, b_)
    np.testing.assert_allclose(layer(x), h, atol=1e-4)


@pytest.mark.parametrize("wrapped", [False, True])
def test_stochastic_quantizers_train_and_predict_deterministically(wrapped, rng):
    x = f32(rng.normal(0, 1, (4, 5, FEATURES)))
    stochastic = dict(kernel_quantizer="stochastic_sign", recurrent_quantizer="stochastic_tern")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if wrapped:
            rnn = keras.layers.RNN(QuantLSTMCell(UNITS, **stochastic))
        else:
            rnn = QuantLSTM(UNITS, **stochastic)
    model = keras.Sequential([keras.Input((5, FEATURES)), rnn, keras.layers.Dense(1)])
    model.compile("adam", "mse")
    before = [w.copy() for w in rnn.get_weights()]
    model.fit(x, np.ones((4, 1), np.float32), epochs=2, verbose=0)
    assert all(np.abs(a - b).max() > 0 for a, b in zip(rnn.get_weights(), before))
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_mixed_precision(rng):
    x = f32(rng.normal(0, 1, (4, 5, FEATURES)))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = make_layer("lstm", return_sequences=True)
        reference = make_layer("lstm", return_sequences=True, dtype="float32")
        layer.build(x.shape)
        reference.build(x.shape)
        reference.set_weights(layer.get_weights())
        output = layer(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(output.dtype) == "float16"
    np.testing.assert_allclose(np.asarray(output, np.float32), reference(x), atol=0.15)


# ---------------------------------------------------------------------------
# arguments and checks


OWN = {
    QuantSimpleRNNCell: [
        "input_quantizer",
        "kernel_quantizer",
        "recurrent_quantizer",
        "bias_quantizer",
        "state_quantizer",
    ],
}
OWN[QuantLSTMCell] = OWN[QuantSimpleRNNCell] + ["gate_quantizer", "candidate_quantizer"]
OWN[QuantGRUCell] = OWN[QuantLSTMCell]
OWN[QuantSimpleRNN] = OWN[QuantSimpleRNNCell]
OWN[QuantLSTM] = OWN[QuantLSTMCell]
OWN[QuantGRU] = OWN[QuantLSTMCell]
KERAS = {
    QuantSimpleRNNCell: keras.layers.SimpleRNNCell,
    QuantLSTMCell: keras.layers.LSTMCell,
    QuantGRUCell: keras.layers.GRUCell,
    QuantSimpleRNN: keras.layers.SimpleRNN,
    QuantLSTM: keras.layers.LSTM,
    QuantGRU: keras.layers.GRU,
}


@pytest.mark.parametrize("cls", list(KERAS), ids=lambda c: c.__name__)
def test_signature_is_keras_then_the_quantizers(cls):
    """Keras's arguments in Keras's order with Keras's defaults (the layers
    drop ``use_cudnn``), then the quantizers, keyword-only, default None."""
    params = list(inspect.signature(cls).parameters.values())
    keras_params = [
        (p.name, p.default)
        for p in inspect.signature(KERAS[cls]).parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "use_cudnn"
    ]
    assert [(p.name, p.default) for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == (
        keras_params
    )
    own = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
    assert own == dict.fromkeys(OWN[cls])
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD


def test_unit_forget_bias_is_passed_as_given():
    x = np.zeros((1, 2, FEATURES), np.float32)
    for flag, forget in ((True, 1.0), (False, 0.0)):
        layer = QuantLSTM(UNITS, unit_forget_bias=flag, bias_quantizer=FixedPoint(2, 3))
        layer(x)
        bias = layer.cell.bias.numpy()
        np.testing.assert_array_equal(bias[UNITS : 2 * UNITS], forget)
        assert layer.get_config()["unit_forget_bias"] is flag


@pytest.mark.parametrize("cls", list(KERAS), ids=lambda c: c.__name__)
def test_unknown_argument_raises_value_error_naming_it(cls):
    with pytest.raises(ValueError, match="kernel_quantiser"):
        cls(4, kernel_quantiser="ste_sign")


@pytest.mark.parametrize(
    "state_quantizer",
    [
        "ste_sign",
        SteTern(scaled=False),
        SymmetricUniform(4),
        FixedPoint(1, 6),
        DoReFa(2, "weights"),
    ],
)
def test_lstm_refuses_state_quantizers_that_cannot_hold_its_carry(state_quantizer):
    with pytest.raises(ValueError, match="Invalid state_quantizer=.*carry c"):
        QuantLSTM(4, state_quantizer=state_quantizer)
    # h alone is in (-1, 1): the GRU and the SimpleRNN take them.
    QuantGRUCell(4, state_quantizer=state_quantizer)
    QuantSimpleRNNCell(4, state_quantizer=state_quantizer)


@pytest.mark.parametrize("state_quantizer", [DoReFa(2), FixedPoint(2, 4, signed=False)])
def test_non_negative_state_quantizers_need_a_non_negative_activation(state_quantizer):
    for cls in (QuantSimpleRNNCell, QuantGRUCell, QuantLSTMCell):
        with pytest.raises(ValueError, match="Invalid state_quantizer=.*negative values"):
            cls(4, state_quantizer=state_quantizer)
    QuantSimpleRNNCell(4, activation="relu", state_quantizer=state_quantizer)


def test_scaled_state_quantizers_are_accepted():
    for quantizer in ("scaled_sign", "uniform", FixedPoint(3, 4), SteTern(scaled=True)):
        cell = QuantLSTMCell(4, state_quantizer=quantizer)
        assert cell.state_quantizer == tfqnn.quantizers.get(quantizer)


def test_the_check_reads_output_range_so_custom_quantizers_take_part():
    class Clamp01(tfqnn.quantizers.Quantizer):
        output_range = (0.0, 1.0)

        def call(self, x, training=None):
            return tf.clip_by_value(x, 0.0, 1.0)

    class Halve(tfqnn.quantizers.Quantizer):
        def call(self, x, training=None):
            return x / 2

    with pytest.raises(ValueError, match="Invalid state_quantizer=.*negative values"):
        QuantGRUCell(4, state_quantizer=Clamp01())
    QuantGRUCell(4, activation="relu", state_quantizer=Clamp01())
    QuantLSTMCell(4, state_quantizer=Halve())  # no range: nothing to refuse


def test_one_bit_dorefa_weights_scale_so_they_can_hold_the_carry():
    cell = QuantLSTMCell(4, state_quantizer=DoReFa(1, "weights"))
    carry = tf.constant([[-3.0, -1.0, 2.0, 5.0]])
    assert np.abs(cell.quantized_state(carry, False).numpy()).max() > 1.0


def test_binary_weights_without_constraint_warn():
    with pytest.warns(UserWarning, match="recurrent_constraint"):
        QuantLSTMCell(4, recurrent_quantizer="ste_sign")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        QuantLSTMCell(4, recurrent_quantizer="ste_sign", recurrent_constraint="weight_clip")


@pytest.mark.parametrize(
    "build",
    [
        lambda: QuantLSTMCell(4, kernel_quantizer="ste_sign"),
        lambda: QuantLSTM(4, recurrent_quantizer="ste_sign"),
        lambda: QuantGRU(4, kernel_quantizer="approx_sign"),
        lambda: QuantSimpleRNN(4, recurrent_quantizer="ste_sign"),
        lambda: keras.layers.RNN(QuantSimpleRNNCell(4, kernel_quantizer="ste_sign")),
    ],
    ids=["lstm_cell", "lstm", "gru", "simple_rnn", "rnn_of_cell"],
)
def test_weight_clip_warning_names_the_users_line(build):
    """However deep the cell is built (layer, cell, mixins), the warning names
    the line that called tfqnn."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        build()
    (warning,) = [w for w in record if "weight_clip" in str(w.message)]
    assert (warning.filename, warning.lineno) == (__file__, build.__code__.co_firstlineno)


# ---------------------------------------------------------------------------
# wrappers, configs, saving


def test_bidirectional_and_rnn_of_a_cell(rng):
    x = f32(rng.normal(0, 1, (2, 5, FEATURES)))
    w, u, b = random_weights(rng, "lstm")
    float_gates = {"gate_quantizer": None, "candidate_quantizer": None}
    wrapped = keras.layers.RNN(make_cell("lstm", **float_gates))
    wrapped.build(x.shape)
    wrapped.set_weights([w, u, b])
    _, h, _ = np_sequence("lstm", x, w, u, b)
    np.testing.assert_allclose(wrapped(x), h, atol=1e-4)

    bidirectional = keras.layers.Bidirectional(make_layer("lstm"))
    bidirectional.build(x.shape)
    w2, u2, b2 = random_weights(rng, "lstm")
    bidirectional.set_weights([w, u, b, w2, u2, b2])
    _, h_back, _ = np_sequence("lstm", x, w2, u2, b2, go_backwards=True)
    np.testing.assert_allclose(bidirectional(x), np.concatenate([h, h_back], -1), atol=1e-4)
    assert isinstance(bidirectional.backward_layer, QuantLSTM)
    assert bidirectional.backward_layer.cell.state_quantizer.get_config() == (
        STATE["lstm"].get_config()
    )


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip(kind, rng):
    layer = make_layer(kind, return_sequences=True, dropout=0.1, kernel_constraint="weight_clip")
    config = layer.get_config()
    assert "cell" not in config
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    cell = layer.cell
    cell_clone = type(cell).from_config(cell.get_config())
    assert cell_clone.get_config() == cell.get_config()
    x = f32(rng.normal(0, 1, (2, 4, FEATURES)))
    layer.build(x.shape)
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x), clone(x))


FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    import keras, numpy, tfqnn
    model = keras.models.load_model(sys.argv[1])
    numpy.save(sys.argv[3], model.predict(numpy.load(sys.argv[2]), verbose=0))
    """
)


def test_keras_file_loads_in_a_fresh_process(tmp_path, rng):
    inputs = keras.Input((6, FEATURES))
    x = keras.layers.Bidirectional(make_layer("gru", return_sequences=True))(inputs)
    x = make_layer("simple_rnn", return_sequences=True)(x)
    x = keras.layers.RNN(make_cell("lstm"))(x)
    model = keras.Model(inputs, make_layer("lstm")(keras.layers.Reshape((1, UNITS))(x)))
    data = f32(rng.normal(0, 1, (3, 6, FEATURES)))
    expected = model.predict(data, verbose=0)
    path, x_path, out_path = (str(tmp_path / n) for n in ("m.keras", "x.npy", "y.npy"))
    model.save(path)
    np.save(x_path, data)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, path, x_path, out_path],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        cwd=os.path.dirname(os.path.dirname(tfqnn.__file__)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(out_path), expected)


# ---------------------------------------------------------------------------
# the adding problem (Le et al. 2015): T = 50, the trivial MSE is about 0.167


def adding_problem(rng, n, steps=50):
    values = rng.uniform(0, 1, (n, steps))
    markers = np.zeros((n, steps))
    for row in markers:
        row[rng.choice(steps, 2, replace=False)] = 1.0
    x = np.stack([values, markers], axis=-1)
    return f32(x), f32((values * markers).sum(axis=1, keepdims=True))


class StopBelow(keras.callbacks.Callback):
    """Stops training once the epoch's training loss is below ``threshold``."""

    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold

    def on_epoch_end(self, epoch, logs=None):
        if logs["loss"] < self.threshold:
            self.model.stop_training = True


def adding_problem_mse(quantizer, x, y, x_test, y_test, epochs=36):
    """Test MSE of LSTM(32) -> Dense(1) with ``quantizer`` on W and U.

    Training stops once the training MSE is under 0.01: after a plateau at
    the trivial MSE, float learns within about 10 epochs, ternary within
    about 30.
    """
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = keras.Sequential(
            [
                keras.Input((50, 2)),
                QuantLSTM(
                    32, kernel_quantizer=quantizer, recurrent_quantizer=quantizer, unroll=True
                ),
                keras.layers.Dense(1),
            ]
        )
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, batch_size=20, epochs=epochs, verbose=0, callbacks=[StopBelow(0.01)])
    return model.evaluate(x_test, y_test, verbose=0)


@pytest.mark.slow
def test_adding_problem_float_4bit_ternary_and_scaled_binary_learn_unscaled_binary_does_not():
    """Ott et al. 2016: unscaled binary W and U fail, a scale fixes them
    (the trivial prediction, the mean, has an MSE of about 0.167)."""
    rng = np.random.default_rng(0)
    x, y = adding_problem(rng, 2000)
    x_test, y_test = adding_problem(rng, 400)
    trivial = float(np.mean((y_test - y_test.mean()) ** 2))
    schemes = {
        "float": None,
        "4-bit": Uniform(15),
        "ternary": "ste_tern",
        "scaled binary": "scaled_sign",
    }
    mse = {name: adding_problem_mse(q, x, y, x_test, y_test) for name, q in schemes.items()}
    assert max(mse.values()) < 0.15 * trivial, mse
    unscaled = adding_problem_mse("ste_sign", x, y, x_test, y_test, epochs=8)
    assert unscaled > 0.8 * trivial, unscaled


def test_a_saturated_carry_passes_gradient_through_quantized_bits_not_fixed_point(rng):
    """QuantizedBits(8, 2) and FixedPoint(3, 5) give the same step; where the
    carry saturates (|c| >= 4) only QuantizedBits's STE passes its gradient."""
    x = tf.constant(f32(rng.normal(0, 1, (2, FEATURES))))
    h0 = tf.constant(f32(rng.normal(0, 0.5, (2, UNITS))))
    c0 = tf.Variable(f32(np.tile([[5.0, -6.0, 1.0, -0.5]], (2, 1))[:, :UNITS]))
    weights = random_weights(rng, "lstm")
    results = []
    for quantizer in (FixedPoint(3, 5), tfqnn.quantizers.QuantizedBits(8, 2)):
        cell = QuantLSTMCell(UNITS, state_quantizer=quantizer)
        cell.build((2, FEATURES))
        cell.set_weights(list(weights))
        with tf.GradientTape() as tape:
            _, (_, c) = cell(x, [h0, c0])
        results.append((np.asarray(c), np.asarray(tape.gradient(c, c0))))
    (c_fixed, grad_fixed), (c_bits, grad_bits) = results
    np.testing.assert_allclose(c_fixed, c_bits, atol=1e-6)
    saturated = np.abs(np.asarray(c0)) >= 4
    assert (grad_fixed[saturated] == 0).all() and (grad_fixed[~saturated] != 0).all()
    assert (grad_bits != 0).all()
