"""Binary branches of one tensor (Inception blocks): shared bitpacking, int8 concatenation.

Branches that read the same tensor share one ``TfqnnQuantize``; in the int8
export (``int8_representative_data``) the binary ops of a concatenation
write its int8 slices directly and the ``TfqnnQuantize`` ops after it read
the int8 tensor (`tfqnn.export.int8_fusion`). Inputs are drawn away from
zero, so that the int8 rounding of the model input never flips a sign.
"""

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops
from tfqnn.export import int8_fusion
from tfqnn.layers import QuantConv2D
from tfqnn.lite import flatbuffer

BINARY = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    use_bias=False,
)


def inception_block(rng):
    """Three binary branches of the input (two 1x1, one behind a max pool) joined by a
    concatenation, then a max pool (an int8 builtin) and a binary 1x1 convolution."""
    inputs = keras.Input((9, 9, 8))
    a = keras.layers.BatchNormalization()(QuantConv2D(16, 1, **BINARY)(inputs))
    b = keras.layers.BatchNormalization()(QuantConv2D(32, 1, **BINARY)(inputs))
    b = QuantConv2D(24, 3, padding="same", pad_values=1.0, **BINARY)(b)
    b = keras.layers.BatchNormalization()(b)
    c = keras.layers.MaxPooling2D(3, 1, padding="same")(inputs)
    c = keras.layers.BatchNormalization()(QuantConv2D(8, 1, **BINARY)(c))
    x = keras.layers.Concatenate()([a, b, c])
    pooled = keras.layers.MaxPooling2D(2)(x)
    d = QuantConv2D(8, 1, name="d_conv", **BINARY)(x)
    d = keras.layers.BatchNormalization(name="d_bn")(d)
    model = keras.Model(inputs, [pooled, d])
    for layer in model.layers:
        for weight in layer.weights:
            if weight.name == "moving_variance" or weight.name == "gamma":
                weight.assign(rng.uniform(0.5, 2.0, weight.shape))
            elif "seed_generator" not in weight.path:
                weight.assign(rng.normal(0, 1, weight.shape))
    return model


def away_from_zero(rng, n):
    magnitude = rng.uniform(0.1, 1.0, (n, 9, 9, 8))
    return (magnitude * rng.choice([-1.0, 1.0], magnitude.shape)).astype(np.float32)


def tensor_types(data, builtin_name):
    """The output tensor types (TensorType names) of every op `builtin_name` in the file."""
    return [kind for kind, _, _ in outputs_of(data, builtin_name)]


def outputs_of(data, builtin_name):
    """(type name, scale, zero point) of the output of every op `builtin_name` in the file."""
    schema = flatbuffer.schema()
    code = getattr(schema.BuiltinOperator, builtin_name)
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = flatbuffer.read_model(data)
    graph = model.Subgraphs(0)
    types = []
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        opcode = model.OperatorCodes(op.OpcodeIndex())
        if max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode()) == code:
            tensor = graph.Tensors(op.Outputs(0))
            q = tensor.Quantization()
            scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
            zero = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else None
            types.append((names[tensor.Type()], scale, zero))
    return types


def test_branches_of_one_tensor_share_its_bitpacking(rng):
    model = inception_block(rng)
    x = away_from_zero(rng, 4)
    data = tfqnn.export.to_tflite(model, verbose=0)
    # One TfqnnQuantize for the input (branches a and b, and c's max pool,
    # which runs on it bitpacked: tfqnn.export.packed_graph), one for the
    # concatenation (d); b's second op reads b's bitpacked output.
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 2,
        "TfqnnBconv2d": 5,
        "TfqnnBMaxPool2d": 1,
    }
    expected = model.predict(x, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    for e, a in zip(expected, actual, strict=True):
        np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-4)


def test_int8_concatenation_of_binary_branches(rng, monkeypatch):
    model = inception_block(rng)
    x = away_from_zero(rng, 16)
    data = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 2,
        "TfqnnBconv2d": 5,
        "TfqnnBMaxPool2d": 1,
    }
    builtins = builtin_ops(data)
    # Float in and out: the input read by TfqnnQuantize only (c's max pool
    # runs bitpacked), a DEQUANTIZE per output; no conversion around the
    # concatenation.
    assert "QUANTIZE" not in builtins and builtins["DEQUANTIZE"] == 1, builtins
    assert tensor_types(data, "CONCATENATION") == ["INT8"]
    assert tensor_types(data, "MAX_POOL_2D") == ["INT8"]

    # Against Keras on the int8 concatenation: Keras's concatenation rounded
    # to the file's scale and zero point (the binary ops write it), pooled
    # (pooled output), and read by the binary branch d (float output).
    (join,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    concatenation = keras.ops.convert_to_numpy(keras.Model(model.input, join.output)(x))
    ((_, scale, zero),) = outputs_of(data, "CONCATENATION")
    step, zero = float(scale[0]), int(zero[0])
    q = np.clip(np.round(concatenation / step) + zero, -128, 127)
    dequantized = ((q - zero) * step).astype(np.float32)
    assert np.mean(q == zero) > 0.01  # the test covers values that round to 0
    pooled = keras.ops.convert_to_numpy(keras.layers.MaxPooling2D(2)(dequantized))
    d_layers = model.get_layer("d_bn"), model.get_layer("d_conv")
    d = keras.ops.convert_to_numpy(d_layers[0](d_layers[1](dequantized), training=False))
    got_pooled, got_d = tfqnn.lite.Interpreter(model_content=data).predict(x)
    # The op rounds halves away from zero, numpy to even: exact halves aside,
    # equal (a continuous range has no exact halves).
    np.testing.assert_allclose(got_pooled, pooled, rtol=1e-6, atol=1e-6 * step)
    np.testing.assert_allclose(got_d, d, rtol=2e-5, atol=2e-4)

    # Without the pass: a float concatenation and a QUANTIZE after it. The
    # pooled outputs differ at most by the rounding of exact halves; d read
    # the float concatenation there (Keras's own d), the int8 one here: the
    # signs of values within half a step of 0 are what int8 neighbours cost.
    monkeypatch.setattr(int8_fusion, "_int8_concatenations", lambda *args: 0)
    plain = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    assert tensor_types(plain, "CONCATENATION") == ["FLOAT32"]
    assert builtin_ops(plain)["QUANTIZE"] == 1
    plain_pooled, plain_d = tfqnn.lite.Interpreter(model_content=plain).predict(x)
    np.testing.assert_allclose(got_pooled, plain_pooled, rtol=0, atol=1.01 * step)
    assert np.mean(got_pooled == plain_pooled) > 0.99
    np.testing.assert_allclose(plain_d, model.predict(x, verbose=0)[1], rtol=2e-5, atol=2e-4)


@pytest.mark.parametrize("consumer", ["output", "float_reader", "int8_reader"])
def test_concatenation_with_another_reader(rng, consumer):
    """A concatenation that is a model output, or that a float op (SIN has no int8
    kernel) reads besides the QUANTIZE, keeps its float tensors; one that an int8
    builtin reads (LOGISTIC, through the same QUANTIZE) becomes int8."""
    inputs = keras.Input((9, 9, 8))
    a = QuantConv2D(16, 1, **BINARY)(inputs)
    b = QuantConv2D(16, 1, **BINARY)(keras.layers.MaxPooling2D(3, 1, padding="same")(inputs))
    x = keras.layers.Concatenate()([a, b])
    pooled = keras.layers.MaxPooling2D(2)(x)
    if consumer == "output":
        other = x
    else:
        function = keras.ops.sin if consumer == "float_reader" else "sigmoid"
        other = keras.layers.Activation(function, dtype="float32")(x)
    model = keras.Model(inputs, [pooled, other])
    x_data = away_from_zero(rng, 8)
    data = tfqnn.export.to_tflite(model, int8_representative_data=x_data, verbose=0)
    folded = consumer == "int8_reader"
    assert tensor_types(data, "CONCATENATION") == ["INT8" if folded else "FLOAT32"]
    # b's max pool runs bitpacked on the input's TfqnnQuantize: the only
    # QUANTIZE left is the concatenation's, unless it folds.
    assert builtin_ops(data).get("QUANTIZE", 0) == (0 if folded else 1)
    expected = model.predict(x_data, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x_data)
    ((_, scale, _),) = outputs_of(data, "MAX_POOL_2D")
    for e, got in zip(expected, actual, strict=True):
        # pooled: int8 with the concatenation's scale; other: float (exact),
        # or int8 through the concatenation (the sigmoid's slope <= 1/4).
        np.testing.assert_allclose(got, e, rtol=1e-5, atol=0.6 * float(scale[0]) + 1e-5)


def test_one_dequantize_folds_into_every_bitpacking_reader(rng):
    """An int8 max pool read by a sign branch and a two-threshold (ABC-Net) branch:
    two TfqnnQuantize ops on one DEQUANTIZE, which folds into both."""
    from tfqnn.quantizers import MultiBinary, MultiBinaryActivation

    inputs = keras.Input((9, 9, 8))
    pooled = keras.layers.MaxPooling2D(3, 1, padding="same")(inputs)
    sign = QuantConv2D(8, 1, name="sign", **BINARY)(pooled)
    abc = QuantConv2D(
        8,
        1,
        name="abc",
        use_bias=False,
        input_quantizer=MultiBinaryActivation(2),
        kernel_quantizer=MultiBinary(2, axis=-1),
    )(pooled)
    model = keras.Model(inputs, [sign, abc])
    for layer in model.layers:
        for weight in layer.weights:
            if "seed_generator" not in weight.path and weight.name == "kernel":
                weight.assign(rng.normal(0, 1, weight.shape))
    x = away_from_zero(rng, 16)
    data = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 2, "TfqnnBconv2d": 2}
    assert "DEQUANTIZE" not in builtin_ops(data)  # folded into both readers
    ((kind, scale, zero),) = outputs_of(data, "MAX_POOL_2D")
    assert kind == "INT8"
    # Keras on the int8 pooled tensor: the sign branch reads sign(q - zero
    # point), the ABC-Net branch compares the dequantized value with its
    # thresholds.
    step, zero = float(scale[0]), int(zero[0])
    pool = keras.ops.convert_to_numpy(keras.layers.MaxPooling2D(3, 1, padding="same")(x))
    q = np.clip(np.round(pool / step) + zero, -128, 127)
    dequantized = ((q - zero) * step).astype(np.float32)
    got = tfqnn.lite.Interpreter(model_content=data).predict(x)
    for name, actual in zip(["sign", "abc"], got, strict=True):
        expected = keras.ops.convert_to_numpy(model.get_layer(name)(dequantized))
        np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-4)
