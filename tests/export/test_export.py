"""tfqnn.export.to_tflite end to end: Keras model -> .tflite -> tfqnn.lite.Interpreter.

The interpreter's outputs must equal Keras's predictions up to the float
rounding of the folded output transform (BatchNorm folded into one multiply
and add): a few ulps of the logits, never a different sign bit inside the
network. Weights and inputs are drawn so that no BatchNorm output sits
within rounding of zero (odd fan-ins, continuous BN statistics).
"""

import json
import os

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.lite import reference, spec

BINARY = dict(
    input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def randomize(model, rng):
    """Random latent weights and BatchNorm statistics (positive and negative gammas)."""
    for layer in model.layers:
        for weight in layer.weights:
            if "seed_generator" in weight.path:
                continue
            shape = weight.shape
            if weight.name == "moving_variance":
                weight.assign(rng.uniform(0.5, 2.0, shape))
            elif weight.name == "gamma":
                weight.assign(rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape))
            else:
                weight.assign(rng.normal(0, 1, shape))
    return model


def run_both(model, x, **kwargs):
    data = tfqnn.export.to_tflite(model, **kwargs)
    interpreter = tfqnn.lite.Interpreter(model_content=data)
    return data, model.predict(x, verbose=0), interpreter.predict(x)


def assert_close(expected, actual):
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-4)


def conv_model(rng, padding="same", pad_values=1.0, strides=1, dilation=1, channels=(33, 40)):
    model = keras.Sequential(
        [
            keras.Input((11, 13, 3)),
            keras.layers.Conv2D(channels[0], 3, padding="same"),
            keras.layers.BatchNormalization(),
            QuantConv2D(
                channels[1],
                3,
                padding=padding,
                pad_values=pad_values,
                strides=strides,
                dilation_rate=dilation,
                use_bias=False,
                **BINARY,
            ),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            QuantDense(7, use_bias=True, **BINARY),
        ]
    )
    return randomize(model, rng)


def test_binary_mlp_matches_keras(rng):
    model = randomize(
        keras.Sequential(
            [
                keras.Input((45,)),
                QuantDense(65, **BINARY),
                keras.layers.BatchNormalization(),
                QuantDense(33, use_bias=False, **BINARY),
                keras.layers.BatchNormalization(),
                keras.layers.Activation("relu"),
                QuantDense(10, **BINARY),
            ]
        ),
        rng,
    )
    x = rng.normal(size=(9, 45)).astype(np.float32)
    data, expected, actual = run_both(model, x)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 1, "TfqnnBdense": 3}
    assert_close(expected, actual)


@pytest.mark.parametrize(
    "padding, pad_values, strides, dilation",
    [
        ("same", 1.0, 1, 1),
        ("same", 0.0, 1, 1),
        ("same", 1.0, 2, 1),
        ("valid", 1.0, 1, 2),
        ("valid", 0.0, 2, 1),
    ],
)
def test_binary_cnn_matches_keras(rng, padding, pad_values, strides, dilation):
    model = conv_model(rng, padding, pad_values, strides, dilation)
    x = rng.normal(size=(3, 11, 13, 3)).astype(np.float32)
    data, expected, actual = run_both(model, x)
    ops = tfqnn.lite.custom_ops_in(data)
    assert ops["TfqnnBconv2d"] == 1 and ops["TfqnnBdense"] == 1
    assert_close(expected, actual)


def test_demo_shaped_network_fuses_pool_and_writes_bitpacked_output(rng):
    """conv -> maxpool -> BN -> flatten -> dense: one quantize, bitpacked all the way."""
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Conv2D(32, 3, use_bias=False),
            keras.layers.MaxPooling2D(2),
            keras.layers.BatchNormalization(),
            QuantConv2D(64, 3, padding="same", pad_values=1.0, use_bias=False, **BINARY),
            keras.layers.MaxPooling2D(2),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            QuantDense(10, use_bias=False, **BINARY),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("softmax"),
        ]
    )
    randomize(model, rng)
    model.layers[5].gamma.assign(np.abs(model.layers[5].gamma.numpy()))  # folds through the pool
    x = rng.normal(size=(5, 12, 12, 1)).astype(np.float32)
    data, expected, actual = run_both(model, x)
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 1,
        "TfqnnBconv2d": 1,
        "TfqnnBMaxPool2d": 1,
        "TfqnnBdense": 1,
    }
    assert_close(expected, actual)


def test_negative_batch_norm_scale_after_a_pool_stays_float(rng):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 32)),
            QuantConv2D(32, 3, padding="same", pad_values=1.0, use_bias=False, **BINARY),
            keras.layers.MaxPooling2D(2),
            keras.layers.BatchNormalization(),
            QuantConv2D(5, 3, use_bias=False, **BINARY),
        ]
    )
    randomize(model, rng)
    gamma = model.layers[2].gamma
    gamma.assign(-np.abs(gamma.numpy()))
    x = rng.normal(size=(2, 8, 8, 32)).astype(np.float32)
    data, expected, actual = run_both(model, x)
    assert tfqnn.lite.custom_ops_in(data)["TfqnnQuantize"] == 2  # BN ran as a builtin
    assert_close(expected, actual)


def test_scaled_sign_kernel_and_relu_fold(rng):
    model = randomize(
        keras.Sequential(
            [
                keras.Input((37,)),
                QuantDense(
                    20,
                    input_quantizer="ste_sign",
                    kernel_quantizer="scaled_sign",
                    kernel_constraint="weight_clip",
                    activation="relu",
                ),
                QuantDense(4, **BINARY),
            ]
        ),
        rng,
    )
    x = rng.normal(size=(6, 37)).astype(np.float32)
    data, expected, actual = run_both(model, x)
    assert tfqnn.lite.custom_ops_in(data)["TfqnnBdense"] == 2
    assert_close(expected, actual)


def test_non_binary_layers_stay_builtins(rng):
    model = randomize(
        keras.Sequential(
            [
                keras.Input((16,)),
                QuantDense(8, input_quantizer="ste_sign", kernel_quantizer="dorefa"),
                QuantDense(
                    8,
                    input_quantizer="scaled_sign",
                    kernel_quantizer="ste_sign",
                    kernel_constraint="weight_clip",
                ),
                QuantDense(3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip"),
            ]
        ),
        rng,
    )
    x = rng.normal(size=(4, 16)).astype(np.float32)
    data, expected, actual = run_both(model, x)
    assert tfqnn.lite.custom_ops_in(data) == {}
    assert_close(expected, actual)


def test_functional_model_with_two_binary_consumers(rng):
    inputs = keras.Input((29,))
    hidden = QuantDense(64, use_bias=False, **BINARY)(inputs)
    hidden = keras.layers.BatchNormalization()(hidden)
    left = QuantDense(5, **BINARY)(hidden)
    right = QuantDense(3, **BINARY)(hidden)
    model = randomize(keras.Model(inputs, [left, right]), rng)
    x = rng.normal(size=(4, 29)).astype(np.float32)
    data = tfqnn.export.to_tflite(model)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 1, "TfqnnBdense": 3}
    expected = model.predict(x, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    assert sorted(a.shape for a in actual) == sorted(e.shape for e in expected)
    for e in expected:
        match = [a for a in actual if a.shape == e.shape][0]
        assert_close(e, match)


def test_int8_builtins_beside_binary_ops(rng):
    model = conv_model(rng)
    x = rng.normal(size=(40, 11, 13, 3)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, int8_representative_data=x)
    ops = tfqnn.lite.custom_ops_in(data)
    assert ops["TfqnnBconv2d"] == 1 and ops["TfqnnBdense"] == 1
    expected = model.predict(x[:8], verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x[:8])
    # int8 rounding of the first float conv flips a few input signs of the
    # binary conv: the logits stay correlated, not equal.
    assert actual.shape == expected.shape
    assert np.corrcoef(actual.ravel(), expected.ravel())[0, 1] > 0.8


def test_int8_conversions_fold_into_the_binary_ops(rng, monkeypatch):
    from tfqnn.export import int8_fusion

    model = conv_model(rng)
    x = rng.normal(size=(40, 11, 13, 3)).astype(np.float32)
    fuse = int8_fusion.fuse_int8_conversions
    fused = tfqnn.export.to_tflite(model, int8_representative_data=x)
    monkeypatch.setattr(int8_fusion, "fuse_int8_conversions", lambda data: (data, {}))
    plain = tfqnn.export.to_tflite(model, int8_representative_data=x)
    _, counts = fuse(plain)
    # The conv writes int8 for the flatten; both binary layers read int8.
    assert counts == {"QUANTIZE": 1, "DEQUANTIZE": 2, "ADD": 0}
    assert len(fused) < len(plain)
    a = tfqnn.lite.Interpreter(model_content=fused).predict(x[:8])
    b = tfqnn.lite.Interpreter(model_content=plain).predict(x[:8])
    # Only the rounding of exact halves may differ (the op rounds half away
    # from zero, XNNPACK's QUANTIZE to even): one int8 step at most, which
    # rarely flips a sign of the dense layer's input.
    assert np.mean(np.abs(a - b) < 1e-4) > 0.9


def test_binary_file_is_within_ten_percent_of_the_summary(rng):
    model = randomize(
        keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                QuantConv2D(64, 3, padding="same", pad_values=1.0, use_bias=False, **BINARY),
                keras.layers.BatchNormalization(),
                QuantConv2D(128, 3, padding="same", pad_values=1.0, use_bias=False, **BINARY),
                keras.layers.MaxPooling2D(2),
                keras.layers.BatchNormalization(),
                keras.layers.Flatten(),
                QuantDense(256, use_bias=False, **BINARY),
                keras.layers.BatchNormalization(),
                QuantDense(10, use_bias=False, **BINARY),
                keras.layers.BatchNormalization(),
            ]
        ),
        rng,
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(np.abs(layer.gamma.numpy()))
    predicted = tfqnn.summary(model, print_fn=None).quantized_bytes
    data = tfqnn.export.to_tflite(model)
    assert abs(len(data) - predicted) <= 0.1 * predicted, (len(data), predicted)


def test_dynamic_batch_and_fixed_batch(rng):
    model = conv_model(rng)
    x = rng.normal(size=(7, 11, 13, 3)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, batch_size=7)
    interpreter = tfqnn.lite.Interpreter(model_content=data)
    assert list(interpreter.get_input_details()[0]["shape"]) == [7, 11, 13, 3]
    assert_close(model.predict(x, verbose=0), interpreter.predict(x))
    dynamic = tfqnn.lite.Interpreter(model_content=tfqnn.export.to_tflite(model))
    assert_close(model.predict(x, verbose=0), dynamic.predict(x, batch_size=3))


def test_writes_the_file(rng, tmp_path):
    model = conv_model(rng)
    path = tmp_path / "model.tflite"
    data = tfqnn.export.to_tflite(model, path)
    assert path.read_bytes() == data
    x = rng.normal(size=(2, 11, 13, 3)).astype(np.float32)
    assert_close(model.predict(x, verbose=0), tfqnn.lite.Interpreter(str(path)).predict(x))


def test_packed_weights_in_the_file_are_the_signs_of_the_kernel(rng):
    from ai_edge_litert import interpreter as litert

    model = conv_model(rng)
    data = tfqnn.export.to_tflite(model)
    inspector = litert.Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    kernel = model.layers[2].kernel.numpy()  # [3, 3, 33, 40]
    packed = reference.bitpack(np.transpose(np.where(kernel < 0, -1.0, 1.0), (3, 0, 1, 2)))
    tensors = [t for t in inspector.get_tensor_details() if tuple(t["shape"]) == packed.shape]
    assert any(np.array_equal(inspector.get_tensor(t["index"]), packed) for t in tensors)


def test_dropped_custom_ops_raise(rng, monkeypatch):
    from tfqnn.export import composite

    # Without tfl_fusable_op the converter inlines the function bodies, as it
    # does silently in some conversion paths: to_tflite must notice.
    monkeypatch.setattr(composite, "_implements", lambda name, attrs: f'name: "{name}"')
    model = conv_model(rng)
    with pytest.raises(tfqnn.export.ExportError, match="did not keep tfqnn's custom ops"):
        tfqnn.export.to_tflite(model)


def test_bad_arguments(rng):
    model = conv_model(rng)
    with pytest.raises(ValueError, match="^Invalid batch_size=0: expected"):
        tfqnn.export.to_tflite(model, batch_size=0)
    with pytest.raises(ValueError, match="^Invalid int8_representative_data: expected one array"):
        tfqnn.export.to_tflite(model, int8_representative_data=[np.zeros((2, 11, 13, 3))] * 2)
    with pytest.raises(ValueError, match="^Invalid int8_representative_data: .*got \\[0\\]"):
        tfqnn.export.to_tflite(model, int8_representative_data=np.zeros((0, 11, 13, 3)))

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="^Invalid model=Subclassed: expected a Sequential"):
        tfqnn.export.to_tflite(Subclassed())
    with pytest.raises(ValueError, match="^Invalid model: expected a Sequential model with an"):
        tfqnn.export.to_tflite(keras.Sequential([QuantDense(3, **BINARY)]))


@pytest.mark.skipif(
    not tfqnn.datasets.fashion_mnist_available(), reason="Fashion-MNIST not installed"
)
def test_saved_bnn_keeps_its_accuracy_after_export():
    saved = os.path.join(ROOT, "saved_models", "bnn_fashion_mnist")
    with open(saved + ".json") as f:
        recorded = json.load(f)["test_accuracy"]
    model = keras.models.load_model(saved + ".keras")
    (_, _), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    x_test = 2.0 * x_test[..., None] - 1.0
    data = tfqnn.export.to_tflite(model)
    assert tfqnn.lite.custom_ops_in(data).get("TfqnnBconv2d", 0) >= 1
    predictions = tfqnn.lite.Interpreter(model_content=data).predict(x_test, batch_size=1000)
    accuracy = float(np.mean(np.argmax(predictions, axis=1) == y_test))
    assert accuracy == pytest.approx(recorded, abs=2e-3)


def custom_options(data):
    """(op name, options dict) of every tfqnn op in a .tflite file, in graph order."""
    from flatbuffers import flexbuffers

    model = tfqnn.lite.schema().ModelT.InitFromObj(
        tfqnn.lite.schema().Model.GetRootAsModel(data, 0)
    )
    names = [code.customCode for code in model.operatorCodes]
    found = []
    for op in model.subgraphs[0].operators:
        name = names[op.opcodeIndex]
        name = name.decode() if isinstance(name, bytes) else name
        if name and name.startswith(spec.OP_PREFIX):
            options = bytes(op.customOptions) if op.customOptions is not None else b""
            found.append((name, flexbuffers.Loads(options) if options else {}))
    return found


def test_custom_options_are_the_specs(rng):
    model = conv_model(rng, padding="same", pad_values=0.0, strides=2, channels=(33, 64))
    layer = model.layers[2]
    found = custom_options(tfqnn.export.to_tflite(model))
    assert [name for name, _ in found] == [spec.QUANTIZE, spec.BCONV2D, spec.BDENSE]
    assert found[0][1] == {}
    assert found[1][1] == spec.bconv2d_options(
        33, strides=(2, 2), padding="same", pad_values=0, output_type="bitpacked"
    )
    assert found[1][1]["output_type"] == 2 and layer.groups == 1  # the dense reads it packed
    assert found[2][1] == spec.bdense_options(6 * 7 * 64)


def test_composite_rejects_int8_output():
    from tfqnn.export import composite

    with pytest.raises(ValueError, match=r"^Invalid output_type='int8': expected 'float'"):
        composite.bdense(None, np.zeros((2, 1), np.int32), [1, 1], [0, 0], 8, output_type="int8")


def test_schema_falls_back_to_tensorflow_without_ai_edge_litert(monkeypatch):
    from tensorflow.lite.python import schema_py_generated

    from tfqnn.export._schema import tflite_schema

    assert tflite_schema() is tfqnn.lite.schema()

    def missing():
        raise ImportError("No module named 'ai_edge_litert'")

    monkeypatch.setattr(tfqnn.lite, "schema", missing)
    assert tflite_schema() is schema_py_generated
