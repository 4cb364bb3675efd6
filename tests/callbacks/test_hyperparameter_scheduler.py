"""HyperparameterScheduler sets variable-backed hyperparameters that the compiled step reads."""

import keras
import numpy as np
import pytest

import tfqnn
from tests.optimizers.conftest import binary_mlp, toy_data


def compiled(bop, flips=True):
    model = binary_mlp()
    case = tfqnn.optimizers.CaseOptimizer(
        (tfqnn.optimizers.is_binary_variable, bop), default_optimizer=keras.optimizers.Adam(0.01)
    )
    metrics = [tfqnn.metrics.FlipRatio(model)] if flips else []
    model.compile(case, "sparse_categorical_crossentropy", metrics=metrics)
    return model


def test_an_epoch_schedule_reaches_the_compiled_step():
    """Threshold 1e9 (Bop cannot flip) in epoch 0, then 0 with gamma 1 (flips)."""
    bop = tfqnn.optimizers.Bop(threshold=1.0, gamma=1.0)
    model = compiled(bop)
    scheduler = tfqnn.callbacks.HyperparameterScheduler(
        lambda epoch: 1e9 if epoch == 0 else 0.0, bop, "threshold"
    )
    x, y = toy_data()
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[scheduler])
    assert history.history["threshold"] == [1e9, 0.0]
    assert history.history["flip_ratio"][0] == 0.0
    assert history.history["flip_ratio"][1] > 0.0


def test_a_step_schedule_gets_the_global_step_and_the_current_value(capsys):
    bop = tfqnn.optimizers.Bop(gamma=0.5)
    model = compiled(bop, flips=False)
    seen = []

    def halve(step, value):
        seen.append((step, value))
        return value / 2

    scheduler = tfqnn.callbacks.HyperparameterScheduler(
        halve, bop, "gamma", update_freq="step", verbose=1, log_name="bop_gamma"
    )
    x, y = toy_data(64)
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[scheduler])
    assert [s for s, _ in seen] == [0, 1, 2, 3]
    np.testing.assert_allclose([v for _, v in seen], [0.5, 0.25, 0.125, 0.0625])
    assert float(bop.gamma) == pytest.approx(0.5 / 16)
    assert history.history["bop_gamma"] == pytest.approx([0.125, 0.5 / 16])
    assert "Step 3: bop_gamma is now 0.03125." in capsys.readouterr().out


def test_the_models_optimizer_is_the_default():
    model = binary_mlp()
    model.compile(keras.optimizers.Adam(0.1), "sparse_categorical_crossentropy")
    scheduler = tfqnn.callbacks.HyperparameterScheduler(
        lambda epoch: 0.1 * 0.5**epoch, None, "learning_rate"
    )
    x, y = toy_data(32)
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[scheduler])
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.025])


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((42, None, "gamma"), {}, "Invalid schedule=42"),
        ((len, "adam", "gamma"), {}, "Invalid optimizer='adam'"),
        ((len, None, ""), {}, "Invalid hyperparameter=''"),
        ((len, None, "gamma"), {"update_freq": "batch"}, "Invalid update_freq='batch'"),
        ((len, None, "gamma"), {"verbose": 3}, "Invalid verbose=3"),
    ],
)
def test_invalid_arguments_raise_naming_them(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfqnn.callbacks.HyperparameterScheduler(*args, **kwargs)


def test_a_hyperparameter_that_is_not_a_variable_is_refused():
    adam = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="Invalid hyperparameter='beta_1'.*found float"):
        tfqnn.callbacks.HyperparameterScheduler(len, adam, "beta_1")
    model = binary_mlp()
    model.compile(adam, "mse")
    scheduler = tfqnn.callbacks.HyperparameterScheduler(len, None, "gamma")
    with pytest.raises(ValueError, match="Invalid hyperparameter='gamma'.*Adam has no variable"):
        scheduler.set_model(model)
