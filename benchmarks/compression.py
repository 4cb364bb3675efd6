"""Gradient compression under MultiWorkerMirroredStrategy on emulated links.

Runs 2 and 4 MWMS workers (``benchmarks/compression_worker.py``: Keras
``fit``), each in its own network namespace, joined by veth pairs to a bridge
``br0``; every worker's link is shaped with ``tc qdisc ... tbf`` to
100 Mbit/s and 1 Gbit/s, and left unshaped. All traffic stays on this
machine: the script re-executes itself under ``unshare --net`` (plus
``--map-root-user`` when not root), so the bridge, the namespaces and the
shaping live in a private network namespace that disappears with it, also on
Ctrl-C or errors; every process it starts dies with it (``PR_SET_PDEATHSIG``).

Network: one holder process per worker (``unshare --net sleep infinity``)
owns the worker's namespace; a veth pair ``b{i}`` (on ``br0``) / ``w{i}``
(in the namespace, ``10.9.0.{i+1}/24``, IPv6 off). A shaped link has the same
``tbf`` (rate, burst 256 KiB at 100 Mbit/s and 512 KiB at 1 Gbit/s,
latency 50 ms) on both ends: on ``w{i}`` it shapes what the worker sends, on
``b{i}`` what it receives, as a full-duplex link of that rate to a switch.
Workers run as ``nsenter -t HOLDER -n python compression_worker.py``, with
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

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before any TensorFlow loads

import argparse
import contextlib
import ctypes
import datetime
import importlib.metadata
import json
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "compression_worker.py"
sys.path.insert(0, str(HERE))
import _machine  # noqa: E402 (after the sys.path entry)
import compression_worker as cw  # noqa: E402 (no TensorFlow at import time)

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
# name -> (tc rate, tbf burst) or None (no qdisc)
LINKS = {"100mbit": ("100mbit", "256kb"), "1gbit": ("1gbit", "512kb"), "unshaped": None}
WORKLOADS = {  # learning rates and target test accuracy, chosen for fp32
    "mlp": {"adam": 3e-4, "sgd": 0.05, "target": 0.85},
    "cnn": {"adam": 3e-3, "sgd": 0.05, "target": 0.85},
}
SUBNET = "10.9.0"
BASE_PORT = 21000
TARGET_STEP_SPEEDUP = 5.0
TARGET_TTA_SPEEDUP = 3.0
TARGET_POINTS_LOST = 0.5
TARGET_BYTES = 0.10
TARGETED = ("onebit_ef", "powersgd")


def parse_args(argv=None):
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
    args.link_list = _names(args.links, LINKS, "--links")
    args.compressor_list = _names(args.compressors, COMPRESSORS, "--compressors", alias=_alias)
    args.worker_list = sorted({int(p) for p in args.workers.split(",")})
    args.accuracy_list = {int(p) for p in args.accuracy_workers.split(",") if p}
    args.accuracy_workloads = [w for w in args.accuracy_workloads.split(",") if w]
    if any(p < 2 or p > 8 for p in args.worker_list):
        parser.error("--workers: between 2 and 8")
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    return args


def _names(text, allowed, option, alias=lambda name: name):
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if alias(n) not in allowed]
    if unknown or not names:
        raise SystemExit(f"{option}: unknown {unknown}; choose from {', '.join(allowed)}")
    return names


# ---- machine -------------------------------------------------------------------


def machine_info():
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


def library_fingerprint():
    """The git commit and a digest of tfqnn/distribute's sources (they may be
    edited while the benchmark runs: compare the values at start and end)."""
    import hashlib

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


# ---- processes -----------------------------------------------------------------


def _die_with_parent():
    """preexec_fn: SIGKILL this child when the driver dies (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)


def _kill(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


def _run(cmd, check=True):
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done


# ---- network -------------------------------------------------------------------


class Network:
    """br0 and one namespace per worker, inside the driver's private namespace."""

    def __init__(self, num_workers):
        self.holders = []
        self.shaped = None
        _run(["ip", "link", "set", "lo", "up"])
        _run(["ip", "link", "add", "br0", "type", "bridge"])
        _run(["ip", "link", "set", "br0", "up"])
        own = os.readlink("/proc/self/ns/net")
        for i in range(num_workers):
            holder = subprocess.Popen(
                ["unshare", "--net", "sleep", "infinity"],
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads)
                start_new_session=True,
            )
            self.holders.append(holder)
            deadline = time.monotonic() + 10
            while os.readlink(f"/proc/{holder.pid}/ns/net") == own:
                if time.monotonic() > deadline or holder.poll() is not None:
                    raise RuntimeError("unshare --net sleep did not start")
                time.sleep(0.01)
            pid = str(holder.pid)
            _run(["ip", "link", "add", f"b{i}", "type", "veth", "peer", "name", f"w{i}"])
            _run(["ip", "link", "set", f"w{i}", "netns", pid])
            _run(["ip", "link", "set", f"b{i}", "master", "br0"])
            _run(["ip", "link", "set", f"b{i}", "up"])
            inside = ["nsenter", "-t", pid, "-n"]
            for key in ("all", "default", "lo"):
                _run(inside + ["sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"], check=False)
            _run(inside + ["ip", "link", "set", "lo", "up"])
            _run(inside + ["ip", "addr", "add", f"{self.address(i)}/24", "dev", f"w{i}"])
            _run(inside + ["ip", "link", "set", f"w{i}", "up"])

    @staticmethod
    def address(i):
        return f"{SUBNET}.{i + 1}"

    def inside(self, i):
        return ["nsenter", "-t", str(self.holders[i].pid), "-n"]

    def shape(self, link):
        """Applies the link's tbf to both ends of every worker's veth (or removes it)."""
        if link == self.shaped:
            return
        for i in range(len(self.holders)):
            for prefix, device in ((self.inside(i), f"w{i}"), ([], f"b{i}")):
                if LINKS[link] is None:
                    _run(prefix + ["tc", "qdisc", "del", "dev", device, "root"], check=False)
                else:
                    rate, burst = LINKS[link]
                    _run(
                        prefix
                        + [
                            "tc",
                            "qdisc",
                            "replace",
                            "dev",
                            device,
                            "root",
                            "tbf",
                            "rate",
                            rate,
                            "burst",
                            burst,
                            "latency",
                            "50ms",
                        ]
                    )
        self.shaped = link

    def counters(self, num_workers):
        """[(tx_bytes, rx_bytes)] of each worker's ``w{i}``, from its namespace."""
        values = []
        for i in range(num_workers):
            text = Path(f"/proc/{self.holders[i].pid}/net/dev").read_text()
            for line in text.splitlines():
                name, _, fields = line.partition(":")
                if name.strip() == f"w{i}":
                    fields = fields.split()
                    values.append((int(fields[8]), int(fields[0])))
                    break
            else:
                raise RuntimeError(f"no w{i} in the namespace of worker {i}")
        return values

    def close(self):
        for holder in self.holders:
            _kill(holder)
        self.holders = []


# ---- one cluster ---------------------------------------------------------------


class LaunchFailed(RuntimeError):
    pass


def launch(net, args, workload, num_workers, compressor, port, log):
    """Runs one cluster; returns the workers' results and the driver's counters."""
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
    settings = WORKLOADS[workload]
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
        args.learning_rate or settings[args.optimizer],
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
                    preexec_fn=_die_with_parent,  # noqa: PLW1509
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
            _kill(p)
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


# ---- measurements --------------------------------------------------------------


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
from tfqnn.distribute.memory import is_compressible
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
                model = sum((c.bits_per_element(p, s) if is_compressible(c, s, tf.float32, 1024)
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


def decodes_per_step(name, num_workers):
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


# ---- report --------------------------------------------------------------------


def fmt_ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:,.0f}"


def fmt_x(value):
    return "-" if value is None else f"{value:.1f}x"


def report(args, machine, predictions, codec, runs, wall):
    lines = []

    def emit(text=""):
        lines.append(text)
        print(text, flush=True)

    emit("\n## Results")
    emit(
        f"Machine: {machine['cpu']} ({machine['arch']}), {machine['cpus']} CPUs, "
        f"{machine.get('memory_gib')} GiB; Python {machine['python']}, TensorFlow "
        f"{machine.get('tensorflow') or machine.get('tensorflow-cpu')}, Keras "
        f"{machine.get('keras')}; {machine['date_utc']} UTC; load average at start "
        f"{machine['load_average_start']}, at end {_machine.load_average()}; {wall / 60:.1f} min."
    )
    library = library_fingerprint()
    emit(
        f"Library: {machine['library']} at start"
        + (
            ""
            if library == machine["library"]
            else f", {library} at the end (CHANGED during the run: results mix library versions)"
        )
        + "."
    )
    emit(
        f"Settings: workers {args.worker_list}, links {args.link_list}, {args.steps} timed "
        f"steps per link after {args.warmup} warm-up steps, global batch {args.batch_size}, "
        f"{args.optimizer}"
        f"{f' (learning rate {args.learning_rate})' if args.learning_rate else ''}, "
        f"{args.schedule} learning rate, {args.threads} intra/inter-op thread(s) per worker, "
        f"{'pinned' if args.pin else 'not pinned'}; accuracy phase "
        f"{args.accuracy_steps} unshaped steps for P in {sorted(args.accuracy_list)} on "
        f"{', '.join(args.accuracy_workloads)}, budget "
        f"{f'{args.accuracy_budget:.0f} s' if args.accuracy_budget else 'none'} per cluster."
    )
    verdicts = []
    for workload in args.workload_list:
        emit(f"\n### {workload}: step time, ms (median), and speed-up vs fp32 all-reduce")
        header = ["compressor"] + [
            f"P={p} {link}" for p in args.worker_list for link in args.link_list
        ]
        emit(_row(header))
        emit(_row(["---"] * len(header)))
        for name in args.compressor_list:
            cells = [_label(name)]
            for p in args.worker_list:
                for link in args.link_list:
                    run, base = runs.get((workload, p, name)), runs.get((workload, p, "none"))
                    if run is None:
                        cells.append("failed")
                        continue
                    t = run["step_s"][link]
                    speed = base["step_s"][link] / t if base else None
                    cells.append(f"{fmt_ms(t)} ({fmt_x(speed)})")
            emit(_row(cells))

        emit(f"\n### {workload}: bytes per gradient element per worker on the wire")
        emit(
            "predicted: bits_per_element(P)/8 of a 1024x1024 tensor; for this model "
            "(uncompressed tensors as fp32 ring all-reduce); measured: w{i} tx bytes, mean "
            "over links and workers; ratio: measured / model prediction, worst link in "
            "brackets; excess: (measured - model) x parameters, per worker and step"
        )
        header = ["compressor"]
        for p in args.worker_list:
            header += [
                f"P={p} bpe/8",
                f"P={p} model",
                f"P={p} measured",
                f"P={p} ratio",
                f"P={p} excess kB/step",
            ]
        emit(_row(header))
        emit(_row(["---"] * len(header)))
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
                    verdicts.append(
                        (
                            (
                                f"mlp P={p} {name}: wire bytes within 10 % of the "
                                f"prediction (worst link {worst:.3f}x)"
                            ),
                            abs(worst - 1) <= TARGET_BYTES,
                        )
                    )
            emit(_row(cells))

        for p in sorted(args.accuracy_list & set(args.worker_list)):
            base = runs.get((workload, p, "none"))
            if not any(
                "accuracy_curve" in (runs.get((workload, p, n)) or {}) for n in args.compressor_list
            ):
                continue
            target = WORKLOADS[workload]["target"]
            emit(f"\n### {workload}, P={p}: time to {target:.0%} test accuracy")
            emit(
                f"steps to target: first evaluation (every {args.eval_every} steps, full test "
                f"set) at or above it, in the unshaped accuracy phase; time to target = steps "
                f"x median step time on each link; final: mean of the evaluations at steps "
                f"{_last_steps(args)}; speed-up vs fp32 in brackets"
            )
            header = ["compressor", "steps to target", "final acc %", "vs fp32 (points)"] + [
                f"time {link} s" for link in args.link_list
            ]
            emit(_row(header))
            emit(_row(["---"] * len(header)))
            base_steps = _steps_to(base, target)
            for name in args.compressor_list:
                run = runs.get((workload, p, name))
                if run is None or "accuracy_curve" not in run:
                    emit(_row([_label(name), "failed"] + ["-"] * (len(header) - 2)))
                    continue
                steps = _steps_to(run, target)
                lost = (
                    (base["final_accuracy"] - run["final_accuracy"]) * 100
                    if base and "final_accuracy" in base
                    else None
                )
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
                        base_steps * base["step_s"][link] / tta if base_steps is not None else None
                    )
                    cells.append(f"{tta:,.0f} ({fmt_x(speed)})")
                emit(_row(cells))
                if (
                    workload == "mlp"
                    and p == 4
                    and _alias(name) in TARGETED
                    and "100mbit" in run["step_s"]
                ):
                    speed = (
                        base_steps * base["step_s"]["100mbit"] / (steps * run["step_s"]["100mbit"])
                        if steps and base_steps
                        else None
                    )
                    ok = (
                        speed is not None
                        and speed >= TARGET_TTA_SPEEDUP
                        and lost is not None
                        and lost <= TARGET_POINTS_LOST
                    )
                    verdicts.append(
                        (
                            (
                                f"mlp P=4 100mbit {name}: time to target {fmt_x(speed)} "
                                f"shorter (>= 3x), "
                                f"{'-' if lost is None else f'{lost:.2f}'} "
                                f"points lost (<= 0.5)"
                            ),
                            ok,
                        )
                    )

    step_verdicts = []
    for name in args.compressor_list:
        run, base = runs.get(("mlp", 4, name)), runs.get(("mlp", 4, "none"))
        if _alias(name) in TARGETED and run and base and "100mbit" in run["step_s"]:
            speed = base["step_s"]["100mbit"] / run["step_s"]["100mbit"]
            text = f"mlp P=4 100mbit {name}: step {speed:.1f}x faster than fp32 (>= 5x)"
            step_verdicts.append((text, speed >= TARGET_STEP_SPEEDUP))
    verdicts = step_verdicts + verdicts

    if codec:
        p = max(args.worker_list)
        emit(
            f"\n### compress / decompress compute, one process, {args.threads} thread(s), "
            f"P={p} (ms)"
        )
        emit(
            "per step = encode + decodes x decode (all-gather schemes decode each of the P "
            "payloads and their own once more; PowerSGD's exchange: two matmuls and a QR "
            "to encode, two products to decode)"
        )
        header = ["compressor"] + [
            f"{w} {col}" for w in codec for col in ("elements", "encode", "decode", "per step")
        ]
        emit(_row(header))
        emit(_row(["---"] * len(header)))
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
            emit(_row(cells))

    if verdicts:
        emit("\n### Targets")
        for text, ok in verdicts:
            emit(f"- {'PASS' if ok else 'FAIL'}: {text}")
    return lines, verdicts


def _last_steps(args):
    """The steps of the last 3 evaluations of the accuracy phase."""
    s, e = args.accuracy_steps, args.eval_every
    steps = sorted({*range(e, s + 1, e), s})
    return ", ".join(str(x) for x in steps[-3:])


def _steps_to(run, target):
    if not run or "accuracy_curve" not in run:
        return None
    return next((step for step, acc in run["accuracy_curve"] if acc >= target), None)


def _alias(name):
    return cw.split_spec(name)[0]


def _label(name):
    return "fp32 all-reduce (none)" if name == "none" else name


def _row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


# ---- main ----------------------------------------------------------------------


def inner(args):
    # SIGTERM (kill of the process group) unwinds like Ctrl-C: the finally
    # blocks stop the workers and remove the control folders.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    machine = machine_info()

    def log(text):
        print(text, file=sys.stderr, flush=True)

    log(f"machine: {json.dumps(machine)}")
    log("predictions and compress/decompress timing ...")
    predictions, codec = predictions_and_codec(args)
    net = Network(max(args.worker_list))
    runs, raw = {}, {}
    port = BASE_PORT
    try:
        for workload in args.workload_list:
            for p in args.worker_list:
                for name in args.compressor_list:
                    port += 1
                    results, counters, seconds = launch(net, args, workload, p, name, port, log)
                    if results is None:
                        continue
                    run = summarize(results, counters, args, p)
                    runs[(workload, p, name)] = run
                    run["launch_s"] = seconds
                    raw[f"{workload}/{p}/{name}"] = run
                    steps = ", ".join(f"{link} {fmt_ms(t)} ms" for link, t in run["step_s"].items())
                    wire = ", ".join(f"{v:.3f}" for v in run["bytes_per_element"].values())
                    acc = (
                        f", final acc {run['final_accuracy']:.4f}"
                        if "final_accuracy" in run
                        else ""
                    )
                    log(
                        f"{workload} P={p} {name}: {steps}; B/elem {wire}{acc} "
                        f"({seconds:.0f} s: imports {run['imported_s']:.0f} s, fit from "
                        f"{run['fit_started_s']:.0f} s, first step {run['first_step_s']:.0f} s, "
                        f"{run['accuracy_steps_run']} accuracy steps "
                        f"{run['accuracy_phase_s']:.0f} s, evaluations {run['eval_s']:.0f} s; "
                        f"load {_machine.load_average()})"
                    )
    finally:
        net.close()
    wall = time.monotonic() - started
    lines, verdicts = report(args, machine, predictions, codec, runs, wall)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": machine,
                    "args": {
                        k: v
                        for k, v in vars(args).items()
                        if isinstance(v, (str, int, float, bool, list))
                    },
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


def main(argv=None):
    args = parse_args(argv)
    if os.environ.get(INSIDE) == "1":
        return inner(args)
    for tool in ("unshare", "nsenter", "ip", "tc"):
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
