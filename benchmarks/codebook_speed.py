"""Clustering speed: the issue 11 targets on this machine.

Targets (2 cores): clustering a 10M-weight model at 16 clusters per layer
under 5 s, and exact 1-D k-means (``method="optimal"``) of 1M weights under
10 s. Times the numpy algorithms on Gaussian weights (float32, as kernels
are), each ``--repeats`` times, and prints medians: scalar k-means of a 10M
model of four layers (4M + 4M + 1.5M + 0.5M) and of one 10M layer; every
scalar method on 1M weights; product (d=4) and residual (2 stages) on a
1000x1000 kernel. The 10M model is also clustered end to end with
`tfqnn.codebook.cluster` (Dense layers; includes Keras weight copies).

Usage: python benchmarks/codebook_speed.py [--repeats 3] [--skip-model]
"""

import argparse
import os
import platform
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tfqnn import codebook

sys.path.insert(0, os.path.dirname(__file__))
import _machine


def median_seconds(fn, repeats):
    """Median wall and CPU (this process) seconds of ``fn``.

    The algorithms are single-threaded numpy, so on an idle machine CPU time
    equals wall time; on a shared one, CPU time is the cost that does not
    depend on what else runs.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {_machine.memory_gib()} GiB; "
        f"load {_machine.load_average()}; Python {platform.python_version()}, numpy "
        f"{np.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
    print(f"Median of {args.repeats} runs.\n")
    rng = np.random.default_rng(0)
    layers = [
        rng.normal(size=n).astype(np.float32) for n in (4_000_000, 4_000_000, 1_500_000, 500_000)
    ]
    big = rng.normal(size=10_000_000).astype(np.float32)
    million = rng.normal(size=1_000_000).astype(np.float32)
    matrix = rng.normal(size=(1000, 1000)).astype(np.float32)
    rows = [
        (
            "kmeans k=16, 10M weights in 4 layers",
            lambda: [codebook.kmeans(w, 16) for w in layers],
            5,
        ),
        ("kmeans k=16, one 10M layer", lambda: codebook.kmeans(big, 16), 5),
        ("optimal (exact) k=16, 1M weights", lambda: codebook.optimal(million, 16), 10),
        (
            "kmeans k=16 kmeans++ init, 1M",
            lambda: codebook.kmeans(million, 16, init="kmeans++"),
            None,
        ),
        ("uniform k=16, 1M", lambda: codebook.uniform(million, 16), None),
        (
            "ecsq k=16 lambda=0.05, 1M",
            lambda: codebook.ecsq(million, 16, lagrange_multiplier=0.05),
            None,
        ),
        ("weighted_entropy k=16, 1M", lambda: codebook.weighted_entropy(million, 16), None),
        (
            "product k=256 d=4, 1000x1000",
            lambda: codebook.product(matrix, 256, subvector_size=4),
            None,
        ),
        (
            "residual k=16 2 stages, 1000x1000",
            lambda: codebook.residual(matrix, 16, stages=2),
            None,
        ),
    ]
    print("| what | median wall s | median CPU s | target s |")
    print("|---|---|---|---|")
    for name, fn, target in rows:
        wall, cpu = median_seconds(fn, args.repeats)
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {target if target else '-'} |", flush=True)
    if not args.skip_model:
        model = keras.Sequential(
            [
                keras.Input((2000,)),
                keras.layers.Dense(2000),
                keras.layers.Dense(2000),
                keras.layers.Dense(750),
                keras.layers.Dense(666),
            ]
        )
        weights = sum(int(np.prod(v.shape)) for v in model.weights if v.name == "kernel")
        wall, cpu = median_seconds(lambda: codebook.cluster(model, 16, verbose=0), args.repeats)
        print(
            f"| cluster() of a {weights / 1e6:.1f}M-weight Dense model, k=16 | {wall:.2f} | "
            f"{cpu:.2f} | 5 |"
        )
    print(f"\nLoad average at the end: {_machine.load_average()}")


if __name__ == "__main__":
    main()
