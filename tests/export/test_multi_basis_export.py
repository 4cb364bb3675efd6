"""Export of multi-basis layers (ABC-Net, sketched kernels with binary inputs) as one
binary op with N input and M weight bases each: against Keras and tfqnn.lite.reference."""

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn.export.plan import MultiBasisGroup, plan_groups
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.lite import reference
from tfqnn.quantizers import MultiBinary, MultiBinaryActivation, ResidualSign

pytestmark = pytest.mark.filterwarnings("ignore:Quant.* has a binary kernel_quantizer")


def randomize(model, rng):
    """Random latent weights, activation shifts and BatchNorm statistics."""
    for weight in model.weights:
        if "seed_generator" in weight.path:
            continue
        shape = weight.shape
        if weight.name == "moving_variance":
            weight.assign(rng.uniform(0.5, 2.0, shape))
        elif weight.name == "gamma":
            weight.assign(rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape))
        elif weight.name.endswith("_shifts"):
            weight.assign(rng.uniform(-0.5, 0.5, shape))
        elif weight.name.endswith("_scales"):
            weight.assign(rng.uniform(0.1, 1.0, shape) * rng.choice([-1, 1], shape))
        else:
            weight.assign(rng.normal(0, 1, shape))
    return model


def export_and_run(model, x):
    data = tfqnn.export.to_tflite(model, verbose=0)
    return data, model.predict(x, verbose=0), tfqnn.lite.Interpreter(model_content=data).predict(x)


def assert_close(expected, actual):
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-4 * np.abs(expected).max())


def test_abc_net_cnn_matches_keras(rng):
    model = keras.Sequential(
        [
            keras.Input((9, 10, 3)),
            keras.layers.Conv2D(8, 3, padding="same"),
            QuantConv2D(
                40,
                3,
                padding="same",
                use_bias=False,
                input_quantizer=MultiBinaryActivation(3),
                kernel_quantizer=MultiBinary(3, axis=-1),
            ),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            QuantConv2D(
                16,
                3,
                strides=2,
                input_quantizer=MultiBinaryActivation(2),
                kernel_quantizer=ResidualSign(2, refined=False),
            ),
            keras.layers.Flatten(),
            QuantDense(
                10,
                input_quantizer=MultiBinaryActivation(3),
                kernel_quantizer=MultiBinary(2),
                activation="relu",
            ),
        ]
    )
    randomize(model, rng)
    x = rng.uniform(-1, 2, (3, 9, 10, 3)).astype(np.float32)
    data, expected, actual = export_and_run(model, x)
    # One op per layer; the first writes the second's two input bases, bitpacked, and
    # max-pools them packed; the Flatten before the 3-basis dense reads float.
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 2,
        "TfqnnBconv2d": 2,
        "TfqnnBMaxPool2d": 1,
        "TfqnnBdense": 1,
    }
    assert_close(expected, actual)
    assert np.any(actual > 0) and np.any(actual == 0)  # the relu is there and not everything


@pytest.mark.parametrize(
    "kernel_quantizer",
    [MultiBinary(3, axis=-1), pytest.param(ResidualSign(3), marks=pytest.mark.slow)],
    ids=["multi_binary", "refined_sketch"],
)
def test_multi_basis_dense_matches_the_numpy_reference(rng, kernel_quantizer):
    layer = QuantDense(
        24, input_quantizer=MultiBinaryActivation(2), kernel_quantizer=kernel_quantizer
    )
    model = randomize(keras.Sequential([keras.Input((5, 70)), layer]), rng)
    x = rng.uniform(-1, 2, (4, 5, 70)).astype(np.float32)
    data, expected, actual = export_and_run(model, x)
    scales, bases = (b.numpy() for b in kernel_quantizer.decompose(layer.kernel))
    packed = np.stack([reference.bitpack(b.T) for b in bases])  # [M, N, W]
    thresholds = (0.5 - layer.input_quantizer.shifts.numpy().astype(np.float64)).astype(np.float32)
    y = reference.multi_basis(
        x,
        thresholds,
        layer.input_quantizer.scales.numpy(),
        packed,
        scales[:, 0],
        layer.bias.numpy(),
        reference.bdense,
        in_features=70,
    )
    np.testing.assert_allclose(actual, y, rtol=1e-6, atol=1e-6)
    assert_close(expected, actual)


def test_sketched_conv_with_binary_inputs_pads_with_plus_one(rng):
    layer = QuantConv2D(
        12,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer=ResidualSign(3),
    )
    model = randomize(keras.Sequential([keras.Input((7, 6, 5)), layer]), rng)
    x = rng.normal(size=(2, 7, 6, 5)).astype(np.float32)
    data, expected, actual = export_and_run(model, x)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 1, "TfqnnBconv2d": 1}
    assert_close(expected, actual)


def test_the_file_holds_m_bits_per_weight_plus_scales(rng):
    # K x O = 1024 x 256: one packed basis is 256 * 32 int32 words, 32 KiB; the float kernel 1 MiB.
    layer = QuantDense(
        256, input_quantizer=MultiBinaryActivation(3), kernel_quantizer=MultiBinary(3, axis=-1)
    )
    model = randomize(keras.Sequential([keras.Input((1024,)), layer]), rng)
    data = tfqnn.export.to_tflite(model, verbose=0)
    packed = 1024 * 256 // 8
    scales = 3 * 3 * 256 * 4 + 256 * 4  # the multiplier [N, M, O] and the bias, float32
    # The three bases once each, read by the one op for all three input bases.
    assert 3 * packed + scales < len(data) < 3 * packed + scales + 16_000
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 1, "TfqnnBdense": 1}


def test_layers_the_ops_cannot_express_stay_float_builtins(rng):
    # pad_values=0.5 with multi-basis inputs (no op pads with it); a float kernel.
    model = keras.Sequential(
        [
            keras.Input((6, 6, 4)),
            QuantConv2D(
                8,
                3,
                padding="same",
                pad_values=0.5,
                input_quantizer=MultiBinaryActivation(2),
                kernel_quantizer=MultiBinary(2, axis=-1),
            ),
            keras.layers.Flatten(),
            QuantDense(5, input_quantizer=MultiBinaryActivation(2)),
        ]
    )
    randomize(model, rng)
    assert plan_groups(model).groups == {}
    x = rng.uniform(-1, 2, (2, 6, 6, 4)).astype(np.float32)
    data, expected, actual = export_and_run(model, x)
    assert tfqnn.lite.custom_ops_in(data) == {}
    assert_close(expected, actual)


def random_case(r):
    """A random multi-basis layer (Dense or Conv2D) and an input for it."""
    m, n = int(r.integers(1, 5)), int(r.integers(1, 5))
    kernel_quantizer = [
        MultiBinary(m, axis=-1),
        MultiBinary(m),
        ResidualSign(m, refined=bool(r.integers(2))),
    ][int(r.integers(3))]
    sign_input = r.random() < 0.25 and m > 1
    input_quantizer = "ste_sign" if sign_input else MultiBinaryActivation(n)
    channels = int(r.choice([3, 32, 33, 70]))
    if r.random() < 0.5:
        padding = str(r.choice(["same", "valid"]))
        layer = QuantConv2D(
            int(r.integers(1, 40)),
            int(r.choice([1, 3])),
            strides=int(r.integers(1, 3)),
            padding=padding,
            pad_values=float(r.integers(2)) if sign_input else 0.0,
            use_bias=bool(r.integers(2)),
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
        )
        shape = (int(r.integers(3, 9)), int(r.integers(3, 9)), channels)
    else:
        layer = QuantDense(
            int(r.integers(1, 40)),
            use_bias=bool(r.integers(2)),
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
        )
        shape = (channels,)
    x = r.uniform(-1, 2, (int(r.integers(1, 4)), *shape)).astype(np.float32)
    return keras.Sequential([keras.Input(shape), layer]), x, 1


@pytest.mark.slow
def test_random_multi_basis_layers_match_keras():
    r = np.random.default_rng(1217)
    for case in range(12):
        model, x, ops = random_case(r)
        randomize(model, r)
        groups = plan_groups(model).groups
        assert len(groups) == 1 and isinstance(next(iter(groups.values())), MultiBasisGroup)
        data, expected, actual = export_and_run(model, x)
        counts = tfqnn.lite.custom_ops_in(data)
        assert counts.get("TfqnnBdense", 0) + counts.get("TfqnnBconv2d", 0) == ops, case
        assert_close(expected, actual)


def test_batch_norm_after_the_relu_keeps_its_shift(rng):
    # The post-ReLU BatchNorm folds into the summed ops as for a binary group:
    # its scale into the multipliers, its shift t added after the sum.
    model = keras.Sequential(
        [
            keras.Input((40,)),
            QuantDense(
                16,
                input_quantizer=MultiBinaryActivation(2),
                kernel_quantizer=MultiBinary(2),
                activation="relu",
            ),
            keras.layers.BatchNormalization(),
        ]
    )
    randomize(model, rng)
    model.layers[-1].gamma.assign(rng.uniform(0.5, 2.0, 16))  # s > 0: the fold applies
    groups = plan_groups(model).groups
    (group,) = [g for g in groups.values() if isinstance(g, MultiBasisGroup)]
    assert group.post_bias is not None
    x = rng.uniform(-1.0, 2.0, (8, 40)).astype(np.float32)
    _, expected, actual = export_and_run(model, x)
    assert_close(expected, actual)


def test_multi_basis_layers_pass_their_bases_bitpacked(rng):
    # conv (2, 2) -> Flatten -> dense (2 kernel bases, 1 input basis) -> dense (3 input bases):
    # each layer writes the next one's input bases (its thresholds) packed, through the
    # Flatten for one basis; only the model input is bitpacked by a TfqnnQuantize.
    model = keras.Sequential(
        [
            keras.Input((6, 6, 5)),
            QuantConv2D(
                32,
                3,
                input_quantizer=MultiBinaryActivation(2),
                kernel_quantizer=MultiBinary(2, axis=-1),
            ),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            QuantDense(
                20, input_quantizer=MultiBinaryActivation(1), kernel_quantizer=MultiBinary(2)
            ),
            QuantDense(
                7,
                input_quantizer=MultiBinaryActivation(3),
                kernel_quantizer=MultiBinary(2, axis=-1),
            ),
        ]
    )
    randomize(model, rng)
    groups = sorted(plan_groups(model).groups.values(), key=lambda g: g.layer.name)
    conv, first, second = groups
    assert conv.bitpacked_output and conv.output_thresholds.shape == (1,)
    assert first.bitpacked_output and first.output_thresholds.shape == (3,)
    np.testing.assert_array_equal(first.output_thresholds, second.thresholds)
    assert not second.bitpacked_output
    x = rng.uniform(-1, 2, (5, 6, 6, 5)).astype(np.float32)
    data, expected, actual = export_and_run(model, x)
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 1,
        "TfqnnBconv2d": 1,
        "TfqnnBdense": 2,
    }
    assert_close(expected, actual)


def test_int8_export_writes_the_sum_as_int8_within_half_a_step(rng):
    # The multi-basis op reads the float model input (its thresholds exact) and writes
    # int8 for the int8 max pool after it (int8_fusion): the file's output is Keras'
    # rounded to that tensor's int8 grid, within half a step (and float rounding).
    from tfqnn.lite.flatbuffer import schema

    model = keras.Sequential(
        [
            keras.Input((6, 6, 40)),
            QuantConv2D(
                16,
                3,
                input_quantizer=MultiBinaryActivation(2),
                kernel_quantizer=MultiBinary(2, axis=-1),
            ),
            keras.layers.MaxPooling2D(2),
        ]
    )
    randomize(model, rng)
    x = rng.uniform(-1, 2, (64, 6, 6, 40)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 1, "TfqnnBconv2d": 1}
    tflite = schema()
    file = tflite.ModelT.InitFromObj(tflite.Model.GetRootAsModel(data, 0))
    graph = file.subgraphs[0]
    (conv,) = [
        o
        for o in graph.operators
        if file.operatorCodes[o.opcodeIndex].customCode == b"TfqnnBconv2d"
    ]
    tensor = graph.tensors[conv.outputs[0]]
    assert tensor.type == tflite.TensorType.INT8
    step = float(tensor.quantization.scale[0])
    expected = model.predict(x[:8], verbose=0)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x[:8])
    inside = np.abs(expected) < 127 * step  # away from the ends of the int8 range
    assert inside.mean() > 0.9
    np.testing.assert_array_less(np.abs(actual - expected)[inside], 0.5 * step * (1 + 1e-5) + 1e-6)
    assert np.abs(actual - expected).max() > 0  # it is rounded
