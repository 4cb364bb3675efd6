"""Incremental network quantization (INQ) of the demo's float CNN to power-of-two weights.

Trains the float twin of examples/binarized_fashion_mnist.py, then retrains
it with `tfqnn.callbacks.IncrementalQuantization`: half of every kernel is
quantized to powers of two and frozen, the rest retrained for an epoch, then
75 %, 87.5 % and 100 % (Zhou et al. 2017, arXiv:1702.03044). Prints the test
accuracy before and after, the summary with the kernels' bits, and checks
that every kernel holds powers of two only.

Data: Fashion-MNIST from Debian's dataset-fashion-mnist when installed, else
scikit-learn's 8x8 digits. ``--quick`` is a short run: a quarter of
Fashion-MNIST and two float epochs (digits: all of it, 10 float epochs).

Usage: python examples/inq_fashion_mnist.py [--bits 5] [--quick] [--data digits]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import keras
import numpy as np

import tfqnn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from binarized_fashion_mnist import build_model, load, train  # the demo's


def power_of_two_kernels(model):
    """Whether every nonzero value of every tfqnn kernel is a signed power of two."""
    for layer in model.layers:
        if isinstance(layer, tfqnn.layers.QuantizerMixin):
            values = np.abs(layer.kernel.numpy())
            values = values[values != 0]
            if not np.array_equal(np.exp2(np.round(np.log2(values))), values):
                return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bits", type=int, default=5, help="bits per weight, 2 to 8")
    parser.add_argument(
        "--epochs", type=int, default=None, help="float epochs (default 3; digits 30)"
    )
    parser.add_argument("--data", choices=("auto", "fashion_mnist", "digits"), default="auto")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--output", default=None, help="where to save the INQ model (.keras)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data_name, ((x_train, y_train), (x_test, y_test)) = load(args.data)
    digits = data_name == "digits"
    if args.quick and not digits:
        x_train, y_train = x_train[: len(x_train) // 4], y_train[: len(y_train) // 4]
    data = ((x_train, y_train), (x_test, y_test))
    epochs = args.epochs or {(False, False): 3, (False, True): 2, (True, False): 30}.get(
        (digits, args.quick), 10
    )

    keras.utils.set_random_seed(args.seed)
    model = build_model(x_train.shape[1:], binarized=False, name=f"inq_{data_name}")
    print(f"Training the float CNN on {data_name} for {epochs} epochs")
    float_accuracy, _ = train(model, data, epochs, learning_rate=1e-3, batch_size=64)

    inq = tfqnn.callbacks.IncrementalQuantization(bits=args.bits)
    model.compile(
        keras.optimizers.SGD(1e-3, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    inq_epochs = (len(inq.portions) - 1) * inq.epochs_per_step
    print(f"\nINQ at {args.bits} bits: {inq_epochs} epochs of retraining")
    model.fit(x_train, y_train, batch_size=64, epochs=inq_epochs, callbacks=[inq], verbose=2)
    _, inq_accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)

    tfqnn.summary(model)
    print(f"\nTest accuracy on {data_name}:")
    print(f"  float:          {100 * float_accuracy:6.2f} %")
    print(f"  INQ, {args.bits} bits:    {100 * inq_accuracy:6.2f} %")
    print(f"  power-of-two kernels: {power_of_two_kernels(model)}")
    if args.output:
        model.save(args.output)
        print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
