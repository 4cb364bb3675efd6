"""MWMS worker: ``fit`` on digits under `GradientCompressionStrategy`.

Run by `tests/distribute/multiworker.run_workers`. Prints one ``RESULT
{json}`` line: a SHA-256 of the final weights (every worker must print the
same), the residual norms, the final train and test accuracy, timings.

Options:
    --compressor NAME   an alias of tfqnn.distribute.compressors, or "none"
                        (plain MWMS, the uncompressed reference); settings
                        follow a colon: "threshold:tau=0.01,max_density=0.05"
    --epochs N, --batch-size N (global), --seed N
    --optimizer adam|sgd (SGD with momentum 0.9), --learning-rate LR
    --no-shuffle        the same batches every epoch (resumed runs repeat the
                        uninterrupted one exactly)
    --backup-dir DIR    BackupAndRestore into DIR (per worker: use {index})
    --crash-at-epoch K  this worker exits with rc 3 after epoch K's backup
                        (with --crash-worker, default 1)
    --nan-at-step K     worker --nan-worker (default 1) gets a NaN loss in
                        global step K
    --on-nonfinite      "skip" or "raise"
    --wrap              build an MWMS first and wrap it
"""

import argparse
import hashlib
import json
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--compressor", default="onebit_ef")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-shuffle", action="store_true")
    parser.add_argument("--backup-dir")
    parser.add_argument("--crash-at-epoch", type=int)
    parser.add_argument("--crash-worker", type=int, default=1)
    parser.add_argument("--nan-at-step", type=int)
    parser.add_argument("--nan-worker", type=int, default=1)
    parser.add_argument("--on-nonfinite", default="skip")
    parser.add_argument("--wrap", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()

    import keras
    import numpy as np
    import tensorflow as tf

    import tfqnn.datasets
    import tfqnn.distribute

    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    compressor = args.compressor
    if ":" in compressor:  # alias:key=value,... (values as JSON)
        alias, _, settings = compressor.partition(":")
        compressor = tfqnn.distribute.compressors.get(alias).from_config(
            {k: json.loads(v) for k, v in (kv.split("=") for kv in settings.split(","))}
        )
    keras.utils.set_random_seed(args.seed)
    # No collective timeout: TF 2.21 keeps a thread per collective alive for
    # the timeout (thousands per worker in long runs); the harness stops hangs.
    options = tf.distribute.experimental.CommunicationOptions()
    if args.compressor == "none":
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    elif args.wrap:
        strategy = tfqnn.distribute.GradientCompressionStrategy(
            compressor,
            tf.distribute.MultiWorkerMirroredStrategy(communication_options=options),
            on_nonfinite=args.on_nonfinite,
        )
    else:
        strategy = tfqnn.distribute.GradientCompressionStrategy(
            compressor, communication_options=options, on_nonfinite=args.on_nonfinite
        )

    (x_train, y_train), (x_test, y_test) = tfqnn.datasets.load_digits()
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    # One pipeline on every worker, sharded by Keras' fit (DATA policy): the
    # same shuffle order everywhere, full batches.
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    if not args.no_shuffle:
        train = train.shuffle(len(x_train), seed=args.seed)
    train = train.batch(args.batch_size, drop_remainder=True)

    class NanOnStep(keras.losses.SparseCategoricalCrossentropy):
        """The loss, times NaN on one worker in one step."""

        def __init__(self, model_ref):
            super().__init__(from_logits=True)
            self.model_ref = model_ref

        def call(self, y_true, y_pred):
            loss = super().call(y_true, y_pred)
            step = self.model_ref[0].optimizer.iterations
            poison = tf.logical_and(tf.equal(step, args.nan_at_step), task == args.nan_worker)
            return loss * tf.where(poison, float("nan"), 1.0)

    model_ref = []
    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
        model_ref.append(model)
        loss = (
            NanOnStep(model_ref)
            if args.nan_at_step is not None
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        optimizer = (
            keras.optimizers.Adam(args.learning_rate)
            if args.optimizer == "adam"
            else keras.optimizers.SGD(args.learning_rate, momentum=0.9)
        )
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])

    callbacks = []
    if args.backup_dir:
        callbacks.append(keras.callbacks.BackupAndRestore(args.backup_dir))

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == args.crash_at_epoch and task == args.crash_worker:
                print(f"crashing after epoch {epoch + 1}", file=sys.stderr, flush=True)
                os._exit(3)

    class Residuals(keras.callbacks.Callback):
        """Residual norms at the start of training (after a restore) and at the end."""

        def __init__(self):
            super().__init__()
            self.at_start = None

        def norms(self):
            from tfqnn.distribute import _hook

            exchange = _hook.attached(self.model.optimizer)
            if exchange is None:
                return []
            return [float(np.linalg.norm(v.numpy())) for v in exchange.state.variables]

        def on_train_begin(self, logs=None):
            self.at_start = self.norms()

    residuals = Residuals()
    if args.crash_at_epoch:
        callbacks.append(Crash())
    callbacks.append(residuals)  # after BackupAndRestore, which restores in on_train_begin

    built = time.perf_counter()
    history = model.fit(train, epochs=args.epochs, verbose=0, callbacks=callbacks)
    fitted = time.perf_counter()
    test_logits = model.predict(x_test, verbose=0, batch_size=256)
    test_accuracy = float(np.mean(np.argmax(test_logits, -1) == y_test))

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(weight.numpy().tobytes())
    result = {
        "task": task,
        "replicas": strategy.num_replicas_in_sync,
        "weights_sha256": digest.hexdigest(),
        "all_finite": bool(all(np.isfinite(w.numpy()).all() for w in model.weights)),
        "iterations": int(model.optimizer.iterations.numpy()),
        "epochs_run": len(history.history.get("loss", [])),
        "residuals_at_start": residuals.at_start,
        "residuals_at_end": residuals.norms(),
        "accuracy": history.history["accuracy"][-1] if history.history.get("accuracy") else None,
        "test_accuracy": test_accuracy,
        "setup_s": round(built - start, 2),
        "fit_s": round(fitted - built, 2),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
