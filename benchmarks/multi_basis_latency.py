"""TFLite latency of multi-basis (ABC-Net) layers against the binary and float32 exports.

Two workloads, random weights (latency does not depend on them), float
input, one thread:

* ``cnn``: the demo CNN of benchmarks/weight_procedures.py (three 3x3
  convolutions, two dense layers; the hidden layers quantized), batch
  ``--batch`` (32) of 28x28x1;
* ``conv``: one 3x3 "same" convolution, 128 -> 128 channels on 32x32, batch 1,
  between float layers, the ABC-Net layer alone.

Each is exported by `tfqnn.export.to_tflite` as float32 (no quantizers:
builtins, XNNPACK), binary (``ste_sign`` inputs and kernels: one
``TfqnnBconv2d`` per layer) and ABC-Net for (M, N) in (1, 1), (3, 1), (3, 3),
(5, 5) (``MultiBinary(M, axis=-1)`` kernels, ``MultiBinaryActivation(N)``
inputs: one binary op per layer with N input and M weight bases,
docs/lite_ops.md), and run by
`tfqnn.lite.Interpreter`. Timing (`_timing.interleaved`): ``--rounds``
rounds, each invoking every file in turn (the order rotating each round)
for about ``--seconds`` (at least 3 times); each invoke() is timed alone,
by the wall clock (perf_counter_ns) and by the CPU time of the calling
thread (thread_time_ns; with one thread every op runs on it), and the table
gives the medians in milliseconds, the CPU-time ratios to the
binary file (``pad_values=1``, as binary layers are usually trained) and to
the binary file with Keras' zero padding (``pad_values=0``, the padding of
the ABC-Net layers, whose (1, 1) layer is exactly that binary layer), and
the latter ratio divided by M x N. On a shared machine the wall
clock of invokes longer than a scheduler slice grows with the load, so
the ratios use CPU time. The issue's target (issue 12): latency grows at
most linearly in M x N against the single binary layer, i.e.
``ratio / (M N) <= 1``.

With ``--ops``, the zero-padded binary file and the ABC-Net (1, 1) file are
also timed op by op: every operator cut into a model of its own
(`zoo_op_profile.cut_models`), the cuts of both files interleaved
(`zoo_op_profile.time_cuts`, wall clock, ``--seconds`` each), the time of a
model with no operator subtracted.

Usage: python benchmarks/multi_basis_latency.py [--workloads cnn,conv]
    [--batch 32] [--rounds 5] [--seconds 0.5] [--ops]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

import tfqnn

sys.path.insert(0, os.path.dirname(__file__))
import _machine
import _timing
import weight_procedures

BASES = ((1, 1), (3, 1), (3, 3), (5, 5))


def conv_model(hidden):
    hidden = dict(hidden or {})
    if hidden.get("kernel_quantizer") == "ste_sign":
        hidden["pad_values"] = 1.0  # a SteSign() object: zero padding, as the ABC-Net layers
    return keras.Sequential(
        [
            keras.Input((32, 32, 128)),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantConv2D(128, 3, padding="same", use_bias=False, **hidden),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )


WORKLOADS = {
    "cnn": (weight_procedures.cnn, (28, 28, 1)),
    "conv": (conv_model, (32, 32, 128)),
}


def zero_padded_binary():
    """The binary layers with Keras' zero padding (pad_values=0), as the ABC-Net layers pad.

    A quantizer object instead of the name "ste_sign" keeps the builders from setting
    pad_values=1.
    """
    return dict(weight_procedures.binary_hidden(), kernel_quantizer=tfqnn.quantizers.SteSign())


BASELINE = "binary, pad 0"


def variants():
    yield "float32", None, 1
    yield "binary", weight_procedures.binary_hidden(), 1
    yield BASELINE, zero_padded_binary(), 1
    for m, n in BASES:
        yield f"ABC-Net M={m}, N={n}", weight_procedures.abc_hidden(m, n), m * n


def randomize(model, rng):
    for weight in model.weights:
        if "seed_generator" in weight.path:
            continue
        if weight.name == "moving_variance":
            weight.assign(rng.uniform(0.5, 2.0, weight.shape))
        elif not weight.name.endswith(("_shifts", "_scales")):
            weight.assign(rng.normal(0, 0.5, weight.shape))


def median_ms(interpreters, x, rounds, seconds):
    """Median wall and CPU milliseconds per invoke() of each interpreter (`_timing.interleaved`)."""
    for interpreter in interpreters.values():
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    calls = [interpreter.invoke for interpreter in interpreters.values()]
    samples = _timing.interleaved(calls, rounds, rounds * seconds, min_per_round=3, cpu=True)
    return (
        {name: float(np.median(t.wall_ns)) / 1e6 for name, t in zip(interpreters, samples)},
        {name: float(np.median(t.cpu_ns)) / 1e6 for name, t in zip(interpreters, samples)},
    )


PROFILED = (BASELINE, "ABC-Net M=1, N=1")


def print_op_times(files, rounds, seconds):
    """Per-op wall microseconds of each file's single-op cuts, the files' cuts interleaved."""
    import zoo_op_profile

    cuts = {name: zoo_op_profile.cut_models(data) for name, data in files.items()}
    everything = [c for ops, empty in cuts.values() for c in (empty, *ops)]
    zoo_op_profile.time_cuts(everything, str(tfqnn.lite.library_path()), rounds, seconds)
    for name, (ops, empty) in cuts.items():
        overhead = empty.median_us()
        net = [max(c.median_us() - overhead, 0.0) for c in ops]
        print(f"\n{name}: ops one by one (us, wall; {overhead:.1f} us of invoke overhead removed)")
        print("| # | op | shapes | us |\n|---|---|---|---|")
        for c, us in zip(ops, net):
            print(f"| {c.index} | {c.kind} | {c.shapes} | {us:.1f} |")
        print(f"| | sum | | {sum(net):.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="cnn,conv")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--ops", action="store_true", help="also time the (1, 1) files op by op")
    args = parser.parse_args()
    print(_machine.header({"TensorFlow": tf.__version__, "Keras": keras.__version__}))
    rng = np.random.default_rng(0)
    for workload in args.workloads.split(","):
        build, shape = WORKLOADS[workload]
        batch = args.batch if workload == "cnn" else 1
        x = rng.normal(size=(batch, *shape)).astype(np.float32)
        interpreters, sizes, products, ops, files = {}, {}, {}, {}, {}
        for name, hidden, product in variants():
            keras.utils.set_random_seed(0)
            model = build(hidden)
            randomize(model, rng)
            data = tfqnn.export.to_tflite(model, batch_size=batch, verbose=0)
            interpreter = tfqnn.lite.Interpreter(model_content=data, num_threads=1)
            interpreter.allocate_tensors()
            actual = interpreter.predict(x)
            expected = model.predict(x, verbose=0)
            error = float(np.max(np.abs(actual - expected)) / (np.max(np.abs(expected)) + 1e-12))
            interpreters[name], sizes[name], products[name] = interpreter, len(data), product
            if name in PROFILED:
                files[name] = data
            counts = tfqnn.lite.custom_ops_in(data)
            ops[name] = sum(v for k, v in counts.items() if k in ("TfqnnBconv2d", "TfqnnBdense"))
            print(f"  {workload} {name}: {len(data):,} bytes, {counts}, max rel. error {error:.1e}")
        wall, cpu = median_ms(interpreters, x, args.rounds, args.seconds)
        print(f"\n{workload} (batch {batch}, 1 thread), load {_machine.load_average()}")
        print(
            "| export | binary ops | file bytes | wall ms | CPU ms | CPU vs binary "
            f"| CPU vs {BASELINE} | / (M N) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name in interpreters:
            ratio = cpu[name] / cpu["binary"]
            ratio0 = cpu[name] / cpu[BASELINE]
            per = f"{ratio0 / products[name]:.2f}" if name.startswith("ABC") else ""
            print(
                f"| {name} | {ops[name]} | {sizes[name]:,} | {wall[name]:.3f} | "
                f"{cpu[name]:.3f} | {ratio:.2f}x | {ratio0:.2f}x | {per} |"
            )
        if args.ops:
            print_op_times(files, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
