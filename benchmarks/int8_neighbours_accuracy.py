"""Top-1 on Fashion-MNIST of a trained binary network's two exports: float32 or int8 neighbours.

`tfqnn.export.to_tflite(model)` keeps the ops around the binary ones (stem,
shortcuts, pools, BatchNorms, classifier) in float32 (the ``binary`` file of
``zoo_latency.py``); with ``int8_representative_data`` they become int8
builtins and the binary ops read and write int8 tensors (``binary-int8``).
This script measures what the int8 neighbours cost in accuracy on the zoo
networks trained and committed under ``saved_models/`` (28x28x1, Fashion-MNIST,
``examples/train_zoo.py``): top-1 of Keras, of the binary file and of the
binary-int8 file on the test images, and how often each file's top-1 agrees
with Keras's. The int8 files calibrate on the first ``--calibration``
training images (inputs scaled to [-1, 1] as in training).

Usage: python benchmarks/int8_neighbours_accuracy.py [--test 10000]
                                                     [--calibration 500]
                                                     [--json PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import _machine
import numpy as np
from _quiet import quiet

SAVED = Path(__file__).resolve().parents[1] / "saved_models"
MODELS = ("resnet18_binary_fashion_mnist", "quicknetsmall_binary_fashion_mnist")


def scaled(images: np.ndarray) -> np.ndarray:
    """Fashion-MNIST images in [0, 1] as the saved models read them: ``2x - 1``, a channel axis."""
    return 2.0 * images[..., None].astype(np.float32) - 1.0


def measure(
    name: str, x_test: np.ndarray, y_test: np.ndarray, calibration: np.ndarray
) -> dict[str, Any]:
    """Top-1 of Keras and of both exports of one saved model, and their agreement with Keras."""
    import keras

    import tfqnn

    model = keras.models.load_model(SAVED / f"{name}.keras")
    keras_top1 = model.predict(x_test, batch_size=500, verbose=0).argmax(1)
    with quiet():
        files = {
            "binary": tfqnn.export.to_tflite(model, verbose=0),
            "binary-int8": tfqnn.export.to_tflite(
                model, int8_representative_data=calibration, verbose=0
            ),
        }
    result: dict[str, Any] = {
        "model": name,
        "test_images": len(y_test),
        "keras_top1": float(np.mean(keras_top1 == y_test)),
    }
    for variant, data in files.items():
        top1 = tfqnn.lite.Interpreter(model_content=data).predict(x_test, batch_size=500)
        top1 = top1.argmax(1)
        result[variant] = {
            "top1": float(np.mean(top1 == y_test)),
            "agrees_with_keras": float(np.mean(top1 == keras_top1)),
            "file_kb": len(data) / 1e3,
            "custom_ops": tfqnn.lite.custom_ops_in(data),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    """Measures each saved model and prints a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=int, default=10000, help="test images [10000]")
    parser.add_argument(
        "--calibration", type=int, default=500, help="training images for int8 calibration [500]"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.test <= 10000 or not 1 <= args.calibration <= 60000:
        parser.error("--test must be in [1, 10000], --calibration in [1, 60000]")
    with quiet():
        import tensorflow as tf

        import tfqnn
    if not tfqnn.datasets.fashion_mnist_available():
        print("Fashion-MNIST is not installed", file=sys.stderr)
        return 1
    print(_machine.header({"TensorFlow": tf.__version__, "tfqnn": tfqnn.__version__}))
    (x_train, _), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    x_test, y_test = scaled(x_test[: args.test]), y_test[: args.test]
    calibration = scaled(x_train[: args.calibration])
    print(f"\n{len(y_test)} test images; int8 calibrated on {len(calibration)} training images\n")
    print(
        "| model | Keras top-1 | binary file top-1 | binary-int8 file top-1 "
        "| agreement with Keras: binary / binary-int8 | file KB: binary / binary-int8 |"
    )
    print("|---|---|---|---|---|---|")
    results = []
    for name in MODELS:
        start = time.perf_counter()
        r = measure(name, x_test, y_test, calibration)
        b, i = r["binary"], r["binary-int8"]
        print(
            f"| {name} | {r['keras_top1']:.2%} | {b['top1']:.2%} | {i['top1']:.2%} "
            f"| {b['agrees_with_keras']:.2%} / {i['agrees_with_keras']:.2%} "
            f"| {b['file_kb']:.0f} / {i['file_kb']:.0f} |",
            flush=True,
        )
        print(f"({name}: {time.perf_counter() - start:.0f} s)", file=sys.stderr)
        results.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
