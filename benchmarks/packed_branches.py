"""Inception blocks on bitpacked tensors (`tfqnn.export.packed_graph`): A/B on whole zoo files.

For each network (GoogLeNet's ``"binary"`` preset by default; random
weights, 224x224x3, batch 1, 1000 classes), one Keras model exported four
ways: ``binary`` and ``binary-int8`` as `tfqnn.export.to_tflite` writes them
(max pools and concatenations read only by binary layers run on bitpacked
tensors), and both again with that rewrite turned off (``packed_graph.
packed_nodes`` returning nothing: float pools and concatenations, a
``TfqnnQuantize`` after each), beside the ``int8`` file of the float
preset (as zoo_latency.py builds it: the issue's target is binary >= 2x
faster than it). All files run in one process (tfqnn's kernels as a
delegate, XNNPACK for the builtins), interleaved (`_timing.interleaved`);
medians and 10th percentiles of single invokes. Each rewritten file's
output is compared with the file without the rewrite (they must be equal:
the rewrite computes the same bits).

Usage: python benchmarks/packed_branches.py [--models GoogLeNet] [--size 224]
                                            [--threads 1] [--rounds 7] [--seconds 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _machine
import _timing
import numpy as np
import zoo_latency
from _quiet import quiet


def export(model: Any, variant: str, packed: bool, samples: int) -> bytes:
    """`model`'s `variant` file (zoo_latency.convert), with or without the rewrite."""
    from tfqnn.export import packed_graph

    original = packed_graph.packed_nodes
    if not packed:
        packed_graph.packed_nodes = lambda *args: {}  # type: ignore[assignment]
    try:
        return zoo_latency.convert(model, variant, samples)
    finally:
        packed_graph.packed_nodes = original  # type: ignore[assignment]


def build(network: str, size: int, samples: int, directory: Path) -> list[zoo_latency.Entry]:
    """The five files of `network`: binary and binary-int8 with and without, and int8."""
    import keras

    entries = []
    for variant, packed in (
        ("binary", True),
        ("binary", False),
        ("binary-int8", True),
        ("binary-int8", False),
        ("int8", False),
    ):
        keras.utils.set_random_seed(0)
        with quiet():
            source = "float32" if variant == "int8" else "binary"
            model = zoo_latency.build_keras(network, source, size)
        start = time.perf_counter()
        data = export(model, variant, packed, samples)
        label = variant if variant == "int8" else f"{variant}{'' if packed else ' unpacked'}"
        path = directory / f"{network}_{label.replace(' ', '_')}.tflite"
        path.write_bytes(data)
        entries.append(zoo_latency.Entry(network, label, path, len(data)))
        print(
            f"  {network} {label}: {len(data) / 1e6:.2f} MB ({time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        keras.backend.clear_session()
    return entries


def main(argv: list[str] | None = None) -> int:
    """Builds the files, times them interleaved, prints the table and the output check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="GoogLeNet")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--samples", type=int, default=8, help="int8 calibration inputs")
    args = parser.parse_args(argv)
    with quiet():
        import keras
        import tensorflow as tf

        import tfqnn
    print(_machine.header({"TensorFlow": tf.__version__, "Keras": keras.__version__}))
    print(
        f"{args.size}x{args.size}x3, batch 1, {args.threads} thread(s), {args.rounds} "
        f"interleaved rounds, ~{args.seconds:g} s per file; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )
    library = str(tfqnn.lite.library_path())
    with tempfile.TemporaryDirectory(prefix="tfqnn_packed_") as tmp:
        entries = []
        for network in args.models.split(","):
            entries += build(network, args.size, args.samples, Path(tmp))
        pairs = []
        for entry in entries:
            binary = entry.variant != "int8"
            data = entry.path.read_bytes()
            entry.ops = {**tfqnn.lite.builtin_ops_in(data), **tfqnn.lite.custom_ops_in(data)}
            pairs.append(zoo_latency.make_interpreter(entry.path, binary, args.threads, library))
        samples = _timing.interleaved(
            [i.invoke for i in pairs], args.rounds, args.seconds, sizing_calls=2
        )
        for entry, timed in zip(entries, samples, strict=True):
            entry.median_ms[args.threads] = float(np.median(timed.wall_ns)) / 1e6
            entry.p10_ms[args.threads] = float(np.percentile(timed.wall_ns, 10)) / 1e6
        x = np.random.default_rng(2).standard_normal((1, args.size, args.size, 3), np.float32)
        outputs = {}
        for entry in entries:
            if entry.variant != "int8":
                interpreter = tfqnn.lite.Interpreter(model_path=str(entry.path))
                outputs[(entry.network, entry.variant)] = interpreter.predict(x)

    n = args.threads
    print(
        "| network | file | MB | ms (median) | ms (p10) | int8 / file (median, p10) | "
        "TfqnnQuantize | TfqnnBMaxPool2d | MAX_POOL_2D | CONCATENATION |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for network in args.models.split(","):
        mine = [e for e in entries if e.network == network]
        int8 = next(e for e in mine if e.variant == "int8")
        for entry in mine:
            ratio = ""
            if entry is not int8:
                ratio = (
                    f"{int8.median_ms[n] / entry.median_ms[n]:.2f}x, "
                    f"{int8.p10_ms[n] / entry.p10_ms[n]:.2f}x"
                )
            ops = entry.ops
            print(
                f"| {network} | {entry.variant} | {entry.file_bytes / 1e6:.2f} | "
                f"{entry.median_ms[n]:.3f} | {entry.p10_ms[n]:.3f} | {ratio} | "
                f"{ops.get('TfqnnQuantize', 0)} | {ops.get('TfqnnBMaxPool2d', 0)} | "
                f"{ops.get('MAX_POOL_2D', 0)} | {ops.get('CONCATENATION', 0)} |"
            )
        for variant in ("binary", "binary-int8"):
            a, b = outputs[(network, variant)], outputs[(network, f"{variant} unpacked")]
            print(
                f"{network} {variant}: outputs equal to the unpacked file's: "
                f"{bool(np.array_equal(a, b))} (largest difference {np.abs(a - b).max():.2e})"
            )
    end = time.strftime("%H:%M UTC", time.gmtime())
    print(f"\nLoad average at end: {_machine.load_average()}; {end}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
