"""Latency, file size and memory of the zoo's networks as TFLite files, binary against float and int8.

Batch 1 at 224x224x3 (``--size``), 1000 classes, random weights. For each
network the script builds four files:

* ``binary``: tfqnn's export (`tfqnn.export.to_tflite`), its binary layers as
  ``Tfqnn*`` custom ops, run by `tfqnn.lite.Interpreter` (tfqnn's kernels as
  a delegate, the other builtins in LiteRT/XNNPACK), the ops around them in
  float32;
* ``binary-int8``: the same model exported with
  ``int8_representative_data`` (the same random calibration inputs as the
  int8 file): the binary ops stay tfqnn ops and read and write int8 tensors,
  every other op becomes an int8 builtin (what larq-compute-engine users
  deploy); float input and output;
* ``float32``: the same architecture with every tfqnn quantizer removed
  (`float_architecture`: no input or kernel quantizer, no weight clip, zero
  padding; ``QuantActivation`` becomes the identity), converted by
  ``tf.lite.TFLiteConverter`` and run by ai-edge-litert (XNNPACK);
* ``int8``: that float model with full-integer post-training quantization
  (``TFLITE_BUILTINS_INT8``, calibrated on random normal inputs, float input
  and output), XNNPACK.

The classic networks (``AlexNet``, ``VGG16``, ``GoogLeNet``, ``ResNet18``,
``ResNet34``) give their ``quantization="binary"`` preset as the binary files
and their ``"float"`` preset (ReLU, zero padding) as float32 and int8. As the
reference a user would pick instead, ``keras.applications.MobileNetV2`` and
``MobileNetV3Small`` (``weights=None``) give float32 and int8 files.

Timing: every file is loaded once per thread count (``--threads``, 1 and 2 by
default) in this process. In each of ``--rounds`` rounds every (file,
threads) pair runs its share of invokes, in an order that rotates from round
to round, so all models see the same machine noise; each invoke() is timed
alone (perf_counter_ns, Python call included) and the table gives medians in
milliseconds (the targets also as ratios of 10th percentiles, for a loaded
machine; the JSON has both). Memory: a fresh subprocess per file (ai-edge-litert only, with
tfqnn's kernel library for binary files) loads the file, allocates and
invokes once; "peak MB" is its peak resident set (VmHWM) minus its resident
set before the interpreter was created, i.e. model, arena and kernel buffers
as the OS sees them (C++ allocations included, which tracemalloc would miss).

LiteRT's Python interpreter has no op profiler (only the C++
``benchmark_model`` tool does), so instead of the time per op kind the script
prints each file's op census (op kinds and counts, ``DELEGATE`` for the
nodes XNNPACK took over).

Targets (issue 14): QuickNetSmall >= 1.7x faster than MobileNetV2 int8,
>= 10x than its float32 and >= 3x than its int8 file; every binary network
>= 5x faster than its float32 and >= 2x than its int8 file; 2 threads >= 1.7x
faster than 1 on QuickNet (binary). Each is computed for the ``binary``
file and again for the ``binary-int8`` file.

Usage: python benchmarks/zoo_latency.py [--quick] [--size 224] [--models A,B]
                                        [--threads 1,2] [--rounds 5]
                                        [--seconds 2.0] [--json PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _machine
import _timing
import numpy as np
from _quiet import quiet

LITERATURE = (
    "QuickNetSmall",
    "QuickNet",
    "QuickNetLarge",
    "BiRealNet",
    "BinaryResNetE18",
    "BinaryAlexNet",
    "XNORNet",
    "DoReFaNet",
)
CLASSIC = ("AlexNet", "VGG16", "GoogLeNet", "ResNet18", "ResNet34")
REFERENCES = ("MobileNetV2", "MobileNetV3Small")
ALL_MODELS = LITERATURE + CLASSIC + REFERENCES
QUICK_MODELS = ("QuickNetSmall", "MobileNetV2")
VARIANTS = ("binary", "binary-int8", "float32", "int8")
BINARY_VARIANTS = ("binary", "binary-int8")  # tfqnn's exports, run with its kernels
# The file whose Keras model another variant converts again (same weights).
SOURCE_VARIANT = {"binary-int8": "binary", "int8": "float32"}

TARGET_VS_MOBILENET_INT8 = 1.7  # QuickNetSmall binary against MobileNetV2 int8
TARGET_QUICKNETSMALL_F32 = 10.0
TARGET_QUICKNETSMALL_INT8 = 3.0
TARGET_BINARY_F32 = 5.0
TARGET_BINARY_INT8 = 2.0
TARGET_TWO_THREADS = 1.7  # QuickNet binary, 2 threads against 1


@dataclass
class Entry:
    """One TFLite file of one network: what it is and what was measured."""

    network: str
    variant: str  # one of VARIANTS
    path: Path
    file_bytes: int
    ops: dict[str, int] = field(default_factory=dict)
    peak_mb: float | None = None
    median_ms: dict[int, float] = field(default_factory=dict)  # threads -> ms
    p10_ms: dict[int, float] = field(default_factory=dict)  # threads -> 10th percentile, ms


# ---- models --------------------------------------------------------------------


def float_architecture(model: Any) -> Any:
    """The same network with every tfqnn quantizer removed (fresh random weights).

    Input and kernel quantizers become None, weight clips go, "same" padding
    pads with 0, and ``QuantActivation`` becomes the identity: the float
    network a user would deploy with this architecture.
    """
    import keras

    from tfqnn.layers import QuantActivation

    def clone(layer: Any) -> Any:
        if isinstance(layer, QuantActivation):
            return keras.layers.Identity(name=layer.name)
        names = getattr(layer, "quantizers", None)
        if names is None:
            return layer.__class__.from_config(layer.get_config())
        config = layer.get_config()
        for name in names:
            config[name] = None
        for key in ("kernel_constraint", "depthwise_constraint", "pointwise_constraint"):
            if key in config:
                config[key] = None
        if "pad_values" in config:
            config["pad_values"] = 0.0
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def build_keras(network: str, variant: str, size: int) -> Any:
    """The Keras model whose export is `variant` of `network` (1000 classes, random weights)."""
    import keras

    import tfqnn

    shape = (size, size, 3)
    if network in REFERENCES:
        builder = getattr(keras.applications, network)
        return builder(input_shape=shape, weights=None, classes=1000)
    binary = variant in BINARY_VARIANTS
    if network in CLASSIC:
        preset = "binary" if binary else "float"
        return tfqnn.zoo.get(network)(input_shape=shape, quantization=preset)
    model = tfqnn.zoo.get(network)(input_shape=shape)
    return model if binary else float_architecture(model)


def calibration_inputs(shape: tuple[int, ...], samples: int, seed: int = 0) -> np.ndarray:
    """``samples`` random normal inputs of ``shape``: the int8 files' calibration data.

    The same for the ``int8`` and ``binary-int8`` files of a network.
    """
    rng = np.random.default_rng(seed)
    return rng.standard_normal((samples, *shape)).astype(np.float32)


def convert(model: Any, variant: str, samples: int) -> bytes:
    """`model` as the TFLite file of `variant` (binary ones: tfqnn's exporter).

    The int8 files calibrate on `calibration_inputs` (``samples`` of them).
    """
    import tensorflow as tf

    import tfqnn

    calibration = calibration_inputs(tuple(model.input_shape[1:]), samples)
    with quiet():
        if variant == "binary":
            return tfqnn.export.to_tflite(model, batch_size=1, verbose=0)
        if variant == "binary-int8":
            return tfqnn.export.to_tflite(
                model, batch_size=1, int8_representative_data=calibration, verbose=0
            )
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if variant == "int8":

            def representative() -> Iterator[list[np.ndarray]]:
                for sample in calibration:
                    yield [sample[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        data: bytes = converter.convert()
        return data


def variants_of(network: str) -> tuple[str, ...]:
    """The files of `network`: float32 and int8 for the references, else all four."""
    return ("float32", "int8") if network in REFERENCES else VARIANTS


def build_entries(
    networks: list[str],
    size: int,
    samples: int,
    directory: Path,
    verbose: bool = True,
    builder: Callable[[str, str, int], Any] = build_keras,
) -> list[Entry]:
    """Builds, converts and writes every file; returns their entries in table order.

    ``builder(network, variant, size)`` gives the Keras model of each file
    (`build_keras` by default; the int8 and binary-int8 files reuse the model
    of their `SOURCE_VARIANT`, so they hold the same weights).
    """
    import keras

    entries = []
    for network in networks:
        models: dict[str, Any] = {}
        for variant in variants_of(network):
            start = time.perf_counter()
            keras.utils.set_random_seed(0)
            try:
                model = models.get(SOURCE_VARIANT.get(variant, ""))
                if model is None:
                    with quiet():
                        model = builder(network, variant, size)
                data = convert(model, variant, samples)
            except Exception as error:  # noqa: BLE001 -- report it, time the others
                print(f"  {network} {variant} FAILED: {type(error).__name__}: {error}")
                continue
            models[variant] = model
            path = directory / f"{network}_{variant}.tflite"
            path.write_bytes(data)
            entries.append(Entry(network, variant, path, len(data)))
            if verbose:
                print(
                    f"  {network} {variant}: {len(data) / 1e6:.2f} MB "
                    f"({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            del model, data
        del models
        keras.backend.clear_session()
        gc.collect()
    return entries


# ---- running -------------------------------------------------------------------


def make_interpreter(path: Path, binary: bool, threads: int, library: str | None) -> Any:
    """ai-edge-litert's interpreter, with tfqnn's kernels as a delegate for binary files."""
    from ai_edge_litert import interpreter as litert

    delegates = []
    if binary:
        if library is None:
            raise ValueError("Invalid library=None: binary files need tfqnn's kernel library")
        delegates.append(litert.load_delegate(library, options={"num_threads": str(threads)}))
    interpreter = litert.Interpreter(
        model_path=str(path), num_threads=threads, experimental_delegates=delegates
    )
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    x = np.random.default_rng(1).standard_normal(detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    if not np.all(np.isfinite(output)):
        raise RuntimeError(f"{path.name}: non-finite output")
    return interpreter


def memory_worker(path: str, binary: bool, library: str | None) -> None:
    """Subprocess: peak RSS growth (MB) from creating, allocating and invoking one file."""
    from ai_edge_litert import interpreter as _  # noqa: F401 -- imports before the baseline

    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
        raise RuntimeError(f"no {key} in /proc/self/status")

    before = status("VmRSS")
    interpreter = make_interpreter(Path(path), binary, 1, library)
    peak = status("VmHWM")
    print(json.dumps({"peak_mb": (peak - before) / 1024}))
    del interpreter


def measure_memory(entry: Entry, library: str | None) -> float | None:
    """Runs `memory_worker` for `entry` in a fresh process; None where /proc is missing."""
    if not Path("/proc/self/status").exists():
        return None
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", str(entry.path)]
    if entry.variant in BINARY_VARIANTS:
        command += ["--library", str(library)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"memory worker for {entry.path.name} failed:\n{result.stderr[-3000:]}")
    peak: float = json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]
    return peak


def op_census(interpreter: Any) -> dict[str, int]:
    """{op name: count} of an allocated interpreter's nodes, most frequent first."""
    counts: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def time_entries(
    entries: list[Entry],
    threads: list[int],
    rounds: int,
    seconds: float,
    library: str | None,
    min_invokes: int = 1,
    verbose: bool = True,
) -> None:
    """Median ms per (entry, threads) over interleaved rounds; fills ``entry.median_ms``.

    `_timing.interleaved`: each pair gets about `seconds` of invokes in all
    (at least `min_invokes` per round); the order of the pairs rotates by
    one each round.
    """
    pairs = []
    for entry in entries:
        for n in threads:
            binary = entry.variant in BINARY_VARIANTS
            interpreter = make_interpreter(entry.path, binary, n, library)
            if n == threads[0]:
                entry.ops = op_census(interpreter)
            pairs.append((entry, n, interpreter))
    calls = [interpreter.invoke for _, _, interpreter in pairs]
    samples = _timing.interleaved(
        calls, rounds, seconds, min_per_round=min_invokes, sizing_calls=2, verbose=verbose
    )
    for (entry, n, _), timed in zip(pairs, samples, strict=True):
        entry.median_ms[n] = float(np.median(timed.wall_ns)) / 1e6
        entry.p10_ms[n] = float(np.percentile(timed.wall_ns, 10)) / 1e6


# ---- the table -----------------------------------------------------------------


def _find(entries: list[Entry], network: str, variant: str) -> Entry | None:
    for entry in entries:
        if entry.network == network and entry.variant == variant:
            return entry
    return None


def _ratio(slow: float | None, fast: float | None) -> float | None:
    return slow / fast if slow and fast else None


def table_rows(entries: list[Entry], threads: list[int]) -> list[dict[str, Any]]:
    """One row per file: size, memory, medians, and speed-ups of binary files."""
    rows = []
    for entry in entries:
        row: dict[str, Any] = {
            "network": entry.network,
            "variant": entry.variant,
            "file_mb": entry.file_bytes / 1e6,
            "peak_mb": entry.peak_mb,
            "ms": {n: entry.median_ms.get(n) for n in threads},
            "p10_ms": {n: entry.p10_ms.get(n) for n in threads},
        }
        if entry.variant in BINARY_VARIANTS:
            f32, int8 = (
                _find(entries, entry.network, "float32"),
                _find(entries, entry.network, "int8"),
            )
            row["vs_float32"] = {
                n: _ratio(f32.median_ms.get(n) if f32 else None, entry.median_ms.get(n))
                for n in threads
            }
            row["vs_int8"] = {
                n: _ratio(int8.median_ms.get(n) if int8 else None, entry.median_ms.get(n))
                for n in threads
            }
        if len(threads) > 1:
            row["threads_speedup"] = _ratio(
                entry.median_ms.get(threads[0]), entry.median_ms.get(threads[-1])
            )
        rows.append(row)
    return rows


def _fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def print_table(rows: list[dict[str, Any]], threads: list[int]) -> None:
    """`table_rows` as a Markdown table."""
    head = ["network", "file", "file MB", "peak MB"]
    head += [f"{n} thread{'s' if n > 1 else ''} ms" for n in threads]
    head += [f"vs float32 / int8 ({n}T)" for n in threads]
    if len(threads) > 1:
        head.append(f"{threads[0]}T/{threads[-1]}T")
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")
    for row in rows:
        cells = [row["network"], row["variant"], _fmt(row["file_mb"]), _fmt(row["peak_mb"], 0)]
        cells += [_fmt(row["ms"][n]) for n in threads]
        for n in threads:
            if row["variant"] in BINARY_VARIANTS:
                cells.append(
                    f"{_fmt(row['vs_float32'][n], 1, 'x')} / {_fmt(row['vs_int8'][n], 1, 'x')}"
                )
            else:
                cells.append("")
        if len(threads) > 1:
            cells.append(_fmt(row["threads_speedup"], 2, "x"))
        print("| " + " | ".join(cells) + " |")


def targets(entries: list[Entry], threads: list[int]) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured ratio and met / missed (None: not timed).

    Each target is computed for the ``binary`` file and for the
    ``binary-int8`` file (the entry's ``"file"``). ``"measured"`` is the
    ratio of the medians, which decides met / missed; ``"measured_p10"`` the
    ratio of the 10th percentiles, the invokes least disturbed by other jobs
    on a loaded machine.
    """
    result = _targets(entries, threads, "median_ms")
    for goal, p10 in zip(result, _targets(entries, threads, "p10_ms"), strict=True):
        goal["measured_p10"] = p10["measured"]
    return [t for t in result if t["measured"] is not None]


def _targets(entries: list[Entry], threads: list[int], statistic: str) -> list[dict[str, Any]]:
    """`targets` from one statistic of the entries (``"median_ms"`` or ``"p10_ms"``)."""
    one = threads[0]
    result = []

    def ms(network: str, variant: str, n: int = one) -> float | None:
        entry = _find(entries, network, variant)
        return getattr(entry, statistic).get(n) if entry else None

    def add(name: str, file: str, value: float | None, goal: float) -> None:
        met = None if value is None else value >= goal
        result.append({"target": name, "file": file, "goal": goal, "measured": value, "met": met})

    for variant in BINARY_VARIANTS:
        q = ms("QuickNetSmall", variant)
        add(
            f"QuickNetSmall {variant} vs MobileNetV2 int8 ({one}T)",
            variant,
            _ratio(ms("MobileNetV2", "int8"), q),
            TARGET_VS_MOBILENET_INT8,
        )
        add(
            f"QuickNetSmall {variant} vs its float32 ({one}T)",
            variant,
            _ratio(ms("QuickNetSmall", "float32"), q),
            TARGET_QUICKNETSMALL_F32,
        )
        add(
            f"QuickNetSmall {variant} vs its int8 ({one}T)",
            variant,
            _ratio(ms("QuickNetSmall", "int8"), q),
            TARGET_QUICKNETSMALL_INT8,
        )
    for entry in entries:
        # QuickNetSmall's own, stricter targets are above.
        if entry.variant not in BINARY_VARIANTS or entry.network == "QuickNetSmall":
            continue
        b = getattr(entry, statistic).get(one)
        add(
            f"{entry.network} {entry.variant} vs its float32 ({one}T)",
            entry.variant,
            _ratio(ms(entry.network, "float32"), b),
            TARGET_BINARY_F32,
        )
        add(
            f"{entry.network} {entry.variant} vs its int8 ({one}T)",
            entry.variant,
            _ratio(ms(entry.network, "int8"), b),
            TARGET_BINARY_INT8,
        )
    if len(threads) > 1:
        for variant in BINARY_VARIANTS:
            add(
                f"QuickNet {variant}, {threads[-1]} threads vs {one}",
                variant,
                _ratio(ms("QuickNet", variant, one), ms("QuickNet", variant, threads[-1])),
                TARGET_TWO_THREADS,
            )
    return result


def print_targets(rows: list[dict[str, Any]]) -> None:
    """`targets` as a Markdown table."""
    print("\n| target | goal | measured (medians) | (10th percentiles) | |")
    print("|---|---|---|---|---|")
    for t in rows:
        verdict = "met" if t["met"] else "MISSED"
        p10 = _fmt(t.get("measured_p10"), 2, "x")
        print(f"| {t['target']} | >= {t['goal']:g}x | {t['measured']:.2f}x | {p10} | {verdict} |")


def print_census(entries: list[Entry]) -> None:
    """Each file's op census, one line per file."""
    print(
        "\nOp census (LiteRT's Python interpreter has no op profiler; DELEGATE = "
        "nodes XNNPACK or tfqnn's delegate took over):\n"
    )
    for entry in entries:
        ops = ", ".join(f"{name} {count}" for name, count in entry.ops.items())
        print(f"- {entry.network} {entry.variant}: {ops}")


# ---- main ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with the --quick defaults filled in; errors exit via argparse."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {', '.join(QUICK_MODELS)}, 2 rounds, 0.5 s per file",
    )
    parser.add_argument("--size", type=int, default=224, help="input height and width [224]")
    parser.add_argument(
        "--models", help=f"comma-separated, of {', '.join(ALL_MODELS)} [all; --quick: a few]"
    )
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts [1,2]")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds [5]")
    parser.add_argument(
        "--seconds", type=float, default=None, help="timed seconds per file and thread count [2]"
    )
    parser.add_argument(
        "--samples", type=int, default=None, help="random calibration inputs for int8 [8]"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        return args
    default_models = QUICK_MODELS if args.quick else ALL_MODELS
    args.models = args.models.split(",") if args.models else list(default_models)
    unknown = [m for m in args.models if m not in ALL_MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; expected some of {', '.join(ALL_MODELS)}")
    try:
        args.threads = [int(n) for n in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads {args.threads!r}: expected comma-separated integers")
    if not args.threads or min(args.threads) < 1:
        parser.error("--threads: expected thread counts >= 1")
    defaults = (2, 0.5, 2) if args.quick else (5, 2.0, 8)
    args.rounds = args.rounds if args.rounds is not None else defaults[0]
    args.seconds = args.seconds if args.seconds is not None else defaults[1]
    args.samples = args.samples if args.samples is not None else defaults[2]
    if args.rounds < 1 or args.seconds < 0 or args.samples < 1 or args.size < 8:
        parser.error("--rounds and --samples must be >= 1, --seconds >= 0, --size >= 8")
    return args


def print_machine(versions: dict[str, str], args: argparse.Namespace) -> None:
    """The machine, versions and settings, before the tables."""
    print(_machine.header(versions))
    print(
        f"Input {args.size}x{args.size}x3, batch 1, 1000 classes, random weights; threads "
        f"{args.threads}; median of every invoke() over {args.rounds} interleaved rounds, "
        f"~{args.seconds:g} s per file and thread count; int8 calibrated on {args.samples} "
        "random inputs.\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Builds, measures and prints; the hidden --memory-worker mode runs one memory probe."""
    args = parse_args(argv)
    if args.memory_worker:
        memory_worker(args.memory_worker, args.library is not None, args.library)
        return 0
    wall = time.perf_counter()
    with quiet():  # TensorFlow's start-up logs
        import ai_edge_litert
        import keras
        import tensorflow as tf

        import tfqnn

    versions = {
        "TensorFlow": tf.__version__,
        "Keras": keras.__version__,
        "ai-edge-litert": getattr(ai_edge_litert, "__version__", "?"),
        "tfqnn": tfqnn.__version__,
    }
    print_machine(versions, args)
    library = str(tfqnn.lite.library_path())
    with tempfile.TemporaryDirectory(prefix="tfqnn_zoo_bench_") as tmp:
        print("Building and converting ...", file=sys.stderr, flush=True)
        entries = build_entries(args.models, args.size, args.samples, Path(tmp))
        if not args.no_memory:
            print("Peak memory, one process per file ...", file=sys.stderr, flush=True)
            for entry in entries:
                entry.peak_mb = measure_memory(entry, library)
        print("Timing ...", file=sys.stderr, flush=True)
        time_entries(entries, args.threads, args.rounds, args.seconds, library)
    rows = table_rows(entries, args.threads)
    print_table(rows, args.threads)
    goals = targets(entries, args.threads)
    print_targets(goals)
    print_census(entries)
    load_end = _machine.load_average()
    seconds = time.perf_counter() - wall
    print(f"\nLoad average at end: {load_end}; wall time {seconds:.0f} s")
    if args.json:
        document = {
            "machine": {
                "cpu": _machine.cpu_name(),
                "logical_cpus": os.cpu_count(),
                "memory_gib": _machine.memory_gib(),
                "load_average_end": load_end,
            },
            "versions": versions,
            "settings": {
                k: getattr(args, k) for k in ("size", "threads", "rounds", "seconds", "samples")
            },
            "rows": rows,
            "targets": goals,
            "ops": {f"{e.network}|{e.variant}": e.ops for e in entries},
            "wall_seconds": seconds,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
