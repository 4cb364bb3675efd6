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

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _netns
import compression_worker as cw

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "compression_worker.py"


class LaunchFailed(RuntimeError):
    """A cluster that did not finish: a worker exited, printed no result, or timed out."""


def launch(net, args, workload, num_workers, compressor, port, learning_rate, log):
    """Runs one cluster; returns the workers' results (None when it failed),
    the driver's counters and the seconds it took."""
    accuracy = num_workers in args.accuracy_list and workload in args.accuracy_workloads
    accuracy_steps = args.accuracy_steps if accuracy else 0
    control = tempfile.mkdtemp(prefix="tfqnn_compression_")
    cluster = {"worker": [f"{net.address(i)}:{port}" for i in range(num_workers)]}
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="-1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    worker_args = [
        "--workload",
        workload,
        "--compressor",
        compressor,
        "--control",
        control,
        "--links",
        len(args.link_list),
        "--warmup",
        args.warmup,
        "--steps",
        args.steps,
        "--accuracy-steps",
        accuracy_steps,
        "--eval-every",
        args.eval_every,
        "--batch-size",
        args.batch_size,
        "--optimizer",
        args.optimizer,
        "--learning-rate",
        learning_rate,
        "--schedule",
        args.schedule,
        "--threads",
        args.threads,
        "--launched-at",
        time.time(),
    ]
    procs, outputs = [], []
    counters = {}
    net.shape("unshaped")
    started = time.monotonic()
    deadline = started + args.launch_timeout
    try:
        for i in range(num_workers):
            config = {"cluster": cluster, "task": {"type": "worker", "index": i}}
            cmd = net.inside(i) + [sys.executable, str(WORKER)] + [str(a) for a in worker_args]
            if args.pin:
                cmd = ["taskset", "-c", str(i % os.cpu_count())] + cmd
            out = open(os.path.join(control, f"stdout{i}"), "w+")  # noqa: SIM115
            err = open(os.path.join(control, f"stderr{i}"), "w+")  # noqa: SIM115
            outputs.append((out, err))
            procs.append(
                subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=err,
                    cwd=ROOT,
                    env=dict(env, TF_CONFIG=json.dumps(config)),
                    preexec_fn=_netns.die_with_parent,  # noqa: PLW1509
                    start_new_session=True,
                )
            )
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
                counters.setdefault(name, {})[kind] = (time.monotonic(), net.counters(num_workers))
            _release(control, k, "go")
            k += 1
        # Once every worker printed its result, they are stopped: MWMS
        # processes take many seconds to shut down their coordination service.
        results = [None] * num_workers
        while not all(results):
            for i, (out, _) in enumerate(outputs):
                if results[i] is None:
                    results[i] = _result_line(out)
            if not all(results):
                if all(p.poll() is not None for p in procs):
                    _check(procs, deadline)
                    raise LaunchFailed(
                        f"worker(s) {[i for i, r in enumerate(results) if not r]} printed no result"
                    )
                _check(procs, deadline)
                time.sleep(0.05)
        return results, counters, time.monotonic() - started
    except LaunchFailed as error:
        tails = []
        for i, (_out, err) in enumerate(outputs):
            err.seek(0)
            tails.append(f"--- worker {i} rc={procs[i].poll()}\n{err.read()[-2500:]}")
        log(f"FAILED {workload} P={num_workers} {compressor}: {error}\n" + "\n".join(tails))
        return None, counters, time.monotonic() - started
    finally:
        for p in procs:
            _netns.kill(p)
        for out, err in outputs:
            out.close()
            err.close()
        shutil.rmtree(control, ignore_errors=True)


def _result_line(out):
    out.seek(0)
    complete = out.read().split("\n")[:-1]  # a line still being written has no newline yet
    lines = [ln for ln in complete if ln.startswith(cw.RESULT_PREFIX)]
    return json.loads(lines[-1][len(cw.RESULT_PREFIX) :]) if lines else None


def _check(procs, deadline):
    bad = [(i, p.returncode) for i, p in enumerate(procs) if p.poll() not in (None, 0)]
    if bad:
        raise LaunchFailed(f"worker(s) exited: {bad}")
    if time.monotonic() > deadline:
        raise LaunchFailed("timed out")


def _release(control, k, text):
    """Writes ``go.K`` (atomically: the workers poll for it)."""
    path = os.path.join(control, f"go.{k}")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _wait_ready(control, k, procs, deadline):
    names = [os.path.join(control, f"ready.{k}.{i}") for i in range(len(procs))]
    while not all(os.path.exists(n) for n in names):
        _check(procs, deadline)
        time.sleep(0.005)


def summarize(results, counters, args, num_workers):
    """Step time, wire bytes and accuracy of one cluster."""
    num_params = results[0]["num_params"]
    out = {
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
    evaluations = {}
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


def predictions_and_codec(args):
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


def _result(done, what):
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(cw.RESULT_PREFIX)]
    if done.returncode or not lines:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(cw.RESULT_PREFIX) :])
