"""QKeras's QLSTM on the data of benchmarks/recurrent.py, in a tf_keras environment.

Launched by recurrent.py with the peer environment's python (QKeras 0.9.0,
tf-keras 2.21: scripts/peer_envs.sh builds it); never imports tfqnn. Reads
the train/test arrays from an .npz, prints one JSON line per run: scheme,
whether activations were quantized, test accuracy, CPU and wall seconds per
epoch.

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


def run(data: Any, scheme: str, activations: bool, args: argparse.Namespace) -> dict[str, Any]:
    keras.utils.set_random_seed(args.seed)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schemes", nargs="+", default=["float", "8bit", "4bit", "ternary"])
    parser.add_argument("--activations", nargs="+", choices=["off", "on"], default=["off"])
    args = parser.parse_args()
    data = dict(np.load(args.data))
    for activations in args.activations:
        for scheme in args.schemes:
            print(json.dumps(run(data, scheme, activations == "on", args)), flush=True)


if __name__ == "__main__":
    main()
