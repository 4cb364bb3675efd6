"""FlipRatio and QuantizationMonitor give the same values under MirroredStrategy
(two logical CPUs) as on one device."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tests.callbacks.test_quantization_monitor import read_events

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SCRIPT = """
import json, sys, numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, tfqnn
from tests.optimizers.conftest import toy_data, BINARY

def run(strategy, log_dir):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), tfqnn.layers.QuantDense(16, name="fc"),
            tfqnn.layers.QuantDense(16, name="b1", **BINARY),
            tfqnn.layers.QuantDense(3, name="b2", **BINARY)])
        bop = tfqnn.optimizers.Bop(threshold=1e-4, gamma=0.1)
        case = tfqnn.optimizers.CaseOptimizer(
            (tfqnn.optimizers.is_binary_variable, bop), default_optimizer=keras.optimizers.SGD(0.05))
        model.compile(case, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[tfqnn.metrics.FlipRatio(model)])
    x, y = toy_data()
    monitor = tfqnn.callbacks.QuantizationMonitor(log_dir, data=x[:32])
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0, shuffle=False,
                        callbacks=[monitor])
    return history.history["flip_ratio"]

mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), sys.argv[1])
single = run(tf.distribute.get_strategy(), sys.argv[2])
print("RESULT " + json.dumps({"mirrored": mirrored, "single": single}))
"""


@pytest.mark.slow  # a process of its own with two logical CPUs: about 20 s, a minute when busy
def test_flip_ratio_and_monitor_match_one_device_under_mirrored_strategy(tmp_path):
    mirrored_logs, single_logs = tmp_path / "mirrored", tmp_path / "single"
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(mirrored_logs), str(single_logs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT ")[-1])
    assert len(out["single"]) == 3
    # Bop flips signs in this run, so the comparison is not between two zeros.
    assert max(out["single"]) > 0
    np.testing.assert_allclose(out["mirrored"], out["single"], rtol=1e-5, atol=1e-7)

    mirrored, single = read_events(mirrored_logs), read_events(single_logs)
    assert set(mirrored) == set(single)
    assert {f"quantization/{name}/kernel/flip_ratio" for name in ("b1", "b2")} <= set(single)
    assert "quantization/b1/input/positive_fraction" in single
    for tag, events in single.items():
        assert [step for step, _ in mirrored[tag]] == [step for step, _ in events] == [0, 1, 2]
        for (_, got), (_, expected) in zip(mirrored[tag], events):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=tag)
