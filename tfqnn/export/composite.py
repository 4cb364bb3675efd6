"""tfqnn's custom ops as TensorFlow composite functions.

Each op is a `tf.function` whose `experimental_implements` names the TFLite
custom op (``tfl_fusable_op``): TensorFlow runs its body (plain TF code that
computes exactly what the op defines, see docs/lite_ops.md), and the TFLite
converter's prepare-composite-functions pass replaces the call by one
``tfl.custom`` op whose custom options are the other attributes of
`experimental_implements`, written as a FlexBuffer map. The option names,
codes and checks come from `tfqnn.lite.spec`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from tfqnn.lite import spec


def _implements(name: str, options: spec.Options) -> str:
    """The text NameAttrList of `experimental_implements`."""
    parts = [f'name: "{name}"', 'attr { key: "tfl_fusable_op" value { b: true } }']
    for key, value in sorted(options.items()):
        if isinstance(value, bool):
            raise TypeError(f"option {key}: use ints, not bools")
        if isinstance(value, (int, np.integer)):
            parts.append(f'attr {{ key: "{key}" value {{ i: {int(value)} }} }}')
        else:
            parts.append(f'attr {{ key: "{key}" value {{ f: {float(value)!r} }} }}')
    return " ".join(parts)


def _composite(
    name: str, options: spec.Options, body: Callable[..., tf.Tensor], *args: Any
) -> tf.Tensor:
    fn = tf.function(body, experimental_implements=_implements(name, options), autograph=False)
    return fn(*args)


# ---- bit manipulation in TF ---------------------------------------------


def _shifts() -> tf.Tensor:
    # Built inside each function: composite functions may not capture tensors.
    return tf.range(spec.BITS_PER_WORD, dtype=tf.int32)


def _reshape_lead(t: tf.Tensor, like: tf.Tensor, last: list[int]) -> tf.Tensor:
    """``t`` reshaped to ``like``'s shape with its last axis replaced by ``last``.

    A constant target shape (``-1`` for the batch) where ``like``'s other
    leading dims are static: the converter infers a custom op's output shape
    from its body, and a target computed from ``tf.shape`` would leave it
    unknown (placeholder shapes in the file).
    """
    lead = like.shape[:-1]
    if len(lead) == 0:
        return tf.reshape(t, last)
    if all(d is not None and d > 0 for d in lead[1:]):
        return tf.reshape(t, [-1, *lead[1:], *last])
    return tf.reshape(t, tf.concat([tf.shape(like)[:-1], last], 0))


def bitpack(x: tf.Tensor) -> tf.Tensor:
    """float32 or int8-as-float `[..., C]` -> int32 `[..., ceil(C/32)]` (bit 1 = x < 0)."""
    channels = x.shape[-1]
    words = spec.packed_words(channels)
    bits = tf.cast(x < 0, tf.int32)
    pad = [[0, 0]] * (len(x.shape) - 1) + [[0, 32 * words - channels]]
    bits = tf.pad(bits, pad)
    bits = _reshape_lead(bits, bits, [words, 32])
    return tf.reduce_sum(tf.bitwise.left_shift(bits, _shifts()), axis=-1)


def unpack(words: tf.Tensor, channels: int) -> tf.Tensor:
    """int32 `[..., W]` -> float32 `[..., channels]` of +-1."""
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(words[..., None], _shifts()), 1)
    bits = _reshape_lead(bits, words, [32 * words.shape[-1]])
    return 1.0 - 2.0 * tf.cast(bits[..., :channels], tf.float32)


def _transform(
    dot: tf.Tensor,
    multiplier: tf.Tensor,
    bias: tf.Tensor,
    clamp_min: float | None,
    clamp_max: float | None,
    output_type: str,
) -> tf.Tensor:
    """The output transform (float or bitpacked output; int8 is written by int8_fusion)."""
    y = tf.cast(dot, tf.float32) * multiplier + bias
    if clamp_min is not None:
        y = tf.maximum(y, clamp_min)
    if clamp_max is not None:
        y = tf.minimum(y, clamp_max)
    if output_type == "bitpacked":
        return bitpack(y)
    return y


def _below(
    y: tf.Tensor, thresholds: tf.Tensor, count: int, encoding: str = "thermometer"
) -> tf.Tensor:
    """Bitpacked bases of ``y``: basis ``i`` has bit 1 where ``y < thresholds[i]``.

    ``encoding="binary"`` (``count = 2^k - 1``): k bases, basis ``i`` with bit 1
    where bit ``i`` of the level ``L = #{j : not y < t_j}`` is 0.
    """
    if encoding == "thermometer":
        return tf.concat(
            [bitpack(tf.where(y < thresholds[i], -1.0, 1.0)) for i in range(count)], -1
        )
    level = tf.add_n([tf.cast(tf.logical_not(y < thresholds[j]), tf.int32) for j in range(count)])
    bases = [
        bitpack(
            tf.where(tf.bitwise.bitwise_and(tf.bitwise.right_shift(level, i), 1) > 0, 1.0, -1.0)
        )
        for i in range(count.bit_length())
    ]
    return tf.concat(bases, -1)


def _multi_transform(
    dots: list[list[tf.Tensor]],
    multiplier: tf.Tensor,
    bias: tf.Tensor,
    clamp_min: float | None,
    clamp_max: float | None,
    output_type: str,
    thresholds: tf.Tensor | None,
    count: int,
    encoding: str = "thermometer",
) -> tf.Tensor:
    """The multi-basis output transform of ``dots[n][m]`` (int32 ``[..., O]``).

    ``multiplier [N * M * O]``: ``acc = sum_(n, m) float32(dot_nm) * c_nm``
    left to right, ``y = clamp(acc + bias)``, then float or bitpacked (with
    ``count`` output thresholds in ``encoding``, or bit where ``y < 0``).
    """
    n_in, n_w = len(dots), len(dots[0])
    mult = tf.reshape(multiplier, [n_in, n_w, -1])
    acc = None
    for n in range(n_in):
        for m in range(n_w):
            p = tf.cast(dots[n][m], tf.float32) * mult[n, m]
            acc = p if acc is None else acc + p
    assert acc is not None
    y = acc + bias
    if clamp_min is not None:
        y = tf.maximum(y, clamp_min)
    if clamp_max is not None:
        y = tf.minimum(y, clamp_max)
    if output_type != "bitpacked":
        return y
    return bitpack(y) if thresholds is None else _below(y, thresholds, count, encoding)


def _bases_inputs(
    multiplier: np.ndarray, bias: np.ndarray, thresholds: np.ndarray | None, output_type: str
) -> list[tf.Tensor]:
    """The constant multiplier, bias (and output thresholds) inputs of a binary op."""
    tensors = [tf.constant(multiplier, tf.float32), tf.constant(bias, tf.float32)]
    if thresholds is not None:
        if output_type != "bitpacked":
            raise ValueError(
                f"Invalid output_type={output_type!r}: output thresholds need 'bitpacked'."
            )
        tensors.append(tf.constant(spec.check_thresholds("thresholds", thresholds)))
    return tensors


def _checked_encoding(name: str, encoding: str, thresholds: np.ndarray | None) -> str:
    """The checked encoding ``name`` of `thresholds` (only "thermometer" without any)."""
    encoding = spec.check_encoding(name, encoding)
    if thresholds is None:
        if encoding != "thermometer":
            raise ValueError(
                f"Invalid {name}={encoding!r}: expected 'thermometer' without thresholds."
            )
    else:
        spec.threshold_bases(thresholds, encoding)
    return encoding


def _float_or_bitpacked(output_type: str) -> str:
    """The exporter writes float or bitpacked output; int8 comes from `int8_fusion`."""
    output_type = spec.check_output_type(output_type)
    if output_type == "int8":
        raise ValueError(
            "Invalid output_type='int8': expected 'float' or 'bitpacked' "
            "(int8 output is set on the converted file by tfqnn.export.int8_fusion)."
        )
    return output_type


# ---- the ops -------------------------------------------------------------


def quantize(
    x: tf.Tensor, thresholds: np.ndarray | None = None, encoding: str = "thermometer"
) -> tf.Tensor:
    """TfqnnQuantize: float32 `[..., C]` -> bitpacked int32.

    With ``thresholds [N]``: N bases in one int32 ``[..., N * ceil(C/32)]``,
    basis n with bit 1 where ``x < thresholds[n]`` (multi-basis inputs);
    ``encoding="binary"``: the k binary digits of the level for ``N = 2^k - 1``
    thresholds (`spec.ENCODINGS`).
    """
    name = _checked_encoding("encoding", encoding, thresholds)
    if thresholds is None:
        return _composite(spec.QUANTIZE, {}, bitpack, x)
    values = spec.check_thresholds("thresholds", thresholds)
    options = spec.quantize_options(name)

    def body(x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        return _below(x, t, len(values), name)

    return _composite(spec.QUANTIZE, options, body, x, tf.constant(values))


def bdense(
    x: tf.Tensor,
    weights: np.ndarray,
    multiplier: np.ndarray,
    bias: np.ndarray,
    in_features: int,
    *,
    output_type: str = "float",
    clamp_min: float | None = None,
    clamp_max: float | None = None,
    input_bases: int = 1,
    weight_bases: int = 1,
    thresholds: np.ndarray | None = None,
    output_encoding: str = "thermometer",
) -> tf.Tensor:
    """TfqnnBdense on bitpacked `x [..., W]` and constant packed `weights [N, W]`.

    Multi-basis (docs/lite_ops.md): ``x [..., input_bases * W]``, ``weights
    [weight_bases * O, W]``, ``multiplier [input_bases * weight_bases * O]``;
    ``thresholds`` give bitpacked output one basis each (``output_encoding
    ="binary"``: the binary digits of the level, as `quantize`).
    """
    output_type = _float_or_bitpacked(output_type)
    options = spec.bdense_options(
        in_features,
        output_type=output_type,
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        input_bases=input_bases,
        weight_bases=weight_bases,
        output_encoding=output_encoding,
    )
    encoding = _checked_encoding("output_encoding", output_encoding, thresholds)
    weights = spec.check_packed("weights", weights, ndim=2)
    constants = _bases_inputs(multiplier, bias, thresholds, output_type)
    plain = input_bases == 1 and weight_bases == 1 and thresholds is None
    count = 0 if thresholds is None else int(np.size(thresholds))

    def body(x: tf.Tensor, weights: tf.Tensor, *affine: tf.Tensor) -> tf.Tensor:
        if plain:
            xor = tf.bitwise.bitwise_xor(x[..., None, :], weights)
            pop = tf.reduce_sum(tf.cast(tf.raw_ops.PopulationCount(x=xor), tf.int32), -1)
            return _transform(
                in_features - 2 * pop, affine[0], affine[1], clamp_min, clamp_max, output_type
            )
        words = weights.shape[-1]
        rows = weights.shape[0] // weight_bases
        dots = []
        for n in range(input_bases):
            xn = x[..., n * words : (n + 1) * words]
            row = []
            for m in range(weight_bases):
                xor = tf.bitwise.bitwise_xor(xn[..., None, :], weights[m * rows : (m + 1) * rows])
                pop = tf.reduce_sum(tf.cast(tf.raw_ops.PopulationCount(x=xor), tf.int32), -1)
                row.append(in_features - 2 * pop)
            dots.append(row)
        t = affine[2] if count else None
        return _multi_transform(
            dots, affine[0], affine[1], clamp_min, clamp_max, output_type, t, count, encoding
        )

    weights_tensor = tf.constant(weights, tf.int32)
    return _composite(spec.BDENSE, options, body, x, weights_tensor, *constants)


def bconv2d(
    x: tf.Tensor,
    filters: np.ndarray,
    multiplier: np.ndarray,
    bias: np.ndarray,
    channels_in: int,
    *,
    strides: tuple[int, int] = (1, 1),
    dilations: tuple[int, int] = (1, 1),
    padding: str = "valid",
    pad_values: int = 1,
    groups: int = 1,
    output_type: str = "float",
    clamp_min: float | None = None,
    clamp_max: float | None = None,
    input_bases: int = 1,
    weight_bases: int = 1,
    thresholds: np.ndarray | None = None,
    residual: tf.Tensor | None = None,
    post_bias: np.ndarray | None = None,
    output_encoding: str = "thermometer",
) -> tf.Tensor:
    """TfqnnBconv2d on bitpacked NHWC `x` and a constant packed OHWI filter.

    Multi-basis as `bdense`: ``x [B, H, W, input_bases * ceil(C/32)]``,
    ``filters [weight_bases * O, KH, KW, ...]``. ``residual``: a float32
    tensor of the output's shape added to the float output after the clamp
    (option ``residual``, the fused shortcut ``ADD``; the op's fifth input),
    after ``post_bias [O]`` (a constant, the sixth input) when given.
    ``output_encoding`` as `bdense`.
    """
    output_type = _float_or_bitpacked(output_type)
    if residual is not None and thresholds is not None:
        raise ValueError("Invalid thresholds: a residual input needs float output, no thresholds.")
    if post_bias is not None and residual is None:
        raise ValueError("Invalid post_bias: it needs a residual.")
    options = spec.bconv2d_options(
        channels_in,
        strides=strides,
        dilations=dilations,
        padding=padding,
        pad_values=pad_values,
        groups=groups,
        output_type=output_type,
        clamp_min=clamp_min,
        clamp_max=clamp_max,
        input_bases=input_bases,
        weight_bases=weight_bases,
        residual=residual is not None,
        output_encoding=output_encoding,
    )
    encoding = _checked_encoding("output_encoding", output_encoding, thresholds)
    filters = spec.check_packed("filters", filters, ndim=4)
    rows, kh, kw, _ = filters.shape
    out_channels = rows // weight_bases
    group_channels = channels_in // spec.check_groups(groups, channels_in, out_channels)
    strides = spec.check_pair("strides", strides)
    dilations = spec.check_pair("dilations", dilations)
    padding = spec.check_padding(padding)
    constants = _bases_inputs(multiplier, bias, thresholds, output_type)
    plain = input_bases == 1 and weight_bases == 1 and thresholds is None
    count = 0 if thresholds is None else int(np.size(thresholds))
    words = spec.packed_words(channels_in)

    def dot(x: tf.Tensor, filters: tf.Tensor) -> tf.Tensor:
        filter_hwio = tf.transpose(unpack(filters, group_channels), (1, 2, 3, 0))
        xf = unpack(x, channels_in)
        if padding == "same":
            xf = _pad_same(xf, (kh, kw), strides, dilations, pad_values)
        y = tf.nn.conv2d(
            xf,
            filter_hwio,
            strides=(1, *strides, 1),
            padding="VALID",
            dilations=(1, *dilations, 1),
        )
        return tf.cast(tf.round(y), tf.int32)

    def body(x: tf.Tensor, filters: tf.Tensor, *affine: tf.Tensor) -> tf.Tensor:
        if post_bias is not None:
            *rest, shortcut, shift = affine
            return (outputs(x, filters, *rest) + shift) + shortcut
        if residual is not None:
            *rest, shortcut = affine
            return outputs(x, filters, *rest) + shortcut
        return outputs(x, filters, *affine)

    def outputs(x: tf.Tensor, filters: tf.Tensor, *affine: tf.Tensor) -> tf.Tensor:
        if plain:
            return _transform(
                dot(x, filters), affine[0], affine[1], clamp_min, clamp_max, output_type
            )
        dots = [
            [
                dot(
                    x[..., n * words : (n + 1) * words],
                    filters[m * out_channels : (m + 1) * out_channels],
                )
                for m in range(weight_bases)
            ]
            for n in range(input_bases)
        ]
        t = affine[2] if count else None
        return _multi_transform(
            dots, affine[0], affine[1], clamp_min, clamp_max, output_type, t, count, encoding
        )

    filters_tensor = tf.constant(filters, tf.int32)
    extra = [] if residual is None else [tf.cast(residual, tf.float32)]
    if post_bias is not None:
        extra.append(tf.constant(spec.check_vector("post_bias", post_bias, out_channels)))
    return _composite(spec.BCONV2D, options, body, x, filters_tensor, *constants, *extra)


def bmaxpool2d(
    x: tf.Tensor,
    pool_size: tuple[int, int],
    strides: tuple[int, int],
    padding: str = "valid",
) -> tf.Tensor:
    """TfqnnBMaxPool2d: max pooling of bitpacked +-1 values (AND of the bits)."""
    options = spec.bmaxpool2d_options(pool_size, strides, padding)
    pool_size = spec.check_pair("pool_size", pool_size)
    strides = spec.check_pair("strides", strides)
    padding = spec.check_padding(padding)

    def body(x: tf.Tensor) -> tf.Tensor:
        channels = 32 * x.shape[-1]
        y = tf.nn.max_pool2d(unpack(x, channels), pool_size, strides, padding.upper())
        return bitpack(y)

    return _composite(spec.BMAXPOOL2D, options, body, x)


def _pad_same(
    x: tf.Tensor,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    pad_value: int,
) -> tf.Tensor:
    """Pads the spatial axes of NHWC `x` (static sizes) as SAME does, with `pad_value`."""
    pads = []
    for axis in range(2):
        geometry = spec.conv_geometry(
            x.shape[1 + axis], kernel[axis], strides[axis], dilations[axis], "same"
        )
        pads.append([geometry.pad_before, geometry.pad_after])
    return tf.pad(x, [[0, 0], *pads, [0, 0]], constant_values=float(pad_value))
