"""Clustered models as TFLite files: size and latency against the float32 export (issue 11).

For each network (random weights: size and latency do not depend on
training) the script clusters every kernel to ``--clusters`` centroids per
layer (`tfqnn.codebook.cluster`, k-means) and exports two files with
`tfqnn.export.to_tflite`:

* ``codebook``: the clustered model, each kernel stored as bit-packed
  indices plus its codebook and restored by one ``TfqnnCodebookDecode`` op
  (decoded once, when the interpreter is built);
* ``float32``: the same model stripped to float kernels
  (`tfqnn.codebook.strip`), the plain float export.

Both run in `tfqnn.lite.Interpreter` (ai-edge-litert, tfqnn's delegate,
XNNPACK for the builtins), one thread. In each of ``--rounds`` rounds every
(network, file, batch) runs its share of invokes in an order that rotates
from round to round, so both files see the same machine noise; each
``invoke()`` is timed alone (perf_counter_ns) and the table gives medians in
microseconds and the ratio codebook / float32. "load ms" is the median time
to build and allocate the interpreter (the codebook file decodes there).
"predicted" is `tfqnn.codebook.report`'s fixed-length size (indices,
codebooks, other parameters at 32 bits), the file should be within 1.15x
of it.

Targets (issue 11): file <= 1.15x the prediction; latency <= 1.2x float32.

Usage: python benchmarks/codebook_lite.py [--quick] [--clusters 16]
                                          [--rounds 5] [--invokes 200]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _machine

import tfqnn


def lenet_300_100() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="lenet_300_100",
    )


def lenet5() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(20, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(50, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(500, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="lenet5",
    )


def mobile_block() -> keras.Model:
    """Depthwise-separable convolutions (MobileNet-style) at 32x32x64."""
    return keras.Sequential(
        [
            keras.Input((32, 32, 64)),
            keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            keras.layers.Conv2D(128, 1, activation="relu"),
            keras.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(256, 1, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(100),
        ],
        name="mobile_block",
    )


def mlp_1024() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((1024,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="mlp_1024",
    )


NETWORKS = {
    "lenet_300_100": lenet_300_100,
    "lenet5": lenet5,
    "mobile_block": mobile_block,
    "mlp_1024": mlp_1024,
}


def build(data: bytes, shape: tuple[int, ...]) -> tfqnn.lite.Interpreter:
    interpreter = tfqnn.lite.Interpreter(model_content=data, num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, shape)
    interpreter.allocate_tensors()
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter


def load_ms(data: bytes, shape: tuple[int, ...], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        build(data, shape)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and invokes")
    parser.add_argument("--clusters", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--invokes", type=int, default=200)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.invokes = 2, 50
    batches = [int(b) for b in args.batches.split(",")]
    print(
        f"machine: {_machine.cpu_name()}, {os.cpu_count()} cores, {_machine.memory_gib()} GiB, "
        f"load {_machine.load_average()}; Python {platform.python_version()}, "
        f"TF/Keras {keras.__version__}, tfqnn {tfqnn.__version__}"
    )
    files = {}
    rows = []
    for name in args.networks.split(","):
        keras.utils.set_random_seed(0)
        model = NETWORKS[name]()
        clustered = tfqnn.codebook.cluster(model, args.clusters)
        report = tfqnn.codebook.report(clustered, print_fn=None)
        codebook = tfqnn.export.to_tflite(clustered, verbose=0)
        plain = tfqnn.export.to_tflite(tfqnn.codebook.strip(clustered), verbose=0)
        ops = tfqnn.lite.custom_ops_in(codebook)
        predicted = report.fixed_bits / 8
        x_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        files[name] = (codebook, plain, x_shape)
        rows.append((name, len(plain), len(codebook), predicted, ops.get("TfqnnCodebookDecode", 0)))
    print(f"\n{args.clusters} clusters per layer; sizes in bytes")
    print(
        f"{'network':<16}{'float32':>11}{'codebook':>11}{'predicted':>11}"
        f"{'file/pred':>10}{'float/file':>11}{'decode ops':>11}"
    )
    for name, plain_size, size, predicted, ops in rows:
        print(
            f"{name:<16}{plain_size:>11,}{size:>11,}{predicted:>11,.0f}"
            f"{size / predicted:>10.3f}{plain_size / size:>10.1f}x{ops:>11}"
        )

    interpreters = {}
    for name, (codebook, plain, x_shape) in files.items():
        for batch in batches:
            for kind, data in (("codebook", codebook), ("float32", plain)):
                interpreters[(name, batch, kind)] = build(data, (batch, *x_shape))
    times: dict[tuple[str, int, str], list[float]] = {key: [] for key in interpreters}
    keys = list(interpreters)
    for round_ in range(args.rounds):
        shift = round_ % len(keys)
        for key in keys[shift:] + keys[:shift]:
            interpreter = interpreters[key]
            for _ in range(args.invokes):
                start = time.perf_counter_ns()
                interpreter.invoke()
                times[key].append((time.perf_counter_ns() - start) / 1e3)
    print(
        f"\nlatency, one thread, median of {args.rounds} x {args.invokes} invokes (us); "
        "load: build + allocate (ms)"
    )
    print(
        f"{'network':<16}{'batch':>6}{'float32 us':>12}{'codebook us':>13}{'ratio':>8}"
        f"{'load f32':>10}{'load cb':>9}"
    )
    for name, (codebook, plain, x_shape) in files.items():
        for batch in batches:
            f32 = statistics.median(times[(name, batch, "float32")])
            cb = statistics.median(times[(name, batch, "codebook")])
            load_f = load_ms(plain, (batch, *x_shape))
            load_c = load_ms(codebook, (batch, *x_shape))
            print(
                f"{name:<16}{batch:>6}{f32:>12.1f}{cb:>13.1f}{cb / f32:>8.2f}"
                f"{load_f:>10.1f}{load_c:>9.1f}"
            )


if __name__ == "__main__":
    main()
