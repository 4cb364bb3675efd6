"""Clustered kernels in `.tflite`: indices plus codebook, decoded once (TfqnnCodebookDecode)."""

import keras
import numpy as np
import pytest
from flatbuffers import flexbuffers

import tfqnn
from tfqnn.export import codebook_weights
from tfqnn.lite import _core, reference, schema, spec


def _weights_by_op(data):
    """{builtin op name: [float32 weight tensors that are constant in the file]}."""
    tflite = schema()
    model = tflite.ModelT.InitFromObj(tflite.Model.GetRootAsModel(data, 0))
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    found = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
            if name in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"):
                tensor = subgraph.tensors[op.inputs[1]]
                data_ = model.buffers[tensor.buffer].data
                found.setdefault(name, []).append(data_ is not None and len(data_) > 0)
    return found


@pytest.fixture(scope="module")
def mlp():
    """LeNet-300-100, 16 clusters per layer (266,200 weights)."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    clustered = tfqnn.codebook.cluster(model, 16)
    return clustered, tfqnn.export.to_tflite(clustered, verbose=0)


def test_clustered_dense_equals_keras_and_keeps_indices(mlp, rng):
    model, data = mlp
    assert tfqnn.lite.custom_ops_in(data) == {spec.CODEBOOK_DECODE: 3}
    # No fully-connected op keeps a float copy of its weights.
    assert _weights_by_op(data) == {"FULLY_CONNECTED": [False, False, False]}
    x = rng.normal(size=(32, 784)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    got = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_file_size_is_within_the_report_prediction(mlp):
    model, data = mlp
    report = tfqnn.codebook.report(model, print_fn=None)
    predicted = report.fixed_bits / 8  # fixed-length indices, codebooks, float biases
    assert len(data) <= 1.15 * predicted, (len(data), predicted)
    # and far below the float32 weights
    assert len(data) < 0.2 * report.float_bits / 8


def test_decoded_once_per_interpreter_not_per_invoke(mlp, rng):
    _, data = mlp
    before = _core.codebook_decode_count()
    interpreter = tfqnn.lite.Interpreter(model_content=data)
    x = rng.normal(size=(4, 784)).astype(np.float32)
    interpreter.predict(x)
    decoded = _core.codebook_decode_count() - before
    for _ in range(5):
        interpreter.predict(x)
    interpreter.predict(x[:1])  # a new batch size: the interpreter prepares again
    assert decoded == 3
    assert _core.codebook_decode_count() - before == 3


def _cnn():
    keras.utils.set_random_seed(2)
    return keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
            keras.layers.Conv2D(6, 3, strides=2),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
        ]
    )


def test_pruned_and_clustered_cnn_equals_keras(rng):
    model = tfqnn.codebook.cluster(tfqnn.codebook.prune(_cnn(), 0.5), 8)
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {spec.CODEBOOK_DECODE: 4}
    assert _weights_by_op(data) == {
        "CONV_2D": [False, False],
        "DEPTHWISE_CONV_2D": [False],
        "FULLY_CONNECTED": [False],
    }
    x = rng.normal(size=(3, 12, 12, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    got = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_clustered_quant_dense_stores_its_quantized_codebook(rng):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((40,)),
            tfqnn.layers.QuantDense(
                24, kernel_quantizer=tfqnn.quantizers.FixedPoint(4), activation="relu"
            ),
            keras.layers.Dense(3),
        ]
    )
    clustered = tfqnn.codebook.cluster(model, 6)
    data = tfqnn.export.to_tflite(clustered, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {spec.CODEBOOK_DECODE: 2}
    x = rng.normal(size=(8, 40)).astype(np.float32)
    expected = clustered.predict(x, verbose=0)
    got = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_codebook_of_recovers_the_table_or_refuses():
    indices = np.array([[0, 2], [1, 2], [0, 0]])
    table = np.array([0.5, -1.0, 3.0, 7.0], np.float32)
    weight = table[indices]
    np.testing.assert_array_equal(
        codebook_weights.codebook_of(weight, indices, 4), [0.5, -1.0, 3.0, 0.0]
    )
    weight[0, 0] = 0.25  # code 0 now has two values
    assert codebook_weights.codebook_of(weight, indices, 4) is None
    assert codebook_weights.codebook_of(weight[:2], indices, 4) is None


def test_store_codebook_weights_leaves_unmatched_weights_alone(mlp):
    model, data = mlp
    float_data = tfqnn.export.to_tflite(tfqnn.codebook.strip(model), verbose=0)
    # Indices that do not describe the weights (one code for 300 x 784 values).
    kernel = codebook_weights.ClusteredKernel("x/kernel", np.zeros((784, 300), np.int64), 2)
    assert codebook_weights.store_codebook_weights(float_data, [kernel]) == (float_data, 0)
    # The clustered layers' own indices describe the stripped model's weights.
    kernels = codebook_weights.clustered_kernels(model)
    stored, count = codebook_weights.store_codebook_weights(float_data, kernels)
    assert count == 3 and len(stored) < len(float_data) / 5
    assert codebook_weights.store_codebook_weights(data, []) == (data, 0)


def test_decode_op_reference_matches_exported_weights(mlp):
    """The file's indices and codebook decode (numpy reference) to the layer's kernel."""
    model, data = mlp
    tflite = schema()
    flat = tflite.ModelT.InitFromObj(tflite.Model.GetRootAsModel(data, 0))
    subgraph = flat.subgraphs[0]
    decoded = []
    for op in subgraph.operators:
        code = flat.operatorCodes[op.opcodeIndex]
        if code.customCode not in (spec.CODEBOOK_DECODE, spec.CODEBOOK_DECODE.encode()):
            continue
        packed, table = (bytes(flat.buffers[subgraph.tensors[i].buffer].data) for i in op.inputs)
        out = subgraph.tensors[op.outputs[0]]

        bits = flexbuffers.Loads(bytes(op.customOptions))["bits"]
        decoded.append(
            reference.codebook_decode(
                np.frombuffer(packed, np.uint8), np.frombuffer(table, np.float32), out.shape, bits
            )
        )
    kernels = [np.asarray(layer.decoded_kernels()["kernel"]).T for layer in model.layers]
    assert sorted(d.shape for d in decoded) == sorted(k.shape for k in kernels)
    for kernel in kernels:
        assert any(d.shape == kernel.shape and np.array_equal(d, kernel) for d in decoded)
