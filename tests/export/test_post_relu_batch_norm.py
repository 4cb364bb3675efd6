"""A BatchNorm after the binary op's ReLU (QuickNet's blocks) folds into the op.

``s * max(z, 0) + t = max(s * z, 0) + t`` for ``s > 0``: the exporter
scales the op's multiplier and bias by ``s`` and leaves one ``ADD`` of
``t = beta - s * mean`` (`tfqnn.export.plan`), where Keras's graph has a
``MUL`` and an ``ADD``. Expected values come from the BatchNorm formula in
numpy; outputs must match Keras's.
"""

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops
from tfqnn.export import plan
from tfqnn.layers import QuantConv2D

from .test_export import BINARY, assert_close, randomize


def block_model(rng, separate_relu=False, residual=True, gamma_sign=1.0):
    x = inputs = keras.Input((8, 8, 32))
    conv = QuantConv2D(
        32,
        3,
        padding="same",
        pad_values=1.0,
        activation=None if separate_relu else "relu",
        use_bias=False,
        name="binary",
        **BINARY,
    )
    y = conv(x)
    if separate_relu:
        y = keras.layers.ReLU()(y)
    y = keras.layers.BatchNormalization(name="post_bn")(y)
    if residual:
        y = keras.layers.Add()([y, x])
    y = QuantConv2D(16, 3, use_bias=False, **BINARY)(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = randomize(keras.Model(inputs, y), rng)
    bn = model.get_layer("post_bn")
    bn.gamma.assign(gamma_sign * np.abs(bn.gamma.numpy()))
    return model


def post_bn_terms(bn):
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
    s = gamma / np.sqrt(var + bn.epsilon)
    return s, beta - s * mean


@pytest.mark.parametrize("separate_relu", [False, True])
def test_post_relu_batch_norm_folds_into_the_op(rng, separate_relu):
    model = block_model(rng, separate_relu=separate_relu)
    found = plan.plan_groups(model)
    groups, folded = found.groups, found.folded
    group = next(g for g in groups.values() if g.layer.name == "binary")
    s, t = post_bn_terms(model.get_layer("post_bn"))
    np.testing.assert_allclose(group.post_bias, t, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(group.multiplier, s, rtol=1e-6)  # sign weights: alpha = 1
    assert (group.clamp_min, group.clamp_max) == (0.0, None)
    assert not group.bitpacked_output
    assert "post_bn" in [n.operation.name for n in folded]

    data = tfqnn.export.to_tflite(model, verbose=0)
    ops = builtin_ops(data)
    assert "MUL" not in ops
    # t, then the residual, both added by the op (post_bias, residual).
    assert group.residual is not None
    assert "ADD" not in ops
    x = rng.normal(size=(3, 8, 8, 32)).astype(np.float32)
    assert_close(model.predict(x, verbose=0), tfqnn.lite.Interpreter(model_content=data).predict(x))


def test_negative_scale_does_not_fold(rng):
    model = block_model(rng, gamma_sign=-1.0)
    groups = plan.plan_groups(model).groups
    assert all(g.post_bias is None for g in groups.values())
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert builtin_ops(data)["MUL"] == 1
    x = rng.normal(size=(3, 8, 8, 32)).astype(np.float32)
    assert_close(model.predict(x, verbose=0), tfqnn.lite.Interpreter(model_content=data).predict(x))


def test_a_binary_consumer_reads_float_after_the_post_bias(rng):
    # Without the residual, the next layer is binary: the op must not write
    # bitpacked output, since sign(max(s z, 0) + t) is not sign(max(s z, 0)).
    model = block_model(rng, residual=False)
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 2, "TfqnnBconv2d": 2}
    assert builtin_ops(data)["ADD"] == 1
    x = rng.normal(size=(3, 8, 8, 32)).astype(np.float32)
    assert_close(model.predict(x, verbose=0), tfqnn.lite.Interpreter(model_content=data).predict(x))
