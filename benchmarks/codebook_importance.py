"""Hessian-weighted k-means against plain k-means on Fashion-MNIST (Choi et al. 2017).

Why `importance="hessian"` loses to plain k-means at 2 bits per layer in
benchmarks/codebook.py: the same float models (`codebook.build`, trained
as there), clustered per layer at ``--bits`` with each importance
estimate, then the same fine-tuning (one epoch of Adam 3e-4) with several
seeds:

* ``kmeans``: plain k-means (linear init);
* ``hessian``: tfqnn's estimate, the empirical Fisher over
  ``--hessian-samples`` samples (mean squared per-sample gradient);
* ``ggn``: the exact diagonal of the Gauss-Newton matrix over
  ``--ggn-samples`` samples, sum_c p_c (d log p_c / d w)^2 (per-sample
  Jacobians), which for these ReLU / max-pool networks under softmax
  cross-entropy is the exact diagonal of the Hessian;
* ``lecun``: Becker and LeCun's diagonal backpropagation over
  ``--lecun-samples`` samples (off-diagonal terms dropped at every layer),
  the estimate Choi 2017 uses;
* ``adam``: the square root of the trained Adam optimizer's second moments;
* ``layernorm``: ``hessian`` divided by its mean over each kernel, so that
  with one codebook for all layers each layer's share of the total
  importance is its share of the weights (as in plain k-means) while the
  weighting inside a layer stays Choi's.

With ``--scopes model`` the same comparison with one codebook for all
layers (``scope="model"``, a `SharedCodebook` fine-tuned as one variable):
Choi 2017's setting, where the importance also decides how the shared
centroids are spent between layers of different sensitivity. With
``--sparsity`` the float model is first pruned (as in codebook.py: steps
``--prune-steps``, ``--prune-epochs`` each, ``--prune-scope``), and every
estimate is computed on the pruned model (k = 2^b - 1 plus the zero code).
``--float-seed`` trains another float model (same recipe, another seed).
Each importance's row gives the mean and standard error over the seeds and
the paired difference to plain k-means (same seed, same fine-tuning data
order) with its standard error.
``--dampings 0.3 1`` adds, for each estimate, arms with the damped
importance h + lambda * mean(h) (`cluster`'s ``damping``); every arm also
reports its accuracy on ``--held-out`` training images after the training
split (never trained on: where a damping is chosen) and the Huffman
compression ratio of its clustered kernels (Choi 2017's comparison).
``--bias-correction N`` shifts each clustered layer's bias, in every arm,
by its mean pre-activation error over N training images before
fine-tuning (``--no-output-correction``: not the last layer's).
``--correct hidden`` (or ``both``: each arm with and without) uses
`cluster`'s own ``bias_correction=True`` instead (2,048 training images,
output layers skipped), the same correction on every arm; a last column
then gives each corrected arm minus uncorrected plain k-means.
``--auto-bias accuracy`` adds arms that also choose whether to correct
(``bias_correction="auto"``), compared with uncorrected plain k-means.
``--auto accuracy loss`` adds `cluster(damping="auto")` arms choosing
lambda (plain k-means included) on the ``--held-out`` images by each score
before fine-tuning; their held-out column is then not held out from the
choice. An arm whose choice equals an arm already run reuses its rows.

Then, without fine-tuning (unpruned models only), the diagonal model's
predicted loss rise 1/2 sum_i h_i (w_i - q_i)^2 against the real rise of
the training loss (first 4,096 images), for plain and Hessian-weighted
k-means and for the exact minimiser of each objective
(``method="optimal"``), per layer or over all layers together.

Usage: nice -n 10 python benchmarks/codebook_importance.py [--models mlp cnn]
       [--bits 2 3] [--seeds 0 1 2] [--scopes layer model]
       [--sparsity 0.92 --prune-scope model --prune-epochs 2] [--float-seed 1]
       [--dampings 0.3 1 3 10] [--bias-correction 2048 [--no-output-correction]]
       [--auto accuracy loss] [--auto-bias accuracy] [--correct none|hidden|both]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
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
import codebook as bench  # noqa: E402

importance_module = sys.modules["tfqnn.codebook.importance"]
wrappers = sys.modules["tfqnn.codebook.wrappers"]
rebuild = sys.modules["tfqnn.codebook._rebuild"]
ESTIMATES = ("kmeans", "hessian", "ggn", "lecun", "adam", "layernorm")


def gauss_newton(model: keras.Model, x: np.ndarray, variables: list[Any]) -> list[np.ndarray]:
    """mean_s sum_c p_c (d log p_c(x_s) / d w)^2 for each variable (per-sample Jacobians)."""

    @tf.function
    def step(xb: Any) -> list[Any]:
        with tf.GradientTape() as tape:
            p = tf.clip_by_value(model(xb, training=False), 1e-12, 1.0)
            # rows sqrt(p_c) * log p_c: their squared gradients sum to sum_c p_c (d log p_c)^2
            rows = tf.reshape(tf.stop_gradient(tf.sqrt(p)) * tf.math.log(p), [-1])
        jacobians = tape.jacobian(rows, variables, experimental_use_pfor=True)
        return [tf.reduce_sum(tf.square(j), axis=0) for j in jacobians]

    totals = [np.zeros(tuple(v.shape)) for v in variables]
    for i in range(0, x.shape[0], 16):
        for total, g in zip(totals, step(x[i : i + 16])):
            np.add(total, np.asarray(g), out=total)
    return [t / x.shape[0] for t in totals]


def lecun(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    """Becker and LeCun's (1989) diagonal backpropagation, the estimate Choi 2017 uses.

    Second derivatives of the loss with respect to the pre-activations are
    propagated back dropping every off-diagonal term: s_in = (W*W)^T s_out
    (through ReLU and max pooling times their 0/1 derivative, squared),
    starting from the softmax cross-entropy's diagonal p (1 - p) at the
    logits; a weight's entry is s_out x^2, averaged over samples. For the
    Dense / Conv2D / MaxPooling2D / Flatten / Reshape models of codebook.py
    (pruned or not); the last layer's estimate is the exact diagonal.
    """
    layers = [rebuild.unwrapped(layer) for layer in model.layers]
    wrapped = list(model.layers)

    def kernel_of(i: int) -> Any:
        outer = wrapped[i]
        if isinstance(outer, wrappers.Pruned):
            return tf.convert_to_tensor(outer.decoded_kernel("kernel"))
        return tf.convert_to_tensor(layers[i].kernel)

    def linear(layer: Any, inputs: Any, kernel: Any) -> Any:
        if isinstance(layer, keras.layers.Conv2D):
            padding = layer.padding.upper()
            return tf.nn.conv2d(inputs, kernel, layer.strides, padding)
        return tf.matmul(inputs, kernel)

    def vjp(function: Any, at: Any, cotangent: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(at)
            out = function(at)
        return tape.gradient(out, at, output_gradients=cotangent)

    @tf.function(autograph=False)
    def step(xb: Any) -> list[Any]:
        inputs, h = [], tf.convert_to_tensor(xb)
        for outer in wrapped:
            inputs.append(h)
            h = outer(h, training=False)
        s, out = None, []
        for i in reversed(range(len(layers))):
            layer, inp = layers[i], inputs[i]
            if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
                kernel = kernel_of(i)
                pre = linear(layer, inp, kernel) + layer.bias
                activation = layer.get_config()["activation"]
                if activation == "softmax":
                    p = tf.nn.softmax(pre)
                    s = p * (1 - p)
                elif activation == "relu":
                    s = s * tf.cast(pre > 0, s.dtype)
                elif activation != "linear":
                    raise ValueError(f"lecun: activation {activation!r} not supported")
                out.append(vjp(lambda v, lay=layer, a=inp: linear(lay, tf.square(a), v), kernel, s))
                s = vjp(lambda u, lay=layer, k=kernel: linear(lay, u, tf.square(k)), inp, s)
            elif isinstance(layer, keras.layers.MaxPooling2D):
                s = vjp(layer, inp, s)
            elif isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape)):
                s = tf.reshape(s, tf.shape(inp))
            else:
                raise TypeError(f"lecun: layer {type(layer).__name__} not supported")
        return out[::-1]

    totals: list[np.ndarray] | None = None
    for i in range(0, x.shape[0], 256):
        parts = [np.asarray(g, dtype=np.float64) for g in step(x[i : i + 256])]
        totals = parts if totals is None else [t + g for t, g in zip(totals, parts)]
    assert totals is not None
    return [t / x.shape[0] for t in totals]


def kernels(model: keras.Model) -> list[Any]:
    """The kernel variables in `codebook.cluster`'s order (a `Pruned` layer's latent ones)."""
    return [
        wrappers.kernel_variable(layer, name)
        for layer in model.layers
        for name in wrappers.kernel_names(rebuild.unwrapped(layer))
    ]


def clustered(
    model: keras.Model,
    clusters: int,
    estimate: str,
    h: list[Any],
    seed: int,
    scope: str,
    damping: float | str = 0.0,
    bias: bool | str = False,
    correct: Any = None,
    held_out: Any = None,
    metric: str = "accuracy",
) -> Any:
    """`codebook.cluster` with ``clusters`` and ``estimate``'s importance ``h`` (None: plain).

    ``bias``: `cluster`'s ``bias_correction`` (on the images ``correct``);
    ``"auto"`` choices are made on ``held_out`` by ``metric``.
    """
    common: dict[str, Any] = {"verbose": 0, "seed": seed, "scope": scope}
    if bias:
        common.update(bias_correction=bias, data=correct)
    if estimate == "kmeans":
        return codebook.cluster(model, clusters, **common)
    if damping == "auto" or bias == "auto":
        common.update(validation_data=held_out, damping_metric=metric)
    common.setdefault("data", (None, None))
    original = importance_module.hessian
    importance_module.hessian = lambda *_: h  # the estimate computed once
    try:
        return codebook.cluster(model, clusters, importance="hessian", damping=damping, **common)
    finally:
        importance_module.hessian = original


def bias_corrected(
    model: keras.Model, clustered_model: keras.Model, x: np.ndarray, output: bool = True
) -> None:
    """Adds to each clustered layer's bias the shift of its mean pre-activation, in place.

    Layer by layer (Sequential models), on the images ``x``: the bias
    gets mean(z_float) - mean(z_clustered) per output unit (the mean over
    samples and positions), z the pre-activation computed from the layer's
    input in each model (the clustered one with the layers before it already
    corrected). With equal inputs that is (W - Q)^T E[x] for a Dense layer:
    the mean quantization error's effect on the mean input, removed.
    ``output=False`` leaves the last clustered layer's bias (the logits) alone.
    """

    def pre_activation(layer: Any, inputs: Any) -> np.ndarray:
        inner = rebuild.unwrapped(layer)
        activation = inner.activation
        inner.activation = keras.activations.linear
        try:
            return np.asarray(layer(inputs, training=False))
        finally:
            inner.activation = activation

    last = [layer for layer in clustered_model.layers if isinstance(layer, wrappers.Clustered)][-1]
    h_float = h_clustered = tf.convert_to_tensor(x)
    for float_layer, layer in zip(model.layers, clustered_model.layers):
        if isinstance(layer, wrappers.Clustered) and (output or layer is not last):
            inner = rebuild.unwrapped(layer)
            shift = pre_activation(float_layer, h_float) - pre_activation(layer, h_clustered)
            axes = tuple(range(shift.ndim - 1))
            inner.bias.assign(np.asarray(inner.bias) + np.mean(shift, axis=axes))
        h_float = float_layer(h_float, training=False)
        h_clustered = layer(h_clustered, training=False)


def run_arms(
    args: Any,
    model: keras.Model,
    data: Any,
    held_out: Any,
    estimates: dict[str, Any],
    scope: str,
    bits: int,
    clusters: int,
    block: bool | str,
    arms: list[tuple[str, Any, str]],
    done: dict[tuple[str, float, bool], tuple[Any, ...]],
    correct: Any,
) -> None:
    """Clusters, fine-tunes and prints each arm of one block of bias correction.

    ``block``: `cluster`'s ``bias_correction`` for every arm (False, True or
    ``"auto"``). ``done`` maps (estimate, lambda, corrected) to the rows of
    the arms already run; an automatic arm whose choice is one of them
    reuses its rows (the same clustered model; the seed is reset before
    fine-tuning, so the same batches).
    """
    x = data[0][0]
    for estimate, damping, metric in arms:
        h = estimates.get(estimate)
        before, after, held, ratio = 0.0, [], [], 0.0
        chosen: tuple[float, bool] | None = None
        for seed in args.seeds:
            keras.utils.set_random_seed(seed)
            c = clustered(
                model, clusters, estimate, h, seed, scope, damping, block, correct, held_out, metric
            )
            if damping == "auto" or block == "auto":
                chosen = (float(c.chosen_damping), bool(c.chosen_bias_correction))
                plain = np.isinf(chosen[0])
                key = ("kmeans", 0.0, chosen[1]) if plain else (estimate, chosen[0], chosen[1])
                if key in done:  # the same clustered model as that arm
                    before, after, held, ratio = done[key]
                    break
            if args.bias_correction:
                bias_corrected(
                    model, c, x[: args.bias_correction], output=not args.no_output_correction
                )
            before = bench.accuracy(c, data)
            ratio = kernel_huffman_ratio(c)  # assignments stay fixed in fit
            keras.utils.set_random_seed(seed)  # the same batches, however the model was built
            bench.fit(c, data, 1, 3e-4, 128)
            after.append(100 * bench.accuracy(c, data))
            held.append(100 * held_out_accuracy(c, held_out))
        if chosen is not None:
            done.setdefault((estimate, chosen[0], chosen[1]), (before, after, held, ratio))
        elif block != "auto":
            done[(estimate, float(damping), bool(block))] = (before, after, held, ratio)
        reference = done.get(("kmeans", 0.0, block is True))
        uncorrected = done.get(("kmeans", 0.0, False))
        paired, paired_held, against = "-", "-", "-"
        if reference is not None and estimate != "kmeans":
            paired = mean_se([a - b for a, b in zip(after, reference[1])], signed=True)
            paired_held = mean_se([a - b for a, b in zip(held, reference[2])], True)
        if block is not False and uncorrected is not None:
            against = mean_se([a - b for a, b in zip(after, uncorrected[1])], True)
        label = estimate
        if damping and damping != "auto":
            label = f"{estimate}@{damping:g}"
        if chosen is not None:
            corrected = ", corrected" if chosen[1] and block == "auto" else ""
            label = f"{estimate}@auto-{metric} (chose {chosen[0]:g}{corrected})"
        label += {False: "", True: " +bias", "auto": " +auto-bias"}[block]
        print(
            f"| {scope} | {bits} | {label} | {100 * before:.2f} | "
            f"{', '.join(f'{a:.2f}' for a in after)} | {mean_se(after)} | "
            f"{paired} | {mean_se(held)} | {paired_held} | {ratio:.2f} | {against} |",
            flush=True,
        )


def kernel_huffman_ratio(model: keras.Model) -> float:
    """Choi 2017's eq. 1 over the clustered kernels: 32 n / (Huffman-coded indices + codebooks)."""
    kernels = codebook.report(model, print_fn=None).kernels
    return 32 * sum(k.weights for k in kernels) / sum(k.huffman_bits for k in kernels)


def held_out_accuracy(model: keras.Model, held_out: Any) -> float:
    """Accuracy on the held-out training images (where a damping is chosen, not the test set)."""
    x, y = held_out
    return float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), -1) == y))


def diagnosis(
    model: keras.Model, data: Any, bits: int, h: list[np.ndarray], scope: str
) -> list[str]:
    """Predicted (diagonal) against real loss rise, no fine-tuning (unpruned models)."""
    (x, y), _ = data
    loss = keras.losses.SparseCategoricalCrossentropy()

    def train_loss(m: keras.Model) -> float:
        return float(loss(y[:4096], m.predict(x[:4096], batch_size=1024, verbose=0)))

    base = train_loss(model)
    lines = []
    for method in ("kmeans", "optimal"):
        function = codebook.kmeans if method == "kmeans" else codebook.optimal
        for weighted in (False, True):
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            variables = kernels(copy)
            values = [np.asarray(v) for v in variables]
            if scope == "model":  # one codebook over all kernels together
                joint = function(
                    np.concatenate([w.ravel() for w in values]),
                    2**bits,
                    importance=np.concatenate([hv.ravel() for hv in h]) if weighted else None,
                ).decode()
                ends = np.cumsum([w.size for w in values])
                quantized = [q.reshape(w.shape) for q, w in zip(np.split(joint, ends[:-1]), values)]
            else:
                quantized = [
                    function(w, 2**bits, importance=hv if weighted else None)
                    .decode()
                    .reshape(w.shape)
                    for w, hv in zip(values, h)
                ]
            predicted = 0.0
            for variable, w, q, hv in zip(variables, values, quantized, h):
                predicted += 0.5 * float(np.sum(hv * (w - q) ** 2))
                variable.assign(q)
            lines.append(
                f"| {scope} | {bits} | {method} | {'yes' if weighted else 'no'} | "
                f"{predicted:.4f} | {train_loss(copy) - base:.4f} | "
                f"{100 * bench.accuracy(copy, data):.2f} |"
            )
    return lines


def mean_se(values: list[float], signed: bool = False) -> str:
    """``mean +- standard error`` over seeds (one value: the mean alone)."""
    mean = f"{np.mean(values):{'+' if signed else ''}.2f}"
    if len(values) < 2:
        return mean
    return f"{mean} +- {np.std(values, ddof=1) / np.sqrt(len(values)):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    parser.add_argument("--bits", nargs="+", type=int, default=[2, 3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--estimates", nargs="+", choices=ESTIMATES, default=list(ESTIMATES))
    parser.add_argument("--scopes", nargs="+", choices=["layer", "model"], default=["layer"])
    parser.add_argument("--train-size", type=int, default=12_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--float-seed", type=int, default=0, help="seed of the float training")
    parser.add_argument("--hessian-samples", type=int, default=256)
    parser.add_argument("--ggn-samples", type=int, default=2048)
    parser.add_argument("--lecun-samples", type=int, default=12_000)
    parser.add_argument("--sparsity", type=float, default=0.0, help="0: no pruning")
    parser.add_argument("--prune-steps", nargs="+", type=float, default=[0.5, 0.7, 0.8, 0.9])
    parser.add_argument("--prune-epochs", type=int, default=1)
    parser.add_argument("--prune-scope", choices=["layer", "model"], default="layer")
    parser.add_argument("--no-diagnosis", action="store_true")
    parser.add_argument(
        "--dampings",
        nargs="+",
        type=float,
        default=[],
        help="extra arms: each estimate damped, h + lambda * mean(h), for each lambda",
    )
    parser.add_argument(
        "--bias-correction",
        type=int,
        default=0,
        help="N > 0: every arm's biases corrected on N training images before fine-tuning",
    )
    parser.add_argument(
        "--no-output-correction",
        action="store_true",
        help="with --bias-correction: the last layer's bias (the logits) is not corrected",
    )
    parser.add_argument(
        "--auto",
        nargs="*",
        choices=["accuracy", "loss"],
        default=[],
        help="extra arms: cluster(damping='auto') choosing on the held-out images by each metric",
    )
    parser.add_argument(
        "--auto-bias",
        nargs="*",
        choices=["accuracy", "loss"],
        default=[],
        help="extra arms: cluster(damping='auto', bias_correction='auto') by each metric",
    )
    parser.add_argument(
        "--correct",
        choices=["none", "hidden", "both"],
        default="none",
        help="cluster(bias_correction=True) on 2,048 training images: on no arm, every arm, "
        "or both versions of every arm",
    )
    parser.add_argument(
        "--held-out",
        type=int,
        default=6000,
        help="training images after --train-size, never trained on, scored for choosing lambda",
    )
    args = parser.parse_args()
    args.learning_rate, args.batch = 1e-3, 128  # bench.pruned_model's recipe
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {_machine.memory_gib()} GiB; "
        f"load {_machine.load_average()}; Python {platform.python_version()}, numpy "
        f"{np.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
    print(f"Arguments: {vars(args)}")
    (x, y), test = tfqnn.datasets.load_fashion_mnist()
    data = ((x[: args.train_size], y[: args.train_size]), test)
    end = args.train_size + args.held_out
    held_out = (x[args.train_size : end], y[args.train_size : end])
    pruned = args.sparsity > 0
    for name in args.models:
        keras.utils.set_random_seed(args.float_seed)
        model = bench.build(name)
        bench.fit(model, data, args.epochs, 1e-3, 128)
        print(f"\n{name}: float {100 * bench.accuracy(model, data):.2f} %", flush=True)
        if pruned:
            model = bench.pruned_model(model, data, args)
            print(
                f"{name}: pruned to {args.sparsity} ({args.prune_scope}): "
                f"{100 * bench.accuracy(model, data):.2f} %",
                flush=True,
            )
        variables = kernels(model)
        n = args.hessian_samples
        estimates: dict[str, Any] = {
            "hessian": importance_module.hessian(model, (x[:n], y[:n]), variables)
        }
        if "ggn" in args.estimates:
            estimates["ggn"] = gauss_newton(model, x[: args.ggn_samples], variables)
        if "lecun" in args.estimates:
            estimates["lecun"] = lecun(model, x[: args.lecun_samples])
        if "adam" in args.estimates:
            estimates["adam"] = importance_module.adam(model.optimizer, variables)
        if "layernorm" in args.estimates:  # each kernel's mean importance 1
            estimates["layernorm"] = [hv / np.mean(hv) for hv in estimates["hessian"]]
        print("| kernel | weights | mean |w| | " + " | ".join(f"mean h ({e})" for e in estimates))
        print("|---|---|---|" + "---|" * len(estimates))
        decoded = [
            rebuild.plain_values(layer)[name]
            for layer in model.layers
            for name in wrappers.kernel_names(rebuild.unwrapped(layer))
        ]
        for variable, w, *h in zip(variables, decoded, *estimates.values()):
            kept = w != 0
            means = " | ".join(f"{np.mean(hv[kept]):.3g}" for hv in h)
            print(
                f"| {variable.path} | {np.sum(kept)} | {np.mean(np.abs(w[kept])):.3g} | {means} |"
            )
        print(
            "\n| scope | bits | importance | acc % before ft | acc % after ft, per seed | "
            "mean +- se | minus kmeans, paired | held-out acc % | held-out minus kmeans | "
            "Huffman ratio of the kernels | minus uncorrected kmeans |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        arms: list[tuple[str, Any, str]] = [(e, 0.0, "accuracy") for e in args.estimates] + [
            (e, d, "accuracy") for d in args.dampings for e in args.estimates if e != "kmeans"
        ]
        arms += [("hessian", "auto", m) for m in args.auto]
        blocks = {"none": [False], "hidden": [True], "both": [False, True]}[args.correct]
        if args.auto_bias:
            blocks.append("auto")
        correct_data = (x[:2048], y[:2048])
        for scope in args.scopes:
            for bits in args.bits:
                clusters = 2**bits - (1 if pruned else 0)
                done: dict[tuple[str, float, bool], tuple[Any, ...]] = {}
                for block in blocks:
                    block_arms = arms
                    if block == "auto":
                        block_arms = [("hessian", "auto", m) for m in args.auto_bias]
                    run_arms(
                        args,
                        model,
                        data,
                        held_out,
                        estimates,
                        scope,
                        bits,
                        clusters,
                        block,
                        block_arms,
                        done,
                        correct_data,
                    )

        if pruned or args.no_diagnosis:
            continue
        print("\n| scope | bits | method | Hessian-weighted | predicted rise | real rise | acc % |")
        print("|---|---|---|---|---|---|---|")
        for scope in args.scopes:
            for bits in args.bits:
                for line in diagnosis(model, data, bits, estimates["hessian"], scope):
                    print(line, flush=True)
    print(f"\nLoad average at the end: {_machine.load_average()}")


if __name__ == "__main__":
    main()
