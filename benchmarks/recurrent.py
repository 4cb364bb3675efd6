"""Quantized LSTM and GRU: accuracy and CPU time per epoch against float, Keras and QKeras.

Three tasks, all offline:

1. Sequential Fashion-MNIST (28 rows of 28 pixels as time steps), LSTM and
   GRU of ``--units`` units then Dense(10): test accuracy for float, 8-bit,
   4-bit, ternary and scaled-binary ``W`` and ``U``, with float or 8-bit
   inputs and states (``--activations``), after the same epochs; CPU seconds
   per epoch beside a plain ``keras.layers.LSTM``/``GRU`` with
   ``use_cudnn=False`` (target: tfqnn at most 1.2x), and CPU ms per
   training step in alternating rounds, the steadier measure of that ratio.
2. QKeras 0.9.0's ``QLSTM`` on the same data, bits and epochs, run by
   ``_recurrent_qkeras.py`` in a tf_keras environment (``--qkeras-python``;
   scripts/peer_envs.sh builds one), its rows joined to the table.
3. A character-level LSTM language model on CPython's standard library
   sources (always present): test bits per character for the same schemes,
   the offline stand-in for Hubara et al. 2016's Penn Treebank tables.

Schemes (tfqnn quantizers on ``W`` and ``U``; the bias stays float):
float; 8bit ``Uniform(255)``, 4bit ``Uniform(15)`` and 2bit ``Uniform(3)``
(levels between the tensor's extremes; 2bit only when asked for); ternary ``SteTern()`` (TWN); scaled_binary
``ScaledSign()`` (one scale per gate and unit). "+act" adds 8-bit inputs
and states h and c. On the sequence task the default ``--recipe qkeras``
takes the quantizers that QKeras's rows use, so that the two libraries
train the same function (``--tasks match`` checks it): inputs
``QuantizedBits(8, 0, keep_negative=False)`` (steps of 1/256) and states
``QuantizedBits(8, 2)`` ([-4, 4 - 1/32] in steps of 1/32, with a gradient
that passes where a state saturates). ``--recipe tfqnn`` takes
``DoReFa(8)`` inputs (steps of 1/255) and ``FixedPoint(3, 5)`` states (the
same levels, no gradient where a state saturates); the timing task and the
language model always use these (``FixedPoint(3, 5)`` on the embeddings).

CPU time is the process's (``time.process_time``, all threads) per epoch,
the median of the epochs after the first (which traces the graph); the
machine is shared, so compare rows of one run.

Usage: .venv/bin/python benchmarks/recurrent.py [--train 10000] [--test 2000]
       [--epochs 3] [--seeds 0 1 2] [--cells lstm gru] [--activations off on] [--lm-chars 200000]
       [--schemes float 8bit 4bit 2bit ternary scaled_binary] [--tasks timing sequences lm]
       [--qkeras-python .peers/tfkeras/bin/python] [--recipe tfqnn|qkeras] [--json results.json]
       [--rows rows.jsonl]
       .venv/bin/python benchmarks/recurrent.py --merge benchmarks/results/recurrent_full.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from _epoch_clock import epoch_clock, per_epoch

import tfqnn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine
import _peer

HERE = Path(__file__).resolve().parent
SCHEMES = ("float", "8bit", "4bit", "2bit", "ternary", "scaled_binary")
DEFAULT_SCHEMES = ("float", "8bit", "4bit", "ternary", "scaled_binary")
LAYERS = {"lstm": tfqnn.layers.QuantLSTM, "gru": tfqnn.layers.QuantGRU}
KERAS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def weight_arguments(scheme: str) -> dict[str, Any]:
    """The quantizers (and constraints) of ``W`` and ``U`` for a scheme.

    The binary and ternary latent weights are clipped to [-1, 1], as QKeras's
    layers clip them by default (their ``Clip(-1, 1)`` constraint).
    """
    quantizer = {
        "float": None,
        "8bit": tfqnn.quantizers.Uniform(255),
        "4bit": tfqnn.quantizers.Uniform(15),
        "2bit": tfqnn.quantizers.Uniform(3),
        "ternary": tfqnn.quantizers.SteTern(),
        "scaled_binary": tfqnn.quantizers.ScaledSign(),
    }[scheme]
    arguments: dict[str, Any] = {"kernel_quantizer": quantizer, "recurrent_quantizer": quantizer}
    if scheme in ("ternary", "scaled_binary"):  # STEs that pass gradients on [-1, 1]
        arguments.update(kernel_constraint="weight_clip", recurrent_constraint="weight_clip")
    return arguments


def activation_arguments(on: bool, input_quantizer: Any, recipe: str = "tfqnn") -> dict[str, Any]:
    """8-bit inputs and states; ``recipe="qkeras"`` takes QKeras's quantizers.

    ``FixedPoint(3, 5)`` and ``QuantizedBits(8, 2)`` (QKeras's
    ``quantized_bits(8, 2, 0)``) have the same levels, [-4, 4 - 1/32] in steps
    of 1/32; the first passes no gradient where a state saturates, the second
    passes it everywhere.
    """
    if not on:
        return {}
    if recipe == "qkeras":
        return {
            "input_quantizer": tfqnn.quantizers.QuantizedBits(8, 0, keep_negative=False),
            "state_quantizer": tfqnn.quantizers.QuantizedBits(8, 2),
        }
    return {
        "input_quantizer": input_quantizer,
        "state_quantizer": tfqnn.quantizers.FixedPoint(3, 5),
    }


def fit(model: keras.Model, data: tuple[Any, ...], args: argparse.Namespace) -> Any:
    x_train, y_train = data[0], data[1]
    model.compile(
        keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    clock = epoch_clock(keras.callbacks.Callback)
    model.fit(
        x_train, y_train, batch_size=args.batch, epochs=args.epochs, verbose=0, callbacks=[clock]
    )
    return clock


# ---- 1. sequential Fashion-MNIST ------------------------------------------------


def load_sequences(args: argparse.Namespace) -> tuple[str, dict[str, np.ndarray]]:
    if tfqnn.datasets.fashion_mnist_available():
        name, loader = "Fashion-MNIST", tfqnn.datasets.load_fashion_mnist
    else:
        name, loader = "digits (Fashion-MNIST not installed)", tfqnn.datasets.load_digits
    (x_train, y_train), (x_test, y_test) = loader()
    data = {
        "x_train": x_train[: args.train].astype(np.float32),
        "y_train": y_train[: args.train],
        "x_test": x_test[: args.test].astype(np.float32),
        "y_test": y_test[: args.test],
    }
    return name, data


def sequence_model(
    cell: str, scheme: str, activations: bool, shape: tuple[int, ...], args: argparse.Namespace
) -> keras.Model:
    """The recurrent layer (``scheme="keras"``: Keras's, without cuDNN) then Dense(10)."""
    if scheme == "keras":
        layer = KERAS[cell](args.units, use_cudnn=False)
    else:
        layer = LAYERS[cell](
            args.units,
            **weight_arguments(scheme),
            **activation_arguments(activations, tfqnn.quantizers.DoReFa(8), args.recipe),
        )
    return keras.Sequential(
        [keras.Input(shape), layer, keras.layers.Dense(10, activation="softmax")]
    )


def sequence_run(
    cell: str, scheme: str, activations: bool, data: dict[str, np.ndarray], args: argparse.Namespace
) -> dict[str, Any]:
    keras.utils.set_random_seed(args.seed)
    model = sequence_model(cell, scheme, activations, data["x_train"].shape[1:], args)
    clock = fit(model, (data["x_train"], data["y_train"]), args)
    _, accuracy = model.evaluate(data["x_test"], data["y_test"], batch_size=500, verbose=0)
    library = "tfqnn" if args.recipe == "tfqnn" else "tfqnn (qkeras recipe)"
    return {
        "library": "keras" if scheme == "keras" else library,
        "cell": cell.upper(),
        "scheme": "float" if scheme == "keras" else scheme,
        "activations": activations,
        "accuracy": float(accuracy),
        "cpu_s_per_epoch": per_epoch(clock.cpu),
        "wall_s_per_epoch": per_epoch(clock.wall),
    }


def qkeras_runs(data: dict[str, np.ndarray], args: argparse.Namespace) -> list[dict[str, Any]]:
    """QLSTM rows from the tf_keras environment, or [] when it is absent."""
    python = args.qkeras_python
    if not _peer.available(python, "QKeras"):
        return []
    arguments = ["--epochs", str(args.epochs), "--units", str(args.units)]
    arguments += ["--batch", str(args.batch), "--seed", str(args.seed)]
    arguments += ["--schemes", *args.schemes, "--activations", *args.activations]
    result = _peer.run(python, HERE / "_recurrent_qkeras.py", data, arguments, what="QKeras run")
    if result is None:
        return []
    stdout, _ = result
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


MATCH_VARIANTS = {  # name: scheme, activations, recipe
    "float": ("float", False, "tfqnn"),
    "scaled_binary": ("scaled_binary", False, "tfqnn"),
    "scaled_binary, 8-bit x, h, c, qkeras recipe": ("scaled_binary", True, "qkeras"),
    "scaled_binary, 8-bit x, h, c, tfqnn recipe": ("scaled_binary", True, "tfqnn"),
}


def match_runs(data: dict[str, np.ndarray], args: argparse.Namespace) -> list[dict[str, Any]]:
    """tfqnn's LSTM model against QKeras's from the same weights and batches.

    For each variant, both libraries start from tfqnn's initial weights:
    the largest difference of the probabilities and of each gradient
    (relative to its largest entry) on the first batch, then the weights
    after ``--match-steps`` Adam steps on the first batches in order (no
    shuffling): the median and largest difference, and the median update.
    The QKeras side always uses QKeras's quantizers (``--recipe qkeras``'s).
    """
    python = args.qkeras_python
    if not _peer.available(python, "QKeras"):
        return []
    steps, batch = args.match_steps, args.batch
    x, y = data["x_train"][: steps * batch], data["y_train"][: steps * batch]
    names = ("W", "U", "b", "dense_W", "dense_b")
    rows = []
    for name, (scheme, activations, recipe) in MATCH_VARIANTS.items():
        keras.utils.set_random_seed(args.seed)
        run_args = argparse.Namespace(**{**vars(args), "recipe": recipe})
        model = sequence_model("lstm", scheme, activations, x.shape[1:], run_args)
        initial = model.get_weights()
        arrays = {"x_train": x, "y_train": y, **dict(zip(names, initial))}
        arguments = ["--steps", str(steps), "--units", str(args.units), "--batch", str(batch)]
        arguments += ["--schemes", scheme, "--activations", "on" if activations else "off"]
        script = HERE / "_recurrent_qkeras.py"
        result = _peer.run(
            python, script, arrays, arguments, what="QKeras replay", output="--replay"
        )
        if result is None:
            return rows
        _, reference = result
        with tf.GradientTape() as tape:
            probabilities = model(x[:batch], training=True)
            loss = keras.ops.mean(
                keras.losses.sparse_categorical_crossentropy(y[:batch], probabilities)
            )
        gradients = tape.gradient(loss, model.trainable_weights)
        model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
        for step in range(steps):
            model.train_on_batch(
                x[step * batch : (step + 1) * batch], y[step * batch : (step + 1) * batch]
            )
        gradient_error = max(
            float(np.abs(np.asarray(g) - reference[f"gradient_{n}"]).max())
            / float(np.abs(reference[f"gradient_{n}"]).max())
            for n, g in zip(names, gradients)
        )
        trained = dict(zip(names, model.get_weights()))
        differences = np.concatenate(
            [np.abs(trained[n] - reference[f"trained_{n}"]).ravel() for n in names]
        )
        updates = np.concatenate(
            [np.abs(reference[f"trained_{n}"] - w).ravel() for n, w in zip(names, initial)]
        )
        rows.append(
            {
                "variant": name,
                "probabilities": float(
                    np.abs(np.asarray(probabilities) - reference["probabilities"]).max()
                ),
                "gradients": gradient_error,
                "steps": steps,
                "weights_median": float(np.median(differences)),
                "weights_max": float(differences.max()),
                "update_median": float(np.median(updates)),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def match_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| W, U and x, h, c | probabilities, max diff | gradients, max rel. diff "
        "| weights after N steps: median / max diff | median update |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['probabilities']:.1e} | {r['gradients']:.1e} "
            f"| {r['weights_median']:.1e} / {r['weights_max']:.1e} | {r['update_median']:.1e} |"
        )
    return "\n".join(lines)


def step_times(
    cell: str, data: dict[str, np.ndarray], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """CPU ms per training step of Keras's layer and tfqnn's, in alternating rounds.

    Every round times ``--timing-steps`` ``train_on_batch`` steps of each
    model in turn, so that all share the machine's noise; the medians over
    the rounds and their ratios to Keras come from one run.
    """
    variants = {"keras": None, "float": None, "8bit": True, "ternary": False, "scaled_binary": True}
    x = data["x_train"][: args.batch]
    y = data["y_train"][: args.batch]
    models = {}
    for scheme, activations in variants.items():
        keras.utils.set_random_seed(args.seed)
        if scheme == "keras":
            layer = KERAS[cell](args.units, use_cudnn=False)
        else:
            layer = LAYERS[cell](
                args.units,
                **weight_arguments(scheme),
                **activation_arguments(bool(activations), tfqnn.quantizers.DoReFa(8)),
            )
        model = keras.Sequential([keras.Input(x.shape[1:]), layer, keras.layers.Dense(10)])
        model.compile(
            keras.optimizers.Adam(2e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        for _ in range(3):  # trace and warm up
            model.train_on_batch(x, y)
        models[(scheme, bool(activations))] = model
    times: dict[tuple[str, bool], list[float]] = {key: [] for key in models}
    for _ in range(args.timing_rounds):
        for key, model in models.items():
            start = time.process_time()
            for _ in range(args.timing_steps):
                model.train_on_batch(x, y)
            times[key].append(1000 * (time.process_time() - start) / args.timing_steps)
    baseline = float(np.median(times[("keras", False)]))
    return [
        {
            "cell": cell.upper(),
            "library": "keras" if scheme == "keras" else "tfqnn",
            "scheme": "float" if scheme == "keras" else scheme,
            "activations": activations,
            "cpu_ms_per_step": float(np.median(values)),
            "ratio": float(np.median(values)) / baseline,
        }
        for (scheme, activations), values in times.items()
    ]


# ---- 3. character-level language model -----------------------------------------


def stdlib_text(chars: int) -> str:
    """The first ``chars`` characters of the standard library's .py files, sorted by path."""
    root = Path(os.__file__).parent
    parts, total = [], 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text)
        if total >= chars:
            break
    return "".join(parts)[:chars]


def char_data(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], int]:
    """Sequences of ``--lm-steps`` character ids and their next characters; 10 % for test."""
    text = stdlib_text(args.lm_chars)
    codes = np.frombuffer(text.encode("ascii", errors="replace"), np.uint8).astype(np.int64)
    vocabulary = np.unique(codes)
    ids = np.searchsorted(vocabulary, codes)
    steps = args.lm_steps
    count = (len(ids) - 1) // steps
    x = ids[: count * steps].reshape(count, steps)
    y = ids[1 : count * steps + 1].reshape(count, steps)
    split = int(0.9 * count)
    data = {"x_train": x[:split], "y_train": y[:split], "x_test": x[split:], "y_test": y[split:]}
    return data, len(vocabulary)


def language_model_run(
    scheme: str,
    activations: bool,
    data: dict[str, np.ndarray],
    vocabulary: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential(
        [
            keras.Input((args.lm_steps,), dtype="int64"),
            keras.layers.Embedding(vocabulary, 32),
            tfqnn.layers.QuantLSTM(
                args.units,
                return_sequences=True,
                **weight_arguments(scheme),
                **activation_arguments(activations, tfqnn.quantizers.FixedPoint(3, 5)),
            ),
            keras.layers.Dense(vocabulary),
        ]
    )
    model.compile(
        keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    clock = epoch_clock(keras.callbacks.Callback)
    model.fit(
        data["x_train"],
        data["y_train"],
        batch_size=64,
        epochs=args.lm_epochs,
        verbose=0,
        callbacks=[clock],
    )
    loss = model.evaluate(data["x_test"], data["y_test"], batch_size=256, verbose=0)
    return {
        "scheme": scheme,
        "activations": activations,
        "bits_per_char": float(loss / np.log(2.0)),
        "cpu_s_per_epoch": per_epoch(clock.cpu),
    }


# ---- report -----------------------------------------------------------------------


def machine() -> str:
    """`_machine.header` without its ``Machine: `` (also the JSON file's ``machine``)."""
    line = _machine.header({"TensorFlow": tf.__version__, "Keras": keras.__version__})
    return line.removeprefix("Machine: ")


def sequence_table(rows: list[dict[str, Any]]) -> str:
    baseline = {  # Keras's time in the same seed's round
        (r["cell"], r.get("seed")): r["cpu_s_per_epoch"] for r in rows if r["library"] == "keras"
    }
    lines = [
        "| library | cell | W, U | x, h, c | test accuracy | CPU s/epoch | vs Keras |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cell = "LSTM" if r["cell"] == "QLSTM" else r["cell"]
        key = (cell, r.get("seed"))
        ratio = r["cpu_s_per_epoch"] / baseline[key] if key in baseline else float("nan")
        label = "keras (use_cudnn=False)" if r["library"] == "keras" else r["library"]
        lines.append(
            f"| {label} | {r['cell']} | {r['scheme']} | {'8-bit' if r['activations'] else 'float'} "
            f"| {100 * r['accuracy']:.2f} % | {r['cpu_s_per_epoch']:.1f} | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def _settings(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str, bool], list[dict[str, Any]]]:
    """The rows by (library, cell, scheme, activations), each list sorted by seed."""
    settings: dict[tuple[str, str, str, bool], list[dict[str, Any]]] = {}
    for r in rows:
        cell = "LSTM" if r["cell"] == "QLSTM" else r["cell"]
        settings.setdefault((r["library"], cell, r["scheme"], r["activations"]), []).append(r)
    return {key: sorted(runs, key=lambda r: r.get("seed", 0)) for key, runs in settings.items()}


def seed_table(rows: list[dict[str, Any]]) -> str:
    """Test accuracy of each setting over the seeds: each seed, mean, sample deviation.

    CPU s/epoch is the median over the seeds of each run's median epoch.
    """
    lines = [
        "| library | cell | W, U | x, h, c | seeds | per seed | mean | std | CPU s/epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (library, cell, scheme, activations), runs in _settings(rows).items():
        accuracy = 100 * np.array([r["accuracy"] for r in runs])
        spread = accuracy.std(ddof=1) if len(accuracy) > 1 else float("nan")
        each = " / ".join(f"{a:.2f}" for a in accuracy)
        seeds = [r.get("seed", 0) for r in runs]
        span = (
            f"{seeds[0]} to {seeds[-1]}"
            if seeds == list(range(seeds[0], seeds[-1] + 1))
            else str(seeds)
        )
        cpu = np.median([r["cpu_s_per_epoch"] for r in runs])
        lines.append(
            f"| {library} | {cell} | {scheme} | {'8-bit' if activations else 'float'} | {span} "
            f"| {each} % | {accuracy.mean():.2f} % | {spread:.2f} | {cpu:.1f} |"
        )
    return "\n".join(lines)


def qkeras_comparison(rows: list[dict[str, Any]]) -> str:
    """Each tfqnn setting against QKeras's with the same bits, over the seeds.

    The difference of the means with its standard error ``sqrt(s1^2 / n1 +
    s2^2 / n2)`` (the runs are not paired: the libraries draw different
    initial weights from one seed) and the seeds on which tfqnn is below.
    """
    settings = _settings(rows)
    lines = []
    for (library, cell, scheme, activations), runs in settings.items():
        reference = settings.get(("qkeras", cell, scheme, activations))
        if library == "qkeras" or not reference or len(runs) < 2 or len(reference) < 2:
            continue
        ours = 100 * np.array([r["accuracy"] for r in runs])
        theirs = 100 * np.array([r["accuracy"] for r in reference])
        difference = ours.mean() - theirs.mean()
        error = float(np.sqrt(ours.var(ddof=1) / len(ours) + theirs.var(ddof=1) / len(theirs)))
        by_seed = {r.get("seed"): r["accuracy"] for r in reference}
        common = [r for r in runs if r.get("seed") in by_seed]
        below = sum(r["accuracy"] < by_seed[r.get("seed")] for r in common)
        lines.append(
            f"{library} {cell} {scheme}, x, h, c {'8-bit' if activations else 'float'}: "
            f"{difference:+.2f} points against QKeras ({len(ours)} and {len(theirs)} seeds), "
            f"standard error {error:.2f} ({difference / error:+.1f} SE); below QKeras on "
            f"{below} of the {len(common)} seeds both ran"
        )
    return "\n".join(lines)


def read_rows(paths: list[str]) -> list[dict[str, Any]]:
    """Sequence rows from JSON-lines files (``--rows``) or ``--json`` result files."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        text = Path(path).read_text()
        try:
            rows += json.loads(text)["sequences"]  # a --json file
        except (json.JSONDecodeError, KeyError, TypeError):
            rows += [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return rows


def merge(paths: list[str]) -> None:
    """Prints the seed table and the comparison with QKeras of committed rows."""
    rows = read_rows(paths)
    configurations = sorted(
        {tuple(r.get(k) for k in ("train", "test", "epochs", "units", "batch")) for r in rows},
        key=str,
    )
    for configuration in configurations:
        chosen = [
            r
            for r in rows
            if tuple(r.get(k) for k in ("train", "test", "epochs", "units", "batch"))
            == configuration
        ]
        train, test, epochs, units, batch = configuration
        print(
            f"\n{len(chosen)} runs: {train} training and {test} test sequences, {epochs} "
            f"epochs, {units} units, batch {batch}\n\n" + seed_table(chosen)
        )
        comparison = qkeras_comparison(chosen)
        if comparison:
            print("\n" + comparison)


def language_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| W, U | x, h, c | test bits/char | CPU s/epoch |", "|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['scheme']} | {'8-bit' if r['activations'] else 'float'} "
            f"| {r['bits_per_char']:.3f} | {r['cpu_s_per_epoch']:.1f} |"
        )
    return "\n".join(lines)


def timing_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| cell | library | W, U | x, h, c | CPU ms/step | vs Keras |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        label = "keras (use_cudnn=False)" if r["library"] == "keras" else r["library"]
        lines.append(
            f"| {r['cell']} | {label} | {r['scheme']} | {'8-bit' if r['activations'] else 'float'} "
            f"| {r['cpu_ms_per_step']:.1f} | {r['ratio']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10000, help="training sequences")
    parser.add_argument("--test", type=int, default=2000, help="test sequences")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="repeat the sequence task over these seeds"
    )
    parser.add_argument("--cells", nargs="+", choices=sorted(LAYERS), default=["lstm", "gru"])
    parser.add_argument("--schemes", nargs="+", choices=SCHEMES, default=list(DEFAULT_SCHEMES))
    parser.add_argument("--activations", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--lm-chars", type=int, default=200000, help="0 skips the language model")
    parser.add_argument("--lm-steps", type=int, default=64)
    parser.add_argument("--lm-epochs", type=int, default=2)
    parser.add_argument(
        "--qkeras-python",
        default=os.environ.get(
            "TFQNN_QKERAS_PYTHON", str(HERE.parent / ".peers/tfkeras/bin/python")
        ),
        help="python of a tf_keras env with QKeras (scripts/peer_envs.sh); '' skips",
    )
    parser.add_argument("--timing-rounds", type=int, default=9, help="0 skips the step timing")
    parser.add_argument("--timing-steps", type=int, default=10)
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=["timing", "sequences", "lm", "match"],
        default=["timing", "sequences", "lm"],
        help="step timing, sequential Fashion-MNIST (with QKeras), language model; match: "
        "tfqnn's LSTM against QKeras's from the same weights and batches",
    )
    parser.add_argument(
        "--recipe",
        choices=["tfqnn", "qkeras"],
        default="qkeras",
        help="8-bit inputs and states of the sequence task: qkeras, QuantizedBits (QKeras's "
        "quantizers); tfqnn, DoReFa(8) inputs and FixedPoint(3, 5) states",
    )
    parser.add_argument("--match-steps", type=int, default=20, help="Adam steps of --tasks match")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument(
        "--rows",
        help="append each sequence run here as a JSON line with its configuration, as it ends",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="FILE",
        help="train nothing: print the seed table and the comparison with QKeras of these "
        "--rows or --json files (benchmarks/results/recurrent_full.jsonl)",
    )
    args = parser.parse_args()
    if args.merge:
        merge(args.merge)
        return
    warnings.simplefilter("ignore", UserWarning)
    tf.get_logger().setLevel("ERROR")  # retracing notes of the many small models

    print(f"Machine: {machine()}")
    name, data = load_sequences(args)
    print(
        f"Sequential {name}: {len(data['x_train'])} training and {len(data['x_test'])} test "
        f"sequences of {data['x_train'].shape[1]} steps, {args.units} units, batch {args.batch}, "
        f"{args.epochs} epochs, Adam 2e-3, seeds {args.seeds or [args.seed]}",
        flush=True,
    )
    timing_rows = []
    if args.timing_rounds and "timing" in args.tasks:
        for cell in args.cells:
            timing_rows += step_times(cell, data, args)
        print(
            f"\nTraining step, batch {args.batch}: median of {args.timing_rounds} alternating "
            f"rounds of {args.timing_steps} steps\n" + timing_table(timing_rows) + "\n",
            flush=True,
        )
    match_rows = match_runs(data, args) if "match" in args.tasks else []
    if match_rows:
        print(
            f"\ntfqnn against QKeras from the same weights, first batch and after "
            f"{args.match_steps} Adam steps (N)\n" + match_table(match_rows) + "\n",
            flush=True,
        )
    rows = []

    def emit(row: dict[str, Any], seed: int) -> None:
        """Prints a finished run and appends it to ``--rows``."""
        configuration = {k: getattr(args, k) for k in ("train", "test", "epochs", "units", "batch")}
        line = json.dumps({**configuration, **row, "seed": seed})
        print(line, flush=True)
        if args.rows:
            with open(args.rows, "a") as f:
                f.write(line + "\n")

    for seed in args.seeds or [args.seed]:
        run_args = argparse.Namespace(**{**vars(args), "seed": seed})
        seed_rows = []
        for cell in args.cells if "sequences" in args.tasks else []:
            if "float" in args.schemes:  # the float reference
                seed_rows.append(sequence_run(cell, "keras", False, data, run_args))
                emit(seed_rows[-1], seed)
            for activations in args.activations:
                for scheme in args.schemes:
                    seed_rows.append(
                        sequence_run(cell, scheme, activations == "on", data, run_args)
                    )
                    emit(seed_rows[-1], seed)
        if "lstm" in args.cells and "sequences" in args.tasks:
            for row in qkeras_runs(data, run_args):
                seed_rows.append(row)
                emit(row, seed)
        rows += [{**row, "seed": seed} for row in seed_rows]
    lm_rows = []
    if args.lm_chars and "lm" in args.tasks:
        lm_data, vocabulary = char_data(args)
        print(
            f"Character LM on CPython {platform.python_version()}'s stdlib sources: "
            f"{args.lm_chars} characters, vocabulary {vocabulary}, {len(lm_data['x_train'])} "
            f"training and {len(lm_data['x_test'])} test sequences of {args.lm_steps}, "
            f"Embedding(32) + QuantLSTM({args.units}), {args.lm_epochs} epochs",
            flush=True,
        )
        for activations in args.activations:
            for scheme in args.schemes:
                lm_rows.append(
                    language_model_run(scheme, activations == "on", lm_data, vocabulary, args)
                )
                print(json.dumps(lm_rows[-1]), flush=True)
    if rows:
        print("\n" + sequence_table(rows))
    if rows and len(args.seeds or []) > 1:
        print("\n" + seed_table(rows))
    if lm_rows:
        print("\n" + language_table(lm_rows))
    if args.json:
        with open(args.json, "w") as f:
            results = {
                "sequences": rows,
                "language_model": lm_rows,
                "timing": timing_rows,
                "match": match_rows,
            }
            json.dump({"machine": machine(), **results}, f, indent=1)


if __name__ == "__main__":
    main()
