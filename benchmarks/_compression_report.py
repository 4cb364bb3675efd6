"""The benchmark's report: Markdown tables of one run, and its targets checked.

`report` prints and returns the lines of the Results section (machine and
settings, then per workload the step times, the wire bytes and the time to
the target accuracy, then the compress/decompress compute) and the verdicts
on the targets of issue 4:

* for the MLP at 100 Mbit/s with 4 workers, OneBitEF and PowerSGD steps at
  least `TARGET_STEP_SPEEDUP` times faster than fp32 all-reduce, and their
  time to the target accuracy at least `TARGET_TTA_SPEEDUP` times shorter
  with at most `TARGET_POINTS_LOST` points lost;
* the measured wire bytes within `TARGET_BYTES` of the prediction.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import _machine
import compression_worker as cw

TARGET_STEP_SPEEDUP = 5.0
TARGET_TTA_SPEEDUP = 3.0
TARGET_POINTS_LOST = 0.5
TARGET_BYTES = 0.10
TARGETED = ("onebit_ef", "powersgd")

Run = dict[str, Any]
"""`_compression_launch.summarize` of one cluster."""
Runs = dict[tuple[str, int, str], Run]
Verdict = tuple[str, bool]


def report(
    args: argparse.Namespace,
    machine: dict[str, Any],
    predictions: dict[str, dict[str, float]],
    codec: dict[str, dict[str, dict[str, float]]],
    runs: Runs,
    wall: float,
    targets: dict[str, float],
    library_at_end: str,
) -> tuple[list[str], list[Verdict]]:
    """Prints the report; returns ``(lines, verdicts)``, a verdict being ``(text, ok)``.

    Args:
        args: the parsed command line.
        machine: `compression.machine_info()` at the start.
        predictions: ``"workload/compressor/P"`` -> predicted bytes per element.
        codec: workload -> compressor -> compress/decompress seconds (may be empty).
        runs: ``(workload, P, compressor)`` -> `summarize` of that cluster.
        wall: seconds the whole benchmark ran.
        targets: workload -> the target test accuracy.
        library_at_end: `compression.library_fingerprint()` at the end.
    """
    lines: list[str] = []

    def emit(text: str = "") -> None:
        lines.append(text)
        print(text, flush=True)

    emit("\n## Results")
    for line in _preamble(args, machine, wall, library_at_end):
        emit(line)
    verdicts: list[Verdict] = []
    for workload in args.workload_list:
        for table in (
            _step_table(args, runs, workload),
            _bytes_table(args, predictions, runs, workload, verdicts),
            *_accuracy_tables(args, runs, workload, targets[workload], verdicts),
        ):
            for line in table:
                emit(line)
    verdicts = _step_verdicts(args, runs) + verdicts
    if codec:
        for line in _codec_table(args, codec):
            emit(line)
    if verdicts:
        emit("\n### Targets")
        for text, ok in verdicts:
            emit(f"- {'PASS' if ok else 'FAIL'}: {text}")
    return lines, verdicts


def _preamble(
    args: argparse.Namespace, machine: dict[str, Any], wall: float, library_at_end: str
) -> list[str]:
    changed = library_at_end != machine["library"]
    return [
        f"Machine: {machine['cpu']} ({machine['arch']}), {machine['cpus']} CPUs, "
        f"{machine.get('memory_gib')} GiB; Python {machine['python']}, TensorFlow "
        f"{machine.get('tensorflow') or machine.get('tensorflow-cpu')}, Keras "
        f"{machine.get('keras')}; {machine['date_utc']} UTC; load average at start "
        f"{machine['load_average_start']}, at end {_machine.load_average()}; {wall / 60:.1f} min.",
        f"Library: {machine['library']} at start"
        + (
            f", {library_at_end} at the end (CHANGED during the run: results mix library versions)"
            if changed
            else ""
        )
        + ".",
        f"Settings: workers {args.worker_list}, links {args.link_list}, {args.steps} timed "
        f"steps per link after {args.warmup} warm-up steps, global batch {args.batch_size}, "
        f"{args.optimizer}"
        f"{f' (learning rate {args.learning_rate})' if args.learning_rate else ''}, "
        f"{args.schedule} learning rate, {args.threads} intra/inter-op thread(s) per worker, "
        f"{'pinned' if args.pin else 'not pinned'}; accuracy phase "
        f"{args.accuracy_steps} unshaped steps for P in {sorted(args.accuracy_list)} on "
        f"{', '.join(args.accuracy_workloads)}, budget "
        f"{f'{args.accuracy_budget:.0f} s' if args.accuracy_budget else 'none'} per cluster.",
    ]


def _table(
    title: str, header: list[str], rows: list[list[str]], note: str | None = None
) -> list[str]:
    lines = [title] + ([note] if note else [])
    return lines + [_row(header), _row(["---"] * len(header))] + [_row(r) for r in rows]


def _step_table(args: argparse.Namespace, runs: Runs, workload: str) -> list[str]:
    """Median step time per worker count and link, with the speed-up vs fp32."""
    header = ["compressor"] + [f"P={p} {link}" for p in args.worker_list for link in args.link_list]
    rows = []
    for name in args.compressor_list:
        cells = [_label(name)]
        for p in args.worker_list:
            run, base = runs.get((workload, p, name)), runs.get((workload, p, "none"))
            for link in args.link_list:
                if run is None:
                    cells.append("failed")
                    continue
                t = run["step_s"][link]
                speed = base["step_s"][link] / t if base else None
                cells.append(f"{fmt_ms(t)} ({fmt_x(speed)})")
        rows.append(cells)
    title = f"\n### {workload}: step time, ms (median), and speed-up vs fp32 all-reduce"
    return _table(title, header, rows)


def _bytes_table(
    args: argparse.Namespace,
    predictions: dict[str, dict[str, float]],
    runs: Runs,
    workload: str,
    verdicts: list[Verdict],
) -> list[str]:
    """Measured wire bytes per element against the predictions; appends the
    MLP's byte verdicts to ``verdicts``."""
    header = ["compressor"]
    for p in args.worker_list:
        header += [
            f"P={p} bpe/8",
            f"P={p} model",
            f"P={p} measured",
            f"P={p} ratio",
            f"P={p} excess kB/step",
        ]
    rows = []
    for name in args.compressor_list:
        cells = [_label(name)]
        for p in args.worker_list:
            pred = predictions[f"{workload}/{name}/{p}"]
            run = runs.get((workload, p, name))
            cells += [f"{pred['default_bytes']:.3f}", f"{pred['model_bytes']:.3f}"]
            if run is None:
                cells += ["failed", "-", "-"]
                continue
            measured = list(run["bytes_per_element"].values())
            ratios = [m / pred["model_bytes"] for m in measured]
            worst = max(ratios, key=lambda r: abs(r - 1))
            excess = (statistics.fmean(measured) - pred["model_bytes"]) * run["num_params"]
            cells += [
                f"{statistics.fmean(measured):.3f}",
                f"{statistics.fmean(ratios):.3f} ({worst:.3f})",
                f"{excess / 1e3:.1f}",
            ]
            if workload == "mlp":
                text = (
                    f"mlp P={p} {name}: wire bytes within 10 % of the "
                    f"prediction (worst link {worst:.3f}x)"
                )
                verdicts.append((text, abs(worst - 1) <= TARGET_BYTES))
        rows.append(cells)
    note = (
        "predicted: bits_per_element(P)/8 of a 1024x1024 tensor; for this model "
        "(uncompressed tensors as fp32 ring all-reduce); measured: w{i} tx bytes, mean "
        "over links and workers; ratio: measured / model prediction, worst link in "
        "brackets; excess: (measured - model) x parameters, per worker and step"
    )
    title = f"\n### {workload}: bytes per gradient element per worker on the wire"
    return _table(title, header, rows, note)


def _accuracy_tables(
    args: argparse.Namespace, runs: Runs, workload: str, target: float, verdicts: list[Verdict]
) -> list[list[str]]:
    """One time-to-target table per worker count with an accuracy phase;
    appends the MLP's time-to-target verdicts to ``verdicts``."""
    tables: list[list[str]] = []
    for p in sorted(args.accuracy_list & set(args.worker_list)):
        if not any(
            "accuracy_curve" in (runs.get((workload, p, n)) or {}) for n in args.compressor_list
        ):
            continue
        header = ["compressor", "steps to target", "final acc %", "vs fp32 (points)"] + [
            f"time {link} s" for link in args.link_list
        ]
        base = runs.get((workload, p, "none"))
        rows = []
        for name in args.compressor_list:
            run = runs.get((workload, p, name))
            if run is None or "accuracy_curve" not in run:
                rows.append([_label(name), "failed"] + ["-"] * (len(header) - 2))
                continue
            rows.append(_accuracy_row(args, run, base, name, target))
            if workload == "mlp" and p == 4 and _alias(name) in TARGETED:
                verdict = _time_to_target_verdict(run, base, name, target)
                if verdict is not None:
                    verdicts.append(verdict)
        note = (
            f"steps to target: first evaluation (every {args.eval_every} steps, full test "
            f"set) at or above it, in the unshaped accuracy phase; time to target = steps "
            f"x median step time on each link; final: mean of the evaluations at steps "
            f"{_last_steps(args)}; speed-up vs fp32 in brackets"
        )
        title = f"\n### {workload}, P={p}: time to {target:.0%} test accuracy"
        tables.append(_table(title, header, rows, note))
    return tables


def _points_lost(run: Run, base: Run | None) -> float | None:
    if not base or "final_accuracy" not in base:
        return None
    return (base["final_accuracy"] - run["final_accuracy"]) * 100


def _accuracy_row(
    args: argparse.Namespace, run: Run, base: Run | None, name: str, target: float
) -> list[str]:
    steps, base_steps = _steps_to(run, target), _steps_to(base, target)
    lost = _points_lost(run, base)
    cut = run["accuracy_steps_run"] < args.accuracy_steps
    cells = [
        _label(name),
        "not reached" if steps is None else str(steps),
        f"{run['final_accuracy'] * 100:.2f}"
        + (f" (cut at step {run['accuracy_steps_run']})" if cut else ""),
        "-" if lost is None else f"{0.0 - lost:+.2f}",
    ]
    for link in args.link_list:
        if steps is None:
            cells.append("-")
            continue
        tta = steps * run["step_s"][link]
        speed = (
            base_steps * base["step_s"][link] / tta
            if base is not None and base_steps is not None
            else None
        )
        cells.append(f"{tta:,.0f} ({fmt_x(speed)})")
    return cells


def _time_to_target_verdict(run: Run, base: Run | None, name: str, target: float) -> Verdict | None:
    """The 100 Mbit/s time-to-target verdict of a targeted compressor (None without that link)."""
    if "100mbit" not in run["step_s"]:
        return None
    steps, base_steps = _steps_to(run, target), _steps_to(base, target)
    lost = _points_lost(run, base)
    speed = (
        base_steps * base["step_s"]["100mbit"] / (steps * run["step_s"]["100mbit"])
        if base is not None and steps and base_steps
        else None
    )
    ok = (
        speed is not None
        and speed >= TARGET_TTA_SPEEDUP
        and lost is not None
        and lost <= TARGET_POINTS_LOST
    )
    text = (
        f"mlp P=4 100mbit {name}: time to target {fmt_x(speed)} shorter (>= 3x), "
        f"{'-' if lost is None else f'{lost:.2f}'} points lost (<= 0.5)"
    )
    return text, ok


def _step_verdicts(args: argparse.Namespace, runs: Runs) -> list[Verdict]:
    verdicts = []
    for name in args.compressor_list:
        run, base = runs.get(("mlp", 4, name)), runs.get(("mlp", 4, "none"))
        if _alias(name) in TARGETED and run and base and "100mbit" in run["step_s"]:
            speed = base["step_s"]["100mbit"] / run["step_s"]["100mbit"]
            text = f"mlp P=4 100mbit {name}: step {speed:.1f}x faster than fp32 (>= 5x)"
            verdicts.append((text, speed >= TARGET_STEP_SPEEDUP))
    return verdicts


def _codec_table(
    args: argparse.Namespace, codec: dict[str, dict[str, dict[str, float]]]
) -> list[str]:
    p = max(args.worker_list)
    header = ["compressor"] + [
        f"{w} {col}" for w in codec for col in ("elements", "encode", "decode", "per step")
    ]
    rows = []
    for name in args.compressor_list:
        if name == "none":
            continue
        cells = [_label(name)]
        for table in codec.values():
            c = table[name]
            per_step = c["encode_s"] + decodes_per_step(name, p) * c["decode_s"]
            cells += [
                f"{c['elements']:,}",
                fmt_ms(c["encode_s"]),
                fmt_ms(c["decode_s"]),
                fmt_ms(per_step),
            ]
        rows.append(cells)
    note = (
        "per step = encode + decodes x decode (all-gather schemes decode each of the P "
        "payloads and their own once more; PowerSGD's exchange: two matmuls and a QR "
        "to encode, two products to decode)"
    )
    title = (
        f"\n### compress / decompress compute, one process, {args.threads} thread(s), P={p} (ms)"
    )
    return _table(title, header, rows, note)


def decodes_per_step(name: str, num_workers: int) -> int:
    """How many decompress calls one worker makes per step (see communicator)."""
    table = {
        "onebit_ef": num_workers + 1,
        "ef_sign": num_workers + 1,
        "adaq": num_workers + 1,
        "threshold": num_workers + 1,
        "powersgd": 2,
    }
    if cw.split_spec(name)[1].get("two_phase"):
        return 3  # its own, the P shards it receives, the P shards gathered
    return table.get(_alias(name), 1)


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.0f}"


def fmt_x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _last_steps(args: argparse.Namespace) -> str:
    """The steps of the last 3 evaluations of the accuracy phase."""
    s, e = args.accuracy_steps, args.eval_every
    steps = sorted({*range(e, s + 1, e), s})
    return ", ".join(str(x) for x in steps[-3:])


def _steps_to(run: Run | None, target: float) -> int | None:
    if not run or "accuracy_curve" not in run:
        return None
    return next((step for step, acc in run["accuracy_curve"] if acc >= target), None)


def _alias(name: str) -> str:
    return cw.split_spec(name)[0]


def _label(name: str) -> str:
    return "fp32 all-reduce (none)" if name == "none" else name


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
