"""to_tflite reports its stages and the int8 calibration's progress, or stays silent."""

import keras
import numpy as np
import pytest

import tfqnn

BINARY = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    use_bias=False,
)


def small_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32),
            tfqnn.layers.QuantDense(8, **BINARY),
            keras.layers.Dense(3),
        ],
        name="small",
    )


def test_verbose_prints_each_stage_and_a_calibration_bar(capsys):
    x = np.random.default_rng(0).normal(size=(12, 16)).astype(np.float32)
    data = tfqnn.export.to_tflite(small_model(), int8_representative_data=x)
    out = capsys.readouterr().out
    stages = [line for line in out.splitlines() if line.startswith("to_tflite:")]
    assert stages[:3] == [
        "to_tflite: tracing small (1 binary layer groups)",
        "to_tflite: converting",
        "to_tflite: checking the custom ops",
    ]
    assert (
        stages[3]
        == f"to_tflite: {len(data):,} bytes, custom ops {{'TfqnnQuantize': 1, 'TfqnnBdense': 1}}"
    )
    assert "12/12" in out  # the calibration bar reached every sample


def test_verbose_zero_is_silent_and_other_values_raise(capsys):
    tfqnn.export.to_tflite(small_model(), verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="Invalid verbose=3"):
        tfqnn.export.to_tflite(small_model(), verbose=3)
