"""Hessian-weighted k-means against plain k-means on Fashion-MNIST (Choi et al. 2017).

Why `importance="hessian"` loses to plain k-means at 2 bits per layer in
benchmarks/codebook.py: the same float models (`codebook.build`, trained
as there), clustered per layer at ``--bits`` with each importance
estimate, then the same fine-tuning (one epoch of Adam 3e-4) with several
seeds:

* ``kmeans``: plain k-means (linear init);
* ``hessian``: tfqnn's estimate, the empirical Fisher over
  ``--hessian-samples`` samples (mean squared per-sample gradient);
* ``ggn``: the exact diagonal of the Gauss-Newton matrix over
  ``--ggn-samples`` samples, sum_c p_c (d log p_c / d w)^2 (per-sample
  Jacobians), which for these ReLU / max-pool networks under softmax
  cross-entropy is the exact diagonal of the Hessian;
* ``adam``: the square root of the trained Adam optimizer's second moments.

Then, without fine-tuning, the diagonal model's predicted loss rise
1/2 sum_i h_i (w_i - q_i)^2 against the real rise of the training loss
(first 4,096 images), for plain and Hessian-weighted k-means and for the
exact minimiser of each objective (``method="optimal"``).

Usage: nice -n 10 python benchmarks/codebook_importance.py [--models mlp cnn]
       [--bits 2 3] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

import tfqnn
from tfqnn import codebook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _machine  # noqa: E402
import codebook as bench  # noqa: E402

cluster_module = sys.modules["tfqnn.codebook.cluster"]
importance_module = sys.modules["tfqnn.codebook.importance"]
ESTIMATES = ("kmeans", "hessian", "ggn", "adam")


def gauss_newton(model: keras.Model, x: np.ndarray, variables: list[Any]) -> list[np.ndarray]:
    """mean_s sum_c p_c (d log p_c(x_s) / d w)^2 for each variable (per-sample Jacobians)."""

    @tf.function
    def step(xb: Any) -> list[Any]:
        with tf.GradientTape() as tape:
            p = tf.clip_by_value(model(xb, training=False), 1e-12, 1.0)
            # rows sqrt(p_c) * log p_c: their squared gradients sum to sum_c p_c (d log p_c)^2
            rows = tf.reshape(tf.stop_gradient(tf.sqrt(p)) * tf.math.log(p), [-1])
        jacobians = tape.jacobian(rows, variables, experimental_use_pfor=True)
        return [tf.reduce_sum(tf.square(j), axis=0) for j in jacobians]

    totals = [np.zeros(tuple(v.shape)) for v in variables]
    for i in range(0, x.shape[0], 16):
        for total, g in zip(totals, step(x[i : i + 16])):
            np.add(total, np.asarray(g), out=total)
    return [t / x.shape[0] for t in totals]


def kernels(model: keras.Model) -> list[Any]:
    return [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]


def clustered(model: keras.Model, bits: int, estimate: str, h: list[Any], seed: int) -> Any:
    """`codebook.cluster` at ``bits`` with ``estimate``'s importance ``h`` (None: plain)."""
    if estimate == "kmeans":
        return codebook.cluster(model, 2**bits, verbose=0, seed=seed)
    if estimate == "adam":
        return codebook.cluster(model, 2**bits, importance="adam", verbose=0, seed=seed)
    original = importance_module.hessian
    importance_module.hessian = lambda *_: h  # the estimate computed once
    try:
        return codebook.cluster(
            model, 2**bits, importance="hessian", data=(None, None), verbose=0, seed=seed
        )
    finally:
        importance_module.hessian = original


def diagnosis(model: keras.Model, data: Any, bits: int, h: list[np.ndarray]) -> list[str]:
    """Predicted (diagonal) against real loss rise, no fine-tuning."""
    (x, y), _ = data
    loss = keras.losses.SparseCategoricalCrossentropy()

    def train_loss(m: keras.Model) -> float:
        return float(loss(y[:4096], m.predict(x[:4096], batch_size=1024, verbose=0)))

    base = train_loss(model)
    lines = []
    for method in ("kmeans", "optimal"):
        for weighted in (False, True):
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            predicted = 0.0
            for variable, hv in zip(kernels(copy), h):
                w = np.asarray(variable)
                function = codebook.kmeans if method == "kmeans" else codebook.optimal
                q = function(w, 2**bits, importance=hv if weighted else None).decode()
                q = q.reshape(w.shape)
                predicted += 0.5 * float(np.sum(hv * (w - q) ** 2))
                variable.assign(q)
            lines.append(
                f"| {bits} | {method} | {'yes' if weighted else 'no'} | {predicted:.4f} | "
                f"{train_loss(copy) - base:.4f} | {100 * bench.accuracy(copy, data):.2f} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    parser.add_argument("--bits", nargs="+", type=int, default=[2, 3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--estimates", nargs="+", choices=ESTIMATES, default=list(ESTIMATES))
    parser.add_argument("--train-size", type=int, default=12_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hessian-samples", type=int, default=256)
    parser.add_argument("--ggn-samples", type=int, default=2048)
    args = parser.parse_args()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {_machine.memory_gib()} GiB; "
        f"load {_machine.load_average()}; Python {platform.python_version()}, numpy "
        f"{np.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
    (x, y), test = tfqnn.datasets.load_fashion_mnist()
    data = ((x[: args.train_size], y[: args.train_size]), test)
    for name in args.models:
        keras.utils.set_random_seed(0)
        model = bench.build(name)
        bench.fit(model, data, args.epochs, 1e-3, 128)
        print(f"\n{name}: float {100 * bench.accuracy(model, data):.2f} %", flush=True)
        variables = kernels(model)
        n = args.hessian_samples
        estimates: dict[str, Any] = {
            "hessian": importance_module.hessian(model, (x[:n], y[:n]), variables),
            "ggn": gauss_newton(model, x[: args.ggn_samples], variables),
        }
        print("| bits | importance | acc % before ft | acc % after ft, per seed | mean | sd |")
        print("|---|---|---|---|---|---|")
        for bits in args.bits:
            for estimate in args.estimates:
                h = estimates.get(estimate)
                before, after = None, []
                for seed in args.seeds:
                    keras.utils.set_random_seed(seed)
                    c = clustered(model, bits, estimate, h, seed)
                    before = bench.accuracy(c, data)
                    bench.fit(c, data, 1, 3e-4, 128)
                    after.append(100 * bench.accuracy(c, data))
                print(
                    f"| {bits} | {estimate} | {100 * before:.2f} | "
                    f"{', '.join(f'{a:.2f}' for a in after)} | {np.mean(after):.2f} | "
                    f"{np.std(after):.2f} |",
                    flush=True,
                )
        print("\n| bits | method | Hessian-weighted | predicted rise | real rise | acc % |")
        print("|---|---|---|---|---|---|")
        for bits in args.bits:
            for line in diagnosis(model, data, bits, estimates["hessian"]):
                print(line, flush=True)
    print(f"\nLoad average at the end: {_machine.load_average()}")


if __name__ == "__main__":
    main()
