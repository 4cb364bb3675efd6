"""Logarithmic: power-of-two activation levels against a numpy reference."""

import numpy as np
import pytest

from tfqnn import quantizers


def np_logarithmic(x, bits, max_exponent, step):
    top = 2**bits - 2
    low = max_exponent - step * top
    out = np.zeros_like(x)
    positive = x > 0
    index = np.round((np.log2(x[positive]) - low) / step)
    level = 2.0 ** (low + step * np.minimum(index, top))
    out[positive] = np.where(index >= 0, level, 0.0)
    return out


def test_levels_and_gradient_on_a_grid(forward_backward):
    x = np.array([-2.0, 0.0, 0.01, 0.1, 0.125, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 3.0, 100.0])
    q = quantizers.Logarithmic(bits=3)  # levels 0, 2^-6 .. 2^0
    y, grad, dy = forward_backward(q, x)
    np.testing.assert_array_equal(y, [0, 0, 0, 0.125, 0.125, 0.25, 0.25, 0.5, 0.5, 1, 1, 1, 1])
    np.testing.assert_array_equal(grad, dy * (x > 0))
    assert set(np.unique(q(np.geomspace(1e-6, 1e3, 1000)).numpy())) <= {
        0.0,
        *[2.0**-k for k in range(7)],
    }


@pytest.mark.parametrize(
    "bits, max_exponent, step", [(2, 0.0, 1.0), (4, 2.0, 0.5), (5, -1.0, 0.25)]
)
def test_random_against_numpy(forward_backward, rng, bits, max_exponent, step):
    x = rng.normal(0.5, 1.0, size=500).astype(np.float32)
    y, grad, dy = forward_backward(quantizers.Logarithmic(bits, max_exponent, step), x)
    np.testing.assert_allclose(
        y, np_logarithmic(x.astype(np.float64), bits, max_exponent, step), rtol=1e-6
    )
    np.testing.assert_array_equal(grad, dy * (x > 0))
    assert np.unique(y).size <= 2**bits


def test_config_alias_and_precision():
    q = quantizers.get("logarithmic")
    assert isinstance(q, quantizers.Logarithmic) and q.precision == 4
    q = quantizers.Logarithmic(bits=5, max_exponent=3.0, step=0.5)
    again = quantizers.deserialize(quantizers.serialize(q))
    assert again.get_config() == {"bits": 5, "max_exponent": 3.0, "step": 0.5}
    assert again.precision == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bits": 1}, "bits=1"),
        ({"bits": 9}, "bits=9"),
        ({"step": 0}, "step=0"),
        ({"max_exponent": float("nan")}, "max_exponent"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        quantizers.Logarithmic(**kwargs)
