"""Zoo models through tfqnn.export: op census and per-op agreement with Keras.

Deep binary networks with random weights are chaotic near zero (a value
within float rounding of 0 takes either sign, and the flip spreads), so each
binary op is checked on the very tensor that Keras feeds it, not only the
whole network.
"""

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops, undeclared_shapes
from tfqnn.export import plan, thermometer
from tfqnn.layers import QuantConv2D, QuantDense

pytestmark = pytest.mark.slow  # each export converts a ~100-layer graph (10-30 s)

SHAPE = (28, 28, 1)


def is_binary(layer):
    """Binary kernel and a binary input, or a DoReFa input of at most MAX_BITS (k binary bases)."""
    return (
        isinstance(layer, (QuantConv2D, QuantDense))
        and 1 <= getattr(layer.input_quantizer, "precision", 0) <= thermometer.MAX_BITS
        and getattr(layer.kernel_quantizer, "precision", None) == 1
    )


@pytest.mark.parametrize(
    "name, kwargs",
    [
        # QuickNetSmall: in test_trained_quicknet_small_agrees_with_keras_on_fashion_mnist
        ("BinaryAlexNet", {}),
        ("ResNet18", {"quantization": "binary"}),
        ("DoReFaNet", {}),  # 2-bit activations: two binary bases per op
        ("ResNet18", {"quantization": "dorefa"}),  # W1A2 with shortcuts
    ],
)
def test_every_binary_layer_becomes_a_custom_op(name, kwargs):
    model = tfqnn.zoo.get(name)(input_shape=SHAPE, classes=10, **kwargs)
    data = tfqnn.export.to_tflite(model)
    # The custom ops' outputs too are declared with their real shapes.
    assert undeclared_shapes(data) == []
    custom = tfqnn.lite.custom_ops_in(data)
    binary = [layer for layer in model.layers if is_binary(layer)]
    binary_ops = custom.get("TfqnnBconv2d", 0) + custom.get("TfqnnBdense", 0)
    assert binary_ops == len(binary) > 0
    # Every other convolution and dense layer is one float builtin, and no
    # binary one is left as a builtin.
    float_layers = [
        layer
        for layer in model.layers
        if isinstance(
            layer, (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)
        )
        and not is_binary(layer)
    ]
    builtins = builtin_ops(data)
    float_ops = sum(
        builtins.get(op, 0)
        for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL")
    )
    assert float_ops == len(float_layers), builtins
    x = np.random.default_rng(0).random((2, *SHAPE), np.float32)
    y = tfqnn.lite.Interpreter(model_content=data).predict(x)
    assert y.shape == (2, 10) and np.isfinite(y).all()


def binary_ops_model(model):
    """One Keras model holding each binary group of ``model`` on its own inputs.

    Returns ``(ops_model, inputs, taps)``: the group's layer and folded
    followers applied to fresh inputs per group (a fused shortcut ``Add``
    gets its own input for the shortcut), those inputs, and for each group
    the tensors of ``model`` that they stand for and its (folded) output.
    """
    found = plan.plan_groups(model)
    groups, nodes = found.groups, found.nodes
    by_id = {id(node): node for node in nodes}
    inputs, outputs, taps = [], [], []
    for head, group in groups.items():
        source = by_id[head].input_tensors[0]
        x = keras.Input(source.shape[1:])
        sources, fresh = [source], [x]
        y = group.layer(x)
        for node in group.folded:
            if group.residual is not None and node is group.output_node:
                r = keras.Input(group.residual.shape[1:])
                sources.append(group.residual)
                fresh.append(r)
                pair = [y, r] if node.input_tensors[1] is group.residual else [r, y]
                y = node.operation(pair)
            else:
                y = node.operation(y)
        inputs.extend(fresh)
        outputs.append(y)
        taps.append((sources, group.output_node.outputs[0]))
    return keras.Model(inputs, outputs), inputs, taps


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("QuickNetSmall", {}),
        ("BiRealNet", {}),
        ("XNORNet", {}),
        ("DoReFaNet", {}),
        ("ResNet18", {"quantization": "dorefa"}),
    ],
)
def test_each_binary_op_matches_keras_on_the_same_input(name, kwargs):
    model = tfqnn.zoo.get(name)(input_shape=SHAPE, classes=10, **kwargs)
    ops_model, inputs, taps = binary_ops_model(model)
    assert len(taps) == sum(is_binary(layer) for layer in model.layers)
    fused = sum(len(sources) == 2 for sources, _ in taps)
    # Bi-Real Net's and QuickNet's blocks end in a shortcut Add, fused into
    # the op (QuickNet's with its post-ReLU BatchNorm shift), and so does the
    # second convolution of each of the DoReFa ResNet-18's 8 blocks;
    # XNOR-Net and DoReFa-Net have none.
    assert fused == {"BiRealNet": len(taps), "QuickNetSmall": len(taps), "ResNet18": 8}.get(name, 0)
    x = np.random.default_rng(1).random((2, *SHAPE), np.float32)
    tensors = [t for sources, _ in taps for t in sources] + [out for _, out in taps]
    probe = keras.Model(model.input, tensors)
    activations = [keras.ops.convert_to_numpy(a) for a in probe(x, training=False)]
    fed, expected = activations[: len(inputs)], activations[len(inputs) :]

    data = tfqnn.export.to_tflite(ops_model)
    custom = tfqnn.lite.custom_ops_in(data)
    assert custom.get("TfqnnBconv2d", 0) + custom.get("TfqnnBdense", 0) == len(taps)
    if fused:
        assert "ADD" not in builtin_ops(data)
    interpreter = tfqnn.lite.Interpreter(model_content=data)
    # The converter names inputs after the Keras tensors and numbers outputs.
    by_name = {tensor.name: array for tensor, array in zip(inputs, fed)}
    ordered = [
        by_name[d["name"].split(":")[0].removeprefix("serve_")]
        for d in interpreter.get_input_details()
    ]
    got = interpreter.predict(*ordered)
    got = got if isinstance(got, list) else [got]
    # predict returns the outputs in the Keras model's order.
    assert len(got) == len(taps)
    indices = range(len(taps))
    for index, result in zip(indices, got):
        want = expected[index]
        assert result.shape == want.shape
        np.testing.assert_allclose(
            result, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max())
        )


@pytest.mark.skipif(
    not tfqnn.datasets.fashion_mnist_available(), reason="Fashion-MNIST not installed"
)
def test_trained_quicknet_small_agrees_with_keras_on_fashion_mnist():
    (x_train, y_train), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    x_train, x_test = x_train[:600, ..., None], x_test[:400, ..., None]
    model = tfqnn.zoo.QuickNetSmall(input_shape=SHAPE, classes=10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train[:600], epochs=1, batch_size=50, verbose=0)
    keras_top1 = keras.ops.convert_to_numpy(model(x_test, training=False)).argmax(1)
    data = tfqnn.export.to_tflite(model)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 16, "TfqnnBconv2d": 16}
    builtins = builtin_ops(data)
    # Float: stem conv, stem pointwise, three transition 1x1 convolutions;
    # stem depthwise and three blur pools; the classifier.
    assert (builtins["CONV_2D"], builtins["DEPTHWISE_CONV_2D"]) == (5, 4)
    assert builtins["FULLY_CONNECTED"] == 1
    lite_top1 = tfqnn.lite.Interpreter(model_content=data).predict(x_test).argmax(1)
    assert (lite_top1 == keras_top1).mean() >= 0.99
