"""Test accuracy of the weight-quantization procedures on Fashion-MNIST.

Two models, LeNet-300-100 (784-300-100-10, ReLU, BatchNorm after the hidden
layers) and the demo's CNN (examples/binarized_fashion_mnist.py: 3 conv, 2
dense), each trained in float with the demo's recipe (Adam, cosine-decayed
learning rate, batch 64), then:

- ``inq``: `tfqnn.callbacks.IncrementalQuantization` from the trained float
  model at 5, 4, 3 and 2 bits (SGD with momentum 0.9, learning rate 1e-3, one
  epoch per step; the paper's portions: (0.5, 0.75, 0.875, 1) at 5 bits and
  its ResNet-18 schedules at 4, 3 and 2 bits; ``--quick``: the 5-bit
  portions at every width);
- ``sketch``: `tfqnn.codebook.sketch` of the trained float model with 1 to 4
  bases, refined and direct, without retraining, and refined after one epoch
  of fine-tuning (Adam 1e-4);
- ``abc``: ABC-Net layers (`MultiBinary(M, axis=-1)` kernels,
  `MultiBinaryActivation(N)` inputs) for (M, N) in (1, 1), (3, 1), (3, 3),
  (5, 5), and the plain binary model (`ste_sign` inputs and kernels,
  ``weight_clip``), trained from scratch with the float recipe but the
  binary model's learning rate, 5e-3 (``--abc-learning-rate``; the float
  model's is ``--float-learning-rate``, 1e-3); the first and last layers stay
  float, as in the demo.

Prints the machine, then one table per part: accuracy, bits per weight of
the quantized kernels, and the difference to the float model. All numbers
come from this one run. ``--json PATH`` also writes every row (with the
model's size at its precision, `tfqnn.summary`'s ``quantized_bytes``) to
PATH after each row; scripts/docs_images.py draws
benchmarks/results/weight_procedures.json as a Pareto chart.

Usage: python benchmarks/weight_procedures.py [--models lenet,cnn]
    [--parts inq,sketch,abc] [--epochs 3] [--quick] [--seed 0] [--json PATH]
    [--abc-learning-rate 5e-3] [--float-learning-rate 1e-3]
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

import tfqnn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
sys.path.insert(0, os.path.dirname(__file__))
import _machine
import binarized_fashion_mnist as demo

INQ_PORTIONS = {
    5: (0.5, 0.75, 0.875, 1.0),
    4: (0.3, 0.5, 0.8, 0.9, 0.95, 1.0),
    3: (0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
    2: (0.2, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 1.0),
}
ABC_BASES = ((1, 1), (3, 1), (3, 3), (5, 5))


def lenet(hidden=None, name="lenet"):
    """LeNet-300-100; ``hidden`` quantizes the second layer's inputs and kernel."""
    hidden = hidden or {}
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            tfqnn.layers.QuantDense(300, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu" if not hidden else None),
            tfqnn.layers.QuantDense(100, use_bias=False, **hidden),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu" if not hidden else None),
            tfqnn.layers.QuantDense(10, activation="softmax"),
        ],
        name=name,
    )


def cnn(hidden=None, name="cnn"):
    """The demo's CNN; ``hidden`` quantizes the inputs and kernels of all but the first and
    last layers."""
    if hidden is None:
        return demo.build_model((28, 28, 1), binarized=False, name=name)
    binary = hidden.get("kernel_quantizer") == "ste_sign"
    pad = {"pad_values": 1.0} if binary else {}
    h = dict(use_bias=False, **hidden)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            tfqnn.layers.QuantConv2D(32, 3, padding="same", use_bias=False),
            keras.layers.MaxPooling2D(2),
            keras.layers.BatchNormalization(scale=False),
            tfqnn.layers.QuantConv2D(64, 3, padding="same", **pad, **h),
            keras.layers.MaxPooling2D(2),
            keras.layers.BatchNormalization(scale=False),
            tfqnn.layers.QuantConv2D(64, 3, padding="same", **pad, **h),
            keras.layers.MaxPooling2D(2),
            keras.layers.BatchNormalization(scale=False),
            keras.layers.Flatten(),
            tfqnn.layers.QuantDense(64, **h),
            keras.layers.BatchNormalization(scale=False),
            tfqnn.layers.QuantDense(10, use_bias=False),
            keras.layers.BatchNormalization(scale=False),
            keras.layers.Activation("softmax"),
        ],
        name=name,
    )


def binary_hidden():
    return dict(
        input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
    )


def abc_hidden(m, n):
    return dict(
        input_quantizer={"class_name": "MultiBinaryActivation", "config": {"bases": n}},
        kernel_quantizer=tfqnn.quantizers.MultiBinary(m, axis=-1),
    )


def accuracy(model, data):
    (_, _), (x_test, y_test) = data
    predictions = model.predict(x_test, batch_size=512, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=1) == y_test))


def copy_of(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def kernel_bits(model):
    bits = sorted(
        {row.weight_bits for row in tfqnn.summary(model, print_fn=None).layers if row.weight_bits}
    )
    return "/".join(str(b) for b in bits) or "32"


def run_inq(model, data, quick, report):
    (x_train, y_train), _ = data
    for bits in (5, 4, 3, 2):
        portions = INQ_PORTIONS[5 if quick else bits]
        inq_model = copy_of(model)
        inq_model.compile(
            keras.optimizers.SGD(1e-3, momentum=0.9), "sparse_categorical_crossentropy"
        )
        inq = tfqnn.callbacks.IncrementalQuantization(portions, bits=bits, verbose=0)
        start = time.perf_counter()
        inq_model.fit(
            x_train, y_train, batch_size=64, epochs=len(portions) - 1, callbacks=[inq], verbose=0
        )
        assert inq.done
        report(
            f"INQ {bits} bits ({len(portions) - 1} epochs)", inq_model, time.perf_counter() - start
        )


def run_sketch(model, data, report):
    (x_train, y_train), _ = data
    for bases in (1, 2, 3, 4):
        for refined in (True, False):
            sketched = tfqnn.codebook.sketch(model, bases=bases, refined=refined)
            report(f"sketch {bases} bases, {'refined' if refined else 'direct'}", sketched, 0.0)
        tuned = tfqnn.codebook.sketch(model, bases=bases, refined=True)
        tuned.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
        start = time.perf_counter()
        tuned.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
        report(f"sketch {bases} bases, refined, +1 epoch", tuned, time.perf_counter() - start)


def run_abc(build, data, epochs, seed, report, abc_learning_rate=5e-3):
    variants = [("binary (ste_sign)", binary_hidden(), 5e-3)]
    variants += [
        (f"ABC-Net M={m}, N={n}", abc_hidden(m, n), abc_learning_rate) for m, n in ABC_BASES
    ]
    for label, hidden, learning_rate in variants:
        keras.utils.set_random_seed(seed)
        model = build(hidden)
        start = time.perf_counter()
        demo.train(model, data, epochs, learning_rate=learning_rate, batch_size=64)
        report(f"{label}, lr {learning_rate:g}", model, time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="lenet,cnn")
    parser.add_argument("--parts", default="inq,sketch,abc")
    parser.add_argument("--epochs", type=int, default=3, help="float (and ABC-Net) epochs")
    parser.add_argument("--quick", action="store_true", help="5-bit INQ portions at every width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--abc-learning-rate",
        type=float,
        default=5e-3,
        help="ABC-Net's peak learning rate (default: the binary model's, 5e-3)",
    )
    parser.add_argument(
        "--float-learning-rate", type=float, default=1e-3, help="the float model's (1e-3)"
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    models = args.models.split(",")
    parts = args.parts.split(",")

    cpu = _machine.cpu_name()
    print(_machine.header({"TensorFlow": tf.__version__, "Keras": keras.__version__}))
    if not tfqnn.datasets.fashion_mnist_available():
        sys.exit("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist).")
    _, data = demo.load("fashion_mnist")
    rows = []
    record = {
        "benchmark": "benchmarks/weight_procedures.py",
        "date": datetime.date.today().isoformat(),
        "machine": f"{cpu} ({platform.machine()}), {os.cpu_count()} cores",
        "versions": f"TensorFlow {tf.__version__}, Keras {keras.__version__}",
        "args": {key: value for key, value in vars(args).items() if key != "json"},
        "rows": rows,
    }

    def keep(model_name, label, model, acc, seconds):
        rows.append(
            {
                "model": model_name,
                "method": label,
                "bits": kernel_bits(model),
                "accuracy": round(acc, 4),
                "size_bytes": round(tfqnn.summary(model, print_fn=None).quantized_bytes),
                "seconds": round(seconds, 1),
            }
        )
        if args.json:
            with open(args.json, "w") as f:
                json.dump(record, f, indent=1)
                f.write("\n")

    builders = {"lenet": lenet, "cnn": cnn}
    for name in models:
        build = builders[name]
        keras.utils.set_random_seed(args.seed)
        float_model = build(None, name=f"{name}_float")
        start = time.perf_counter()
        demo.train(
            float_model, data, args.epochs, learning_rate=args.float_learning_rate, batch_size=64
        )
        float_accuracy = accuracy(float_model, data)
        keep(name, "float", float_model, float_accuracy, time.perf_counter() - start)
        print(
            f"\n{name}: float {100 * float_accuracy:.2f} % after {args.epochs} epochs ({time.perf_counter() - start:.0f} s)"
        )
        print("| method | bits per weight | accuracy % | vs float (points) | seconds |")
        print("|---|---|---|---|---|")

        def report(label, model, seconds, float_accuracy=float_accuracy, name=name):
            acc = accuracy(model, data)
            keep(name, label, model, acc, seconds)
            print(
                f"| {label} | {kernel_bits(model)} | {100 * acc:.2f} | "
                f"{100 * (acc - float_accuracy):+.2f} | {seconds:.0f} |",
                flush=True,
            )

        if "inq" in parts:
            run_inq(float_model, data, args.quick, report)
        if "sketch" in parts:
            run_sketch(float_model, data, report)
        if "abc" in parts:
            run_abc(
                lambda hidden, build=build: build(hidden),
                data,
                args.epochs,
                args.seed,
                report,
                args.abc_learning_rate,
            )


if __name__ == "__main__":
    main()
