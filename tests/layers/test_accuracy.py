"""End-to-end accuracy of quantized MLPs on the bundled 8x8 digits (1,347 / 450 images).

Configurations picked as the smallest that passed with margin across seeds
(these tests run with SEED = 0..7 on CPU, TF 2.21 / Keras 3.15):

- binarized 64-256-10 MLP, 15 epochs: 96.0-98.2 % test accuracy (threshold 95 %;
  a 64-128-10 MLP dipped to 95.8 %);
- DoReFa W2A2 64-256-10 MLP, 15 epochs: 98.0-98.9 % (threshold 96 %;
  64-128-10 dipped to 96.9 %).

Each test runs one seed (SEED = 0: 98.0 % and 98.2 %) in about 3 seconds.
"""

import warnings

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn.layers import QuantDense
from tfqnn.quantizers import DoReFa

BATCH = 32
EPOCHS = 15
SEED = 0


@pytest.fixture(scope="module")
def digits():
    return tfqnn.datasets.load_digits()


def _train_and_evaluate(model, digits, learning_rate=1e-2):
    (x_train, y_train), (x_test, y_test) = digits
    steps = EPOCHS * int(np.ceil(len(x_train) / BATCH))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)
    model.compile(
        keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(x_train, y_train, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    # evaluate's accuracy agrees with predictions counted by hand.
    counted = np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test)
    assert accuracy == pytest.approx(counted, abs=1e-6)
    return counted


def test_binarized_mlp_on_digits(digits):
    keras.utils.set_random_seed(SEED)
    binary = dict(kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # every binary kernel is constrained
        model = keras.Sequential(
            [
                keras.Input((8, 8)),
                keras.layers.Flatten(),
                QuantDense(256, **binary),
                keras.layers.BatchNormalization(),
                QuantDense(10, input_quantizer="ste_sign", **binary),
                keras.layers.BatchNormalization(),
                keras.layers.Activation("softmax"),
            ]
        )
    accuracy = _train_and_evaluate(model, digits)
    assert accuracy >= 0.95
    # The trained kernels are binary at inference: their latent weights stay clipped.
    for layer in model.layers:
        if isinstance(layer, QuantDense):
            assert np.abs(layer.kernel.numpy()).max() <= 1.0


def test_dorefa_w2a2_mlp_on_digits(digits):
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input((8, 8)),
            keras.layers.Flatten(),
            QuantDense(256, kernel_quantizer=DoReFa(2, mode="weights"), use_bias=False),
            keras.layers.BatchNormalization(),
            QuantDense(
                10,
                input_quantizer=DoReFa(2),
                kernel_quantizer=DoReFa(2, mode="weights"),
                use_bias=False,
            ),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("softmax"),
        ]
    )
    accuracy = _train_and_evaluate(model, digits)
    assert accuracy >= 0.96
    # The hidden layer's quantized kernel takes 4 values at most (2 bits).
    hidden = model.layers[1]
    assert len(np.unique(hidden.kernel_quantizer(hidden.kernel).numpy())) <= 4
