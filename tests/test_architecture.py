"""The import contracts of docs/architecture.md hold, and catch what they forbid.

`lint-imports` checks the contracts in pyproject.toml. Each breaking case
copies the package, adds one forbidden import, and checks that the contract
fails and names the offending chain.
"""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINT_IMPORTS = pathlib.Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def _lint(root):
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


def test_the_contracts_are_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "BROKEN" not in result.stdout


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(
        ROOT / "tfqnn",
        tmp_path / "tfqnn",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "kernels"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "module, line, contract, chain",
    [
        (
            "lite/interpreter.py",
            "import tensorflow",
            "lite runs with ai-edge-litert alone",
            "tfqnn.lite.interpreter -> tensorflow",
        ),
        (
            "lite/reference.py",
            "import tfqnn.export",
            "lite runs with ai-edge-litert alone",
            "tfqnn.lite.reference -> tfqnn.export",
        ),
        (
            "layers/dense.py",
            "import tfqnn.lite",
            "layers import quantizers",
            "tfqnn.layers.dense -> tfqnn.lite",
        ),
        (
            "layers/dense.py",
            "import tensorflow",
            "layers compute with keras.ops",
            "tfqnn.layers.dense -> tensorflow",
        ),
        (
            "quantizers/binary.py",
            "import tfqnn.layers",
            "quantizers import nothing",
            "tfqnn.quantizers.binary -> tfqnn.layers",
        ),
        (
            "distribute/packing.py",
            "import tfqnn.export",
            "distribute imports neither",
            "tfqnn.distribute.packing -> tfqnn.export",
        ),
        (
            "export/plan.py",
            "from tfqnn.lite import _core",
            "private modules",
            "tfqnn.export.plan -> tfqnn.lite._core",
        ),
        (
            "layers/base.py",
            "import tfqnn.optimizers",
            "training tools and plot sit above layers",
            "tfqnn.layers.base -> tfqnn.optimizers",
        ),
        (
            "callbacks/quantization_monitor.py",
            "import tfqnn.distribute",
            "training tools and plot import neither",
            "tfqnn.callbacks.quantization_monitor -> tfqnn.distribute",
        ),
        (
            "layers/dense.py",
            "import tfqnn.codebook",
            "codebook is a model-level tool",
            "tfqnn.layers.dense -> tfqnn.codebook",
        ),
        (
            "_validation.py",
            "import tfqnn.quantizers",
            "no import cycles",
            "._validation -> .quantizers",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract_and_shows_the_chain(
    copy, module, line, contract, chain
):
    path = copy / "tfqnn" / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    result = _lint(copy)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout[-3000:]
    assert chain in result.stdout
