"""A scope="model" codebook in `.tflite`: one constant table read by every decode op."""

import keras
import numpy as np

import tfqnn
from tfqnn.lite import schema, spec


def _codebook_inputs(data):
    """The codebook input tensor of every TfqnnCodebookDecode op, and their float32 bytes."""
    tflite = schema()
    model = tflite.ModelT.InitFromObj(tflite.Model.GetRootAsModel(data, 0))
    found = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if code.customCode and code.customCode.decode() == spec.CODEBOOK_DECODE:
                tensor = subgraph.tensors[op.inputs[1]]
                values = np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.float32)
                found.append((int(op.inputs[1]), values))
    return found


def test_shared_codebook_is_one_constant(rng):
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(24, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    shared = tfqnn.codebook.cluster(model, 8, scope="model", verbose=0)
    data = tfqnn.export.to_tflite(shared, verbose=0)
    inputs = _codebook_inputs(data)
    assert len(inputs) == 3 and len({index for index, _ in inputs}) == 1
    table = shared.layers[0].shared.centroids.numpy().ravel()
    np.testing.assert_array_equal(inputs[0][1], table)
    x = rng.normal(size=(8, 32)).astype(np.float32)
    expected = shared.predict(x, verbose=0)
    got = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_unused_codes_take_the_layer_table():
    from tfqnn.export import codebook_weights

    weight = np.array([[0.5, -1.0], [0.5, 0.5]], np.float32)
    indices = np.array([0, 1, 0, 0])
    fill = np.array([9.0, 8.0, 7.0, 6.0], np.float32)
    table = codebook_weights.codebook_of(weight, indices, 4, fill)
    np.testing.assert_array_equal(table, [0.5, -1.0, 7.0, 6.0])
    np.testing.assert_array_equal(
        codebook_weights.codebook_of(weight, indices, 4), [0.5, -1.0, 0.0, 0.0]
    )
    assert codebook_weights.codebook_of(weight, np.array([0, 0, 0, 0]), 4, fill) is None
