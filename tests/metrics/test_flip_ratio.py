"""FlipRatio against hand-computed sequences and a numpy count during fit."""

import keras
import numpy as np
import pytest

import tfqnn
from tests.optimizers.conftest import binary_mlp, toy_data


def binary_dense(inputs, units):
    layer = tfqnn.layers.QuantDense(
        units, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False
    )
    layer.build((None, inputs))
    return layer


def test_a_hand_computed_sequence():
    layer = binary_dense(2, 2)
    metric = tfqnn.metrics.FlipRatio(layer)

    def step(kernel):
        layer.kernel.assign(np.array(kernel, np.float32).reshape(2, 2))
        metric.update_state()
        return float(metric.result())

    assert step([1, 1, 1, 1]) == 0.0  # the first update only records the signs
    assert step([1, -1, 1, 1]) == 0.25  # 1 of 4
    assert step([-1, 1, 1, 1]) == 0.375  # 2 of 4: mean(0.25, 0.5)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    assert step([-0.5, 0.25, 1, 1]) == 0.0  # magnitudes change, signs do not
    # sign(0) = +1: 0.0 keeps +1; -1e-9 flips; 0.3 flips from -; 1 stays.
    assert step([0.3, 0.0, 1, -1e-9]) == 0.25  # mean(0, 2/4)


def test_a_model_pools_its_binary_kernels_and_ignores_the_rest():
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(3), binary_dense(3, 2), binary_dense(2, 2)]
    )
    model.layers[1].kernel.assign(np.ones((3, 2), np.float32))
    model.layers[2].kernel.assign(np.ones((2, 2), np.float32))
    metric = tfqnn.metrics.FlipRatio(model)
    metric.update_state(None, None)
    model.layers[0].kernel.assign(-model.layers[0].kernel)  # float: not counted
    model.layers[1].kernel.assign(-np.ones((3, 2), np.float32))  # 6 flips
    model.layers[2].kernel.assign([[1.0, 1.0], [1.0, -1.0]])  # 1 flip
    metric.update_state(None, None)
    assert float(metric.result()) == pytest.approx(7 / 10)
    per_layer = tfqnn.metrics.FlipRatio(model.layers[2])
    assert len(per_layer.variables) == 4  # one sign copy, primed, total, count


class KernelRecorder(keras.callbacks.Callback):
    def __init__(self, layers):
        super().__init__()
        self.layers, self.steps = layers, []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(
            np.concatenate(
                [
                    np.sign(keras.ops.convert_to_numpy(layer.kernel) + 0.0).ravel()
                    for layer in self.layers
                ]
            )
        )


def test_in_fit_it_is_the_mean_of_the_steps_flips():
    model = binary_mlp()
    x, y = toy_data()
    binary_layers = [model.layers[2], model.layers[4]]
    case = tfqnn.optimizers.CaseOptimizer(
        (tfqnn.optimizers.is_binary_variable, tfqnn.optimizers.Bop(threshold=1e-4, gamma=0.05)),
        default_optimizer=keras.optimizers.Adam(0.01),
    )
    flips = tfqnn.metrics.FlipRatio(model)
    per_layer = tfqnn.metrics.FlipRatio(binary_layers[1], name="flips_last")
    model.compile(case, "sparse_categorical_crossentropy", metrics=[flips, per_layer])
    recorder = KernelRecorder(binary_layers)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[recorder])
    signs = np.where(np.array(recorder.steps) >= 0, 1, -1)  # sign(0) = +1
    ratios = np.mean(signs[1:] != signs[:-1], axis=1)  # step 1 only primes the metric
    per_epoch = len(x) // 16
    expected = [np.mean(ratios[: per_epoch - 1])] + [
        np.mean(ratios[e * per_epoch - 1 : (e + 1) * per_epoch - 1]) for e in (1, 2)
    ]
    np.testing.assert_allclose(history.history["flip_ratio"], expected, rtol=1e-5)
    assert max(expected) > 0  # Bop flipped something
    last = signs[:, -binary_layers[1].kernel.shape[0] * binary_layers[1].kernel.shape[1] :]
    last_ratios = np.mean(last[1:] != last[:-1], axis=1)
    np.testing.assert_allclose(
        history.history["flips_last"][-1], np.mean(last_ratios[2 * per_epoch - 1 :]), rtol=1e-5
    )


@pytest.mark.parametrize(
    "target, match",
    [
        (lambda: "model", "expected a Keras layer or model"),
        (
            lambda: tfqnn.layers.QuantDense(
                2, kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
            ),
            "expected a built",
        ),
        (
            lambda: keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]),
            "with a binary kernel",
        ),
    ],
)
def test_invalid_targets_raise(target, match):
    with pytest.raises(ValueError, match=f"Invalid target=.*{match}"):
        tfqnn.metrics.FlipRatio(target())


def test_a_metric_restored_from_its_config_reports_nan_and_warns():
    metric = tfqnn.metrics.FlipRatio(binary_dense(2, 2), name="flips")
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, tfqnn.metrics.FlipRatio) and restored.name == "flips"
    with pytest.warns(UserWarning, match="watches no weights"):
        restored.update_state()
    assert np.isnan(float(restored.result()))
