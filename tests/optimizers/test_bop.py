"""Bop against a numpy implementation of Helwegen et al. (2019), Algorithm 1."""

import warnings

import keras
import numpy as np
import pytest

import tfqnn
from tests.optimizers.conftest import binary_mlp, toy_data


def numpy_bop(w0, grads, threshold, gamma):
    """Weights and averages after each step: m += gamma (g - m); flip where sign(w) m > tau."""
    w = np.asarray(w0, np.float32)
    m = np.zeros_like(w)
    gamma, threshold = np.float32(gamma), np.float32(threshold)
    history = []
    for g in grads:
        m = m + gamma * (g - m)
        s = np.where(w >= 0, np.float32(1), np.float32(-1))
        w = np.where(s * m > threshold, -s, s)
        history.append((w.copy(), m.copy()))
    return history


def built_binary_dense(shape=(6, 5), seed=0):
    keras.utils.set_random_seed(seed)
    layer = tfqnn.layers.QuantDense(
        shape[1], kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False
    )
    layer.build((None, shape[0]))
    return layer


@pytest.mark.parametrize(
    "threshold, gamma",
    [(0.0, 0.5), (0.05, 0.3), (0.2, 1.0), (1e9, 0.5)],  # 1e9: no flip after the first step
)
def test_flips_match_numpy_over_several_steps(rng, threshold, gamma):
    layer = built_binary_dense()
    w0 = keras.ops.convert_to_numpy(layer.kernel).copy()
    grads = [rng.normal(size=w0.shape).astype(np.float32) for _ in range(8)]
    bop = tfqnn.optimizers.Bop(threshold=threshold, gamma=gamma)
    expected = numpy_bop(w0, grads, threshold, gamma)
    flips = 0
    for g, (w, m) in zip(grads, expected):
        before = keras.ops.convert_to_numpy(layer.kernel).copy()
        bop.apply([g], [layer.kernel])
        after = keras.ops.convert_to_numpy(layer.kernel)
        np.testing.assert_array_equal(after, w)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(bop._averages[0]), m)
        flips += int(np.sum(np.sign(before) != np.sign(after)))
    if threshold < 1e9:
        assert flips > 0  # the reference's flips happened, not only sign(w0)
    else:
        np.testing.assert_array_equal(after, np.where(w0 >= 0, 1, -1))


def test_a_flip_needs_the_average_against_the_sign():
    """Hand-computed: w = [+1, +1, -1, -1], gamma = 1 (m = g), threshold 0.5."""
    layer = built_binary_dense((2, 2))
    layer.kernel.assign(np.array([[1.0, 1.0], [-1.0, -1.0]], np.float32))
    bop = tfqnn.optimizers.Bop(threshold=0.5, gamma=1.0)
    bop.apply([np.array([[0.6, -0.6], [0.6, -0.6]], np.float32)], [layer.kernel])
    # +1 with g = +0.6 > 0.5: flip; +1 with g < 0: keep; -1 with g > 0: keep; -1 with
    # g = -0.6 (s m = 0.6 > 0.5): flip.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer.kernel), [[-1.0, 1.0], [-1.0, 1.0]]
    )


def test_case_optimizer_trains_binary_kernels_with_bop_in_fit():
    model = binary_mlp()
    x, y = toy_data()
    bop = tfqnn.optimizers.Bop(threshold=1e-6, gamma=1e-2)
    adam = keras.optimizers.Adam(0.01)
    model.compile(
        tfqnn.optimizers.CaseOptimizer(
            (tfqnn.optimizers.is_binary_variable, bop), default_optimizer=adam
        ),
        "sparse_categorical_crossentropy",
    )
    first = keras.ops.convert_to_numpy(model.layers[0].kernel).copy()
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    for layer in model.layers[2], model.layers[4]:
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        assert set(np.unique(kernel)) == {-1.0, 1.0}
    # Adam trained the float layer (not set to signs), and the model learned.
    assert not np.array_equal(keras.ops.convert_to_numpy(model.layers[0].kernel), first)
    assert len(np.unique(keras.ops.convert_to_numpy(model.layers[0].kernel))) > 2
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert int(bop.iterations) == int(adam.iterations) == 4 * 4


def test_threshold_and_gamma_are_settable_variables_and_round_trip():
    bop = tfqnn.optimizers.Bop(threshold=1e-6, gamma=1e-3, clipvalue=1.0)
    bop.gamma = 0.25
    bop.threshold = 0.125
    assert isinstance(bop.gamma, keras.Variable) and float(bop.gamma) == 0.25
    assert float(bop.threshold) == 0.125
    config = bop.get_config()
    assert "learning_rate" not in config
    assert config["gamma"] == 0.25 and config["threshold"] == 0.125 and config["clipvalue"] == 1.0
    again = tfqnn.optimizers.Bop.from_config(config)
    assert float(again.gamma) == 0.25 and float(again.threshold) == 0.125
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(bop))
    assert isinstance(restored, tfqnn.optimizers.Bop) and float(restored.gamma) == 0.25


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(threshold=-1e-3), "threshold"),
        (dict(threshold=float("nan")), "threshold"),
        (dict(threshold="big"), "threshold"),
        (dict(gamma=0.0), "gamma"),
        (dict(gamma=1.5), "gamma"),
        (dict(gamma=-0.1), "gamma"),
    ],
)
def test_out_of_range_hyperparameters_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=f"Invalid {name}="):
        tfqnn.optimizers.Bop(**kwargs)
    bop = tfqnn.optimizers.Bop()
    with pytest.raises(ValueError, match=f"Invalid {name}="):
        setattr(bop, name, next(iter(kwargs.values())))


def test_bop_warns_about_variables_that_are_not_binary_kernels():
    model = binary_mlp()
    bop = tfqnn.optimizers.Bop()
    with pytest.warns(UserWarning, match="not latent weights of binary kernels") as record:
        bop.build(model.trainable_variables)
    message = str(record[0].message)
    names = [v.path for v in model.trainable_variables]
    # The float kernel, its bias and the BatchNorm variables; not the binary kernels.
    assert [n for n in names if n in message] == names[:4] + names[5:7]
    other = tfqnn.optimizers.Bop()
    binary = [v for v in model.trainable_variables if tfqnn.optimizers.is_binary_variable(v)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other.build(binary)
