"""MWMS worker: a plain Keras 3 model with a binary QuantDense, fit on digits.

Run by `tests/distribute/multiworker.run_workers`, which sets ``TF_CONFIG``
and the thread pools. Prints one ``RESULT {json}`` line: a SHA-256 of the
final weights (every worker must print the same), the last epoch's loss and
accuracy, the test loss and accuracy, and timings. A Python error ends the
process with rc 1 and its traceback on stderr.

``--no-workaround`` imports `tfqnn.layers` only, not `tfqnn.distribute`, so
that Keras' own MWMS failure shows.
"""

import argparse
import hashlib
import json
import os
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-workaround", action="store_true")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    args = parser.parse_args()
    start = time.perf_counter()

    import keras
    import tensorflow as tf

    import tfqnn.datasets
    import tfqnn.layers

    if not args.no_workaround:
        import tfqnn.distribute

        assert tfqnn.distribute.keras_workarounds.is_applied()

    keras.utils.set_random_seed(0)
    # No collective timeout: TF 2.21 keeps a thread per collective alive for
    # the timeout; the harness stops hung clusters.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    (x_train, y_train), (x_test, y_test) = tfqnn.datasets.load_digits()
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    # One pipeline on every worker; Keras' fit distributes it with the
    # strategy's auto-shard policy (DATA for in-memory tensors: each worker
    # keeps its part of every global batch). The shuffle seed gives all
    # workers the same order, and full batches the same number of steps.
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=0)
        .batch(args.batch_size, drop_remainder=True)
    )
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(
        args.batch_size, drop_remainder=True
    )

    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(64),
                keras.layers.BatchNormalization(synchronized=True),
                tfqnn.layers.QuantDense(
                    32,
                    input_quantizer="ste_sign",
                    kernel_quantizer="ste_sign",
                    kernel_constraint="weight_clip",
                    use_bias=False,
                ),
                keras.layers.BatchNormalization(synchronized=True),
                keras.layers.Activation("relu"),
                keras.layers.Dense(10),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    built = time.perf_counter()
    history = model.fit(train, epochs=args.epochs, verbose=0)
    fitted = time.perf_counter()
    test_loss, test_accuracy = model.evaluate(test, verbose=0)

    digest = hashlib.sha256()
    for weight in model.weights:  # BN moving statistics included
        digest.update(weight.numpy().tobytes())
    result = {
        "task": json.loads(os.environ["TF_CONFIG"])["task"]["index"],
        "replicas": strategy.num_replicas_in_sync,
        "weights_sha256": digest.hexdigest(),
        "loss": history.history["loss"][-1],
        "accuracy": history.history["accuracy"][-1],
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "setup_s": round(built - start, 2),
        "fit_s": round(fitted - built, 2),
        "total_s": round(time.perf_counter() - start, 2),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
