"""`CompressedOptimizer` on one replica: the update, skipping, saving, config."""

import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfqnn.distribute import (
    CompressedOptimizer,
    CompressionConfig,
    GradientCompressionStrategy,
    _hook,
    compressors,
    nonfinite,
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
    CompressedOptimizer("sgd", "float16")  # installs the hook
    assert _hook.is_installed()
    x, y = _data(rng, n=32)
    model = _model()
    optimizer = keras.optimizers.SGD(0.1)
    _compile(model, optimizer)
    before = [w.numpy() for w in model.trainable_weights]
    grads = _gradients(model, x, y)
    optimizer.apply(grads, model.trainable_weights)
    assert _hook.attached(optimizer) is None
    for w, b, g in zip(model.trainable_weights, before, grads):
        np.testing.assert_allclose(w.numpy(), b - 0.1 * g.numpy(), atol=1e-7)


def test_nan_policy_applies_nan_sums_on_every_variable(rng):
    """on_nonfinite="nan": the step is applied with NaN sums, as Keras does
    without compression; the residuals keep their values."""
    x, y = _data(rng)
    model = _model()
    optimizer = CompressedOptimizer(
        keras.optimizers.SGD(0.1), "ef_sign", min_elements=100, on_nonfinite="nan"
    )
    _compile(model, optimizer)
    model.train_on_batch(x, y)
    residuals = [v.numpy() for v in optimizer.compression_state.variables]
    poisoned = x.copy()
    poisoned[0, 0] = np.inf
    model.train_on_batch(poisoned, y)
    for w in model.trainable_weights:  # compressed or not, every sum was NaN
        assert np.isnan(w.numpy()).all(), w.path
    for r, v in zip(residuals, optimizer.compression_state.variables):
        np.testing.assert_array_equal(v.numpy(), r)


# --- CompressionConfig and the on_nonfinite vocabulary ------------------------


def test_compression_config_resolves_and_validates_each_argument():
    config = CompressionConfig("qsgd", min_elements=1, on_nonfinite="raise")
    assert config.compressor == compressors.QSGD()
    assert (config.min_elements, config.on_nonfinite) == (1, "raise")
    assert CompressionConfig(compressors.OneBitEF(64)) == CompressionConfig(
        compressors.OneBitEF(64), 1024, "skip"
    )
    for kwargs, message in [
        ({"compressor": "onebit"}, "Invalid compressor 'onebit'"),
        ({"compressor": 3}, "Invalid compressor 3"),
        ({"min_elements": 0}, "Invalid min_elements=0: expected an integer >= 1"),
        ({"min_elements": 2.0}, "Invalid min_elements=2.0"),
        ({"on_nonfinite": "ignore"}, "Invalid on_nonfinite='ignore': expected one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            CompressionConfig(**{"compressor": "float16", **kwargs})
    with pytest.raises(AttributeError):
        config.min_elements = 5  # frozen: validated once


@pytest.mark.parametrize("value", nonfinite.ON_NONFINITE)
def test_every_on_nonfinite_value_is_accepted_everywhere(value):
    assert nonfinite.ON_NONFINITE == ("skip", "raise", "nan")
    assert CompressionConfig("float16", on_nonfinite=value).on_nonfinite == value
    assert CompressedOptimizer("sgd", "float16", on_nonfinite=value).on_nonfinite == value
    # The strategy validates its config first; only then does it look at strategy=.
    with pytest.raises(ValueError, match="Invalid strategy="):
        GradientCompressionStrategy("float16", strategy=object(), on_nonfinite=value)
    compressor = compressors.Float16()
    if value == "skip":  # no step to skip: the caller applies the sums
        with pytest.raises(ValueError, match="Invalid on_nonfinite='skip': expected 'raise'"):
            compressor.all_reduce([tf.ones([4])], on_nonfinite=value)
    else:
        sums = tf.function(lambda: compressor.all_reduce([tf.ones([4])], on_nonfinite=value))()
        np.testing.assert_array_equal(sums[0].numpy(), np.ones(4))


def test_an_unknown_on_nonfinite_value_is_refused_everywhere_with_one_message():
    expected = "Invalid on_nonfinite='ignore': expected one of 'skip', 'raise', 'nan'."
    attempts = [
        lambda: CompressionConfig("float16", on_nonfinite="ignore"),
        lambda: CompressedOptimizer("sgd", "float16", on_nonfinite="ignore"),
        lambda: GradientCompressionStrategy("float16", on_nonfinite="ignore"),
        lambda: compressors.Float16().all_reduce([tf.ones([4])], on_nonfinite="ignore"),
    ]
    for attempt in attempts:
        with pytest.raises(ValueError) as error:
            attempt()
        assert str(error.value) == expected


def test_public_settings_read_through_the_config():
    optimizer = CompressedOptimizer("sgd", "terngrad", min_elements=7, on_nonfinite="nan")
    config = optimizer.compression_config
    assert config == CompressionConfig(compressors.TernGrad(), 7, "nan")
    assert (optimizer.compressor, optimizer.min_elements, optimizer.on_nonfinite) == (
        config.compressor,
        7,
        "nan",
    )


# --- the hook is installed by construction, not by import ---------------------


def _run_clean(code):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


_HOOKED = """
    from keras.src.backend.tensorflow.optimizer import TFOptimizer

    def hooked():
        return (
            TFOptimizer._backend_update_step.__module__ == "tfqnn.distribute._hook"
            and TFOptimizer.build.__module__ == "tfqnn.distribute._hook"
        )
"""


def test_importing_tfqnn_distribute_does_not_install_the_hook_and_construction_does():
    out = _run_clean(
        _HOOKED
        + """
    import tfqnn.distribute
    print(hooked(), tfqnn.distribute.keras_workarounds.is_applied())
    tfqnn.distribute.CompressedOptimizer("sgd", "float16")
    print(hooked())
    tfqnn.distribute.CompressedOptimizer("adam", "qsgd")  # idempotent: still one hook
    from tfqnn.distribute import _hook
    print(hooked(), _hook._original["build"].__module__ != "tfqnn.distribute._hook")
    """
    )
    assert out == ["False", "True", "True", "True", "True"]


def test_the_strategy_installs_the_hook_and_exposes_its_config():
    """A single-worker MWMS (no TF_CONFIG) in a fresh process."""
    out = _run_clean(
        _HOOKED
        + """
    import keras
    import tfqnn.distribute
    print(hooked())
    strategy = tfqnn.distribute.GradientCompressionStrategy("powersgd", min_elements=10)
    print(hooked(), strategy.compression_config.min_elements, strategy.on_nonfinite)
    with strategy.scope():
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build([keras.Variable(keras.ops.zeros((40, 30)))])
    from tfqnn.distribute import _hook
    exchange = _hook.attached(optimizer)
    print(exchange.config is strategy.compression_config, exchange.state.compressed)
    """
    )
    assert out == ["False", "True", "10", "skip", "True", "[True]"]
