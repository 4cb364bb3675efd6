"""TfqnnBconv2d with an int8 shortcut (option ``residual`` with int8 output) through LiteRT.

The op writes its own result as int8 (options ``y_scale``, ``y_zero_point``)
and adds the int8 residual as an int8 ``ADD`` (`spec.Int8Add`, XNNPACK's
arithmetic). Checked: the reference's ``ADD`` against LiteRT's builtin int8
``ADD`` bit for bit (XNNPACK), against TFLite's reference kernel and the
exact sum within one int8 step; the op on every ISA against the reference
and against the unfused pair (op with int8 output, builtin ``ADD``) bit for
bit; malformed models rejected.
"""

import flatbuffers
import numpy as np
import pytest

from tests.lite.test_residual_ops import conv_inputs, conv_operands, conv_options
from tests.lite.test_tflite_ops import packed, run
from tfqnn.lite import Interpreter, _core, reference, spec
from tfqnn.lite.flatbuffer import schema
from tfqnn.lite.testing import Op, Tensor, op_model, single_op_model

ISAS = _core.supported_isas()

# (y scale, y zero point, residual scale, residual zero point, output scale, output zero point)
SCALES = [
    (0.05, -3, 0.08, 10, 0.1, -7),  # a shortcut block: scales of one order
    (0.37, 127, 0.011, -128, 0.4, 0),
    (1.0, 0, 1.0, 0, 1.0, 0),  # exact halves everywhere
    # ratios 256 (1 - 2^-24) and 128: the largest multipliers
    (float(np.nextafter(np.float32(0.5), np.float32(0))), -128, 0.25, 127, 2.0**-9, 5),
    (2.0**-10 * 0.7, 3, 0.7, -1, 0.7, 2),  # a ratio of exactly 2^-10
]


def add_model(shape, a_quant, b_quant, out_quant, relu=False):
    """A file of one builtin int8 ADD: a + b, both model inputs (with a fused ReLU)."""
    data = op_model(
        [],
        [
            Tensor(list(shape), "int8", scale=a_quant[0], zero_point=a_quant[1]),
            Tensor(list(shape), "int8", scale=b_quant[0], zero_point=b_quant[1]),
            Tensor(list(shape), "int8", scale=out_quant[0], zero_point=out_quant[1]),
        ],
        [0, 1],
        [2],
    )
    return with_builtin_adds(data, [([0, 1], 2)], relu)


def with_builtin_adds(data, adds, relu=False):
    """The model with builtin ADDs ``(inputs, output)`` appended (the last with a ReLU)."""
    tflite = schema()
    model = tflite.ModelT.InitFromObj(tflite.Model.GetRootAsModel(data, 0))
    code = tflite.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = tflite.BuiltinOperator.ADD
    code.version = 2
    model.operatorCodes = [*(model.operatorCodes or []), code]
    graph = model.subgraphs[0]
    for inputs, output in adds:
        add = tflite.OperatorT()
        add.opcodeIndex = len(model.operatorCodes) - 1
        add.inputs = np.asarray(inputs, np.int32)
        add.outputs = np.asarray([output], np.int32)
        add.builtinOptionsType = tflite.BuiltinOptions.AddOptions
        add.builtinOptions = tflite.AddOptionsT()
        graph.operators = [*(graph.operators or []), add]
    if relu:
        add.builtinOptions.fusedActivationFunction = tflite.ActivationFunctionType.RELU
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def all_pairs():
    """Every pair of int8 values, as two arrays of 65536."""
    values = np.arange(-128, 128, dtype=np.int8)
    a, b = np.meshgrid(values, values, indexing="ij")
    return a.reshape(1, -1), b.reshape(1, -1)


def litert_add(model, a, b, reference_kernels=False):
    if not reference_kernels:
        return Interpreter(model_content=model).predict(a, b)
    from ai_edge_litert import interpreter as litert

    interpreter = litert.Interpreter(
        model_content=model, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF
    )
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    interpreter.set_tensor(inputs[0]["index"], a)
    interpreter.set_tensor(inputs[1]["index"], b)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def random_scales(rng):
    out = float(rng.uniform(0.01, 2))
    return (
        out * 2.0 ** rng.uniform(-9.9, 7.9),
        int(rng.integers(-128, 128)),
        out * 2.0 ** rng.uniform(-9.9, 7.9),
        int(rng.integers(-128, 128)),
        out,
        int(rng.integers(-128, 128)),
    )


def scale_cases(rng, count=6):
    return SCALES + [random_scales(rng) for _ in range(count)]


def test_int8_add_is_the_builtin_int8_add_of_litert(rng):
    a, b = all_pairs()
    for sa, za, sb, zb, so, zo in scale_cases(rng):
        params = spec.int8_add_params(sa, za, sb, zb, so, zo)
        expected = reference.int8_add(a, b, params)
        model = add_model(a.shape, (sa, za), (sb, zb), (so, zo))
        np.testing.assert_array_equal(litert_add(model, a, b), expected)


def test_int8_add_with_relu_is_the_builtin_int8_add_with_a_fused_relu(rng):
    a, b = all_pairs()
    for sa, za, sb, zb, so, zo in scale_cases(rng, 3):
        params = spec.int8_add_params(sa, za, sb, zb, so, zo, relu=True)
        assert (params.output_min, params.output_max) == (zo, 127)
        expected = reference.int8_add(a, b, params)
        plain = reference.int8_add(a, b, spec.int8_add_params(sa, za, sb, zb, so, zo))
        np.testing.assert_array_equal(expected, np.maximum(plain, np.int8(zo)))
        model = add_model(a.shape, (sa, za), (sb, zb), (so, zo), relu=True)
        np.testing.assert_array_equal(litert_add(model, a, b), expected)


def test_int8_add_within_one_step_of_tflite_reference_kernel_and_the_exact_sum(rng):
    a, b = all_pairs()
    for sa, za, sb, zb, so, zo in scale_cases(rng):
        params = spec.int8_add_params(sa, za, sb, zb, so, zo)
        ours = reference.int8_add(a, b, params).astype(np.int32)
        model = add_model(a.shape, (sa, za), (sb, zb), (so, zo))
        gemmlowp = litert_add(model, a, b, reference_kernels=True).astype(np.int32)
        # Mostly at exact ties (half up here, half away from zero there): 7.4 %
        # of the pairs for the ratios 1/2 and 4/5 of SCALES[0], at most 0.1 %
        # for the others.
        assert np.abs(ours - gemmlowp).max() <= 1
        # The real-valued sum (float32 scales, as the tensors hold them).
        f32 = [np.float64(np.float32(s)) for s in (sa, sb, so)]
        exact = (f32[0] * (a.astype(np.float64) - za) + f32[1] * (b - np.float64(zb))) / f32[2]
        nearest = np.clip(np.floor(exact + 0.5) + zo, -128, 127)
        assert np.abs(ours - nearest).max() <= 1


def test_int8_add_params_follow_the_formula():
    p = spec.int8_add_params(0.05, -3, 0.08, 10, 0.1, -7)
    ra, rb = (
        np.float32(np.float32(0.05) / np.float32(0.1)),
        np.float32(np.float32(0.08) / np.float32(0.1)),
    )
    assert p.shift == 21  # max ratio 0.8 = 1.6 * 2^-1
    assert p.a_multiplier == round(float(ra) * 2**21)
    assert p.b_multiplier == round(float(rb) * 2**21)
    assert p.bias == 2**20 + 3 * p.a_multiplier - 10 * p.b_multiplier
    assert p.output_zero_point == -7
    assert 2**20 <= max(p.a_multiplier, p.b_multiplier) <= 2**21


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(a_scale=0.0), "a_scale"),
        (dict(b_scale=np.nan), "b_scale"),
        (dict(output_scale=-1.0), "output_scale"),
        (dict(a_zero_point=128), "a_zero_point"),
        (dict(output_zero_point=-129), "output_zero_point"),
        (dict(a_scale=0.1 * 2.0**-10 * 0.999), "a_scale"),  # ratio below 2^-10
        (dict(b_scale=0.1 * 256.0), "b_scale"),  # ratio 2^8
    ],
)
def test_int8_add_params_reject_bad_arguments(kwargs, name):
    arguments = dict(
        a_scale=0.1,
        a_zero_point=0,
        b_scale=0.1,
        b_zero_point=0,
        output_scale=0.1,
        output_zero_point=0,
    )
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
        spec.int8_add_params(**arguments)


CASES = [
    # channels, out, kernel, strides, padding, pad_values, (height, width), N, M
    (64, 64, (3, 3), (1, 1), "same", 0, (9, 11), 1, 1),  # Bi-Real Net's block
    (33, 40, (3, 3), (2, 2), "same", 1, (9, 11), 1, 1),
    (32, 17, (1, 1), (1, 1), "valid", 1, (7, 5), 1, 1),  # direct (no im2col) path
    (45, 70, (3, 3), (1, 1), "same", 1, (30, 30), 1, 1),  # several row blocks and threads
    (40, 33, (3, 3), (1, 1), "same", 0, (6, 7), 2, 3),  # multi-basis transform
]


def int8_residual_model(x, f, multiplier, bias, channels, geometry, out_shape, scales, **change):
    sy, zy, sr, zr, so, zo = scales
    n_in, n_w = change.pop("bases", (1, 1))
    options = conv_options(
        channels, geometry, n_in, n_w, output_type=1, residual=1, y_scale=sy, y_zero_point=zy
    )
    options.update(change.pop("options", {}))
    for key in change.pop("drop", ()):
        del options[key]
    inputs = conv_inputs(x, f, multiplier, bias)
    residual = change.pop("residual", Tensor(list(out_shape), "int8", scale=sr, zero_point=zr))
    if residual is not None:
        inputs.append(residual)
    inputs += change.pop("extra", [])
    output = change.pop("output", Tensor(list(out_shape), "int8", scale=so, zero_point=zo))
    assert not change
    return single_op_model("TfqnnBconv2d", options, inputs, [output])


def int8_y(x, f, multiplier, bias, channels, n_in, n_w, scales, geometry):
    """The op's own int8 result (before the shortcut) by the reference."""
    common = dict(clamp_min=-1.0, output_type="int8", int8_scale=scales[0], **geometry)
    if n_in == 1 and n_w == 1:
        return reference.bconv2d(
            x, f, multiplier, bias, channels, int8_zero_point=scales[1], **common
        )
    return reference.multi_basis_bconv2d(
        x,
        f,
        multiplier,
        bias,
        channels,
        input_bases=n_in,
        weight_bases=n_w,
        int8_zero_point=scales[1],
        **common,
    )


def reference_int8_conv(x, f, multiplier, bias, channels, scales, residual, geometry, **more):
    """`reference.bconv2d` with an int8 residual (single-basis ops), and `more` arguments."""
    sy, zy, sr, zr, so, zo = scales
    return reference.bconv2d(
        x,
        f,
        multiplier,
        bias,
        channels,
        clamp_min=-1.0,
        output_type="int8",
        int8_scale=so,
        int8_zero_point=zo,
        residual=residual,
        residual_scale=sr,
        residual_zero_point=zr,
        y_scale=sy,
        y_zero_point=zy,
        **geometry,
        **more,
    )


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", CASES)
def test_bconv2d_int8_residual_matches_the_reference(rng, isa, case):
    channels, *_, n_in, n_w = case
    x, f, multiplier, bias, geometry = conv_operands(rng, case)
    scales = SCALES[0] if case[0] == 64 else random_scales(rng)
    q = int8_y(x, f, multiplier, bias, channels, n_in, n_w, scales, geometry)
    residual = rng.integers(-128, 128, q.shape).astype(np.int8)
    expected = reference.int8_add(q, residual, spec.int8_add_params(*scales))
    if n_in == 1 and n_w == 1:  # the reference's fused path is the two steps
        fused = reference_int8_conv(x, f, multiplier, bias, channels, scales, residual, geometry)
        np.testing.assert_array_equal(fused, expected)
    model = int8_residual_model(
        x, f, multiplier, bias, channels, geometry, q.shape, scales, bases=(n_in, n_w)
    )
    with _core.isa(isa):
        for threads in (1, 2):
            np.testing.assert_array_equal(run(model, x, residual, num_threads=threads), expected)


def unfused_model(
    x, f, multiplier, bias, channels, geometry, out_shape, scales, post_bias=None, relu=False
):
    """TfqnnBconv2d writing int8 y, then a builtin int8 ADD of y and the residual."""
    sy, zy, sr, zr, so, zo = scales
    options = conv_options(channels, geometry, output_type=1)
    tensors = [
        *conv_inputs(x, f, multiplier, bias),
        Tensor(list(out_shape), "int8", scale=sy, zero_point=zy),  # 4: y
        Tensor(list(out_shape), "int8", scale=sr, zero_point=zr),  # 5: the residual
        Tensor(list(out_shape), "int8", scale=so, zero_point=zo),  # 6: the sum
    ]
    data = op_model([Op("TfqnnBconv2d", [0, 1, 2, 3], [4], options)], tensors, [0, 5], [6])
    if post_bias is None:
        return with_builtin_adds(data, [([4, 5], 6)], relu)
    # y + post_bias (a constant int8 [O]) into the biased scale, then + residual.
    t, st, zt, sb, zb = post_bias
    model = op_model(
        [Op("TfqnnBconv2d", [0, 1, 2, 3], [4], options)],
        [
            *tensors,
            Tensor([t.size], "int8", t, scale=st, zero_point=zt),  # 7
            Tensor(list(out_shape), "int8", scale=sb, zero_point=zb),  # 8: y + post_bias
        ],
        [0, 5],
        [6],
    )
    return with_builtin_adds(model, [([4, 7], 8), ([8, 5], 6)], relu)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("relu", [False, True])
def test_the_fused_op_equals_the_op_and_a_builtin_add(rng, isa, relu):
    case = (64, 64, (3, 3), (1, 1), "same", 0, (9, 11), 1, 1)
    x, f, multiplier, bias, geometry = conv_operands(rng, case)
    multiplier *= 0.05  # y spans a few dozen int8 steps
    for scales in scale_cases(rng, 3):
        q = int8_y(x, f, multiplier, bias, 64, 1, 1, scales, geometry)
        residual = rng.integers(-128, 128, q.shape).astype(np.int8)
        fused = int8_residual_model(
            x,
            f,
            multiplier,
            bias,
            64,
            geometry,
            q.shape,
            scales,
            options={"residual_relu": 1} if relu else {},
        )
        unfused = unfused_model(x, f, multiplier, bias, 64, geometry, q.shape, scales, relu=relu)
        expected = reference.int8_add(q, residual, spec.int8_add_params(*scales, relu=relu))
        with _core.isa(isa):
            got = run(fused, x, residual)
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(got, run(unfused, x, residual))
        if relu:
            assert got.min() == scales[5]  # some sums clamped at the zero point


POST_BIAS_SCALES = [(0.02, 5, 0.06, -2), (0.3, -128, 0.2, 127), (0.05, 0, 0.05, 0)]


@pytest.mark.parametrize("isa", ISAS)
def test_int8_post_bias_then_residual(rng, isa):
    # QuickNet's block in an int8 file: ReLU, + t (int8 [O]), + the shortcut.
    case = (45, 70, (3, 3), (1, 1), "same", 1, (12, 13), 1, 1)
    x, f, multiplier, bias, geometry = conv_operands(rng, case)
    multiplier *= 0.05
    for (sy, zy, sr, zr, so, zo), (st, zt, sb, zb) in zip(SCALES, POST_BIAS_SCALES):
        scales = (sy, zy, sr, zr, so, zo)
        q = int8_y(x, f, multiplier, bias, 45, 1, 1, scales, geometry)
        t = rng.integers(-128, 128, 70).astype(np.int8)
        residual = rng.integers(-128, 128, q.shape).astype(np.int8)
        biased = reference.int8_add(
            q, np.broadcast_to(t, q.shape), spec.int8_add_params(sy, zy, st, zt, sb, zb)
        )
        expected = reference.int8_add(
            biased, residual, spec.int8_add_params(sb, zb, sr, zr, so, zo)
        )
        fused_reference = reference_int8_conv(
            x,
            f,
            multiplier,
            bias,
            45,
            scales,
            residual,
            geometry,
            post_bias=t,
            post_bias_scale=st,
            post_bias_zero_point=zt,
            biased_scale=sb,
            biased_zero_point=zb,
        )
        np.testing.assert_array_equal(fused_reference, expected)
        model = int8_residual_model(
            x,
            f,
            multiplier,
            bias,
            45,
            geometry,
            q.shape,
            scales,
            options={"biased_scale": sb, "biased_zero_point": zb},
            extra=[Tensor([70], "int8", t, scale=st, zero_point=zt)],
        )
        unfused = unfused_model(
            x, f, multiplier, bias, 45, geometry, q.shape, scales, (t, st, zt, sb, zb)
        )
        with _core.isa(isa):
            for threads in (1, 2):
                got = run(model, x, residual, num_threads=threads)
                np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(run(unfused, x, residual), expected)


def test_reference_rejects_a_bad_int8_residual(rng):
    x = packed(rng, (1, 4, 4), 32)
    f = packed(rng, (8, 3, 3), 32)
    m, b = np.ones(8, np.float32), np.zeros(8, np.float32)
    good = dict(
        padding="same",
        output_type="int8",
        int8_scale=0.1,
        residual=np.zeros((1, 4, 4, 8), np.int8),
        residual_scale=0.1,
        y_scale=0.1,
    )
    assert reference.bconv2d(x, f, m, b, 32, **good).dtype == np.int8
    for change, name in [
        (dict(residual=np.zeros((1, 4, 4, 8), np.float32)), "residual"),
        (dict(residual=np.zeros((1, 4, 4, 7), np.int8)), "residual"),
        (dict(y_scale=None), "y_scale"),
        (dict(residual_scale=None), "residual_scale"),
        (dict(post_bias=np.zeros(8, np.float32)), "post_bias"),
        (dict(post_bias=np.zeros(8, np.int8)), "biased_scale"),
        (dict(residual_scale=100.0), "b_scale"),  # ratio 1000: beyond an int8 ADD's range
    ]:
        with pytest.raises(ValueError, match=name):
            reference.bconv2d(x, f, m, b, 32, **{**good, **change})
    with pytest.raises(ValueError, match="y_scale"):
        spec.bconv2d_options(32, residual=True, output_type="int8")
    with pytest.raises(ValueError, match="y_zero_point"):
        spec.bconv2d_options(32, residual=True, output_type="int8", y_scale=0.1, y_zero_point=200)
    options = spec.bconv2d_options(
        32, residual=True, output_type="int8", y_scale=0.1, y_zero_point=-4
    )
    assert (options["residual"], options["y_zero_point"]) == (1, -4)
    assert options["y_scale"] == float(np.float32(0.1))
    assert "residual_relu" not in options
    options = spec.bconv2d_options(
        32, residual=True, output_type="int8", y_scale=0.1, residual_relu=True
    )
    assert options["residual_relu"] == 1
    with pytest.raises(ValueError, match="a, b"):
        reference.int8_add(
            np.zeros(3, np.int8), np.zeros(3, np.int16), spec.int8_add_params(1, 0, 1, 0, 1, 0)
        )


def bad_model(rng, **change):
    case = (32, 8, (3, 3), (1, 1), "same", 0, (4, 5), 1, 1)
    x, f, multiplier, bias, geometry = conv_operands(rng, case)
    return int8_residual_model(
        x, f, multiplier, bias, 32, geometry, (2, 4, 5, 8), SCALES[0], **change
    ), x


def test_the_well_formed_bad_model_runs(rng):
    model, x = bad_model(rng)
    residual = np.ones((2, 4, 5, 8), np.int8)
    out = run(model, x, residual)
    assert out.shape == (2, 4, 5, 8) and out.dtype == np.int8


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(residual=Tensor([2, 4, 5, 8], scale=0.1)), "residual must be int8"),
        (dict(residual=Tensor([2, 4, 5, 7], "int8", scale=0.1)), "residual must have shape"),
        (dict(residual=Tensor([2, 4, 5, 8], "int8")), "residual must be int8 with a positive"),
        (
            dict(residual=Tensor([2, 4, 5, 8], "int8", scale=0.1, zero_point=300)),
            "residual must be int8 with a positive",
        ),
        (dict(residual=Tensor([2, 4, 5, 8], "int8", scale=1e3)), r"\[2\^-10, 2\^8\)"),
        (dict(options={"y_scale": 1e-6}), r"\[2\^-10, 2\^8\)"),
        (dict(drop=["y_scale"]), "needs option 'y_scale'"),
        (dict(options={"y_scale": -0.1}), "needs option 'y_scale'"),
        (dict(options={"y_scale": "big"}), "'y_scale' must be a number"),
        (dict(options={"y_zero_point": 128}), "'y_zero_point' must be in"),
        (dict(options={"residual_relu": 2}), "'residual_relu' must be in"),
        (dict(extra=[Tensor([8], data=np.zeros(8, np.float32))]), "post_bias must be int8"),
        (dict(extra=[Tensor([8], "int8", scale=0.1)]), "post_bias must be a constant"),
        (
            dict(extra=[Tensor([7], "int8", np.zeros(7, np.int8), scale=0.1)]),
            "post_bias must have shape",
        ),
        (
            dict(extra=[Tensor([8], "int8", np.zeros(8, np.int8))]),
            "post_bias must be int8 with a positive",
        ),
        (
            dict(extra=[Tensor([8], "int8", np.zeros(8, np.int8), scale=0.1)]),
            "needs option 'biased_scale'",
        ),
        (
            dict(
                options={"biased_scale": 1e-7},
                extra=[Tensor([8], "int8", np.zeros(8, np.int8), scale=0.1)],
            ),
            r"biased_scale and post_bias scale",
        ),
        (dict(output=Tensor([2, 4, 5, 8])), "output must be int8"),
        (dict(output=Tensor([2, 4, 5, 8], "int8")), "positive finite scale"),
        (dict(residual=None), "needs a fifth input"),
    ],
)
def test_malformed_int8_residual_models_fail_to_prepare(rng, change, message):
    model, _ = bad_model(rng, **change)
    interpreter = Interpreter(model_content=model)
    with pytest.raises(RuntimeError, match=message):
        interpreter.allocate_tensors()
