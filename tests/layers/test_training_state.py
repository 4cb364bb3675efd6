"""Training state (latent weights, optimizer) survives restarts through Keras checkpoints."""

import contextlib

import keras
import numpy as np

import tfqnn

BINARY = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    use_bias=False,
)


def _model():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            tfqnn.layers.QuantConv2D(8, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantConv2D(8, 3, padding="same", pad_values=1.0, **BINARY),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            tfqnn.layers.QuantDense(10, **BINARY),
            keras.layers.Activation("softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


def _data():
    (x, y), _ = tfqnn.datasets.load_digits()
    return x[:256, ..., None], y[:256]


class _StopAtEpoch(keras.callbacks.Callback):
    """Simulates a crash at the start of an epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"stopped at epoch {epoch}")


def _fit(model, x, y, epochs, callbacks=()):
    return model.fit(
        x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0, callbacks=list(callbacks)
    )


def test_backup_and_restore_resumes_a_binarized_model(tmp_path):
    x, y = _data()
    uninterrupted = _model()
    _fit(uninterrupted, x, y, epochs=3)

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    crashed = _model()
    with contextlib.suppress(KeyboardInterrupt):
        _fit(crashed, x, y, epochs=3, callbacks=[backup, _StopAtEpoch(2)])
    assert int(crashed.optimizer.iterations) == 2 * 8

    resumed = _model()  # a new process would start from a fresh model too
    history = _fit(resumed, x, y, epochs=3, callbacks=[backup])
    assert len(history.epoch) == 1  # only the third epoch ran again
    assert int(resumed.optimizer.iterations) == 3 * 8
    for expected, actual in zip(uninterrupted.weights, resumed.weights):
        np.testing.assert_allclose(
            actual.numpy(), expected.numpy(), atol=1e-5, err_msg=expected.path
        )


def test_keras_file_keeps_optimizer_state_and_training_continues_identically(tmp_path):
    x, y = _data()
    model = _model()
    _fit(model, x, y, epochs=1)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)

    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 8
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    _fit(model, x, y, epochs=1)
    _fit(loaded, x, y, epochs=1)
    for expected, actual in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(
            actual.numpy(), expected.numpy(), atol=1e-5, err_msg=expected.path
        )
    # The latent kernels were trained, and clipped to the STE's range.
    kernel = loaded.layers[2].kernel.numpy()
    assert np.abs(kernel).max() <= 1.0
