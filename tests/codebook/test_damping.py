"""cluster(damping=...): h + lambda * mean(h), between the importance (0) and plain k-means."""

import numpy as np
import pytest

from tests.codebook._models import trained_mlp
from tfqnn import codebook


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    return trained_mlp(x, y, {"fc": 12}, classes=2, epochs=2)


def _kernels(model):
    return [model.get_layer(n).kernel.numpy().ravel() for n in ("fc", "out")]


def _adam(model):
    optimizer = model.optimizer
    return [
        np.sqrt(optimizer._velocities[optimizer._get_variable_index(model.get_layer(n).kernel)])
        for n in ("fc", "out")
    ]


def _tables(clustered):
    return [clustered.get_layer(n).codebook("kernel") for n in ("fc", "out")]


@pytest.mark.parametrize("damping", [0.0, 0.5, 4.0])
def test_model_scope_equals_the_damped_formula(model, damping):
    w = np.concatenate(_kernels(model))
    h = np.concatenate([a.ravel() for a in _adam(model)])
    expected = codebook.optimal(w, 4, importance=h + damping * h.mean())
    clustered = codebook.cluster(
        model, 4, method="optimal", scope="model", importance="adam", damping=damping
    )
    (c_fc, i_fc), (c_out, i_out) = _tables(clustered)
    np.testing.assert_allclose(c_fc[0, :, 0], expected.centroids, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.concatenate([i_fc[0], i_out[0]]), expected.indices)


def test_layer_scope_damps_each_kernel_by_its_own_mean(model):
    for (c, i), w, h in zip(
        _tables(codebook.cluster(model, 4, method="optimal", importance="adam", damping=2.0)),
        _kernels(model),
        _adam(model),
    ):
        expected = codebook.optimal(w, 4, importance=h.ravel() + 2.0 * h.mean())
        np.testing.assert_allclose(c[0, :, 0], expected.centroids, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(i[0], expected.indices)


def test_damping_interpolates_between_importance_and_plain(model):
    def centroids(**kwargs):
        clustered = codebook.cluster(model, 4, scope="model", method="optimal", **kwargs)
        return _tables(clustered)[0][0][0, :, 0]

    plain = centroids()
    weighted = centroids(importance="adam")
    assert np.max(np.abs(weighted - plain)) > 1e-3  # the importance moves the centroids
    np.testing.assert_array_equal(centroids(importance="adam", damping=0.0), weighted)
    np.testing.assert_allclose(centroids(importance="adam", damping=1e9), plain, atol=1e-6)
    # the distance to plain k-means shrinks as the damping grows
    gaps = [
        np.max(np.abs(centroids(importance="adam", damping=d) - plain)) for d in (0.1, 1.0, 10.0)
    ]
    assert gaps[0] > gaps[1] > gaps[2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"importance": "adam", "damping": -1.0}, "damping=-1.0"),
        ({"importance": "adam", "damping": float("nan")}, "damping=nan"),
        ({"importance": "adam", "damping": "1"}, "damping='1'"),
        ({"damping": 1.0}, "damping=1.0 with importance=None"),
    ],
)
def test_bad_damping(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        codebook.cluster(model, 4, **kwargs)
