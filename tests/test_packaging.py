"""The built wheel: its tag, its license, and inference with tfqnn.lite in a
fresh virtual environment that has ai-edge-litert and nothing else."""

import os
import pathlib
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import tfqnn

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "saved_models" / "bnn_fashion_mnist.tflite"

pytestmark = pytest.mark.slow


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)])
    (path,) = out.glob("tfqnn-*.whl")
    return path


def test_wheel_is_tagged_for_any_python_3_on_this_platform(wheel):
    name, version, python, abi, platform = wheel.stem.split("-")
    assert (name, version) == ("tfqnn", tfqnn.__version__)
    assert (python, abi) == ("py3", "none")
    assert platform.startswith("linux_")


def test_wheel_carries_the_library_the_license_and_no_sources(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"tfqnn-{tfqnn.__version__}.dist-info/METADATA").decode()
    assert "tfqnn/lite/libtfqnn_ops.so" in names
    assert "tfqnn/py.typed" in names
    assert any(name.endswith("dist-info/licenses/LICENSE") for name in names)
    assert not [name for name in names if name.endswith((".cc", ".h"))]
    assert "License-Expression: Apache-2.0" in metadata.splitlines()


def test_wheel_runs_lite_inference_with_only_ai_edge_litert(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TFQNN_LIBRARY")}
    # pip shows PEP 639's License-Expression from release 25.1 on.
    _run([python, "-m", "pip", "install", "-q", "--upgrade", "pip>=25.1"], env=env)
    _run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], env=env)
    _run([python, "-m", "pip", "install", "-q", "ai-edge-litert==2.3.0"], env=env)
    shown = _run([python, "-m", "pip", "show", "tfqnn"], env=env)
    assert "License-Expression: Apache-2.0" in shown.splitlines()

    x = np.random.default_rng(0).uniform(-1, 1, size=(8, 28, 28, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import importlib.util, sys
        import numpy as np
        import tfqnn.lite
        assert importlib.util.find_spec("tensorflow") is None
        assert importlib.util.find_spec("keras") is None
        assert tfqnn.lite.library_path().startswith(sys.prefix), tfqnn.lite.library_path()
        interpreter = tfqnn.lite.Interpreter({str(MODEL)!r})
        assert tfqnn.lite.custom_ops_in(open({str(MODEL)!r}, "rb").read())
        np.save({str(tmp_path / "y.npy")!r}, interpreter.predict(np.load({str(tmp_path / "x.npy")!r})))
    """)
    _run([python, "-c", script], env=env, cwd=tmp_path)
    expected = tfqnn.lite.Interpreter(str(MODEL)).predict(x)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
