"""Time per op kind of the zoo's binary TFLite files, from single-op models cut out of them.

LiteRT's Python interpreter has no op profiler, so this script cuts every
operator of a network's binary export (`tfqnn.export.to_tflite`, as
``zoo_latency.py`` builds it; ``--variants binary-int8`` for the export with
int8 builtins) into a model of its own: the same operator,
the same tensors (shapes, types, quantization), its constant inputs kept,
its other inputs made the model's inputs (random data: the kernels' speed
does not depend on the values). Each single-op model runs as the whole
file does (tfqnn's kernels as a delegate for ``Tfqnn*`` ops, XNNPACK for
the builtins), with each thread count of ``--threads`` (one by default;
``--threads 1,2`` adds each op kind's one- to two-thread ratio), and the
time of an invoke of a model with no operator (the Python call and the
interpreter's own overhead) is subtracted (``--library PATH``: another
build of the kernel library, for a before / after comparison). The op
kinds' sums are then compared with the whole file's median in the same
run: what the cut misses (caches warm from the previous op, XNNPACK's
partitions) shows as the difference.

Timing: all models of a network are loaded at once, once per thread count;
in each of ``--rounds`` rounds each (model, threads) pair runs its share of
about ``--seconds`` of invokes, in an order that rotates each round; medians
of single invokes.

Usage: python benchmarks/zoo_op_profile.py [--models QuickNetSmall,BiRealNet]
                                           [--size 224] [--rounds 5] [--threads 1,2]
                                           [--seconds 0.3] [--top 8] [--json PATH]
                                           [--variants binary,binary-int8]
                                           [--library PATH]
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
    samples: dict[int, list[int]] = field(default_factory=dict)  # threads -> ns

    def median_us(self, threads: int = 1) -> float:
        """Median of the timed invokes with `threads` threads, in microseconds."""
        return float(np.median(self.samples[threads])) / 1e3


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


def make_interpreter(content: bytes, custom: bool, library: str, threads: int = 1) -> Any:
    """ai-edge-litert's interpreter with `threads` threads, random inputs set, invoked once."""
    from ai_edge_litert import interpreter as litert

    options = {"num_threads": str(threads)}
    delegates = [litert.load_delegate(library, options=options)] if custom else []
    interpreter = litert.Interpreter(
        model_content=content, num_threads=threads, experimental_delegates=delegates
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


def time_cuts(
    cuts: list[Cut], library: str, rounds: int, seconds: float, threads: tuple[int, ...] = (1,)
) -> None:
    """Fills each cut's samples per thread count: `_timing.interleaved`, ~`seconds` per pair."""
    pairs = [(c, n) for c in cuts for n in threads]
    calls = [make_interpreter(c.content, c.custom, library, n).invoke for c, n in pairs]
    samples = _timing.interleaved(calls, rounds, seconds, min_per_round=3, sizing_calls=3)
    for (cut, n), timed in zip(pairs, samples, strict=True):
        cut.samples.setdefault(n, []).extend(timed.wall_ns)


def profile(
    network: str,
    size: int,
    rounds: int,
    seconds: float,
    library: str,
    variant: str = "binary",
    samples: int = 8,
    threads: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    """Builds the network's `variant` file, times the whole file and every cut; returns the result.

    `variant` is ``"binary"`` (float32 ops around the binary ones) or
    ``"binary-int8"`` (int8 builtins, calibrated on ``samples`` random inputs),
    as ``zoo_latency.py`` builds them. Times are those of the first thread
    count; with more than one, each op kind and op also has
    ``"us_by_threads"`` ({threads: us}).
    """
    import keras
    import zoo_latency

    keras.utils.set_random_seed(0)
    with quiet():
        model = zoo_latency.build_keras(network, variant, size)
        data = zoo_latency.convert(model, variant, samples)
    cuts, empty = cut_models(data)
    whole = Cut(-1, "(whole file)", "", data, True)
    time_cuts([whole, empty, *cuts], library, rounds, seconds, threads)
    first = threads[0]
    overhead = {n: empty.median_us(n) for n in threads}
    kinds: dict[str, dict[str, Any]] = {}
    ops = []
    for c in cuts:
        net = {n: max(c.median_us(n) - overhead[n], 0.0) for n in threads}
        entry = kinds.setdefault(c.kind, {"count": 0, "us": 0.0, "us_by_threads": {}})
        entry["count"] += 1
        entry["us"] += net[first]
        for n in threads:
            entry["us_by_threads"][n] = entry["us_by_threads"].get(n, 0.0) + net[n]
        op = {"index": c.index, "kind": c.kind, "shapes": c.shapes, "us": net[first]}
        ops.append({**op, "us_by_threads": net})
    total = sum(k["us"] for k in kinds.values())
    return {
        "network": network,
        "variant": variant,
        "file_mb": len(data) / 1e6,
        "threads": list(threads),
        "whole_us": whole.median_us(first),
        "whole_us_by_threads": {n: whole.median_us(n) for n in threads},
        "overhead_us": overhead[first],
        "sum_us": total,
        "sum_us_by_threads": {
            n: sum(k["us_by_threads"][n] for k in kinds.values()) for n in threads
        },
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
    threads = result.get("threads", [1])
    more = threads[1:]
    head = "| op kind | count | ms | share |" + "".join(
        f" ms ({n}T) | {threads[0]}T/{n}T |" for n in more
    )
    print(head + "\n" + "|---" * (4 + 2 * len(more)) + "|")

    def ratios(by_threads: dict[int, float]) -> str:
        cells = ""
        for n in more:
            ratio = by_threads[threads[0]] / by_threads[n] if by_threads[n] > 0 else float("nan")
            cells += f" {by_threads[n] / 1e3:.3f} | {ratio:.2f}x |"
        return cells

    for kind, entry in result["kinds"].items():
        share = entry["us"] / total if total else 0.0
        row = f"| {kind} | {entry['count']} | {entry['us'] / 1e3:.3f} | {share:.0%} |"
        print(row + (ratios(entry["us_by_threads"]) if more else ""))
    if more:
        sums = result["sum_us_by_threads"]
        wholes = result["whole_us_by_threads"]
        print(f"| sum of the ops | | {total / 1e3:.3f} | |" + ratios(sums))
        print(f"| whole file | | {wholes[threads[0]] / 1e3:.3f} | |" + ratios(wholes))
    print(f"\nSlowest {top} ops:\n")
    print(
        "| # | op | shapes | us |"
        + "".join(f" us ({n}T) |" for n in more)
        + "\n"
        + "|---" * (4 + len(more))
        + "|"
    )
    for op in sorted(result["ops"], key=lambda o: -o["us"])[:top]:
        cells = "".join(f" {op['us_by_threads'][n]:.1f} |" for n in more)
        print(f"| {op['index']} | {op['kind']} | {op['shapes']} | {op['us']:.1f} |" + cells)


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
    parser.add_argument(
        "--threads", default="1", help="comma-separated thread counts, e.g. 1,2 [1]"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--library", metavar="PATH", help="another build of the kernel library [tfqnn's]"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.size < 8:
        parser.error("--rounds must be >= 1, --seconds > 0, --size >= 8")
    try:
        threads = tuple(int(n) for n in args.threads.split(","))
    except ValueError:
        threads = ()
    if not threads or min(threads) < 1 or len(set(threads)) != len(threads):
        parser.error(f"--threads must be distinct integers >= 1, got {args.threads!r}")
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
        f"Input {args.size}x{args.size}x3, batch 1, threads {args.threads}; medians over "
        f"{args.rounds} interleaved rounds, ~{args.seconds:g} s per model and thread count."
    )
    library = args.library or str(tfqnn.lite.library_path())
    results = []
    for network in networks:
        for variant in variants:
            start = time.perf_counter()
            result = profile(
                network, args.size, args.rounds, args.seconds, library, variant, threads=threads
            )
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
