"""TFLite latency of DoReFa W1/Ak layers as binary bases against their float32 export.

DoReFa-Net's hidden layers read k-bit DoReFa activations through 1-bit
DoReFa weights. `tfqnn.export.thermometer` exports such a layer as one
multi-basis binary op of k input bases (the binary digits of the level;
``2^k - 1`` with ``--encoding thermometer``) for ``k <=
thermometer.MAX_BITS``; otherwise the layer stays a float builtin with its
quantized weights as constants (and the activation quantizer as builtins:
``MINIMUM``, ``RELU``, ``MUL``, ``ROUND``). This script times both exports of
the same layer for k = 1 to 5 to say up to which k the bases pay, and with
``--int8`` also the int8 export of the same layer without quantizers
(`zoo_latency.float_architecture`, full-integer post-training quantization
as zoo_latency.py's int8 files: what a user would pick instead).

Workloads, batch 1, random weights, one thread, a BatchNorm before the layer
(the float input the quantizer reads) and after it (as in DoReFa-Net):

* ``conv3``: DoReFa-Net's third convolution at 224x224: 27x27x256 -> 384,
  3x3 "same" (Keras' zero padding);
* ``fc6``: its first dense layer, 9216 -> 4096.

Timing (`_timing.interleaved`): ``--rounds`` rounds, each invoking every file
in turn for about ``--seconds``; each invoke() timed alone by the CPU time
of the calling thread (thread_time_ns: the machine is shared and one thread
runs every op) and the wall clock; medians in ms, and the float file's CPU
time over the bases file's.

Usage: python benchmarks/dorefa_bases_latency.py [--workloads conv3,fc6]
    [--bits 1,2,3,4,5] [--encoding binary|thermometer] [--int8] [--rounds 5]
    [--seconds 0.5]
"""

import argparse
import gc
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

import tfqnn
from tfqnn.export import thermometer

sys.path.insert(0, os.path.dirname(__file__))
import _machine
import _timing
import zoo_latency


def dorefa(bits):
    return dict(
        input_quantizer=tfqnn.quantizers.DoReFa(bits, mode="activations"),
        kernel_quantizer=tfqnn.quantizers.DoReFa(1, mode="weights"),
        use_bias=False,
    )


def conv3(bits):
    return keras.Sequential(
        [
            keras.Input((27, 27, 256)),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantConv2D(384, 3, padding="same", **dorefa(bits)),
            keras.layers.BatchNormalization(scale=False),
        ]
    )


def fc6(bits):
    return keras.Sequential(
        [
            keras.Input((9216,)),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantDense(4096, **dorefa(bits)),
            keras.layers.BatchNormalization(scale=False),
        ]
    )


WORKLOADS = {"conv3": conv3, "fc6": fc6}


def randomize(model, rng):
    for weight in model.weights:
        if weight.name == "moving_variance":
            weight.assign(rng.uniform(0.5, 2.0, weight.shape))
        elif weight.name == "moving_mean":
            weight.assign(rng.uniform(-0.5, 0.5, weight.shape))
        elif weight.name in ("gamma", "beta"):
            weight.assign(rng.uniform(0.2, 0.6, weight.shape))  # inputs spread over [0, 1]
        else:
            weight.assign(rng.normal(0, 0.5, weight.shape))


def export(model, max_bits, encoding):
    """The model's TFLite file with DoReFa inputs of at most `max_bits` bits as bases in
    `encoding`."""
    saved = thermometer.MAX_BITS, thermometer.ENCODING
    thermometer.MAX_BITS, thermometer.ENCODING = max_bits, encoding
    try:
        return tfqnn.export.to_tflite(model, batch_size=1, verbose=0)
    finally:
        thermometer.MAX_BITS, thermometer.ENCODING = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="conv3,fc6")
    parser.add_argument("--bits", default="1,2,3,4,5")
    parser.add_argument(
        "--encoding", default=thermometer.ENCODING, choices=["binary", "thermometer"]
    )
    parser.add_argument("--int8", action="store_true", help="also the float layer's int8 export")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    print(_machine.header({"TensorFlow": tf.__version__, "Keras": keras.__version__}))
    rng = np.random.default_rng(0)
    bits_list = [int(b) for b in args.bits.split(",")]
    for workload in args.workloads.split(","):
        interpreters, notes, bases = {}, {}, {}
        x = None
        for bits in bits_list:
            keras.utils.set_random_seed(0)
            model = WORKLOADS[workload](bits)
            randomize(model, rng)
            x = rng.normal(size=(1, *model.input_shape[1:])).astype(np.float32)
            expected = model.predict(x, verbose=0)
            code = thermometer.dorefa_bases(model.layers[1].input_quantizer, bits, args.encoding)
            bases[bits] = 0 if code is None else code.scales.size
            kinds = ["bases", "float32"] + (["int8"] if args.int8 and bits == bits_list[0] else [])
            for kind in kinds:
                if kind == "int8":  # one file: the float layer does not depend on k
                    float_model = zoo_latency.float_architecture(model)
                    data = zoo_latency.convert(float_model, "int8", samples=8)
                    expected = float_model.predict(x, verbose=0)
                else:
                    data = export(model, bits if kind == "bases" else 0, args.encoding)
                interpreter = tfqnn.lite.Interpreter(model_content=data, num_threads=1)
                interpreter.allocate_tensors()
                actual = interpreter.predict(x)
                error = float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))
                counts = tfqnn.lite.custom_ops_in(data)
                name = (bits, kind)
                interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
                interpreters[name] = interpreter
                notes[name] = (len(data), counts)
                print(
                    f"  {workload} A{bits} {kind}: {len(data):,} bytes, {counts}, "
                    f"max rel. error {error:.1e}"
                )
            del model
            keras.backend.clear_session()  # the conversions' graphs: 14 GB by fc6 A4 otherwise
            gc.collect()
        calls = [interpreter.invoke for interpreter in interpreters.values()]
        samples = _timing.interleaved(
            calls, args.rounds, args.rounds * args.seconds, min_per_round=3, cpu=True
        )
        wall = {n: float(np.median(s.wall_ns)) / 1e6 for n, s in zip(interpreters, samples)}
        cpu = {n: float(np.median(s.cpu_ns)) / 1e6 for n, s in zip(interpreters, samples)}
        print(f"\n{workload} (batch 1, 1 thread), load {_machine.load_average()}")
        int8 = " int8 CPU ms | int8 / bases |" if args.int8 else ""
        print(
            "| activation bits | bases | bases CPU ms | float32 CPU ms | float32 / bases |" + int8
        )
        print("|---|---|---|---|---|" + ("---|---|" if args.int8 else ""))
        for bits in bits_list:
            b, f = cpu[(bits, "bases")], cpu[(bits, "float32")]
            row = f"| {bits} | {bases[bits]} | {b:.3f} | {f:.3f} | {f / b:.2f}x |"
            if args.int8:
                i = cpu[(bits_list[0], "int8")]
                row += f" {i:.3f} | {i / b:.2f}x |"
            print(row)
        print("wall ms:", {f"A{b} {k}": round(v, 3) for (b, k), v in wall.items()})


if __name__ == "__main__":
    main()
