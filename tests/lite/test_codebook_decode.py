"""TfqnnCodebookDecode: the numpy reference, the C++ core and the op in both runtimes."""

import numpy as np
import pytest

from tfqnn.lite import Interpreter, _core, reference, spec
from tfqnn.lite.testing import Tensor, single_op_model


def _pack_by_hand(indices, bits):
    """An independent packer: one Python integer as the little-endian bit stream."""
    stream = 0
    for i, index in enumerate(int(v) for v in np.ravel(indices)):
        stream |= index << (i * bits)
    size = -(-np.size(indices) * bits // 8)
    return np.frombuffer(stream.to_bytes(size, "little"), np.uint8)


def test_pack_indices_worked_example():
    # Byte 0 holds 1 (bits 0-2), 2 (bits 3-5) and the low bits of 3 (bits 6-7):
    # 1 + 16 + 192 = 209; byte 1 the high bit of 3 (0), 4 << 1 and 5 << 4: 88.
    packed = reference.pack_indices([1, 2, 3, 4, 5], bits=3)
    assert packed.tolist() == [209, 88]


@pytest.mark.parametrize("bits", range(1, 17))
def test_pack_and_unpack_match_an_independent_packer(rng, bits):
    count = int(rng.integers(1, 70))
    indices = rng.integers(0, 1 << bits, count)
    packed = reference.pack_indices(indices, bits)
    assert packed.dtype == np.uint8 and packed.size == spec.packed_index_bytes(count, bits)
    np.testing.assert_array_equal(packed, _pack_by_hand(indices, bits))
    np.testing.assert_array_equal(reference.unpack_indices(packed, count, bits), indices)


def test_pack_indices_rejects_indices_that_do_not_fit():
    with pytest.raises(ValueError, match="indices"):
        reference.pack_indices([0, 4], bits=2)
    with pytest.raises(ValueError, match="bits"):
        reference.pack_indices([0], bits=17)


def test_index_bits():
    assert [spec.index_bits(k) for k in (1, 2, 3, 4, 5, 16, 17, 65536)] == [
        1,
        1,
        2,
        2,
        3,
        4,
        5,
        16,
    ]


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 7, 8, 9, 12, 16])
def test_core_matches_reference(rng, bits):
    codes = int(rng.integers(1, min(1 << bits, 300) + 1))
    shape = tuple(int(d) for d in rng.integers(1, 9, int(rng.integers(1, 4))))
    indices = rng.integers(0, codes, shape)
    table = rng.normal(size=codes).astype(np.float32)
    packed = reference.pack_indices(indices, bits)
    expected = table[indices]
    np.testing.assert_array_equal(reference.codebook_decode(packed, table, shape, bits), expected)
    np.testing.assert_array_equal(_core.codebook_decode(packed, table, shape, bits), expected)


def test_index_out_of_range_is_an_error_in_reference_and_core():
    packed = reference.pack_indices([0, 1, 3, 2], bits=2)  # 3 >= 3 codes
    table = np.array([0.5, -1.0, 2.0], np.float32)
    with pytest.raises(ValueError, match="out of range"):
        reference.codebook_decode(packed, table, (4,), 2)
    with pytest.raises(ValueError, match="out of range"):
        _core.codebook_decode(packed, table, (4,), 2)


def _decode_model(indices, table, shape, bits, options=None):
    packed = reference.pack_indices(indices, bits)
    return single_op_model(
        spec.CODEBOOK_DECODE,
        spec.codebook_decode_options(bits) if options is None else options,
        [Tensor([packed.size], "uint8", packed), Tensor([table.size], "float32", table)],
        [Tensor(list(shape), "float32")],
    )


def _registerer_interpreter(model):
    pytest.importorskip("tensorflow")
    from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

    import tfqnn.lite

    tfqnn.lite.load_library()  # RTLD_GLOBAL: tf.lite finds TfqnnRegisterOps by name
    return InterpreterWithCustomOps(custom_op_registerers=["TfqnnRegisterOps"], model_content=model)


@pytest.mark.parametrize("runtime", ["delegate", "registerer"])
def test_op_decodes_once_and_matches_reference(rng, runtime):
    shape, bits = (7, 5, 3), 5
    table = rng.normal(size=19).astype(np.float32)
    indices = rng.integers(0, 19, shape)
    model = _decode_model(indices, table, shape, bits)
    before = _core.codebook_decode_count()
    if runtime == "delegate":
        interpreter = Interpreter(model_content=model)
    else:
        interpreter = _registerer_interpreter(model)
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]["index"]
    for _ in range(4):
        interpreter.invoke()
        np.testing.assert_array_equal(interpreter.get_tensor(output), table[indices])
    # Once for the model: when the delegate claims the node, or in Prepare.
    assert _core.codebook_decode_count() - before == 1


@pytest.mark.parametrize(
    ("indices", "options", "match"),
    [
        ([0, 1, 2, 3, 3, 1], None, "out of range"),  # 3 codes, index 3
        ([0, 1, 2, 2, 1, 0], {"bits": 3}, "bytes"),  # stream written at 2 bits
        ([0, 1, 2, 2, 1, 0], {"bits": 0}, "bits"),
        ([0, 1, 2, 2, 1, 0], {}, "bits"),
        ([0, 1, 2, 2, 1, 0], {"bits": 2, "width": 1}, "width"),
    ],
)
def test_op_rejects_bad_models(indices, options, match):
    table = np.array([1.0, 2.0, 3.0], np.float32)
    packed = reference.pack_indices(indices, 2)
    model = single_op_model(
        spec.CODEBOOK_DECODE,
        {"bits": 2} if options is None else options,
        [Tensor([packed.size], "uint8", packed), Tensor([3], "float32", table)],
        [Tensor([2, 3], "float32")],
    )
    with pytest.raises(RuntimeError, match=match):
        interpreter = Interpreter(model_content=model)
        interpreter.allocate_tensors()
        interpreter.invoke()


def test_op_rejects_non_constant_codebook():
    packed = reference.pack_indices([0, 1], 1)
    model = single_op_model(
        spec.CODEBOOK_DECODE,
        {"bits": 1},
        [Tensor([packed.size], "uint8", packed), Tensor([2], "float32")],
        [Tensor([2], "float32")],
    )
    with pytest.raises(RuntimeError, match="codebook must be a constant"):
        interpreter = Interpreter(model_content=model)
        interpreter.allocate_tensors()
