"""RangeFakeQuant: TensorFlow's fake quantization between stored ranges (tfmot's 8-bit scheme)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import quantizers


def numpy_fake_quant(x, low, high, bits, narrow_range):
    """The nudged fake quantization of Jacob et al. 2018 (TensorFlow's FakeQuantWithMinMaxVars)."""
    q_lo, q_hi = (1 if narrow_range else 0), 2**bits - 1
    low, high = np.float32(low), np.float32(high)
    scale = (high - low) / np.float32(q_hi - q_lo)
    zero = np.clip(np.round(np.float32(q_lo) - low / scale), q_lo, q_hi)
    lo, hi = (q_lo - zero) * scale, (q_hi - zero) * scale
    clipped = np.clip(x, lo, hi)
    y = np.floor((clipped - lo) / scale + np.float32(0.5)) * scale + lo
    inside = (x >= lo) & (x <= hi)
    return y.astype(np.float32), inside, (lo, hi, scale)


def with_range(quantizer, low, high):
    layer = tfqnn.layers.QuantActivation(quantizer)
    layer.quantizer.min_var.assign(np.asarray(low, np.float32))
    layer.quantizer.max_var.assign(np.asarray(high, np.float32))
    return layer


@pytest.mark.parametrize("bits,narrow_range", [(8, False), (8, True), (4, False), (3, True)])
def test_per_tensor_forward_and_gradient_match_numpy(rng, bits, narrow_range):
    low, high = -1.3, 2.1
    layer = with_range(quantizers.RangeFakeQuant(bits, narrow_range), low, high)
    x = rng.uniform(-3, 4, (5, 40)).astype(np.float32)
    dy = rng.uniform(0.5, 2.0, x.shape).astype(np.float32)
    x_tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tensor)
        y = layer(x_tensor, training=True)
    grad = tape.gradient(y, x_tensor, output_gradients=tf.constant(dy)).numpy()
    expected, inside, (lo, hi, scale) = numpy_fake_quant(x, low, high, bits, narrow_range)
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-6)
    # 0 is a level, and there are 2^bits (or 2^bits - 1) of them, scale apart.
    assert np.isclose(np.round(-lo / scale) * scale + lo, 0.0, atol=1e-6)
    levels = np.unique(np.round((y.numpy() - lo) / scale))
    assert levels.min() >= 0 and levels.max() <= 2**bits - 1 - (1 if narrow_range else 0)
    np.testing.assert_array_equal(grad, np.where(inside, dy, 0.0))
    # Fixed ranges: training and inference agree, and the range is not trained.
    np.testing.assert_array_equal(layer(x, training=False).numpy(), y.numpy())
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2


def test_per_channel_ranges_apply_to_the_last_axis(rng):
    low = np.float32([-0.5, -0.2, -1.0])
    high = -low
    layer = with_range(quantizers.RangeFakeQuant(8, narrow_range=True, channels=3), low, high)
    x = rng.uniform(-1.2, 1.2, (4, 5, 3)).astype(np.float32)
    y = layer(x).numpy()
    for c in range(3):
        expected, _, _ = numpy_fake_quant(x[..., c], low[c], high[c], 8, True)
        np.testing.assert_allclose(y[..., c], expected, atol=1e-6)
    # narrow_range and a symmetric range: 255 levels, symmetric around 0.
    assert np.abs(y[..., 1]).max() == pytest.approx(0.2, abs=1e-6)
    assert np.unique(y[..., 1]).size <= 255


def test_kernel_quantizer_of_a_layer_saves_and_loads(tmp_path, rng):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            tfqnn.layers.QuantDense(
                4, kernel_quantizer=quantizers.RangeFakeQuant(8, True, channels=4)
            ),
        ]
    )
    quantizer = model.layers[0].kernel_quantizer
    quantizer.min_var.assign(-np.float32([0.1, 0.2, 0.3, 0.4]))
    quantizer.max_var.assign(np.float32([0.1, 0.2, 0.3, 0.4]))
    x = rng.normal(size=(3, 6)).astype(np.float32)
    kernel = model.layers[0].kernel.numpy()
    expected_kernel = np.stack(
        [numpy_fake_quant(kernel[:, c], -(c + 1) / 10, (c + 1) / 10, 8, True)[0] for c in range(4)],
        axis=-1,
    )
    expected = x @ expected_kernel + model.layers[0].bias.numpy()
    np.testing.assert_allclose(model(x).numpy(), expected, atol=1e-5)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())
    assert restored.layers[0].kernel_quantizer == quantizer


def test_config_round_trip_and_precision():
    quantizer = quantizers.RangeFakeQuant(4, True, channels=2, min_value=-1.0, max_value=3.0)
    assert quantizers.get(quantizers.serialize(quantizer)) == quantizer
    assert quantizer.precision == 4
    assert type(quantizers.get("range_fake_quant")) is quantizers.RangeFakeQuant


def test_invalid_arguments_and_use_without_a_layer():
    with pytest.raises(ValueError, match="Invalid bits=1"):
        quantizers.RangeFakeQuant(1)
    with pytest.raises(ValueError, match="Invalid bits=17"):
        quantizers.RangeFakeQuant(17)
    with pytest.raises(ValueError, match="Invalid narrow_range=1"):
        quantizers.RangeFakeQuant(8, narrow_range=1)
    with pytest.raises(ValueError, match="Invalid channels=0"):
        quantizers.RangeFakeQuant(8, channels=0)
    with pytest.raises(ValueError, match="min_value <= 0 <= max_value"):
        quantizers.RangeFakeQuant(8, min_value=0.5, max_value=1.0)
    with pytest.raises(ValueError, match="min_value <= 0 <= max_value"):
        quantizers.RangeFakeQuant(8, min_value=0.0, max_value=0.0)
    with pytest.raises(ValueError, match="Invalid training_range='ema'"):
        quantizers.RangeFakeQuant(8, training_range="ema")
    with pytest.raises(ValueError, match="Invalid symmetric=None"):
        quantizers.RangeFakeQuant(8, symmetric=None)
    with pytest.raises(ValueError, match="Invalid decay=1"):
        quantizers.RangeFakeQuant(8, decay=1)
    with pytest.raises(ValueError, match="a tfqnn layer creates"):
        quantizers.RangeFakeQuant(8)(np.zeros(3, np.float32))
    shared = quantizers.RangeFakeQuant(8)
    tfqnn.layers.QuantActivation(shared)
    with pytest.raises(ValueError, match="an instance belongs to one layer"):
        tfqnn.layers.QuantActivation(shared)


@pytest.mark.parametrize("training_range", ["last_value", "all_values", "moving_average"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_training_ranges_follow_the_inputs_as_tfmot(rng, training_range, symmetric):
    """The range tfmot's LastValue / AllValues / MovingAvg quantizers compute, per channel."""
    quantizer = quantizers.RangeFakeQuant(
        8, channels=3, training_range=training_range, symmetric=symmetric, decay=0.9
    )
    old_low, old_high = np.float32([-0.5, -2.0, -0.1]), np.float32([0.3, 2.5, 0.2])
    layer = with_range(quantizer, old_low, old_high)
    x = rng.uniform(-1.0, 1.0, (6, 4, 3)).astype(np.float32) + np.float32([0.0, 0.0, 1.5])
    # Inference leaves the range alone.
    layer(x, training=False)
    np.testing.assert_array_equal(quantizer.min_var.numpy(), old_low)
    y = layer(x, training=True).numpy()
    low, high = x.min(axis=(0, 1)), x.max(axis=(0, 1))
    if symmetric:
        low, high = np.minimum(low, -high), np.maximum(high, -low)
    low, high = np.minimum(low, 0), np.maximum(high, 0)
    if training_range == "all_values":
        low, high = np.minimum(old_low, low), np.maximum(old_high, high)
    elif training_range == "moving_average":
        low, high = old_low - (old_low - low) * 0.1, old_high - (old_high - high) * 0.1
    np.testing.assert_allclose(quantizer.min_var.numpy(), low, rtol=1e-6)
    np.testing.assert_allclose(quantizer.max_var.numpy(), high, rtol=1e-6)
    for c in range(3):
        expected, _, _ = numpy_fake_quant(x[..., c], low[c], high[c], 8, False)
        np.testing.assert_allclose(y[..., c], expected, atol=2e-6)


def test_no_gradient_flows_into_a_followed_range(rng):
    layer = with_range(quantizers.RangeFakeQuant(8, training_range="last_value"), -1.0, 1.0)
    x = tf.constant(rng.uniform(-2, 2, (50,)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    grad = tape.gradient(y, x, output_gradients=tf.ones_like(y)).numpy()
    # Straight through inside the (nudged) new range only: through the range, the
    # extremes would get the range's gradients as well.
    _, inside, _ = numpy_fake_quant(x.numpy(), x.numpy().min(), x.numpy().max(), 8, False)
    np.testing.assert_array_equal(grad, inside.astype(np.float32))
