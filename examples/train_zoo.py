"""Train a tfqnn.zoo network on Fashion-MNIST with its paper's recipe, scaled down.

Builds any zoo model at 28x28x1 (its small-input stem) with 10 classes,
trains it with the optimizer and learning-rate schedule of its paper (or of
larq-zoo's training task), the schedule's milestones scaled from the paper's
epochs to this run's steps, and writes under --output:

- ``NAME.keras``: the trained model without optimizer state (loads with only
  ``import tfqnn``);
- ``NAME.tflite``: its `tfqnn.export.to_tflite` export (binary layers as
  tfqnn's bitpacked custom ops);
- ``NAME.md`` and ``NAME.json``: a model card: data, recipe, epochs, test
  accuracy in Keras and in TFLite, parameters, size, binary MACs and the
  TFLite latency at batch 1 with `tfqnn.lite.Interpreter`.

Inputs are scaled to [-1, 1]. Recipes (ImageNet epochs in brackets; this
script keeps the optimizer, the peak learning rate and the schedule's shape):

- QuickNet, QuickNetSmall, QuickNetLarge (larq-zoo, arXiv:2011.09398):
  binary kernels with Adam 1e-2, everything else with SGD 0.1 momentum 0.9
  (`tfqnn.optimizers.CaseOptimizer`), both cosine decay after a warm-up of
  5 of 600 epochs;
- BinaryResNetE18: Adam 4e-3, x0.3 at 70, 90 and 110 of 120 epochs;
- BiRealNet: Adam 5e-3, linear decay to 0 (300);
- BinaryAlexNet: Adam 1e-2, halved every 10 of 150 epochs;
- XNORNet: Adam 1e-3, larq-zoo's seven steps over 100 epochs;
- DoReFaNet: Adam 2e-4, x0.2 at 60 and 75 of 90, then x0.1 every 2 epochs
  from 82;
- classic networks by preset: "float" and "ternary" (He et al. 2016, TWN):
  SGD 0.1 momentum 0.9, x0.1 at 1/3 and 2/3 of the run; "binary"
  (BinaryNet): Adam 3e-3, exponential decay to 1 % of it; "xnor" as XNORNet;
  "dorefa" as DoReFaNet. Weight decay is left out.

Every recipe is one phase, as larq-zoo's training tasks for these networks
are: Bi-Real Net's paper starts from a real-valued network trained with
clip activations, which larq-zoo's recipe (this one) leaves out, and
Real-to-Binary Net's distillation stages belong to a network not in the zoo.

Usage:
    python examples/train_zoo.py --model ResNet18 --quantization binary \\
        --width-multiplier 0.125 --epochs 3
    python examples/train_zoo.py --model QuickNetSmall --width-multiplier 0.25 \\
        --blocks 2 2 2 2 --epochs 3
"""

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import keras
import numpy as np

import tfqnn

QUICKNETS = ("QuickNet", "QuickNetSmall", "QuickNetLarge")
LITERATURE_SCHEME = {
    "QuickNet": "binary",
    "QuickNetSmall": "binary",
    "QuickNetLarge": "binary",
    "BiRealNet": "binary",
    "BinaryResNetE18": "binary",
    "BinaryAlexNet": "binary",
    "XNORNet": "xnor",
    "DoReFaNet": "dorefa",
}
XNOR_STEPS = ((19, 30, 44, 53, 66, 76, 86), (1, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0001), 100)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """An optimizer and a learning-rate schedule, as a paper trains the network.

    ``schedule`` is one of "cosine_warmup", "steps", "linear", "exponential";
    ``boundaries`` are fractions of the run (for "steps") with ``factors`` the
    multipliers of the peak rate before, between and after them.
    """

    source: str
    optimizer: str  # "adam", "sgd" or "quicknet" (Adam on binary kernels, SGD on the rest)
    learning_rate: float
    schedule: str
    boundaries: tuple[float, ...] = ()
    factors: tuple[float, ...] = ()
    warmup: float = 0.0  # fraction of the run
    end_factor: float = 0.0  # "exponential": the last step's rate over the first
    adam_epsilon: float = 1e-7
    paper_epochs: int = 0
    paper_batch: int = 0

    def describe(self) -> str:
        """One line: optimizer, rate and schedule."""
        optimizer = {
            "adam": f"Adam {self.learning_rate:g}",
            "sgd": f"SGD {self.learning_rate:g}, momentum 0.9",
            "quicknet": f"Adam {self.learning_rate:g} on binary kernels, SGD 0.1 momentum 0.9 "
            "on the rest",
        }[self.optimizer]
        if self.schedule == "cosine_warmup":
            schedule = (
                f"cosine decay after a linear warm-up over {100 * self.warmup:.2g} % of steps"
            )
        elif self.schedule == "steps":
            points = ", ".join(
                f"x{f:g} from {100 * b:.0f} %" for b, f in zip(self.boundaries, self.factors[1:])
            )
            schedule = f"steps: {points} of the run"
        elif self.schedule == "linear":
            schedule = "linear decay to 0"
        else:
            schedule = f"exponential decay to {self.end_factor:g} of it"
        return f"{optimizer}; {schedule}"


def _fractions(epochs: tuple[int, ...], total: int) -> tuple[float, ...]:
    return tuple(e / total for e in epochs)


RECIPES = {
    "quicknet": Recipe(
        "larq-zoo TrainQuickNet (arXiv:2011.09398)",
        "quicknet",
        1e-2,
        "cosine_warmup",
        warmup=5 / 600,
        paper_epochs=600,
        paper_batch=2048,
    ),
    "BinaryResNetE18": Recipe(
        "larq-zoo TrainBinaryResNetE18 (arXiv:1906.08637)",
        "adam",
        4e-3,
        "steps",
        _fractions((70, 90, 110), 120),
        (1, 0.3, 0.09, 0.027),
        adam_epsilon=1e-8,
        paper_epochs=120,
        paper_batch=1024,
    ),
    "BiRealNet": Recipe(
        "larq-zoo TrainBiRealNet (arXiv:1808.00278)",
        "adam",
        5e-3,
        "linear",
        paper_epochs=300,
        paper_batch=512,
    ),
    "BinaryAlexNet": Recipe(
        "larq-zoo TrainBinaryAlexNet (arXiv:1602.02830)",
        "adam",
        1e-2,
        "steps",
        _fractions(tuple(range(10, 150, 10)), 150),
        tuple(0.5**k for k in range(15)),
        paper_epochs=150,
        paper_batch=512,
    ),
    "xnor": Recipe(
        "larq-zoo TrainXNORNet (arXiv:1603.05279)",
        "adam",
        1e-3,
        "steps",
        _fractions(XNOR_STEPS[0], XNOR_STEPS[2]),
        XNOR_STEPS[1],
        paper_epochs=100,
        paper_batch=1200,
    ),
    "dorefa": Recipe(
        "larq-zoo TrainDoReFaNet (arXiv:1606.06160)",
        "adam",
        2e-4,
        "steps",
        _fractions((60, 75, 82, 84, 86, 88), 90),
        (1, 0.2, 0.04, 0.004, 4e-4, 4e-5, 4e-6),
        adam_epsilon=1e-5,
        paper_epochs=90,
        paper_batch=256,
    ),
    "float": Recipe(
        "He et al. 2016 (arXiv:1512.03385)",
        "sgd",
        0.1,
        "steps",
        (1 / 3, 2 / 3),
        (1, 0.1, 0.01),
        paper_epochs=90,
        paper_batch=256,
    ),
    "ternary": Recipe(
        "TWN, Li et al. 2016 (arXiv:1605.04711)",
        "sgd",
        0.1,
        "steps",
        (1 / 3, 2 / 3),
        (1, 0.1, 0.01),
        paper_epochs=90,
        paper_batch=256,
    ),
    "binary": Recipe(
        "BinaryNet, Hubara et al. 2016 (arXiv:1602.02830)",
        "adam",
        3e-3,
        "exponential",
        end_factor=0.01,
    ),
}


def recipe_for(model_name, quantization):
    """The recipe of a zoo model (literature networks) or of a preset (classic ones)."""
    if model_name in QUICKNETS:
        return RECIPES["quicknet"]
    if model_name in RECIPES:
        return RECIPES[model_name]
    if model_name == "XNORNet":
        return RECIPES["xnor"]
    if model_name == "DoReFaNet":
        return RECIPES["dorefa"]
    return RECIPES[quantization]


def schedule_of(recipe, learning_rate, steps):
    """The Keras learning-rate schedule of ``recipe`` over ``steps`` steps."""
    if recipe.schedule == "cosine_warmup":
        warmup = max(1, round(recipe.warmup * steps))
        return keras.optimizers.schedules.CosineDecay(
            0.0,
            max(1, steps - warmup),
            warmup_target=learning_rate,
            warmup_steps=warmup,
        )
    if recipe.schedule == "steps":
        # The optimizer's step counter starts at 0 and Keras keeps values[i]
        # up to and including boundaries[i]: a rate that starts at step s
        # needs the boundary s - 1. A run shorter than the milestones keeps
        # one step per milestone.
        boundaries = [max(0, round(b * steps) - 1) for b in recipe.boundaries]
        for i in range(1, len(boundaries)):
            boundaries[i] = max(boundaries[i], boundaries[i - 1] + 1)
        values = [learning_rate * f for f in recipe.factors]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    if recipe.schedule == "linear":
        return keras.optimizers.schedules.PolynomialDecay(learning_rate, steps, 0.0, power=1.0)
    return keras.optimizers.schedules.ExponentialDecay(
        learning_rate, max(1, steps), recipe.end_factor
    )


def optimizer_of(recipe, steps):
    """The Keras optimizer of ``recipe`` for a run of ``steps`` steps."""
    schedule = schedule_of(recipe, recipe.learning_rate, steps)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(schedule, epsilon=recipe.adam_epsilon)
    if recipe.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9)
    return tfqnn.optimizers.CaseOptimizer(
        (tfqnn.optimizers.is_binary_variable, keras.optimizers.Adam(schedule)),
        default_optimizer=keras.optimizers.SGD(schedule_of(recipe, 0.1, steps), momentum=0.9),
    )


def load_data(train_size, test_size):
    """Fashion-MNIST, channels last, scaled to [-1, 1]; the first ``*_size`` images."""
    if not tfqnn.datasets.fashion_mnist_available():
        raise SystemExit("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist).")
    (x_train, y_train), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    x_train = 2.0 * x_train[:train_size, ..., None].astype(np.float32) - 1.0
    x_test = 2.0 * x_test[:test_size, ..., None].astype(np.float32) - 1.0
    return (x_train, y_train[:train_size]), (x_test, y_test[:test_size])


def build(args):
    """The zoo model that ``args`` names, at 28x28x1 with 10 classes."""
    kwargs = {"input_shape": (28, 28, 1), "classes": 10}
    info = tfqnn.zoo.info(args.model)
    if len(info.quantizations) > 1:
        kwargs["quantization"] = args.quantization
        if args.bits is not None:
            kwargs["bits"] = tuple(args.bits) if len(args.bits) == 2 else args.bits[0]
    if args.width_multiplier != 1.0:
        kwargs["width_multiplier"] = args.width_multiplier
    if args.blocks is not None:
        kwargs["blocks"] = tuple(args.blocks)
    return tfqnn.zoo.get(args.model)(**kwargs, name=args.name), kwargs


def accuracy_of(probabilities, labels):
    """Top-1 accuracy of predicted probabilities."""
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def tflite_latency_ms(data, runs):
    """Median milliseconds of one batch-1 invoke with `tfqnn.lite.Interpreter`, one thread."""
    interpreter = tfqnn.lite.Interpreter(model_content=data, num_threads=1)
    x = np.zeros((1, 28, 28, 1), np.float32)
    interpreter.predict(x)  # allocate and warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def save_without_optimizer(model, path):
    """Writes ``model`` to a .keras file without its optimizer's state (a third of the size)."""
    # The same layers in an uncompiled functional model: nothing but the weights.
    keras.Model(model.inputs, model.outputs, name=model.name).save(path)


def card_markdown(card):
    """The model card's markdown from its json dictionary."""
    s = card["summary"]
    t = card["training"]
    scaled = card["model"]["scaled"]
    args = ", ".join(f"{k}={v!r}" for k, v in card["model"]["arguments"].items())
    paper = (
        f"; there {t['paper_epochs']} ImageNet epochs, batch {t['paper_batch']}"
        if t["paper_epochs"]
        else ""
    )
    cpu = f" ({t['cpu_seconds'] / 60:.1f} CPU-min)" if "cpu_seconds" in t else ""
    ops = ", ".join(f"{n} {c}" for n, c in sorted(card["tflite"]["custom_ops"].items())) or "none"
    return f"""# {card["name"]}

`tfqnn.zoo.{card["model"]["builder"]}({args})`, trained by `examples/train_zoo.py` (tfqnn {card["tfqnn"]}).

| | |
|---|---|
| data | {card["data"]["name"]}: {card["data"]["train_images"]:,} training and {card["data"]["test_images"]:,} test images, 28x28x1, inputs scaled to [-1, 1] |
| quantization | {card["model"]["quantization"]} |
| scaled from the paper | {scaled} |
| recipe | {t["recipe"]} ({t["source"]}{paper}) |
| training | {t["epochs"]} epoch(s), batch {t["batch_size"]}, {t["steps"]:,} steps, {t["seconds"]:.0f} s{cpu} on {t["machine"]} |
| test accuracy | **{100 * card["test_accuracy"]:.2f} %** (Keras) |
| TFLite | `{card["tflite"]["file"]}`, {card["tflite"]["bytes"]:,} bytes; test accuracy {100 * card["tflite"]["test_accuracy"]:.2f} % with `tfqnn.lite.Interpreter`, top-1 agreeing with Keras on {100 * card["tflite"]["agreement"]:.2f} % of the test images; custom ops: {ops} |
| latency | {card["tflite"]["latency_ms"]:.3f} ms per image (batch 1, one thread, median of {card["tflite"]["latency_runs"]} invokes, `tfqnn.lite.Interpreter`) |
| parameters | {s["total_params"]:,} ({", ".join(f"{c:,} at {b} bit" for b, c in s["params"].items())}) |
| size | {s["float32_bytes"] / 1024:.1f} KiB as float32, {s["quantized_bytes"] / 1024:.1f} KiB with quantized weights packed ({s["compression_ratio"]:.1f}x); `.keras` file {card["keras_bytes"]:,} bytes |
| binary MACs | {100 * s["binary_mac_fraction"]:.1f} % of {s["total_macs"]:,} per image |
| trained | {card["date"]} |

Load it with `import tfqnn, keras; keras.models.load_model("{card["name"]}.keras")`: no custom_objects needed.
Run the TFLite file with `tfqnn.lite.Interpreter("{card["name"]}.tflite").predict(x)`, `x` of shape (n, 28, 28, 1) in [-1, 1].
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, choices=tfqnn.zoo.list_models())
    parser.add_argument(
        "--quantization",
        choices=tfqnn.zoo.QUANTIZATIONS,
        default=None,
        help="classic networks: the preset (default float); literature networks: leave out",
    )
    parser.add_argument("--bits", type=int, nargs="+", default=None, help='"dorefa" bits')
    parser.add_argument("--width-multiplier", type=float, default=1.0)
    parser.add_argument("--blocks", type=int, nargs=4, default=None, help="QuickNets")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=60000)
    parser.add_argument("--test-size", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument(
        "--output",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "saved_models"),
    )
    parser.add_argument("--name", default=None, help="file names; default from the model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    info = tfqnn.zoo.info(args.model)
    if len(info.quantizations) > 1 and args.quantization is None:
        args.quantization = "float"
    elif len(info.quantizations) == 1 and args.quantization not in (None, info.quantizations[0]):
        parser.error(f"{args.model} is {info.quantizations[0]} only; leave out --quantization")
    scheme = args.quantization or info.quantizations[0]
    if args.name is None:
        args.name = f"{args.model.lower()}_{scheme}_fashion_mnist"
    for option in ("epochs", "train_size", "test_size", "batch_size", "latency_runs"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_data(args.train_size, args.test_size)
    model, kwargs = build(args)
    info = tfqnn.zoo.info(args.model)
    scheme = args.quantization or info.quantizations[0]
    recipe = recipe_for(args.model, scheme)
    steps = args.epochs * math.ceil(len(x_train) / args.batch_size)
    model.compile(
        optimizer=optimizer_of(recipe, steps),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    summary = tfqnn.summary(model, print_fn=None)
    print(
        f"{args.model} ({scheme}): {summary.total_params:,} parameters, "
        f"{100 * summary.binary_mac_fraction:.1f} % of MACs binary; {recipe.describe()}"
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=args.verbose
    )
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    keras_probabilities = model.predict(x_test, batch_size=500, verbose=0)
    accuracy = accuracy_of(keras_probabilities, y_test)
    print(f"test accuracy: {100 * accuracy:.2f} %")

    os.makedirs(args.output, exist_ok=True)
    base = os.path.join(os.path.normpath(args.output), args.name)
    save_without_optimizer(model, base + ".keras")
    data = tfqnn.export.to_tflite(model, base + ".tflite", verbose=0)
    lite_probabilities = tfqnn.lite.Interpreter(model_content=data).predict(x_test, batch_size=500)
    lite_accuracy = accuracy_of(lite_probabilities, y_test)
    agreement = float(np.mean(lite_probabilities.argmax(1) == keras_probabilities.argmax(1)))
    latency = tflite_latency_ms(data, args.latency_runs)
    print(
        f"TFLite test accuracy: {100 * lite_accuracy:.2f} % (top-1 agrees with Keras on "
        f"{100 * agreement:.2f} %), {len(data):,} bytes, {latency:.3f} ms per image"
    )
    scaled = []
    if args.width_multiplier != 1.0:
        scaled.append(f"widths x{args.width_multiplier:g}")
    if args.blocks is not None:
        scaled.append(f"blocks per section {tuple(args.blocks)}")
    scaled.append("28x28x1 input with the small-input stem, 10 classes")
    card = {
        "name": args.name,
        "tfqnn": tfqnn.__version__,
        "model": {
            "builder": args.model,
            "arguments": kwargs,
            "quantization": scheme
            if scheme != "dorefa" or args.bits is None
            else f"dorefa {args.bits}",
            "scaled": "; ".join(scaled),
        },
        "data": {
            "name": "fashion_mnist",
            "train_images": len(x_train),
            "test_images": len(x_test),
        },
        "training": {
            "recipe": recipe.describe(),
            "source": recipe.source,
            "paper_epochs": recipe.paper_epochs,
            "paper_batch": recipe.paper_batch,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "steps": steps,
            "seed": args.seed,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
        },
        "test_accuracy": accuracy,
        "keras_bytes": os.path.getsize(base + ".keras"),
        "tflite": {
            "file": os.path.basename(base + ".tflite"),
            "bytes": len(data),
            "test_accuracy": lite_accuracy,
            "agreement": agreement,
            "custom_ops": tfqnn.lite.custom_ops_in(data),
            "latency_ms": latency,
            "latency_runs": args.latency_runs,
        },
        "summary": {
            "total_params": summary.total_params,
            "params": {str(b): c for b, c in sorted(summary.params.items())},
            "total_macs": summary.total_macs,
            "binary_mac_fraction": summary.binary_mac_fraction,
            "float32_bytes": summary.float32_bytes,
            "quantized_bytes": summary.quantized_bytes,
            "compression_ratio": summary.compression_ratio,
        },
        "date": datetime.date.today().isoformat(),
    }
    with open(base + ".json", "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    with open(base + ".md", "w") as f:
        f.write(card_markdown(card))
    print(f"Saved {base}.keras, .tflite, .md and .json")
    return card


if __name__ == "__main__":
    main()
