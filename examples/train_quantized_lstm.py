"""Train a quantized LSTM on sequential Fashion-MNIST and export it to TFLite.

Each image is a sequence of 28 rows of 28 pixels: the LSTM reads one row per
time step and a Dense layer classifies its last state. The LSTM quantizes
its weights ``W`` and ``U`` (ternary by default, Li et al. 2016; Ott et al.
2016 found ternary recurrent weights as good as float), its inputs to 8 bits
in [0, 1] (DoReFa) and its states ``h`` and ``c`` to 8-bit fixed point in
[-4, 4) (Hubara et al. 2016 quantize the operands of every product). The
trained model is exported to TFLite (a builtin WHILE over the rows, the
quantized weights stored as int8) and evaluated there too.

Data: the full Fashion-MNIST from Debian's dataset-fashion-mnist when it is
installed, else scikit-learn's 8x8 digits (8 rows of 8 pixels).

Usage: python examples/train_quantized_lstm.py [--epochs N] [--weights ternary]
       [--quick] [--data digits] [--output-dir DIR]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # the converter's info logs

import keras
import numpy as np

import tfqnn

# The weight quantizers offered by --weights, and the constraint they need.
WEIGHTS = {
    "float": None,
    "8bit": tfqnn.quantizers.SymmetricUniform(8),
    "4bit": tfqnn.quantizers.SymmetricUniform(4),
    "ternary": tfqnn.quantizers.SteTern(),
    "scaled_binary": tfqnn.quantizers.ScaledSign(),
}


def build_model(steps, features, weights, units=128):
    """LSTM(units) with quantized W, U, inputs and states, then Dense(10)."""
    quantizer = WEIGHTS[weights]
    constraint = None if quantizer is None else "weight_clip"
    lstm = tfqnn.layers.QuantLSTM(
        units,
        input_quantizer=tfqnn.quantizers.DoReFa(8),  # [0, 1] in 255 steps
        kernel_quantizer=quantizer,
        recurrent_quantizer=quantizer,
        kernel_constraint=constraint,
        recurrent_constraint=constraint,
        state_quantizer=tfqnn.quantizers.FixedPoint(3, 5),  # [-4, 4), 2^-5 steps
    )
    return keras.Sequential(
        [keras.Input((steps, features)), lstm, keras.layers.Dense(10, activation="softmax")],
        name=f"lstm_{weights}",
    )


def load(data_name, quick):
    if data_name == "auto":
        data_name = "fashion_mnist" if tfqnn.datasets.fashion_mnist_available() else "digits"
    loader = {
        "fashion_mnist": tfqnn.datasets.load_fashion_mnist,
        "digits": tfqnn.datasets.load_digits,
    }[data_name]
    (x_train, y_train), (x_test, y_test) = loader()  # [n, rows, columns] in [0, 1]
    if quick:
        x_train, y_train, x_test, y_test = (
            x_train[:2000],
            y_train[:2000],
            x_test[:500],
            y_test[:500],
        )
    return data_name, (x_train, y_train), (x_test, y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: 2 (1 with --quick)")
    parser.add_argument("--weights", choices=sorted(WEIGHTS), default="ternary")
    parser.add_argument("--data", choices=("auto", "fashion_mnist", "digits"), default="auto")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2000 samples")
    parser.add_argument("--output-dir", default=None, help="save the .keras and .tflite here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    epochs = args.epochs or (1 if args.quick else 2)

    data_name, (x_train, y_train), (x_test, y_test) = load(args.data, args.quick)
    keras.utils.set_random_seed(args.seed)
    model = build_model(x_train.shape[1], x_train.shape[2], args.weights)
    tfqnn.summary(model)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    print(f"\nTraining on {data_name} ({len(x_train):,} sequences) for {epochs} epochs")
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=128, epochs=epochs, verbose=1)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    print(f"test accuracy: {100 * accuracy:.2f} % ({args.weights} W and U, {seconds:.0f} s)")

    batch = 100  # the WHILE loop over the rows needs a fixed batch
    tflite = tfqnn.export.to_tflite(model, batch_size=batch)
    n = len(x_test) // batch * batch
    lite = tfqnn.lite.Interpreter(model_content=tflite).predict(
        x_test[:n].astype(np.float32), batch_size=batch
    )
    lite_accuracy = float(np.mean(np.argmax(lite, axis=1) == y_test[:n]))
    _, same_images = model.evaluate(x_test[:n], y_test[:n], batch_size=500, verbose=0)
    print(
        f"TFLite test accuracy: {100 * lite_accuracy:.2f} % on the first {n} images "
        f"(Keras: {100 * same_images:.2f} %), {len(tflite):,} bytes"
    )
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        path = os.path.join(args.output_dir, f"{model.name}_{data_name}")
        model.save(path + ".keras")
        with open(path + ".tflite", "wb") as f:
            f.write(tflite)
        print(f"Saved {path}.keras and {path}.tflite")


if __name__ == "__main__":
    main()
