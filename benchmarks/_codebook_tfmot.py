"""tfmot's weight clustering on the data and trained weights of benchmarks/codebook.py.

Launched by codebook.py with the peer environment's python
(tensorflow-model-optimization 0.8.1, tf-keras 2.21: scripts/peer_envs.sh
builds it); never imports tfqnn. Reads the train/test arrays and the float
model's weights (w0, w1, ... in ``get_weights`` order) from an .npz,
rebuilds the same architecture in tf_keras, applies
``cluster_weights(16 clusters, k-means++ init)`` to every layer, fine-tunes
with the same optimizer and budget, strips the clustering wrappers,
converts to a float ``.tflite`` and zips it (tfmot's documented way to see
the size gain). Prints one JSON line: accuracy, .tflite bytes, zipped bytes,
distinct values per kernel.

Usage: TF_USE_LEGACY_KERAS=1 PEER/bin/python benchmarks/_codebook_tfmot.py DATA.npz
       --model mlp --epochs 1 --learning-rate 3e-4 --batch 128 --clusters 16
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import zipfile
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras


def build(name: str) -> Any:
    """The architectures of codebook.py's ``build`` in tf_keras."""
    if name == "mlp":
        layers = [
            keras.layers.Flatten(input_shape=(28, 28)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    else:
        layers = [
            keras.layers.Reshape((28, 28, 1), input_shape=(28, 28)),
            keras.layers.Conv2D(6, 5, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(120, activation="relu"),
            keras.layers.Dense(84, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    return keras.Sequential(layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = np.load(args.data)
    keras.utils.set_random_seed(args.seed)
    model = build(args.model)
    count = sum(1 for key in data.files if key.startswith("w"))
    model.set_weights([data[f"w{i}"] for i in range(count)])
    clustering = tfmot.clustering.keras
    clustered = clustering.cluster_weights(
        model,
        number_of_clusters=args.clusters,
        cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
    )
    clustered.compile(
        keras.optimizers.Adam(args.learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    clustered.fit(
        data["x_train"],
        data["y_train"],
        batch_size=args.batch,
        epochs=args.epochs,
        verbose=0,
        shuffle=True,
    )
    stripped = clustering.strip_clustering(clustered)
    predictions = stripped.predict(data["x_test"], batch_size=1000, verbose=0)
    accuracy = float(np.mean(np.argmax(predictions, -1) == data["y_test"]))
    values = [
        int(np.unique(layer.kernel.numpy()).size)
        for layer in stripped.layers
        if hasattr(layer, "kernel")
    ]
    flat = tf.lite.TFLiteConverter.from_keras_model(stripped).convert()
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.tflite")
        with open(path, "wb") as f:
            f.write(flat)
        zipped = os.path.join(directory, "model.zip")
        with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, "model.tflite")
        zipped_bytes = os.path.getsize(zipped)
    print(
        json.dumps(
            {
                "library": "tfmot",
                "clusters": args.clusters,
                "accuracy": accuracy,
                "tflite_bytes": len(flat),
                "zipped_tflite_bytes": zipped_bytes,
                "distinct_kernel_values": values,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
