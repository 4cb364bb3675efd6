"""Deep Compression end to end: prune, cluster, fine-tune, report, write a small file.

Trains a LeNet-300-100-shaped MLP (784-300-100-10 on Fashion-MNIST when it
is installed, 64-300-100-10 on scikit-learn's 8x8 digits otherwise), then
prunes it to 90 % in four steps with masked fine-tuning (Han et al. 2015),
clusters every kernel to 16 centroids (4-bit indices plus the zero code)
and fine-tunes the centroids (Han et al. 2016), prints `tfqnn.codebook.report`
and writes the model with Huffman-coded indices, which loads back with the
same predictions.

Usage: python examples/codebook_compression.py [--data digits] [--epochs N] [--out DIR]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import keras
import numpy as np

import tfqnn
from tfqnn import codebook


def load(name):
    if name == "fashion_mnist" and tfqnn.datasets.fashion_mnist_available():
        (x_train, y_train), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    else:
        name = "digits"
        (x_train, y_train), (x_test, y_test) = tfqnn.datasets.load_digits()
    flat = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    return name, (flat[0], y_train), (flat[1], y_test)


def fit(model, train, epochs, learning_rate):
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    model.fit(*train, batch_size=64, epochs=epochs, verbose=0)


def accuracy(model, test):
    return float(np.mean(np.argmax(model.predict(test[0], verbose=0), axis=1) == test[1]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="fashion_mnist", choices=["fashion_mnist", "digits"])
    parser.add_argument("--epochs", type=int, default=None, help="float training epochs")
    parser.add_argument("--out", default="saved_models")
    args = parser.parse_args()
    name, train, test = load(args.data)
    epochs = args.epochs or (5 if name == "fashion_mnist" else 20)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((train[0].shape[1],)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    fit(model, train, epochs, 3e-3 if name == "digits" else 1e-3)
    print(f"{name}: float accuracy {accuracy(model, test):.4f}")

    pruned = model
    for sparsity in (0.5, 0.7, 0.8, 0.9):
        pruned = codebook.prune(pruned, sparsity)
        fit(pruned, train, 4 if name == "digits" else 1, 1e-3)
        print(f"pruned to {sparsity:.0%}: accuracy {accuracy(pruned, test):.4f}")

    clustered = codebook.cluster(pruned, 16, verbose=1)
    print(f"clustered, before fine-tuning: {accuracy(clustered, test):.4f}")
    fit(clustered, train, 1, 1e-3)
    print(f"clustered, after one epoch: {accuracy(clustered, test):.4f}\n")
    codebook.report(clustered)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"codebook_{name}.tfqnncb")
    size = codebook.save_compressed(clustered, path)
    loaded = codebook.load_compressed(path)
    same = np.array_equal(loaded.predict(test[0], verbose=0), clustered.predict(test[0], verbose=0))
    float_bytes = 4 * model.count_params()
    print(
        f"\n{path}: {size} bytes (float32 weights {float_bytes} bytes, {float_bytes / size:.1f}x "
        f"with the Keras config in the header); loads with identical predictions: {same}"
    )


if __name__ == "__main__":
    main()
