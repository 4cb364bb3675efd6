"""examples/train_zoo.py: trains a zoo model, writes it, its TFLite export and a model card
whose numbers a recomputation from the written files reproduces."""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest

import tfqnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "train_zoo.py")

pytestmark = pytest.mark.skipif(
    not tfqnn.datasets.fashion_mnist_available(), reason="Fashion-MNIST not installed"
)


def load_script():
    """examples/train_zoo.py as a module, so that a test runs its main() in-process."""
    spec = importlib.util.spec_from_file_location("train_zoo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fashion_test_images(size):
    (_, _), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    return 2.0 * x_test[:size, ..., None].astype(np.float32) - 1.0, y_test[:size]


@pytest.mark.parametrize(
    "model, options, name, recipe",
    [
        (
            "ResNet18",
            ["--quantization", "binary", "--width-multiplier", "0.125"],
            "resnet18_binary_fashion_mnist",
            "Adam 0.003; exponential decay",
        ),
        pytest.param(
            "QuickNetSmall",
            ["--width-multiplier", "0.25", "--blocks", "1", "1", "1", "1"],
            "quicknetsmall_binary_fashion_mnist",
            "Adam 0.01 on binary kernels, SGD 0.1",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_quick_run_writes_model_export_and_a_card_that_recomputes(
    tmp_path, capsys, model, options, name, recipe
):
    load_script().main(
        [
            "--model",
            model,
            *options,
            "--epochs",
            "1",
            "--train-size",
            "256",
            "--test-size",
            "200",
            "--latency-runs",
            "3",
            "--output",
            str(tmp_path),
        ]
    )
    assert "━" in capsys.readouterr().out  # Keras's progress bar
    base = tmp_path / name
    for suffix in (".keras", ".tflite", ".md", ".json"):
        assert (tmp_path / (name + suffix)).is_file()
    card = json.loads(base.with_suffix(".json").read_text())
    markdown = base.with_suffix(".md").read_text()

    x_test, y_test = fashion_test_images(200)
    assert card["data"] == {"name": "fashion_mnist", "train_images": 256, "test_images": 200}
    assert card["training"]["epochs"] == 1 and card["training"]["steps"] == 2
    assert card["training"]["recipe"].startswith(recipe)

    loaded = keras.models.load_model(base.with_suffix(".keras"))
    assert not loaded.compiled  # written without optimizer state
    keras_predictions = loaded.predict(x_test, verbose=0)
    accuracy = float(np.mean(keras_predictions.argmax(1) == y_test))
    assert card["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert f"**{100 * accuracy:.2f} %**" in markdown

    data = base.with_suffix(".tflite").read_bytes()
    lite = tfqnn.lite.Interpreter(model_content=data).predict(x_test)
    lite_accuracy = float(np.mean(lite.argmax(1) == y_test))
    assert card["tflite"]["test_accuracy"] == pytest.approx(lite_accuracy, abs=1e-6)
    agreement = float(np.mean(lite.argmax(1) == keras_predictions.argmax(1)))
    assert card["tflite"]["agreement"] == pytest.approx(agreement, abs=1e-6)
    assert card["tflite"]["bytes"] == len(data)
    assert card["keras_bytes"] == os.path.getsize(base.with_suffix(".keras"))
    ops = tfqnn.lite.custom_ops_in(data)
    assert card["tflite"]["custom_ops"] == ops and ops["TfqnnBconv2d"] >= 4
    assert 0 < card["tflite"]["latency_ms"] < 1000

    summary = tfqnn.summary(loaded, print_fn=None)
    assert card["summary"]["total_params"] == summary.total_params == loaded.count_params()
    assert card["summary"]["params"] == {str(b): c for b, c in summary.params.items()}
    assert card["summary"]["binary_mac_fraction"] == pytest.approx(summary.binary_mac_fraction)
    assert card["summary"]["quantized_bytes"] == pytest.approx(summary.quantized_bytes)
    assert f"{summary.total_params:,} (" in markdown


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--model", "ResNet50"], "invalid choice: 'ResNet50'"),
        (["--model", "BiRealNet", "--quantization", "xnor"], "binary only"),
        (["--model", "ResNet18", "--epochs", "0"], "--epochs must be >= 1"),
    ],
)
def test_bad_arguments_stop_with_a_message(capsys, arguments, message):
    with pytest.raises(SystemExit) as stop:
        load_script().parse_args(arguments)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def larq_zoo_rate(recipe_name, epoch):
    """The learning rate larq-zoo's training tasks give at ``epoch`` (their formulas)."""
    if recipe_name == "BinaryResNetE18":
        return 4e-3 * 0.3 ** sum(epoch >= step for step in (70, 90, 110))
    if recipe_name == "BinaryAlexNet":
        return 1e-2 * 0.5 ** (epoch // 10)
    if recipe_name == "xnor":
        steps = (19, 30, 44, 53, 66, 76, 86)
        factors = (1, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0001)
        return 1e-3 * factors[sum(epoch >= s for s in steps)]
    if recipe_name == "dorefa":
        if epoch < 60:
            return 2e-4
        if epoch < 75:
            return 2e-4 * 0.2
        if epoch < 82:
            return 2e-4 * 0.04
        return 2e-4 * 0.04 * 0.1 ** ((epoch - 82) // 2 + 1)
    raise AssertionError(recipe_name)


@pytest.mark.parametrize("recipe_name", ["BinaryResNetE18", "BinaryAlexNet", "xnor", "dorefa"])
def test_step_schedules_are_the_papers_when_a_step_is_an_epoch(recipe_name):
    script = load_script()
    recipe = script.RECIPES[recipe_name]
    epochs = recipe.paper_epochs
    schedule = script.schedule_of(recipe, recipe.learning_rate, epochs)
    for epoch in range(epochs):
        actual = float(keras.ops.convert_to_numpy(schedule(epoch)))
        assert actual == pytest.approx(larq_zoo_rate(recipe_name, epoch), rel=1e-5), epoch


def test_scaled_schedules_keep_their_shape():
    script = load_script()
    steps = 1200
    quicknet = script.schedule_of(script.RECIPES["quicknet"], 1e-2, steps)
    rate = lambda schedule, step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    warmup = round(5 / 600 * steps)  # 10 steps, as 5 of 600 epochs
    assert rate(quicknet, 0) == pytest.approx(0.0, abs=1e-9)
    assert rate(quicknet, warmup // 2) == pytest.approx(5e-3, rel=1e-5)
    assert rate(quicknet, warmup) == pytest.approx(1e-2, rel=1e-5)
    middle = warmup + (steps - warmup) // 2
    assert rate(quicknet, middle) == pytest.approx(5e-3, rel=1e-3)  # cosine halfway
    linear = script.schedule_of(script.RECIPES["BiRealNet"], 5e-3, steps)
    assert rate(linear, steps // 4) == pytest.approx(0.75 * 5e-3, rel=1e-5)
    binary = script.schedule_of(script.RECIPES["binary"], 3e-3, steps)
    assert rate(binary, steps // 2) == pytest.approx(3e-3 * 0.1, rel=1e-5)
    assert rate(binary, steps) == pytest.approx(3e-5, rel=1e-5)
    # A run shorter than the milestones keeps one step per milestone.
    short = script.schedule_of(script.RECIPES["BinaryResNetE18"], 4e-3, 2)
    assert [round(rate(short, s) / 4e-3, 6) for s in range(5)] == [1, 0.3, 0.09, 0.027, 0.027]
