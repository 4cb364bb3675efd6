"""QKeras's QLSTM on the data of benchmarks/recurrent.py, in a tf_keras environment.

Launched by recurrent.py with the peer environment's python (QKeras 0.9.0,
tf-keras 2.21: scripts/peer_envs.sh builds it); never imports tfqnn. Reads
the train/test arrays from an .npz, prints one JSON line per run: scheme,
whether activations were quantized, test accuracy, CPU and wall seconds per
epoch. With ``--replay OUT.npz`` it trains from the weights in the .npz
instead (``recurrent.py --tasks match``) and writes the first batch's
probabilities and gradients and the weights after ``--steps`` steps.

Usage: TF_USE_LEGACY_KERAS=1 PEER/bin/python benchmarks/_recurrent_qkeras.py DATA.npz
       --epochs 3 --units 128 --batch 128 --schemes float 8bit 4bit ternary scaled_binary
       --activations off on
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tf_keras as keras
from _epoch_clock import epoch_clock, per_epoch
from qkeras import QLSTM, QActivation, binary, quantized_bits, ternary

# The model's weights in order: W, U and b of the QLSTM, then the Dense kernel and bias.
WEIGHTS = ("W", "U", "b", "dense_W", "dense_b")


def weight_quantizer(scheme: str) -> Any:
    """QKeras's quantizer with the bits of tfqnn's scheme (per-channel "auto" scales)."""
    return {
        "float": None,
        "8bit": quantized_bits(8, 0, 1, alpha="auto"),
        "4bit": quantized_bits(4, 0, 1, alpha="auto"),
        "2bit": quantized_bits(2, 0, 1, alpha="auto"),
        "ternary": ternary(alpha="auto"),
        "scaled_binary": binary(alpha="auto"),
    }[scheme]


def build(data: Any, scheme: str, activations: bool, args: argparse.Namespace) -> Any:
    """QLSTM(units) then Dense(10), compiled as recurrent.py compiles tfqnn's model."""
    quantizer = weight_quantizer(scheme)
    inputs = keras.Input(data["x_train"].shape[1:])
    x = inputs
    if activations:
        x = QActivation(quantized_bits(8, 0, 0, keep_negative=False))(x)  # [0, 1), 8 bits
    x = QLSTM(
        args.units,
        activation="tanh",
        recurrent_activation="sigmoid",
        kernel_quantizer=quantizer,
        recurrent_quantizer=quantizer,
        state_quantizer=quantized_bits(8, 2, 0) if activations else None,  # [-4, 4), 8 bits
    )(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(
        keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def run(data: Any, scheme: str, activations: bool, args: argparse.Namespace) -> dict[str, Any]:
    keras.utils.set_random_seed(args.seed)
    model = build(data, scheme, activations, args)
    clock = epoch_clock(keras.callbacks.Callback)
    model.fit(
        data["x_train"],
        data["y_train"],
        batch_size=args.batch,
        epochs=args.epochs,
        verbose=0,
        callbacks=[clock],
    )
    _, accuracy = model.evaluate(data["x_test"], data["y_test"], batch_size=500, verbose=0)
    return {
        "library": "qkeras",
        "cell": "QLSTM",
        "scheme": scheme,
        "activations": activations,
        "accuracy": float(accuracy),
        "cpu_s_per_epoch": per_epoch(clock.cpu),
        "wall_s_per_epoch": per_epoch(clock.wall),
    }


def replay(data: Any, scheme: str, activations: bool, args: argparse.Namespace) -> None:
    """From the weights in ``data``: probabilities and gradients on the first batch, then
    the weights after ``--steps`` Adam steps on the first batches in order, into ``--replay``.
    """
    import tensorflow as tf

    model = build(data, scheme, activations, args)
    model.set_weights([data[name] for name in WEIGHTS])
    x, y = data["x_train"][: args.batch], data["y_train"][: args.batch]
    with tf.GradientTape() as tape:
        probabilities = model(x, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probabilities))
    gradients = tape.gradient(loss, model.trainable_weights)
    out = {"probabilities": probabilities.numpy()}
    out.update({f"gradient_{n}": g.numpy() for n, g in zip(WEIGHTS, gradients)})
    for step in range(args.steps):
        batch = slice(step * args.batch, (step + 1) * args.batch)
        model.train_on_batch(data["x_train"][batch], data["y_train"][batch])
    out.update({f"trained_{n}": w for n, w in zip(WEIGHTS, model.get_weights())})
    np.savez(args.replay, **out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schemes", nargs="+", default=["float", "8bit", "4bit", "ternary"])
    parser.add_argument("--activations", nargs="+", choices=["off", "on"], default=["off"])
    parser.add_argument(
        "--replay",
        help="write the first batch's outputs and gradients and the weights after "
        "--steps steps from the weights in DATA here (one scheme and activations)",
    )
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    data = dict(np.load(args.data))
    if args.replay:
        replay(data, args.schemes[0], args.activations[0] == "on", args)
        return
    for activations in args.activations:
        for scheme in args.schemes:
            print(json.dumps(run(data, scheme, activations == "on", args)), flush=True)


if __name__ == "__main__":
    main()
