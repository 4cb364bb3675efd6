"""CaseOptimizer(Bop, Adam) under tfqnn's GradientCompressionStrategy: two real
MultiWorkerMirroredStrategy processes (tests/distribute/multiworker.py)."""

import pytest

from tests.distribute.multiworker import run_workers

WORKER = """
import hashlib, json
import keras, numpy as np, tensorflow as tf
import tfqnn, tfqnn.distribute
from tfqnn.distribute import _hook

keras.utils.set_random_seed(0)
strategy = tfqnn.distribute.GradientCompressionStrategy(
    "onebit_ef", communication_options=tf.distribute.experimental.CommunicationOptions())
(x, y), _ = tfqnn.datasets.load_digits()
x = x.reshape(len(x), -1)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64, drop_remainder=True)
binary = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign",
              kernel_constraint="weight_clip", use_bias=False)
with strategy.scope():
    model = keras.Sequential([
        keras.Input((64,)), tfqnn.layers.QuantDense(128), keras.layers.BatchNormalization(),
        tfqnn.layers.QuantDense(128, **binary), keras.layers.BatchNormalization(),
        tfqnn.layers.QuantDense(10, **binary), keras.layers.BatchNormalization()])
    bop, adam = tfqnn.optimizers.Bop(threshold=1e-6, gamma=1e-2), keras.optimizers.Adam(0.01)
    case = tfqnn.optimizers.CaseOptimizer(
        (tfqnn.optimizers.is_binary_variable, bop), default_optimizer=adam)
    model.compile(case, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
history = model.fit(data, epochs=3, verbose=0)
digest = hashlib.sha256()
for w in model.trainable_weights:  # BatchNorm moving statistics stay per worker
    digest.update(w.numpy().tobytes())
exchanges = {name: _hook.attached(o) for name, o in
             [("case", case), ("bop", bop), ("adam", adam)]}
print("RESULT " + json.dumps({
    "sha": digest.hexdigest(),
    "iterations": [int(o.iterations.numpy()) for o in (case, bop, adam)],
    "exchanges": {k: None if e is None else len(e.state.variables) for k, e in exchanges.items()},
    "binary_values": sorted({float(v) for l in model.layers[2:5:2] for v in np.unique(l.kernel.numpy())}),
    "accuracy": history.history["accuracy"],
}), flush=True)
"""


@pytest.mark.slow
def test_case_optimizer_trains_under_gradient_compression():
    results = run_workers(WORKER, num_workers=2, timeout=300)
    for r in results:
        assert r.ok and r.result, r.tail()
    first, second = (r.result for r in results)
    assert first["sha"] == second["sha"]  # the workers agree
    assert first["iterations"] == [3 * 21] * 3  # 1347 digits, batches of 64
    # Each inner optimizer exchanges its own share, compressed with error
    # feedback (residuals for its variables); the CaseOptimizer itself exchanges nothing.
    assert first["exchanges"]["case"] is None
    assert first["exchanges"]["bop"] > 0 and first["exchanges"]["adam"] > 0
    assert first["binary_values"] == [-1.0, 1.0]
    assert first["accuracy"][-1] > 0.5  # 10 % is chance
