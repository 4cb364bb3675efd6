"""Runs a benchmark's helper script in a peer environment (scripts/peer_envs.sh).

The peers (QKeras, tfmot, larq) run on tf_keras, which tfqnn's environment
does not import: a benchmark saves its arrays to a temporary ``.npz`` file
and runs a helper script with the peer environment's Python and
``TF_USE_LEGACY_KERAS=1``, which reads the file and prints (or writes) its
results.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def available(python: str | None, peer: str) -> bool:
    """Whether the peer environment's ``python`` exists; if not, says that ``peer`` is skipped."""
    if python and Path(python).exists():
        return True
    print(f"{peer}: no environment at {python!r} (scripts/peer_envs.sh); skipped")
    return False


def run(
    python: str,
    script: str | Path,
    arrays: Mapping[str, np.ndarray],
    arguments: Sequence[str],
    *,
    what: str,
    output: str | None = None,
    tail: int = 2000,
) -> tuple[str, dict[str, np.ndarray] | None] | None:
    """``python script DATA.npz *arguments`` with ``TF_USE_LEGACY_KERAS=1``.

    ``DATA.npz`` is a temporary file of ``arrays``. With ``output`` (an
    option name, ``"--replay"``) the script also gets ``output OUT.npz``, a
    temporary path it writes, whose arrays are returned. Returns (stdout,
    OUT's arrays or None), or None when the script fails, after printing
    ``"<what> failed:"`` and the last ``tail`` characters of its stderr.
    """
    with tempfile.TemporaryDirectory() as directory:
        data, out = os.path.join(directory, "data.npz"), os.path.join(directory, "out.npz")
        np.savez(data, **arrays)
        command = [python, str(script), data, *arguments]
        if output is not None:
            command += [output, out]
        environment = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        result = subprocess.run(command, capture_output=True, text=True, env=environment)
        if result.returncode != 0:
            print(f"{what} failed:\n" + result.stderr[-tail:])
            return None
        written = dict(np.load(out)) if output is not None else None
    return result.stdout, written
