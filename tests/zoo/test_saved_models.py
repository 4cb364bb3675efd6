"""The zoo networks trained by examples/train_zoo.py and committed under saved_models/:
their accuracy, recomputed from the saved files (Keras and TFLite), is the card's."""

import json
import os

import keras
import numpy as np
import pytest

import tfqnn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAVED = os.path.join(ROOT, "saved_models")
MODELS = {
    # name: (builder, the lowest accuracy the card may claim)
    "resnet18_binary_fashion_mnist": ("ResNet18", 0.80),
    "quicknetsmall_binary_fashion_mnist": ("QuickNetSmall", 0.80),
}

pytestmark = pytest.mark.skipif(
    not tfqnn.datasets.fashion_mnist_available(), reason="Fashion-MNIST not installed"
)


@pytest.fixture(scope="module")
def fashion_test():
    (_, _), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    return 2.0 * x_test[..., None].astype(np.float32) - 1.0, y_test


@pytest.mark.parametrize(
    "name",
    [
        "resnet18_binary_fashion_mnist",
        # Twice the MACs: the default suite rechecks one of the two.
        pytest.param("quicknetsmall_binary_fashion_mnist", marks=pytest.mark.slow),
    ],
)
def test_saved_zoo_model_keeps_its_recorded_accuracy(name, fashion_test):
    builder, floor = MODELS[name]
    base = os.path.join(SAVED, name)
    with open(base + ".json") as f:
        card = json.load(f)
    for suffix in (".keras", ".tflite"):
        assert os.path.getsize(base + suffix) < 2 * 1024 * 1024
    assert card["model"]["builder"] == builder
    assert card["data"]["train_images"] == 60000 and card["data"]["test_images"] == 10000
    x_test, y_test = fashion_test

    model = keras.models.load_model(base + ".keras")
    summary = tfqnn.summary(model, print_fn=None)
    assert summary.total_params == card["summary"]["total_params"]
    assert summary.binary_mac_fraction > 0.9
    predictions = model.predict(x_test, batch_size=1000, verbose=0)
    accuracy = float(np.mean(predictions.argmax(1) == y_test))
    assert accuracy == pytest.approx(card["test_accuracy"], abs=1e-3)
    assert accuracy > floor

    # The TFLite export: its own accuracy as recorded, and top-1 agreeing with
    # Keras on at least 99 % of the images (a binary network can flip a sign
    # where a pre-activation is within float rounding of zero).
    lite = tfqnn.lite.Interpreter(base + ".tflite").predict(x_test, batch_size=1000)
    lite_accuracy = float(np.mean(lite.argmax(1) == y_test))
    assert lite_accuracy == pytest.approx(card["tflite"]["test_accuracy"], abs=1e-3)
    assert np.mean(lite.argmax(1) == predictions.argmax(1)) >= 0.99
    with open(base + ".tflite", "rb") as f:
        ops = tfqnn.lite.custom_ops_in(f.read())
    assert ops == card["tflite"]["custom_ops"] and ops["TfqnnBconv2d"] >= 8
