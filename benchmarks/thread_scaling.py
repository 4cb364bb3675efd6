"""Two threads against one on the zoo's binary files, under the kernels' thread pool settings.

Issue 14 asks for QuickNet's binary file to run at least 1.7x faster with two
threads than with one. This script isolates that ratio: for each network
(QuickNet and QuickNetSmall by default) it builds the files as
``zoo_latency.py`` does (224x224x3, random weights), loads the binary file
with tfqnn's kernels as a delegate (the other ops in XNNPACK) and times, in
one process and interleaved rounds (`_timing.interleaved`):

- ``binary 1T`` and ``binary 2T`` under each worker spin of ``--spins``
  (microseconds an idle worker of the kernels' pool spins on the CPU's pause
  instruction before it sleeps; 0: it sleeps at once and every split op
  wakes it; 5 is the library's default);
- ``binary 2T, kernels 1T``: the kernels' per-thread minimum set out of
  reach, so that only XNNPACK's builtins use the second thread (what the
  kernels' threads add);
- ``int8 1T`` and ``int8 2T``: the same architecture's full-integer file,
  all XNNPACK, the scaling that the machine allows in the same run;
- with ``--baseline PATH``, ``baseline 1T`` and ``baseline 2T``: another
  build of the kernel library (before / after a change).

With ``--gemm-share SECONDS`` (needs Linux ``perf``), each two-thread
setting of the binary file also runs alone for that long in a child process
under ``perf record``, and the table gets the share of the binary GEMM's
samples (``gemm_panel_*``) taken by threads other than the caller: 50 % is
an even split, 0 % a worker that never came. Unlike wall times, this share
says something on a loaded machine (a thread's samples count only while it
runs).

Every binary setting's output is checked equal to the one-thread output
before timing. Medians and 10th percentiles of single invokes in ms, and
each setting's one- to two-thread ratio (the matching 1T file over it). The
load average is printed at the start and the end: on a loaded machine a
second thread waits for a core, and the two-thread medians measure that.

Usage: python benchmarks/thread_scaling.py [--models QuickNet,QuickNetSmall]
           [--spins 0,5,30,200] [--rounds 10] [--seconds 2] [--baseline PATH]
           [--size 224] [--gemm-share SECONDS] [--json PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

import argparse
import ctypes
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _machine
import _timing
import numpy as np
from _quiet import quiet

DEFAULT_MODELS = ("QuickNet", "QuickNetSmall")
DEFAULT_SPINS_US = (0, 5, 30, 200)
FAR_AWAY_NS = 1e12  # a per-thread minimum no op reaches: the kernels stay on one thread


class Library:
    """One build of the kernel library and its global thread settings (ctypes hooks)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lib = ctypes.CDLL(path)
        self.lib.tfqnn_core_set_min_thread_work.argtypes = [ctypes.c_double]
        self.lib.tfqnn_core_set_min_thread_work.restype = ctypes.c_double
        self.has_spin = hasattr(self.lib, "tfqnn_core_set_thread_spin_ns")
        if self.has_spin:
            self.lib.tfqnn_core_set_thread_spin_ns.argtypes = [ctypes.c_int64]
            self.lib.tfqnn_core_set_thread_spin_ns.restype = ctypes.c_int64
        self.default_min = self.set_min_work(0.0)
        self.set_min_work(self.default_min)
        self.default_spin = self.set_spin(0) if self.has_spin else None
        if self.default_spin is not None:
            self.set_spin(self.default_spin)

    def set_min_work(self, ns: float) -> float:
        """Sets the per-thread minimum (ns); returns the previous one."""
        return float(self.lib.tfqnn_core_set_min_thread_work(ns))

    def set_spin(self, ns: int) -> int:
        """Sets how long idle workers spin (ns); returns the previous value."""
        return int(self.lib.tfqnn_core_set_thread_spin_ns(ns))


def make_interpreter(path: Path, library: str | None, threads: int) -> Any:
    """ai-edge-litert's interpreter with `threads` threads (tfqnn's delegate when `library`)."""
    import zoo_latency

    return zoo_latency.make_interpreter(path, library is not None, threads, library)


def output_of(interpreter: Any) -> np.ndarray:
    """Invokes once and returns a copy of the first output."""
    interpreter.invoke()
    return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


def settings(
    binary: Path, int8: Path, current: Library, baseline: Library | None, spins_us: list[int]
) -> list[tuple[str, str, Callable[[], None], Any]]:
    """(name, its one-thread reference's name, setter, interpreter) of every timed setting."""
    min_work, spin = current.default_min, current.default_spin or 0

    def use(lib: Library, spin_ns: int | None, min_ns: float) -> Callable[[], None]:
        def apply() -> None:
            lib.set_min_work(min_ns)
            if spin_ns is not None and lib.has_spin:
                lib.set_spin(spin_ns)

        return apply

    keep = use(current, spin, min_work)
    one = make_interpreter(binary, current.path, 1)
    two = make_interpreter(binary, current.path, 2)
    rows = [("binary 1T", "binary 1T", keep, one)]
    for us in spins_us if current.has_spin else []:
        rows.append(
            (f"binary 2T, spin {us} us", "binary 1T", use(current, us * 1000, min_work), two)
        )
    if not current.has_spin:
        rows.append(("binary 2T", "binary 1T", keep, two))
    rows.append(("binary 2T, kernels 1T", "binary 1T", use(current, spin, FAR_AWAY_NS), two))
    if baseline is not None:
        base = use(baseline, baseline.default_spin, baseline.default_min)
        rows.append(
            ("baseline 1T", "baseline 1T", base, make_interpreter(binary, baseline.path, 1))
        )
        rows.append(
            ("baseline 2T", "baseline 1T", base, make_interpreter(binary, baseline.path, 2))
        )
    rows.append(("int8 1T", "int8 1T", keep, make_interpreter(int8, None, 1)))
    rows.append(("int8 2T", "int8 1T", keep, make_interpreter(int8, None, 2)))
    return rows


def share_child(
    path: str, library: str, spin_ns: int | None, min_ns: float, seconds: float
) -> None:
    """Child of --gemm-share: invokes the binary file at 2 threads for `seconds`."""
    lib = Library(library)
    lib.set_min_work(min_ns)
    if spin_ns is not None and lib.has_spin:
        lib.set_spin(spin_ns)
    interpreter = make_interpreter(Path(path), library, 2)
    interpreter.invoke()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        interpreter.invoke()
    print(json.dumps({"pid": os.getpid()}))


def gemm_share(path: Path, library: Library, spin_ns: int | None, seconds: float) -> float | None:
    """Share of the binary GEMM's perf samples outside the calling thread (None: no perf)."""
    perf = shutil.which("perf")
    if perf is None:
        return None
    with tempfile.TemporaryDirectory(prefix="tfqnn_perf_") as tmp:
        data = str(Path(tmp) / "perf.data")
        child = [sys.executable, str(Path(__file__).resolve()), "--share-child", str(path)]
        child += ["--library", library.path, "--spin-ns", str(-1 if spin_ns is None else spin_ns)]
        child += ["--min-ns", str(library.default_min), "--seconds", str(seconds)]
        record = [perf, "record", "-q", "-F", "2000", "-o", data, "--", *child]
        run = subprocess.run(record, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            return None
        pid = json.loads(run.stdout.strip().splitlines()[-1])["pid"]
        report = [perf, "report", "-i", data, "-s", "pid,sym", "--stdio"]
        text = subprocess.run(report, capture_output=True, text=True, timeout=600).stdout
    return parse_gemm_share(text, pid)


def parse_gemm_share(report: str, caller: int) -> float | None:
    """From ``perf report -s pid,sym --stdio``: the GEMM's samples outside thread `caller`."""
    own = other = 0.0
    pattern = r"^\s*([\d.]+)%\s+(\d+):\S*\s+\[\.\]\s+\S*gemm_panel"
    for match in re.finditer(pattern, report, re.M):
        if int(match.group(2)) == caller:
            own += float(match.group(1))
        else:
            other += float(match.group(1))
    return other / (own + other) if own + other > 0 else None


def check_outputs(rows: list[tuple[str, str, Callable[[], None], Any]]) -> None:
    """Every binary setting's output equals the one-thread file's, bit for bit."""
    reference = None
    for name, _, apply, interpreter in rows:
        if name.startswith("int8"):
            continue
        apply()
        out = output_of(interpreter)
        if reference is None:
            reference = out
        elif not np.array_equal(out, reference):
            raise RuntimeError(f"{name}: output differs from the one-thread run")


def measure(
    network: str, paths: dict[str, Path], current: Library, baseline: Library | None, args: Any
) -> list[dict[str, Any]]:
    """Times every setting of one network; returns its rows."""
    rows = settings(paths["binary"], paths["int8"], current, baseline, args.spins)
    check_outputs(rows)

    def call(apply: Callable[[], None], invoke: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            apply()  # ~1 us of ctypes against a 1-2 ms invoke, in every setting alike
            invoke()

        return run

    calls = [call(apply, interpreter.invoke) for _, _, apply, interpreter in rows]
    samples = _timing.interleaved(calls, args.rounds, args.seconds, verbose=True)
    rows[0][2]()  # the library's defaults again
    medians = {name: float(np.median(s.wall_ns)) / 1e6 for (name, *_), s in zip(rows, samples)}
    shares: dict[str, float | None] = {}
    if args.gemm_share > 0:
        print(f"GEMM shares of {network} under perf ...", file=sys.stderr, flush=True)
        for us in args.spins if current.has_spin else [None]:
            name = f"binary 2T, spin {us} us" if us is not None else "binary 2T"
            spin_ns = None if us is None else us * 1000
            shares[name] = gemm_share(paths["binary"], current, spin_ns, args.gemm_share)
        if baseline is not None:
            shares["baseline 2T"] = gemm_share(paths["binary"], baseline, None, args.gemm_share)
    result = []
    for (name, reference, _, _), timed in zip(rows, samples, strict=True):
        wall = np.array(timed.wall_ns) / 1e6
        p10 = float(np.percentile(wall, 10))
        ref_p10 = float(np.percentile(np.array(samples[_index(rows, reference)].wall_ns) / 1e6, 10))
        result.append(
            {
                "network": network,
                "setting": name,
                "median_ms": medians[name],
                "p10_ms": p10,
                "invokes": len(wall),
                "ratio_median": medians[reference] / medians[name],
                "ratio_p10": ref_p10 / p10,
                "gemm_share": shares.get(name),
            }
        )
    return result


def _index(rows: list[tuple[str, str, Callable[[], None], Any]], name: str) -> int:
    return [row[0] for row in rows].index(name)


def print_rows(rows: list[dict[str, Any]]) -> None:
    """The table, as Markdown."""
    shares = any(r.get("gemm_share") is not None for r in rows)
    head = "| network | setting | median ms | p10 ms | 1T/this (median) | 1T/this (p10) |"
    print(head + (" workers' GEMM share |" if shares else ""))
    print("|---" * (7 if shares else 6) + "|")
    for r in rows:
        share = r.get("gemm_share")
        cell = (f" {share:.1%} |" if share is not None else " |") if shares else ""
        print(
            f"| {r['network']} | {r['setting']} | {r['median_ms']:.3f} | {r['p10_ms']:.3f} "
            f"| {r['ratio_median']:.2f}x | {r['ratio_p10']:.2f}x |" + cell
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    parser.add_argument(
        "--spins",
        default=",".join(map(str, DEFAULT_SPINS_US)),
        help="worker spins, us [0,5,30,200]",
    )
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds [10]")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per setting [2]")
    parser.add_argument("--size", type=int, default=224, help="input height and width [224]")
    parser.add_argument("--baseline", metavar="PATH", help="another build of the kernel library")
    parser.add_argument(
        "--gemm-share",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="perf each two-thread setting for SECONDS: the workers' share of the GEMM [off]",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--share-child", help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    parser.add_argument("--spin-ns", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--min-ns", type=float, default=5000.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.share_child:
        return args
    if args.rounds < 1 or args.seconds <= 0 or args.size < 8:
        parser.error("--rounds must be >= 1, --seconds > 0, --size >= 8")
    try:
        args.spins = [int(us) for us in args.spins.split(",")]
    except ValueError:
        args.spins = []
    if not args.spins or min(args.spins) < 0 or max(args.spins) > 1_000_000:
        parser.error("--spins must be integers in [0, 1000000] (microseconds)")
    if args.baseline and not Path(args.baseline).is_file():
        parser.error(f"--baseline: no file {args.baseline}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Builds the files, times every setting and prints the table."""
    args = parse_args(argv)
    if args.share_child:
        spin = None if args.spin_ns < 0 else args.spin_ns
        share_child(args.share_child, args.library, spin, args.min_ns, args.seconds)
        return 0
    import zoo_latency

    networks = args.models.split(",")
    unknown = [m for m in networks if m not in zoo_latency.LITERATURE + zoo_latency.CLASSIC]
    if unknown:
        print(f"--models: unknown {unknown}", file=sys.stderr)
        return 2
    wall = time.perf_counter()
    with quiet():
        import ai_edge_litert
        import tensorflow as tf

        import tfqnn
        from tfqnn.lite import _core
    litert = getattr(ai_edge_litert, "__version__", "?")
    versions = {"TensorFlow": tf.__version__, "ai-edge-litert": litert}
    print(_machine.header({**versions, "kernels ISA": _core.active_isa()}))
    print(
        f"Input {args.size}x{args.size}x3, batch 1; {args.rounds} interleaved rounds, "
        f"~{args.seconds:g} s per setting; worker spins {args.spins} us."
    )
    current = Library(str(tfqnn.lite.library_path()))
    baseline = Library(args.baseline) if args.baseline else None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tfqnn_threads_") as tmp:
        for network in networks:
            print(f"Building {network} ...", file=sys.stderr, flush=True)
            entries = zoo_latency.build_entries([network], args.size, 8, Path(tmp))
            paths = {e.variant: e.path for e in entries}
            rows += measure(network, paths, current, baseline, args)
    print()
    print_rows(rows)
    print(f"\nLoad average at end: {_machine.load_average()}; ", end="")
    print(f"wall time {time.perf_counter() - wall:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
