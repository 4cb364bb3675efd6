"""Codebook compression on Fashion-MNIST: accuracy against compression ratio.

For LeNet-300-100 (784-300-100-10) and a LeNet-5-style CNN (conv 6@5x5,
pool, conv 16@5x5, pool, 120, 84, 10), trained in float, then for each
method of `tfqnn.codebook.cluster` at b = 2, 3, 4, 5 and 8 bits per weight,
without and with pruning, the same fine-tuning budget (``--fine-tune-epochs``
of Adam on the centroids) and the test accuracy, the fixed-length and
Huffman compression ratios of `tfqnn.codebook.report` (codebooks and
float biases included) and the bytes of `save_compressed`.

How b bits map to each method (indices of b bits per weight):

* scalar methods (kmeans, kmeans with ``importance="hessian"``, optimal,
  uniform, weighted_entropy): k = 2^b centroids, or 2^b - 1 when pruned (the
  zero code makes 2^b codes); ecsq starts from the same k bins and holds the
  entropy of the indices at log2(k) - 1 bits (its default; ``--ecsq-drop``
  changes the 1).
* product: sub-vectors of 2 weights along the output axis, k = 2^(2b)
  (b <= 4: at most 256 centroids).
* residual: 2 stages of k = 2^(b/2) (even b).
* product and residual take no pruned kernel (a scalar zero code).

Pruning (the first stage of Deep Compression, Han et al. 2016): iterative
magnitude pruning to ``--sparsity`` in the steps ``--prune-steps``, with
``--prune-epochs`` of masked fine-tuning after each step, once per model;
the clustering runs then start from the pruned model. "Deep Compression" is
pruning + 5-bit k-means + Huffman.

Side by side: tensorflow-model-optimization's ``cluster_weights`` with 16
clusters (k-means++ init, its default recipe) on the same trained float
weights with the same fine-tuning budget, run by ``_codebook_tfmot.py`` in
a tf_keras environment (``--tfmot-python``, default
``$TFQNN_TFMOT_PYTHON`` or .peers/tfkeras/bin/python, built by scripts/peer_envs.sh; '' skips); its
size is the zipped float ``.tflite`` of the stripped model (tfmot's own
recipe for measuring its gain).

Usage: nice -n 10 python benchmarks/codebook.py [--models mlp cnn]
       [--bits 2 3 4 5 8] [--epochs 3] [--fine-tune-epochs 1]
       [--json benchmarks/results/codebook.json]
       [--png docs/images/codebook_pareto.png]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

import tfqnn
from tfqnn import codebook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _machine  # noqa: E402

SCALAR = (
    "kmeans",
    "kmeans_hessian",
    "kmeans_every_step",
    "ecsq",
    "optimal",
    "uniform",
    "weighted_entropy",
)
METHODS = (*SCALAR, "product", "residual")
HESSIAN_SAMPLES = 256


def build(name: str) -> keras.Model:
    """LeNet-300-100 ("mlp") or a LeNet-5-style CNN ("cnn") for 28x28 images."""
    if name == "mlp":
        layers = [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    else:
        layers = [
            keras.Input((28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(6, 5, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(120, activation="relu"),
            keras.layers.Dense(84, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    return keras.Sequential(layers, name=f"lenet_{name}")


def fit(model: keras.Model, data: Any, epochs: int, learning_rate: float, batch: int) -> None:
    (x, y), _ = data
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)


def accuracy(model: keras.Model, data: Any) -> float:
    _, (x, y) = data
    return float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), -1) == y))


def method_arguments(
    method: str, bits: int, pruned: bool, ecsq_drop: float = 1.0
) -> dict[str, Any] | None:
    """`cluster`'s arguments for ``bits`` per weight, or None when the pair has no run.

    ecsq holds the entropy of its indices at log2(k) - ``ecsq_drop`` bits.
    """
    if method in SCALAR:
        k = 2**bits - (1 if pruned else 0)
        if k < 2:
            return None
        arguments: dict[str, Any] = {"clusters": k, "method": method}
        if method == "ecsq" and ecsq_drop != 1.0:
            arguments["target_bits"] = float(np.log2(k)) - ecsq_drop
        if method == "kmeans_hessian":
            arguments.update(method="kmeans", importance="hessian")
        if method == "kmeans_every_step":  # tfmot's training scheme, at its 16 clusters
            if bits != 4:
                return None
            arguments.update(method="kmeans", reassign="every_step")
        return arguments
    if pruned:
        return None
    if method == "product":
        return (
            None
            if bits > 4
            else {"clusters": 2 ** (2 * bits), "method": method, "subvector_size": 2}
        )
    if bits % 2:
        return None
    return {"clusters": 2 ** (bits // 2), "method": "residual", "stages": 2}


def one_run(
    base: keras.Model, data: Any, method: str, bits: int, pruned: bool, args: argparse.Namespace
) -> dict[str, Any] | None:
    arguments = method_arguments(method, bits, pruned, args.ecsq_drop)
    if arguments is None:
        return None
    keras.utils.set_random_seed(args.seed)
    (x, y), _ = data
    if arguments.get("importance") == "hessian":
        arguments["data"] = (x[:HESSIAN_SAMPLES], y[:HESSIAN_SAMPLES])
    start = time.perf_counter()
    clustered = codebook.cluster(base, seed=args.seed, verbose=0, **arguments)
    cluster_s = time.perf_counter() - start
    before = accuracy(clustered, data)
    start = time.perf_counter()
    fit(clustered, data, args.fine_tune_epochs, args.fine_tune_lr, args.batch)
    fine_tune_s = time.perf_counter() - start
    sizes = codebook.report(clustered, print_fn=None)
    file_bytes = len(tfqnn.codebook.compressed.to_bytes(clustered))
    return {
        "method": method,
        "bits": bits,
        "pruned": pruned,
        "clusters": arguments["clusters"],
        "target_bits": arguments.get("target_bits"),
        "accuracy_before_fine_tuning": before,
        "accuracy": accuracy(clustered, data),
        "fixed_ratio": sizes.fixed_ratio,
        "huffman_ratio": sizes.huffman_ratio,
        "file_bytes": file_bytes,
        "file_ratio": sizes.float_bits / 8 / file_bytes,
        "cluster_s": cluster_s,
        "fine_tune_s": fine_tune_s,
    }


def tfmot_run(
    model_name: str, base: keras.Model, data: Any, args: argparse.Namespace
) -> dict[str, Any] | None:
    """tfmot's 16-cluster row from the tf_keras environment, or None when it is absent."""
    python = args.tfmot_python
    if not python or not Path(python).exists():
        print(f"tfmot: no environment at {python!r} (scripts/peer_envs.sh); skipped")
        return None
    (x, y), (x_test, y_test) = data
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "data.npz")
        weights = {f"w{i}": w for i, w in enumerate(base.get_weights())}
        np.savez(path, x_train=x, y_train=y, x_test=x_test, y_test=y_test, **weights)
        command = [
            python,
            str(HERE / "_codebook_tfmot.py"),
            path,
            "--model",
            model_name,
            "--epochs",
            str(args.fine_tune_epochs),
            "--learning-rate",
            str(args.fine_tune_lr),
            "--batch",
            str(args.batch),
            "--seed",
            str(args.seed),
        ]
        environment = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        print("tfmot run failed:\n" + result.stderr[-3000:])
        return None
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return rows[-1] if rows else None


def pruned_model(model: keras.Model, data: Any, args: argparse.Namespace) -> keras.Model:
    for sparsity in args.prune_steps:
        model = codebook.prune(model, min(sparsity, args.sparsity), scope=args.prune_scope)
        fit(model, data, args.prune_epochs, args.learning_rate, args.batch)
    return model


def table(model_name: str, rows: list[dict[str, Any]], float_accuracy: float) -> str:
    lines = [
        f"\n{model_name}: float accuracy {100 * float_accuracy:.2f} %",
        "| method | bits | pruned | k | acc % (before ft) | acc % | delta | fixed x | "
        "Huffman x | file x |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']}{_entropy(r)} | {r['bits']} | {'yes' if r['pruned'] else 'no'} | "
            f"{r['clusters']} | {100 * r['accuracy_before_fine_tuning']:.2f} | "
            f"{100 * r['accuracy']:.2f} | "
            f"{100 * (r['accuracy'] - r.get('float_accuracy', float_accuracy)):+.2f} | "
            f"{r['fixed_ratio']:.1f} | {r['huffman_ratio']:.1f} | {r['file_ratio']:.1f} |"
        )
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[str]:
    """The issue's targets, met or missed, for one model."""
    float_accuracy = result["float_accuracy"]
    rows = result["runs"]
    out = []

    def find(method: str, bits: int, pruned: bool) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in rows
                if r["method"] == method and r["bits"] == bits and r["pruned"] == pruned
            ),
            None,
        )

    five = find("kmeans", 5, False)
    if five:
        delta = 100 * (five["accuracy"] - five.get("float_accuracy", float_accuracy))
        out.append(
            f"5-bit k-means within 0.3 points of float: {delta:+.2f} -> "
            f"{'met' if delta >= -0.3 else 'missed'}"
        )
    deep = find("kmeans", 5, True)
    if deep:
        delta = 100 * (deep["accuracy"] - deep.get("float_accuracy", float_accuracy))
        ok = deep["huffman_ratio"] >= 35 and delta >= -1
        out.append(
            f"Deep Compression (pruned + 5-bit k-means + Huffman) >= 35x within 1 point: "
            f"{deep['huffman_ratio']:.1f}x (file {deep['file_ratio']:.1f}x), {delta:+.2f} -> "
            f"{'met' if ok else 'missed'}"
        )
    worse = []
    for r in rows:
        if r["method"] != "kmeans_hessian":
            continue
        plain = find("kmeans", r["bits"], r["pruned"])
        if plain and r["accuracy"] < plain["accuracy"]:
            worse.append(
                f"{r['bits']} bits{' pruned' if r['pruned'] else ''}: "
                f"{100 * (r['accuracy'] - plain['accuracy']):+.2f}"
            )
    if any(r["method"] == "kmeans_hessian" for r in rows):
        out.append(
            "Hessian-weighted not worse than k-means at equal bits: "
            + ("met" if not worse else "missed at " + ", ".join(worse))
        )
    peer = result.get("tfmot")
    sixteen = find("kmeans", 4, False)
    if peer and sixteen:
        out.append("vs tfmot cluster_weights(16), k-means 16: " + _versus(sixteen, peer))
    if peer:
        # Any unpruned run has tfmot's budget (pruning adds epochs): the smallest
        # file whose accuracy is at least tfmot's.
        good = [r for r in rows if not r["pruned"] and r["accuracy"] >= peer["accuracy"]]
        if good:
            best = min(good, key=lambda r: r["file_bytes"])
            out.append(
                f"vs tfmot cluster_weights(16), smallest unpruned file at tfmot's accuracy "
                f"({_label(best)}): " + _versus(best, peer)
            )
    return out


def _entropy(row: dict[str, Any]) -> str:
    """`` (H <= b)`` for an ecsq run with an entropy target other than the default."""
    return f" (H <= {row['target_bits']:g})" if row.get("target_bits") else ""


def _label(row: dict[str, Any]) -> str:
    """A run's method, bits and clusters, as the tables name it."""
    return f"{row['method']}{_entropy(row)} {row['bits']} bits, k={row['clusters']}"


def _versus(row: dict[str, Any], peer: dict[str, Any]) -> str:
    """tfqnn's run against tfmot's: accuracy, bytes, ratio, met or missed."""
    zipped = peer["zipped_tflite_bytes"]
    ok = row["accuracy"] >= peer["accuracy"] and row["file_bytes"] <= zipped / 2
    return (
        f"accuracy {100 * row['accuracy']:.2f} % vs {100 * peer['accuracy']:.2f} %, file "
        f"{row['file_bytes']} B vs zipped .tflite {zipped} B ({zipped / row['file_bytes']:.2f}x) "
        f"-> {'met' if ok else 'missed'}"
    )


def save(results: dict[str, Any], path: str, quiet: bool = False) -> None:
    """Writes ``results`` as JSON to ``path`` ('' writes nothing)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=1))
        if not quiet:
            print(f"wrote {path}")


def plot(results: dict[str, Any], path: str) -> None:
    """Per architecture, the Pareto front of accuracy against file bytes (tfqnn.plot.pareto).

    Writes ``path`` with ``_mlp`` / ``_cnn`` before the suffix; runs of
    results keyed ``"mlp global pruning"`` join the ``mlp`` figure.
    """
    groups: dict[str, dict[str, dict[str, float]]] = {}
    floats: dict[str, float] = {}
    for key, result in results["models"].items():
        group = key.split()[0]
        extra = key[len(group) :].strip()
        points = groups.setdefault(group, {})
        floats.setdefault(group, result["float_accuracy"])
        points.setdefault(
            "float", {"accuracy": result["float_accuracy"], "size": result["float_bytes"]}
        )
        for r in result["runs"]:
            label = f"{r['method']} {r['bits']}b" + (" pruned" if r["pruned"] else "")
            label += f" ({extra})" if extra else ""
            points[label] = {"accuracy": r["accuracy"], "size": r["file_bytes"]}
        if result.get("tfmot"):
            points["tfmot 16 (zipped .tflite)"] = {
                "accuracy": result["tfmot"]["accuracy"],
                "size": result["tfmot"]["zipped_tflite_bytes"],
            }
    for group, points in groups.items():
        low = floats[group] - 0.05
        shown = {name: p for name, p in points.items() if p["accuracy"] >= low}
        figure = tfqnn.plot.pareto(shown, x="size")
        figure.set_size_inches(10, 6.5)
        axis = figure.axes[0]
        axis.set_xscale("log")
        names = list(shown)
        front = set(tfqnn.plot.pareto_front([(p["size"], p["accuracy"]) for p in shown.values()]))
        for i, text in enumerate(axis.texts):
            # too many runs to label: the front, float and tfmot keep theirs
            text.set_visible(i in front or names[i] in ("float", "tfmot 16 (zipped .tflite)"))
            text.set_fontsize("x-small")
        figure.suptitle(
            f"Fashion-MNIST {group}: tfqnn.codebook runs, accuracy against save_compressed bytes "
            f"(float: 4 bytes/param); {len(points) - len(shown)} runs more than 5 points below "
            "float not shown",
            fontsize="small",
        )
        target = Path(path)
        target = target.with_name(f"{target.stem}_{group}{target.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, dpi=100, bbox_inches="tight", metadata={"Software": None})
        print(f"wrote {target}")


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two runs the same configuration."""
    return (row["method"], row["bits"], row["pruned"], row["clusters"], row.get("target_bits"))


def merge(paths: list[str], json_path: str, png_path: str) -> None:
    """Joins the models of several results files into one, then prints targets and plots.

    A run of a later file replaces a run of the same model and configuration
    from an earlier one (a re-run after a fix).
    """
    results: dict[str, Any] = {}
    for path in paths:
        part = json.loads(Path(path).read_text())
        for result in part["models"].values():
            for run in result["runs"]:  # each invocation trains its own float model
                run.setdefault("float_accuracy", result["float_accuracy"])
        if not results:
            results = part
            continue
        for name, result in part["models"].items():
            if name not in results["models"]:
                results["models"][name] = result
                continue
            known = results["models"][name]
            # a later file's run replaces an earlier one of the same configuration
            fresh = {_key(r) for r in result["runs"]}
            known["runs"] = [r for r in known["runs"] if _key(r) not in fresh]
            known["runs"].extend(result["runs"])
            known["tfmot"] = known.get("tfmot") or result.get("tfmot")
    for model_name, result in results["models"].items():
        print(table(model_name, result["runs"], result["float_accuracy"]))
        for line in targets(result):
            print("  " + line)
    save(results, json_path)
    if png_path:
        plot(results, png_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--bits", nargs="+", type=int, default=[2, 3, 4, 5, 8])
    parser.add_argument("--pruning", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--epochs", type=int, default=3, help="float training epochs")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument("--fine-tune-lr", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--prune-steps", nargs="+", type=float, default=[0.5, 0.7, 0.8, 0.9])
    parser.add_argument("--prune-epochs", type=int, default=1)
    parser.add_argument("--prune-scope", choices=["layer", "model"], default="layer")
    parser.add_argument(
        "--ecsq-drop",
        type=float,
        default=1.0,
        help="ecsq holds the index entropy at log2(k) minus this many bits",
    )
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        metavar="METHOD:BITS[:off|on]",
        help="runs left out, e.g. ecsq:8 (both pruning modes) or ecsq:2:off",
    )
    parser.add_argument("--tag", default="", help="appended to the model's name in the results")
    parser.add_argument("--train-size", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tfmot-python",
        default=os.environ.get(
            "TFQNN_TFMOT_PYTHON", str(HERE.parent / ".peers/tfkeras/bin/python")
        ),
        help="python of a tf_keras env with tfmot (scripts/peer_envs.sh); '' skips",
    )
    # No default paths: a run never overwrites the committed results and charts
    # (benchmarks/results/codebook.json, docs/images/codebook_pareto_*.png) unless asked.
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--png", default="", help="write the Pareto charts here (_mlp, _cnn)")
    parser.add_argument(
        "--merge", nargs="+", metavar="JSON", help="join earlier results files, plot, exit"
    )
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.json, args.png)
        return

    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {_machine.memory_gib()} GiB; "
        f"load {_machine.load_average()}; Python {platform.python_version()}, numpy "
        f"{np.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
    (x, y), test = tfqnn.datasets.load_fashion_mnist()
    data = ((x[: args.train_size], y[: args.train_size]), test)
    print(
        f"Fashion-MNIST {len(data[0][0])} train / {len(test[0])} test; float {args.epochs} "
        f"epochs (Adam {args.learning_rate}); every run fine-tunes {args.fine_tune_epochs} "
        f"epoch(s) (Adam {args.fine_tune_lr}, batch {args.batch}); pruning to {args.sparsity} "
        f"in steps {args.prune_steps}, {args.prune_epochs} epoch(s) each; seed {args.seed}"
    )
    results: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "arguments": vars(args),
        "models": {},
    }
    for model_name in args.models:
        keras.utils.set_random_seed(args.seed)
        model = build(model_name)
        start = time.perf_counter()
        fit(model, data, args.epochs, args.learning_rate, args.batch)
        float_accuracy = accuracy(model, data)
        float_bytes = 4 * model.count_params()
        print(
            f"\n{model_name}: float {100 * float_accuracy:.2f} % "
            f"({model.count_params()} params, {time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        bases = {"off": model}
        pruned_accuracy = None
        if "on" in args.pruning:
            keras.utils.set_random_seed(args.seed)
            bases["on"] = pruned_model(model, data, args)
            pruned_accuracy = accuracy(bases["on"], data)
            print(f"{model_name}: pruned to {args.sparsity}: {100 * pruned_accuracy:.2f} %")
        rows = []
        peer = tfmot_run(model_name, model, data, args)
        for method in args.methods:
            for pruning in args.pruning:
                for bits in args.bits:
                    if {f"{method}:{bits}", f"{method}:{bits}:{pruning}"} & set(args.skip):
                        continue
                    row = one_run(bases[pruning], data, method, bits, pruning == "on", args)
                    if row is None:
                        continue
                    rows.append(row)
                    results["models"][model_name + args.tag] = {
                        "float_accuracy": float_accuracy,
                        "float_bytes": float_bytes,
                        "pruned_accuracy": pruned_accuracy,
                        "runs": rows,
                        "tfmot": peer,
                        "partial": True,
                    }
                    save(results, args.json, quiet=True)  # a stopped run keeps its rows
                    print(
                        f"  {method:<17} {bits} bits pruned={pruning:<3} "
                        f"{100 * row['accuracy']:.2f} % fixed {row['fixed_ratio']:.1f}x "
                        f"Huffman {row['huffman_ratio']:.1f}x file {row['file_bytes']} B "
                        f"({row['cluster_s']:.1f} + {row['fine_tune_s']:.1f} s)",
                        flush=True,
                    )
        result = {
            "float_accuracy": float_accuracy,
            "float_bytes": float_bytes,
            "pruned_accuracy": pruned_accuracy,
            "runs": rows,
            "tfmot": peer,
        }
        results["models"][model_name + args.tag] = result
        print(table(model_name, rows, float_accuracy))
        if result["tfmot"]:
            t = result["tfmot"]
            print(
                f"tfmot cluster_weights(16): {100 * t['accuracy']:.2f} %, zipped .tflite "
                f"{t['zipped_tflite_bytes']} B (.tflite {t['tflite_bytes']} B)"
            )
        for line in targets(result):
            print("  " + line)
    print(f"\nLoad average at the end: {_machine.load_average()}")
    save(results, args.json)
    if args.png:
        plot(results, args.png)


if __name__ == "__main__":
    main()
