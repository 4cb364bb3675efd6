"""Quantized kernels of builtin-exported layers are constants of the quantized values.

`tfqnn.export.frozen_weights`: a tfqnn layer that is not a custom op (k-bit
DoReFa weights, binary weights on a float input) must reach the file as
constants of ``q(w)``, computed once at export, not as latent weights that
the file re-quantizes at every invoke. The expected weights come from the
quantizers' formulas in numpy, not from the layers.
"""

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops
from tfqnn.layers import QuantConv2D, QuantDense

# Builtins that re-quantizing a latent kernel in the graph would leave behind.
CLIP = dict(kernel_constraint="weight_clip")
REQUANTIZING_OPS = {"SELECT_V2", "TANH", "ROUND", "TRANSPOSE", "REDUCE_MAX", "ABS", "GREATER_EQUAL"}


def dorefa_weights(w, bits):
    """DoReFa-Net's k-bit weights: 2 round(n (tanh w / (2 max|tanh w|) + 1/2)) / n - 1."""
    n = 2.0**bits - 1.0
    t = np.tanh(w.astype(np.float64))
    return 2.0 * np.round((t / (2.0 * np.abs(t).max()) + 0.5) * n) / n - 1.0


def constants(data):
    """{shape: [arrays]} of the file's tensors that hold data, dequantized where int8."""
    from ai_edge_litert import interpreter as litert

    inspector = litert.Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    inspector.allocate_tensors()
    found = {}
    for detail in inspector.get_tensor_details():
        try:
            value = inspector.get_tensor(detail["index"])
        except ValueError:
            continue
        scales = detail["quantization_parameters"]["scales"]
        if value.dtype == np.int8 and len(scales):
            shape = (-1,) + (1,) * (value.ndim - 1)
            value = value.astype(np.float64) * scales.reshape(shape)
        found.setdefault(tuple(value.shape), []).append(value)
    return found


def contains(found, expected, atol=1e-6):
    return any(np.allclose(v, expected, rtol=0, atol=atol) for v in found.get(expected.shape, []))


def dorefa_model(rng, bits):
    model = keras.Sequential(
        [
            keras.Input((9, 9, 3)),
            QuantConv2D(8, 3, kernel_quantizer=tfqnn.quantizers.DoReFaWeights(bits), **CLIP),
            keras.layers.Flatten(),
            QuantDense(6, kernel_quantizer=tfqnn.quantizers.DoReFaWeights(bits), **CLIP),
        ]
    )
    for layer in model.layers:
        for weight in layer.weights:
            weight.assign(rng.normal(0, 1, weight.shape))
    return model


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_dorefa_kernels_are_constants_of_the_quantized_values(rng, bits):
    model = dorefa_model(rng, bits)
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert not REQUANTIZING_OPS & set(builtin_ops(data)), builtin_ops(data)
    found = constants(data)
    conv, dense = model.layers[0], model.layers[2]
    # The converter stores CONV_2D filters OHWI and FULLY_CONNECTED weights [out, in].
    conv_q = np.transpose(dorefa_weights(conv.kernel.numpy(), bits), (3, 0, 1, 2))
    dense_q = dorefa_weights(dense.kernel.numpy(), bits).T
    assert contains(found, conv_q)
    assert contains(found, dense_q)
    # No latent kernel reaches the file.
    assert not contains(found, np.transpose(conv.kernel.numpy(), (3, 0, 1, 2)))
    assert not contains(found, dense.kernel.numpy().T)
    x = rng.normal(size=(5, 9, 9, 3)).astype(np.float32)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, model.predict(x, verbose=0), rtol=1e-5, atol=1e-4)


def test_large_kernels_are_not_requantized_in_the_file(rng):
    # DoReFaNet's 1-bit weights, sign(w) mean|w|: the converter does not
    # constant-fold that quantizer on a large kernel, which used to stay
    # latent float32 plus GREATER_EQUAL / SELECT_V2 / MUL at every invoke.
    from tfqnn.export._schema import tflite_schema

    quantizer = tfqnn.quantizers.DoReFa(1, mode="weights")
    model = keras.Sequential(
        [
            keras.Input((4, 4, 320)),
            QuantConv2D(320, 3, padding="same", kernel_quantizer=quantizer, **CLIP),
            keras.layers.GlobalAveragePooling2D(),
            QuantDense(1024, kernel_quantizer=quantizer, **CLIP),
            QuantDense(1024, kernel_quantizer=quantizer, **CLIP),
        ]
    )
    for layer in model.layers:
        for weight in layer.weights:
            weight.assign(rng.normal(0, 1, weight.shape))
    data = tfqnn.export.to_tflite(model, verbose=0)
    ops = builtin_ops(data)
    assert not REQUANTIZING_OPS & set(ops), ops
    assert ops.get("DEQUANTIZE") == 2  # the two dense kernels, stored as int8
    schema = tflite_schema()
    graph = schema.Model.GetRootAsModel(data, 0).Subgraphs(0)
    int8 = [graph.Tensors(i) for i in range(graph.TensorsLength())]
    assert sorted(tuple(t.ShapeAsNumpy()) for t in int8 if t.Type() == schema.TensorType.INT8) == [
        (1024, 320),
        (1024, 1024),
    ]
    float_weights = 4 * 320 * 9 * 320
    assert len(data) < float_weights + (320 + 1024) * 1024 + 65536
    found = constants(data)
    for layer, transpose in ((model.layers[0], (3, 0, 1, 2)), (model.layers[3], (1, 0))):
        w = layer.kernel.numpy().astype(np.float64)
        expected = np.where(w < 0, -1.0, 1.0) * np.abs(w).mean()
        assert contains(found, np.transpose(expected, transpose), atol=1e-6)
    x = rng.normal(size=(2, 4, 4, 320)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_binary_weights_on_a_float_input_are_plus_minus_one_constants(rng):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            QuantConv2D(
                16,
                3,
                padding="same",
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
                name="stem",
            ),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    model.layers[0].kernel.assign(rng.normal(0, 1, (3, 3, 3, 16)))
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert builtin_ops(data) == {"CONV_2D": 1, "MEAN": 1}
    signs = np.where(model.layers[0].kernel.numpy() < 0, -1.0, 1.0)
    assert contains(constants(data), np.transpose(signs, (3, 0, 1, 2)), atol=0)
    x = rng.normal(size=(3, 8, 8, 3)).astype(np.float32)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_the_layer_quantizes_its_latent_kernel_again_after_export(rng):
    model = dorefa_model(rng, 2)
    tfqnn.export.to_tflite(model, verbose=0)
    layer = model.layers[0]
    assert "quantized_kernel" not in vars(layer)
    layer.kernel.assign(rng.normal(0, 1, layer.kernel.shape))
    q = keras.ops.convert_to_numpy(layer.quantized_kernel(layer._quantized_kernels[0]))
    np.testing.assert_allclose(q, dorefa_weights(layer.kernel.numpy(), 2), atol=1e-6)


def test_quantized_kernels_skips_float_and_recurrent_layers():
    from tfqnn.export import frozen_weights

    dense = keras.layers.Dense(3)
    dense.build((None, 4))
    float_quant = QuantDense(3)
    float_quant.build((None, 4))
    lstm = tfqnn.layers.QuantLSTM(3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    lstm.build((None, 5, 4))
    assert frozen_weights.quantized_kernels(dense) == {}
    assert frozen_weights.quantized_kernels(float_quant) == {}
    assert frozen_weights.quantized_kernels(lstm) == {}
    assert frozen_weights.quantized_kernels(QuantDense(3, kernel_quantizer="dorefa_weights")) == {}
