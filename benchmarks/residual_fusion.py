"""The fused shortcut of TfqnnBconv2d (option ``residual``): A/B on whole zoo files.

For each network, two binary exports of the same Keras model (random
weights, 224x224x3, batch 1): ``fused``, as `tfqnn.export.to_tflite` writes
it (each binary conv, BatchNorm, ``+ shortcut`` one op), and ``add``, with
the fusion turned off (``plan_groups(..., fuse_residuals=False)``: the op
writes float, a builtin ``ADD`` adds the shortcut). Both run in one
process with tfqnn's kernels as a delegate and XNNPACK for the builtins,
interleaved; medians and 10th percentiles of single invokes (the latter
for loaded machines), and
the outputs' largest difference (float rounding can flip a sign deep in a
random-weight network, docs/zoo.md).

With ``--int8`` both files are binary-int8 exports (``int8_representative_data``,
zoo_latency.py's 8 calibration inputs): ``fused`` with the int8 shortcut
``ADD``s folded into the ops (`tfqnn.export.int8_fusion`, an int8
``residual``), ``add`` with that fold off (the builtin int8 ``ADD``s kept).
The table also counts each file's delegate partitions (tfqnn's and
XNNPACK's ``DELEGATE`` nodes after both delegates applied).

Usage: python benchmarks/residual_fusion.py [--models BiRealNet,BinaryResNetE18]
                                            [--size 224] [--threads 1] [--rounds 7]
                                            [--seconds 2] [--int8]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import _machine
import numpy as np
import zoo_latency
from _quiet import quiet


def time_interleaved(entries: list, args: argparse.Namespace, library: str) -> dict[str, list[int]]:
    """Invoke times (ns) per entry: rounds of ~seconds/rounds per file, the order rotating."""
    interpreters = []
    for entry in entries:
        interpreter = zoo_latency.make_interpreter(entry.path, True, args.threads, library)
        entry.ops = zoo_latency.op_census(interpreter)
        interpreters.append(interpreter)
    start = time.perf_counter_ns()
    interpreters[0].invoke()
    per_round = max(
        1, round(args.seconds / args.rounds / ((time.perf_counter_ns() - start) * 1e-9))
    )
    samples: dict[str, list[int]] = {entry.network: [] for entry in entries}
    for r in range(args.rounds):
        order = list(range(len(entries)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            invoke = interpreters[i].invoke
            invoke()
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                invoke()
                samples[entries[i].network].append(time.perf_counter_ns() - t0)
    for entry in entries:
        entry.median_ms[args.threads] = float(np.median(samples[entry.network])) / 1e6
    return samples


def main(argv: list[str] | None = None) -> int:
    """Builds both files per network, times them interleaved, prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="BiRealNet,BinaryResNetE18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument(
        "--int8", action="store_true", help="binary-int8 files: the int8 shortcut fold on / off"
    )
    args = parser.parse_args(argv)
    with quiet():
        import keras
        import tensorflow as tf

        import tfqnn
        from tfqnn.export import converter, int8_fusion, plan

    print(
        f"Machine: {_machine.cpu_name()}, {os.cpu_count()} logical CPUs, "
        f"{_machine.memory_gib()} GiB; load average at start {_machine.load_average()}"
    )
    print(
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, tfqnn {tfqnn.__version__}; {args.size}x{args.size}x3, "
        f"batch 1, {args.threads} thread(s), {args.rounds} interleaved rounds of "
        f"~{args.seconds:g} s per file{'; binary-int8 files' if args.int8 else ''}\n"
    )
    library = str(tfqnn.lite.library_path())
    original = plan.plan_groups
    original_fold = int8_fusion._int8_residuals
    entries = []
    with tempfile.TemporaryDirectory(prefix="tfqnn_residual_") as tmp:
        for network in args.models.split(","):
            keras.utils.set_random_seed(0)
            with quiet():
                model = tfqnn.zoo.get(network)(input_shape=(args.size, args.size, 3))
            for label, fuse in (("fused", True), ("add", False)):

                def planner(m, fuse_residuals=True, _fuse=fuse):  # type: ignore[no-untyped-def]
                    return original(m, fuse_residuals=fuse_residuals and _fuse)

                def no_fold(*_: object) -> int:
                    return 0

                kwargs = {}
                if args.int8:
                    shape = (args.size, args.size, 3)
                    kwargs["int8_representative_data"] = zoo_latency.calibration_inputs(shape, 8)
                    int8_fusion._int8_residuals = original_fold if fuse else no_fold
                else:
                    converter.plan_groups = planner
                try:
                    with quiet():
                        data = tfqnn.export.to_tflite(model, batch_size=1, verbose=0, **kwargs)
                finally:
                    converter.plan_groups = original
                    int8_fusion._int8_residuals = original_fold
                path = Path(tmp) / f"{network}_{label}.tflite"
                path.write_bytes(data)
                entries.append(zoo_latency.Entry(f"{network} {label}", "binary", path, len(data)))
            keras.backend.clear_session()
        samples = time_interleaved(entries, args, library)
        x = np.random.default_rng(2).standard_normal((1, args.size, args.size, 3), np.float32)
        outputs = {}
        for entry in entries:
            interpreter = tfqnn.lite.Interpreter(model_path=str(entry.path))
            outputs[entry.network] = interpreter.predict(x)
    print(
        "| file | ADD ops | partitions | ms (median) | ms (10th percentile) "
        "| add / fused (median, p10) |"
    )
    print("|---|---|---|---|---|---|")

    def p10(entry: zoo_latency.Entry) -> float:
        return float(np.percentile(samples[entry.network], 10)) / 1e6

    for fused, add in zip(entries[0::2], entries[1::2], strict=True):
        ratio = add.median_ms[args.threads] / fused.median_ms[args.threads]
        for entry in (fused, add):
            ratios = f"{ratio:.3f}x, {p10(add) / p10(fused):.3f}x" if entry is add else ""
            print(
                f"| {entry.network} | {entry.ops.get('ADD', 0)} | "
                f"{entry.ops.get('DELEGATE', 0)} | "
                f"{entry.median_ms[args.threads]:.3f} | {p10(entry):.3f} | {ratios} |"
            )
        diff = np.abs(outputs[fused.network] - outputs[add.network]).max()
        print(f"|  | largest output difference {diff:.2e} | | | | |")
    print(
        f"\nLoad average at end: {_machine.load_average()}; {time.strftime('%H:%M UTC', time.gmtime())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
