"""tfqnn's custom ops as TensorFlow composite functions.

Each op is a `tf.function` whose `experimental_implements` names the TFLite
custom op (``tfl_fusable_op``): TensorFlow runs its body (plain TF code that
computes exactly what the op defines, see docs/lite_ops.md), and the TFLite
converter's prepare-composite-functions pass replaces the call by one
``tfl.custom`` op whose custom options are the other attributes, as a
FlexBuffer map (research note tflite_custom_ops.md, section 1).
"""

import math

import numpy as np
import tensorflow as tf

OUTPUT_TYPES = {"float": 0, "int8": 1, "bitpacked": 2}
PADDING_CODES = {"same": 1, "valid": 2}


def _implements(name, attrs):
    """The text NameAttrList of `experimental_implements`."""
    parts = [f'name: "{name}"', 'attr { key: "tfl_fusable_op" value { b: true } }']
    for key, value in sorted(attrs.items()):
        if isinstance(value, bool):
            raise TypeError(f"option {key}: use ints, not bools")
        if isinstance(value, (int, np.integer)):
            parts.append(f'attr {{ key: "{key}" value {{ i: {int(value)} }} }}')
        else:
            parts.append(f'attr {{ key: "{key}" value {{ f: {float(value)!r} }} }}')
    return " ".join(parts)


def _composite(name, attrs, body, *args):
    fn = tf.function(body, experimental_implements=_implements(name, attrs), autograph=False)
    return fn(*args)


# ---- bit manipulation in TF ---------------------------------------------


def _shifts():
    # Built inside each function: composite functions may not capture tensors.
    return tf.range(32, dtype=tf.int32)


def bitpack(x):
    """float32 or int8-as-float `[..., C]` -> int32 `[..., ceil(C/32)]` (bit 1 = x < 0)."""
    channels = x.shape[-1]
    words = math.ceil(channels / 32)
    bits = tf.cast(x < 0, tf.int32)
    pad = [[0, 0]] * (len(x.shape) - 1) + [[0, 32 * words - channels]]
    bits = tf.pad(bits, pad)
    bits = tf.reshape(bits, tf.concat([tf.shape(bits)[:-1], [words, 32]], 0))
    return tf.reduce_sum(tf.bitwise.left_shift(bits, _shifts()), axis=-1)


def unpack(words, channels):
    """int32 `[..., W]` -> float32 `[..., channels]` of +-1."""
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(words[..., None], _shifts()), 1)
    bits = tf.reshape(bits, tf.concat([tf.shape(words)[:-1], [32 * words.shape[-1]]], 0))
    return 1.0 - 2.0 * tf.cast(bits[..., :channels], tf.float32)


def _transform(dot, multiplier, bias, clamp_min, clamp_max, output_type):
    y = tf.cast(dot, tf.float32) * multiplier + bias
    if clamp_min is not None:
        y = tf.maximum(y, clamp_min)
    if clamp_max is not None:
        y = tf.minimum(y, clamp_max)
    if output_type == "bitpacked":
        return bitpack(y)
    return y


def _transform_attrs(output_type, clamp_min, clamp_max):
    attrs = {}
    if output_type != "float":
        attrs["output_type"] = OUTPUT_TYPES[output_type]
    if clamp_min is not None:
        attrs["clamp_min"] = float(clamp_min)
    if clamp_max is not None:
        attrs["clamp_max"] = float(clamp_max)
    return attrs


# ---- the ops -------------------------------------------------------------


def quantize(x):
    """TfqnnQuantize: float32 `[..., C]` -> bitpacked int32."""
    return _composite("TfqnnQuantize", {}, bitpack, x)


def dequantize(x, channels):
    """TfqnnDequantize: bitpacked int32 -> float32 +-1 `[..., channels]`."""
    return _composite(
        "TfqnnDequantize", {"channels": int(channels)}, lambda w: unpack(w, channels), x
    )


def bdense(
    x,
    weights,
    multiplier,
    bias,
    in_features,
    *,
    output_type="float",
    clamp_min=None,
    clamp_max=None,
):
    """TfqnnBdense on bitpacked `x [..., W]` and constant packed `weights [N, W]`."""
    weights = tf.constant(weights, tf.int32)
    multiplier = tf.constant(multiplier, tf.float32)
    bias = tf.constant(bias, tf.float32)

    def body(x, weights, multiplier, bias):
        xor = tf.bitwise.bitwise_xor(x[..., None, :], weights)
        pop = tf.reduce_sum(tf.cast(tf.raw_ops.PopulationCount(x=xor), tf.int32), -1)
        return _transform(
            in_features - 2 * pop, multiplier, bias, clamp_min, clamp_max, output_type
        )

    attrs = {"in_features": int(in_features)}
    attrs.update(_transform_attrs(output_type, clamp_min, clamp_max))
    return _composite("TfqnnBdense", attrs, body, x, weights, multiplier, bias)


def bconv2d(
    x,
    filters,
    multiplier,
    bias,
    channels_in,
    *,
    strides=(1, 1),
    dilations=(1, 1),
    padding="valid",
    pad_values=1,
    groups=1,
    output_type="float",
    clamp_min=None,
    clamp_max=None,
):
    """TfqnnBconv2d on bitpacked NHWC `x` and a constant packed OHWI filter."""
    filters = np.asarray(filters, np.int32)
    _, kh, kw, _ = filters.shape
    group_channels = channels_in // groups
    filters = tf.constant(filters, tf.int32)
    multiplier = tf.constant(multiplier, tf.float32)
    bias = tf.constant(bias, tf.float32)

    def body(x, filters, multiplier, bias):
        filter_hwio = tf.transpose(unpack(filters, group_channels), (1, 2, 3, 0))
        xf = unpack(x, channels_in)
        pad = "VALID"
        if padding == "same":
            xf, pad = _pad_same(xf, kh, kw, strides, dilations, pad_values)
        y = tf.nn.conv2d(
            xf, filter_hwio, strides=(1, *strides, 1), padding=pad, dilations=(1, *dilations, 1)
        )
        return _transform(
            tf.cast(tf.round(y), tf.int32), multiplier, bias, clamp_min, clamp_max, output_type
        )

    attrs = {
        "channels_in": int(channels_in),
        "stride_height": int(strides[0]),
        "stride_width": int(strides[1]),
        "dilation_height_factor": int(dilations[0]),
        "dilation_width_factor": int(dilations[1]),
        "padding": PADDING_CODES[padding],
        "pad_values": int(pad_values),
    }
    if groups != 1:
        attrs["groups"] = int(groups)
    attrs.update(_transform_attrs(output_type, clamp_min, clamp_max))
    return _composite("TfqnnBconv2d", attrs, body, x, filters, multiplier, bias)


def bmaxpool2d(x, pool_size, strides, padding="valid"):
    """TfqnnBMaxPool2d: max pooling of bitpacked +-1 values (AND of the bits)."""

    def body(x):
        channels = 32 * x.shape[-1]
        y = tf.nn.max_pool2d(unpack(x, channels), pool_size, strides, padding.upper())
        return bitpack(y)

    attrs = {
        "filter_height": int(pool_size[0]),
        "filter_width": int(pool_size[1]),
        "stride_height": int(strides[0]),
        "stride_width": int(strides[1]),
        "padding": PADDING_CODES[padding],
    }
    return _composite("TfqnnBMaxPool2d", attrs, body, x)


def _pad_same(x, kh, kw, strides, dilations, pad_value):
    """Explicit TensorFlow SAME padding with the given value."""
    pads = []
    for size, k, s, d in zip(x.shape[1:3], (kh, kw), strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append([total // 2, total - total // 2])
    x = tf.pad(x, [[0, 0], *pads, [0, 0]], constant_values=float(pad_value))
    return x, "VALID"
