"""Latency of tfqnn's binary TFLite ops against TFLite's float32 and int8 builtins.

One thread. For each shape (dense 1024x1024 at batch 1 and 16, dense
4096x4096 at batch 1, 3x3 SAME convolutions 64->64 at 56x56 and 256->256 at
14x14) the script converts three models of the same shape:

* f32: a Keras `Dense` / `Conv2D` (with bias) through
  `tf.lite.TFLiteConverter.from_keras_model`, run by ai-edge-litert with its
  default XNNPACK delegate;
* int8: the same layer with full-integer post-training quantization
  (`TFLITE_BUILTINS_INT8`, int8 input and output, so only the op is timed),
  also run by XNNPACK;
* binary: a binary `QuantDense` / `QuantConv2D` (`ste_sign` on input and
  kernel, no bias, `pad_values=1`) through `tfqnn.export.to_tflite`, i.e.
  `TfqnnQuantize` (bitpacking of the float input) + `TfqnnBdense` /
  `TfqnnBconv2d` with float output, run by `tfqnn.lite.Interpreter`.

tfqnn's kernels read `TFQNN_ISA` once per process, so the binary models run
in one worker process per instruction set the CPU supports (scalar, avx2,
avx512), and the builtin models in one more worker (plain ai-edge-litert, no
tfqnn library). The script calls itself with a hidden `--worker` flag; the
workers take commands as JSON lines on stdin and answer on stdout. Only one
worker runs at a time: the rounds interleave the variants of each case
(their order rotating), so every variant sees the same machine noise. Each
invoke() is timed alone (perf_counter_ns, Python call included); the table
gives medians in microseconds.

A 1x2 model of each kind gives the floor of one invoke() call.

Before and after: `--baseline PATH` names another build of the kernel library
(an older commit's, say). Its binary models run in workers of their own (one
per ISA, `TFQNN_LIBRARY=PATH`), interleaved in the same rounds as the current
library's, and a second table gives both medians and their ratio per ISA;
the output check then also requires both libraries to give the same bits.

End to end: the demo's saved model (saved_models/bnn_fashion_mnist.keras) as
a float32 TFLite file (plain converter, its binary layers as float builtins
with the +-1 kernels baked in as constants, see `float_twin`), its int8 PTQ
(calibrated on 200 Fashion-MNIST test images scaled to [-1, 1]; float input
and output), tfqnn's binary export, and the binary export with int8
builtins; file sizes, batch-1 latency, and `tfqnn.summary`'s predicted size.

Targets (issue): on AVX-512, binary >= 10x faster than f32 and >= 3x faster
than int8 on every shape; AVX2 >= 4x faster than f32.

Usage: python benchmarks/lite_kernels.py [--quick] [--json PATH]
                                         [--rounds 10] [--seconds 1.0]
                                         [--baseline PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

import argparse
import contextlib
import gc
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _machine
import numpy as np
from _quiet import quiet

ROOT = Path(__file__).resolve().parents[1]
MODEL_PATH = ROOT / "saved_models" / "bnn_fashion_mnist.keras"
ISAS = ("scalar", "avx2", "avx512")
BUILTIN = "builtin"  # the worker of the f32 and int8 models
BASELINE = "baseline:"  # prefix of the engines that run the --baseline library

# (key, title, kind, batch or spatial size, in, out)
CASES = [
    ("dense1024_b1", "dense 1024x1024, batch 1", "dense", 1, 1024, 1024),
    ("dense1024_b16", "dense 1024x1024, batch 16", "dense", 16, 1024, 1024),
    ("dense4096_b1", "dense 4096x4096, batch 1", "dense", 1, 4096, 4096),
    ("conv56", "conv 3x3 64->64, 56x56", "conv", 56, 64, 64),
    ("conv14", "conv 3x3 256->256, 14x14", "conv", 14, 256, 256),
]
TARGET_F32_AVX512 = 10.0
TARGET_INT8_AVX512 = 3.0
TARGET_F32_AVX2 = 4.0
# median(case, variant): the median us of a timed variant, None if not timed.
Median = Callable[[str, str], "float | None"]
BINARY: dict[str, Any] = {
    "input_quantizer": "ste_sign",
    "kernel_quantizer": "ste_sign",
    "kernel_constraint": "weight_clip",
    "use_bias": False,
}


# ---- machine -------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": platform.processor() or "unknown CPU",
        "arch": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "flags": [],
    }
    affinity: int | None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    info["usable_cpus"] = affinity
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    cores = set()
    physical = core = None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            info["cpu"] = value
        elif key == "flags" and not info["flags"]:
            wanted = (
                "popcnt",
                "avx2",
                "fma",
                "avx512f",
                "avx512bw",
                "avx512dq",
                "avx512vl",
                "avx512_vpopcntdq",
                "avx512_vnni",
            )
            present = set(value.split())
            info["flags"] = [f for f in wanted if f in present]
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
            cores.add((physical, core))
    info["physical_cores"] = len(cores) or None
    info["memory_gib"] = _machine.memory_gib()
    info["load_average_start"] = _machine.load_average()
    info["python"] = platform.python_version()
    info["numpy"] = np.__version__
    return info


def supported_isas(flags: list[str]) -> list[str]:
    """The ISAs tfqnn's kernels can use here: the library's answer, else /proc/cpuinfo's."""
    try:
        from tfqnn.lite import _core

        return [isa for isa in _core.supported_isas() if isa in ISAS]
    except Exception:  # noqa: BLE001 -- a library without the test hooks
        isas = ["scalar"]
        if "avx2" in flags:
            isas.append("avx2")
        if {"avx512f", "avx512_vpopcntdq", "avx512bw", "avx512vl", "avx512dq"} <= set(flags):
            isas.append("avx512")
        return isas


# ---- models (parent, TensorFlow) -----------------------------------------------


def _tflite_float(model: Any) -> bytes:
    import tensorflow as tf

    with quiet():
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _tflite_int8(model: Any, samples: list[np.ndarray], int8_io: bool) -> bytes:
    """Full-integer PTQ; `samples`: input arrays of the model's batch shape."""
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [np.asarray(sample, np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    if int8_io:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    else:  # end to end: float in and out, int8 inside
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    with quiet():
        return converter.convert()


def _to_tflite(model: Any, **kwargs: Any) -> bytes:
    import tfqnn

    with quiet():
        return tfqnn.export.to_tflite(model, **kwargs)


def build_floor_models() -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    """Models of almost no work: the cost of one invoke() call, builtin and tfqnn."""
    import keras

    from tfqnn.lite.reference import bitpack
    from tfqnn.lite.testing import Op, Tensor, op_model

    keras.utils.set_random_seed(0)
    x = np.array([[0.5, -1.0]], np.float32)
    tiny = keras.Sequential([keras.Input((2,), batch_size=1), keras.layers.Dense(1)])
    quantize = op_model(
        [Op("TfqnnQuantize", inputs=[0], outputs=[1])],
        tensors=[Tensor([1, 2], "float32"), Tensor([1, 1], "int32")],
        inputs=[0],
        outputs=[1],
    )
    return {"f32": _tflite_float(tiny), "binary": quantize}, x, bitpack(x)


def build_kernel_models(
    rng: np.random.Generator,
) -> tuple[dict[str, dict[str, bytes]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """{case: {variant: bytes}}, the float inputs, and the Keras outputs of the binary layers."""
    import keras

    import tfqnn

    models: dict[str, dict[str, bytes]] = {}
    inputs: dict[str, np.ndarray] = {}
    expected: dict[str, np.ndarray] = {}
    for key, _, kind, size, cin, cout in CASES:
        keras.utils.set_random_seed(0)
        shape: tuple[int, ...]
        if kind == "dense":
            shape = (size, cin)
            builtin_layer = keras.layers.Dense(cout, use_bias=True)
            binary_layer = tfqnn.layers.QuantDense(cout, **BINARY)
        else:
            shape = (1, size, size, cin)
            builtin_layer = keras.layers.Conv2D(cout, 3, padding="same", use_bias=True)
            binary_layer = tfqnn.layers.QuantConv2D(
                cout, 3, padding="same", pad_values=1.0, **BINARY
            )
        x = rng.standard_normal(shape).astype(np.float32)
        builtin = keras.Sequential([keras.Input(shape[1:], batch_size=shape[0]), builtin_layer])
        binary = keras.Sequential([keras.Input(shape[1:], batch_size=shape[0]), binary_layer])
        calibration = [rng.standard_normal(shape).astype(np.float32) for _ in range(8)]
        models[key] = {
            "f32": _tflite_float(builtin),
            "int8": _tflite_int8(builtin, calibration, int8_io=True),
            "binary": _to_tflite(binary, batch_size=shape[0]),
        }
        inputs[key] = x
        expected[key] = np.asarray(binary(x))
    return models, inputs, expected


def float_twin(model: Any) -> Any:
    """The model with each quantized kernel baked in as a float constant (+-1 for sign).

    Converted as is, TFLite recomputes sign(kernel) on every invoke (SELECT_V2
    on the latent weights) and cannot quantize such runtime weights to int8;
    the twin computes the same function with constant float kernels, as a
    float deployment would. Input quantizers stay (GREATER_EQUAL + SELECT_V2).
    """
    import keras

    from tfqnn.layers.base import KERNEL

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if getattr(layer, "kernel_quantizer", None) is not None:
            config.update(kernel_quantizer=None, kernel_constraint=None)
        return type(layer).from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, twin.layers, strict=True):
        weights = old.get_weights()
        if getattr(old, "kernel_quantizer", None) is not None:
            index = [id(w) for w in old.weights].index(id(old.kernel))
            weights[index] = np.asarray(old.quantized_kernel(KERNEL, training=False))
        new.set_weights(weights)
    return twin


def demo_data() -> tuple[str, np.ndarray]:
    import tfqnn

    if tfqnn.datasets.fashion_mnist_available():
        _, (x_test, _) = tfqnn.datasets.load_fashion_mnist()
        return "Fashion-MNIST test set", 2.0 * x_test[..., None] - 1.0
    rng = np.random.default_rng(1)
    return "random data (Fashion-MNIST not installed)", rng.uniform(-1, 1, (500, 28, 28, 1)).astype(
        np.float32
    )


def build_demo_models() -> tuple[dict[str, bytes], np.ndarray, np.ndarray, dict[str, Any]]:
    """{variant: bytes} of the demo model's exports, its input, summary and notes."""
    import keras

    import tfqnn

    model = keras.models.load_model(MODEL_PATH)
    data_name, x = demo_data()
    calibration = [x[i : i + 1] for i in range(min(200, len(x)))]
    summary = tfqnn.summary(model, print_fn=None)
    exports: dict[str, bytes] = {}
    notes: list[str] = []
    twin = float_twin(model)
    sample = x[:1].astype(np.float32)
    expected = np.asarray(model(sample, training=False))
    twin_diff = float(np.max(np.abs(np.asarray(twin(sample, training=False)) - expected)))
    exports["f32"] = _tflite_float(twin)
    try:
        exports["int8"] = _tflite_int8(twin, calibration, int8_io=False)
    except Exception as error:  # noqa: BLE001 -- report and go on
        notes.append(f"int8 export failed: {type(error).__name__}: {error}")
    exports["binary"] = _to_tflite(model, batch_size=1)
    try:
        exports["binary_int8"] = _to_tflite(
            model, batch_size=1, int8_representative_data=np.concatenate(calibration)
        )
    except Exception as error:  # noqa: BLE001
        notes.append(f"binary export with int8 builtins failed: {type(error).__name__}: {error}")
    info = {
        "data": data_name,
        "summary_quantized_bytes": int(summary.quantized_bytes),
        "summary_float32_bytes": int(summary.float32_bytes),
        "notes": notes,
        "float_twin_max_diff": twin_diff,
    }
    return exports, sample, expected, info


# ---- worker (child process) ----------------------------------------------------


def worker_main(engine: str) -> None:
    """Loads models on request and times invoke(); JSON lines on the original stdout."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints of the libraries go to stderr
    if engine == BUILTIN:
        from ai_edge_litert.interpreter import Interpreter

        isa = None
    else:
        from tfqnn.lite import Interpreter

        try:
            from tfqnn.lite import _core

            isa = _core.active_isa()
        except Exception:  # noqa: BLE001
            isa = "unknown"
    interpreters = {}

    def reply(obj: dict[str, Any]) -> None:
        protocol.write(json.dumps(obj) + "\n")

    reply({"ready": True, "isa": isa, "env": os.environ.get("TFQNN_ISA")})
    gc.disable()
    for line in sys.stdin:
        request = json.loads(line)
        command = request["cmd"]
        if command == "load":
            ops = {}
            for key, spec in request["models"].items():
                interpreter = Interpreter(model_path=spec["model"], num_threads=1)
                interpreter.allocate_tensors()
                (detail,) = interpreter.get_input_details()
                x = np.load(spec["input"])
                if detail["dtype"] == np.int8:
                    scale, zero_point = detail["quantization"]
                    x = np.clip(np.round(x / scale) + zero_point, -128, 127)
                interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
                interpreter.invoke()
                output = interpreter.get_output_details()[0]
                np.save(spec["output"], interpreter.get_tensor(output["index"]))
                interpreters[key] = interpreter
                ops[key] = [op["op_name"] for op in interpreter._get_ops_details()]
            reply({"ops": ops})
        elif command == "warm":  # warm-up; its median latency sizes the rounds
            invoke = interpreters[request["model"]].invoke
            times: list[int] = []
            start = time.perf_counter()
            while len(times) < 3 or time.perf_counter() - start < request["seconds"]:
                t0 = time.perf_counter_ns()
                invoke()
                times.append(time.perf_counter_ns() - t0)
            reply({"estimate_ns": float(np.median(times))})
        elif command == "time":
            invoke = interpreters[request["model"]].invoke
            invoke()  # once untimed: the other workers ran in between
            samples = [0] * request["n"]
            clock = time.perf_counter_ns
            for i in range(request["n"]):
                t0 = clock()
                invoke()
                samples[i] = clock() - t0
            reply({"ns": samples})
        elif command == "quit":
            reply({"bye": True})
            return


def baseline_engine(isa: str) -> str:
    return BASELINE + isa


class Worker:
    """A worker process.

    `engine` is "builtin", the ISA it sets in TFQNN_ISA, or baseline_engine(isa):
    that ISA with the library `baseline` (TFQNN_LIBRARY).
    """

    def __init__(self, engine: str, directory: str | Path, baseline: str | None = None) -> None:
        env = dict(os.environ)
        env.pop("TFQNN_ISA", None)
        if engine.startswith(BASELINE):
            if baseline is None:
                raise ValueError(f"Invalid baseline=None: expected a library path for {engine}")
            env["TFQNN_LIBRARY"] = str(Path(baseline).resolve())
            env["TFQNN_ISA"] = engine.removeprefix(BASELINE)
        elif engine != BUILTIN:
            env["TFQNN_ISA"] = engine
        self.engine = engine
        self.log_path = Path(directory) / f"worker_{engine}.log"
        with open(self.log_path, "w") as log:  # its stderr: library logs
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker", engine],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
                bufsize=1,
            )
        self.hello: dict[str, Any] | None = None

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None  # Popen with stdout=PIPE
        line = self.process.stdout.readline()
        if not line:
            status = self.process.wait()
            tail = self.log_path.read_text()[-3000:]
            raise RuntimeError(f"worker {self.engine} exited (status {status}):\n{tail}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None  # Popen with stdin=PIPE
        if self.hello is None:
            self.hello = self.receive()
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(RuntimeError, BrokenPipeError, OSError):
                self.ask(cmd="quit")
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


# ---- measurement ---------------------------------------------------------------


def measure(
    workers: dict[str, Worker], variants: list[tuple[str, str, str, str]], args: argparse.Namespace
) -> dict[tuple[str, str], list[int]]:
    """Times in interleaved rounds.

    variants: [(case, variant, engine, model key)]. Returns {(case, variant): [ns]}.
    """
    per_round = {}
    for case, variant, engine, key in variants:
        estimate = workers[engine].ask(cmd="warm", model=key, seconds=args.warmup)["estimate_ns"]
        total = max(args.min_invokes, math.ceil(args.seconds / (estimate * 1e-9)))
        total = min(total, args.max_invokes)
        per_round[(case, variant)] = max(1, math.ceil(total / args.rounds))
    samples: dict[tuple[str, str], list[int]] = {(c, v): [] for c, v, _, _ in variants}
    cases = list(dict.fromkeys(case for case, *_ in variants))
    for r in range(args.rounds):
        for case in cases:
            group = [v for v in variants if v[0] == case]
            shift = r % len(group)
            for case_, variant, engine, key in group[shift:] + group[:shift]:
                n = per_round[(case_, variant)]
                samples[(case_, variant)] += workers[engine].ask(cmd="time", model=key, n=n)["ns"]
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return samples


def stats(ns: list[int]) -> dict[str, Any]:
    us = np.asarray(ns, np.float64) / 1e3
    return {
        "median_us": float(np.median(us)),
        "p10_us": float(np.percentile(us, 10)),
        "p90_us": float(np.percentile(us, 90)),
        "invokes": int(us.size),
    }


def fmt_us(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def fmt_x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


# ---- main ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 3 rounds, 0.1 s per variant"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds [10]")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="timed seconds per variant and case, all rounds [1.0]",
    )
    parser.add_argument("--min-invokes", type=int, default=None, help="per variant [50]")
    parser.add_argument("--max-invokes", type=int, default=50000, help="per variant")
    parser.add_argument("--no-demo", action="store_true", help="skip the end-to-end part")
    parser.add_argument(
        "--baseline",
        metavar="PATH",
        help="another libtfqnn_ops.so, timed against the current one in the same rounds",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = (3, 0.1, 10, 0.02) if args.quick else (10, 1.0, 50, 0.1)
    args.rounds = args.rounds or defaults[0]
    args.seconds = args.seconds if args.seconds is not None else defaults[1]
    args.min_invokes = args.min_invokes or defaults[2]
    args.warmup = defaults[3]
    if args.rounds < 1 or args.seconds < 0 or args.min_invokes < 1:
        parser.error("--rounds and --min-invokes must be >= 1, --seconds >= 0")
    if args.baseline and not Path(args.baseline).is_file():
        parser.error(f"--baseline {args.baseline}: no such file")
    return args


def print_machine(
    info: dict[str, Any], isas: list[str], versions: dict[str, str], args: argparse.Namespace
) -> None:
    flags = " ".join(info["flags"]) or "none of popcnt/avx2/avx512"
    cores = f"{info['logical_cpus']} logical CPUs"
    if info.get("physical_cores"):
        cores += f" ({info['physical_cores']} physical cores)"
    if info["usable_cpus"] != info["logical_cpus"]:
        cores += f", {info['usable_cpus']} usable"
    print(
        f"Machine: {info['cpu']} ({info['arch']}), {cores}, "
        f"{info.get('memory_gib', '?')} GiB; flags: {flags}"
    )
    print(
        f"tfqnn kernel ISAs: {', '.join(isas)}; Python {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    print(f"Load average at start: {info['load_average_start']}")
    if args.baseline:
        print(f"Baseline library: {args.baseline}")
    print(
        f"One thread; median of every invoke() (Python call included) over {args.rounds} "
        f"interleaved rounds, ~{args.seconds:g} s per variant (>= {args.min_invokes} invokes, "
        f"<= {args.max_invokes}); microseconds.\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0
    wall = time.perf_counter()
    info = machine_info()

    with quiet():  # TensorFlow's start-up logs
        import ai_edge_litert
        import keras
        import tensorflow as tf

        import tfqnn

    isas = supported_isas(info["flags"])
    versions = {
        "TensorFlow": tf.__version__,
        "Keras": keras.__version__,
        "ai-edge-litert": getattr(ai_edge_litert, "__version__", "?"),
        "numpy": np.__version__,
        "tfqnn": tfqnn.__version__,
    }
    print_machine(info, isas, versions, args)

    engines = [BUILTIN] + isas
    if args.baseline:
        engines += [baseline_engine(isa) for isa in isas]
    with tempfile.TemporaryDirectory(prefix="tfqnn_lite_bench_") as tmp:
        workers = {}
        try:
            for engine in engines:  # they import while this process converts
                workers[engine] = Worker(engine, tmp, args.baseline)
            return run(args, info, isas, versions, workers, Path(tmp), wall)
        finally:
            for worker in workers.values():
                worker.close()


def run(
    args: argparse.Namespace,
    info: dict[str, Any],
    isas: list[str],
    versions: dict[str, str],
    workers: dict[str, Worker],
    tmp: Path,
    wall: float,
) -> int:
    rng = np.random.default_rng(0)
    print("Converting models ...", file=sys.stderr, flush=True)
    models, inputs, expected = build_kernel_models(rng)
    models["floor"], inputs["floor"], expected["floor"] = build_floor_models()
    demo = None
    if not args.no_demo:
        demo = build_demo_models()
        models["demo"], inputs["demo"], expected["demo"], _ = demo

    # Files for the workers, and who runs what.
    loads: dict[str, dict[str, dict[str, str]]] = {engine: {} for engine in workers}
    binary_engines = [engine for engine in workers if engine != BUILTIN]
    variants: list[tuple[str, str, str, str]] = []  # (case, variant, engine, model key)
    sizes: dict[tuple[str, str], int] = {}
    for case, by_variant in models.items():
        np.save(tmp / f"in_{case}.npy", inputs[case])
        for variant, data in by_variant.items():
            path = tmp / f"{case}_{variant}.tflite"
            path.write_bytes(data)
            sizes[(case, variant)] = len(data)
            binary = variant.startswith("binary")
            for engine in binary_engines if binary else [BUILTIN]:
                key = f"{case}/{variant}"
                loads[engine][key] = {
                    "model": str(path),
                    "input": str(tmp / f"in_{case}.npy"),
                    "output": str(tmp / f"out_{case}_{variant}_{engine}.npy"),
                }
                name = f"{variant}@{engine}" if binary else variant
                variants.append((case, name, engine, key))

    print("Loading models in the workers ...", file=sys.stderr, flush=True)
    ops: dict[tuple[str, str], list[str]] = {}
    active: dict[str, str | None] = {}
    for engine, worker in workers.items():
        reply = worker.ask(cmd="load", models=loads[engine])
        active[engine] = (worker.hello or {}).get("isa")
        for key, names in reply["ops"].items():
            ops[(key, engine)] = names
    for engine in binary_engines:
        isa = engine.removeprefix(BASELINE)
        if active[engine] not in (isa, "unknown"):
            print(f"WARNING: worker {engine} with TFQNN_ISA={isa} runs {active[engine]}")
    checks = check_outputs(models, expected, binary_engines, tmp, ops)

    print("Timing ...", file=sys.stderr, flush=True)
    samples = measure(workers, variants, args)
    results = {f"{case}|{variant}": stats(ns) for (case, variant), ns in samples.items()}
    info["load_average_end"] = _machine.load_average()

    def median(case: str, variant: str) -> float | None:
        entry = results.get(f"{case}|{variant}")
        return float(entry["median_us"]) if entry else None

    kernel_rows = print_kernel_table(median, isas)
    floor = {
        "builtin f32": median("floor", "f32"),
        **{f"tfqnn {isa}": median("floor", f"binary@{isa}") for isa in isas},
    }
    print(
        "invoke() floor, a 1x2 model (Dense 2->1 f32; TfqnnQuantize of 2 values): "
        + ", ".join(f"{name} {fmt_us(us)} us" for name, us in floor.items())
        + "."
    )
    demo_rows = print_demo_table(median, isas, sizes, demo[3]) if demo else None
    baseline_rows = print_baseline_table(median, isas, args.baseline) if args.baseline else None
    print("\nChecks: " + "; ".join(checks))
    print(f"Load average at end: {info['load_average_end']}")
    seconds = time.perf_counter() - wall
    print(f"Wall time: {seconds:.0f} s")
    if args.json:
        document = {
            "machine": info,
            "versions": versions,
            "isas": isas,
            "active_isas": active,
            "settings": {
                k: getattr(args, k)
                for k in ("rounds", "seconds", "min_invokes", "max_invokes", "quick", "baseline")
            },
            "results": results,
            "kernels": kernel_rows,
            "floor_us": floor,
            "demo": demo_rows,
            "baseline": baseline_rows,
            "file_bytes": {f"{c}|{v}": n for (c, v), n in sizes.items()},
            "ops": {f"{k}|{e}": names for (k, e), names in ops.items()},
            "checks": checks,
            "wall_seconds": seconds,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
        print(f"Wrote {args.json}")
    return 0


def check_outputs(
    models: dict[str, dict[str, bytes]],
    expected: dict[str, np.ndarray],
    engines: list[str],
    tmp: Path,
    ops: dict[tuple[str, str], list[str]],
) -> list[str]:
    """Binary outputs against Keras, across ISAs (and libraries); the builtins delegated to XNNPACK."""
    checks = []
    vs_keras: dict[str, float] = {}
    across = 0.0
    what = "ISAs and libraries" if any(e.startswith(BASELINE) for e in engines) else "ISAs"
    for case in models:
        for variant in models[case]:
            if not variant.startswith("binary"):
                continue
            outs = [np.load(tmp / f"out_{case}_{variant}_{engine}.npy") for engine in engines]
            across = max([across] + [float(np.max(np.abs(o - outs[0]))) for o in outs])
            diff = max(float(np.max(np.abs(o - expected[case]))) for o in outs)
            vs_keras[variant] = max(vs_keras.get(variant, 0.0), diff)
    checks.append(
        f"binary outputs identical across {what} (max |diff| {across:.3g})"
        if across == 0
        else f"binary outputs DIFFER across {what}: max |diff| {across:.3g}"
    )
    checks.append(
        "outputs vs the Keras model, max |diff|: "
        + ", ".join(f"{variant} {diff:.3g}" for variant, diff in vs_keras.items())
        + (" (binary_int8: int8 first/last layers)" if "binary_int8" in vs_keras else "")
    )
    undelegated = sorted(
        {
            key
            for (key, engine), names in ops.items()
            if engine == BUILTIN and "DELEGATE" not in names
        }
    )
    checks.append(
        "f32/int8 models run by XNNPACK"
        if not undelegated
        else "NOT delegated to XNNPACK: " + ", ".join(undelegated)
    )
    strays = sorted(
        {
            f"{key}: {name}"
            for (key, engine), names in ops.items()
            if engine != BUILTIN and not key.startswith("demo/")
            for name in names
            if not name.startswith("Tfqnn") and name != "DELEGATE"
        }
    )
    checks.append(
        "binary kernel models hold only Tfqnn ops"
        if not strays
        else "binary kernel models hold builtins: " + ", ".join(strays)
    )
    return checks


def print_kernel_table(median: Median, isas: list[str]) -> list[dict[str, Any]]:
    print(
        "| case | f32 XNNPACK us | int8 XNNPACK us | "
        + " | ".join(f"binary {isa} us" for isa in isas)
        + " | "
        + " | ".join(f"{isa} vs f32 / int8" for isa in isas)
        + " | targets |"
    )
    print("|---" * (4 + 2 * len(isas)) + "|")
    rows = []
    for key, title, *_ in CASES:
        f32, int8 = median(key, "f32"), median(key, "int8")
        binary = {isa: median(key, f"binary@{isa}") for isa in isas}
        speedup = {
            isa: (f32 / b if b and f32 else None, int8 / b if b and int8 else None)
            for isa, b in binary.items()
        }
        verdicts = []
        if "avx512" in isas:
            vs_f32, vs_int8 = speedup["avx512"]
            verdicts.append(
                "avx512 "
                + (
                    "PASS"
                    if (vs_f32 or 0) >= TARGET_F32_AVX512 and (vs_int8 or 0) >= TARGET_INT8_AVX512
                    else "MISS"
                )
            )
        if "avx2" in isas:
            verdicts.append(
                "avx2 " + ("PASS" if (speedup["avx2"][0] or 0) >= TARGET_F32_AVX2 else "MISS")
            )
        verdict = ", ".join(verdicts) or "n/a (no AVX2/AVX-512)"
        print(
            f"| {title} | {fmt_us(f32)} | {fmt_us(int8)} | "
            + " | ".join(fmt_us(binary[isa]) for isa in isas)
            + " | "
            + " | ".join(f"{fmt_x(speedup[isa][0])} / {fmt_x(speedup[isa][1])}" for isa in isas)
            + f" | {verdict} |"
        )
        rows.append(
            {
                "case": key,
                "title": title,
                "f32_us": f32,
                "int8_us": int8,
                "binary_us": binary,
                "speedup_vs_f32": {i: s[0] for i, s in speedup.items()},
                "speedup_vs_int8": {i: s[1] for i, s in speedup.items()},
                "verdict": verdict,
            }
        )
    print(
        f"\nTargets: avx512 >= {TARGET_F32_AVX512:g}x f32 and >= {TARGET_INT8_AVX512:g}x int8; "
        f"avx2 >= {TARGET_F32_AVX2:g}x f32."
    )
    return rows


def print_demo_table(
    median: Median, isas: list[str], sizes: dict[tuple[str, str], int], demo_info: dict[str, Any]
) -> dict[str, Any]:
    print(
        f"\nEnd to end: {MODEL_PATH.relative_to(ROOT)}, batch 1, float input; "
        f"data: {demo_info['data']}.\n"
    )
    print("| export | file bytes | latency us | vs f32 latency | vs int8 latency |")
    print("|---|---|---|---|---|")
    f32, int8 = median("demo", "f32"), median("demo", "int8")
    labels = {
        "f32": "float32 builtins",
        "int8": "int8 PTQ builtins (float I/O)",
        "binary": "tfqnn binary, float builtins",
        "binary_int8": "tfqnn binary, int8 builtins",
    }
    rows = []
    for variant, label in labels.items():
        if ("demo", variant) not in sizes:
            continue
        engines = (
            [f"{variant}@{isa}" for isa in isas] if variant.startswith("binary") else [variant]
        )
        for name in engines:
            us = median("demo", name)
            suffix = f" ({name.split('@')[1]})" if "@" in name else ""
            print(
                f"| {label}{suffix} | {sizes[('demo', variant)]:,} | {fmt_us(us)} | "
                f"{fmt_x(f32 / us if f32 and us else None)} | "
                f"{fmt_x(int8 / us if int8 and us else None)} |"
            )
            rows.append({"export": name, "file_bytes": sizes[("demo", variant)], "latency_us": us})
    print(
        f"\ntfqnn.summary: {demo_info['summary_quantized_bytes']:,} bytes predicted with "
        f"binary weights packed ({demo_info['summary_float32_bytes']:,} as float32)."
    )
    for note in demo_info["notes"]:
        print("NOTE: " + note)
    return {"rows": rows, **demo_info}


def print_baseline_table(median: Median, isas: list[str], baseline: str) -> list[dict[str, Any]]:
    """The binary models on the current library against the --baseline one."""
    print(f"\nAgainst the baseline library {baseline} (same rounds), medians in us:\n")
    print(
        "| case | "
        + " | ".join(f"{isa} current / baseline us" for isa in isas)
        + " | "
        + " | ".join(f"{isa} current/baseline" for isa in isas)
        + " |"
    )
    print("|---" * (1 + 2 * len(isas)) + "|")
    cases = [(key, title, "binary") for key, title, *_ in CASES]
    cases += [("demo", "end to end, binary export", "binary")]
    cases += [("demo", "end to end, binary export with int8 builtins", "binary_int8")]
    rows = []
    for key, title, variant in cases:
        current = {isa: median(key, f"{variant}@{isa}") for isa in isas}
        base = {isa: median(key, f"{variant}@{baseline_engine(isa)}") for isa in isas}
        if not any(current.values()):
            continue  # the demo was skipped or not exported
        ratio: dict[str, float | None] = {}
        for isa in isas:
            now, before = current[isa], base[isa]
            ratio[isa] = now / before if now and before else None
        print(
            f"| {title} | "
            + " | ".join(f"{fmt_us(current[isa])} / {fmt_us(base[isa])}" for isa in isas)
            + " | "
            + " | ".join("n/a" if ratio[isa] is None else f"{ratio[isa]:.3f}" for isa in isas)
            + " |"
        )
        rows.append(
            {"case": key, "variant": variant, "title": title, "current_us": current}
            | {"baseline_us": base, "ratio": ratio}
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
