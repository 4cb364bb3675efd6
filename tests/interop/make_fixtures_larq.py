"""Writes the larq fixtures of tfqnn.interop: tf_keras .h5 models trained with larq 0.14.

Run with the larq peer environment's python (``scripts/peer_envs.sh`` builds it)::

    TF_USE_LEGACY_KERAS=1 .peers/larq/bin/python tests/interop/make_fixtures_larq.py DIR

For each model it writes ``DIR/<name>.h5`` (``model.save``, the full model)
and ``DIR/<name>.npz`` (`_peer_data.save_outputs`): the inputs ``x`` and
larq's predictions ``y``; a training batch ``x_train``, ``y_train``, the
training-mode outputs ``y_training`` and the gradient of the mean sparse
categorical cross-entropy with respect to each trainable weight
(``grad:<layer>/<weight>``), taken after saving. The models train one epoch
on 2,048 Fashion-MNIST images first, so that BatchNorm statistics and latent
weights are not their initial values.

- ``larq_tutorial_bnn``: the CNN of larq's "Introduction to BNNs" guide.
- ``larq_every_layer``: a functional model with every larq layer tfqnn maps
  and a different larq quantizer on each input and kernel.
- ``larq_conv1d``: QuantConv1D on the image rows as sequences, saved with its
  optimizer state.
- ``larq_tiny``: two QuantDense layers (the fuzz tests corrupt it).
- ``larq_zoo_blocks``: larq-zoo's own quantizers and activation
  (``xnor_weight_scale``, ``magnitude_aware_sign_unclipped``,
  ``clip_by_value_activation``) and the layers its architectures add.
- ``larq_savedmodel``: a small BNN saved as a SavedModel directory.

larq-zoo's architectures are built by ``make_fixtures_larq_zoo.py``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import larq as lq
import tensorflow as tf
import tf_keras as keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _peer_data import fashion_mnist, save_outputs

BINARY = dict(
    input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
)


def tutorial_bnn():
    model = keras.models.Sequential(name="larq_tutorial_bnn")
    model.add(keras.Input((28, 28, 1)))
    model.add(
        lq.layers.QuantConv2D(
            32, (3, 3), kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False
        )
    )
    model.add(keras.layers.MaxPooling2D((2, 2)))
    model.add(keras.layers.BatchNormalization(scale=False))
    model.add(lq.layers.QuantConv2D(64, (3, 3), use_bias=False, **BINARY))
    model.add(keras.layers.MaxPooling2D((2, 2)))
    model.add(keras.layers.BatchNormalization(scale=False))
    model.add(lq.layers.QuantConv2D(64, (3, 3), use_bias=False, **BINARY))
    model.add(keras.layers.BatchNormalization(scale=False))
    model.add(keras.layers.Flatten())
    model.add(lq.layers.QuantDense(64, use_bias=False, **BINARY))
    model.add(keras.layers.BatchNormalization(scale=False))
    model.add(lq.layers.QuantDense(10, use_bias=False, **BINARY))
    model.add(keras.layers.BatchNormalization(scale=False))
    model.add(keras.layers.Activation("softmax"))
    return model


def every_layer():
    q = lq.quantizers
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.AveragePooling2D(2)(inputs)  # 14 x 14
    x = lq.layers.QuantConv2D(8, 3, padding="same", kernel_quantizer=q.NoOp(precision=8))(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    skip = x
    x = lq.layers.QuantDepthwiseConv2D(
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer=q.ApproxSign(),
        depthwise_quantizer=q.MagnitudeAwareSign(clip_value=1.5),
        depthwise_constraint=lq.constraints.WeightClip(1.5),
        use_bias=False,
    )(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Add()([x, skip])
    x = lq.layers.QuantSeparableConv2D(
        16,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer=q.SwishSign(beta=4.0),
        depthwise_quantizer=q.SteTern(threshold_value=0.1),
        pointwise_quantizer=q.SteTern(ternary_weight_networks=True, clip_value=None),
        depthwise_constraint="weight_clip",
        pointwise_constraint="weight_clip",
    )(x)
    x = keras.layers.MaxPooling2D(2)(x)  # 7 x 7
    x = keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2DTranspose(
        8,
        3,
        strides=2,
        padding="same",
        input_quantizer=q.SteHeaviside(),
        kernel_quantizer=q.SteSign(clip_value=1.25, metrics=["flip_ratio"]),
        kernel_constraint="weight_clip",
        use_bias=False,
    )(x)  # 14 x 14
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = lq.layers.QuantConv2D(
        8,
        3,
        strides=2,
        input_quantizer=q.DoReFa(k_bit=2, mode="activations"),
        kernel_quantizer=q.DoReFa(k_bit=3, mode="weights"),
    )(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = lq.layers.QuantDense(
        10, input_quantizer="approx_sign", kernel_quantizer="magnitude_aware_sign"
    )(x)
    outputs = keras.layers.Activation("softmax")(x)
    return keras.Model(inputs, outputs, name="larq_every_layer")


def tiny():
    inputs = keras.Input((28, 28), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = lq.layers.QuantDense(
        8, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name="dense_1"
    )(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = lq.layers.QuantDense(10, activation="softmax", name="dense_2", **BINARY)(x)
    return keras.Model(inputs, x, name="larq_tiny")


def conv1d():
    inputs = keras.Input((28, 28))
    x = lq.layers.QuantConv1D(
        16,
        3,
        padding="same",
        use_bias=False,
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv1D(16, 5, strides=2, padding="same", pad_values=1.0, **BINARY)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    x = lq.layers.QuantDense(10, activation="softmax", **BINARY)(x)
    return keras.Model(inputs, x, name="larq_conv1d")


def zoo_blocks():
    """larq-zoo's own quantizers and activation, and the layers its architectures add.

    ``xnor_weight_scale`` (XNORNet) on a dilated convolution whose output is
    concatenated to its input (BinaryDenseNet); ``DoReFaQuantizer`` inputs
    with ``magnitude_aware_sign_unclipped`` kernels and
    ``clip_by_value_activation`` (DoReFaNet); larq-zoo's global pool
    (AveragePooling2D and Flatten); a Reshape to a 1x1 convolution
    (BinaryAlexNet's dense layers).
    """
    from make_fixtures_larq_zoo import (  # registers larq-zoo's names
        global_pool,
        magnitude_aware_sign_unclipped,
        xnor_weight_scale,
    )

    L = keras.layers

    def bn(x):
        return L.BatchNormalization(momentum=0.9, scale=False, epsilon=1e-4)(x)

    dorefa = dict(
        input_quantizer=lq.quantizers.DoReFaQuantizer(k_bit=2),
        kernel_quantizer=magnitude_aware_sign_unclipped,
        use_bias=False,
    )
    inputs = keras.Input((28, 28, 1))
    x = bn(L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs))  # 14 x 14
    y = lq.layers.QuantConv2D(
        8,
        3,
        padding="same",
        dilation_rate=2,
        input_quantizer="ste_sign",
        kernel_quantizer=xnor_weight_scale,
        kernel_constraint="weight_clip",
        kernel_regularizer=keras.regularizers.l2(5e-7),
        use_bias=False,
    )(x)
    x = L.concatenate([x, bn(y)])
    # Average, not max, pooling: a binary convolution's outputs tie, and float rounding
    # (tf_keras's fused BatchNorm) would route a max pool's gradient to another tie.
    x = L.AvgPool2D(2, strides=2)(x)  # 7 x 7
    x = bn(lq.layers.QuantConv2D(16, 3, padding="same", **dorefa)(x))
    x = global_pool(x)
    x = L.Reshape((1, 1, 16))(x)
    x = lq.layers.QuantConv2D(32, 1, **BINARY, use_bias=False)(x)
    x = L.Flatten()(bn(x))
    x = bn(lq.layers.QuantDense(32, **dorefa)(x))
    x = L.Activation("clip_by_value_activation")(x)
    x = L.Dense(10)(x)
    outputs = L.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="larq_zoo_blocks")


MODELS = {
    "larq_tutorial_bnn": (tutorial_bnn, False),
    "larq_every_layer": (every_layer, False),
    "larq_conv1d": (conv1d, True),
    "larq_tiny": (tiny, False),
    "larq_zoo_blocks": (zoo_blocks, False),
}


def savedmodel_bnn():
    """A small BNN on 14 x 14 images, saved as a SavedModel directory (``larq_savedmodel``)."""
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((14, 14, 1)),
            lq.layers.QuantConv2D(
                8, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False
            ),
            L.BatchNormalization(scale=False),
            lq.layers.QuantConv2D(8, 3, use_bias=False, **BINARY),
            L.MaxPooling2D(2),
            L.BatchNormalization(scale=False),
            L.Flatten(),
            lq.layers.QuantDense(10, use_bias=False, **BINARY),
            L.BatchNormalization(scale=False),
            L.Activation("softmax"),
        ],
        name="larq_savedmodel",
    )


# SavedModel directories (model.save(NAME, save_format="tf")), on every other pixel, with
# 4 test and 8 training images.
SAVED_MODELS = {"larq_savedmodel": savedmodel_bnn}


def main(directory, names=()):
    os.makedirs(directory, exist_ok=True)
    x_train, y_train, x_test = fashion_mnist()
    for name, (build, include_optimizer) in MODELS.items():
        if names and name not in names:
            continue
        keras.utils.set_random_seed(15)
        model = build()
        rank3 = name in ("larq_conv1d", "larq_tiny")
        train, test = (x_train[..., 0], x_test[..., 0]) if rank3 else (x_train, x_test)
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
        model.fit(train, y_train, batch_size=128, epochs=1, verbose=0)
        path = os.path.join(directory, name + ".h5")
        model.save(path, include_optimizer=include_optimizer)
        npz = os.path.join(directory, name + ".npz")
        gradients = name != "larq_tutorial_bnn"  # its 93k gradients would double its size
        save_outputs(model, npz, test, train[:16], y_train[:16], gradients)
        print(f"{path}: {os.path.getsize(path)} bytes, larq {lq.__version__}, tf {tf.__version__}")
    for name, build in SAVED_MODELS.items():
        if names and name not in names:
            continue
        keras.utils.set_random_seed(15)
        model = build()
        train, test = x_train[:, ::2, ::2], x_test[:4, ::2, ::2]
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        model.fit(train, y_train, batch_size=128, epochs=1, verbose=0)
        path = os.path.join(directory, name)
        model.save(path, include_optimizer=False, save_format="tf")
        save_outputs(model, os.path.join(directory, name + ".npz"), test, train[:8], y_train[:8])
        print(f"{path}: SavedModel, larq {lq.__version__}, tf {tf.__version__}")


if __name__ == "__main__":
    # DIR, then optionally the names of the models to write (all by default).
    here = os.path.join(os.path.dirname(__file__), "fixtures")
    main(sys.argv[1] if len(sys.argv) > 1 else here, sys.argv[2:])
