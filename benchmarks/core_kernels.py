"""Latency of the C++ core kernels, per instruction set, one thread.

Calls the prepared kernels (BDense, BConv2d: weights laid out once, as in a
TFLite op) through the library's test hooks; each run is timed inside the
library (std::chrono around the kernel call, no ctypes overhead). Prints the
median microseconds of each shape per ISA. Float output, no bitpacking of
the input (that is the Quantize op's job).

The bitpacking of the conv inputs (the TfqnnQuantize op, float and int8) is
timed separately: its hook has no timer, so those rows are timed around the
ctypes call, less the median time of the same call on zero rows (the ctypes
overhead, ~1 us).

Before and after: `--baseline PATH` loads a second build of the library (an
older commit's, say) into the same process and times both on the same inputs,
alternating between them (which goes first alternates too) `--repeats` times;
it prints the median of the repeats' medians for each library and their
ratio, current / baseline.

    .venv/bin/python benchmarks/core_kernels.py [--threads N] [--rounds R]
                                                [--baseline PATH [--repeats K]]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ISAS = ("scalar", "avx2", "avx512", "neon")
P, I, I64, F = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_float  # noqa: E741
DP = ctypes.POINTER(ctypes.c_double)

DENSE = [  # (name, batch, in_features, out_features)
    ("dense 1024x1024 batch 1", 1, 1024, 1024),
    ("dense 1024x1024 batch 16", 16, 1024, 1024),
    ("dense 4096x4096 batch 1", 1, 4096, 4096),
]
CONV = [  # (name, size, channels_in, channels_out), 3x3 SAME, stride 1
    ("conv 3x3 56x56 64->64", 56, 64, 64),
    ("conv 3x3 28x28 128->128", 28, 128, 128),
    ("conv 3x3 14x14 256->256", 14, 256, 256),
]
# The same convolutions with pad_values=0 (Bi-Real Net, ResNetE): padding
# taps corrected per border class.
CONV_ZERO_PAD = [(f"{name} pad 0", *shape) for name, *shape in CONV]


def load(path: str | Path | None = None) -> ctypes.CDLL:
    path = path or os.environ.get("TFQNN_LIBRARY") or ROOT / "tfqnn" / "lite" / "libtfqnn_ops.so"
    lib = ctypes.CDLL(str(path))
    lib.tfqnn_core_bdense_new.restype = P
    lib.tfqnn_core_bdense_new.argtypes = [P, I, I]
    lib.tfqnn_core_bdense_run.argtypes = [P, P, I64, P, P, F, F, I, F, I, P, I, I, DP]
    lib.tfqnn_core_bdense_free.argtypes = [P]
    lib.tfqnn_core_bconv2d_new.restype = P
    lib.tfqnn_core_bconv2d_new.argtypes = [P] + [I] * 14
    lib.tfqnn_core_bconv2d_run.argtypes = [P, P, P, P, F, F, I, F, I, P, I, I, DP]
    lib.tfqnn_core_bconv2d_free.argtypes = [P]
    lib.tfqnn_core_bitpack_float.argtypes = [P, I64, I, P]
    lib.tfqnn_core_bitpack_int8.argtypes = [P, I64, I, I, P]
    return lib


def words(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-(2**31), 2**31, size=shape).astype(np.int32)


def median_us(seconds: list[float]) -> float:
    return float(np.median(seconds)) * 1e6


def time_dense(
    lib: ctypes.CDLL,
    rng: np.random.Generator,
    batch: int,
    k: int,
    n: int,
    threads: int,
    rounds: int,
) -> float:
    w = words(rng, n, k // 32)
    x = words(rng, batch, k // 32)
    mult, bias = np.ones(n, np.float32), np.zeros(n, np.float32)
    out = np.empty((batch, n), np.float32)
    handle = lib.tfqnn_core_bdense_new(w.ctypes.data, n, k)
    seconds = (ctypes.c_double * rounds)()
    args = (
        handle,
        x.ctypes.data,
        batch,
        mult.ctypes.data,
        bias.ctypes.data,
        -np.inf,
        np.inf,
        0,
        1.0,
        0,
        out.ctypes.data,
        threads,
    )
    assert lib.tfqnn_core_bdense_run(*args, max(rounds // 10, 3), None) == 0  # warm up
    assert lib.tfqnn_core_bdense_run(*args, rounds, seconds) == 0
    lib.tfqnn_core_bdense_free(handle)
    return median_us(list(seconds))


def time_conv(
    lib: ctypes.CDLL,
    rng: np.random.Generator,
    size: int,
    cin: int,
    cout: int,
    threads: int,
    rounds: int,
    pad_values: int = 1,
) -> float:
    x = words(rng, 1, size, size, cin // 32)
    f = words(rng, cout, 3, 3, cin // 32)
    mult, bias = np.ones(cout, np.float32), np.zeros(cout, np.float32)
    out = np.empty((1, size, size, cout), np.float32)
    handle = lib.tfqnn_core_bconv2d_new(
        f.ctypes.data, 1, size, size, cin, 1, cout, 3, 3, 1, 1, 1, 1, 1, pad_values
    )
    seconds = (ctypes.c_double * rounds)()
    args = (
        handle,
        x.ctypes.data,
        mult.ctypes.data,
        bias.ctypes.data,
        -np.inf,
        np.inf,
        0,
        1.0,
        0,
        out.ctypes.data,
        threads,
    )
    assert lib.tfqnn_core_bconv2d_run(*args, max(rounds // 10, 3), None) == 0
    assert lib.tfqnn_core_bconv2d_run(*args, rounds, seconds) == 0
    lib.tfqnn_core_bconv2d_free(handle)
    return median_us(list(seconds))


def time_conv_zero_pad(
    lib: ctypes.CDLL,
    rng: np.random.Generator,
    size: int,
    cin: int,
    cout: int,
    threads: int,
    rounds: int,
) -> float:
    """`time_conv` with pad_values=0."""
    return time_conv(lib, rng, size, cin, cout, threads, rounds, pad_values=0)


def time_bitpack(
    lib: ctypes.CDLL, rng: np.random.Generator, size: int, channels: int, kind: str, rounds: int
) -> float:
    """Median us of bitpacking a size x size x channels float (int8) input."""
    rows = size * size
    out = np.empty((rows, -(-channels // 32)), np.int32)
    if kind == "float":
        x = rng.normal(size=(rows, channels)).astype(np.float32)

        def call(n: int) -> int:
            return lib.tfqnn_core_bitpack_float(x.ctypes.data, n, channels, out.ctypes.data)
    else:
        x = rng.integers(-128, 128, size=(rows, channels)).astype(np.int8)

        def call(n: int) -> int:
            return lib.tfqnn_core_bitpack_int8(x.ctypes.data, n, channels, 3, out.ctypes.data)

    def median_ns(n: int) -> float:
        times: list[int] = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            call(n)
            times.append(time.perf_counter_ns() - start)
        return float(np.median(times))

    assert call(rows) == 0
    for _ in range(max(rounds // 10, 3)):  # warm up
        call(rows)
    overhead = median_ns(0)
    return max(median_ns(rows) - overhead, 0.0) * 1e-3


def compare(
    current: ctypes.CDLL, baseline: ctypes.CDLL, isas: list[str], args: argparse.Namespace
) -> None:
    """Each case on both libraries, alternating; prints medians and the ratio."""
    cases: list[tuple[str, Callable[..., float], list[Any]]]
    cases = [(name, time_dense, [*shape, args.threads]) for name, *shape in DENSE]
    cases += [(name, time_conv, shape + [args.threads]) for name, *shape in CONV]
    cases += [(name, time_conv_zero_pad, shape + [args.threads]) for name, *shape in CONV_ZERO_PAD]
    cases += [
        (f"bitpack {kind} {size}x{size}x{cin}", time_bitpack, [size, cin, kind])
        for _, size, cin, _ in CONV
        for kind in ("float", "int8")
    ]
    print(f"{'case':<28}" + "".join(f"{isa + ' cur/base us':>24}{'ratio':>7}" for isa in isas))
    for n, (name, timer, shape) in enumerate(cases):
        row = ""
        for i, isa in enumerate(ISAS):
            if isa not in isas:
                continue
            times: dict[str, list[float]] = {"current": [], "baseline": []}
            for repeat in range(args.repeats):
                order = (
                    ["current", "baseline"] if (repeat + n) % 2 == 0 else ["baseline", "current"]
                )
                for which in order:
                    lib = current if which == "current" else baseline
                    assert lib.tfqnn_core_set_isa(i) == 1
                    rng = np.random.default_rng(n)  # the same inputs for both
                    times[which].append(timer(lib, rng, *shape, args.rounds))
            cur, base = (float(np.median(times[k])) for k in ("current", "baseline"))
            row += f"{cur:>12.1f} / {base:>9.1f}{cur / base:>7.3f}"
        print(f"{name:<28}" + row, flush=True)
    for lib in (current, baseline):
        lib.tfqnn_core_set_isa(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--baseline", metavar="PATH", help="a second library to compare with")
    parser.add_argument("--repeats", type=int, default=5, help="alternations with --baseline")
    args = parser.parse_args()
    lib = load()
    isas = [name for i, name in enumerate(ISAS) if lib.tfqnn_core_isa_supported(i)]
    print(
        f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
        f"{args.threads} thread(s), median of {args.rounds} runs, microseconds"
    )
    if args.baseline:
        baseline = load(args.baseline)
        print(f"current: {lib._name}; baseline: {baseline._name}")
        compare(lib, baseline, isas, args)
        return
    print(f"{'case':<28}" + "".join(f"{name:>10}" for name in isas))
    rng = np.random.default_rng(0)
    cases: list[tuple[str, Callable[..., float], list[Any]]]
    cases = [(name, time_dense, shape) for name, *shape in DENSE]
    cases += [(name, time_conv, shape) for name, *shape in CONV]
    cases += [(name, time_conv_zero_pad, shape) for name, *shape in CONV_ZERO_PAD]
    for name, timer, shape in cases:
        row = []
        for i, isa in enumerate(ISAS):
            if isa in isas:
                assert lib.tfqnn_core_set_isa(i) == 1
                row.append(timer(lib, rng, *shape, args.threads, args.rounds))
        print(f"{name:<28}" + "".join(f"{us:>10.1f}" for us in row))
    for _, size, cin, _ in CONV:
        for kind in ("float", "int8"):
            row = []
            for i, isa in enumerate(ISAS):
                if isa in isas:
                    assert lib.tfqnn_core_set_isa(i) == 1
                    row.append(time_bitpack(lib, rng, size, cin, kind, args.rounds))
            label = f"bitpack {kind} {size}x{size}x{cin}"
            print(f"{label:<28}" + "".join(f"{us:>10.1f}" for us in row))
    lib.tfqnn_core_set_isa(-1)


if __name__ == "__main__":
    main()
