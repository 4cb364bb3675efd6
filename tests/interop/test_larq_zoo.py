"""larq-zoo's architectures, built with larq's layers by the real peer, load into tfqnn.

``make_fixtures_larq_zoo.py`` restates each larq-zoo architecture with larq
0.14 on tf_keras 2.21 (larq-zoo itself does not install there) and writes
its full model, its weights file (as larq-zoo's released ones) and its
predictions on random images; the files are too large to commit (up to
250 MB), so this slow test builds them in a temporary directory. It needs
the larq environment (``scripts/peer_envs.sh``), found in
``$TFQNN_PEERS_DIR`` or ``.peers`` at the repository root, and skips
without it.
"""

import os
import pathlib
import shutil
import subprocess

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn import interop

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
PEERS = pathlib.Path(os.environ.get("TFQNN_PEERS_DIR", ROOT / ".peers"))

# larq-zoo's architectures that tfqnn.zoo builds too: their weights files load there.
IN_TFQNN_ZOO = tuple(
    name for name in tfqnn.zoo.list_models() if tfqnn.zoo.info(name).params is not None
)
# larq-zoo's other architectures: their full-model files load with tfqnn.interop.load.
OTHERS = ("BinaryDenseNet28", "BinaryDenseNet37", "BinaryDenseNet37Dilated", "BinaryDenseNet45")
# Their files hold Lambda layers (Python bytecode): load raises, naming them, unless
# safe_mode=False.
WITH_LAMBDAS = {
    "MeliusNet22": "meliusnet22/stem_s1_groupconv_split",
    "RealToBinaryNet": "r2b_bnn/r2b_bnn_block_2_out",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    python = PEERS / "larq" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no larq environment at {python.parent.parent}: run scripts/peer_envs.sh")
    directory = tmp_path_factory.mktemp("larq_zoo")
    result = subprocess.run(
        [str(python), str(HERE / "make_fixtures_larq_zoo.py"), str(directory)],
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    yield directory
    shutil.rmtree(directory, ignore_errors=True)  # about 1.5 GB


def _predictions(name, directory):
    data = np.load(directory / f"{name}.npz")
    return data["x"], data["y"]


@pytest.mark.slow
@pytest.mark.parametrize("name", IN_TFQNN_ZOO + OTHERS)
def test_full_model_file_loads_with_larqs_predictions(built, name):
    x, y = _predictions(name, built)
    model = interop.load(built / f"{name}.h5")
    # Float rounding through up to 60 layers on random weights: measured up to 1e-4
    # of a probability (QuickNetSmall), and 0 for several of them.
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=3e-4, atol=1e-6)
    assert y.shape == (4, 1000) and np.allclose(y.sum(-1), 1.0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", IN_TFQNN_ZOO)
def test_weights_file_loads_into_the_tfqnn_zoo_builder(built, name):
    x, y = _predictions(name, built)
    builder = getattr(tfqnn.zoo, name)
    model = builder(input_shape=x.shape[1:], weights=built / f"{name}_weights.h5")
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=3e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WITH_LAMBDAS))
def test_lambda_layers_are_reported(built, name):
    path = built / f"{name}.h5"
    if not path.exists():
        pytest.skip(f"tf_keras could not save {name} as .h5")
    with pytest.raises(ValueError, match="safe_mode=False if you trust the file") as raised:
        interop.load(path)
    assert WITH_LAMBDAS[name] in str(raised.value)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WITH_LAMBDAS))
def test_lambda_layers_load_with_safe_mode_false(built, name):
    path = built / f"{name}.h5"
    if not path.exists():
        pytest.skip(f"tf_keras could not save {name} as .h5")
    x, y = _predictions(name, built)
    model = interop.load(path, safe_mode=False)
    assert any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    predictions = model.predict(x, verbose=0)
    # RealToBinaryNet's random weights saturate its softmax (0.99992 for one class): float
    # rounding of its large logits moves the others by up to 6.5e-5 (measured, tfqnn
    # against larq); MeliusNet22 by 3.8e-7.
    atol = {"MeliusNet22": 1e-6, "RealToBinaryNet": 1e-4}[name]
    np.testing.assert_allclose(predictions, y, rtol=3e-4, atol=atol)
    np.testing.assert_array_equal(predictions.argmax(-1), y.argmax(-1))
