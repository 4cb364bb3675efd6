"""CaseOptimizer routes each variable as documented, updates as its inner
optimizers would alone, and saves and loads with the model."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tests.optimizers.conftest import binary_mlp, toy_data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def values(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def test_binary_kernels_go_to_bop_and_the_rest_to_the_default(model):
    bop, adam = tfqnn.optimizers.Bop(), keras.optimizers.Adam()
    case = tfqnn.optimizers.CaseOptimizer(
        (tfqnn.optimizers.is_binary_variable, bop), default_optimizer=adam
    )
    case.build(model.trainable_variables)
    routed = [case.route(v) for v in model.trainable_variables]
    # dense kernel, bias, BN gamma, beta, binary kernel, BN gamma, beta, binary kernel
    assert routed == [adam] * 4 + [bop] + [adam] * 2 + [bop]
    assert list(case.routes) == [1, 1, 1, 1, 0, 1, 1, 0]
    # Each inner optimizer made state for its share only: one average per binary
    # kernel; two moments per other variable.
    assert len(bop._averages) == 2
    assert len(adam._momentums) == 6
    assert case.variables[:2] == case._variables
    assert len(case.variables) == 2 + len(bop.variables) + len(adam.variables)


def test_the_first_matching_predicate_wins(model):
    sgd, adam, rms = keras.optimizers.SGD(), keras.optimizers.Adam(), keras.optimizers.RMSprop()
    case = tfqnn.optimizers.CaseOptimizer(
        (lambda v: "batch_normalization" in v.path, sgd),
        (lambda v: v.path.endswith("gamma") or "kernel" in v.path, adam),
        default_optimizer=rms,
    )
    case.build(model.trainable_variables)
    assert [case.route(v) for v in model.trainable_variables] == [
        adam,  # dense kernel
        rms,  # dense bias
        sgd,  # BN gamma: both predicates hold, the first wins
        sgd,
        adam,
        sgd,
        sgd,
        adam,
    ]


def test_the_update_is_that_of_each_inner_optimizer_alone(model, data):
    """One step of CaseOptimizer(SGD on kernels, Adam default) against SGD and Adam
    applied separately to copies of the same variables."""
    x, y = data
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        loss = keras.ops.mean(loss)
    grads = tape.gradient(loss, [v.value for v in variables])
    start = values(variables)
    is_kernel = [v.path.endswith("kernel") for v in variables]

    case = tfqnn.optimizers.CaseOptimizer(
        (lambda v: v.path.endswith("kernel"), keras.optimizers.SGD(0.1, momentum=0.5)),
        default_optimizer=keras.optimizers.Adam(0.01),
    )
    case.apply(grads, variables)
    got = values(variables)

    copies = [keras.Variable(w) for w in start]
    sgd, adam = keras.optimizers.SGD(0.1, momentum=0.5), keras.optimizers.Adam(0.01)
    sgd.apply(
        [g for g, k in zip(grads, is_kernel) if k], [c for c, k in zip(copies, is_kernel) if k]
    )
    adam.apply(
        [g for g, k in zip(grads, is_kernel) if not k],
        [c for c, k in zip(copies, is_kernel) if not k],
    )
    for a, b, w0 in zip(got, values(copies), start):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, w0)
    assert int(case.iterations) == 1


def test_an_unclaimed_variable_without_default_raises(model):
    case = tfqnn.optimizers.CaseOptimizer(
        (tfqnn.optimizers.is_binary_variable, tfqnn.optimizers.Bop())
    )
    with pytest.raises(ValueError, match="Invalid default_optimizer=None.*quant_dense"):
        case.build(model.trainable_variables)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (((1, keras.optimizers.SGD()),), {}, r"predicate_optimizer_pairs\[0\]\[0\]=1"),
        (((len, "adam"),), {}, r"predicate_optimizer_pairs\[0\]\[1\]='adam'"),
        (((len,),), {}, r"predicate_optimizer_pairs\[0\]=.*\(predicate, optimizer\)"),
        ((), {"default_optimizer": "sgd"}, "default_optimizer='sgd'"),
        ((), {}, "at least one pair"),
    ],
)
def test_invalid_pairs_raise_naming_the_argument(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfqnn.optimizers.CaseOptimizer(*args, **kwargs)


def test_one_optimizer_in_two_places_raises():
    sgd = keras.optimizers.SGD()
    with pytest.raises(ValueError, match="appears twice"):
        tfqnn.optimizers.CaseOptimizer((len, sgd), default_optimizer=sgd)


def _fit_case(model, x, y, predicate=tfqnn.optimizers.is_binary_variable):
    bop = tfqnn.optimizers.Bop(threshold=1e-6, gamma=1e-2)
    case = tfqnn.optimizers.CaseOptimizer(
        (predicate, bop), default_optimizer=keras.optimizers.Adam(0.01)
    )
    model.compile(case, "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False)
    return case


_CONTINUE = """
import sys, json, numpy as np, keras, tfqnn
model = keras.models.load_model(sys.argv[1])
case = model.optimizer
x, y = np.load(sys.argv[2])["x"], np.load(sys.argv[2])["y"]
state = {
    "type": type(case).__name__,
    "inner": [type(o).__name__ for o in case.optimizers],
    "gamma": float(case.optimizers[0].gamma),
    "routes": list(case.routes),
}
np.savez(sys.argv[3], *[keras.ops.convert_to_numpy(v) for v in case.variables])
model.train_on_batch(x, y)
np.savez(sys.argv[4], *[keras.ops.convert_to_numpy(w) for w in model.weights])
print("STATE " + json.dumps(state))
"""


def test_saves_and_loads_in_a_fresh_process_with_only_import_tfqnn(tmp_path):
    model = binary_mlp()
    x, y = toy_data()
    case = _fit_case(model, x, y)
    case.optimizers[0].gamma = 0.004
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _CONTINUE,
            *(str(tmp_path / n) for n in ("m.keras", "data.npz", "opt.npz", "w.npz")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads(result.stdout.split("STATE ")[-1])
    assert state == {
        "type": "CaseOptimizer",
        "inner": ["Bop", "Adam"],
        "gamma": pytest.approx(0.004),
        "routes": [1, 1, 1, 1, 0, 1, 1, 0],
    }
    # Every optimizer variable (iterations, Bop's averages, Adam's moments) came back.
    loaded = np.load(tmp_path / "opt.npz")
    expected = values(case.variables)
    assert len(loaded.files) == len(expected) > 10
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(loaded[f"arr_{i}"], want)
    # One more step there equals one more step here.
    model.train_on_batch(x, y)
    after = np.load(tmp_path / "w.npz")
    for i, want in enumerate(values(model.weights)):
        np.testing.assert_allclose(after[f"arr_{i}"], want, rtol=1e-5, atol=1e-6)


def test_a_lambda_predicate_is_restored_from_the_saved_routes(tmp_path):
    model = binary_mlp()
    x, y = toy_data()
    _fit_case(
        model,
        x,
        y,
        predicate=lambda v: tfqnn.optimizers.is_binary_variable(v),
    )
    config = model.optimizer.get_config()
    assert config["predicate_optimizer_pairs"][0][0] is None
    assert config["predicate_optimizer_pairs"][0][1]["class_name"] == "Bop"
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    case = loaded.optimizer
    bop = case.optimizers[0]
    assert [case.route(v) is bop for v in loaded.trainable_variables] == [
        tfqnn.optimizers.is_binary_variable(v) for v in loaded.trainable_variables
    ]
    # A model with other variables cannot use the routes, and there is no predicate.
    fresh = tfqnn.optimizers.CaseOptimizer.from_config(config | {"routes": [0]})
    with pytest.raises(ValueError, match="loaded without predicate 0"):
        fresh.build(binary_mlp().trainable_variables)


_MIRRORED = """
import json, numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, tfqnn
from tests.optimizers.conftest import toy_data, BINARY

def run(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), tfqnn.layers.QuantDense(16),
            tfqnn.layers.QuantDense(16, **BINARY), tfqnn.layers.QuantDense(3, **BINARY)])
        bop = tfqnn.optimizers.Bop(threshold=1e-4, gamma=0.1)
        case = tfqnn.optimizers.CaseOptimizer(
            (tfqnn.optimizers.is_binary_variable, bop), default_optimizer=keras.optimizers.SGD(0.05))
        model.compile(case, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = toy_data()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, shuffle=False)
    return [keras.ops.convert_to_numpy(v).tolist() for v in model.weights], int(keras.ops.convert_to_numpy(bop.iterations))

mirrored, steps = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
single, _ = run(tf.distribute.get_strategy())
print("RESULT " + json.dumps({"mirrored": mirrored, "single": single, "steps": steps}))
"""


@pytest.mark.slow  # a process of its own with two logical CPUs: about 15 s, 50 s on a busy machine
def test_fit_under_mirrored_strategy_matches_one_device():
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT ")[-1])
    assert out["steps"] == 3 * 4
    for mirrored, single in zip(out["mirrored"], out["single"]):
        np.testing.assert_allclose(mirrored, single, rtol=1e-4, atol=1e-5)
    binary = np.array(out["mirrored"][2])
    assert set(np.unique(binary)) == {-1.0, 1.0}


def test_the_learning_rate_is_the_default_optimizers_and_schedulers_reach_inner_ones(model, data):
    adam = keras.optimizers.Adam(0.02)
    case = tfqnn.optimizers.CaseOptimizer(
        (tfqnn.optimizers.is_binary_variable, tfqnn.optimizers.Bop()), default_optimizer=adam
    )
    assert case.learning_rate is adam.learning_rate
    with pytest.raises(ValueError, match="Invalid learning_rate=0.5 for CaseOptimizer"):
        case.learning_rate = 0.5
    # Keras's LearningRateScheduler sets each of `optimizers` (its multi-optimizer convention).
    model.compile(case, "sparse_categorical_crossentropy")
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch: 0.01)
    model.fit(*data, epochs=1, verbose=0, callbacks=[scheduler])
    assert float(adam.learning_rate) == pytest.approx(0.01)
