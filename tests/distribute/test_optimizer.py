"""`CompressedOptimizer` on one replica: the update, skipping, saving, config."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn.distribute
from tfqnn.distribute import (
    CompressedOptimizer,
    GradientCompressionStrategy,
    compressors,
)


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(3)]
    )


def _data(rng, n=128):
    return rng.normal(size=(n, 16)).astype(np.float32), rng.integers(0, 3, n)


def _gradients(model, x, y):
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x))
    return tape.gradient(loss, model.trainable_weights)


def _compile(model, optimizer):
    model.compile(
        optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )


def test_the_update_is_the_inner_optimizers_on_the_decoded_gradient(rng):
    """One SGD step moves each compressed kernel by -lr * D(C(g))."""
    x, y = _data(rng)
    model = _model()
    optimizer = CompressedOptimizer(
        keras.optimizers.SGD(0.5), compressors.OneBitEF(64), min_elements=500
    )
    _compile(model, optimizer)
    before = [w.numpy() for w in model.trainable_weights]
    grads = _gradients(model, x, y)
    optimizer.apply(grads, model.trainable_weights)
    compressor = optimizer.compressor
    for w, b, g in zip(model.trainable_weights, before, grads):
        compressed = g.shape.num_elements() >= 500
        step = compressor.decompress(compressor.compress(g)).numpy() if compressed else g.numpy()
        np.testing.assert_allclose(w.numpy(), b - 0.5 * step, atol=1e-6)
    state = optimizer.compression_state
    assert state.compressed == [True, False, False, False]  # 16x64 only; 64x3 < 500
    expected_residual = grads[0].numpy() - compressor.decompress(compressor.compress(grads[0]))
    np.testing.assert_allclose(state.slots[0]["residual"].numpy(), expected_residual, atol=1e-6)
    assert int(optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("on_nonfinite", ["skip", "raise"])
def test_non_finite_gradient_skips_or_raises(rng, on_nonfinite):
    x, y = _data(rng)
    model = _model()
    optimizer = CompressedOptimizer(
        keras.optimizers.Adam(0.01), "ef_sign", min_elements=100, on_nonfinite=on_nonfinite
    )
    _compile(model, optimizer)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    before = [v.numpy() for v in model.weights + optimizer.variables if v.name != "iteration"]
    poisoned = x.copy()
    poisoned[5, 3] = np.nan
    if on_nonfinite == "raise":
        with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
            model.train_on_batch(poisoned, y)
        return
    model.train_on_batch(poisoned, y)
    after = [v.numpy() for v in model.weights + optimizer.variables if v.name != "iteration"]
    for b, a in zip(before, after):  # weights, Adam's slots and the residuals
        np.testing.assert_array_equal(a, b)
    model.train_on_batch(x, y)  # and training goes on
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.weights))


def test_residuals_survive_save_and_load(tmp_path, rng):
    x, y = _data(rng)
    model = _model()
    _compile(
        model,
        CompressedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9), "onebit_ef", min_elements=100),
    )
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    state = model.optimizer.compression_state
    residuals = [v.numpy() for v in state.variables]
    assert all(np.abs(r).max() > 0 for r in residuals)

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, CompressedOptimizer)
    assert loaded.optimizer.compressor == compressors.OneBitEF()
    assert loaded.optimizer.min_elements == 100
    assert isinstance(loaded.optimizer.inner_optimizer, keras.optimizers.SGD)
    for r, v in zip(residuals, loaded.optimizer.compression_state.variables):
        np.testing.assert_array_equal(v.numpy(), r)

    weights = str(tmp_path / "w.weights.h5")
    model.save_weights(weights)
    fresh = _model(seed=1)
    _compile(
        fresh,
        CompressedOptimizer(keras.optimizers.SGD(0.1, momentum=0.9), "onebit_ef", min_elements=100),
    )
    fresh.optimizer.build(fresh.trainable_variables)
    fresh.load_weights(weights)
    for r, v in zip(residuals, fresh.optimizer.compression_state.variables):
        np.testing.assert_array_equal(v.numpy(), r)
    # The same next step from both.
    model.train_on_batch(x[:32], y[:32])
    fresh.train_on_batch(x[:32], y[:32])
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_config_round_trip():
    optimizer = CompressedOptimizer(
        keras.optimizers.Adam(0.002),
        compressors.QSGD(levels=8),
        min_elements=4096,
        on_nonfinite="raise",
        name="cq",
    )
    config = keras.optimizers.serialize(optimizer)
    again = keras.optimizers.deserialize(config)
    assert isinstance(again, CompressedOptimizer)
    assert again.get_config() == optimizer.get_config()
    assert again.compressor == compressors.QSGD(levels=8)
    assert float(again.learning_rate) == pytest.approx(0.002)


def test_learning_rate_and_loss_scale_are_the_inner_optimizers():
    inner = keras.optimizers.SGD(0.3)
    optimizer = CompressedOptimizer(inner, "float16")
    optimizer.learning_rate = 0.05
    assert float(inner.learning_rate) == pytest.approx(0.05)
    assert optimizer.iterations is inner.iterations


def test_invalid_arguments():
    with pytest.raises(ValueError, match="compressor"):
        CompressedOptimizer("sgd", "onebit")
    with pytest.raises(ValueError, match="min_elements"):
        CompressedOptimizer("sgd", "float16", min_elements=0)
    with pytest.raises(ValueError, match="on_nonfinite"):
        CompressedOptimizer("sgd", "float16", on_nonfinite="ignore")
    with pytest.raises(ValueError, match="clipnorm"):
        CompressedOptimizer("sgd", "float16", clipnorm=1.0)
    with pytest.raises(ValueError, match="strategy"):
        GradientCompressionStrategy("float16", strategy=tf.distribute.get_strategy())
    with pytest.raises(ValueError, match="on_nonfinite"):
        GradientCompressionStrategy("float16", on_nonfinite="maybe")


def test_local_clipping_warns():
    with pytest.warns(UserWarning, match="clipnorm"):
        CompressedOptimizer(keras.optimizers.SGD(0.1, clipnorm=1.0), "float16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CompressedOptimizer(keras.optimizers.SGD(0.1), "float16")


def test_plain_optimizers_are_untouched(rng):
    """The hook leaves an optimizer without compression on Keras' own path."""
    assert tfqnn.distribute.optimizer._original  # installed on import
    x, y = _data(rng, n=32)
    model = _model()
    optimizer = keras.optimizers.SGD(0.1)
    _compile(model, optimizer)
    before = [w.numpy() for w in model.trainable_weights]
    grads = _gradients(model, x, y)
    optimizer.apply(grads, model.trainable_weights)
    assert getattr(optimizer, "_tfqnn_compression", None) is None
    for w, b, g in zip(model.trainable_weights, before, grads):
        np.testing.assert_allclose(w.numpy(), b - 0.1 * g.numpy(), atol=1e-7)
