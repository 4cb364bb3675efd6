"""TfqnnBconv2d with a fused shortcut (option ``residual``) through LiteRT.

``out = clamp(float32(dot) * multiplier + bias) + residual``: bit-exact
against tfqnn.lite.reference on every instruction set this CPU has, the
reference against a float convolution, and malformed models rejected.
"""

import numpy as np
import pytest

from tests.lite.test_reference import float_conv
from tests.lite.test_tflite_ops import packed, run
from tfqnn.lite import Interpreter, _core, reference, spec
from tfqnn.lite.testing import Tensor, single_op_model

ISAS = _core.supported_isas()

CASES = [
    # channels, out, kernel, strides, padding, pad_values, (height, width), N, M
    (64, 64, (3, 3), (1, 1), "same", 0, (9, 11), 1, 1),  # Bi-Real Net's block
    (33, 40, (3, 3), (2, 2), "same", 1, (9, 11), 1, 1),
    (32, 17, (1, 1), (1, 1), "valid", 1, (7, 5), 1, 1),  # direct (no im2col) path
    (45, 70, (3, 3), (1, 1), "same", 0, (30, 30), 1, 1),  # several row blocks and threads
    (40, 33, (3, 3), (1, 1), "same", 0, (6, 7), 2, 3),  # multi-basis transform
]


def conv_operands(rng, case):
    channels, out, kernel, strides, padding, pad_values, (h, w), n_in, n_w = case
    x = np.concatenate([packed(rng, (2, h, w), channels) for _ in range(n_in)], axis=-1)
    f = packed(rng, (n_w * out, *kernel), channels)
    multiplier = rng.uniform(0.05, 1.0, n_in * n_w * out) * rng.choice([-1, 1], n_in * n_w * out)
    bias = rng.normal(size=out).astype(np.float32)
    geometry = dict(strides=strides, padding=padding, pad_values=pad_values)
    return x, f, multiplier.astype(np.float32), bias, geometry


def reference_conv(x, f, multiplier, bias, channels, n_in, n_w, **kwargs):
    if n_in == 1 and n_w == 1:
        return reference.bconv2d(x, f, multiplier, bias, channels, **kwargs)
    residual = kwargs.pop("residual", None)
    y = reference.multi_basis_bconv2d(
        x, f, multiplier, bias, channels, input_bases=n_in, weight_bases=n_w, **kwargs
    )
    return y if residual is None else y + residual


def conv_options(channels, geometry, n_in=1, n_w=1, **more):
    """The options of the cases' TfqnnBconv2d (``clamp_min`` -1), and `more`."""
    options = {
        "channels_in": channels,
        "stride_height": geometry["strides"][0],
        "stride_width": geometry["strides"][1],
        "padding": spec.padding_code(geometry["padding"]),
        "pad_values": geometry["pad_values"],
        "clamp_min": -1.0,
        **more,
    }
    if n_in != 1 or n_w != 1:
        options.update(input_bases=n_in, weight_bases=n_w)
    return options


def conv_inputs(x, f, multiplier, bias):
    """The op's first four inputs: ``x`` (a model input) and its constants."""
    return [
        Tensor(list(x.shape), "int32"),
        Tensor(list(f.shape), "int32", f),
        Tensor([multiplier.size], data=multiplier),
        Tensor([bias.size], data=bias),
    ]


def residual_model(x, f, multiplier, bias, channels, geometry, out_shape, n_in=1, n_w=1, **change):
    options = conv_options(channels, geometry, n_in, n_w, residual=1)
    options.update(change.pop("options", {}))
    inputs = conv_inputs(x, f, multiplier, bias)
    residual = change.pop("residual", Tensor(list(out_shape)))
    if residual is not None:
        inputs.append(residual)
    post_bias = change.pop("post_bias", None)
    if post_bias is not None:
        inputs.append(post_bias)
    output = change.pop("output", Tensor(list(out_shape)))
    assert not change
    return single_op_model("TfqnnBconv2d", options, inputs, [output])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", CASES)
def test_bconv2d_residual_matches_the_reference(rng, isa, case):
    channels, *_, n_in, n_w = case
    x, f, multiplier, bias, geometry = conv_operands(rng, case)
    plain = reference_conv(x, f, multiplier, bias, channels, n_in, n_w, clamp_min=-1.0, **geometry)
    residual = rng.normal(size=plain.shape).astype(np.float32)
    residual.flat[:5] = -plain.flat[:5]  # sums of exactly 0
    expected = reference_conv(
        x, f, multiplier, bias, channels, n_in, n_w, clamp_min=-1.0, residual=residual, **geometry
    )
    # The fused add is one float32 rounding after the clamp.
    np.testing.assert_array_equal(expected, plain + residual)
    assert np.all(expected.flat[:5] == 0)
    model = residual_model(x, f, multiplier, bias, channels, geometry, plain.shape, n_in, n_w)
    with _core.isa(isa):
        for threads in (1, 2):
            np.testing.assert_array_equal(run(model, x, residual, num_threads=threads), expected)


@pytest.mark.parametrize("isa", ISAS)
def test_bconv2d_residual_with_post_bias(rng, isa):
    # QuickNet's block: ReLU, the post-ReLU BatchNorm's shift, the shortcut.
    case = (45, 70, (3, 3), (1, 1), "same", 1, (12, 13), 1, 1)
    x, f, multiplier, bias, geometry = conv_operands(rng, case)
    plain = reference.bconv2d(x, f, multiplier, bias, 45, clamp_min=-1.0, **geometry)
    residual = rng.normal(size=plain.shape).astype(np.float32)
    post_bias = rng.normal(size=70).astype(np.float32)
    expected = reference.bconv2d(
        x,
        f,
        multiplier,
        bias,
        45,
        clamp_min=-1.0,
        residual=residual,
        post_bias=post_bias,
        **geometry,
    )
    np.testing.assert_array_equal(expected, (plain + post_bias) + residual)
    model = residual_model(
        x, f, multiplier, bias, 45, geometry, plain.shape, post_bias=Tensor([70], data=post_bias)
    )
    with _core.isa(isa):
        for threads in (1, 2):
            np.testing.assert_array_equal(run(model, x, residual, num_threads=threads), expected)


def test_the_reference_residual_is_the_float_conv_plus_the_shortcut(rng):
    # Independent of the packing: a float convolution of the +-1 tensors.
    channels, out = 20, 6
    signs_x = rng.choice([-1.0, 1.0], (1, 5, 6, channels)).astype(np.float32)
    signs_w = rng.choice([-1.0, 1.0], (out, 3, 3, channels)).astype(np.float32)
    multiplier = rng.uniform(-1, 1, out).astype(np.float32)
    bias = rng.normal(size=out).astype(np.float32)
    residual = rng.normal(size=(1, 5, 6, out)).astype(np.float32)
    y = reference.bconv2d(
        reference.bitpack(signs_x),
        reference.bitpack(signs_w),
        multiplier,
        bias,
        channels,
        padding="same",
        pad_values=0,
        clamp_max=2.0,
        residual=residual,
    )
    conv = float_conv(signs_x, signs_w, (1, 1), (1, 1), "same", 0.0, 1)
    expected = np.minimum(conv * multiplier + bias, 2.0) + residual
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_reference_rejects_a_bad_residual(rng):
    x = packed(rng, (1, 4, 4), 32)
    f = packed(rng, (8, 3, 3), 32)
    m, b = np.ones(8, np.float32), np.zeros(8, np.float32)
    kwargs = dict(padding="same")
    with pytest.raises(ValueError, match="residual"):
        reference.bconv2d(x, f, m, b, 32, residual=np.zeros((1, 4, 4, 7), np.float32), **kwargs)
    with pytest.raises(ValueError, match="residual"):
        reference.bconv2d(x, f, m, b, 32, residual=np.zeros((1, 4, 4, 8)), **kwargs)
    with pytest.raises(ValueError, match="output_type"):
        reference.bconv2d(
            x, f, m, b, 32, residual=np.zeros((1, 4, 4, 8), np.float32), output_type="bitpacked"
        )
    with pytest.raises(ValueError, match="post_bias"):
        reference.bconv2d(x, f, m, b, 32, post_bias=np.zeros(8, np.float32), **kwargs)
    with pytest.raises(ValueError, match="post_bias"):
        reference.bconv2d(
            x,
            f,
            m,
            b,
            32,
            residual=np.zeros((1, 4, 4, 8), np.float32),
            post_bias=np.zeros(7, np.float32),
            **kwargs,
        )
    with pytest.raises(ValueError, match="output_type"):
        spec.bconv2d_options(32, residual=True, output_type="bitpacked")
    with pytest.raises(ValueError, match="residual"):
        spec.bconv2d_options(32, residual=1)
    assert spec.bconv2d_options(32, residual=True)["residual"] == 1
    assert "residual" not in spec.bconv2d_options(32)


def bad_model(rng, **change):
    case = (32, 8, (3, 3), (1, 1), "same", 0, (4, 5), 1, 1)
    x, f, multiplier, bias, geometry = conv_operands(rng, case)
    return residual_model(x, f, multiplier, bias, 32, geometry, (2, 4, 5, 8), **change), x


def test_the_well_formed_bad_model_runs(rng):
    model, x = bad_model(rng)
    residual = np.ones((2, 4, 5, 8), np.float32)
    assert run(model, x, residual).shape == (2, 4, 5, 8)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(residual=Tensor([2, 4, 5, 7])), "residual must have shape"),
        (dict(residual=Tensor([2, 4, 5, 8], "int32")), "residual must be float32"),
        (dict(residual=Tensor([40, 8])), "residual must have rank 4"),
        (dict(residual=None), "needs a fifth input"),
        (
            dict(options={"output_type": 2}, output=Tensor([2, 4, 5, 1], "int32")),
            "needs float or int8 output",
        ),
        (  # int8 output: an int8 residual (tests/lite/test_int8_residual_ops.py)
            dict(options={"output_type": 1}, output=Tensor([2, 4, 5, 8], "int8", scale=0.1)),
            "needs option 'y_scale'",
        ),
        (dict(options={"residual": 2}), "'residual' must be in"),
        (dict(options={"residual": 0}), "thresholds"),  # a fifth input is then thresholds
        (dict(post_bias=Tensor([7], data=np.zeros(7, np.float32))), "post_bias must have shape"),
        (dict(post_bias=Tensor([8])), "post_bias must be a constant tensor"),
        (dict(post_bias=Tensor([8], "int32", np.zeros(8, np.int32))), "post_bias must be float32"),
        (
            dict(options={"residual": 0}, post_bias=Tensor([8], data=np.zeros(8, np.float32))),
            "inputs",
        ),
    ],
)
def test_malformed_residual_models_fail_to_prepare(rng, change, message):
    model, _ = bad_model(rng, **change)
    interpreter = Interpreter(model_content=model)
    with pytest.raises(RuntimeError, match=message):
        interpreter.allocate_tensors()
