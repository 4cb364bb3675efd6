"""Train a binarized CNN and its float twin; print the summary and accuracies.

The binarized network has binary weights and activations in every layer but
the first and the last, which stay in float as the literature keeps them
(Courbariaux et al. 2016, Rastegari et al. 2016). Both networks train with the
same recipe: Adam with a cosine-decayed learning rate (binary networks swing
at a constant one).

Data: the full Fashion-MNIST from Debian's dataset-fashion-mnist when it is
installed, else scikit-learn's 8x8 digits. The trained binarized model and a
model card are written to saved_models/, with the model exported to
TFLite (binary layers as tfqnn's bitpacked ops) and its accuracy there.

Usage: python examples/binarized_fashion_mnist.py [--epochs N] [--data digits]
"""

import argparse
import datetime
import json
import os
import platform
import time

# Keep TensorFlow's C++ info logs (the TFLite converter's in particular) out
# of the demo's output; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import keras
import numpy as np

import tfqnn

BINARY = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    use_bias=False,
)


def build_model(input_shape, binarized, name):
    """A 3-conv, 2-dense network (the larq tutorial's shape), binarized or float."""
    hidden = BINARY if binarized else {"use_bias": False}
    pad = {"pad_values": 1.0} if binarized else {}
    small = input_shape[0] < 16  # 8x8 digits: fewer poolings
    layers = [
        keras.Input(input_shape),
        # First layer: float input and weights.
        tfqnn.layers.QuantConv2D(32, 3, padding="same", use_bias=False),
        keras.layers.MaxPooling2D(2),
        keras.layers.BatchNormalization(scale=False),
        tfqnn.layers.QuantConv2D(64, 3, padding="same", **pad, **hidden),
        keras.layers.MaxPooling2D(2),
        keras.layers.BatchNormalization(scale=False),
        tfqnn.layers.QuantConv2D(64, 3, padding="same", **pad, **hidden),
    ]
    if not small:
        layers.append(keras.layers.MaxPooling2D(2))
    layers += [
        keras.layers.BatchNormalization(scale=False),
        keras.layers.Flatten(),
        tfqnn.layers.QuantDense(64, **hidden),
        keras.layers.BatchNormalization(scale=False),
        # Last layer: float weights on real-valued inputs.
        tfqnn.layers.QuantDense(10, use_bias=False),
        keras.layers.BatchNormalization(scale=False),
        keras.layers.Activation("softmax"),
    ]
    return keras.Sequential(layers, name=name)


def train(model, data, epochs, learning_rate, batch_size):
    (x_train, y_train), (x_test, y_test) = data
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    return accuracy, seconds


def load(data_name):
    if data_name == "auto":
        data_name = "fashion_mnist" if tfqnn.datasets.fashion_mnist_available() else "digits"
        if data_name == "digits":
            print(
                "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist); "
                "training on scikit-learn's digits instead."
            )
    loader = {
        "fashion_mnist": tfqnn.datasets.load_fashion_mnist,
        "digits": tfqnn.datasets.load_digits,
    }[data_name]
    (x_train, y_train), (x_test, y_test) = loader()
    # Channels-last images in [-1, 1].
    x_train = 2.0 * x_train[..., None] - 1.0
    x_test = 2.0 * x_test[..., None] - 1.0
    return data_name, ((x_train, y_train), (x_test, y_test))


def export_and_evaluate(model, data, path):
    """Writes the TFLite file (binary layers as tfqnn's bitpacked ops); its test accuracy."""
    (_, _), (x_test, y_test) = data
    tflite = tfqnn.export.to_tflite(model, path)
    interpreter = tfqnn.lite.Interpreter(model_content=tflite)
    predictions = interpreter.predict(x_test.astype(np.float32), batch_size=1000)
    return float(np.mean(np.argmax(predictions, axis=1) == y_test)), len(tflite)


def write_model_card(path, data_name, data, result, float_accuracy, epochs, model_summary, tflite):
    (x_train, _), (x_test, _) = data
    card = f"""# {os.path.basename(path)}

A binarized CNN trained by `examples/binarized_fashion_mnist.py` (tfqnn {tfqnn.__version__}).

| | |
|---|---|
| data | {data_name}: {len(x_train):,} training and {len(x_test):,} test images, {x_train.shape[1]}x{x_train.shape[2]}, inputs scaled to [-1, 1] |
| model | 3 QuantConv2D + 2 QuantDense with BatchNormalization; binary weights and activations (SteSign, pad_values=1) in all but the first and last layers |
| training | {epochs} epochs, Adam, cosine-decayed learning rate, batch 64 |
| test accuracy | **{100 * result:.2f} %** (float twin, same recipe: {100 * float_accuracy:.2f} %) |
| parameters | {model_summary.total_params:,} ({", ".join(f"{count:,} at {bits} bit" for bits, count in model_summary.params.items())}) |
| size | {model_summary.float32_bytes / 1024:.1f} KiB as float32, {model_summary.quantized_bytes / 1024:.1f} KiB with binary weights packed ({model_summary.compression_ratio:.1f}x) |
| binary MACs | {100 * model_summary.binary_mac_fraction:.1f} % of {model_summary.total_macs:,} per image |
| TFLite | `{os.path.basename(tflite["path"])}`, {tflite["bytes"]:,} bytes, binary layers as tfqnn's bitpacked custom ops: test accuracy {100 * tflite["accuracy"]:.2f} % with `tfqnn.lite.Interpreter` |
| trained | {datetime.date.today().isoformat()}, {platform.machine()} CPU, {os.cpu_count()} cores |

Load it with `import tfqnn, keras; keras.models.load_model("{os.path.relpath(path)}")`: no custom_objects needed.
Run the TFLite file with `tfqnn.lite.Interpreter("{os.path.relpath(tflite["path"])}").predict(x)` (no TensorFlow needed).
"""
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        f.write(card)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=None, help="default: 3 (Fashion-MNIST), 30 (digits)"
    )
    parser.add_argument("--data", choices=("auto", "fashion_mnist", "digits"), default="auto")
    parser.add_argument(
        "--output-dir", default=os.path.join(os.path.dirname(__file__), "..", "saved_models")
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data_name, data = load(args.data)
    epochs = args.epochs or (3 if data_name == "fashion_mnist" else 30)
    input_shape = data[0][0].shape[1:]

    keras.utils.set_random_seed(args.seed)
    bnn = build_model(input_shape, binarized=True, name=f"bnn_{data_name}")
    model_summary = tfqnn.summary(bnn)
    print(f"\nTraining the binarized network on {data_name} for {epochs} epochs")
    bnn_accuracy, bnn_seconds = train(bnn, data, epochs, learning_rate=5e-3, batch_size=64)

    keras.utils.set_random_seed(args.seed)
    baseline = build_model(input_shape, binarized=False, name=f"float_{data_name}")
    print(f"\nTraining the float baseline on {data_name} for {epochs} epochs")
    float_accuracy, float_seconds = train(baseline, data, epochs, learning_rate=1e-3, batch_size=64)

    print(f"\nTest accuracy on {data_name}:")
    print(f"  binarized: {100 * bnn_accuracy:6.2f} %  ({bnn_seconds:.0f} s training)")
    print(f"  float:     {100 * float_accuracy:6.2f} %  ({float_seconds:.0f} s training)")
    print(
        f"  size:      {model_summary.quantized_bytes / 1024:.1f} KiB binarized against "
        f"{model_summary.float32_bytes / 1024:.1f} KiB float ({model_summary.compression_ratio:.1f}x)"
    )

    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(os.path.normpath(args.output_dir), f"bnn_{data_name}.keras")
    bnn.save(path)
    tflite_path = os.path.splitext(path)[0] + ".tflite"
    tflite_accuracy, tflite_bytes = export_and_evaluate(bnn, data, tflite_path)
    print(f"  TFLite:    {100 * tflite_accuracy:6.2f} %  ({tflite_bytes:,} bytes, tfqnn.lite)")
    tflite = {"path": tflite_path, "bytes": tflite_bytes, "accuracy": tflite_accuracy}
    write_model_card(
        path, data_name, data, bnn_accuracy, float_accuracy, epochs, model_summary, tflite
    )
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump(
            {
                "data": data_name,
                "epochs": epochs,
                "test_accuracy": bnn_accuracy,
                "float_test_accuracy": float_accuracy,
                "tflite_test_accuracy": tflite_accuracy,
                "tflite_bytes": tflite_bytes,
            },
            f,
            indent=2,
        )
    print(f"\nSaved {path}, {tflite_path} and the model card {os.path.splitext(path)[0]}.md")


if __name__ == "__main__":
    main()
