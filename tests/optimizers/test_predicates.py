"""is_binary_variable picks exactly the latent weights of binary kernels."""

import keras

import tfqnn
from tfqnn.layers.base import latent_quantizer


def test_is_binary_variable_marks_binary_kernels_only():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4, 4, 2)),
            tfqnn.layers.QuantConv2D(
                3, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
            ),
            tfqnn.layers.QuantSeparableConv2D(
                4,
                2,
                depthwise_quantizer="approx_sign",
                depthwise_constraint="weight_clip",
                pointwise_quantizer="dorefa",
            ),
            keras.layers.Reshape((4, 1)),
            tfqnn.layers.QuantLSTM(
                2,
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
                recurrent_quantizer=None,
            ),
            keras.layers.Dense(2),
        ]
    )
    binary = [v for v in model.trainable_variables if tfqnn.optimizers.is_binary_variable(v)]
    expected = [
        model.layers[0].kernel,
        model.layers[1].depthwise_kernel,
        model.layers[3].cell.kernel,
    ]
    assert [id(v) for v in binary] == [id(v) for v in expected]
    dorefa = model.layers[1].pointwise_kernel
    assert latent_quantizer(dorefa).precision == 2
    assert latent_quantizer(model.layers[0].bias) is None
    assert latent_quantizer(model.layers[-1].kernel) is None


def test_a_loaded_model_marks_its_kernels_again(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((3,)),
            tfqnn.layers.QuantDense(
                2, kernel_quantizer="ste_sign", kernel_constraint="weight_clip"
            ),
        ]
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    marks = [tfqnn.optimizers.is_binary_variable(v) for v in loaded.trainable_variables]
    assert marks == [True, False]


def test_a_quantizer_set_after_build_counts():
    layer = tfqnn.layers.QuantDense(3)
    keras.Sequential([keras.Input((4,)), layer])
    assert latent_quantizer(layer.kernel) is None
    layer.kernel_quantizer = tfqnn.quantizers.SteSign()
    assert tfqnn.optimizers.is_binary_variable(layer.kernel)
    layer.kernel_quantizer = tfqnn.quantizers.PowerOfTwo(4)  # as INQ does at its last step
    assert latent_quantizer(layer.kernel) == tfqnn.quantizers.PowerOfTwo(4)
    assert not tfqnn.optimizers.is_binary_variable(layer.kernel)


def test_a_binary_bias_is_not_a_binary_kernel():
    model = keras.Sequential(
        [
            keras.Input((3, 2)),
            tfqnn.layers.QuantGRU(
                2,
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
                bias_quantizer="ste_sign",
                bias_constraint="weight_clip",
            ),
        ]
    )
    cell = model.layers[0].cell
    assert [tfqnn.optimizers.is_binary_variable(v) for v in cell.weights] == [True, False, False]
    assert [v.path.rsplit("/", 1)[1] for v in cell.weights] == [
        "kernel",
        "recurrent_kernel",
        "bias",
    ]
    assert latent_quantizer(cell.bias) is None
