"""Writes the `.keras` files that later versions of tfqnn must keep loading.

Run once per format-relevant release (``python -m tests.compat.make_fixtures
DIR``), commit the output under ``tests/compat/<version>/``, and
``test_compat.py`` loads every such folder. Each model comes with its input
and its outputs (``<name>.npz``), so a load must reproduce them bit for bit.

- ``every_layer``: every tfqnn layer with a mix of quantizers, trained a step.
- ``every_quantizer``: one `QuantActivation` per quantizer alias, and
  non-default configs.
- ``compressed_optimizer``: a Dense model compiled with a
  `tfqnn.distribute.CompressedOptimizer` (residuals in the optimizer state).
- ``recurrent`` (from v0.2.0.dev on): `QuantLSTM` with every quantizer, a
  `Bidirectional` `QuantGRU`, a ``keras.layers.RNN`` of a
  `QuantSimpleRNNCell`, trained a step.
- ``bop_case_optimizer`` (from v0.2.0.dev on): a binarized MLP compiled with
  `tfqnn.optimizers.CaseOptimizer` (`Bop` for binary kernels, Adam for the
  rest) and the `tfqnn.metrics.FlipRatio` metric, trained two epochs.

``--only NAME`` writes some fixtures only, to add a model to the fixtures
without rewriting the files of an earlier version.
"""

import argparse
import os
import sys

import keras
import numpy as np

import tfqnn
from tests.layers.test_saving import build_model


def every_layer():
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    model = build_model()
    x = rng.normal(size=(8, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 5, size=8)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return model, x


def every_quantizer():
    q = tfqnn.quantizers
    chosen = [alias for alias in q.ALIASES if alias not in ("dorefa_gradient",)]
    chosen += [
        q.DoReFa(3, mode="weights"),
        q.FixedPoint(3, 2),
        q.FixedPoint(2, 3, signed=False),
        q.Uniform(15),
        q.SymmetricUniform(3),
        q.PowerOfTwo(4),
        q.SteSign(clip_value=2.0),
        q.ScaledSign(),
        q.SteTern(threshold=0.3, scaled=False),
        q.DoReFaGradient(4, seed=1),
    ]
    inputs = keras.Input((32,))
    outputs = [
        tfqnn.layers.QuantActivation(quantizer, name=f"q{i}")(inputs)
        for i, quantizer in enumerate(chosen)
    ]
    model = keras.Model(inputs, keras.layers.Concatenate()(outputs), name="every_quantizer")
    x = np.random.default_rng(5).normal(size=(4, 32)).astype(np.float32) * 2
    return model, x


def compressed_optimizer():
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    model = keras.Sequential(
        [keras.Input((40,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(3)],
        name="compressed",
    )
    optimizer = tfqnn.distribute.CompressedOptimizer(
        keras.optimizers.SGD(0.05, momentum=0.9), "onebit_ef", min_elements=100
    )
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.normal(size=(32, 40)).astype(np.float32)
    model.fit(x, rng.integers(0, 3, size=32), batch_size=16, epochs=2, verbose=0)
    return model, x


def recurrent():
    keras.utils.set_random_seed(6)
    rng = np.random.default_rng(6)
    q = tfqnn.quantizers
    inputs = keras.Input((7, 5))
    x = tfqnn.layers.QuantLSTM(
        12,
        return_sequences=True,
        input_quantizer=q.FixedPoint(3, 5),
        kernel_quantizer="ste_tern",
        recurrent_quantizer=q.SteTern(scaled=False, threshold=0.2),
        bias_quantizer=q.FixedPoint(4, 8),
        state_quantizer=q.FixedPoint(3, 5),
        gate_quantizer=q.DoReFa(4),
        candidate_quantizer=q.SymmetricUniform(5),
        unit_forget_bias=False,
        recurrent_dropout=0.1,
    )(inputs)
    x = keras.layers.Bidirectional(
        tfqnn.layers.QuantGRU(
            8,
            return_sequences=True,
            reset_after=False,
            kernel_quantizer="scaled_sign",
            recurrent_quantizer="scaled_sign",
            kernel_constraint="weight_clip",
            recurrent_constraint="weight_clip",
            state_quantizer="uniform",
        )
    )(x)
    cell = tfqnn.layers.QuantSimpleRNNCell(
        6, kernel_quantizer=q.PowerOfTwo(3), recurrent_quantizer=q.DoReFa(3, mode="weights")
    )
    x = keras.layers.RNN(cell, go_backwards=True)(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(x), name="recurrent")
    x = rng.normal(size=(8, 7, 5)).astype(np.float32)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.MeanSquaredError())
    model.fit(x, rng.normal(size=(8, 4)), batch_size=8, epochs=1, verbose=0)
    return model, x


def bop_case_optimizer():
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    binary = dict(
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )
    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(16),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantDense(16, **binary),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantDense(3, **binary),
        ],
        name="bop_case_optimizer",
    )
    optimizer = tfqnn.optimizers.CaseOptimizer(
        (tfqnn.optimizers.is_binary_variable, tfqnn.optimizers.Bop(threshold=1e-6, gamma=1e-2)),
        default_optimizer=keras.optimizers.Adam(0.01),
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[tfqnn.metrics.FlipRatio(model)],
    )
    x = rng.normal(size=(32, 10)).astype(np.float32)
    model.fit(x, rng.integers(0, 3, size=32), batch_size=16, epochs=2, verbose=0)
    return model, x


FIXTURES = {
    "every_layer": every_layer,
    "every_quantizer": every_quantizer,
    "compressed_optimizer": compressed_optimizer,
    "recurrent": recurrent,
    "bop_case_optimizer": bop_case_optimizer,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--only", nargs="+", choices=sorted(FIXTURES), default=list(FIXTURES))
    args = parser.parse_args(argv)
    os.makedirs(args.directory, exist_ok=True)
    for name in args.only:
        model, x = FIXTURES[name]()
        model.save(os.path.join(args.directory, f"{name}.keras"))
        optimizer = (
            {}
            if getattr(model, "optimizer", None) is None
            else {f"optimizer_{i:03d}": v.numpy() for i, v in enumerate(model.optimizer.variables)}
        )
        np.savez(
            os.path.join(args.directory, f"{name}.npz"),
            x=x,
            y=model(x, training=False).numpy(),
            **optimizer,
        )
        print(name, file=sys.stderr)


if __name__ == "__main__":
    main()
