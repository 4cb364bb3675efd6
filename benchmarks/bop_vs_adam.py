"""Bop for the binary kernels against Adam alone, on the demo's binarized CNN.

Reproduces larq's observation (Helwegen et al. 2019) that Bop trains a
binarized network: the demo's CNN (examples/binarized_fashion_mnist.py) on
Fashion-MNIST (else scikit-learn's digits), trained twice from the same
initial weights and for the same epochs and batches:

- "Adam": the demo's recipe, Adam with a cosine-decayed learning rate
  (5e-3) on every variable, latent weights clipped by ``weight_clip``;
- "Bop + Adam": ``CaseOptimizer((is_binary_variable, Bop(threshold,
  gamma)), default_optimizer=Adam(same schedule))``: Bop flips the binary
  kernels, Adam trains the float first and last layers and BatchNorm.

Prints the machine, then per run the test accuracy, the training time and
the mean flip ratio of the binary kernels in the last epoch
(`tfqnn.metrics.FlipRatio`).

Usage: python benchmarks/bop_vs_adam.py [--epochs 3] [--seeds 0 1] [--gamma 1e-3]
       [--threshold 1e-6] [--data auto|fashion_mnist|digits]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

import tfqnn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import _machine  # benchmarks/, the script's folder, is on sys.path
import binarized_fashion_mnist as demo


def optimizer(kind, steps, gamma, threshold):
    schedule = keras.optimizers.schedules.CosineDecay(5e-3, steps, alpha=0.01)
    adam = keras.optimizers.Adam(schedule)
    if kind == "Adam":
        return adam
    bop = tfqnn.optimizers.Bop(threshold=threshold, gamma=gamma)
    return tfqnn.optimizers.CaseOptimizer(
        (tfqnn.optimizers.is_binary_variable, bop), default_optimizer=adam
    )


def run(kind, data, data_name, epochs, seed, gamma, threshold, batch_size=64):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = demo.build_model(x_train.shape[1:], True, f"bnn_{data_name}")
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    model.compile(
        optimizer(kind, steps, gamma, threshold),
        "sparse_categorical_crossentropy",
        metrics=["accuracy", tfqnn.metrics.FlipRatio(model)],
    )
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True
    )
    seconds = time.perf_counter() - start
    _, accuracy, _ = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    return accuracy, seconds, history.history["flip_ratio"][-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--gamma", type=float, default=1e-3)
    parser.add_argument("--threshold", type=float, default=1e-6)
    parser.add_argument("--data", choices=("auto", "fashion_mnist", "digits"), default="auto")
    args = parser.parse_args()
    data_name, data = demo.load(args.data)
    print(_machine.header({"TensorFlow": tf.__version__, "Keras": keras.__version__}))
    print(
        f"{data_name}, {args.epochs} epochs, batch 64, seeds {args.seeds}; "
        f"Bop gamma={args.gamma:g}, threshold={args.threshold:g}\n"
    )
    print("| optimizer | seed | test accuracy | training s | flip ratio (last epoch) |")
    print("|---|---|---|---|---|")
    results = {}
    for seed in args.seeds:
        for kind in ("Adam", "Bop + Adam"):
            accuracy, seconds, flips = run(
                kind, data, data_name, args.epochs, seed, args.gamma, args.threshold
            )
            results.setdefault(kind, []).append(accuracy)
            print(
                f"| {kind} | {seed} | {100 * accuracy:.2f} % | {seconds:.0f} | {flips:.2e} |",
                flush=True,
            )
    if len(args.seeds) > 1:
        print()
        for kind, accuracies in results.items():
            print(f"{kind}: median test accuracy {100 * statistics.median(accuracies):.2f} %")


if __name__ == "__main__":
    main()
