"""Gradient compression under MultiWorkerMirroredStrategy on emulated links.

Runs 2 and 4 MWMS workers (``benchmarks/compression_worker.py``: Keras
``fit``), each in its own network namespace, joined by veth pairs to a bridge
``br0``; every worker's link is shaped with ``tc qdisc ... tbf`` to
100 Mbit/s and 1 Gbit/s, and left unshaped. All traffic stays on this
machine: the script re-executes itself under ``unshare --net`` (plus
``--map-root-user`` when not root), so the bridge, the namespaces and the
shaping live in a private network namespace that disappears with it, also on
Ctrl-C or errors; every process it starts dies with it (``PR_SET_PDEATHSIG``).

The modules beside this script hold its parts: ``_netns.py`` the network
(one namespace per worker, veth pairs, ``tbf`` on both ends of a link),
``_compression_launch.py`` the clusters and the one-process measurements,
``_compression_report.py`` the tables and the targets. Workers run as ``nsenter -t HOLDER -n python compression_worker.py``, with
``TF_CONFIG`` listing the ``10.9.0.X`` addresses, ``TF_CPP_MIN_LOG_LEVEL=2``,
``CUDA_VISIBLE_DEVICES=-1`` and 1 intra- and 1 inter-op thread each
(``--threads``); ``--pin`` pins worker i to CPU ``i mod cpus`` (default: no
pinning).

For each workload (``mlp``: 784-2048-2048-2048-10, 10.0M parameters,
communication-bound; ``cnn``: a 0.21M-parameter CNN), each number of
workers and each compressor (``none`` = plain MWMS fp32 ring all-reduce, and
tfqnn's compressors by alias, with their defaults or with options as
``alias:key=value:...``, e.g. ``onebit_ef:two_phase=true`` or
``powersgd:rank=2``, under `tfqnn.distribute.GradientCompressionStrategy`),
one cluster runs:

1. with workers in ``--accuracy-workers`` (default 4), for workloads in
   ``--accuracy-workloads`` (default both): an accuracy phase of
   ``--accuracy-steps`` steps on unshaped links, evaluating the full
   Fashion-MNIST test set every ``--eval-every`` steps (each worker its
   share, no collective); it ends at the first evaluation after
   ``--accuracy-budget`` seconds from the cluster's launch (default 300 s:
   only a compressor that makes the step several times slower than fp32
   is cut, and the tables say where);
2. for each link: ``--warmup`` steps, then ``--steps`` timed steps, with the
   interfaces' byte counters read before and after (``/proc/PID/net/dev`` of
   the holder: the namespace's ``/sys/class/net/w{i}/statistics`` values).

It reports:

(a) step time: the median over the timed steps of the workers' mean step
    wall time;
(b) bytes per gradient element per worker on the wire: the ``w{i}`` tx
    bytes (Ethernet frames: payload, TCP/IP headers, ACKs, the small
    uncompressed tensors, statistics, flags, the loss all-reduce, gRPC
    framing) / timed steps / the model's parameters, averaged over the
    workers, next to ``compressor.bits_per_element(P) / 8`` (a 1024x1024
    tensor) and to the prediction for this model (``bits_per_element(P,
    shape)`` for each compressed tensor, ``2 (P-1)/P * 4`` bytes for the
    others: plain fp32 ring all-reduce);
(c) time to the target accuracy: steps to the target are measured once per
    compressor in the unshaped accuracy phase (the computation does not
    depend on the link), and time to target = steps to target x the median
    step time on each link. The accuracy after the accuracy phase (mean of
    the last 3 evaluations, to damp evaluation noise) is reported with the
    points lost against fp32.

Workers train with Keras ``fit``, Adam by default (learning rate 3e-4 on the
MLP, 3e-3 on the CNN; ``--optimizer sgd`` for SGD with momentum 0.9, 0.05),
constant or (``--schedule cosine``) decayed to 0 over the accuracy phase
with a cosine, global batch ``--batch-size`` (256) split over the workers.

Before the clusters, one process times each compressor's compress and
decompress on the workload's kernels (the compute a step adds).

Targets (issue 4), for the MLP: at 100 Mbit/s with 4 workers, OneBitEF and
PowerSGD steps at least 5x faster than fp32 all-reduce and their time to the
target accuracy at least 3x shorter with at most 0.5 points lost; measured
wire bytes within 10 % of the prediction.

Usage: python benchmarks/compression.py [--quick] [--workloads mlp,cnn]
    [--workers 2,4] [--links 100mbit,1gbit,unshaped] [--compressors none,...]
    [--steps 5] [--warmup 2] [--accuracy-steps 300] [--accuracy-workers 4]
    [--accuracy-workloads mlp,cnn] [--accuracy-budget 300] [--eval-every 20]
    [--optimizer adam] [--schedule constant] [--threads 1] [--pin] [--no-codec] [--json PATH]

A full default run took 43 minutes on a shared 2-core machine; ``--quick``
about 3.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before any TensorFlow loads

import argparse
import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
# After the sys.path entry; none of them imports TensorFlow.
import _compression_launch as launcher  # noqa: E402
import _compression_report  # noqa: E402
import _machine  # noqa: E402
import _netns  # noqa: E402
import compression_worker as cw  # noqa: E402

INSIDE = "TFQNN_COMPRESSION_BENCH_NETNS"
COMPRESSORS = (
    "none",
    "float16",
    "onebit_ef",
    "terngrad",
    "qsgd",
    "dorefa_grad",
    "signsgd",
    "ef_sign",
    "adaq",
    "threshold",
    "powersgd",
)
WORKLOADS = {  # learning rates and target test accuracy, chosen for fp32
    "mlp": {"adam": 3e-4, "sgd": 0.05, "target": 0.85},
    "cnn": {"adam": 3e-3, "sgd": 0.05, "target": 0.85},
}
BASE_PORT = 21000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (a few minutes): 4 workers, mlp and cnn, "
        "none/onebit_ef/powersgd, 100mbit and unshaped, short phases",
    )
    parser.add_argument("--workloads", default="mlp,cnn")
    parser.add_argument("--workers", default="2,4")
    parser.add_argument("--links", default="100mbit,1gbit,unshaped")
    parser.add_argument("--compressors", default=",".join(COMPRESSORS))
    parser.add_argument("--steps", type=int, default=5, help="timed steps per link")
    parser.add_argument("--warmup", type=int, default=2, help="steps before each timed window")
    parser.add_argument(
        "--accuracy-steps",
        type=int,
        default=300,
        help="unshaped steps of the accuracy phase (0: none)",
    )
    parser.add_argument(
        "--accuracy-workers", default="4", help="the worker counts that run the accuracy phase"
    )
    parser.add_argument(
        "--accuracy-workloads", default="mlp,cnn", help="the workloads that run the accuracy phase"
    )
    parser.add_argument(
        "--accuracy-budget",
        type=float,
        default=300.0,
        help="seconds from a cluster's launch after which its accuracy phase "
        "ends at the next evaluation (0: no limit)",
    )
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument(
        "--optimizer",
        choices=["adam", "sgd"],
        default="adam",
        help="Adam (learning rate 3e-4 on the MLP, 3e-3 on the CNN) or SGD with momentum 0.9",
    )
    parser.add_argument(
        "--learning-rate", type=float, help="instead of the workload's default for the optimizer"
    )
    parser.add_argument(
        "--schedule",
        choices=["constant", "cosine"],
        default="constant",
        help="learning rate: constant, or cosine decay to 0 over the accuracy phase",
    )
    parser.add_argument("--threads", type=int, default=1, help="TF intra/inter-op threads")
    parser.add_argument("--pin", action="store_true", help="taskset worker i to CPU i mod cpus")
    parser.add_argument(
        "--no-codec", action="store_true", help="skip the compress/decompress timing"
    )
    parser.add_argument(
        "--launch-timeout",
        type=float,
        default=1500.0,
        help="seconds before one cluster is given up",
    )
    parser.add_argument("--json", help="write all measurements to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.links = "4", "100mbit,unshaped"
        args.compressors = "none,onebit_ef,powersgd"
        args.steps, args.warmup, args.accuracy_steps, args.eval_every = 3, 1, 40, 20
    args.workload_list = _names(args.workloads, WORKLOADS, "--workloads")
    args.link_list = _names(args.links, _netns.LINKS, "--links")
    args.compressor_list = _names(
        args.compressors, COMPRESSORS, "--compressors", alias=lambda name: cw.split_spec(name)[0]
    )
    args.worker_list = sorted({int(p) for p in args.workers.split(",")})
    args.accuracy_list = {int(p) for p in args.accuracy_workers.split(",") if p}
    args.accuracy_workloads = [w for w in args.accuracy_workloads.split(",") if w]
    if any(p < 2 or p > 8 for p in args.worker_list):
        parser.error("--workers: between 2 and 8")
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    return args


def _names(
    text: str,
    allowed: Iterable[str],
    option: str,
    alias: Callable[[str], str] = lambda name: name,
) -> list[str]:
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if alias(n) not in allowed]
    if unknown or not names:
        raise SystemExit(f"{option}: unknown {unknown}; choose from {', '.join(allowed)}")
    return names


def machine_info() -> dict[str, Any]:
    info = {
        "cpu": platform.processor() or "unknown",
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "load_average_start": _machine.load_average(),
        "library": library_fingerprint(),
    }
    try:
        for line in subprocess.run(
            ["lscpu"], check=False, capture_output=True, text=True
        ).stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                info["cpu"] = value.strip()
    except OSError:
        pass
    info["memory_gib"] = _machine.memory_gib()
    for package in ("tensorflow", "tensorflow-cpu", "keras"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info[package] = importlib.metadata.version(package)
    return info


def library_fingerprint() -> str:
    """The git commit and a digest of tfqnn/distribute's sources (they may be
    edited while the benchmark runs: compare the values at start and end)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "tfqnn" / "distribute").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "tfqnn/distribute"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"{commit or 'unknown'}{' + uncommitted changes' if dirty else ''}, "
        f"tfqnn/distribute sha256 {digest.hexdigest()[:12]}"
    )


def inner(args: argparse.Namespace) -> int:
    """The benchmark, inside the private network namespace."""
    # SIGTERM (kill of the process group) unwinds like Ctrl-C: the finally
    # blocks stop the workers and remove the control folders.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    machine = machine_info()
    _log(f"machine: {json.dumps(machine)}")
    _log("predictions and compress/decompress timing ...")
    predictions, codec = launcher.predictions_and_codec(args)
    net = _netns.Network(max(args.worker_list))
    try:
        runs = run_clusters(args, net)
    finally:
        net.close()
    wall = time.monotonic() - started
    targets = {workload: settings["target"] for workload, settings in WORKLOADS.items()}
    lines, verdicts = _compression_report.report(
        args, machine, predictions, codec, runs, wall, targets, library_fingerprint()
    )
    if args.json:
        raw = {f"{workload}/{p}/{name}": run for (workload, p, name), run in runs.items()}
        settings = {
            k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list))
        }
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": machine,
                    "args": settings,
                    "predictions": predictions,
                    "codec": codec,
                    "runs": raw,
                    "report": lines,
                    "targets": verdicts,
                },
                f,
                indent=1,
            )
    return 0


def run_clusters(
    args: argparse.Namespace, net: _netns.Network
) -> dict[tuple[str, int, str], dict[str, Any]]:
    """One cluster per workload, worker count and compressor, in that order;
    returns ``(workload, P, compressor)`` -> its summary (failed ones left out)."""
    runs = {}
    port = BASE_PORT
    for workload in args.workload_list:
        for p in args.worker_list:
            for name in args.compressor_list:
                port += 1
                learning_rate = args.learning_rate or WORKLOADS[workload][args.optimizer]
                results, counters, seconds = launcher.launch(
                    net, args, workload, p, name, port, learning_rate, _log
                )
                if results is None:
                    continue
                run = launcher.summarize(results, counters, args, p)
                run["launch_s"] = seconds
                runs[(workload, p, name)] = run
                _log(f"{workload} P={p} {name}: {_progress(run, seconds)}")
    return runs


def _progress(run: dict[str, Any], seconds: float) -> str:
    steps = ", ".join(
        f"{link} {_compression_report.fmt_ms(t)} ms" for link, t in run["step_s"].items()
    )
    wire = ", ".join(f"{v:.3f}" for v in run["bytes_per_element"].values())
    acc = f", final acc {run['final_accuracy']:.4f}" if "final_accuracy" in run else ""
    return (
        f"{steps}; B/elem {wire}{acc} "
        f"({seconds:.0f} s: imports {run['imported_s']:.0f} s, fit from "
        f"{run['fit_started_s']:.0f} s, first step {run['first_step_s']:.0f} s, "
        f"{run['accuracy_steps_run']} accuracy steps "
        f"{run['accuracy_phase_s']:.0f} s, evaluations {run['eval_s']:.0f} s; "
        f"load {_machine.load_average()})"
    )


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.environ.get(INSIDE) == "1":
        return inner(args)
    for tool in _netns.TOOLS:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (util-linux, iproute2)")
    cmd = ["unshare", "--net", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        cmd.insert(1, "--map-root-user")
    cmd += [sys.executable, str(Path(__file__).resolve())] + (
        sys.argv[1:] if argv is None else list(argv)
    )
    proc = subprocess.Popen(cmd, env=dict(os.environ, **{INSIDE: "1"}))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return 130


if __name__ == "__main__":
    sys.exit(main())
