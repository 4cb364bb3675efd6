"""CPU and wall seconds per epoch, for Keras 3 and for tf_keras (the QKeras script).

Imports neither Keras: `epoch_clock` takes the ``Callback`` base class of the
Keras the caller trains with.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def epoch_clock(callback_base: type) -> Any:
    """A callback instance whose ``cpu`` and ``wall`` lists get each epoch's seconds."""

    class EpochClock(callback_base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.cpu: list[float] = []
            self.wall: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = (time.process_time(), time.perf_counter())

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.cpu.append(time.process_time() - self._start[0])
            self.wall.append(time.perf_counter() - self._start[1])

    return EpochClock()


def per_epoch(values: list[float]) -> float:
    """The median epoch after the first (which traces), or the only one."""
    return float(np.median(values[1:] if len(values) > 1 else values))
