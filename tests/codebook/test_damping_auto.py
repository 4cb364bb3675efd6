"""cluster(damping="auto"): the best lambda of the grid on held-out data, plain k-means included."""

import math

import keras
import numpy as np
import pytest

from tests.codebook._models import trained_mlp
from tfqnn import codebook
from tfqnn.codebook import damping as damping_module


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, size=(600, 10)).astype("float32")
    y = (x[:, :3].sum(1) > x[:, 3:6].sum(1)).astype("int32") + (x[:, 9] > 0.7)
    return (x[:400], y[:400]), (x[400:], y[400:])


@pytest.fixture(scope="module")
def model(data):
    return trained_mlp(*data[0], {"fc": 24}, classes=3, epochs=3)


def _tables(clustered):
    return [clustered.get_layer(n).codebook("kernel") for n in ("fc", "out")]


def _accuracy(model, x, y):
    return np.mean(np.argmax(model.predict(x, verbose=0), -1) == y)


def _cross_entropy(model, x, y):
    p = model.predict(x, verbose=0)
    return np.mean(-np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0)))


def _candidates(model):
    out = {math.inf: codebook.cluster(model, 2, scope="model", verbose=0)}
    for d in damping_module.GRID[1:]:
        out[d] = codebook.cluster(model, 2, scope="model", importance="adam", damping=d, verbose=0)
    return out


@pytest.mark.parametrize("metric", ["accuracy", "loss"])
def test_auto_returns_the_best_candidate(model, data, metric):
    x, y = data[1]
    candidates = _candidates(model)
    if metric == "accuracy":
        scores = {d: _accuracy(m, x, y) for d, m in candidates.items()}
    else:
        scores = {d: -_cross_entropy(m, x, y) for d, m in candidates.items()}
    # the grid's order: plain k-means first, so it wins ties
    best = max(damping_module.GRID, key=lambda d: (scores[d], d == math.inf))
    auto = codebook.cluster(
        model,
        2,
        scope="model",
        importance="adam",
        damping="auto",
        validation_data=(x, y),
        damping_metric=metric,
        verbose=0,
    )
    assert auto.chosen_damping == best
    for (c, i), (c_best, i_best) in zip(_tables(auto), _tables(candidates[best])):
        np.testing.assert_array_equal(c, c_best)
        np.testing.assert_array_equal(i, i_best)
    # never worse than plain k-means on the validation data, by the chosen score
    assert scores[best] >= scores[math.inf]
    if metric == "accuracy":
        assert _accuracy(auto, x, y) == pytest.approx(scores[best])


def test_plain_kmeans_wins_ties(model, data, monkeypatch):
    monkeypatch.setattr(damping_module, "score", lambda *args: 0.5)
    auto = codebook.cluster(
        model, 2, importance="adam", damping="auto", validation_data=data[1], verbose=0
    )
    assert auto.chosen_damping == math.inf
    for (c, i), (c_plain, i_plain) in zip(_tables(auto), _tables(codebook.cluster(model, 2))):
        np.testing.assert_array_equal(c, c_plain)
        np.testing.assert_array_equal(i, i_plain)


def test_auto_corrects_each_candidate_before_scoring(model, data, monkeypatch):
    seen = []

    def score(clustered, validation, metric, loss):
        seen.append(clustered.get_layer("fc").layer.bias.numpy().copy())
        return float(len(seen) == 3)  # the third candidate (lambda = 0.3) wins

    monkeypatch.setattr(damping_module, "score", score)
    auto = codebook.cluster(
        model,
        2,
        importance="adam",
        damping="auto",
        validation_data=data[1],
        bias_correction=True,
        data=data[0],
        verbose=0,
    )
    assert auto.chosen_damping == damping_module.GRID[2]
    original = model.get_layer("fc").bias.numpy()
    assert all(not np.allclose(bias, original, atol=1e-5) for bias in seen)
    np.testing.assert_array_equal(auto.get_layer("fc").layer.bias.numpy(), seen[2])


@pytest.mark.parametrize("winner", [None, 1, 3])
def test_bias_correction_auto_scores_both(model, data, monkeypatch, winner):
    calls = []

    def score(clustered, validation, metric, loss):
        calls.append(clustered.get_layer("fc").layer.bias.numpy().copy())
        return float(len(calls) - 1 == winner)  # None: every candidate ties

    monkeypatch.setattr(damping_module, "score", score)
    auto = codebook.cluster(
        model,
        2,
        importance="adam",
        damping="auto",
        bias_correction="auto",
        data=data[0],
        validation_data=data[1],
        verbose=0,
    )
    assert len(calls) == 2 * len(damping_module.GRID)
    original = model.get_layer("fc").bias.numpy()
    # candidates: (lambda, uncorrected), (lambda, corrected), ... in the grid's order
    for i, bias in enumerate(calls):
        assert np.array_equal(bias, original) == (i % 2 == 0)
    index = 0 if winner is None else winner
    assert auto.chosen_damping == damping_module.GRID[index // 2]
    assert auto.chosen_bias_correction == bool(index % 2)
    np.testing.assert_array_equal(auto.get_layer("fc").layer.bias.numpy(), calls[index])


def test_one_hot_labels_score_as_integers(model, data):
    x, y = data[1]
    integer = damping_module.score(model, (x, y), "accuracy")
    one_hot = damping_module.score(model, (x, np.eye(3)[y]), "accuracy")
    assert integer == one_hot == pytest.approx(_accuracy(model, x, y))
    loss = damping_module.score(model, (x, y), "loss", "sparse_categorical_crossentropy")
    assert loss == pytest.approx(-_cross_entropy(model, x, y), rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"importance": "adam", "damping": "auto"}, "validation_data=None"),
        ({"damping": "auto", "validation_data": "v"}, "damping='auto' with importance=None"),
        ({"importance": "adam", "damping": 1.0, "validation_data": "v"}, "only damping='auto'"),
        ({"importance": "adam", "damping": "best"}, "number or 'auto'"),
        (
            {
                "importance": "adam",
                "damping": "auto",
                "validation_data": "v",
                "damping_metric": "f1",
            },
            "damping_metric='f1'",
        ),
        (
            {"importance": "adam", "damping": "auto", "validation_data": ([1, 2], [1])},
            "same number",
        ),
    ],
)
def test_bad_auto_arguments(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        codebook.cluster(model, 2, **kwargs)


def test_accuracy_needs_class_scores(data):
    x, y = data[1]
    regression = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="damping_metric='accuracy'"):
        damping_module.score(regression, (x, y), "accuracy")
    classes = keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="labels of shape"):
        damping_module.score(classes, (x, y[:, None, None]), "accuracy")
