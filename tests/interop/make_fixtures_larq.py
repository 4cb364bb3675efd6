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
- with ``--large``: ``larq_quicknet_small``, larq-zoo's QuickNetSmall at
  32 x 32 with random weights (50 MB: not committed; the slow test builds it),
  and ``larq_zoo_quicknet_small_weights.h5``, its weights at 64 x 64 saved as
  larq-zoo saves them (tf_keras ``save_weights``), for ``tfqnn.zoo``'s
  ``QuickNetSmall(weights=...)``.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import larq as lq
import numpy as np
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


def _blur_kernel(shape, dtype=None):
    """A fixed [1, 2, 1] x [1, 2, 1] / 16 blur per channel (QuickNet's anti-aliased stride)."""
    taps = np.array([1.0, 2.0, 1.0])
    kernel = np.outer(taps, taps) / 16.0
    return np.broadcast_to(kernel[:, :, None, None], shape).astype(np.float32)


def quicknet_small(size=32):
    """larq-zoo's QuickNetSmall (larq_zoo/sota/quicknet.py) rebuilt with larq's layers, 32 x 32.

    Stem: a float stride-2 conv, a stride-2 depthwise conv, a 1x1 conv. Then
    four sections (32, 64, 256, 512 filters) of four residual binary 3x3
    convolutions (SteSign(1.25) inputs and kernels, pad_values=1, ReLU,
    BatchNorm, ``x + residual``); a transition before each section that
    changes the width (ReLU, max pool, a frozen blur depthwise conv, a float
    1x1 conv). Random weights: the architecture is what is tested.
    """
    binary = dict(
        input_quantizer=lq.quantizers.SteSign(clip_value=1.25),
        kernel_quantizer=lq.quantizers.SteSign(clip_value=1.25),
        kernel_constraint=lq.constraints.WeightClip(clip_value=1.25),
    )
    L = keras.layers
    inputs = keras.Input((size, size, 3))
    x = lq.layers.QuantConv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    x = lq.layers.QuantDepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)
    x = L.BatchNormalization(scale=False, center=False)(x)
    x = L.BatchNormalization()(lq.layers.QuantConv2D(32, 1, use_bias=False)(x))
    for section, filters in enumerate((32, 64, 256, 512)):
        for block in range(4):
            if filters != x.shape[-1]:
                strides = 2 if section > 0 and block == 0 else 1
                x = L.Activation("relu")(x)
                x = L.MaxPool2D(pool_size=strides, strides=1)(x)
                x = L.DepthwiseConv2D(
                    3,
                    depthwise_initializer=_blur_kernel,
                    padding="same",
                    strides=strides,
                    trainable=False,
                    use_bias=False,
                )(x)
                x = lq.layers.QuantConv2D(filters, 1, use_bias=False)(x)
                x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
            residual = x
            x = lq.layers.QuantConv2D(
                filters,
                3,
                activation="relu",
                padding="same",
                pad_values=1.0,
                use_bias=False,
                **binary,
            )(x)
            x = L.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
            x = x + residual  # a TFOpLambda in the saved config, as in larq-zoo
    x = L.GlobalAveragePooling2D()(L.Activation("relu")(x))
    x = lq.layers.QuantDense(1000)(x)
    outputs = L.Activation("softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="larq_quicknet_small")


MODELS = {
    "larq_tutorial_bnn": (tutorial_bnn, False),
    "larq_every_layer": (every_layer, False),
    "larq_conv1d": (conv1d, True),
    "larq_tiny": (tiny, False),
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


# Too large to commit (12.6 million parameters, 50 MB): written with --large only.
LARGE = {"larq_quicknet_small": quicknet_small}


def write_large(directory):
    rng = np.random.default_rng(15)
    for name, build in LARGE.items():
        keras.utils.set_random_seed(15)
        model = build()
        path = os.path.join(directory, name + ".h5")
        model.save(path, include_optimizer=False)
        x = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
        np.savez(os.path.join(directory, name + ".npz"), x=x, y=model.predict(x, verbose=0))
        print(f"{path}: {os.path.getsize(path)} bytes, larq {lq.__version__}, tf {tf.__version__}")
    # larq-zoo's weights files are tf_keras save_weights .h5 files: one of QuickNetSmall
    # at 64 x 64 (where tfqnn.zoo's stem strides as larq-zoo's), for QuickNetSmall(weights=).
    keras.utils.set_random_seed(16)
    model = quicknet_small(64)
    path = os.path.join(directory, "larq_zoo_quicknet_small_weights.h5")
    model.save_weights(path)
    x = rng.uniform(-1, 1, (4, 64, 64, 3)).astype(np.float32)
    np.savez(
        os.path.join(directory, "larq_zoo_quicknet_small_weights.npz"),
        x=x,
        y=model.predict(x, verbose=0),
    )
    print(f"{path}: {os.path.getsize(path)} bytes")


def main(directory, large=False):
    os.makedirs(directory, exist_ok=True)
    if large:
        write_large(directory)
    x_train, y_train, x_test = fashion_mnist()
    for name, (build, include_optimizer) in MODELS.items():
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
    arguments = [a for a in sys.argv[1:] if a != "--large"]
    here = os.path.join(os.path.dirname(__file__), "fixtures")
    main(arguments[0] if arguments else here, large="--large" in sys.argv)
