"""Small binarized models shared by the optimizer, metric and callback tests."""

import keras
import numpy as np
import pytest

import tfqnn

BINARY = dict(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    use_bias=False,
)


def binary_mlp(inputs=8, units=16, classes=3, seed=0):
    """Float first layer (kernel and bias), BatchNorm, two binary kernels.

    Trainable variables, in order: dense kernel, dense bias, BN gamma, BN
    beta, binary kernel, BN gamma, BN beta, binary kernel.
    """
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((inputs,)),
            tfqnn.layers.QuantDense(units),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantDense(units, **BINARY),
            keras.layers.BatchNormalization(),
            tfqnn.layers.QuantDense(classes, **BINARY),
            keras.layers.Activation("softmax"),
        ]
    )


def toy_data(n=128, inputs=8, seed=0):
    """A learnable 3-class problem on Gaussian inputs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, inputs)).astype("float32")
    y = ((x[:, 0] > 0).astype("int32") + (x[:, 1] > 1)).astype("int32")
    return x, y


@pytest.fixture
def model():
    return binary_mlp()


@pytest.fixture
def data():
    return toy_data()
