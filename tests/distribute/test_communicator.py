"""The compressed exchange: one replica in this process, two in a subprocess."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfqnn.distribute import CompressionState, communicator, compressors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _variables(*shapes):
    return [keras.Variable(np.zeros(shape, np.float32)) for shape in shapes]


def test_state_selects_by_size_and_compressor():
    variables = _variables((64, 32), (32,), (3, 3, 16, 8))
    state = CompressionState(compressors.OneBitEF(), variables, min_elements=1000)
    assert state.compressed == [True, False, True]
    assert [sorted(s) for s in state.slots] == [["residual"], [], ["residual"]]
    assert state.slots[0]["residual"].shape == (64, 32)
    power = CompressionState(compressors.PowerSGD(rank=2), variables, min_elements=1)
    # A vector is declined; 2 r (n + m) < n m decides for the matrices.
    assert power.compressed == [True, False, True]
    assert power.slots[2]["q"].shape == (8, 2)
    assert CompressionState(compressors.TernGrad(), variables).variables == []


def test_one_replica_sum_is_the_local_round_trip_with_error_feedback(rng):
    compressor = compressors.OneBitEF(bucket_size=64)
    variables = _variables((40, 30), (5,))
    state = CompressionState(compressor, variables, min_elements=100)
    step = tf.function(lambda grads: communicator.all_reduce(compressor, grads, state=state))
    residual = np.zeros((40, 30), np.float32)
    for _ in range(3):
        grads = [
            rng.normal(size=(40, 30)).astype(np.float32),
            rng.normal(size=5).astype(np.float32),
        ]
        sums, finite = step(grads)
        point = grads[0] + residual
        expected = compressor.decompress(compressor.compress(tf.constant(point))).numpy()
        np.testing.assert_array_equal(sums[0].numpy(), expected)
        np.testing.assert_array_equal(sums[1].numpy(), grads[1])  # small: uncompressed
        residual = point - expected
        np.testing.assert_allclose(state.slots[0]["residual"].numpy(), residual, atol=1e-6)
        assert bool(finite)


def test_non_finite_gradient_is_reported_and_keeps_the_residual(rng):
    compressor = compressors.EFSign()
    state = CompressionState(compressor, _variables((50, 50)), min_elements=1)
    step = tf.function(lambda grads: communicator.all_reduce(compressor, grads, state=state))
    _, finite = step([rng.normal(size=(50, 50)).astype(np.float32)])
    kept = state.variables[0].numpy()
    assert bool(finite) and np.abs(kept).max() > 0
    bad = np.ones((50, 50), np.float32)
    bad[3, 4] = np.inf
    _, finite = step([bad])
    assert not bool(finite)
    np.testing.assert_array_equal(state.variables[0].numpy(), kept)


def test_non_finite_uncompressed_gradient_is_reported():
    compressor = compressors.TernGrad()
    _, finite = tf.function(lambda g: communicator.all_reduce(compressor, g))(
        [tf.constant([1.0, np.nan])]
    )
    assert not bool(finite)


def test_error_feedback_needs_state():
    with pytest.raises(ValueError, match="CompressionState"):
        tf.function(lambda: communicator.all_reduce(compressors.OneBitEF(), [tf.ones([2000])]))()


def test_needs_a_replica_context():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope(), pytest.raises(ValueError, match="replica context"):  # cross-replica
        communicator.all_reduce(compressors.Float16(), [tf.ones([4])])


def test_compressor_all_reduce_raises_or_returns_nan():
    compressor = compressors.TernGrad()
    bad = [tf.constant(np.full(2000, np.nan, np.float32))]
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        tf.function(lambda: compressor.all_reduce(bad, min_elements=1000))()
    sums = tf.function(lambda: compressor.all_reduce(bad, min_elements=1000, on_nonfinite="nan"))()
    assert np.isnan(sums[0].numpy()).all()
    good = [tf.ones([2000]) * 0.5]
    sums = tf.function(lambda: compressor.all_reduce(good, min_elements=1000))()
    assert set(np.unique(sums[0].numpy())) <= {0.0, 0.5}  # ternary grid of the scaler 0.5
    with pytest.raises(ValueError, match="on_nonfinite"):
        compressor.all_reduce(good, on_nonfinite="skip")


def test_sparse_gradients_go_uncompressed():
    compressor = compressors.Float16()
    slices = tf.IndexedSlices(tf.ones([2, 3000]), tf.constant([0, 2]), tf.constant([4, 3000]))
    sums, finite = tf.function(
        lambda: communicator.all_reduce(compressor, [slices], min_elements=1)
    )()
    assert isinstance(sums[0], tf.IndexedSlices) and bool(finite)


def test_nan_policy_reaches_sparse_and_dense_sums():
    """A NaN in a small dense gradient makes every sum NaN, the sparse one too."""
    compressor = compressors.Float16()
    slices = tf.IndexedSlices(tf.ones([2, 3]), tf.constant([0, 2]), tf.constant([4, 3]))
    grads = [tf.constant([1.0, np.nan]), slices, tf.ones([3000]), None]
    sums = tf.function(lambda: compressor.all_reduce(grads, on_nonfinite="nan"))()
    assert np.isnan(sums[0].numpy()).all() and np.isnan(sums[2].numpy()).all()
    assert isinstance(sums[1], tf.IndexedSlices) and np.isnan(sums[1].values.numpy()).all()
    np.testing.assert_array_equal(sums[1].indices.numpy(), [0, 2])
    assert sums[3] is None


@pytest.fixture(scope="module")
def two_replicas():
    """The exchange of every compressor on two replicas (see the script's docstring)."""
    script = os.path.join(HERE, "workers", "exchange_two_replicas.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1", PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.parametrize("name", list(compressors.ALIASES))
def test_two_replicas_sum_the_independently_decoded_payloads(two_replicas, name):
    result = two_replicas[name]
    # Float16 adds in float16 (the reference in float32): one half-precision
    # rounding of the sum; the others add integers or float32 exactly.
    tolerance = 2.0**-9 if name == "float16" else 1e-6
    assert result["sum"] <= tolerance * max(1.0, result["scale"])
    assert result["small"] <= 1e-6
    assert result["residual"] <= 1e-5
    assert result["replicas_agree"] == 0.0
    assert result["finite"] == [[True, True], [True, True], [False, False]]
    assert result["state_kept"]
