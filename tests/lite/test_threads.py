"""The kernels' thread pool through the delegate: a network's output at 2 and 3 threads.

A binary network exported by tfqnn (a float stem, a fused-shortcut binary
convolution with pad_values 0, a strided one with pad_values 1, a binary
dense layer) on an input whose rows split unevenly over the threads and into
several chunks per thread. With the kernels' per-thread minimum at 0 every
op really splits; the outputs must equal the one-thread run bit for bit,
with workers that spin between ops (the default) and workers that sleep as
soon as they are idle (every op wakes them), from one interpreter and from
several interpreters in turn. The one-thread run is checked against Keras
(loosely: float rounding) so that the comparison is of a correct result;
the kernels themselves are checked against the numpy reference in
test_core.py (including splits of 8 and 9 chunks).
"""

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn.lite import Interpreter, _core

pytest.importorskip("ai_edge_litert.interpreter")

BINARY = {
    "input_quantizer": "ste_sign",
    "kernel_quantizer": "ste_sign",
    "kernel_constraint": "weight_clip",
    "use_bias": False,
}


def network(shape: tuple[int, int, int]) -> keras.Model:
    inputs = keras.Input(shape)
    stem = keras.layers.Conv2D(40, 3, padding="same", use_bias=False)(inputs)
    x = tfqnn.layers.QuantConv2D(40, 3, padding="same", pad_values=0.0, **BINARY)(stem)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Add()([x, stem])
    x = tfqnn.layers.QuantConv2D(72, 3, strides=2, padding="same", pad_values=1.0, **BINARY)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = tfqnn.layers.QuantDense(10, **BINARY)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def exported() -> tuple[bytes, np.ndarray, np.ndarray]:
    keras.utils.set_random_seed(5)
    model = network((37, 41, 3))
    for layer in model.layers:  # BatchNorm statistics away from the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            rng = np.random.default_rng(n)
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),
                    rng.normal(0, 0.3, n),
                    rng.normal(0, 0.3, n),
                    rng.uniform(0.5, 2.0, n),
                ]
            )
    x = np.random.default_rng(0).standard_normal((2, 37, 41, 3)).astype(np.float32)
    keras_out = np.asarray(model.predict(x, verbose=0))
    return tfqnn.export.to_tflite(model, batch_size=2), x, keras_out


@pytest.fixture
def eager_threads():
    """Every op splits, whatever its size."""
    previous = _core.set_min_thread_work(0)
    yield
    _core.set_min_thread_work(previous)


def test_the_export_runs_its_binary_layers_in_tfqnn_ops(exported):
    model, _, _ = exported
    ops = [op["op_name"] for op in Interpreter(model_content=model)._get_ops_details()]
    assert ops.count("TfqnnBconv2d") == 2
    assert "TfqnnBdense" in ops


@pytest.mark.parametrize("spin_ns", [30000, 0])
def test_threads_give_the_one_thread_output(exported, eager_threads, spin_ns):
    model, x, keras_out = exported
    one = Interpreter(model_content=model, num_threads=1).predict(x)
    np.testing.assert_allclose(one, keras_out, rtol=1e-4, atol=1e-3)
    previous = _core.set_thread_spin(spin_ns)
    try:
        assert previous == 30000  # the library's default (core/threads.cc), restored below
        interpreters = [Interpreter(model_content=model, num_threads=n) for n in (2, 3)]
        for _ in range(3):  # several jobs in a row, the workers idle between them or not
            for interpreter in interpreters:
                np.testing.assert_array_equal(interpreter.predict(x), one)
    finally:
        assert _core.set_thread_spin(previous) == spin_ns


def test_set_thread_spin_clamps_and_returns_the_previous_value():
    previous = _core.set_thread_spin(-5)
    try:
        assert _core.set_thread_spin(10**12) == 0
        assert _core.set_thread_spin(1234) == 10**9
    finally:
        assert _core.set_thread_spin(previous) == 1234
