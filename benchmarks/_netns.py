"""Emulated links between benchmark workers: network namespaces, veth pairs, tc.

Runs inside a private network namespace (the caller re-executes itself under
``unshare --net``), so everything here disappears with that process.

Network: one holder process per worker (``unshare --net sleep infinity``)
owns the worker's namespace; a veth pair ``b{i}`` (on the bridge ``br0``) /
``w{i}`` (in the namespace, ``10.9.0.{i+1}/24``, IPv6 off). A shaped link has
the same ``tbf`` (rate, burst 256 KiB at 100 Mbit/s and 512 KiB at 1 Gbit/s,
latency 50 ms) on both ends: on ``w{i}`` it shapes what the worker sends, on
``b{i}`` what it receives, as a full-duplex link of that rate to a switch.
Commands run in worker ``i``'s namespace through ``Network.inside(i)``
(``nsenter -t HOLDER -n``). Every process started here dies with its parent
(``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

# name -> (tc rate, tbf burst) or None (no qdisc)
LINKS = {"100mbit": ("100mbit", "256kb"), "1gbit": ("1gbit", "512kb"), "unshaped": None}
SUBNET = "10.9.0"
TOOLS = ("unshare", "nsenter", "ip", "tc")


def die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the driver dies (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group (or ``proc``) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


def run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """Runs ``cmd``; raises RuntimeError with its stderr when ``check`` and it fails."""
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done


class Network:
    """br0 and one namespace per worker, inside the driver's private namespace."""

    def __init__(self, num_workers: int) -> None:
        self.holders: list[subprocess.Popen] = []
        self.shaped: str | None = None
        run(["ip", "link", "set", "lo", "up"])
        run(["ip", "link", "add", "br0", "type", "bridge"])
        run(["ip", "link", "set", "br0", "up"])
        for i in range(num_workers):
            self._add_worker(i)

    def _add_worker(self, i: int) -> None:
        own = os.readlink("/proc/self/ns/net")
        holder = subprocess.Popen(
            ["unshare", "--net", "sleep", "infinity"],
            preexec_fn=die_with_parent,  # noqa: PLW1509 (no threads)
            start_new_session=True,
        )
        self.holders.append(holder)
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{holder.pid}/ns/net") == own:
            if time.monotonic() > deadline or holder.poll() is not None:
                raise RuntimeError("unshare --net sleep did not start")
            time.sleep(0.01)
        run(["ip", "link", "add", f"b{i}", "type", "veth", "peer", "name", f"w{i}"])
        run(["ip", "link", "set", f"w{i}", "netns", str(holder.pid)])
        run(["ip", "link", "set", f"b{i}", "master", "br0"])
        run(["ip", "link", "set", f"b{i}", "up"])
        inside = self.inside(i)
        for key in ("all", "default", "lo"):
            run(inside + ["sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"], check=False)
        run(inside + ["ip", "link", "set", "lo", "up"])
        run(inside + ["ip", "addr", "add", f"{self.address(i)}/24", "dev", f"w{i}"])
        run(inside + ["ip", "link", "set", f"w{i}", "up"])

    @staticmethod
    def address(i: int) -> str:
        """Worker ``i``'s IPv4 address."""
        return f"{SUBNET}.{i + 1}"

    def inside(self, i: int) -> list[str]:
        """The command prefix that runs a command in worker ``i``'s namespace."""
        return ["nsenter", "-t", str(self.holders[i].pid), "-n"]

    def shape(self, link: str) -> None:
        """Applies the link's tbf to both ends of every worker's veth (or removes it)."""
        if link == self.shaped:
            return
        shaping = LINKS[link]
        for i in range(len(self.holders)):
            ends: list[tuple[list[str], str]] = [(self.inside(i), f"w{i}"), ([], f"b{i}")]
            for prefix, device in ends:
                if shaping is None:
                    run(prefix + ["tc", "qdisc", "del", "dev", device, "root"], check=False)
                    continue
                rate, burst = shaping
                tbf = ["tbf", "rate", rate, "burst", burst, "latency", "50ms"]
                run(prefix + ["tc", "qdisc", "replace", "dev", device, "root", *tbf])
        self.shaped = link

    def counters(self, num_workers: int) -> list[tuple[int, int]]:
        """[(tx_bytes, rx_bytes)] of each worker's ``w{i}``, from its namespace."""
        values = []
        for i in range(num_workers):
            text = Path(f"/proc/{self.holders[i].pid}/net/dev").read_text()
            for line in text.splitlines():
                name, _, fields = line.partition(":")
                if name.strip() == f"w{i}":
                    counts = fields.split()
                    values.append((int(counts[8]), int(counts[0])))
                    break
            else:
                raise RuntimeError(f"no w{i} in the namespace of worker {i}")
        return values

    def close(self) -> None:
        """Stops the holders; their namespaces and veth ends go with them."""
        for holder in self.holders:
            kill(holder)
        self.holders = []
