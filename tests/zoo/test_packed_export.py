"""GoogLeNet's Inception blocks on bitpacked tensors (`tfqnn.export.packed_graph`).

Each max pool of the binary GoogLeNet (the pool branches, the stage pools,
the stem's second pool, folded into conv2) and each concatenation of
branches but the last runs on bitpacked tensors (4a's and 4d's with gap
channels). Checked three ways: each rewritten op's identity on the Keras
model's own tensors (the bits of the pooled or joined tensor from the bits
of its inputs), the file's census, and the file's outputs bit for bit
against the export without the rewrite. The other zoo networks have no
such pool or concatenation: their plan is unchanged.
"""

import keras
import numpy as np
import pytest

import tfqnn
from tests._tflite import builtin_ops
from tests.export.test_int8_branches import tensor_types
from tfqnn.export import packed_graph, plan
from tfqnn.lite import reference

SHAPE = (28, 28, 1)
GAPPED = {"inception4a_concat": (192, 208, 48, 64), "inception4d_concat": (112, 288, 64, 64)}


def googlenet():
    keras.utils.set_random_seed(0)
    return tfqnn.zoo.GoogLeNet(input_shape=SHAPE, classes=10, quantization="binary")


def test_plan_packs_the_pools_and_the_aligned_concatenations():
    model = googlenet()
    found = plan.plan_groups(model)
    groups, nodes, packed = found.groups, found.nodes, found.packed
    names = {node.operation.name for node in nodes if id(node) in packed}
    concatenations = {
        layer.name for layer in model.layers if isinstance(layer, keras.layers.Concatenate)
    }
    pools = {
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.MaxPooling2D) and layer.name not in ("pool1", "pool2")
    }
    # pool1 feeds a float BatchNorm; pool2 is folded into conv2's group;
    # inception5b's concatenation feeds the float head.
    assert names == pools | (concatenations - {"inception5b_concat"})
    assert all(how.thresholds is None for how in packed.values())
    parts = {node.operation.name: packed[id(node)].parts for node in nodes if id(node) in packed}
    assert {name: p for name, p in parts.items() if p is not None} == GAPPED
    # 4b's 1x1 convolutions (three branches and the pool projection) read 4a's
    # 512 channels with 32 gap channels; its 3x3 and 5x5 read their reductions.
    readers = [g for g in groups.values() if g.layer.name.startswith("inception4b")]
    assert sorted(g.in_channels for g in readers) == [24, 112, 544, 544, 544, 544]
    conv2 = next(g for g in groups.values() if g.layer.name == "conv2")
    assert conv2.pool is not None and conv2.bitpacked_output

    # Each rewrite on the Keras model's tensors: the bits of a pool's output are
    # the AND-pool of its input's bits, those of a concatenation the words of
    # its parts' bits, one after the other.
    rewritten = [node for node in nodes if id(node) in packed]
    tensors = {id(t): t for node in rewritten for t in (*node.input_tensors, node.outputs[0])}
    x = np.random.default_rng(0).standard_normal((2, *SHAPE)).astype(np.float32)
    outputs = keras.Model(model.input, list(tensors.values()))(x, training=False)
    bits = {
        key: reference.bitpack(keras.ops.convert_to_numpy(value))
        for key, value in zip(tensors, outputs, strict=True)
    }
    channels = {key: int(t.shape[-1]) for key, t in tensors.items()}
    for node in rewritten:
        layer, out = node.operation, node.outputs[0]
        if isinstance(layer, keras.layers.MaxPooling2D):
            (source,) = node.input_tensors
            got = reference.bmaxpool2d(
                bits[id(source)], layer.pool_size, layer.strides, layer.padding
            )
            want = bits[id(out)]
        else:
            # The parts' words one after the other, the gap bits dropped.
            words = [reference.unpack(bits[id(t)], channels[id(t)]) for t in node.input_tensors]
            got = np.concatenate(words, axis=-1)
            want = reference.unpack(bits[id(out)], channels[id(out)])
        np.testing.assert_array_equal(got, want, err_msg=layer.name)


@pytest.mark.slow  # two exports of a ~160-layer graph
def test_googlenet_file_runs_its_blocks_bitpacked(monkeypatch):
    model = googlenet()
    data = tfqnn.export.to_tflite(model, verbose=0)
    with monkeypatch.context() as patch:
        patch.setattr(packed_graph, "packed_nodes", lambda *args: {})
        plain = tfqnn.export.to_tflite(model, verbose=0)
    binary = sum(isinstance(layer, tfqnn.layers.QuantConv2D) for layer in model.layers) - 1
    # One bitpacking, for conv2_reduce (after the float stem); 12 pools on
    # bitpacked tensors; every concatenation but the head's int32.
    assert tfqnn.lite.custom_ops_in(data) == {
        "TfqnnQuantize": 1,
        "TfqnnBconv2d": binary,
        "TfqnnBMaxPool2d": 12,
    }
    types = tensor_types(data, "CONCATENATION")
    assert sorted(types) == ["FLOAT32"] + ["INT32"] * 8
    assert builtin_ops(data)["MAX_POOL_2D"] == 1  # pool1, before a float BatchNorm
    # Before: a bitpacking per block input and per pool branch, float pools.
    assert tfqnn.lite.custom_ops_in(plain) == {"TfqnnQuantize": 19, "TfqnnBconv2d": binary}
    assert builtin_ops(plain)["MAX_POOL_2D"] == 13
    assert len(data) < len(plain)

    x = np.random.default_rng(1).standard_normal((3, *SHAPE)).astype(np.float32)
    got = tfqnn.lite.Interpreter(model_content=data).predict(x)
    np.testing.assert_array_equal(got, tfqnn.lite.Interpreter(model_content=plain).predict(x))


@pytest.mark.slow  # builds seven networks (20-30 s)
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("QuickNetSmall", {}),
        ("BiRealNet", {}),
        ("BinaryAlexNet", {}),
        ("XNORNet", {}),
        ("ResNet18", {"quantization": "binary"}),
        ("VGG16", {"quantization": "binary"}),
        ("DoReFaNet", {}),
    ],
)
def test_other_networks_have_nothing_to_pack(name, kwargs):
    model = tfqnn.zoo.get(name)(input_shape=SHAPE, classes=10, **kwargs)
    found = plan.plan_groups(model)
    assert found.groups and found.packed == {}
