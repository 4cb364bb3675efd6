"""Zoo models exported with int8 neighbours (``int8_representative_data``).

Every binary layer stays a tfqnn op and every other op becomes an int8
builtin: the only float tensors left are the model's input (one QUANTIZE)
and output (one DEQUANTIZE). On the trained models under saved_models/ the
int8 file keeps the Keras model's top-1 accuracy within a point; its top-1
agrees with Keras's less often than the float-neighbour file's (100 %),
because every binary op reads signs of int8-rounded tensors.
"""

import json
import os

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops, undeclared_shapes
from tests.export.test_int8_branches import outputs_of
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.lite import flatbuffer

pytestmark = pytest.mark.slow  # each export converts and calibrates a ~100-layer graph

SHAPE = (32, 32, 3)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def is_binary(layer):
    return (
        isinstance(layer, (QuantConv2D, QuantDense))
        and getattr(layer.input_quantizer, "precision", None) == 1
        and getattr(layer.kernel_quantizer, "precision", None) == 1
    )


def float_builtins(data):
    """{builtin name: count} of the builtin ops in the file that write float32."""
    schema = flatbuffer.schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer.read_model(data)
    graph = model.Subgraphs(0)
    counts = {}
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        code = model.OperatorCodes(op.OpcodeIndex())
        if code.CustomCode() is not None:
            continue
        if graph.Tensors(op.Outputs(0)).Type() == schema.TensorType.FLOAT32:
            name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("QuickNetSmall", {}),  # blur pools, post-ReLU BatchNorm, shortcuts
        ("BiRealNet", {}),  # shortcuts with average pools and 1x1 float convs
        ("GoogLeNet", {"quantization": "binary"}),  # branches and concatenations
        ("BinaryAlexNet", {}),  # binary dense layers on bitpacked maps
    ],
)
def test_binary_layers_stay_tfqnn_ops_between_int8_builtins(name, kwargs):
    keras.utils.set_random_seed(0)
    model = tfqnn.zoo.get(name)(input_shape=SHAPE, classes=10, **kwargs)
    x = np.random.default_rng(0).normal(size=(8, *SHAPE)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    # The custom ops' outputs too are declared with their real shapes.
    assert undeclared_shapes(data) == []
    custom = tfqnn.lite.custom_ops_in(data)
    binary = sum(is_binary(layer) for layer in model.layers)
    assert custom.get("TfqnnBconv2d", 0) + custom.get("TfqnnBdense", 0) == binary > 0
    builtins = builtin_ops(data)
    assert builtins["QUANTIZE"] == 1, builtins  # the input
    assert float_builtins(data) == {"DEQUANTIZE": 1}  # the output; nothing else float
    # Bi-Real Net's shortcut pools run as int8 depthwise convolutions (XNNPACK).
    assert "AVERAGE_POOL_2D" not in builtins
    if name == "BiRealNet":
        assert builtins["DEPTHWISE_CONV_2D"] == 3
    # Every tensor a binary op reads or writes, besides its constants, is
    # int8 or bitpacked: GoogLeNet's concatenations join bitpacked branches
    # (tfqnn.export.packed_graph) and its pools run on them, but for the last
    # (int8, read by the classifier's mean).
    kinds = [kind for kind, _, _ in outputs_of(data, "CONCATENATION")]
    if name == "GoogLeNet":
        assert sorted(kinds) == ["INT32"] * 8 + ["INT8"], kinds
        assert custom["TfqnnBMaxPool2d"] == 12 and "MAX_POOL_2D" in builtins  # pool1
    else:
        assert all(kind == "INT8" for kind in kinds)
    y = tfqnn.lite.Interpreter(model_content=data).predict(x)
    assert y.shape == (8, 10) and np.isfinite(y).all()


@pytest.mark.skipif(
    not tfqnn.datasets.fashion_mnist_available(), reason="Fashion-MNIST not installed"
)
@pytest.mark.parametrize(
    "name, agreement",
    # Measured on the 10000 test images: 91.2 % and 96.5 % (the
    # float-neighbour files: 100 %); top-1 86.61 % and 89.41 % against
    # Keras's 86.50 % and 89.73 % (benchmarks/int8_neighbours_accuracy.py).
    [("resnet18_binary_fashion_mnist", 0.88), ("quicknetsmall_binary_fashion_mnist", 0.94)],
)
def test_trained_models_keep_their_accuracy_with_int8_neighbours(name, agreement):
    base = os.path.join(ROOT, "saved_models", name)
    with open(base + ".json") as f:
        card = json.load(f)
    (x_train, _), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    x_test = 2.0 * x_test[..., None].astype(np.float32) - 1.0
    calibration = 2.0 * x_train[:500, ..., None].astype(np.float32) - 1.0
    model = keras.models.load_model(base + ".keras")
    data = tfqnn.export.to_tflite(model, int8_representative_data=calibration, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == card["tflite"]["custom_ops"]
    assert float_builtins(data) == {"DEQUANTIZE": 1}
    keras_top1 = model.predict(x_test, batch_size=1000, verbose=0).argmax(1)
    lite_top1 = tfqnn.lite.Interpreter(model_content=data).predict(x_test, batch_size=1000)
    lite_top1 = lite_top1.argmax(1)
    accuracy = float(np.mean(lite_top1 == y_test))
    assert abs(accuracy - card["test_accuracy"]) < 0.01
    assert np.mean(lite_top1 == keras_top1) >= agreement
