"""Time per op kind of the zoo's binary TFLite files, from single-op models cut out of them.

LiteRT's Python interpreter has no op profiler, so this script cuts every
operator of a network's binary export (`tfqnn.export.to_tflite`, as
``zoo_latency.py`` builds it; ``--variants binary-int8`` for the export with
int8 builtins) into a model of its own: the same operator,
the same tensors (shapes, types, quantization), its constant inputs kept,
its other inputs made the model's inputs (random data: the kernels' speed
does not depend on the values). Each single-op model runs as the whole
file does (tfqnn's kernels as a delegate for ``Tfqnn*`` ops, XNNPACK for
the builtins), one thread, and the time of an invoke of a model with no
operator (the Python call and the interpreter's own overhead) is
subtracted. The op kinds' sums are then compared with the whole file's
median in the same run: what the cut misses (caches warm from the previous
op, XNNPACK's partitions) shows as the difference.

Timing: all models of a network are loaded at once; in each of ``--rounds``
rounds each model runs its share of about ``--seconds`` of invokes, in an
order that rotates each round; medians of single invokes.

Usage: python benchmarks/zoo_op_profile.py [--models QuickNetSmall,BiRealNet]
                                           [--size 224] [--rounds 5]
                                           [--seconds 0.3] [--top 8] [--json PATH]
                                           [--variants binary,binary-int8]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import _machine
import _timing
import numpy as np
from _quiet import quiet

DEFAULT_MODELS = ("QuickNetSmall", "BiRealNet")


@dataclass
class Cut:
    """One operator of a file as a model of its own."""

    index: int  # position in the file's execution order (-1: the whole file, -2: empty)
    kind: str  # builtin name or custom code
    shapes: str  # "in -> out" shapes, for the per-op listing
    content: bytes
    custom: bool
    samples: list[int] = field(default_factory=list)

    def median_us(self) -> float:
        """Median of the timed invokes in microseconds."""
        return float(np.median(self.samples)) / 1e3


def _op_name(model: Any, op: Any) -> tuple[str, bool]:
    from tensorflow.lite.tools import flatbuffer_utils

    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        name = code.customCode
        return (name.decode() if isinstance(name, bytes) else str(name)), True
    return flatbuffer_utils.opcode_to_name(model, op.opcodeIndex), False


def _is_constant(model: Any, tensor: Any) -> bool:
    buffer = model.buffers[tensor.buffer]
    return buffer.data is not None and len(buffer.data) > 0


def cut_models(data: bytes) -> tuple[list[Cut], Cut]:
    """Every operator of subgraph 0 as its own model, and the empty model (no operator)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    graph = model.subgraphs[0]
    cuts = []
    for index, op in enumerate(graph.operators):
        kind, custom = _op_name(model, op)
        inputs = [t for t in op.inputs if t >= 0 and not _is_constant(model, graph.tensors[t])]
        used = {graph.tensors[t].buffer for t in [*op.inputs, *op.outputs] if t >= 0}
        single = copy.copy(model)
        single.buffers = [
            b if i in used or i == 0 else type(b)() for i, b in enumerate(model.buffers)
        ]
        sub = copy.copy(graph)
        sub.operators = [op]
        sub.inputs = inputs
        sub.outputs = list(op.outputs)
        single.subgraphs = [sub]
        single.signatureDefs = []
        shapes = " + ".join(str([int(d) for d in graph.tensors[t].shape]) for t in inputs)
        shapes += " -> " + " + ".join(
            str([int(d) for d in graph.tensors[t].shape]) for t in op.outputs
        )
        content = bytes(flatbuffer_utils.convert_object_to_bytearray(single))
        cuts.append(Cut(index, kind, shapes, content, custom))
    empty = copy.copy(model)
    empty.buffers = [type(b)() for b in model.buffers]
    sub = copy.copy(graph)
    sub.operators = []
    sub.inputs = list(graph.inputs)
    sub.outputs = list(graph.inputs)
    empty.subgraphs = [sub]
    empty.signatureDefs = []
    content = bytes(flatbuffer_utils.convert_object_to_bytearray(empty))
    return cuts, Cut(-2, "(empty)", "", content, False)


def make_interpreter(content: bytes, custom: bool, library: str) -> Any:
    """ai-edge-litert's interpreter, one thread, random inputs set, invoked once."""
    from ai_edge_litert import interpreter as litert

    delegates = [litert.load_delegate(library, options={"num_threads": "1"})] if custom else []
    interpreter = litert.Interpreter(
        model_content=content, num_threads=1, experimental_delegates=delegates
    )
    interpreter.allocate_tensors()
    rng = np.random.default_rng(1)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            x = rng.standard_normal(detail["shape"]).astype(dtype)
        else:
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, detail["shape"], dtype=dtype, endpoint=True)
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter


def time_cuts(cuts: list[Cut], library: str, rounds: int, seconds: float) -> None:
    """Fills each cut's samples: `_timing.interleaved`, ~`seconds` per cut, >= 3 per round."""
    interpreters = [make_interpreter(c.content, c.custom, library) for c in cuts]
    calls = [interpreter.invoke for interpreter in interpreters]
    samples = _timing.interleaved(calls, rounds, seconds, min_per_round=3, sizing_calls=3)
    for cut, timed in zip(cuts, samples, strict=True):
        cut.samples.extend(timed.wall_ns)


def profile(
    network: str,
    size: int,
    rounds: int,
    seconds: float,
    library: str,
    variant: str = "binary",
    samples: int = 8,
) -> dict[str, Any]:
    """Builds the network's `variant` file, times the whole file and every cut; returns the result.

    `variant` is ``"binary"`` (float32 ops around the binary ones) or
    ``"binary-int8"`` (int8 builtins, calibrated on ``samples`` random inputs),
    as ``zoo_latency.py`` builds them.
    """
    import keras
    import zoo_latency

    keras.utils.set_random_seed(0)
    with quiet():
        model = zoo_latency.build_keras(network, variant, size)
        data = zoo_latency.convert(model, variant, samples)
    cuts, empty = cut_models(data)
    whole = Cut(-1, "(whole file)", "", data, True)
    time_cuts([whole, empty, *cuts], library, rounds, seconds)
    overhead = empty.median_us()
    kinds: dict[str, dict[str, float]] = {}
    ops = []
    for c in cuts:
        net = max(c.median_us() - overhead, 0.0)
        entry = kinds.setdefault(c.kind, {"count": 0, "us": 0.0})
        entry["count"] += 1
        entry["us"] += net
        ops.append({"index": c.index, "kind": c.kind, "shapes": c.shapes, "us": net})
    total = sum(k["us"] for k in kinds.values())
    return {
        "network": network,
        "variant": variant,
        "file_mb": len(data) / 1e6,
        "whole_us": whole.median_us(),
        "overhead_us": overhead,
        "sum_us": total,
        "kinds": dict(sorted(kinds.items(), key=lambda item: -item[1]["us"])),
        "ops": ops,
    }


def print_profile(result: dict[str, Any], top: int) -> None:
    """One network's op-kind table and its slowest single ops, as Markdown."""
    total = result["sum_us"]
    print(
        f"\n#### {result['network']} ({result.get('variant', 'binary')}): whole file {result['whole_us'] / 1e3:.3f} ms, "
        f"sum of the single ops {total / 1e3:.3f} ms "
        f"(empty invoke {result['overhead_us']:.1f} us subtracted from each)\n"
    )
    print("| op kind | count | ms | share |\n|---|---|---|---|")
    for kind, entry in result["kinds"].items():
        share = entry["us"] / total if total else 0.0
        print(f"| {kind} | {entry['count']} | {entry['us'] / 1e3:.3f} | {share:.0%} |")
    print(f"\nSlowest {top} ops:\n")
    print("| # | op | shapes | us |\n|---|---|---|---|")
    for op in sorted(result["ops"], key=lambda o: -o["us"])[:top]:
        print(f"| {op['index']} | {op['kind']} | {op['shapes']} | {op['us']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    """Profiles each network and prints the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    parser.add_argument("--size", type=int, default=224, help="input height and width [224]")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds [5]")
    parser.add_argument("--seconds", type=float, default=0.3, help="timed seconds per model [0.3]")
    parser.add_argument(
        "--variants",
        default="binary",
        help="comma-separated: binary (float32 builtins), binary-int8 (int8 builtins) [binary]",
    )
    parser.add_argument("--top", type=int, default=8, help="slowest single ops to list [8]")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.size < 8:
        parser.error("--rounds must be >= 1, --seconds > 0, --size >= 8")
    import zoo_latency

    networks = args.models.split(",")
    variants = args.variants.split(",")
    if any(v not in zoo_latency.BINARY_VARIANTS for v in variants):
        parser.error(f"--variants: expected some of {', '.join(zoo_latency.BINARY_VARIANTS)}")
    unknown = [m for m in networks if m not in zoo_latency.LITERATURE + zoo_latency.CLASSIC]
    if unknown:
        parser.error(f"--models: unknown {unknown}")
    with quiet():
        import ai_edge_litert
        import tensorflow as tf

        import tfqnn
        from tfqnn.lite import _core
    litert = getattr(ai_edge_litert, "__version__", "?")
    versions = {"TensorFlow": tf.__version__, "ai-edge-litert": litert}
    print(_machine.header({**versions, "kernels ISA": _core.active_isa()}))
    print(
        f"Input {args.size}x{args.size}x3, batch 1, one thread; medians over {args.rounds} "
        f"interleaved rounds, ~{args.seconds:g} s per model."
    )
    library = str(tfqnn.lite.library_path())
    results = []
    for network in networks:
        for variant in variants:
            start = time.perf_counter()
            result = profile(network, args.size, args.rounds, args.seconds, library, variant)
            print_profile(result, args.top)
            print(f"\n({time.perf_counter() - start:.0f} s)", file=sys.stderr)
            results.append(result)
    print(f"\nLoad average at end: {_machine.load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
