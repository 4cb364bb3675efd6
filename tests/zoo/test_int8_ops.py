"""Every tfqnn op of a zoo network's int8 file against the numpy reference, on its own inputs.

A deep binary network is chaotic near zero, so the whole file cannot be
compared with Keras; instead each ``Tfqnn*`` op of the binary-int8 file
(``int8_representative_data``: int8 builtins around the binary ops, the
shortcut ``ADD``s folded into them) is recomputed by `tfqnn.lite.reference`
from the very tensors it read in one run of the file, and must match its
output bit for bit.
"""

import keras
import numpy as np
import pytest
from flatbuffers import flexbuffers

import tfqnn
from tfqnn.lite import load_library, reference, spec
from tfqnn.lite.flatbuffer import schema

pytestmark = pytest.mark.slow  # each export converts and calibrates a ~100-layer graph

SHAPE = (32, 32, 3)
PADDINGS = {code: name for name, code in spec.PADDING_CODES.items()}


def run_keeping_tensors(data, x):
    """Runs the file with tfqnn's op registerer, keeping every tensor; returns the interpreter."""
    from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

    load_library()
    interpreter = InterpreterWithCustomOps(
        model_content=data,
        custom_op_registerers=["TfqnnRegisterOps"],
        experimental_preserve_all_tensors=True,
    )
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter


def quantization(tensor):
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None, None
    return float(q.scale[0]), int(q.zeroPoint[0])


def reference_output(name, options, inputs, tensors, out):
    """What `tfqnn.lite.reference` says the op writes, from its inputs (arrays) and tensors."""
    out_scale, out_zero = quantization(out)
    if name == spec.QUANTIZE:
        x = inputs[0]
        _, zero = quantization(tensors[0])
        if len(inputs) == 2:
            scale, _ = quantization(tensors[0])
            kwargs = dict(scale=scale, zero_point=zero) if x.dtype == np.int8 else {}
            return reference.threshold_quantize(x, inputs[1], **kwargs)
        return reference.quantize(x, zero if x.dtype == np.int8 else None)
    if name == spec.BMAXPOOL2D:
        return reference.bmaxpool2d(
            inputs[0],
            (options["filter_height"], options["filter_width"]),
            (options.get("stride_height", 1), options.get("stride_width", 1)),
            PADDINGS[options["padding"]],
        )
    output_type = spec.OUTPUT_TYPES[options.get("output_type", 0)]
    transform = dict(
        clamp_min=options.get("clamp_min", -np.inf),
        clamp_max=options.get("clamp_max", np.inf),
        output_type=output_type,
    )
    if output_type == "int8":
        transform.update(int8_scale=out_scale, int8_zero_point=out_zero)
    bases = options.get("input_bases", 1), options.get("weight_bases", 1)
    x, weights, multiplier, bias, *rest = inputs
    if name == spec.BDENSE:
        assert bases == (1, 1) and not rest
        return reference.bdense(x, weights, multiplier, bias, options["in_features"], **transform)
    assert name == spec.BCONV2D, name
    geometry = dict(
        strides=(options.get("stride_height", 1), options.get("stride_width", 1)),
        dilations=(
            options.get("dilation_height_factor", 1),
            options.get("dilation_width_factor", 1),
        ),
        padding=PADDINGS[options["padding"]],
        pad_values=options.get("pad_values", 1),
        groups=options.get("groups", 1),
    )
    channels = options["channels_in"]
    if options.get("residual"):
        residual, *post_bias = rest
        extra = dict(residual=residual)
        if post_bias:
            extra["post_bias"] = post_bias[0]
        if output_type == "int8":
            scale, zero = quantization(tensors[4])
            extra.update(
                residual_scale=scale,
                residual_zero_point=zero,
                y_scale=options["y_scale"],
                y_zero_point=options.get("y_zero_point", 0),
            )
            if post_bias:
                scale, zero = quantization(tensors[5])
                extra.update(
                    post_bias_scale=scale,
                    post_bias_zero_point=zero,
                    biased_scale=options["biased_scale"],
                    biased_zero_point=options.get("biased_zero_point", 0),
                )
        assert bases == (1, 1)
        return reference.bconv2d(
            x, weights, multiplier, bias, channels, **geometry, **transform, **extra
        )
    if bases != (1, 1) or rest:
        thresholds = rest[0] if rest else None
        return reference.multi_basis_bconv2d(
            x,
            weights,
            multiplier,
            bias,
            channels,
            input_bases=bases[0],
            weight_bases=bases[1],
            thresholds=thresholds,
            **geometry,
            **transform,
        )
    return reference.bconv2d(x, weights, multiplier, bias, channels, **geometry, **transform)


def check_every_tfqnn_op(data, x):
    """Checks each Tfqnn op of the file; returns {op name: count} of those checked."""
    tflite = schema()
    model = tflite.ModelT.InitFromObj(tflite.Model.GetRootAsModel(data, 0))
    graph = model.subgraphs[0]
    interpreter = run_keeping_tensors(data, x)

    def value(index):
        tensor = graph.tensors[index]
        buffer = model.buffers[tensor.buffer]
        if buffer.data is not None and len(buffer.data):
            dtype = {
                tflite.TensorType.FLOAT32: np.float32,
                tflite.TensorType.INT32: np.int32,
                tflite.TensorType.INT8: np.int8,
            }
            return np.frombuffer(bytes(buffer.data), dtype[tensor.type]).reshape(tensor.shape)
        return interpreter.get_tensor(index)

    checked = {}
    for op in graph.operators:
        name = model.operatorCodes[op.opcodeIndex].customCode
        name = name.decode() if isinstance(name, bytes) else name
        if name is None or not name.startswith(spec.OP_PREFIX):
            continue
        options = flexbuffers.Loads(bytes(op.customOptions)) if op.customOptions is not None else {}
        inputs = [value(int(i)) for i in op.inputs]
        tensors = [graph.tensors[int(i)] for i in op.inputs]
        got = interpreter.get_tensor(int(op.outputs[0]))
        want = reference_output(name, options, inputs, tensors, graph.tensors[int(op.outputs[0])])
        assert got.dtype == want.dtype and got.shape == want.shape, (name, options)
        np.testing.assert_array_equal(got, want, err_msg=f"{name} {options}")
        checked[name] = checked.get(name, 0) + 1
    return checked


def trained_like(model, rng):
    """BatchNorm statistics as training leaves them (positive gammas, shifts != 0)."""
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        for weight in layer.weights:
            if weight.name in ("gamma", "moving_variance"):
                weight.assign(rng.uniform(0.5, 2.0, weight.shape))
            else:
                weight.assign(rng.normal(0.0, 0.5, weight.shape))
    return model


@pytest.mark.parametrize("name", ["QuickNetSmall", "BiRealNet"])
def test_every_tfqnn_op_of_the_int8_file_matches_the_reference(name):
    rng = np.random.default_rng(0)
    # QuickNet's post-ReLU BatchNorms get shifts t != 0: an int8 ADD of t
    # per block, folded with the shortcut's.
    model = trained_like(tfqnn.zoo.get(name)(input_shape=SHAPE, classes=10), rng)
    calibration = rng.normal(size=(8, *SHAPE)).astype(np.float32)
    data = tfqnn.export.to_tflite(model, int8_representative_data=calibration, verbose=0)
    checked = check_every_tfqnn_op(data, rng.normal(size=(2, *SHAPE)).astype(np.float32))
    assert checked == tfqnn.lite.custom_ops_in(data)
    assert checked["TfqnnBconv2d"] == 16
    # Every block's shortcut ADD is folded into its binary convolution.
    assert "ADD" not in tfqnn.lite.builtin_ops_in(data)
