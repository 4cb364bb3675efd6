"""Draws the documentation's pictures into docs/images/ (run by `make docs`).

- ``quantizer_<alias>.png``: `tfqnn.plot.quantizer` of every quantizer alias
  at its defaults (docs/quantizers.md shows them);
- ``summary_demo_cnn.png``: `tfqnn.plot.summary` of the demo's binarized CNN
  (examples/binarized_fashion_mnist.py);
- ``pareto_weight_procedures_<model>.png``: `tfqnn.plot.pareto` of the
  rows of benchmarks/results/weight_procedures.json (written by
  ``benchmarks/weight_procedures.py --json``): test accuracy against model
  size for each method, one chart per model (benchmarks/README.md and
  docs/training.md show them). No training: the results are committed.
- ``codebook_pareto_<model>.png``: benchmarks/codebook.py's Pareto charts
  (its ``plot``) of the committed benchmarks/results/codebook.json.

The PNGs carry no timestamp or version, so an unchanged figure rewrites the
same bytes. Usage: python scripts/docs_images.py [--out docs/images]
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfqnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import binarized_fashion_mnist as demo  # noqa: E402
import codebook as codebook_benchmark  # noqa: E402


def save(figure, path):
    figure.savefig(path, dpi=72, metadata={"Software": None})
    print(f"wrote {os.path.relpath(path, ROOT)}")


def weight_procedure_results(path):
    """``{model: {method: {"accuracy": %, "size": bytes}}}`` from the benchmark's JSON file."""
    with open(path) as f:
        rows = json.load(f)["rows"]
    results = {}
    for row in rows:
        results.setdefault(row["model"], {})[row["method"]] = {
            "accuracy": 100 * row["accuracy"],
            "size": row["size_bytes"],
        }
    return results


def weight_procedure_chart(name, runs, within=5.0):
    """`tfqnn.plot.pareto` of the runs within ``within`` points of the float model."""
    best = runs["float"]["accuracy"]
    shown = {k: v for k, v in runs.items() if v["accuracy"] >= best - within}
    figure = tfqnn.plot.pareto(shown)
    figure.set_size_inches(9.0, 6.0)
    ax = figure.axes[0]
    ax.set_xscale("log")
    ax.set_ylabel("test accuracy (%)")
    model = {"lenet": "LeNet-300-100", "cnn": "the demo's CNN"}.get(name, name)
    ax.set_title(f"{model}, Fashion-MNIST: {ax.get_title()}")
    hidden = len(runs) - len(shown)
    if hidden:
        ax.text(
            0.01,
            0.01,
            f"not shown: {hidden} runs more than {within:g} points below float",
            transform=ax.transAxes,
            fontsize="small",
        )
    return figure


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "images"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for alias in sorted(tfqnn.quantizers.ALIASES):
        save(tfqnn.plot.quantizer(alias), os.path.join(args.out, f"quantizer_{alias}.png"))
    model = demo.build_model((28, 28, 1), True, "demo_cnn")
    save(tfqnn.plot.summary(model), os.path.join(args.out, "summary_demo_cnn.png"))
    results = os.path.join(ROOT, "benchmarks", "results", "weight_procedures.json")
    for name, runs in weight_procedure_results(results).items():
        figure = weight_procedure_chart(name, runs)
        save(figure, os.path.join(args.out, f"pareto_weight_procedures_{name}.png"))
    with open(os.path.join(ROOT, "benchmarks", "results", "codebook.json")) as f:
        codebook_benchmark.plot(json.load(f), os.path.join(args.out, "codebook_pareto.png"))


if __name__ == "__main__":
    main()
