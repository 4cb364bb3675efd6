"""The demo script and the model it saved under saved_models/."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tfqnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED = os.path.join(ROOT, "saved_models", "bnn_fashion_mnist")


def test_demo_trains_saves_and_writes_a_model_card(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "examples", "binarized_fashion_mnist.py"),
            "--data",
            "digits",
            "--epochs",
            "2",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Compression ratio" in result.stdout and "binarized:" in result.stdout
    card = (tmp_path / "bnn_digits.md").read_text()
    metrics = json.loads((tmp_path / "bnn_digits.json").read_text())
    assert f"{100 * metrics['test_accuracy']:.2f} %" in card
    model = keras.models.load_model(tmp_path / "bnn_digits.keras")
    (_, _), (x_test, y_test) = tfqnn.datasets.load_digits()
    predictions = model.predict(2.0 * x_test[..., None] - 1.0, verbose=0)
    accuracy = float(np.mean(np.argmax(predictions, axis=1) == y_test))
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    # The TFLite export: its own accuracy, recorded and recomputed here, is
    # the Keras model's up to a rare sign flip at a BatchNorm output of zero.
    tflite = tmp_path / "bnn_digits.tflite"
    assert tflite.stat().st_size == metrics["tflite_bytes"]
    lite = tfqnn.lite.Interpreter(str(tflite)).predict(
        2.0 * x_test[..., None].astype(np.float32) - 1.0
    )
    lite_accuracy = float(np.mean(np.argmax(lite, axis=1) == y_test))
    assert lite_accuracy == pytest.approx(metrics["tflite_test_accuracy"], abs=1e-6)
    assert lite_accuracy == pytest.approx(accuracy, abs=0.01)
    assert "bnn_digits.tflite" in card


@pytest.mark.skipif(
    not tfqnn.datasets.fashion_mnist_available(), reason="Fashion-MNIST not installed"
)
def test_saved_binarized_model_keeps_its_recorded_accuracy():
    with open(SAVED + ".json") as f:
        recorded = json.load(f)
    model = keras.models.load_model(SAVED + ".keras")
    summary = tfqnn.summary(model, print_fn=None)
    assert summary.binary_mac_fraction > 0.9
    (_, _), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    predictions = model.predict(2.0 * x_test[..., None] - 1.0, batch_size=500, verbose=0)
    accuracy = float(np.mean(np.argmax(predictions, axis=1) == y_test))
    assert accuracy == pytest.approx(recorded["test_accuracy"], abs=1e-3)
    assert accuracy > 0.85
