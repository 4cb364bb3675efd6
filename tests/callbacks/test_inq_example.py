"""examples/inq_fashion_mnist.py runs INQ on the demo's CNN and saves power-of-two kernels."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfqnn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_inq_example_on_digits(tmp_path):
    output = tmp_path / "inq.keras"
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "inq_fashion_mnist.py"),
            "--data",
            "digits",
            "--epochs",
            "3",
            "--bits",
            "4",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 4/4" in result.stdout and "power-of-two kernels: True" in result.stdout
    printed = float(re.search(r"INQ, 4 bits:\s+([\d.]+) %", result.stdout).group(1))
    model = keras.models.load_model(output)
    (_, _), (x_test, y_test) = tfqnn.datasets.load_digits()
    predictions = model.predict(2.0 * x_test[..., None] - 1.0, verbose=0)
    accuracy = 100 * float(np.mean(np.argmax(predictions, axis=1) == y_test))
    assert accuracy == pytest.approx(printed, abs=0.01)
    kernels = [layer for layer in model.layers if isinstance(layer, tfqnn.layers.QuantizerMixin)]
    assert len(kernels) == 5
    assert all(layer.kernel_quantizer == tfqnn.quantizers.PowerOfTwo(4) for layer in kernels)
