"""Python functions in a tf_keras config (saved by name): larq-zoo's map, others are reported.

tf_keras saves a function quantizer or activation as ``{"module": "builtins",
"class_name": "function", "config": NAME}``: its name only.
"""

import shutil

import h5py
import pytest

from tfqnn import interop

from . import _fixtures


def _with_names(tmp_path, replacements):
    path = tmp_path / "renamed.h5"
    shutil.copy(_fixtures.h5("larq_zoo_blocks"), path)
    with h5py.File(path, "r+") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        for old, new in replacements.items():
            assert f'"config": "{old}"' in config
            config = config.replace(f'"config": "{old}"', f'"config": "{new}"')
        f.attrs["model_config"] = config
    return path


def test_larq_zoos_functions_map_by_name():
    _, report = interop.load_with_report(_fixtures.h5("larq_zoo_blocks"))
    rows = {m.path.split("/")[-1]: m for m in report.mappings}
    assert rows["quant_conv2d"].source_quantizers.endswith("kernel_quantizer=xnor_weight_scale")
    assert "ClippedScaledSign" in rows["quant_conv2d"].target_quantizers
    assert (
        "kernel_quantizer=magnitude_aware_sign_unclipped" in rows["quant_dense"].source_quantizers
    )
    assert "DoReFa(bits=1, mode='weights')" in rows["quant_dense"].target_quantizers


def test_unknown_functions_are_reported_with_their_paths(tmp_path):
    path = _with_names(
        tmp_path,
        {"xnor_weight_scale": "my_weight_scale", "clip_by_value_activation": "my_activation"},
    )
    with pytest.raises(ValueError, match="2 unsupported") as raised:
        interop.load(path)
    message = str(raised.value)
    assert (
        "larq_zoo_blocks/quant_conv2d/kernel_quantizer: larq quantizer 'my_weight_scale'" in message
    )
    assert "larq_zoo_blocks/activation: tf_keras Activation" in message
