"""int8 shortcut ``ADD``s fold into the binary convolutions (`tfqnn.export.int8_fusion`).

In a file with int8 builtins (``int8_representative_data``) a block's
``TfqnnBconv2d -> ADD <- shortcut`` becomes one op with an int8 residual
input: no ``ADD`` is left, and the file's outputs equal, bit for bit, those
of the same file with the ``ADD``s kept (the op adds as LiteRT's int8
``ADD`` does). ``ADD``s that do not fit stay builtins.
"""

import keras
import numpy as np
from flatbuffers import flexbuffers

import tfqnn
from tests._tflite import builtin_ops, undeclared_shapes
from tfqnn.export import int8_fusion
from tfqnn.layers import QuantConv2D
from tfqnn.lite import flatbuffer

from .test_export import BINARY, randomize
from .test_residual_export import SHAPE, binary_conv, bireal_model


def predict(data, x):
    return tfqnn.lite.Interpreter(model_content=data).predict(x)


def bconv2d_options(data):
    """The custom options of every TfqnnBconv2d in the file, in operator order."""
    model = flatbuffer.read_model(data)
    graph = model.Subgraphs(0)
    found = []
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        if model.OperatorCodes(op.OpcodeIndex()).CustomCode() == b"TfqnnBconv2d":
            found.append(flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes()))
    return found


def export_both(model, x, monkeypatch):
    """The int8 file with its shortcut ADDs folded, and without that fold."""
    fused = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    with monkeypatch.context() as patch:
        patch.setattr(int8_fusion, "_int8_residuals", lambda *args: 0)
        plain = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    return fused, plain


def test_bireal_blocks_fold_their_int8_adds(rng, monkeypatch):
    # Two blocks; the second's shortcut (pool, 1x1 conv, BatchNorm) comes
    # after its binary conv in the graph, so the op must move to the ADD's place.
    model = bireal_model(rng)
    x = rng.normal(size=(16, *SHAPE)).astype(np.float32)
    fused, plain = export_both(model, x, monkeypatch)
    # Every tensor (the custom ops' outputs too) is declared with its real shape.
    assert undeclared_shapes(fused) == undeclared_shapes(plain) == []
    assert builtin_ops(plain)["ADD"] == 2
    assert "ADD" not in builtin_ops(fused), builtin_ops(fused)
    assert tfqnn.lite.custom_ops_in(fused) == {"TfqnnQuantize": 2, "TfqnnBconv2d": 2}
    for options in bconv2d_options(fused):
        assert options["residual"] == 1 and options["output_type"] == 1
        assert options["y_scale"] > 0 and -128 <= options["y_zero_point"] <= 127
    _, counts = int8_fusion.fuse_int8_conversions(plain)
    assert counts == {"QUANTIZE": 0, "DEQUANTIZE": 0, "ADD": 2}
    np.testing.assert_array_equal(predict(fused, x), predict(plain, x))
    # And the folded file is the unfused one's bytes rewritten, not re-exported.
    again, _ = int8_fusion.fuse_int8_conversions(plain)
    np.testing.assert_array_equal(predict(again, x[:4]), predict(fused, x[:4]))


def test_int8_adds_that_do_not_fit_stay_builtins(rng, monkeypatch):
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(32, 3, padding="same")(inputs)
    # A ReLU6 after the Add: the converter fuses it into the ADD (a ReLU folds).
    y = keras.layers.BatchNormalization()(binary_conv(32)(x))
    a = keras.layers.ReLU(6.0)(keras.layers.Add()([y, x]))
    # A broadcast shortcut ([B, 1, 1, C]).
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(a)
    y = keras.layers.BatchNormalization()(binary_conv(32)(a))
    b = keras.layers.Add()([y, pooled])
    # The op's output also read elsewhere.
    y = keras.layers.BatchNormalization()(binary_conv(32)(b))
    c = keras.layers.Add()([y, b])
    out = keras.layers.Concatenate()([c, y])
    model = randomize(keras.Model(inputs, out), rng)
    data = rng.normal(size=(16, *SHAPE)).astype(np.float32)
    fused, plain = export_both(model, data, monkeypatch)
    assert builtin_ops(fused)["ADD"] == builtin_ops(plain)["ADD"] == 3
    assert all(not options.get("residual") for options in bconv2d_options(fused))
    np.testing.assert_array_equal(predict(fused, data), predict(plain, data))


def test_quicknet_block_folds_its_post_bias_and_shortcut_adds(rng, monkeypatch):
    # Binary conv with ReLU, the post-ReLU BatchNorm (shift t != 0: an int8
    # ADD of a constant [O]), + the shortcut: both ADDs fold into the op.
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(32, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    y = QuantConv2D(
        32, 3, padding="same", pad_values=1.0, activation="relu", use_bias=False, **BINARY
    )(x)
    y = keras.layers.BatchNormalization(name="post_bn")(y)
    # A ReLU after the Add (QuickNet's last block of a section): the ADD's
    # fused ReLU becomes the op's option residual_relu.
    out = keras.layers.ReLU()(keras.layers.Add()([y, x]))
    model = randomize(keras.Model(inputs, out), rng)
    bn = model.get_layer("post_bn")
    bn.gamma.assign(np.abs(bn.gamma.numpy()))
    data = rng.normal(size=(16, *SHAPE)).astype(np.float32)
    fused, plain = export_both(model, data, monkeypatch)
    assert builtin_ops(plain)["ADD"] == 2
    assert "ADD" not in builtin_ops(fused), builtin_ops(fused)
    (options,) = bconv2d_options(fused)
    assert options["residual"] == 1 and options["biased_scale"] > 0
    assert options["residual_relu"] == 1
    _, counts = int8_fusion.fuse_int8_conversions(plain)
    assert counts["ADD"] == 2
    np.testing.assert_array_equal(predict(fused, data), predict(plain, data))
