"""Deep Compression on the bundled 8x8 digits: the figures of docs/codebook.md's worked example.

The procedure of tests/codebook/test_accuracy.py, for several seeds: a
64-300-100-10 MLP trained 20 epochs (Adam 3e-3, batch 32) is the float
model; then, each from that float model,

- ``cluster``: 16 centroids per kernel and one epoch of fine-tuning (Adam 1e-3);
- ``pruned layer``: pruning to 90 % in four steps (50, 70, 80, 90 %, four
  epochs of masked fine-tuning each, per-layer thresholds), then 16 centroids
  and one epoch;
- ``pruned model``: the same with one threshold over all kernels
  (``prune(..., scope="model")``).

Prints test accuracies, the report's fixed-length and Huffman ratios, and the
sparsity of the first and last kernel under global pruning.

Usage: python benchmarks/codebook_digits.py [--seeds 0,1,2,3,4] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

import tfqnn
from tfqnn import codebook

sys.path.insert(0, os.path.dirname(__file__))
import _machine

SCHEDULE = (0.5, 0.7, 0.8, 0.9)


def load():
    (x_train, y_train), (x_test, y_test) = tfqnn.datasets.load_digits()
    return (x_train.reshape(-1, 64), y_train), (x_test.reshape(-1, 64), y_test)


def fit(model, train, epochs, learning_rate):
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    model.fit(*train, batch_size=32, epochs=epochs, verbose=0)


def accuracy(model, test):
    return float(np.mean(np.argmax(model.predict(test[0], verbose=0), axis=1) == test[1]))


def float_model(train, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    fit(model, train, 20, 3e-3)
    return model


def clustered(model, train):
    result = codebook.cluster(model, 16, verbose=0)
    fit(result, train, 1, 1e-3)
    return result


def pruned_and_clustered(model, train, scope):
    pruned = model
    for sparsity in SCHEDULE:
        pruned = codebook.prune(pruned, sparsity, scope=scope)
        fit(pruned, train, 4, 1e-3)
    return clustered(pruned, train)


def run(seed, train, test):
    model = float_model(train, seed)
    row = {"seed": seed, "float": accuracy(model, test)}
    only = clustered(model, train)
    report = codebook.report(only, print_fn=None)
    row.update(cluster=accuracy(only, test), cluster_fixed_ratio=report.fixed_ratio)
    for scope in ("layer", "model"):
        result = pruned_and_clustered(model, train, scope)
        report = codebook.report(result, print_fn=None)
        row[f"pruned_{scope}"] = accuracy(result, test)
        row[f"pruned_{scope}_huffman_ratio"] = report.huffman_ratio
        if scope == "model":
            kernels = [layer.kernel.numpy() for layer in codebook.strip(result).layers]
            row["model_sparsity_first"] = float(np.mean(kernels[0] == 0))
            row["model_sparsity_last"] = float(np.mean(kernels[-1] == 0))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(
        f"Machine: {_machine.cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, "
        f"{_machine.memory_gib()} GiB, load {_machine.load_average()}; Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
    train, test = load()
    print(f"digits: {len(train[1])} training, {len(test[1])} test images")
    header = (
        f"{'seed':>4} {'float':>7} {'cluster':>8} {'fixed x':>8} {'pruned/layer':>13} "
        f"{'Huffman x':>10} {'pruned/model':>13} {'Huffman x':>10} {'first/last zero':>16}"
    )
    print(header)
    rows = []
    for seed in seeds:
        row = run(seed, train, test)
        rows.append(row)
        print(
            f"{seed:>4} {row['float']:>7.1%} {row['cluster']:>8.1%} "
            f"{row['cluster_fixed_ratio']:>7.1f}x {row['pruned_layer']:>13.1%} "
            f"{row['pruned_layer_huffman_ratio']:>9.1f}x {row['pruned_model']:>13.1%} "
            f"{row['pruned_model_huffman_ratio']:>9.1f}x "
            f"{row['model_sparsity_first']:>8.0%}/{row['model_sparsity_last']:.0%}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "benchmarks/codebook_digits.py", "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
