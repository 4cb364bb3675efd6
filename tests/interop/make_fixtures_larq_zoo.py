"""Writes larq-zoo's architectures, built with larq 0.14's layers, as tf_keras .h5 files.

Run with the larq peer environment's python (``scripts/peer_envs.sh`` builds it)::

    TF_USE_LEGACY_KERAS=1 .peers/larq/bin/python tests/interop/make_fixtures_larq_zoo.py DIR

larq-zoo 2.4 does not import on TensorFlow 2.21 (its zookeeper dependency
wants tensorflow-datasets below 4.9 and protobuf below 3.21), so this script
restates larq-zoo's definitions (``larq_zoo/sota/quicknet.py`` and
``larq_zoo/literature/*.py``, github.com/larq/zoo at 77c5853) with larq's
layers, layer for layer and in larq-zoo's order, with larq-zoo's custom
objects (``xnor_weight_scale``, ``magnitude_aware_sign_unclipped``,
``clip_by_value_activation``, ``blurpool_initializer``) registered under
larq-zoo's names, which the saved configs hold.

For each architecture NAME (larq-zoo's function name), at 64 x 64 (XNORNet at
224 x 224: its 6 x 6 "fully connected" convolution needs 217 px), 1,000
classes and random weights (BatchNorm statistics and scales randomized too):

- ``DIR/NAME.h5``: the full model (``model.save``), for ``tfqnn.interop.load``;
- ``DIR/NAME_weights.h5``: its weights (``save_weights``), as larq-zoo's
  released weights files, for ``tfqnn.zoo.NAME(weights=...)``;
- ``DIR/NAME.npz``: ``x``, 4 random images in [-1, 1], and ``y``, the
  model's predictions.

The files are large (up to 250 MB: XNORNet), so they are never committed:
``test_larq_zoo.py`` builds them in a temporary directory (slow).
Names given after DIR restrict the script to those architectures.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import larq as lq
import numpy as np
import tensorflow as tf
import tf_keras as keras

L = keras.layers
CLASSES = 1000


# larq-zoo's custom objects, registered under larq-zoo's names (the saved configs name them).
@lq.utils.set_precision(1)
@lq.utils.register_keras_custom_object
def xnor_weight_scale(x):
    """larq_zoo/literature/xnornet.py: alpha * ste_sign(clip(x, -1, 1)), alpha per filter."""
    x = tf.clip_by_value(x, -1, 1)
    alpha = tf.reduce_mean(tf.abs(x), axis=[0, 1, 2], keepdims=True)
    return alpha * lq.quantizers.ste_sign(x)


@lq.utils.register_keras_custom_object
@lq.utils.set_precision(1)
def magnitude_aware_sign_unclipped(x):
    """larq_zoo/literature/dorefanet.py: sign(x) * mean(|x|), the identity gradient."""
    scale_factor = tf.stop_gradient(tf.reduce_mean(tf.abs(x)))

    @tf.custom_gradient
    def _magnitude_aware_sign(x):
        return lq.math.sign(x) * scale_factor, lambda dy: dy

    return _magnitude_aware_sign(x)


@lq.utils.register_keras_custom_object
def clip_by_value_activation(x):
    """larq_zoo/literature/dorefanet.py."""
    return tf.clip_by_value(x, 0, 1)


@lq.utils.register_keras_custom_object
def blurpool_initializer(shape, dtype=None):
    """larq_zoo/sota/quicknet.py: a [1, 2, 1] x [1, 2, 1] / 16 blur per channel."""
    k = np.outer([1, 2, 1], [1, 2, 1])
    k = np.repeat((k / k.sum())[..., None], shape[2], axis=-1)
    return np.reshape(k, shape)


def global_pool(x, name=None):
    """larq_zoo/core/utils.py: average pooling over the whole map, then Flatten."""
    x = L.AveragePooling2D(pool_size=x.shape[1:3], name=f"{name}_pool" if name else None)(x)
    return L.Flatten(name=f"{name}_flatten" if name else None)(x)


def quicknet(inputs, section_blocks, section_filters, name):
    """larq_zoo/sota/quicknet.py, QuickNetFactory."""
    binary = dict(
        input_quantizer=lq.quantizers.SteSign(clip_value=1.25),
        kernel_quantizer=lq.quantizers.SteSign(clip_value=1.25),
        kernel_constraint=lq.constraints.WeightClip(clip_value=1.25),
    )
    filters = section_filters[0]
    x = lq.layers.QuantConv2D(
        filters // 4, 3, kernel_initializer="he_normal", padding="same", strides=2, use_bias=False
    )(inputs)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    x = lq.layers.QuantDepthwiseConv2D(3, padding="same", strides=2, use_bias=False)(x)
    x = L.BatchNormalization(scale=False, center=False)(x)
    x = lq.layers.QuantConv2D(filters, 1, kernel_initializer="he_normal", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    for blocks, filters in zip(section_blocks, section_filters):
        for _ in range(blocks):
            if filters != x.shape[-1]:
                x = L.Activation("relu")(x)
                x = L.MaxPool2D(pool_size=2, strides=1)(x)
                x = L.DepthwiseConv2D(
                    3,
                    depthwise_initializer=blurpool_initializer,
                    padding="same",
                    strides=2,
                    trainable=False,
                    use_bias=False,
                )(x)
                x = lq.layers.QuantConv2D(
                    filters, 1, kernel_initializer="glorot_normal", use_bias=False
                )(x)
                x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
            residual = x
            x = lq.layers.QuantConv2D(
                int(x.shape[-1]),
                3,
                activation="relu",
                kernel_initializer="glorot_normal",
                padding="same",
                pad_values=1.0,
                use_bias=False,
                **binary,
            )(x)
            x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
            x = x + residual  # a TFOpLambda in the saved config
    x = global_pool(L.Activation("relu")(x))
    x = lq.layers.QuantDense(CLASSES, kernel_initializer="glorot_normal")(x)
    x = L.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, x, name=name)


def QuickNetSmall(inputs):
    return quicknet(inputs, (4, 4, 4, 4), (32, 64, 256, 512), "quicknet_small")


def QuickNet(inputs):
    return quicknet(inputs, (4, 4, 4, 4), (64, 128, 256, 512), "quicknet")


def QuickNetLarge(inputs):
    return quicknet(inputs, (6, 8, 12, 6), (64, 128, 256, 512), "quicknet_large")


def BiRealNet(inputs):
    """larq_zoo/literature/birealnet.py."""

    def residual_block(x, double_filters=False, filters=None):
        in_filters = x.shape[-1]
        out_filters = filters or in_filters if not double_filters else 2 * in_filters
        shortcut = x
        if in_filters != out_filters:
            shortcut = L.AvgPool2D(2, strides=2, padding="same")(shortcut)
            shortcut = L.Conv2D(out_filters, 1, kernel_initializer="glorot_normal", use_bias=False)(
                shortcut
            )
            shortcut = L.BatchNormalization(momentum=0.8)(shortcut)
        x = lq.layers.QuantConv2D(
            out_filters,
            3,
            strides=1 if out_filters == in_filters else 2,
            padding="same",
            input_quantizer="approx_sign",
            kernel_quantizer="magnitude_aware_sign",
            kernel_initializer="glorot_normal",
            kernel_constraint="weight_clip",
            use_bias=False,
        )(x)
        x = L.BatchNormalization(momentum=0.8)(x)
        return L.add([x, shortcut])

    out = L.Conv2D(
        64, 7, strides=2, kernel_initializer="glorot_normal", padding="same", use_bias=False
    )(inputs)
    out = L.BatchNormalization(momentum=0.8)(out)
    out = L.MaxPool2D(3, strides=2, padding="same")(out)
    out = residual_block(out, filters=64)
    for _ in range(3):
        out = residual_block(out)
    for _ in range(3):
        out = residual_block(out, double_filters=True)
        for _ in range(3):
            out = residual_block(out)
    out = global_pool(out)
    out = L.Dense(CLASSES)(out)
    out = L.Activation("softmax", dtype="float32")(out)
    return keras.Model(inputs, out, name="birealnet18")


def BinaryResNetE18(inputs):
    """larq_zoo/literature/resnet_e.py, 18 layers (the ImageNet stem: 50 px and more)."""
    binary = dict(
        input_quantizer=lq.quantizers.SteSign(clip_value=1.25),
        kernel_quantizer=lq.quantizers.SteSign(clip_value=1.25),
        kernel_constraint=lq.constraints.WeightClip(clip_value=1.25),
    )

    def residual_block(x, filters, strides):
        if x.shape[-1] != filters:
            residual = L.AvgPool2D(pool_size=2, strides=2)(x)
            residual = L.Conv2D(filters, 1, use_bias=False, kernel_initializer="glorot_normal")(
                residual
            )
            residual = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(residual)
        else:
            residual = x
        x = lq.layers.QuantConv2D(
            filters,
            kernel_size=3,
            strides=strides,
            padding="same",
            kernel_initializer="glorot_normal",
            use_bias=False,
            **binary,
        )(x)
        x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
        return L.add([x, residual])

    x = L.Conv2D(64, 7, strides=2, padding="same", kernel_initializer="he_normal", use_bias=False)(
        inputs
    )
    x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = L.Activation("relu")(x)
    x = L.MaxPool2D(3, strides=2, padding="same")(x)
    x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    for block, (layers, filters) in enumerate(zip([2, 2, 2, 2], [64, 128, 256, 512])):
        for layer in range(layers * 2):
            x = residual_block(x, filters, strides=1 if block == 0 or layer != 0 else 2)
    x = L.Activation("relu")(x)
    x = global_pool(x)
    x = L.Dense(CLASSES, kernel_initializer="glorot_normal")(x)
    x = L.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, x, name="binary_resnet_e_18")


def BinaryAlexNet(inputs):
    """larq_zoo/literature/binary_alex_net.py (inflation_ratio 1)."""

    def conv_block(x, features, kernel_size, strides=1, pool=False, first_layer=False):
        x = lq.layers.QuantConv2D(
            features,
            kernel_size=kernel_size,
            strides=strides,
            padding="same",
            input_quantizer=None if first_layer else "ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            use_bias=False,
        )(x)
        if pool:
            x = L.MaxPool2D(pool_size=3, strides=2)(x)
        return L.BatchNormalization(scale=False, momentum=0.9)(x)

    def dense_block(x, units):
        x = lq.layers.QuantConv2D(
            units,
            kernel_size=1,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            use_bias=False,
        )(x)
        return L.BatchNormalization(scale=False, momentum=0.9)(x)

    out = conv_block(inputs, 64, 11, strides=4, pool=True, first_layer=True)
    out = conv_block(out, 192, 5, pool=True)
    out = conv_block(out, 384, 3)
    out = conv_block(out, 384, 3)
    out = conv_block(out, 256, 3, pool=True)
    out = L.Reshape((1, 1, out.shape[-1] * out.shape[-2] * out.shape[-3]))(out)
    out = dense_block(out, 4096)
    out = dense_block(out, 4096)
    out = dense_block(out, CLASSES)
    out = L.Flatten()(out)
    out = L.Activation("softmax", dtype="float32")(out)
    return keras.Model(inputs, out, name="binary_alexnet")


def XNORNet(inputs):
    """larq_zoo/literature/xnornet.py."""
    kwargs = dict(
        # The function itself: larq 0.14 on tf_keras 2.21 calls a string's class without x.
        kernel_quantizer=xnor_weight_scale,
        input_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        kernel_regularizer=keras.regularizers.l2(5e-7),
    )

    def bn(x, epsilon=1e-4):
        return L.BatchNormalization(momentum=0.9, scale=False, epsilon=epsilon)(x)

    x = L.Conv2D(
        96,
        11,
        strides=4,
        padding="same",
        use_bias=False,
        kernel_regularizer=keras.regularizers.l2(5e-7),
    )(inputs)
    x = L.BatchNormalization(momentum=0.9, scale=False, epsilon=1e-5)(x)
    x = L.Activation("relu")(x)
    x = bn(L.MaxPool2D(pool_size=3, strides=2)(x))
    x = lq.layers.QuantConv2D(256, 5, padding="same", **kwargs)(x)
    x = bn(L.MaxPool2D(pool_size=3, strides=2)(x))
    x = bn(lq.layers.QuantConv2D(384, 3, padding="same", **kwargs)(x))
    x = bn(lq.layers.QuantConv2D(384, 3, padding="same", **kwargs)(x))
    x = lq.layers.QuantConv2D(256, 3, padding="same", **kwargs)(x)
    x = bn(L.MaxPool2D(pool_size=3, strides=2)(x))
    x = bn(lq.layers.QuantConv2D(4096, 6, padding="valid", **kwargs)(x))
    x = lq.layers.QuantConv2D(4096, 1, strides=1, padding="valid", **kwargs)(x)
    x = bn(x, epsilon=1e-3)
    x = L.Activation("relu")(x)
    x = L.Flatten()(x)
    x = L.Dense(CLASSES, use_bias=False, kernel_regularizer=keras.regularizers.l2(5e-7))(x)
    x = L.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, x, name="xnornet")


def DoReFaNet(inputs):
    """larq_zoo/literature/dorefanet.py (2-bit activations)."""
    quantized = dict(
        input_quantizer=lq.quantizers.DoReFaQuantizer(k_bit=2),
        kernel_quantizer=magnitude_aware_sign_unclipped,
        kernel_constraint=None,
        use_bias=False,
    )

    def bn(x):
        return L.BatchNormalization(scale=False, momentum=0.9, epsilon=1e-4)(x)

    def conv_block(x, filters, kernel_size, pool=False, pool_padding="same"):
        x = bn(lq.layers.QuantConv2D(filters, kernel_size, padding="same", **quantized)(x))
        if pool:
            x = L.MaxPool2D(pool_size=3, strides=2, padding=pool_padding)(x)
        return x

    out = L.Conv2D(96, kernel_size=12, strides=4, padding="valid", use_bias=True)(inputs)
    out = conv_block(out, 256, 5, pool=True)
    out = conv_block(out, 384, 3, pool=True)
    out = conv_block(out, 384, 3)
    out = conv_block(out, 256, 3, pool_padding="valid", pool=True)
    out = L.Flatten()(out)
    out = bn(lq.layers.QuantDense(4096, **quantized)(out))
    out = bn(lq.layers.QuantDense(4096, **quantized)(out))
    out = L.Activation("clip_by_value_activation")(out)
    out = L.Dense(CLASSES, use_bias=True)(out)
    out = L.Activation("softmax", dtype="float32")(out)
    return keras.Model(inputs, out, name="dorefanet")


def binary_densenet(inputs, name, reduction, dilation_rate, layers):
    """larq_zoo/literature/densenet.py, BinaryDenseNetFactory (the ImageNet stem)."""
    binary = dict(
        input_quantizer=lq.quantizers.SteSign(clip_value=1.3),
        kernel_quantizer=lq.quantizers.SteSign(clip_value=1.3),
        kernel_constraint=lq.constraints.WeightClip(clip_value=1.3),
    )

    def densely_connected_block(x, dilation):
        y = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
        y = lq.layers.QuantConv2D(
            filters=64,
            kernel_size=3,
            dilation_rate=dilation,
            kernel_initializer="glorot_normal",
            padding="same",
            use_bias=False,
            **binary,
        )(y)
        return L.concatenate([x, y])

    x = L.Conv2D(64, 7, strides=2, padding="same", kernel_initializer="he_normal", use_bias=False)(
        inputs
    )
    x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = L.Activation("relu")(x)
    x = L.MaxPool2D(3, strides=2, padding="same")(x)
    for block, layers_per_block in enumerate(layers):
        for _ in range(layers_per_block):
            x = densely_connected_block(x, dilation_rate[block])
        if block < len(layers) - 1:
            x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
            if dilation_rate[block + 1] == 1:
                x = L.MaxPooling2D(2, strides=2)(x)
            x = L.Activation("relu")(x)
            x = L.Conv2D(
                round(x.shape[-1] // reduction[block] / 32) * 32,
                kernel_size=1,
                kernel_initializer="he_normal",
                use_bias=False,
            )(x)
    x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = L.Activation("relu")(x)
    x = global_pool(x)
    x = L.Dense(CLASSES, kernel_initializer="he_normal")(x)
    x = L.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, x, name=name)


def BinaryDenseNet28(inputs):
    return binary_densenet(inputs, "binary_densenet28", (2.7, 2.7, 2.2), (1, 1, 1, 1), (6, 6, 6, 5))


def BinaryDenseNet37(inputs):
    return binary_densenet(inputs, "binary_densenet37", (3.3, 3.3, 4), (1, 1, 1, 1), (6, 8, 12, 6))


def BinaryDenseNet37Dilated(inputs):
    return binary_densenet(
        inputs, "binary_densenet37_dilated", (3.3, 3.3, 4), (1, 1, 2, 4), (6, 8, 12, 6)
    )


def BinaryDenseNet45(inputs):
    return binary_densenet(inputs, "binary_densenet45", (2.7, 3.3, 4), (1, 1, 1, 1), (6, 12, 14, 8))


def TFOpLayer(tf_op, *args, **kwargs):
    """larq_zoo/core/utils.py: a tensorflow op in a Lambda layer."""
    name = kwargs.pop("name", None)
    return L.Lambda(lambda x_: tf_op(x_, *args, **kwargs), name=name)


def MeliusNet22(inputs):
    """larq_zoo/literature/meliusnet.py (its grouped convolutions are Lambda layers)."""
    binary = dict(
        input_quantizer=lq.quantizers.SteSign(1.3),
        kernel_quantizer=lq.quantizers.SteSign(1.3),
        kernel_constraint=lq.constraints.WeightClip(1.3),
    )

    def norm(x, name):
        return L.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)(x)

    def group_conv(x, filters, groups, name):
        splits = TFOpLayer(tf.split, groups, axis=-1, name=f"{name}_split")(x)
        ys = [
            L.Conv2D(
                filters // groups,
                3,
                padding="same",
                use_bias=False,
                kernel_initializer="glorot_normal",
                name=f"{name}_conv{i}",
            )(split)
            for i, split in enumerate(splits)
        ]
        return TFOpLayer(tf.concat, axis=-1, name=f"{name}_concat")(ys)

    def quant_conv(x, name):
        return lq.layers.QuantConv2D(
            64,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer="glorot_normal",
            name=name,
            **binary,
        )(x)

    x = L.Conv2D(
        32,
        3,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer="glorot_normal",
        name="stem_s0_conv",
    )(inputs)
    x = L.Activation("relu", name="stem_s0_relu")(norm(x, "stem_s0_bn"))
    x = group_conv(x, 32, 4, "stem_s1_groupconv")
    x = L.Activation("relu", name="stem_s1_relu")(norm(x, "stem_s1_bn"))
    x = group_conv(x, 64, 8, "stem_s2_groupconv")
    x = L.Activation("relu", name="stem_s2_relu")(norm(x, "stem_s2_bn"))
    x = L.MaxPool2D(2, strides=2, padding="same", name="stem_pool")(x)
    for i, (n, f) in enumerate(zip((4, 5, 4, 4), (160, 224, 256, None))):
        for j in range(n):
            name = f"section_{i}_block_{j}"
            w = quant_conv(norm(x, f"{name}_dense_bn"), f"{name}_dense_binconv")
            x = TFOpLayer(tf.concat, axis=-1, name=f"{name}_dense_concat")([x, w])
            w = quant_conv(norm(x, f"{name}_improve_bn"), f"{name}_improve_binconv")
            f_in = int(x.shape[-1])
            x = L.Lambda(
                lambda x_, f_in=f_in: (
                    x_[0] + tf.pad(x_[1], [[0, 0], [0, 0], [0, 0], [f_in - 64, 0]])
                ),
                name=f"{name}_improve_merge",
            )([x, w])
        if f:
            name = f"section_{i}_transition"
            x = norm(x, f"{name}_bn")
            x = L.MaxPool2D(2, strides=2, padding="same", name=f"{name}_maxpool")(x)
            x = L.Activation("relu", name=f"{name}_relu")(x)
            x = L.Conv2D(
                f, 1, use_bias=False, kernel_initializer="glorot_normal", name=f"{name}_pw"
            )(x)
    x = L.Activation("relu", name="head_relu")(norm(x, "head_bn"))
    x = global_pool(x, name="head_globalpool")
    x = L.Dense(CLASSES, kernel_initializer="glorot_normal", name="head_dense")(x)
    x = L.Activation("softmax", dtype="float32", name="head_softmax")(x)
    return keras.Model(inputs, x, name="meliusnet22")


def RealToBinaryNet(inputs):
    """larq_zoo/literature/real_to_bin_nets.py, RealToBinNetBNNFactory ("r2b_bnn")."""
    prefix = "r2b_bnn"

    def shortcut_connection(x, name, in_channels, out_channels):
        if in_channels == out_channels:
            return x
        x = L.AvgPool2D(2, strides=2, padding="same", name=f"{name}_shortcut_pool")(x)
        x = L.Conv2D(
            out_channels,
            kernel_size=1,
            kernel_initializer="glorot_normal",
            use_bias=False,
            name=f"{name}_shortcut_conv2d",
        )(x)
        return L.BatchNormalization(momentum=0.99, name=f"{name}_shortcut_batch_norm")(x)

    def half_binary_block(x, downsample, name):
        in_channels = x.shape[-1]
        out_channels = int(in_channels * 2 if downsample else in_channels)
        shortcut_add = shortcut_connection(x, name, in_channels, out_channels)
        conv_input = L.BatchNormalization(momentum=0.99, name=f"{name}_batch_norm")(x)
        conv_output = lq.layers.QuantConv2D(
            out_channels,
            kernel_size=3,
            strides=2 if downsample else 1,
            padding="same",
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            kernel_regularizer=None,
            kernel_initializer="glorot_normal",
            use_bias=False,
            name=f"{name}_conv2d",
        )(conv_input)
        # RealToBinNetFactory._scale_binary_conv_output: squeeze-and-excite scaling.
        z = global_pool(conv_input, name=f"{name}_scaling_pool")
        z = L.Dense(
            int(in_channels // 8),
            activation="relu",
            kernel_initializer="he_normal",
            name=f"{name}_scaling_dense_reduce",
            use_bias=False,
        )(z)
        z = L.Dense(
            out_channels,
            activation="sigmoid",
            kernel_initializer="he_normal",
            name=f"{name}_scaling_dense_expand",
            use_bias=False,
        )(z)
        scales = L.Reshape((1, 1, out_channels), name=f"{name}_scaling_reshape")(z)
        x = L.Multiply(name=f"{name}_scaling_multiplication")([conv_output, scales])
        x = L.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)
        return L.Add(name=f"{name}_skip_add")([x, shortcut_add])

    name = f"{prefix}_block_1"
    x = L.Conv2D(
        64,
        kernel_size=7,
        strides=2,
        kernel_initializer="glorot_normal",
        padding="same",
        name=f"{name}_conv2d",
        use_bias=False,
    )(inputs)
    x = L.BatchNormalization(momentum=0.99, name=f"{name}_batch_norm")(x)
    x = L.ReLU(name=f"{name}_relu")(x)
    x = L.MaxPool2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    for block in range(2, 10):
        name = f"{prefix}_block_{block}"
        x = half_binary_block(x, block % 2 == 0 and block > 3, f"{name}a")
        x = half_binary_block(x, False, f"{name}b")
        x = L.Lambda(lambda x: x, name=f"{name}_out")(x)
    name = f"{prefix}_block_10"
    x = global_pool(x, name=f"{name}_global_pool")
    x = L.Dense(CLASSES, name=f"{name}_logits")(x)
    x = L.Softmax(name=f"{name}_probs", dtype=tf.float32)(x)
    return keras.Model(inputs, x, name=prefix)


# larq-zoo's architectures and the input side each is built at.
MODELS = {
    "QuickNetSmall": (QuickNetSmall, 64),
    "QuickNet": (QuickNet, 64),
    "QuickNetLarge": (QuickNetLarge, 64),
    "BiRealNet": (BiRealNet, 64),
    "BinaryResNetE18": (BinaryResNetE18, 64),
    "BinaryAlexNet": (BinaryAlexNet, 64),
    "XNORNet": (XNORNet, 224),
    "DoReFaNet": (DoReFaNet, 64),
    "BinaryDenseNet28": (BinaryDenseNet28, 64),
    "BinaryDenseNet37": (BinaryDenseNet37, 64),
    "BinaryDenseNet37Dilated": (BinaryDenseNet37Dilated, 64),
    "BinaryDenseNet45": (BinaryDenseNet45, 64),
    "MeliusNet22": (MeliusNet22, 64),
    "RealToBinaryNet": (RealToBinaryNet, 64),
}


def randomize_batch_norm(model, rng):
    """BatchNorm statistics, scales and offsets away from their initial values."""
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            values = []
            for weight in layer.weights:
                shape, name = weight.shape, weight.name
                if "moving_variance" in name:
                    values.append(rng.uniform(0.5, 2.0, shape))
                elif "gamma" in name:
                    values.append(rng.uniform(0.5, 1.5, shape))
                else:  # beta, moving_mean
                    values.append(rng.normal(0.0, 0.2, shape))
            layer.set_weights([v.astype(np.float32) for v in values])


def main(directory, names):
    os.makedirs(directory, exist_ok=True)
    for name in names:
        build, size = MODELS[name]
        keras.utils.set_random_seed(15)
        rng = np.random.default_rng(15)
        model = build(keras.Input((size, size, 3)))
        randomize_batch_norm(model, rng)
        x = rng.uniform(-1, 1, (4, size, size, 3)).astype(np.float32)
        y = model.predict(x, verbose=0)
        np.savez(os.path.join(directory, name + ".npz"), x=x, y=y)
        path = os.path.join(directory, name + ".h5")
        try:
            model.save(path, include_optimizer=False)
        except Exception as error:  # noqa: BLE001 (reported; the test checks what was written)
            print(f"{name}: tf_keras cannot save it as .h5: {type(error).__name__}: {error}")
            if os.path.exists(path):
                os.remove(path)
        model.save_weights(os.path.join(directory, name + "_weights.h5"))
        print(
            f"{name}: {model.count_params()} parameters at {size}x{size}, "
            f"larq {lq.__version__}, tf {tf.__version__}",
            flush=True,
        )
        keras.backend.clear_session()


if __name__ == "__main__":
    here = sys.argv[1] if len(sys.argv) > 1 else "larq_zoo_fixtures"
    main(here, sys.argv[2:] or list(MODELS))
