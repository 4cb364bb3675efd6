"""Real multi-process MultiWorkerMirroredStrategy runs on 127.0.0.1, for tests.

`run_workers` starts one Python process per worker, each with its own
``TF_CONFIG`` (``{"cluster": {"worker": [...]}, "task": {"type": "worker",
"index": i}}``) on ports found by binding port 0, and with
``TF_CPP_MIN_LOG_LEVEL=2`` and ``CUDA_VISIBLE_DEVICES=-1``. A small bootstrap
sets TensorFlow's intra- and inter-op thread pools (one thread each by
default, so that several workers share a 2-core machine) before the worker
script runs as ``__main__``.

A worker reports by printing one line ``RESULT {json}`` on stdout; the last
such line is parsed into `WorkerResult.result`. Every process is killed when
the timeout passes, or ``grace`` seconds after a worker fails (its peers would
otherwise wait in a collective until the collective timeout).
"""

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

RESULT_PREFIX = "RESULT "
MAXRSS_PREFIX = "WORKER_MAXRSS_KB "
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in every worker: threads first (before the script imports anything
# that could start TensorFlow's pools), then the script as __main__.
_BOOTSTRAP = f"""\
import atexit, os, resource, runpy, sys
import tensorflow as tf
_threads = int(os.environ["TFQNN_WORKER_THREADS"])
tf.config.threading.set_intra_op_parallelism_threads(_threads)
tf.config.threading.set_inter_op_parallelism_threads(_threads)
atexit.register(lambda: print({MAXRSS_PREFIX!r} + str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
                              file=sys.stderr, flush=True))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclasses.dataclass
class WorkerResult:
    """What one worker process did."""

    index: int
    returncode: int | None  # None: killed by the harness
    stdout: str
    stderr: str
    result: dict | None  # the last RESULT line, parsed
    timed_out: bool  # killed at the timeout
    killed_after_peer_failure: bool
    maxrss_mb: float | None  # peak resident memory, when the worker exited normally

    @property
    def ok(self):
        return self.returncode == 0

    def tail(self, chars=3000):
        """The end of stderr and stdout, for assertion messages."""
        return f"--- worker {self.index} rc={self.returncode}\n{self.stderr[-chars:]}\n{self.stdout[-chars:]}"


def free_ports(count):
    """``count`` distinct free TCP ports on 127.0.0.1 (all bound at once, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(num_workers, ports=None):
    """One ``TF_CONFIG`` dict per worker of a 127.0.0.1 cluster."""
    ports = ports or free_ports(num_workers)
    workers = [f"127.0.0.1:{port}" for port in ports]
    return [
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        for i in range(num_workers)
    ]


def run_workers(
    script_path_or_code, num_workers=2, args=(), timeout=120.0, threads=1, env=None, grace=10.0
):
    """Runs a worker script in ``num_workers`` processes of one MWMS cluster.

    Args:
        script_path_or_code: a path to a Python file (a `os.PathLike`, or a
            string ending in ``.py``), or else Python source code.
        num_workers: processes (one CPU replica each).
        args: command-line arguments for every worker; the strings may hold
            ``{index}``, replaced by the worker's index.
        timeout: seconds before every process still running is killed.
        threads: TensorFlow intra- and inter-op threads per worker.
        env: extra environment variables.
        grace: seconds the others may still run after one worker failed.

    Returns:
        A list of `WorkerResult`, by worker index.
    """
    with tempfile.TemporaryDirectory(prefix="tfqnn_mwms_") as tmp:
        script = os.fspath(script_path_or_code)
        if isinstance(script_path_or_code, os.PathLike) or script.endswith(".py"):
            if not os.path.isfile(script):
                raise FileNotFoundError(f"no worker script {script}")
        else:
            path = os.path.join(tmp, "worker.py")
            with open(path, "w") as f:
                f.write(script)
            script = path
        base_env = dict(os.environ)
        base_env.update(
            TF_CPP_MIN_LOG_LEVEL="2",
            CUDA_VISIBLE_DEVICES="-1",
            TFQNN_WORKER_THREADS=str(threads),
            PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
        )
        base_env.update(env or {})
        procs = []

        def log(i, stream):
            return os.path.join(tmp, f"{stream}{i}")

        try:
            for i, config in enumerate(tf_configs(num_workers)):
                worker_env = dict(base_env, TF_CONFIG=json.dumps(config))
                argv = [sys.executable, "-c", _BOOTSTRAP, script]
                argv += [str(a).replace("{index}", str(i)) for a in args]
                with open(log(i, "stdout"), "w") as out, open(log(i, "stderr"), "w") as err:
                    procs.append(
                        subprocess.Popen(
                            argv,
                            stdout=out,
                            stderr=err,
                            env=worker_env,
                            cwd=ROOT,
                            start_new_session=True,
                        )
                    )
            timed_out, after_failure = _wait(procs, timeout, grace)
        finally:
            for p in procs:  # nothing outlives the harness
                if p.poll() is None:
                    _kill(p)
        results = []
        for i, p in enumerate(procs):
            with open(log(i, "stdout")) as out, open(log(i, "stderr")) as err:
                stdout, stderr = out.read(), err.read()
            results.append(
                WorkerResult(
                    index=i,
                    returncode=None if i in timed_out | after_failure else p.returncode,
                    stdout=stdout,
                    stderr=stderr,
                    result=_last_result(stdout),
                    timed_out=i in timed_out,
                    killed_after_peer_failure=i in after_failure,
                    maxrss_mb=_maxrss_mb(stderr),
                )
            )
        return results


def _wait(procs, timeout, grace):
    deadline = time.monotonic() + timeout
    failed_at = None
    timed_out, after_failure = set(), set()
    while any(p.poll() is None for p in procs):
        now = time.monotonic()
        if failed_at is None and any(p.poll() not in (None, 0) for p in procs):
            failed_at = now
        if now >= deadline or (failed_at is not None and now >= failed_at + grace):
            for i, p in enumerate(procs):
                if p.poll() is None:
                    (timed_out if now >= deadline else after_failure).add(i)
                    _kill(p)
            break
        time.sleep(0.1)
    return timed_out, after_failure


def _kill(proc):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _last_result(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    return json.loads(lines[-1][len(RESULT_PREFIX) :]) if lines else None


def _maxrss_mb(stderr):
    lines = [line for line in stderr.splitlines() if line.startswith(MAXRSS_PREFIX)]
    return int(lines[-1][len(MAXRSS_PREFIX) :]) / 1024 if lines else None
