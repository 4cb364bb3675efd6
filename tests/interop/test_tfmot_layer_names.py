"""tfmot names a QuantizeLayer's range after the layer: loading follows the layer's name.

A process that builds two QAT models names the second one's input
quantizer ``quantize_layer_1`` and its range ``quantize_layer_1_min`` and
``quantize_layer_1_max`` (seen when the fixture script writes every model
in one run); the committed fixture, written alone, has ``quantize_layer``.
"""

import json
import shutil

import h5py
import numpy as np

from tfqnn import interop

from . import _fixtures

OLD, NEW = "quantize_layer", "quantize_layer_1"


def _renamed(names):
    return np.array(
        [(n.decode() if isinstance(n, bytes) else n).replace(OLD, NEW).encode() for n in names]
    )


def test_a_renamed_quantize_layer_keeps_its_range(tmp_path):
    path = tmp_path / "tfmot_qat_cnn_second.h5"
    shutil.copy(_fixtures.h5("tfmot_qat_cnn"), path)
    with h5py.File(path, "r+") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        assert json.dumps(OLD) in config
        f.attrs["model_config"] = config.replace(json.dumps(OLD), json.dumps(NEW))
        weights = f["model_weights"]
        weights.attrs["layer_names"] = _renamed(weights.attrs["layer_names"])
        weights.move(OLD, NEW)
        group = weights[NEW]
        group.attrs["weight_names"] = _renamed(group.attrs["weight_names"])
        group.move(OLD, NEW)
        for end in ("min", "max"):
            group[NEW].move(f"{OLD}_{end}:0", f"{NEW}_{end}:0")
        low = group[NEW][f"{NEW}_min:0"][()]
    model = interop.load(path)
    assert np.all(low != -6.0)  # a trained range, not RangeFakeQuant's initial one
    np.testing.assert_array_equal(model.get_layer(NEW).get_weights()[0], low)
    data = np.load(f"{_fixtures.FIXTURES}/tfmot_qat_cnn.npz")
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)
