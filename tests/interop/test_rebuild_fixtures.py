"""Rebuilds the fixtures with the real peers and loads them: the proof beyond the committed files.

larq-zoo's architectures, too large to commit, are built and loaded by
``test_larq_zoo.py``. Slow, and it needs the peers' environments (``scripts/peer_envs.sh``): it
looks for them in ``$TFQNN_PEERS_DIR``, else in ``.peers`` at the
repository root, and skips when they are absent.
"""

import os
import pathlib
import subprocess

import numpy as np
import pytest

from tfqnn import interop

from . import _fixtures

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
PEERS = pathlib.Path(os.environ.get("TFQNN_PEERS_DIR", ROOT / ".peers"))
SCRIPTS = {"larq": "make_fixtures_larq.py", "tfkeras": "make_fixtures_tfkeras.py"}


@pytest.mark.slow
@pytest.mark.parametrize("peer", sorted(SCRIPTS))
def test_rebuilt_fixtures_load_with_the_peers_outputs(peer, tmp_path):
    python = PEERS / peer / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no {peer} environment at {python.parent.parent}: run scripts/peer_envs.sh")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    result = subprocess.run(
        [str(python), str(HERE / SCRIPTS[peer]), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # 15 min was not enough on a machine shared by 8 jobs
    )
    if result.returncode != 0 and "fashion-mnist" in result.stderr.lower():
        pytest.skip("the fixture scripts train on Fashion-MNIST, which is not installed")
    assert result.returncode == 0, result.stderr[-3000:]
    built = sorted(p.stem for p in tmp_path.glob("*.h5"))
    committed = {
        n for n in _fixtures.committed_names() if n.startswith("larq_") == (peer == "larq")
    }
    assert set(built) == committed  # every committed fixture of this script, nothing else
    for name in built:
        data = np.load(tmp_path / f"{name}.npz")
        # Lambda layers (tfkeras_lambda) load only from a trusted file.
        model = interop.load(tmp_path / f"{name}.h5", safe_mode="lambda" not in name)
        outputs = model.predict(data["x"], verbose=0)
        if "y" not in data:  # several outputs (tfkeras_activations): y:<output layer>
            for output, value in zip(model.output_names, outputs):
                np.testing.assert_allclose(
                    value, data[f"y:{output}"], rtol=1e-5, atol=1e-6, err_msg=output
                )
            continue
        np.testing.assert_allclose(outputs, data["y"], rtol=1e-5, atol=1e-6, err_msg=name)
    # SavedModel directories (tfkeras_savedmodel), saved_model.pb included.
    for directory in sorted(p for p in tmp_path.iterdir() if (p / "keras_metadata.pb").exists()):
        assert (HERE / "fixtures" / directory.name / "keras_metadata.pb").exists()
        data = np.load(tmp_path / f"{directory.name}.npz")
        model = interop.load(directory)
        np.testing.assert_allclose(
            model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6
        )
