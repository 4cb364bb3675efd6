"""Fashion-MNIST accuracy of a ResNet-18-style network under the zoo's five presets.

Trains `tfqnn.zoo.ResNet18` at 28x28x1 (small-input stem, widths scaled by
``--width-multiplier``) once per preset ("float", "ternary", "binary",
"xnor", "dorefa" W1A2) with `examples/train_zoo.py`: the same data,
epochs, batch and seed for all, each with its paper's recipe scaled down.
Prints the machine, then benchmarks/README.md's table: test accuracy in
Keras and TFLite, the gap to float, packed weights, binary MACs, TFLite
file size and latency, training wall and CPU minutes, beside the ImageNet
top-1 the survey's sources report for ResNet-18; then each preset's recipe.

Usage: python benchmarks/zoo_accuracy.py [--epochs 2] [--train-size 60000]
       [--width-multiplier 0.125] [--presets float,binary] [--json PATH]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import _machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "train_zoo.py")
PRESETS = ("float", "ternary", "binary", "xnor", "dorefa")  # the README table's order
# ImageNet top-1 (%) of ResNet-18 by preset, as the research note gives it
# (docs/zoo.md, tfqnn.zoo.info("ResNet18")): FP and XNOR-Net from the
# XNOR-Net paper; TWN's ternary against its own FP (ResNet-18B);
# DoReFa W1A4 (tensorpack); no binary (BinaryNet) ResNet-18 figure.
IMAGENET = {
    "float": "69.3 (XNOR-Net paper)",
    "binary": "no source",
    "xnor": "51.2 (XNOR-Net paper)",
    "dorefa": "W1A4: 59.2 (tensorpack); W1A2 not given",
    "ternary": "61.8, its own FP 65.4 (TWN, ResNet-18B)",
}
NAMES = {
    "float": "float",
    "binary": "binary (BinaryNet)",
    "xnor": "xnor (XNOR-Net)",
    "dorefa": "dorefa W1A2",
    "ternary": "ternary (TWN)",
}


def train(preset, args, output):
    command = [
        sys.executable,
        SCRIPT,
        "--model",
        "ResNet18",
        "--quantization",
        preset,
        "--width-multiplier",
        str(args.width_multiplier),
        "--epochs",
        str(args.epochs),
        "--train-size",
        str(args.train_size),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        "--latency-runs",
        "100",
        "--verbose",
        "2",
        "--output",
        output,
        "--name",
        preset,
    ]
    subprocess.run(command, check=True)
    with open(os.path.join(output, preset + ".json")) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=60000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width-multiplier", type=float, default=0.125)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(_machine.header())
    cards = {}
    with tempfile.TemporaryDirectory() as output:
        for preset in args.presets.split(","):
            cards[preset] = train(preset, args, output)
    float_accuracy = cards["float"]["test_accuracy"] if "float" in cards else None
    print(
        f"\nResNet-18 x{args.width_multiplier:g}, Fashion-MNIST 28x28, {args.epochs} epochs on "
        f"{args.train_size:,} images, batch {args.batch_size}, seed {args.seed}\n"
    )
    print(
        "| preset | test % (Keras) | TFLite % | vs float | weights KiB (packed) | binary MACs "
        "| TFLite bytes | TFLite ms | train wall / CPU min | ImageNet ResNet-18 top-1 % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for preset, card in cards.items():
        accuracy = card["test_accuracy"]
        gap = (
            ""
            if float_accuracy is None or preset == "float"
            else f"{100 * (accuracy - float_accuracy):+.2f}"
        )
        training = card["training"]
        print(
            f"| {NAMES[preset]} | {100 * accuracy:.2f} "
            f"| {100 * card['tflite']['test_accuracy']:.2f} | {gap} "
            f"| {card['summary']['quantized_bytes'] / 1024:.1f} "
            f"| {100 * card['summary']['binary_mac_fraction']:.1f} % "
            f"| {card['tflite']['bytes']:,} | {card['tflite']['latency_ms']:.3f} "
            f"| {training['seconds'] / 60:.1f} / {training['cpu_seconds'] / 60:.1f} "
            f"| {IMAGENET[preset]} |"
        )
    print("\nRecipes:")
    for preset, card in cards.items():
        print(f"- {NAMES[preset]}: {card['training']['recipe']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(cards, f, indent=2)


if __name__ == "__main__":
    main()
