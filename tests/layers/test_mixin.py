"""What QuantizerMixin gives every quantized layer: gradients that reach each
latent kernel through its quantizer, the weight_clip alias and warning, the
kernel's channel axis for per-channel quantizers, channels-first bias and
padding, random state, Keras's post-training quantize() and mixed precision."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn.layers import (
    QuantActivation,
    QuantConv1D,
    QuantConv2D,
    QuantConv2DTranspose,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantSeparableConv2D,
)
from tfqnn.quantizers import DoReFa, ScaledSign, StochasticSign

from .factories import (
    ATOL,
    INPUT_SHAPES,
    KERNEL_ATTRS,
    LAYER_NAMES,
    binary_layer,
    built,
    channels_first_or_skip,
    f32,
    randomize,
    weight_clip_warnings,
)

CHANNELS_FIRST_FACTORIES = {
    "conv1d": (lambda df: binary_layer("conv1d", data_format=df), (2, 7, 3)),
    "depthwise": (lambda df: binary_layer("depthwise", data_format=df), (2, 5, 7, 2)),
    "separable": (lambda df: binary_layer("separable", data_format=df), (2, 5, 7, 2)),
    "transpose": (lambda df: binary_layer("transpose", data_format=df), (2, 3, 4, 2)),
}


@pytest.mark.parametrize("name", list(CHANNELS_FIRST_FACTORIES))
def test_other_layers_channels_first_match_channels_last(name, rng):
    """The channels_first layer equals the (numpy-checked) channels_last one on transposed data."""
    factory, shape = CHANNELS_FIRST_FACTORIES[name]
    last, first = factory("channels_last"), factory("channels_first")
    perm = (0, len(shape) - 1) + tuple(range(1, len(shape) - 1))
    inverse = tuple(np.argsort(perm))
    x = f32(rng.normal(size=shape))
    built(last, shape, rng)
    first.build(tuple(np.array(shape)[list(perm)]))
    first.set_weights(last.get_weights())
    out = channels_first_or_skip(lambda: first(np.transpose(x, perm)).numpy())
    np.testing.assert_allclose(np.transpose(out, inverse), last(x).numpy(), atol=ATOL)


@pytest.mark.parametrize("name", ["conv2d", "transpose"])
def test_channels_first_bias_when_width_equals_filters(name, ref, rng):
    if name == "conv2d":
        make = lambda df: QuantConv2D(  # noqa: E731
            4,
            3,
            padding="valid",
            data_format=df,
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
        )
        shape = (2, 7, 6, 3)  # -> (2, 5, 4, 4) channels_last, (2, 4, 5, 4) channels_first
    else:
        make = lambda df: QuantConv2DTranspose(  # noqa: E731
            4,
            2,
            strides=2,
            data_format=df,
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
        )
        shape = (2, 3, 2, 3)  # -> (2, 6, 4, 4) channels_last, (2, 4, 6, 4) channels_first
    last, first = make("channels_last"), make("channels_first")
    x = f32(rng.normal(size=shape))
    built(last, shape, rng)
    kernel, _ = last.get_weights()
    bias = f32([10.0, 20.0, 30.0, 40.0])  # one value per channel, easy to tell apart
    last.set_weights([kernel, bias])
    first.build((shape[0], shape[3], shape[1], shape[2]))
    first.set_weights([kernel, bias])
    out = channels_first_or_skip(lambda: first(np.transpose(x, (0, 3, 1, 2))).numpy())
    assert out.shape[-1] == 4
    np.testing.assert_allclose(np.transpose(out, (0, 2, 3, 1)), last(x).numpy(), atol=ATOL)


@pytest.mark.parametrize(
    "factory,attr,axis",
    [
        (lambda: QuantDense(3, kernel_quantizer="scaled_sign"), "kernel_quantizer", -1),
        (lambda: QuantConv1D(3, 3, kernel_quantizer="scaled_sign"), "kernel_quantizer", -1),
        (lambda: QuantConv2D(3, 3, kernel_quantizer="scaled_sign"), "kernel_quantizer", -1),
        (
            lambda: QuantConv2DTranspose(3, 3, kernel_quantizer="scaled_sign"),
            "kernel_quantizer",
            -2,
        ),
        (
            lambda: QuantDepthwiseConv2D(3, depthwise_quantizer="scaled_sign"),
            "depthwise_quantizer",
            (-2, -1),
        ),
        (
            lambda: QuantSeparableConv2D(3, 3, depthwise_quantizer=ScaledSign()),
            "depthwise_quantizer",
            (-2, -1),
        ),
        (
            lambda: QuantSeparableConv2D(3, 3, pointwise_quantizer="scaled_sign"),
            "pointwise_quantizer",
            -1,
        ),
    ],
    ids=["dense", "conv1d", "conv2d", "transpose", "depthwise", "separable-dw", "separable-pw"],
)
def test_scaled_sign_gets_the_kernel_channel_axis(factory, attr, axis):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = factory()
    quantizer = getattr(layer, attr)
    assert isinstance(quantizer, ScaledSign)
    assert quantizer.axis == axis
    # The axis survives the config round trip.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        clone = type(layer).from_config(layer.get_config())
    assert getattr(clone, attr).axis == axis


def test_explicit_scaled_sign_axis_is_kept_and_argument_not_mutated():
    given = ScaledSign()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        layer = QuantConv2DTranspose(3, 3, kernel_quantizer=given)
        explicit = QuantConv2DTranspose(3, 3, kernel_quantizer=ScaledSign(axis=0))
    assert layer.kernel_quantizer.axis == -2
    assert given.axis == -1
    assert explicit.kernel_quantizer.axis == 0


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_training_step_updates_every_latent_kernel(name, rng):
    layer = binary_layer(name)
    shape = INPUT_SHAPES[name]
    x = tf.constant(f32(rng.normal(size=shape)))
    layer.build(shape)
    randomize(layer, rng, scale=0.5)
    kernels = [getattr(layer, attr) for attr in KERNEL_ATTRS[name]]
    before = [k.numpy().copy() for k in kernels]
    target = tf.constant(f32(rng.normal(size=layer.compute_output_shape(shape))))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(layer(x, training=True) - target))
    grads = tape.gradient(loss, kernels)
    for attr, grad in zip(KERNEL_ATTRS[name], grads):
        assert grad is not None, f"no gradient reached {attr}"
        assert np.count_nonzero(grad.numpy()) > 0, f"zero gradient for {attr}"
    keras.optimizers.SGD(0.05).apply(grads, kernels)
    for attr, kernel, old in zip(KERNEL_ATTRS[name], kernels, before):
        assert not np.array_equal(kernel.numpy(), old), f"{attr} did not change"


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_fit_changes_latent_kernels(name, rng):
    keras.utils.set_random_seed(1)
    shape = INPUT_SHAPES[name]
    layer = binary_layer(name)
    model = keras.Sequential(
        [keras.Input(shape[1:]), layer, keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    before = {attr: getattr(layer, attr).numpy().copy() for attr in KERNEL_ATTRS[name]}
    x = f32(rng.normal(size=(16,) + shape[1:]))
    y = f32(rng.normal(size=(16, 1)))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for attr, old in before.items():
        new = getattr(layer, attr).numpy()
        assert not np.array_equal(new, old), f"{attr} did not change"
        assert np.abs(new).max() <= 1.0


def test_stochastic_quantizers_are_random_in_fit_and_deterministic_in_predict(rng):
    """In fit the stochastic kernel draws; predict uses the deterministic rounding."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            QuantDense(4, kernel_quantizer=StochasticSign(seed=1), kernel_constraint="weight_clip"),
            QuantActivation(StochasticSign(seed=2)),
        ]
    )
    x = f32(rng.normal(size=(16, 6)))
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
    seed_state = [v.numpy().copy() for v in model.variables if "seed_generator" in v.path]
    assert seed_state
    model.compile(keras.optimizers.SGD(0.0), "mse")
    model.fit(x, np.zeros((16, 4), np.float32), batch_size=16, epochs=1, verbose=0)
    after = [v.numpy() for v in model.variables if "seed_generator" in v.path]
    # Training drew random numbers: the seed state advanced.
    assert any(not np.array_equal(a, b) for a, b in zip(after, seed_state))
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)  # lr=0: weights unchanged


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_binary_kernel_without_constraint_warns(name):
    kwargs = {
        "dense": lambda: QuantDense(3, kernel_quantizer="ste_sign"),
        "conv1d": lambda: QuantConv1D(3, 3, kernel_quantizer="approx_sign"),
        "conv2d": lambda: QuantConv2D(3, 3, kernel_quantizer="ste_sign"),
        "depthwise": lambda: QuantDepthwiseConv2D(3, depthwise_quantizer="scaled_sign"),
        "separable": lambda: QuantSeparableConv2D(3, 3, pointwise_quantizer="ste_sign"),
        "transpose": lambda: QuantConv2DTranspose(3, 3, kernel_quantizer=StochasticSign()),
    }[name]
    with pytest.warns(UserWarning, match="weight_clip"):
        kwargs()


def test_any_one_bit_kernel_quantizer_warns():
    """The criterion is the quantizer's precision (1 bit), not its class."""
    with pytest.warns(UserWarning, match="weight_clip"):
        QuantConv2D(3, 3, kernel_quantizer=DoReFa(1, mode="weights"))
    with pytest.warns(UserWarning, match="weight_clip"):
        QuantDense(3, kernel_quantizer=tfqnn.quantizers.NoOp(precision=1))


def test_separable_warns_for_each_unconstrained_binary_kernel():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        QuantSeparableConv2D(3, 3, depthwise_quantizer="ste_sign", pointwise_quantizer="ste_sign")
    messages = [str(w.message) for w in weight_clip_warnings(record)]
    assert len(messages) == 2
    assert any("depthwise" in m for m in messages) and any("pointwise" in m for m in messages)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        QuantSeparableConv2D(
            3,
            3,
            depthwise_quantizer="ste_sign",
            pointwise_quantizer="ste_sign",
            depthwise_constraint="weight_clip",
        )
    messages = [str(w.message) for w in weight_clip_warnings(record)]
    assert len(messages) == 1 and "pointwise" in messages[0]


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_no_warning_with_weight_clip(name):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        layer = binary_layer(name)
        type(layer).from_config(layer.get_config())
    assert weight_clip_warnings(record) == []


@pytest.mark.parametrize(
    "factory",
    [
        lambda: QuantDense(3, kernel_quantizer=DoReFa(2, mode="weights")),
        lambda: QuantDense(3, kernel_quantizer="ste_tern"),
        lambda: QuantConv2D(
            3, 3, input_quantizer="ste_sign"
        ),  # a binary *input* needs no constraint
        lambda: QuantDense(
            3, kernel_quantizer="ste_sign", kernel_constraint=keras.constraints.MaxNorm(1.0)
        ),
    ],
    ids=["dorefa2", "ternary", "binary-input", "other-constraint"],
)
def test_no_warning_without_binary_unconstrained_kernel(factory):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        factory()
    assert weight_clip_warnings(record) == []


def test_weight_clip_warning_points_at_the_caller():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        QuantDense(3, kernel_quantizer="ste_sign")  # the line the warning should name
    (warning,) = weight_clip_warnings(record)
    assert warning.filename == __file__


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_weight_clip_alias_is_a_weight_clip_constraint(name):
    layer = binary_layer(name)
    constraint_attrs = {
        "depthwise": ["depthwise_constraint"],
        "separable": ["depthwise_constraint", "pointwise_constraint"],
    }.get(name, ["kernel_constraint"])
    for attr in constraint_attrs:
        constraint = getattr(layer, attr)
        assert isinstance(constraint, tfqnn.constraints.WeightClip)
        assert constraint.clip_value == 1.0


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_weight_clip_clips_after_a_training_step(name, rng):
    """A big SGD step pushes the latent weights far past 1; the constraint clips them back."""
    shape = INPUT_SHAPES[name]
    layer = binary_layer(name)
    layer.build(shape)
    randomize(layer, rng, scale=0.9)
    kernels = [getattr(layer, attr) for attr in KERNEL_ATTRS[name]]
    x = tf.constant(f32(rng.normal(size=shape)))
    g = tf.constant(f32(rng.normal(size=layer.compute_output_shape(shape))))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) * g)
    grads = tape.gradient(loss, kernels)
    unclipped = [k.numpy() - 100.0 * gr.numpy() for k, gr in zip(kernels, grads)]
    assert all(np.abs(u).max() > 1.5 for u in unclipped)  # the step would leave [-1, 1]
    keras.optimizers.SGD(100.0).apply(grads, kernels)
    for kernel, expected in zip(kernels, unclipped):
        np.testing.assert_allclose(kernel.numpy(), np.clip(expected, -1.0, 1.0), atol=1e-4)


def test_weight_clip_with_fit(rng):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            QuantDense(
                8, kernel_quantizer="ste_sign", kernel_constraint=tfqnn.constraints.WeightClip(0.5)
            ),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(50.0), "mse")
    model.fit(
        f32(rng.normal(size=(32, 6))), f32(rng.normal(size=(32, 1)) * 10), epochs=1, verbose=0
    )
    kernel = model.layers[0].kernel.numpy()
    assert np.abs(kernel).max() <= 0.5 + 1e-6
    assert np.isclose(np.abs(kernel).max(), 0.5)


def test_keras_post_training_quantize_skips_tfqnn_layers_and_quantizes_the_others(rng):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            QuantDense(
                4,
                input_quantizer="ste_sign",
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
            ),
            keras.layers.Dense(3),
        ]
    )
    x = f32(rng.normal(size=(5, 6)))
    before = model.layers[0](x).numpy()
    with pytest.warns(UserWarning, match="quantized by its tfqnn quantizers"):
        model.quantize("int8")
    assert model.layers[0].quantization_mode is None
    assert model.layers[1].quantization_mode == "int8"
    np.testing.assert_array_equal(model.layers[0](x).numpy(), before)


def test_mixed_float16_layers_quantize_in_float16_and_train(rng):
    layer = QuantConv2D(
        4,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        dtype="mixed_float16",
    )
    x = f32(rng.normal(size=(2, 5, 5, 3)))
    y = layer(x)
    assert y.dtype == "float16" and layer.kernel.dtype == "float32"
    float_layer = QuantConv2D(
        4,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
    )
    float_layer.build(x.shape)
    float_layer.set_weights(layer.get_weights())
    # Sums of +-1 products and a float16 bias: equal up to the bias's rounding.
    np.testing.assert_allclose(y.numpy().astype("float32"), float_layer(x).numpy(), atol=1e-3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(layer(x), "float32") ** 2)
    grad = tape.gradient(loss, layer.kernel)
    assert grad.dtype == "float32" and float(tf.reduce_max(tf.abs(grad))) > 0
