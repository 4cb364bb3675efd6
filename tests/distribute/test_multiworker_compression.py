"""Compressed ``fit`` on real MultiWorkerMirroredStrategy clusters of 2 processes.

Each test starts worker processes on 127.0.0.1 (`multiworker.run_workers`)
running ``workers/fit_compressed.py``: an MLP on scikit-learn's digits under
`GradientCompressionStrategy`. The quick ones run by default; the accuracy
comparison of every compressor and the crash-and-resume run are ``slow``.
"""

import os

import pytest

from tests.distribute.multiworker import run_workers
from tfqnn.distribute import compressors

WORKERS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workers")
WORKER = os.path.join(WORKERS_DIR, "fit_compressed.py")


def _fit(*args, num_workers=2, timeout=240):
    results = run_workers(
        WORKER, num_workers=num_workers, args=[str(a) for a in args], timeout=timeout
    )
    for r in results:
        assert r.ok and r.result, r.tail()
    return [r.result for r in results]


@pytest.mark.parametrize(
    "compressor, wrap",
    [
        ("onebit_ef", False),
        ("terngrad", True),
        ("powersgd", False),
        ("onebit_ef:two_phase=true", False),
    ],
)
def test_fit_trains_and_the_workers_agree(compressor, wrap):
    """All-gather, summable all-reduce, linear and two-phase schemes."""
    results = _fit("--compressor", compressor, "--epochs", 3, *(["--wrap"] if wrap else []))
    assert len({r["weights_sha256"] for r in results}) == 1
    assert all(r["replicas"] == 2 and r["iterations"] == 3 * 21 for r in results)
    assert all(r["test_accuracy"] > 0.5 for r in results)  # it learns: 10 % is chance
    if compressors.get(compressor.split(":")[0]).error_feedback:
        # Each worker keeps its own residuals: same shapes, other values.
        ends = [r["residuals_at_end"] for r in results]
        assert len(ends[0]) >= 3 and all(n > 0 for n in ends[0]) and ends[0] != ends[1]


@pytest.mark.parametrize("num_workers", [2, 3])
def test_two_phase_onebit_is_exact(num_workers):
    """Each worker's sums and residuals equal a replay of both phases in numpy order."""
    results = run_workers(
        os.path.join(WORKERS_DIR, "exchange_two_phase.py"), num_workers=num_workers, timeout=180
    )
    for r in results:
        assert r.ok and r.result, r.tail()
        assert r.result["sum"] <= 1e-6 * r.result["scale"]
        assert r.result["small"] <= 1e-6
        assert r.result["residual"] <= 1e-6 and r.result["server_residual"] <= 1e-6
        assert r.result["finite"] == [True, True, True]


def test_nan_on_one_worker_skips_the_step_on_all():
    results = _fit("--compressor", "terngrad", "--epochs", 1, "--nan-at-step", 5, "--nan-worker", 1)
    assert len({r["weights_sha256"] for r in results}) == 1
    assert all(r["all_finite"] for r in results)


def test_nan_on_one_worker_raises_on_all():
    results = run_workers(
        WORKER,
        num_workers=2,
        timeout=240,
        args=[
            "--compressor",
            "onebit_ef",
            "--epochs",
            "1",
            "--nan-at-step",
            "5",
            "--nan-worker",
            "0",
            "--on-nonfinite",
            "raise",
        ],
    )
    for r in results:
        assert not r.timed_out and not r.killed_after_peer_failure, r.tail()
        assert r.returncode == 1 and "NaN or Inf" in r.stderr, r.tail()


@pytest.mark.slow
def test_crashed_worker_resumes_with_its_residuals(tmp_path):
    """A worker dies after epoch 2; both restart from BackupAndRestore and end
    exactly where an uninterrupted run ends (same batches every epoch)."""
    common = ["--compressor", "onebit_ef", "--epochs", 4, "--no-shuffle"]
    backup = str(tmp_path / "backup{index}")
    crashed = run_workers(
        WORKER,
        num_workers=2,
        timeout=240,
        args=[str(a) for a in common + ["--backup-dir", backup, "--crash-at-epoch", 2]],
    )
    assert crashed[1].returncode == 3, crashed[1].tail()
    assert not crashed[0].ok  # left waiting in a collective, then stopped
    resumed = _fit(*common, "--backup-dir", backup)
    straight = _fit(*common)
    assert all(r["epochs_run"] == 2 for r in resumed)  # epochs 3 and 4 only
    for r in resumed:  # each worker restored its own, non-zero residuals
        assert all(n > 0 for n in r["residuals_at_start"])
    assert resumed[0]["residuals_at_start"] != resumed[1]["residuals_at_start"]
    assert {r["weights_sha256"] for r in resumed} == {straight[0]["weights_sha256"]}
    assert [r["residuals_at_end"] for r in resumed] == [r["residuals_at_end"] for r in straight]


# Digits, SGD with momentum 0.9 at 0.05, 30 epochs: fp32 reaches 98 % on the
# 450 test images (1 point is 4.5 images). Threshold's tau suits this model's
# gradients (its default); signSGD needs its own learning rate, and so does
# two-phase 1-bit, which compresses the sum a second time on each shard's
# server: at 0.05 it ended at 80-95 % depending on the seed, at 0.02 at
# 97.3-97.6 % for seeds 0-2.
PARITY = {
    "float16": [],
    "onebit_ef": [],
    "onebit_ef:two_phase=true": ["--learning-rate", 0.02],
    "threshold": [],
    "qsgd": [],
    "terngrad": [],
    "dorefa_grad": [],
    "adaq": [],
    "ef_sign": [],
    "powersgd": [],
}
EPOCHS = 30


@pytest.fixture(scope="module")
def uncompressed_accuracy():
    results = _fit(
        "--compressor",
        "none",
        "--epochs",
        EPOCHS,
        "--optimizer",
        "sgd",
        "--learning-rate",
        0.05,
        timeout=600,
    )
    return results[0]["test_accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize("compressor", list(PARITY))
def test_accuracy_within_one_point_of_uncompressed(uncompressed_accuracy, compressor):
    results = _fit(
        "--compressor",
        compressor,
        "--epochs",
        EPOCHS,
        "--optimizer",
        "sgd",
        "--learning-rate",
        0.05,
        *PARITY[compressor],
        timeout=600,
    )
    assert len({r["weights_sha256"] for r in results}) == 1
    assert results[0]["test_accuracy"] >= uncompressed_accuracy - 0.01, (
        results[0]["test_accuracy"],
        uncompressed_accuracy,
    )


@pytest.mark.slow
def test_signsgd_majority_vote_learns():
    """Not within a point on this small problem (93 to 96 % against 98 %:
    with 2 workers half the votes tie), but it learns."""
    results = _fit(
        "--compressor",
        "signsgd",
        "--epochs",
        EPOCHS,
        "--optimizer",
        "sgd",
        "--learning-rate",
        0.0005,
        timeout=600,
    )
    assert results[0]["test_accuracy"] > 0.9
