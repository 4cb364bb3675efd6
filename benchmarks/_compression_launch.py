"""Runs the benchmark's processes: one MWMS cluster, and the one-process measurements.

`launch` starts ``compression_worker.py`` once per worker, each in its
namespace of a `_netns.Network`, and steps the cluster through its phases
with control files in a temporary folder: worker ``i`` writes
``ready.K.i`` when it reaches checkpoint ``K`` and waits for ``go.K``
(``go`` or ``stop``). Between checkpoints the driver shapes the links and
reads the interfaces' byte counters. `summarize` turns the workers' results
and the counters into step times, wire bytes and the accuracy curve.
`predictions_and_codec` computes, in one process without network, the
predicted bytes per element and the compress/decompress times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import _netns
import compression_worker as cw

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "compression_worker.py"

Counters = dict[str, dict[str, tuple[float, list[tuple[int, int]]]]]
"""link -> "start"/"end" -> (monotonic time, [(tx, rx) bytes of each worker])."""


class LaunchFailed(RuntimeError):
    """A cluster that did not finish: a worker exited, printed no result, or timed out."""


def launch(
    net: _netns.Network,
    args: argparse.Namespace,
    workload: str,
    num_workers: int,
    compressor: str,
    port: int,
    learning_rate: float,
    log: Callable[[str], None],
) -> tuple[list[dict] | None, Counters, float]:
    """Runs one cluster; returns the workers' results (None when it failed),
    the driver's counters and the seconds it took."""
    accuracy = num_workers in args.accuracy_list and workload in args.accuracy_workloads
    accuracy_steps = args.accuracy_steps if accuracy else 0
    control = tempfile.mkdtemp(prefix="tfqnn_compression_")
    worker_args = _worker_args(args, workload, compressor, control, accuracy_steps, learning_rate)
    cluster = {"worker": [f"{net.address(i)}:{port}" for i in range(num_workers)]}
    procs: list[subprocess.Popen] = []
    outputs: list[tuple[IO[str], IO[str]]] = []
    counters: Counters = {}
    net.shape("unshaped")
    started = time.monotonic()
    deadline = started + args.launch_timeout
    try:
        for i in range(num_workers):
            out = open(os.path.join(control, f"stdout{i}"), "w+")  # noqa: SIM115
            err = open(os.path.join(control, f"stderr{i}"), "w+")  # noqa: SIM115
            outputs.append((out, err))
            config = {"cluster": cluster, "task": {"type": "worker", "index": i}}
            procs.append(_start_worker(net, args, i, config, worker_args, out, err))
        _drive(net, args, control, procs, accuracy_steps, started, deadline, counters)
        results = _collect([out for out, _ in outputs], procs, deadline)
        return results, counters, time.monotonic() - started
    except LaunchFailed as error:
        tails = []
        for i, (_, stderr) in enumerate(outputs):
            stderr.seek(0)
            tails.append(f"--- worker {i} rc={procs[i].poll()}\n{stderr.read()[-2500:]}")
        log(f"FAILED {workload} P={num_workers} {compressor}: {error}\n" + "\n".join(tails))
        return None, counters, time.monotonic() - started
    finally:
        for p in procs:
            _netns.kill(p)
        for stdout, stderr in outputs:
            stdout.close()
            stderr.close()
        shutil.rmtree(control, ignore_errors=True)


def _worker_args(
    args: argparse.Namespace,
    workload: str,
    compressor: str,
    control: str,
    accuracy_steps: int,
    learning_rate: float,
) -> list[str]:
    """The command line of ``compression_worker.py`` (the same for every worker)."""
    options = {
        "--workload": workload,
        "--compressor": compressor,
        "--control": control,
        "--links": len(args.link_list),
        "--warmup": args.warmup,
        "--steps": args.steps,
        "--accuracy-steps": accuracy_steps,
        "--eval-every": args.eval_every,
        "--batch-size": args.batch_size,
        "--optimizer": args.optimizer,
        "--learning-rate": learning_rate,
        "--schedule": args.schedule,
        "--threads": args.threads,
        "--launched-at": time.time(),
    }
    return [str(x) for option, value in options.items() for x in (option, value)]


def _start_worker(
    net: _netns.Network,
    args: argparse.Namespace,
    index: int,
    tf_config: dict,
    worker_args: list[str],
    out: IO[str],
    err: IO[str],
) -> subprocess.Popen:
    """Worker ``index`` in its namespace, with its ``TF_CONFIG``."""
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="-1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        TF_CONFIG=json.dumps(tf_config),
    )
    cmd = net.inside(index) + [sys.executable, str(WORKER), *worker_args]
    if args.pin:
        cmd = ["taskset", "-c", str(index % (os.cpu_count() or 1)), *cmd]
    return subprocess.Popen(
        cmd,
        stdout=out,
        stderr=err,
        cwd=ROOT,
        env=env,
        preexec_fn=_netns.die_with_parent,  # noqa: PLW1509
        start_new_session=True,
    )


def _drive(
    net: _netns.Network,
    args: argparse.Namespace,
    control: str,
    procs: list[subprocess.Popen],
    accuracy_steps: int,
    started: float,
    deadline: float,
    counters: Counters,
) -> None:
    """Steps the workers through their checkpoints: the accuracy phase's
    evaluations (stopped at the first one past ``--accuracy-budget``), then
    for each link its shaping and the counters at the start and end of the
    timed steps, recorded into ``counters``."""
    k = 0
    for step in cw.eval_steps(accuracy_steps, args.eval_every):
        _wait_ready(control, k, procs, deadline)
        stop = bool(args.accuracy_budget) and time.monotonic() - started > args.accuracy_budget
        _release(control, k, "stop" if stop else "go")
        k += 1
        if stop:
            accuracy_steps = step
            break
    events, _ = cw.schedule(accuracy_steps, len(args.link_list), args.warmup, args.steps)
    for _, kind, link in events:
        _wait_ready(control, k, procs, deadline)
        name = args.link_list[link]
        if kind == "link":
            net.shape(name)
        else:
            counters.setdefault(name, {})[kind] = (time.monotonic(), net.counters(len(procs)))
        _release(control, k, "go")
        k += 1


def _collect(outs: list[IO[str]], procs: list[subprocess.Popen], deadline: float) -> list[dict]:
    """Every worker's result line, as soon as all have printed one (then the
    caller stops them: MWMS processes take many seconds to shut down their
    coordination service)."""
    results: list[dict | None] = [None] * len(outs)
    while True:
        for i, out in enumerate(outs):
            if results[i] is None:
                results[i] = _result_line(out)
        done = [r for r in results if r]
        if len(done) == len(results):
            return done
        if all(p.poll() is not None for p in procs):
            _check(procs, deadline)
            missing = [i for i, r in enumerate(results) if not r]
            raise LaunchFailed(f"worker(s) {missing} printed no result")
        _check(procs, deadline)
        time.sleep(0.05)


def _result_line(out: IO[str]) -> dict | None:
    out.seek(0)
    complete = out.read().split("\n")[:-1]  # a line still being written has no newline yet
    lines = [ln for ln in complete if ln.startswith(cw.RESULT_PREFIX)]
    return json.loads(lines[-1][len(cw.RESULT_PREFIX) :]) if lines else None


def _check(procs: list[subprocess.Popen], deadline: float) -> None:
    bad = [(i, p.returncode) for i, p in enumerate(procs) if p.poll() not in (None, 0)]
    if bad:
        raise LaunchFailed(f"worker(s) exited: {bad}")
    if time.monotonic() > deadline:
        raise LaunchFailed("timed out")


def _release(control: str, k: int, text: str) -> None:
    """Writes ``go.K`` (atomically: the workers poll for it)."""
    path = os.path.join(control, f"go.{k}")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _wait_ready(control: str, k: int, procs: list[subprocess.Popen], deadline: float) -> None:
    names = [os.path.join(control, f"ready.{k}.{i}") for i in range(len(procs))]
    while not all(os.path.exists(n) for n in names):
        _check(procs, deadline)
        time.sleep(0.005)


def summarize(
    results: list[dict], counters: Counters, args: argparse.Namespace, num_workers: int
) -> dict[str, Any]:
    """Step time, wire bytes and accuracy of one cluster."""
    num_params = results[0]["num_params"]
    out: dict[str, Any] = {
        "num_params": num_params,
        "step_s": {},
        "bytes_per_element": {},
        "rx_bytes_per_element": {},
        "window_s": {},
        "compressed": results[0]["compressed"],
        "setup_s": max(r["setup_s"] for r in results),
        "accuracy_steps_run": results[0]["accuracy_steps_run"],
    }
    for key in ("imported_s", "fit_started_s", "first_step_s", "eval_s", "fit_s"):
        out[key] = max(r[key] or 0 for r in results)
    out["accuracy_phase_s"] = max(sum(r["accuracy_step_s"]) for r in results)
    out["max_threads"] = max(n for r in results for _, n in r["threads"] if n)
    for link_index, link in enumerate(args.link_list):
        per_step = zip(*[r["phases"][link_index]["timed_s"] for r in results])
        out["step_s"][link] = statistics.median(statistics.fmean(s) for s in per_step)
        (t0, start), (t1, end) = counters[link]["start"], counters[link]["end"]
        tx = [e[0] - s[0] for s, e in zip(start, end)]
        rx = [e[1] - s[1] for s, e in zip(start, end)]
        out["bytes_per_element"][link] = statistics.fmean(tx) / args.steps / num_params
        out["rx_bytes_per_element"][link] = statistics.fmean(rx) / args.steps / num_params
        out["window_s"][link] = (t1 - t0) / args.steps
    evaluations: dict[int, tuple[int, int]] = {}
    for r in results:
        for step, correct, count in r["evaluations"]:
            c, n = evaluations.get(step, (0, 0))
            evaluations[step] = (c + correct, n + count)
    if evaluations:
        curve = [(step, c / n) for step, (c, n) in sorted(evaluations.items())]
        out["accuracy_curve"] = curve
        out["final_accuracy"] = statistics.fmean(a for _, a in curve[-3:])
        out["last_accuracy"] = curve[-1][1]
    return out


def predictions_and_codec(args: argparse.Namespace) -> tuple[dict, dict]:
    """One process without network: predicted bytes per element, codec times."""
    code = f"""
import json, math, sys
sys.path.insert(0, {str(HERE)!r})
import compression_worker as cw
cw.set_threads({args.threads})
import tensorflow as tf
out = {{}}
for workload in {args.workload_list!r}:
    shapes = cw.kernel_shapes(workload)
    total = sum(math.prod(s) for s in shapes)
    for name in {args.compressor_list!r}:
        for p in {args.worker_list!r}:
            fp32 = 2 * (p - 1) / p * 32
            if name == "none":
                default = model = fp32
            else:
                c = cw.make_compressor(name)
                default = c.bits_per_element(p)
                model = sum((c.bits_per_element(p, s) if c.compresses(s, tf.float32, 1024)
                             else fp32) * math.prod(s) for s in shapes) / total
            out[f"{{workload}}/{{name}}/{{p}}"] = {{"default_bytes": default / 8,
                                                  "model_bytes": model / 8}}
print("RESULT " + json.dumps(out))
"""
    env = dict(
        os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1", PYTHONPATH=str(ROOT)
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, cwd=ROOT
    )
    predictions = _result(done, "predictions")
    codec = {}
    if not args.no_codec:
        names = [n for n in args.compressor_list if n != "none"]
        for workload in args.workload_list if names else ():
            done = subprocess.run(
                [
                    sys.executable,
                    str(WORKER),
                    "--codec",
                    "--workload",
                    workload,
                    "--compressors",
                    ",".join(names),
                    "--num-workers",
                    str(max(args.worker_list)),
                    "--threads",
                    str(args.threads),
                ],
                check=False,
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
            )
            codec[workload] = _result(done, "codec timing")
    return predictions, codec


def _result(done: subprocess.CompletedProcess, what: str) -> dict:
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(cw.RESULT_PREFIX)]
    if done.returncode or not lines:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(cw.RESULT_PREFIX) :])
