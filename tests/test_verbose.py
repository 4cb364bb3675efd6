"""One ``verbose`` convention (Keras's: "auto", 0, 1, 2) for tfqnn's long work."""

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn import _validation, codebook


@pytest.mark.parametrize(
    "value, expected", [("auto", 1), (0, 0), (1, 1), (2, 2), (True, 1), (False, 0)]
)
def test_check_verbose_follows_keras_fit(value, expected):
    assert _validation.check_verbose(value) == expected


@pytest.mark.parametrize("value", [3, -1, "yes", 1.0, None])
def test_check_verbose_refuses_other_values(value):
    with pytest.raises(ValueError, match=r"Invalid verbose=.*expected 'auto', 0, 1 or 2"):
        _validation.check_verbose(value)


def two_kernel_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, name="fc1"),
            tfqnn.layers.QuantDense(3, name="qfc"),
        ]
    )


def test_cluster_verbose_zero_prints_nothing(capsys):
    codebook.cluster(two_kernel_model(), 4, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", ["auto", 1])
def test_cluster_verbose_one_shows_a_bar_over_the_kernels(capsys, verbose):
    codebook.cluster(two_kernel_model(), 4, verbose=verbose)
    out = capsys.readouterr().out
    assert "2/2" in out  # both kernels done, Keras's Progbar counter
    assert "━" in out  # the bar itself
    assert "kernel" in out  # the unit name


def test_cluster_model_scope_bar_has_one_step(capsys):
    codebook.cluster(two_kernel_model(), 4, scope="model", verbose=1)
    assert "1/1" in capsys.readouterr().out


def test_cluster_verbose_two_prints_a_line_per_kernel(capsys):
    codebook.cluster(two_kernel_model(), 4, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "cluster: fc1/kernel: 30 weights, 4 centroids (kmeans)",
        "cluster: qfc/kernel: 15 weights, 4 centroids (kmeans)",
    ]


def test_interop_load_verbose_refuses_other_values(tmp_path):
    with pytest.raises(ValueError, match="Invalid verbose=3"):
        tfqnn.interop.load(tmp_path / "missing.h5", verbose=3)


@pytest.mark.parametrize(
    "make",
    [
        lambda v: codebook.cluster(two_kernel_model(), 4, verbose=v),
        lambda v: tfqnn.callbacks.IncrementalQuantization(verbose=v),
        lambda v: tfqnn.callbacks.HyperparameterScheduler(len, None, "gamma", verbose=v),
        lambda v: tfqnn.export.to_tflite(two_kernel_model(), verbose=v),
    ],
)
def test_every_verbose_argument_refuses_the_same_values(make):
    with pytest.raises(ValueError, match="Invalid verbose='loud'"):
        make("loud")
    with pytest.raises(ValueError, match="Invalid verbose=3"):
        make(3)


def test_incremental_quantization_prints_a_line_per_step_or_nothing(capsys):
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.zeros((8, 2), "float32")
    for verbose, lines in [(0, 0), ("auto", 2)]:
        keras.utils.set_random_seed(0)
        layer = tfqnn.layers.QuantDense(2, kernel_quantizer=None)
        model = keras.Sequential([keras.Input((4,)), layer])
        model.compile("sgd", "mse")
        inq = tfqnn.callbacks.IncrementalQuantization(portions=(0.5, 1.0), verbose=verbose)
        model.fit(x, y, epochs=2, verbose=0, callbacks=[inq])
        out = capsys.readouterr().out.splitlines()
        steps = [line for line in out if line.startswith("IncrementalQuantization: step")]
        assert len(steps) == lines
        assert len(out) == lines
