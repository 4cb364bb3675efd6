"""Machine facts that the benchmarks print beside their timings."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path


def memory_gib() -> float | None:
    """Total memory in GiB (None when /proc/meminfo is unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where unsupported)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (else the platform's processor)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def header(versions: Mapping[str, str] | None = None) -> str:
    """The machine line a benchmark prints first.

    ``Machine: <cpu> (<arch>), <n> cores, <memory> GiB, load [1, 5, 15 min];
    Python <version>``, then ``, <name> <version>`` for each of ``versions``
    (``{"TensorFlow": tf.__version__, ...}``).
    """
    line = (
        f"Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, "
        f"{memory_gib()} GiB, load {load_average()}; Python {platform.python_version()}"
    )
    return line + "".join(f", {name} {version}" for name, version in (versions or {}).items())
