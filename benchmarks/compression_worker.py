"""One worker of `benchmarks/compression.py`: Keras ``fit`` under MWMS, compressed or not.

Started by the driver (one process per worker, each in its own network
namespace, ``TF_CONFIG`` naming the ``10.9.0.X`` addresses). TensorFlow's
intra- and inter-op thread pools are set before anything else uses
TensorFlow (``--threads``, default 1 each), as tests/distribute/multiworker.py
does.

The worker trains one workload (``mlp``: 784-2048-2048-2048-10, 10.0M
parameters; ``cnn``: conv16-conv32-fc128-fc10, 0.21M parameters; both on
Fashion-MNIST, Adam or SGD with momentum (``--optimizer``), global batch
``--batch-size`` split over the workers) with
``model.fit(steps_per_epoch=...)`` in one epoch, and a callback that

* in the accuracy phase (the first ``--accuracy-steps`` steps, on an
  unshaped link), every ``--eval-every`` steps counts the correct
  predictions of this worker's share of the Fashion-MNIST test set
  (``x_test[index::P]``, by a copy of the model outside the strategy, so
  that no collective is involved; the driver adds the shares), then waits at
  a barrier where the driver may end the accuracy phase (its time budget);
* then, for each link the driver shapes in turn: a barrier (the driver
  changes the ``tc`` shaping), ``--warmup`` steps, a barrier (the driver
  reads the interfaces' byte counters), ``--steps`` timed steps, a barrier
  (the driver reads the counters again).

A barrier is a pair of files in ``--control``: the worker writes
``ready.K.INDEX`` and waits for ``go.K`` (whose text is ``stop`` or ``go``).
After the last barrier the worker stops ``fit`` (``stop_training``) and
prints its result. Each step's wall time is taken
from ``on_train_batch_begin`` to ``on_train_batch_end`` (after forcing the
step's loss to the host), so that barriers and evaluations are not counted.

Prints one ``RESULT {json}`` line. ``--codec`` instead times each
compressor's ``compress`` and ``decompress`` (in `tf.function`) on random
gradients shaped like the workload's kernels, on one process: the encode
and decode compute that a step adds, without any network.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

RESULT_PREFIX = "RESULT "
WORKLOADS = ("mlp", "cnn")


def split_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"alias:key=value:..."`` -> (alias, {key: value}); values are JSON
    (``true``, ``4``, ``0.5``), e.g. ``onebit_ef:two_phase=true``."""
    alias, *pairs = spec.split(":")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"Invalid compressor option {pair!r} in {spec!r}: expected key=value.")
        options[key] = json.loads(value)
    return alias, options


def make_compressor(spec: str) -> Any:
    """The compressor a spec names: the alias's defaults with the options replaced."""
    from tfqnn.distribute import compressors

    alias, options = split_spec(spec)
    compressor = compressors.get(alias)
    return type(compressor).from_config({**compressor.get_config(), **options})


def eval_steps(accuracy_steps: int, eval_every: int) -> list[int]:
    """The steps after which the accuracy phase evaluates (each followed by a barrier)."""
    if not accuracy_steps:
        return []
    return sorted({*range(eval_every, accuracy_steps + 1, eval_every), accuracy_steps})


def schedule(
    accuracy_steps: int, num_links: int, warmup: int, steps: int
) -> tuple[list[tuple[int, str, int]], int]:
    """Barriers ``(after_step, kind, link)`` in order, and the total steps.

    ``after_step`` 0 is before the first step. ``kind`` is ``"link"`` (shape
    the links for ``link``), ``"start"`` or ``"end"`` (of its timed steps).
    """
    events: list[tuple[int, str, int]] = []
    step = accuracy_steps
    for link in range(num_links):
        events.append((step, "link", link))
        step += warmup
        events.append((step, "start", link))
        step += steps
        events.append((step, "end", link))
    return events, step


def build_model(workload: str, keras: Any) -> Any:
    layers = keras.layers
    if workload == "mlp":
        return keras.Sequential(
            [
                keras.Input((784,)),
                layers.Dense(2048, activation="relu"),
                layers.Dense(2048, activation="relu"),
                layers.Dense(2048, activation="relu"),
                layers.Dense(10),
            ]
        )
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10),
        ]
    )


def kernel_shapes(workload: str) -> list[tuple[int, ...]]:
    """Shapes of the workload's trainable variables, as built by `build_model`."""
    if workload == "mlp":
        return [
            (784, 2048),
            (2048,),
            (2048, 2048),
            (2048,),
            (2048, 2048),
            (2048,),
            (2048, 10),
            (10,),
        ]
    return [(3, 3, 1, 16), (16,), (3, 3, 16, 32), (32,), (1568, 128), (128,), (128, 10), (10,)]


def load_data(workload: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    import tfqnn.datasets

    (x_train, y_train), (x_test, y_test) = tfqnn.datasets.load_fashion_mnist()
    shape = (-1, 784) if workload == "mlp" else (-1, 28, 28, 1)
    return (x_train.reshape(shape), y_train), (x_test.reshape(shape), y_test)


def set_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _num_threads() -> int | None:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


class Barrier:
    """File barrier with the driver: ``ready.K.INDEX`` then wait for ``go.K``;
    returns the go file's text (``"stop"`` ends the accuracy phase)."""

    def __init__(self, directory: str, index: int, timeout: float = 1800.0) -> None:
        self.directory, self.index, self.timeout = directory, index, timeout
        self.count = 0

    def wait(self) -> str:
        k = self.count
        self.count += 1
        with open(os.path.join(self.directory, f"ready.{k}.{self.index}"), "w"):
            pass
        go = os.path.join(self.directory, f"go.{k}")
        deadline = time.monotonic() + self.timeout
        while not os.path.exists(go):
            if time.monotonic() > deadline:
                raise TimeoutError(f"barrier {k}: no {go} after {self.timeout} s")
            time.sleep(0.005)
        with open(go) as f:
            return f.read().strip()


def train(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    import keras
    import numpy as np
    import tensorflow as tf

    import tfqnn.distribute
    from tfqnn.distribute import _hook

    imported = time.time()
    start = time.perf_counter()
    config = json.loads(os.environ["TF_CONFIG"])
    index = config["task"]["index"]
    num_workers = len(config["cluster"]["worker"])
    keras.utils.set_random_seed(args.seed)
    # No collective timeout by default: with timeout_seconds set, TensorFlow
    # 2.21 keeps one more thread per collective launched (measured: thousands
    # of threads per worker after a minute); the driver stops a hung cluster.
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=args.collective_timeout or None
    )
    if args.compressor == "none":
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    else:
        strategy = tfqnn.distribute.GradientCompressionStrategy(
            make_compressor(args.compressor), communication_options=options
        )

    (x_train, y_train), (x_test, y_test) = load_data(args.workload)
    x_eval, y_eval = x_test[index::num_workers], y_test[index::num_workers]
    train_data = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    train_data = train_data.shuffle(len(x_train), seed=args.seed).repeat()
    train_data = train_data.batch(args.batch_size, drop_remainder=True).prefetch(2)
    data_options = tf.data.Options()
    data_options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    train_data = train_data.with_options(data_options)

    with strategy.scope():
        model = build_model(args.workload, keras)
        learning_rate = args.learning_rate
        if args.schedule == "cosine" and args.accuracy_steps:
            learning_rate = keras.optimizers.schedules.CosineDecay(
                learning_rate, args.accuracy_steps
            )
        optimizer = (
            keras.optimizers.Adam(learning_rate)
            if args.optimizer == "adam"
            else keras.optimizers.SGD(learning_rate, momentum=0.9)
        )
        model.compile(
            optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
    twin = build_model(args.workload, keras)  # outside the strategy: local evaluation

    evaluations_at = eval_steps(args.accuracy_steps, args.eval_every)
    _, max_steps = schedule(args.accuracy_steps, args.links, args.warmup, args.steps)
    barrier = Barrier(args.control, index)

    class Recorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.durations: list[float] = []  # wall seconds of each step, in order
            self.evaluations: list[list[int]] = []  # [step, correct, count]
            self.threads: list[list[int | None]] = []  # [step, threads of this process]
            self.began = 0.0
            self.eval_s = 0.0
            # The driver may end the accuracy phase early (--accuracy-budget):
            # the link phases follow the step where it did.
            self.accuracy_end = args.accuracy_steps
            self.events = schedule(self.accuracy_end, args.links, args.warmup, args.steps)[0]

        def run_events(self, step: int) -> None:
            if step <= self.accuracy_end and step in evaluations_at:
                self.evaluate(step)
                if barrier.wait() == "stop" and step < self.accuracy_end:
                    self.accuracy_end = step
                    self.events = schedule(step, args.links, args.warmup, args.steps)[0]
            for at, _, _ in self.events:
                if at == step:
                    barrier.wait()
            last = self.events[-1][0] if self.events else self.accuracy_end
            if step == last:
                self.model.stop_training = True

        def evaluate(self, step: int) -> None:
            began = time.perf_counter()
            twin.set_weights(self.model.get_weights())
            logits = twin.predict(x_eval, batch_size=500, verbose=0)
            self.evaluations.append(
                [step, int(np.sum(np.argmax(logits, -1) == y_eval)), len(y_eval)]
            )
            self.threads.append([step, _num_threads()])
            self.eval_s += time.perf_counter() - began

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.run_events(0)

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            self.began = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if logs and "loss" in logs:
                np.asarray(logs["loss"])  # the step has run
            self.durations.append(time.perf_counter() - self.began)
            self.run_events(batch + 1)

    recorder = Recorder()
    built = time.perf_counter()
    fit_started = time.time()
    model.fit(train_data, epochs=1, steps_per_epoch=max_steps, verbose=0, callbacks=[recorder])
    finished = time.perf_counter()

    phases = []
    for link in range(args.links):
        at = {kind: step for step, kind, lk in recorder.events if lk == link}
        phases.append(
            {
                "warmup_s": recorder.durations[at["link"] : at["start"]],
                "timed_s": recorder.durations[at["start"] : at["end"]],
            }
        )
    compressed: list[bool] = []
    exchange = _hook.attached(model.optimizer)
    if exchange is not None:
        compressed = list(exchange.state.compressed)
    result = {
        "index": index,
        "num_workers": num_workers,
        "replicas": strategy.num_replicas_in_sync,
        "num_params": int(sum(int(np.prod(v.shape)) for v in model.trainable_variables)),
        "shapes": [list(v.shape) for v in model.trainable_variables],
        "compressed": compressed,
        "iterations": int(model.optimizer.iterations.numpy()),
        "accuracy_steps_run": recorder.accuracy_end,
        "accuracy_step_s": recorder.durations[: recorder.accuracy_end],
        "evaluations": recorder.evaluations,
        "threads": recorder.threads + [[len(recorder.durations), _num_threads()]],
        "phases": phases,
        "imported_s": round(imported - args.launched_at, 2) if args.launched_at else None,
        "fit_started_s": round(fit_started - args.launched_at, 2) if args.launched_at else None,
        "setup_s": round(built - start, 2),
        "first_step_s": round(recorder.durations[0], 2) if recorder.durations else None,
        "eval_s": round(recorder.eval_s, 2),
        "fit_s": round(finished - built, 2),
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def _codec_functions(
    tf: Any, compressor: Any, grads: Sequence[Any], num_workers: int
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """`tf.function`s: gradients -> payload parts, and parts -> gradients."""
    seed = tf.constant([1, 2], tf.int64)
    payloads = [compressor.compress(g, num_workers=num_workers, seed=seed) for g in grads]

    @tf.function
    def encode(grads: Sequence[Any]) -> list[tuple[Any, Any, Any]]:
        encoded = [compressor.compress(g, num_workers=num_workers, seed=seed) for g in grads]
        return [(p.words, p.scales, p.values) for p in encoded]

    @tf.function
    def decode(parts: Sequence[tuple[Any, Any, Any]]) -> list[Any]:
        out = []
        for (words, scales, values), p in zip(parts, payloads, strict=True):
            received = dataclasses.replace(p, words=words, scales=scales, values=values)
            out.append(compressor.decompress(received))
        return out

    return encode, decode


def codec(args: argparse.Namespace) -> None:
    """Median seconds of compress and decompress of each compressor on the
    workload's kernels (one `tf.function` each, all tensors together)."""
    set_threads(args.threads)
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shapes = [s for s in kernel_shapes(args.workload) if len(s) > 1]
    results = {}
    for name in args.compressors.split(","):
        compressor = make_compressor(name)
        chosen = [s for s in shapes if compressor.compresses(s, tf.float32, 1024)]
        grads = [tf.constant(rng.standard_normal(s, dtype=np.float32) * 1e-3) for s in chosen]

        encode, decode = _codec_functions(tf, compressor, grads, args.num_workers)
        parts = encode(grads)
        times: dict[str, list[float]] = {"encode": [], "decode": []}
        for _ in range(args.repeats + 1):  # the first traces
            t = time.perf_counter()
            [x.numpy() for item in encode(grads) for x in item if x is not None]
            times["encode"].append(time.perf_counter() - t)
            t = time.perf_counter()
            [x.numpy() for x in decode(parts)]
            times["decode"].append(time.perf_counter() - t)
        results[name] = {
            "elements": int(sum(np.prod(s) for s in chosen)),
            "encode_s": float(np.median(times["encode"][1:])),
            "decode_s": float(np.median(times["decode"][1:])),
        }
    print(RESULT_PREFIX + json.dumps(results), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=WORKLOADS, default="mlp")
    parser.add_argument(
        "--compressor",
        default="none",
        help="an alias of tfqnn.distribute.compressors, or none (plain MWMS)",
    )
    parser.add_argument("--control", help="the barrier directory")
    parser.add_argument("--links", type=int, default=1, help="links the driver shapes in turn")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--accuracy-steps", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument(
        "--optimizer",
        choices=["adam", "sgd"],
        default="adam",
        help="Adam, or SGD with momentum 0.9",
    )
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument(
        "--schedule",
        choices=["constant", "cosine"],
        default="constant",
        help="cosine: decay to 0 over --accuracy-steps",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--launched-at", type=float, help="the driver's time.time() at launch")
    parser.add_argument(
        "--collective-timeout",
        type=float,
        default=0.0,
        help="CommunicationOptions(timeout_seconds=...), 0: none",
    )
    parser.add_argument("--codec", action="store_true", help="time compress/decompress only")
    parser.add_argument("--compressors", default="", help="with --codec: comma-separated")
    parser.add_argument("--num-workers", type=int, default=4, help="with --codec")
    parser.add_argument("--repeats", type=int, default=5, help="with --codec")
    args = parser.parse_args(argv)
    if args.codec:
        codec(args)
    else:
        if not args.control:
            parser.error("--control is required")
        train(args)


if __name__ == "__main__":
    main()
