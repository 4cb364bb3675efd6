"""Training-step time of binarized models against the same float models.

For an MLP (784-512-512-10, batch 256), a CNN (conv32-conv64-fc10 on
32x32x3, batch 64) and the demo's CNN (examples/binarized_fashion_mnist.py,
28x28x1, batch 64), builds the binarized model (binary weights and
activations in the hidden layers, tfqnn layers) and the float model (the same
Keras layers without quantizers), and times ``train_on_batch`` in alternating
rounds so that both see the same machine noise. Prints the median step time
of each and the ratio binarized / float, all measured in this one run.

A second table times whole epochs of ``fit`` on the binarized demo CNN
(60000 samples, Fashion-MNIST's size) with and without
`tfqnn.callbacks.QuantizationMonitor` writing every epoch (with input
statistics on 256 samples); rounds alternate, each a 2-epoch ``fit`` whose
first epoch (tracing, the monitor's probe model) is not counted. It also
gives the median time of one write, and of the slowest (the first, which
builds the probe), and the median write over the median plain epoch: the
overhead measured without the noise of two whole-epoch timings.

Usage: python benchmarks/train_overhead.py [--rounds 15] [--steps 20] [--monitor-rounds 3]
       [--only-monitor]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import tfqnn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import _machine
import binarized_fashion_mnist as demo
from _epoch_clock import epoch_clock


def mlp(binarized):
    q = demo.BINARY if binarized else {"use_bias": False}
    return keras.Sequential(
        [
            keras.Input((784,)),
            tfqnn.layers.QuantDense(512, use_bias=False),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantDense(512, **q),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantDense(10, **q),
            keras.layers.Activation("softmax"),
        ]
    )


def cnn(binarized):
    q = demo.BINARY if binarized else {"use_bias": False}
    pad = {"pad_values": 1.0} if binarized else {}
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            tfqnn.layers.QuantConv2D(32, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(2),
            tfqnn.layers.QuantConv2D(64, 3, padding="same", **pad, **q),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            tfqnn.layers.QuantDense(10, **q),
            keras.layers.Activation("softmax"),
        ]
    )


def compiled(build, binarized):
    keras.utils.set_random_seed(0)
    model = build(binarized)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def time_steps(model, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def measure(name, build, input_shape, batch, rounds, steps):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *input_shape)).astype("float32")
    y = rng.integers(0, 10, batch)
    models = {"float": compiled(build, False), "binarized": compiled(build, True)}
    times = {kind: [] for kind in models}
    for model in models.values():  # trace and warm up
        time_steps(model, x, y, 5)
    for _ in range(rounds):
        for kind, model in models.items():
            times[kind].append(time_steps(model, x, y, steps))
    medians = {kind: statistics.median(t) * 1e3 for kind, t in times.items()}
    ratio = medians["binarized"] / medians["float"]
    print(
        f"| {name} | {batch} | {medians['float']:.2f} | {medians['binarized']:.2f} | {ratio:.2f}x |",
        flush=True,
    )
    return ratio


def measure_monitor(rounds, samples=60000, batch=64):
    """Epoch time with and without the monitor, and the time of one write."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((samples, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, samples)
    models = {
        kind: compiled(lambda b: demo.build_model((28, 28, 1), b, "demo"), True)
        for kind in ("plain", "monitor")
    }
    times = {kind: [] for kind in models}
    writes = []
    with tempfile.TemporaryDirectory() as log_dir:
        for _ in range(rounds):
            for kind, model in models.items():
                timer = epoch_clock(keras.callbacks.Callback)
                callbacks = [timer]
                if kind == "monitor":
                    monitor = tfqnn.callbacks.QuantizationMonitor(log_dir, data=x[:256])
                    write = monitor.write

                    def timed(step, write=write):
                        start = time.perf_counter()
                        write(step)
                        writes.append(time.perf_counter() - start)

                    monitor.write = timed
                    callbacks = [monitor, timer]  # the timer's epoch end follows the write
                model.fit(x, y, batch_size=batch, epochs=2, verbose=0, callbacks=callbacks)
                times[kind].extend(timer.wall[1:])
    medians = {kind: statistics.median(t) * 1e3 for kind, t in times.items()}
    overhead = medians["monitor"] / medians["plain"] - 1
    write = statistics.median(writes) * 1e3
    print(
        f"| demo CNN, {samples} samples, batch {batch} | {medians['plain']:.0f} | "
        f"{medians['monitor']:.0f} | {overhead * 100:+.1f} % | "
        f"{write:.0f} (first {max(writes) * 1e3:.0f}) | {write / medians['plain'] * 100:.1f} % |",
        flush=True,
    )
    return overhead


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--monitor-rounds", type=int, default=3)
    parser.add_argument("--only-monitor", action="store_true")
    args = parser.parse_args()
    print(_machine.header({"TensorFlow": tf.__version__, "Keras": keras.__version__}))
    if not args.only_monitor:
        measure_steps(args)
    print(
        f"\nQuantizationMonitor writing every epoch: median epoch of {args.monitor_rounds} "
        "rounds (the second epoch of each fit), rounds alternating.\n"
    )
    print("| model | ms/epoch | with monitor | overhead | ms/write | write / epoch |")
    print("|---|---|---|---|---|---|")
    measure_monitor(args.monitor_rounds)


def measure_steps(args):
    print(
        f"Median of {args.rounds} rounds of {args.steps} train_on_batch steps, rounds alternating.\n"
    )
    print("| model | batch | float ms/step | binarized ms/step | ratio |")
    print("|---|---|---|---|---|")
    measure("MLP 784-512-512-10", mlp, (784,), 256, args.rounds, args.steps)
    measure("CNN conv32-conv64-fc10, 32x32x3", cnn, (32, 32, 3), 64, args.rounds, args.steps)
    measure(
        "demo CNN (3 conv, 2 dense), 28x28x1",
        lambda binarized: demo.build_model((28, 28, 1), binarized, "demo"),
        (28, 28, 1),
        64,
        args.rounds,
        args.steps,
    )


if __name__ == "__main__":
    main()
