"""Export of the weight-quantization procedures' layers: power-of-two (INQ) and
multi-basis kernels with float inputs as float builtins (their quantized kernels
folded), a one-basis sketch with binary inputs as a binary op. Multi-basis kernels
with binary or multi-basis inputs: test_multi_basis_export.py."""

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.quantizers import MultiBinary, PowerOfTwo, ResidualSign


def model_with(rng, quantizers):
    keras.utils.set_random_seed(int(rng.integers(1000)))
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            QuantConv2D(8, 3, **quantizers()),
            keras.layers.Flatten(),
            QuantDense(5, **quantizers()),
        ]
    )


@pytest.mark.parametrize(
    "quantizers",
    [
        pytest.param(lambda: {"kernel_quantizer": PowerOfTwo(5)}, id="inq_power_of_two"),
        pytest.param(
            lambda: {"kernel_quantizer": MultiBinary(3, axis=-1)},
            id="multi_binary",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            lambda: {"kernel_quantizer": ResidualSign(3, refined=False)},
            id="residual_sign",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_multi_level_kernels_export_as_float_builtins(rng, quantizers):
    model = model_with(rng, quantizers)
    x = rng.uniform(-1, 1.5, (6, 8, 8, 2)).astype(np.float32)
    data = tfqnn.export.to_tflite(model)
    assert tfqnn.lite.custom_ops_in(data) == {}
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:QuantDense has a binary kernel_quantizer")
def test_one_basis_sketch_with_binary_inputs_exports_as_a_binary_op(rng):
    # ResidualSign(1) is alpha_o sign(W) per filter: a scaled binary kernel.
    model = keras.Sequential(
        [
            keras.Input((40,)),
            QuantDense(8, input_quantizer="ste_sign", kernel_quantizer=ResidualSign(1)),
        ]
    )
    x = rng.normal(size=(6, 40)).astype(np.float32)
    data = tfqnn.export.to_tflite(model)
    assert tfqnn.lite.custom_ops_in(data)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(actual, model.predict(x, verbose=0), rtol=1e-5, atol=1e-4)
