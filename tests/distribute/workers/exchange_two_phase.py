"""MWMS worker: two-phase `OneBitEF` against a reference without collectives.

Run by tests/distribute/test_multiworker_compression.py on 2 or more
processes (all-to-all needs one replica per worker). Worker r's gradients are
``base + r * delta`` for a matrix of 1000 elements (not a whole number of
shards) and a small vector; every worker can therefore replay the whole
exchange in numpy order with `OneBitEF.encode`/`decode`: each worker's
residual-compensated point, its shards summed by their owner with the
owner's server residual, re-encoded and concatenated. Over three steps it
compares its sums, its residual and its server residual with that replay.
Prints ``RESULT {json}`` with the largest differences.
"""

import json
import os

import numpy as np
import tensorflow as tf

from tfqnn.distribute import CompressionState, communicator, compressors

WORKERS = len(json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"])
TASK = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
rng = np.random.default_rng(11)
base = [rng.normal(size=(40, 25)).astype(np.float32), rng.normal(size=(6,)).astype(np.float32)]
delta = [rng.normal(size=(40, 25)).astype(np.float32), rng.normal(size=(6,)).astype(np.float32)]
compressor = compressors.OneBitEF(bucket_size=64, two_phase=True)


def ordered(x):
    """Column-major (the compressor's default bucket order): one column after another."""
    return x.reshape(-1, x.shape[-1]).T.ravel()


def unordered(flat, shape):
    return flat.reshape(shape[-1], -1).T.reshape(shape)


def replay(points, servers):
    """The two phases for every worker at once: sums, residuals, server residuals."""
    n = points[0].size
    shard = compressor.shard_size(n, WORKERS)
    real = (np.arange(WORKERS * shard) < n).astype(np.float32)
    decoded = []
    for p in points:
        words, means = compressor.encode(
            tf.constant(np.pad(ordered(p), (0, real.size - n))), tf.constant(real)
        )
        decoded.append(compressor.decode(words, means, real.size).numpy())
    totals, new_servers = [], []
    for j in range(WORKERS):
        part = slice(j * shard, (j + 1) * shard)
        server = (sum(d[part] for d in decoded) + servers[j]) * real[part]
        words, means = compressor.encode(tf.constant(server), tf.constant(real[part]))
        totals.append(compressor.decode(words, means, shard).numpy())
        new_servers.append(server - totals[-1] * real[part])
    residuals = [p - unordered(d[:n], p.shape) for p, d in zip(points, decoded)]
    return unordered(np.concatenate(totals)[:n], points[0].shape), residuals, new_servers


# No collective timeout: TF 2.21 keeps a thread per collective alive for the
# timeout (thousands per worker in long runs); the harness stops hung clusters.
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    state = CompressionState(compressor, [tf.Variable(b) for b in base], min_elements=100)


@tf.function
def step():
    def replica_fn():
        grads = [tf.constant(b + TASK * d) for b, d in zip(base, delta)]
        return communicator.all_reduce(compressor, grads, state=state)

    return strategy.run(replica_fn)


residuals = [np.zeros_like(base[0]) for _ in range(WORKERS)]
servers = [np.zeros(state.slots[0]["server_residual"].shape, np.float32)] * WORKERS
result = {"sum": 0.0, "small": 0.0, "residual": 0.0, "server_residual": 0.0, "finite": []}
for _ in range(3):
    sums, finite = step()
    points = [base[0] + r * delta[0] + residuals[r] for r in range(WORKERS)]
    expected, residuals, servers = replay(points, servers)
    result["sum"] = max(result["sum"], float(np.abs(sums[0].numpy() - expected).max()))
    small = sum(base[1] + r * delta[1] for r in range(WORKERS))
    result["small"] = max(result["small"], float(np.abs(sums[1].numpy() - small).max()))
    result["residual"] = max(
        result["residual"],
        float(np.abs(state.slots[0]["residual"].numpy() - residuals[TASK]).max()),
    )
    result["server_residual"] = max(
        result["server_residual"],
        float(np.abs(state.slots[0]["server_residual"].numpy() - servers[TASK]).max()),
    )
    result["finite"].append(bool(finite))
result["scale"] = float(np.abs(expected).max())
print("RESULT " + json.dumps(result), flush=True)
