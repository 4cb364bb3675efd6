"""examples/train_quantized_lstm.py: trains, exports, and its TFLite file agrees with Keras."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfqnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quick_run_learns_and_its_tflite_file_predicts_as_keras(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "train_quantized_lstm.py"),
            "--quick",
            "--data",
            "digits",
            "--epochs",
            "3",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "━" in result.stdout  # Keras's progress bar
    accuracy = float(re.search(r"^test accuracy: ([\d.]+) %", result.stdout, re.M).group(1))
    lite, keras_same = map(
        float,
        re.search(r"TFLite test accuracy: ([\d.]+) % .*Keras: ([\d.]+) %", result.stdout).groups(),
    )
    assert accuracy > 25.0  # chance is 10 %
    assert abs(lite - keras_same) <= 1.0
    model = keras.models.load_model(tmp_path / "lstm_ternary_digits.keras")
    (_, _), (x_test, _) = tfqnn.datasets.load_digits()
    x = x_test[:100].astype(np.float32)
    interpreter = tfqnn.lite.Interpreter(str(tmp_path / "lstm_ternary_digits.tflite"))
    actual, expected = interpreter.predict(x, batch_size=100), model.predict(x, verbose=0)
    # Float rounding can move a quantized state across a rounding boundary
    # (one 2^-5 step) in a few sequences; the others agree to rounding.
    agree = np.all(np.abs(actual - expected) <= 1e-5, axis=1)
    assert agree.mean() >= 0.9
    assert np.mean(actual.argmax(1) == expected.argmax(1)) >= 0.98
