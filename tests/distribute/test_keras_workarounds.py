"""Keras 3 ``fit`` under MultiWorkerMirroredStrategy (keras-team/keras#20585).

In-process checks of `tfqnn.distribute.keras_workarounds`, and real 2-worker
clusters on 127.0.0.1 (`multiworker.run_workers`): plain Keras fails, and
with ``import tfqnn.distribute`` both workers train to identical weights.
"""

import math
import os

import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import trainer

import tfqnn.distribute
from tfqnn.distribute import keras_workarounds

from .multiworker import run_workers

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workers", "fit_plain_mwms.py")


def test_importing_tfqnn_distribute_applies_the_patches():
    assert tfqnn.distribute.keras_workarounds is keras_workarounds
    assert keras_workarounds.is_applied(), keras_workarounds.reason
    assert keras_workarounds.reason is None
    assert (
        trainer.TensorFlowTrainer._maybe_symbolic_build
        is keras_workarounds._first_local_batch_build
    )
    assert trainer.reduce_per_replica.__module__ == keras_workarounds.__name__


def test_apply_is_idempotent():
    build, reduce = trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica
    assert keras_workarounds.apply() and keras_workarounds.apply()
    assert trainer.TensorFlowTrainer._maybe_symbolic_build is build
    assert trainer.reduce_per_replica is reduce  # not wrapped twice


def test_the_patched_reduce_defers_to_keras_outside_multi_worker_mode():
    values = {"loss": tf.constant(1.5), "accuracy": tf.constant(0.25)}
    reduced = trainer.reduce_per_replica(values, tf.distribute.get_strategy(), "auto")
    assert reduced["loss"] is values["loss"] and reduced["accuracy"] is values["accuracy"]


def test_a_fixed_keras_is_left_alone(monkeypatch):
    def fixed_build(self, iterator=None, data_batch=None):
        return None

    def fixed_reduce(values, strategy, reduction):
        return values

    monkeypatch.setattr(trainer.TensorFlowTrainer, "_maybe_symbolic_build", fixed_build)
    monkeypatch.setattr(trainer, "reduce_per_replica", fixed_reduce)
    monkeypatch.setattr(keras_workarounds, "reason", None)
    assert keras_workarounds.apply() is False
    assert trainer.TensorFlowTrainer._maybe_symbolic_build is fixed_build
    assert trainer.reduce_per_replica is fixed_reduce
    assert keras_workarounds.reason.count("fixed in Keras") == 2


def test_missing_private_names_are_reported(monkeypatch):
    monkeypatch.delattr(trainer, "reduce_per_replica")
    monkeypatch.setattr(keras_workarounds, "reason", None)
    assert keras_workarounds.apply() is False
    assert "reduce_per_replica not found" in keras_workarounds.reason
    assert "_maybe_symbolic_build" not in keras_workarounds.reason  # that one is still patched


@pytest.mark.slow
def test_plain_keras_fit_fails_under_mwms():
    workers = run_workers(WORKER, num_workers=2, args=["--no-workaround"], timeout=90)
    for worker in workers:
        assert worker.returncode == 1, worker.tail()
        assert "ValueError: Attempt to convert a value (PerReplica:" in worker.stderr, worker.tail()
        assert "values.PerReplica'>) to a Tensor." in worker.stderr, worker.tail()


@pytest.mark.slow
def test_plain_keras_fit_trains_under_mwms_with_the_workaround():
    workers = run_workers(WORKER, num_workers=2, timeout=150)
    for worker in workers:
        assert worker.ok and worker.result is not None, worker.tail()
    first, second = (worker.result for worker in workers)
    assert [first["task"], second["task"]] == [0, 1]
    assert first["replicas"] == second["replicas"] == 2
    assert first["weights_sha256"] == second["weights_sha256"]  # bit-identical replicas
    for key in ("loss", "accuracy", "test_loss", "test_accuracy"):
        assert first[key] == second[key]  # metrics are reduced over both workers
    assert math.isfinite(first["loss"])
    assert first["accuracy"] > 0.6 and first["test_accuracy"] > 0.6, first


HARNESS_CHECK = """
import json, os, sys, time
import tensorflow as tf
config = json.loads(os.environ["TF_CONFIG"])
if config["task"]["index"] == 1:
    time.sleep(600)  # a peer that would wait forever in a collective
print("RESULT " + json.dumps({
    "config": config, "argv": sys.argv[1:],
    "threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                tf.config.threading.get_inter_op_parallelism_threads()],
    "env": [os.environ["TF_CPP_MIN_LOG_LEVEL"], os.environ["CUDA_VISIBLE_DEVICES"]]}))
sys.exit(3)
"""


@pytest.mark.slow
def test_the_harness_configures_workers_and_kills_peers_of_a_failed_one():
    first, second = run_workers(HARNESS_CHECK, num_workers=2, args=["--worker={index}"], grace=2)
    assert first.returncode == 3 and not first.killed_after_peer_failure, first.tail()
    assert second.returncode is None and second.killed_after_peer_failure and not second.timed_out
    result = first.result
    workers = result["config"]["cluster"]["worker"]
    assert result["config"]["task"] == {"type": "worker", "index": 0}
    assert len(set(workers)) == 2 and all(w.startswith("127.0.0.1:") for w in workers)
    assert result["argv"] == ["--worker=0"]
    assert result["threads"] == [1, 1] and result["env"] == ["2", "-1"]
    assert first.maxrss_mb > 100  # TensorFlow was imported


@pytest.mark.slow
def test_the_harness_kills_workers_at_the_timeout():
    (worker,) = run_workers("import time\ntime.sleep(600)\n", num_workers=1, timeout=2)
    assert worker.timed_out and worker.returncode is None and worker.result is None
