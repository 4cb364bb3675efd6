"""Recurrent layers through tfqnn.export.to_tflite: builtin WHILE (fixed batch) or a
flat graph (unroll=True), outputs equal to Keras within float rounding, quantized
W and U stored as int8 with per-row scales where their values allow it."""

import warnings

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops
from tfqnn.export import int8_weights
from tfqnn.layers import QuantGRU, QuantLSTM, QuantLSTMCell, QuantSimpleRNN
from tfqnn.quantizers import FixedPoint

LAYERS = {"lstm": QuantLSTM, "gru": QuantGRU, "simple_rnn": QuantSimpleRNN}
STEPS, FEATURES, UNITS = 6, 5, 16


def quantized(kernel_quantizer="ste_tern"):
    return dict(
        input_quantizer=FixedPoint(3, 5),
        kernel_quantizer=kernel_quantizer,
        recurrent_quantizer=kernel_quantizer,
        state_quantizer=FixedPoint(3, 5),
    )


def recurrent_model(layer, rng):
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), layer, keras.layers.Dense(3)])
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape))
    return model


def int8_tensors(data):
    """(values as int8 [out, in], per-row scales) of every int8 tensor in the file."""
    schema = tfqnn.lite.schema()
    model = tfqnn.lite.flatbuffer.read_model(data)
    found = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for i in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(i)
            if tensor.Type() != schema.TensorType.INT8:
                continue
            raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
            values = np.frombuffer(raw.tobytes(), np.int8).reshape(tensor.ShapeAsNumpy())
            q = tensor.Quantization()
            assert q.QuantizedDimension() == 0 and not q.ZeroPointAsNumpy().any()
            found.append((values, q.ScaleAsNumpy()))
    return found


@pytest.mark.parametrize(
    "kind,unroll",
    [
        ("lstm", False),
        ("gru", False),
        ("simple_rnn", False),
        ("lstm", True),
        pytest.param("gru", True, marks=pytest.mark.slow),
        pytest.param("simple_rnn", True, marks=pytest.mark.slow),
    ],
)
def test_recurrent_layers_export_to_builtins_equal_to_keras(kind, unroll, rng):
    layer = LAYERS[kind](UNITS, return_sequences=True, unroll=unroll, **quantized())
    model = recurrent_model(layer, rng)
    x = rng.normal(0.0, 1.0, (3, STEPS, FEATURES)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, batch_size=None if unroll else 1)
    interpreter = tfqnn.lite.Interpreter(model_content=data)
    actual = interpreter.predict(x, batch_size=None if unroll else 1)
    np.testing.assert_allclose(actual, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    ops = builtin_ops(data)
    assert ("WHILE" in ops) is not unroll
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in ops and not tfqnn.lite.custom_ops_in(data)
    assert ops["DEQUANTIZE"] == 2  # W and U, once each


def test_int8_weights_are_the_quantized_weights_at_their_precision(rng):
    layer = QuantLSTM(32, kernel_quantizer="ste_tern", recurrent_quantizer="ste_tern")
    model = recurrent_model(layer, rng)
    data = tfqnn.export.to_tflite(model, batch_size=1)
    kernel, recurrent_kernel, _ = layer.cell.quantized_weights(False)
    expected = [keras.ops.convert_to_numpy(w).T for w in (kernel, recurrent_kernel)]
    found = int8_tensors(data)
    assert len(found) == 2
    for (values, scales), weight in zip(sorted(found, key=lambda f: f[0].shape[1]), expected):
        assert set(np.unique(values)) <= {-1, 0, 1}  # ternary: 2 bits in each int8
        np.testing.assert_allclose(scales[:, None] * values, weight, rtol=1e-5)


def test_int8_storage_shrinks_the_file_by_three_bytes_per_weight(rng, monkeypatch):
    layer = QuantLSTM(48, kernel_quantizer="ste_tern", recurrent_quantizer="ste_tern")
    model = recurrent_model(layer, rng)
    int8_data = tfqnn.export.to_tflite(model, batch_size=1)
    monkeypatch.setattr(int8_weights, "quantized_recurrent_weights", lambda model: [])
    float_data = tfqnn.export.to_tflite(model, batch_size=1)
    weights = (FEATURES + 48) * 4 * 48
    saved = len(float_data) - len(int8_data)
    rows = 2 * 4 * 48  # of W^T and U^T, each with a float32 scale and an int64 zero point
    assert 3 * weights - 12 * rows - 1024 < saved <= 3 * weights - 12 * rows


def test_a_scale_the_converter_folds_into_the_weights_keeps_them_int8(rng):
    """DoReFa's 1/255 on the input becomes part of W^T: still a multiple of the quantized W."""
    layer = QuantLSTM(UNITS, **{**quantized(), "input_quantizer": tfqnn.quantizers.DoReFa(8)})
    model = recurrent_model(layer, rng)
    data = tfqnn.export.to_tflite(model, batch_size=1)
    assert len(int8_tensors(data)) == 2
    x = rng.uniform(0.0, 1.0, (2, STEPS, FEATURES)).astype(np.float32)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x, batch_size=1)
    np.testing.assert_allclose(actual, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_weights_off_the_int8_grid_stay_float(rng):
    """Uniform's levels start at the tensor's minimum: no zero point makes them int8."""
    layer = QuantLSTM(UNITS, unroll=True, kernel_quantizer="uniform", recurrent_quantizer="uniform")
    model = recurrent_model(layer, rng)
    data = tfqnn.export.to_tflite(model)
    assert int8_tensors(data) == [] and "DEQUANTIZE" not in builtin_ops(data)
    x = rng.normal(0.0, 1.0, (2, STEPS, FEATURES)).astype(np.float32)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_bidirectional_and_rnn_of_a_cell_export(rng):
    inputs = keras.Input((STEPS, FEATURES))
    forward = keras.layers.Bidirectional(QuantGRU(8, return_sequences=True, **quantized()))
    clip = dict(kernel_constraint="weight_clip", recurrent_constraint="weight_clip")
    cell = keras.layers.RNN(QuantLSTMCell(8, **quantized("scaled_sign"), **clip))
    model = keras.Model(inputs, keras.layers.Dense(2)(cell(forward(inputs))))
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape))
    x = rng.normal(0.0, 1.0, (2, STEPS, FEATURES)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, batch_size=1)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x, batch_size=1)
    np.testing.assert_allclose(actual, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert len(int8_tensors(data)) == 6  # W and U of two GRU directions and the LSTM


@pytest.mark.parametrize(
    "layer",
    [
        lambda: QuantLSTM(4),
        lambda: keras.layers.Bidirectional(QuantGRU(4)),
        lambda: keras.layers.RNN(QuantLSTMCell(4)),
        lambda: keras.layers.LSTM(4),
    ],
    ids=["lstm", "bidirectional", "rnn_of_cell", "keras_lstm"],
)
def test_a_loop_with_a_dynamic_batch_is_refused_naming_batch_size(layer):
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), layer()])
    with pytest.raises(ValueError, match="Invalid batch_size=None.*unroll=True"):
        tfqnn.export.to_tflite(model)


def test_int8_rows_finds_the_integer_grid_of_each_row():
    ternary = np.array([[0.3, -0.3, 0.0], [0.0, 0.0, 0.0], [-2.0, 2.0, 2.0]], np.float32)
    ints, scales = int8_weights.int8_rows(ternary)
    np.testing.assert_array_equal(ints, [[1, -1, 0], [0, 0, 0], [-1, 1, 1]])
    np.testing.assert_allclose(scales, [0.3, 1.0, 2.0])
    fixed = np.arange(-127, 128, dtype=np.float32)[None] / 16  # FixedPoint(4, 4) but -8
    ints, scales = int8_weights.int8_rows(fixed)
    np.testing.assert_allclose(scales[:, None] * ints, fixed, rtol=1e-6)
    assert int8_weights.int8_rows(np.arange(-128, 1, dtype=np.float32)[None] / 16) is None
    rng = np.random.default_rng(0)
    assert int8_weights.int8_rows(rng.normal(size=(4, 9)).astype(np.float32)) is None


def test_float_recurrent_weights_are_not_collected():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = QuantLSTM(4, kernel_quantizer="ste_sign", recurrent_quantizer=FixedPoint(8, 8))
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), layer])
    (weight,) = int8_weights.quantized_recurrent_weights(model)  # 16-bit U is not
    assert weight.shape == (FEATURES, 16) and set(np.unique(weight)) == {-1.0, 1.0}


def stateful_model(kind, rng, batch=2):
    layer = LAYERS[kind](UNITS, stateful=True, **quantized())
    model = keras.Sequential(
        [keras.Input((STEPS, FEATURES), batch_size=batch), layer, keras.layers.Dense(3)]
    )
    for weight in model.weights:
        if weight.trainable:
            weight.assign(rng.normal(0.0, 0.5, weight.shape))
    return model, layer


@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn"])
def test_a_stateful_layer_carries_its_states_from_one_invoke_to_the_next(kind, rng):
    model, layer = stateful_model(kind, rng)
    x = rng.normal(0.0, 1.0, (3, 2, STEPS, FEATURES)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, batch_size=2, verbose=0)
    expected = [model.predict(batch, verbose=0, batch_size=2) for batch in x]
    layer.reset_states()
    fresh = model.predict(x[2], verbose=0, batch_size=2)
    interpreter = tfqnn.lite.Interpreter(model_content=data)
    actual = interpreter.predict(x.reshape(6, STEPS, FEATURES), batch_size=2)  # three invokes
    np.testing.assert_allclose(actual, np.concatenate(expected), rtol=1e-5, atol=1e-5)
    assert np.abs(expected[2] - fresh).max() > 1e-3  # the carried states matter
    ops = builtin_ops(data)
    assert ops["VAR_HANDLE"] == ops["ASSIGN_VARIABLE"] == 2 * len(layer.states)
    assert ops["READ_VARIABLE"] == len(layer.states) and ops["CALL_ONCE"] == 1


def test_the_exported_states_start_where_the_keras_states_were(rng):
    """The resource variables start at the states at export; reset_all_variables keeps them."""
    model, _ = stateful_model("lstm", rng)
    x = rng.normal(0.0, 1.0, (3, 2, STEPS, FEATURES)).astype(np.float32)
    model.predict(x[0], verbose=0, batch_size=2)
    data = tfqnn.export.to_tflite(model, batch_size=2, verbose=0)
    expected = [model.predict(batch, verbose=0, batch_size=2) for batch in x[1:]]
    interpreter = tfqnn.lite.Interpreter(model_content=data)
    np.testing.assert_allclose(interpreter.predict(x[1]), expected[0], rtol=1e-5, atol=1e-5)
    interpreter.reset_all_variables()  # resets TFLite's variable tensors, not resource variables
    np.testing.assert_allclose(interpreter.predict(x[2]), expected[1], rtol=1e-5, atol=1e-5)
    restarted = tfqnn.lite.Interpreter(model_content=data)
    np.testing.assert_allclose(restarted.predict(x[1]), expected[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_a_stateful_layer_is_exported_only_at_the_batch_of_its_states(batch_size, rng):
    model, _ = stateful_model("gru", rng)
    with pytest.raises(
        ValueError, match=f"Invalid batch_size={batch_size}.*stateful.*batch_size=2"
    ):
        tfqnn.export.to_tflite(model, batch_size=batch_size, verbose=0)
