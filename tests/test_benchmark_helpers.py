"""The benchmarks' shared helpers: _timing (interleaved timer), _machine.header, _peer."""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmark_module(name: str) -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def timing() -> Any:
    return _benchmark_module("_timing")


def test_rounds_rotate_and_each_call_runs_once_untimed_per_round(timing: Any) -> None:
    log: list[int] = []
    calls = [lambda i=i: log.append(i) for i in range(3)]
    samples = timing.interleaved(calls, 3, 0.0, min_per_round=2, sizing_calls=1, cpu=True)
    sizing = [0, 1, 2]
    rounds = [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    assert log == sizing + [i for order in rounds for i in order for _ in range(3)]
    for timed in samples:
        assert len(timed.wall_ns) == len(timed.cpu_ns) == 3 * 2
        assert min(timed.wall_ns) >= 0 and min(timed.cpu_ns) >= 0
    assert timing.interleaved(calls, 1, 0.0)[0].cpu_ns == []  # only when asked


def test_the_fastest_sizing_call_sets_the_calls_per_round(timing: Any, monkeypatch) -> None:
    now = [0]
    monkeypatch.setattr(timing.time, "perf_counter_ns", lambda: now[0])
    durations = iter([3_000_000, 1_000_000])  # the sizing calls: 3 ms, then 1 ms; then 1 ms

    def call() -> None:
        now[0] += next(durations, 1_000_000)

    (timed,) = timing.interleaved([call], 4, 0.02, sizing_calls=2)
    # 0.02 s over 4 rounds of 1 ms calls: 5 timed calls a round.
    assert timed.wall_ns == [1_000_000] * 20
    (floor,) = timing.interleaved([call], 4, 0.02, min_per_round=7)
    assert len(floor.wall_ns) == 4 * 7


def test_machine_header_names_the_machine_and_the_versions() -> None:
    machine = _benchmark_module("_machine")
    line = machine.header({"TensorFlow": "9.1", "Keras": "8.2"})
    assert line.startswith(f"Machine: {machine.cpu_name()} ({platform.machine()}), ")
    assert f", {os.cpu_count()} cores, " in line
    assert line.endswith(f"; Python {platform.python_version()}, TensorFlow 9.1, Keras 8.2")
    assert machine.header().endswith(f"; Python {platform.python_version()}")


PEER_SCRIPT = """
import json, os, sys
import numpy as np
data = np.load(sys.argv[1])
if "--fail" in sys.argv:
    sys.exit("x" * 50 + "the end")
print(json.dumps({"legacy": os.environ.get("TF_USE_LEGACY_KERAS"), "args": sys.argv[2:4]}))
if "--out" in sys.argv:
    np.savez(sys.argv[sys.argv.index("--out") + 1], doubled=2 * data["x"])
"""


def test_peer_run_passes_the_arrays_and_returns_the_outputs(tmp_path, capsys) -> None:
    peer = _benchmark_module("_peer")
    script = tmp_path / "peer_script.py"
    script.write_text(PEER_SCRIPT)
    x = np.arange(6.0).reshape(2, 3)
    stdout, written = peer.run(sys.executable, script, {"x": x}, ["--a", "1"], what="toy")
    assert json.loads(stdout) == {"legacy": "1", "args": ["--a", "1"]}
    assert written is None
    _, written = peer.run(sys.executable, script, {"x": x}, [], what="toy", output="--out")
    np.testing.assert_array_equal(written["doubled"], 2 * x)
    assert peer.run(sys.executable, script, {"x": x}, ["--fail"], what="toy", tail=8) is None
    assert capsys.readouterr().out == "toy failed:\nthe end\n\n"  # stderr ends in a newline
    assert peer.available(sys.executable, "toy")
    assert not peer.available(str(tmp_path / "none"), "Peer")
    assert capsys.readouterr().out.startswith("Peer: no environment at ")
