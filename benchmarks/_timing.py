"""Interleaved timing of single calls (TFLite invokes), shared by the latency benchmarks."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Samples:
    """Nanoseconds of each timed call: the wall clock, and the calling thread's CPU time."""

    wall_ns: list[int] = field(default_factory=list)
    cpu_ns: list[int] = field(default_factory=list)  # empty unless asked for


def interleaved(
    calls: Sequence[Callable[[], Any]],
    rounds: int,
    seconds: float,
    *,
    min_per_round: int = 1,
    sizing_calls: int = 2,
    cpu: bool = False,
    verbose: bool = False,
) -> list[Samples]:
    """Times single calls of each of ``calls`` over ``rounds`` interleaved rounds.

    Each call is first made ``sizing_calls`` times untimed; the fastest of
    those sizes its rounds, so that it gets about ``seconds`` of timed calls
    in all (at least ``min_per_round`` per round). Round r starts at call
    ``r mod len(calls)`` and goes round in order; in each round every call
    runs once untimed (the others ran in between), then its timed calls,
    each timed alone by ``perf_counter_ns`` (and ``thread_time_ns`` with
    ``cpu``). Returns one `Samples` per call, in the order of ``calls``.
    """
    per_round = []
    for call in calls:
        times = []
        for _ in range(max(sizing_calls, 1)):
            t0 = time.perf_counter_ns()
            call()
            times.append(time.perf_counter_ns() - t0)
        estimate = max(min(times) * 1e-9, 1e-6)
        per_round.append(max(min_per_round, round(seconds / rounds / estimate)))
    samples = [Samples() for _ in calls]
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for r in range(rounds):
        start = time.perf_counter()
        shift = r % len(calls)
        for i in list(range(shift, len(calls))) + list(range(shift)):
            call, wall, used = calls[i], samples[i].wall_ns, samples[i].cpu_ns
            call()
            for _ in range(per_round[i]):
                if cpu:
                    c0, t0 = cpu_clock(), clock()
                    call()
                    wall.append(clock() - t0)
                    used.append(cpu_clock() - c0)
                else:
                    t0 = clock()
                    call()
                    wall.append(clock() - t0)
        if verbose:
            print(
                f"  round {r + 1}/{rounds} done ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return samples
