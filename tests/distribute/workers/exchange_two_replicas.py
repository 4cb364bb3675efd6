"""The exchange on two replicas of one process, against an independent sum.

Run as a script by tests/distribute/test_communicator.py (the two logical
CPUs must be configured before TensorFlow starts, hence a process of its
own). Under ``MirroredStrategy(["CPU:0", "CPU:1"])``, for every compressor:
replica r's gradients are ``base + r * delta`` (a compressed matrix and a
small vector); `communicator.all_reduce` sums them with a `CompressionState`.
The reference recomputes each replica's payload outside the strategy with
the same seeds (``(step, r * 1000003 + position)``), the shared statistics
(the maximum of both replicas'), ``num_workers=2``, and adds the decoded
payloads. Step 2 poisons replica 1 with a NaN and expects both replicas to
report non-finite and to keep their residuals.

Prints ``RESULT {json}``: per compressor, the largest difference of the
sums, of the residuals and of the two replicas' results, and the finite flags.
"""

import json

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tfqnn.distribute import CompressionState, communicator, compressors  # noqa: E402

REPLICAS = 2
rng = np.random.default_rng(7)
base = [rng.normal(size=(48, 40)).astype(np.float32), rng.normal(size=(12,)).astype(np.float32)]
delta = [rng.normal(size=(48, 40)).astype(np.float32), rng.normal(size=(12,)).astype(np.float32)]


def replica_gradients(r):
    return [b + r * d for b, d in zip(base, delta)]


def reference(compressor, step, residuals, qs):
    """Sum over replicas of D(C(g_r + e_r)), and the new residuals, without collectives."""
    points = [replica_gradients(r)[0] + residuals[r] for r in range(REPLICAS)]
    if isinstance(compressor, compressors.PowerSGD):
        ps = sum(m @ qs for m in points)
        p_hat = compressor.orthogonalize(tf.constant(ps)).numpy()
        own_q = [m.T @ p_hat for m in points]
        total = p_hat @ sum(own_q).T
        return total, [m - p_hat @ q.T for m, q in zip(points, own_q)], sum(own_q)
    statistics = None
    if compressor.num_statistics(points[0].shape):
        statistics = tf.reduce_max([compressor.local_statistics(tf.constant(p)) for p in points], 0)
    decoded = []
    for r, p in enumerate(points):
        seed = tf.constant([step, r * 1_000_003 + 0], tf.int64)
        payload = compressor.compress(
            tf.constant(p), statistics=statistics, num_workers=REPLICAS, seed=seed
        )
        decoded.append(compressor.decompress(payload).numpy())
    residuals = [p - d for p, d in zip(points, decoded)] if compressor.error_feedback else residuals
    if isinstance(compressor, compressors.SignSGD) and compressor.majority_vote:
        return np.sign(sum(decoded)), residuals, None  # the vote of the replicas' signs
    return sum(decoded), residuals, None


# One strategy for all: collective instance keys restart with each new
# strategy, and the executor keeps the earlier instances' types.
strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])


def run(compressor):
    with strategy.scope():
        variables = [tf.Variable(b) for b in base]
        state = CompressionState(compressor, variables, min_elements=100)

    @tf.function
    def step_fn(step, poison):
        def replica_fn():
            r = tf.distribute.get_replica_context().replica_id_in_sync_group
            grads = [tf.constant(b) + tf.cast(r, tf.float32) * d for b, d in zip(base, delta)]
            grads[0] = grads[0] * tf.where(tf.logical_and(poison, r == 1), np.nan, 1.0)
            return communicator.all_reduce(compressor, grads, state=state, step=step)

        return strategy.run(replica_fn)

    residuals = [np.zeros_like(base[0]) for _ in range(REPLICAS)]
    qs = state.slots[0]["q"].numpy() if "q" in state.slots[0] else None  # PowerSGD's
    out = {"sum": 0.0, "small": 0.0, "residual": 0.0, "replicas_agree": 0.0, "finite": []}
    for step in range(2):
        sums, finite = step_fn(tf.constant(step, tf.int64), tf.constant(False))
        local = [strategy.experimental_local_results(s) for s in sums]
        expected, residuals, new_q = reference(compressor, step, residuals, qs)
        qs = new_q if new_q is not None else qs
        out["sum"] = max(out["sum"], float(np.abs(local[0][0].numpy() - expected).max()))
        out["replicas_agree"] = max(
            out["replicas_agree"], float(np.abs(local[0][0].numpy() - local[0][1].numpy()).max())
        )
        small = sum(replica_gradients(r)[1] for r in range(REPLICAS))
        out["small"] = max(out["small"], float(np.abs(local[1][0].numpy() - small).max()))
        out["finite"].append([bool(f) for f in strategy.experimental_local_results(finite)])
        if compressor.error_feedback:
            got = strategy.experimental_local_results(state.slots[0]["residual"].value)
            out["residual"] = max(
                out["residual"],
                *(float(np.abs(got[r].numpy() - residuals[r]).max()) for r in range(REPLICAS)),
            )

    def state_values():
        return [
            x.numpy() for v in state.variables for x in strategy.experimental_local_results(v.value)
        ]

    before = state_values()
    _, finite = step_fn(tf.constant(2, tf.int64), tf.constant(True))
    out["finite"].append([bool(f) for f in strategy.experimental_local_results(finite)])
    out["state_kept"] = all(np.array_equal(b, a) for b, a in zip(before, state_values()))
    out["scale"] = float(np.abs(expected).max())
    return out


print(
    "RESULT " + json.dumps({name: run(compressors.get(name)) for name in compressors.ALIASES}),
    flush=True,
)
