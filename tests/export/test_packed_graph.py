"""Max pools and concatenations between binary layers on bitpacked tensors (Inception blocks).

`tfqnn.export.packed_graph`: a max pool read only by binary layers runs as
``TfqnnBMaxPool2d`` on the bitpacked input (the bit of a window's max is the
AND of its bits), a concatenation read only by sign layers as an int32
``CONCATENATION`` of the parts' bitpacked tensors, each from a word boundary
(the readers' weights get zero-sum gap channels where a part is not a
multiple of 32 channels). The file must compute exactly what the float
pools and concatenations computed: the same outputs as Keras, and bit for
bit those of the export without the rewrite. Fan-ins are odd, so no binary
layer's output sits at 0.
"""

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops
from tests.export.test_export import BINARY, randomize
from tests.export.test_int8_branches import tensor_types
from tfqnn.export import packed_graph, plan, thermometer
from tfqnn.layers import QuantConv2D
from tfqnn.lite import reference


def conv_bn(x, filters, size, name):
    x = QuantConv2D(
        filters, size, padding="same", pad_values=1.0, use_bias=False, name=name, **BINARY
    )(x)
    return keras.layers.BatchNormalization(name=f"{name}_bn")(x)


def two_blocks():
    """Two Inception-style blocks: the first joins word-aligned branches (32, 32, 33
    channels), which a stage pool and the second block's branches (one behind a max
    pool) read; the second joins 16 and 9 channels (16 gap channels after the first)
    for a 3x3 binary convolution; a float global pool ends it."""
    inputs = keras.Input((8, 8, 5))
    a = conv_bn(inputs, 32, 1, "a")
    b = conv_bn(conv_bn(inputs, 7, 1, "b_reduce"), 32, 3, "b")
    c = keras.layers.MaxPooling2D(3, 1, padding="same", name="c_pool")(inputs)
    c = conv_bn(c, 33, 1, "c")
    x = keras.layers.Concatenate(name="join1")([a, b, c])
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="stage_pool")(x)
    d = conv_bn(x, 16, 1, "d")
    e = keras.layers.MaxPooling2D(2, 1, padding="same", name="e_pool")(x)
    e = conv_bn(e, 9, 1, "e")
    x = keras.layers.Concatenate(name="join2")([d, e])
    x = conv_bn(x, 9, 3, "f")
    outputs = keras.layers.GlobalAveragePooling2D(name="head")(x)
    return keras.Model(inputs, outputs)


def away_from_zero(rng, n, shape=(8, 8, 5)):
    magnitude = rng.uniform(0.1, 1.0, (n, *shape))
    return (magnitude * rng.choice([-1.0, 1.0], magnitude.shape)).astype(np.float32)


def between_dorefa_thresholds(rng):
    """Inputs on a grid between 2-bit DoReFa's thresholds (1/6, 1/2, 5/6), so that
    every quantization level is read the same by Keras and the file."""
    return rng.choice([-0.5, 0.0, 0.3, 0.7, 1.2], (3, 6, 6, 4)).astype(np.float32)


def assert_file_matches_keras(data, model, x):
    np.testing.assert_allclose(
        tfqnn.lite.Interpreter(model_content=data).predict(x),
        model.predict(x, verbose=0),
        rtol=2e-5,
        atol=2e-4,
    )


def export_without_rewrite(model, monkeypatch, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(packed_graph, "packed_nodes", lambda *args: {})
        return tfqnn.export.to_tflite(model, verbose=0, **kwargs)


def test_plan_marks_the_pools_and_the_aligned_concatenation(rng):
    model = randomize(two_blocks(), rng)
    found = plan.plan_groups(model)
    groups, packed = found.groups, found.packed
    # The public name walks the graph again, to the same map.
    assert plan.bitpacked_nodes(model, groups) == packed
    names = sorted(node.operation.name for node in plan.nodes_in_order(model) if id(node) in packed)
    assert names == ["c_pool", "e_pool", "join1", "join2", "stage_pool"]
    assert all(how.thresholds is None for how in packed.values())
    nodes = [node for node in plan.nodes_in_order(model) if id(node) in packed]
    parts = {node.operation.name: packed[id(node)].parts for node in nodes}
    assert parts["join1"] is None and parts["join2"] == (16, 9)  # 16 gap channels in join2
    by_name = {group.layer.name: group for group in groups.values()}
    # Every branch writes bitpacked output, b_reduce too (read by b); f writes
    # float for the head.
    packed_writers = sorted(name for name, g in by_name.items() if g.bitpacked_output)
    assert packed_writers == ["a", "b", "b_reduce", "c", "d", "e"]
    # f reads 16 + 16 gap + 9 channels: two words, the gap weights +1, -1, ...
    f = by_name["f"]
    assert f.in_channels == 41 and f.packed_weights.shape == (9, 3, 3, 2)
    signs = reference.unpack(f.packed_weights, 41)
    np.testing.assert_array_equal(signs[..., 16:32], np.tile([1.0, -1.0], (9, 3, 3, 8)))
    kernel = keras.ops.convert_to_numpy(model.get_layer("f").kernel)  # [3, 3, 25, 9]
    expected = np.moveaxis(np.where(kernel < 0, -1.0, 1.0), -1, 0)
    np.testing.assert_array_equal(signs[..., :16], expected[..., :16])
    np.testing.assert_array_equal(signs[..., 32:], expected[..., 16:])


def test_packed_pools_and_concatenation_match_keras_and_the_float_path(rng, monkeypatch):
    model = randomize(two_blocks(), rng)
    x = away_from_zero(rng, 4)
    data = tfqnn.export.to_tflite(model, verbose=0)
    plain = export_without_rewrite(model, monkeypatch)
    # Packed: one bitpacking of the input (a, b_reduce, c_pool), none after;
    # the three pools as TfqnnBMaxPool2d.
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 1,
        "TfqnnBconv2d": 7,
        "TfqnnBMaxPool2d": 3,
    }
    assert "MAX_POOL_2D" not in builtin_ops(data)
    assert tensor_types(data, "CONCATENATION") == ["INT32", "INT32"]
    # Without the rewrite: a float pool each, and a bitpacking of the input
    # (a, b_reduce), after each pool and after join2.
    assert tfqnn.lite.custom_ops_in(plain) == {"TfqnnQuantize": 5, "TfqnnBconv2d": 7}
    assert builtin_ops(plain)["MAX_POOL_2D"] == 3
    assert tensor_types(plain, "CONCATENATION") == ["FLOAT32", "FLOAT32"]

    expected = model.predict(x, verbose=0)
    got = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-4)
    np.testing.assert_array_equal(got, tfqnn.lite.Interpreter(model_content=plain).predict(x))


def test_int8_export_pools_and_joins_bitpacked_tensors(rng):
    model = randomize(two_blocks(), rng)
    x = away_from_zero(rng, 16)
    data = tfqnn.export.to_tflite(model, int8_representative_data=x, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 1,
        "TfqnnBconv2d": 7,
        "TfqnnBMaxPool2d": 3,
    }
    # Both concatenations packed; f writes the int8 tensor of the head.
    assert tensor_types(data, "CONCATENATION") == ["INT32", "INT32"]
    assert "MAX_POOL_2D" not in builtin_ops(data)
    # Inputs at least 0.1 from 0 keep their signs in int8, so every binary
    # layer reads the bits Keras reads; only f's output and the mean are int8.
    expected = model.predict(x, verbose=0)
    f = keras.Model(model.input, model.get_layer("f_bn").output).predict(x, verbose=0)
    step = float(np.ptp(f)) / 255
    got = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2 * step)


@pytest.mark.parametrize("reader", ["float", "output", "dense_through_flatten"])
def test_a_pool_with_another_reader_stays_float(rng, reader):
    """A pool or concatenation that a float layer or the model's output reads keeps
    its float tensor (and the binary reader bitpacks it)."""
    inputs = keras.Input((6, 6, 3))
    pooled = keras.layers.MaxPooling2D(2, name="pool")(inputs)
    binary = conv_bn(pooled, 5, 1, "binary")
    if reader == "float":
        other = keras.layers.Conv2D(2, 1, name="float")(pooled)
        outputs = [binary, other]
    elif reader == "output":
        outputs = [binary, pooled]
    else:
        flat = keras.layers.Flatten()(pooled)
        outputs = [binary, keras.layers.Dense(2)(flat)]
    model = randomize(keras.Model(inputs, outputs), rng)
    assert plan.plan_groups(model).packed == {}
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert "TfqnnBMaxPool2d" not in tfqnn.lite.custom_ops_in(data)
    x = away_from_zero(rng, 3, (6, 6, 3))
    expected = model.predict(x, verbose=0)
    got = tfqnn.lite.Interpreter(model_content=data).predict(x)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-4)


def _pool_for_two_dorefa_readers(rng: np.random.Generator) -> keras.Model:
    """A max pool read by two DoReFa (2-bit input, 1-bit kernel) layers, whose
    outputs a third one reads through a concatenation."""
    from tfqnn.quantizers import DoReFa

    dorefa = dict(
        input_quantizer=DoReFa(2, mode="activations"),
        kernel_quantizer=DoReFa(1, mode="weights"),
        use_bias=False,
    )
    inputs = keras.Input((6, 6, 4))
    pooled = keras.layers.MaxPooling2D(3, 1, padding="same", name="pool")(inputs)
    first = QuantConv2D(32, 1, name="first", **dorefa)(pooled)
    second = QuantConv2D(32, 1, name="second", **dorefa)(pooled)
    joined = keras.layers.Concatenate(name="join")([first, second])
    outputs = QuantConv2D(3, 1, name="last", **dorefa)(joined)
    return randomize(keras.Model(inputs, outputs), rng)


@pytest.mark.filterwarnings("ignore:QuantConv2D has a binary kernel_quantizer")  # DoReFa's STE
def test_binary_digit_readers_take_no_packed_pool(rng):
    """The level's binary digits (the default encoding) are not monotone in the
    input: a pool or concatenation read by digit readers stays float."""
    assert thermometer.ENCODING == "binary"
    model = _pool_for_two_dorefa_readers(rng)
    assert plan.plan_groups(model).packed == {}
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert "TfqnnBMaxPool2d" not in tfqnn.lite.custom_ops_in(data)
    x = between_dorefa_thresholds(rng)
    assert_file_matches_keras(data, model, x)


@pytest.mark.filterwarnings("ignore:QuantConv2D has a binary kernel_quantizer")  # DoReFa's STE
def test_multi_basis_readers_pool_every_basis(rng, monkeypatch):
    """Read as a thermometer code (three bases), a pool read by two DoReFa layers
    runs packed on the three bases; a concatenation for them stays float (bases
    are basis-major per part)."""
    monkeypatch.setattr(thermometer, "ENCODING", "thermometer")
    model = _pool_for_two_dorefa_readers(rng)
    ((node_id, how),) = plan.plan_groups(model).packed.items()
    assert next(n for n in plan.nodes_in_order(model) if id(n) == node_id).operation.name == "pool"
    assert how.thresholds is not None and how.thresholds.shape == (3,) and how.parts is None
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 2,  # the input (three bases, then pooled), the concatenation
        "TfqnnBconv2d": 3,
        "TfqnnBMaxPool2d": 1,
    }
    x = between_dorefa_thresholds(rng)
    assert_file_matches_keras(data, model, x)


def test_a_concatenation_with_an_odd_part_stays_float(rng):
    """15 channels before the last part: 17 gap channels cannot sum to 0."""
    inputs = keras.Input((5, 5, 3))
    x = keras.layers.Concatenate()([conv_bn(inputs, 15, 1, "a"), conv_bn(inputs, 9, 1, "b")])
    model = randomize(keras.Model(inputs, conv_bn(x, 4, 3, "c")), rng)
    assert plan.plan_groups(model).packed == {}
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert tfqnn.lite.custom_ops_in(data) == {"TfqnnQuantize": 2, "TfqnnBconv2d": 3}
    assert tensor_types(data, "CONCATENATION") == ["FLOAT32"]
    x = away_from_zero(rng, 2, (5, 5, 3))
    assert_file_matches_keras(data, model, x)


@pytest.mark.parametrize("pad_values", [1, 0, -1])
@pytest.mark.parametrize("parts", [(16, 9), (6, 40, 33), (64, 2, 1)])
def test_gap_channels_add_nothing_to_the_dot_product(rng, parts, pad_values):
    """The reference op on gapped input and weights equals it on the plain ones,
    padding pixels included, for each pad value."""
    channels = sum(parts)
    x = rng.choice([-1.0, 1.0], (2, 5, 6, channels)).astype(np.float32)
    w = rng.choice([-1.0, 1.0], (4, 3, 3, channels)).astype(np.float32)
    pieces, start = [], 0
    for part in parts:
        pieces.append(reference.bitpack(x[..., start : start + part]))
        start += part
    gapped_x = np.concatenate(pieces, axis=-1)
    gapped_w, gapped_channels = packed_graph.gapped_weights(reference.bitpack(w), parts)
    assert gapped_channels == sum(-p % 32 for p in parts[:-1]) + channels
    assert gapped_x.shape[-1] == gapped_w.shape[-1] == -(-gapped_channels // 32)
    ones, zeros = np.ones(4, np.float32), np.zeros(4, np.float32)
    options = dict(padding="same", pad_values=pad_values, strides=(1, 2))
    plain = reference.bconv2d(
        reference.bitpack(x), reference.bitpack(w), ones, zeros, channels, **options
    )
    gapped = reference.bconv2d(gapped_x, gapped_w, ones, zeros, gapped_channels, **options)
    np.testing.assert_array_equal(gapped, plain)
