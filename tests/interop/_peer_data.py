"""Real data for the peer fixture scripts, without tfqnn (the peer envs do not have it).

Fashion-MNIST from Debian's files (or ``$TFQNN_FASHION_MNIST_DIR``), read as
tfqnn.datasets reads them; scikit-learn's 8x8 digits otherwise.
"""

import gzip
import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def _read_idx(filename):
    with gzip.open(filename, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(n_train=2048, n_test=16):
    """(x_train, y_train, x_test) in [0, 1], shaped (n, 28, 28, 1); the first images."""
    directory = os.environ.get("TFQNN_FASHION_MNIST_DIR", FASHION_MNIST_DIR)
    x_train = _read_idx(os.path.join(directory, "train-images-idx3-ubyte.gz"))[:n_train]
    y_train = _read_idx(os.path.join(directory, "train-labels-idx1-ubyte.gz"))[:n_train]
    x_test = _read_idx(os.path.join(directory, "t10k-images-idx3-ubyte.gz"))[:n_test]
    scale = np.float32(1 / 255)
    return (
        x_train[..., None].astype(np.float32) * scale,
        y_train.astype(np.int64),
        x_test[..., None].astype(np.float32) * scale,
    )


def digits(n_test=16):
    """scikit-learn's 8x8 digits in [0, 1]: (x_train, y_train, x_test), shaped (n, 64)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return x[:-n_test], y[:-n_test].astype(np.int64), x[-n_test:]


def save_outputs(model, path, x, x_train, y_train, gradients=True):
    """Writes what tfqnn must reproduce: predictions, training-mode outputs, gradients.

    ``x``, ``y`` (``model.predict``); ``x_train``, ``y_train``, ``y_training``
    (the outputs with ``training=True``) and ``grad:<layer>/<weight>``, the
    gradient of the mean sparse categorical cross-entropy on that batch with
    respect to each trainable weight (if ``gradients``). Call it after saving the model: a
    training-mode call updates BatchNorm statistics.
    """
    import tensorflow as tf

    y = model.predict(x, verbose=0)
    for layer in model.layers:  # no random masks in the training-mode call
        inner = getattr(layer, "layer", layer)  # tfmot's wrappers hold the Dropout
        if "Dropout" in type(inner).__name__:
            inner.rate = 0.0
    with tf.GradientTape() as tape:
        y_training = model(x_train, training=True)
        loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y_train, y_training))
    names = [
        # A nested model's weights keep their inner layer's name: grad:head/dense/kernel.
        f"grad:{layer.name}/{w.name.split(':')[0]}"
        if isinstance(layer, tf.keras.Model)
        else f"grad:{layer.name}/{w.name.split('/')[-1].split(':')[0]}"
        for layer in model.layers
        for w in layer.trainable_weights
    ]
    weights = [w for layer in model.layers for w in layer.trainable_weights]
    grads = tape.gradient(loss, weights)
    # A gather (tfmot's cluster centroids) has IndexedSlices as its gradient: made dense.
    arrays = (
        {} if not gradients else {n: tf.convert_to_tensor(g).numpy() for n, g in zip(names, grads)}
    )
    np.savez_compressed(
        path, x=x, y=y, x_train=x_train, y_train=y_train, y_training=y_training.numpy(), **arrays
    )
