"""The shortcut ``Add`` after a binary convolution fuses into TfqnnBconv2d.

Bi-Real Net's and ResNetE's blocks (binary conv, BatchNorm, ``+ shortcut``)
export as one op with a residual input (`tfqnn.export.plan`): no builtin
``ADD`` is left, the output matches Keras and the numpy reference, and the
exporter leaves an ``Add`` alone where the shapes, the count of inputs, the
consumers or int8 export rule the fusion out.
"""

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops
from tfqnn.export import plan
from tfqnn.layers import QuantConv2D
from tfqnn.lite import reference

from .test_export import BINARY, assert_close, randomize

SHAPE = (8, 8, 3)


def binary_conv(filters, strides=1, name=None):
    return QuantConv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        pad_values=0.0,
        use_bias=False,
        name=name,
        **BINARY,
    )


def bireal_model(rng, swap=False, downsample=True):
    """A float stem and Bi-Real blocks: a plain one and (optionally) a downsampling one."""
    x = inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(32, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    y = binary_conv(32, name="block1_conv")(x)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.Add(name="block1_add")([x, y] if swap else [y, x])
    if downsample:
        # The shortcut (pool, 1x1 float conv, BatchNorm) comes after the binary
        # conv in the graph's order: the fused op must wait for it.
        shortcut = keras.layers.AveragePooling2D(2, 2, padding="same")(x)
        shortcut = keras.layers.Conv2D(64, 1, use_bias=False)(shortcut)
        shortcut = keras.layers.BatchNormalization()(shortcut)
        y = binary_conv(64, strides=2, name="block2_conv")(x)
        y = keras.layers.BatchNormalization()(y)
        x = keras.layers.Add(name="block2_add")([y, shortcut])
    return randomize(keras.Model(inputs, x), rng)


def predict(data, x):
    return tfqnn.lite.Interpreter(model_content=data).predict(x)


@pytest.mark.parametrize("swap", [False, True])
def test_shortcut_adds_fuse_into_the_binary_convolutions(rng, swap):
    model = bireal_model(rng, swap=swap)
    groups = plan.plan_groups(model).groups
    fused = sorted(g.layer.name for g in groups.values() if g.residual is not None)
    assert fused == ["block1_conv", "block2_conv"]
    assert all(not g.bitpacked_output for g in groups.values())
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 2, "TfqnnBconv2d": 2}
    assert "ADD" not in builtin_ops(data), builtin_ops(data)
    x = rng.normal(size=(3, *SHAPE)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert_close(expected, predict(data, x))


def test_the_fused_op_matches_the_reference(rng):
    # One block, its input the model's input: the op's inputs are known exactly.
    inputs = keras.Input((6, 7, 40))
    y = binary_conv(40, name="conv")(inputs)
    y = keras.layers.BatchNormalization(name="bn")(y)
    model = randomize(keras.Model(inputs, keras.layers.Add()([y, inputs])), rng)
    group = next(iter(plan.plan_groups(model).groups.values()))
    x = rng.normal(size=(2, 6, 7, 40)).astype(np.float32)
    x[0, 0, 0, :3] = 0.0  # sign(0) = +1 on both sides
    expected = reference.bconv2d(
        reference.bitpack(x),
        group.packed_weights,
        group.multiplier,
        group.bias,
        40,
        padding="same",
        pad_values=0,
        residual=x,
    )
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert "ADD" not in builtin_ops(data)
    np.testing.assert_array_equal(predict(data, x), expected)
    assert_close(keras.ops.convert_to_numpy(model(x, training=False)), expected)


def adds_left(model):
    data = tfqnn.export.to_tflite(model, verbose=0)
    return builtin_ops(data).get("ADD", 0), data


def test_adds_that_do_not_fit_stay_builtins(rng):
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(32, 3, padding="same")(inputs)
    # A broadcast shortcut ([B, 1, 1, C]).
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    y = keras.layers.BatchNormalization()(binary_conv(32)(x))
    a = keras.layers.Add()([y, pooled])
    # Three inputs.
    y = keras.layers.BatchNormalization()(binary_conv(32)(a))
    b = keras.layers.Add()([y, a, x])
    # The op's output also used elsewhere.
    y = keras.layers.BatchNormalization()(binary_conv(32)(b))
    c = keras.layers.Add()([y, b])
    out = keras.layers.Concatenate()([c, y])
    model = randomize(keras.Model(inputs, out), rng)
    groups = plan.plan_groups(model).groups
    assert all(g.residual is None for g in groups.values())
    count, data = adds_left(model)
    assert count >= 3
    x = rng.normal(size=(2, *SHAPE)).astype(np.float32)
    assert_close(keras.ops.convert_to_numpy(model(x, training=False)), predict(data, x))


def test_int8_export_plans_no_float_residual(rng):
    # The int8 file keeps the Keras Add as an int8 ADD, which int8_fusion then
    # folds into the op (tests/export/test_int8_residual_export.py).
    model = bireal_model(rng, downsample=False)
    assert plan.plan_groups(model, fuse_residuals=False).groups
    assert all(
        g.residual is None for g in plan.plan_groups(model, fuse_residuals=False).groups.values()
    )
    x = rng.normal(size=(8, *SHAPE)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    assert builtin_ops(data).get("ADD", 0) == 0
    assert predict(data, x[:2]).shape == (2, 8, 8, 32)


def test_post_relu_batch_norm_and_shortcut_fuse_together(rng):
    # QuickNet's block: binary conv with ReLU, BatchNorm (t != 0), + x.
    inputs = keras.Input((8, 8, 32))
    y = QuantConv2D(
        32, 3, padding="same", pad_values=1.0, activation="relu", use_bias=False, **BINARY
    )(inputs)
    y = keras.layers.BatchNormalization(name="post_bn")(y)
    model = randomize(keras.Model(inputs, keras.layers.Add()([y, inputs])), rng)
    bn = model.get_layer("post_bn")
    bn.gamma.assign(np.abs(bn.gamma.numpy()))
    (group,) = plan.plan_groups(model).groups.values()
    assert group.residual is not None and np.any(group.post_bias != 0)
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert "ADD" not in builtin_ops(data)
    x = rng.normal(size=(2, 8, 8, 32)).astype(np.float32)
    expected = reference.bconv2d(
        reference.bitpack(x),
        group.packed_weights,
        group.multiplier,
        group.bias,
        32,
        padding="same",
        pad_values=1,
        clamp_min=0.0,
        residual=x,
        post_bias=group.post_bias,
    )
    np.testing.assert_array_equal(predict(data, x), expected)
    assert_close(keras.ops.convert_to_numpy(model(x, training=False)), expected)
