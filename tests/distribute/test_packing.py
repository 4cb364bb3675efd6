"""Bit and field packing into int32 words: layout, round trips, summability."""

import numpy as np
import pytest

from tfqnn.distribute import packing


@pytest.mark.parametrize("n", [1, 31, 32, 33, 100, 1000])
def test_bits_round_trip_and_layout(rng, n):
    bits = rng.integers(0, 2, n).astype(np.int32)
    words = packing.pack_bits(bits).numpy()
    assert words.dtype == np.int32 and len(words) == packing.num_words(n)
    # Independent layout check: bit i is bit i % 32 of word i // 32.
    as_unsigned = words.view(np.uint32)
    expected = [(int(as_unsigned[i // 32]) >> (i % 32)) & 1 for i in range(n)]
    np.testing.assert_array_equal(bits, expected)
    np.testing.assert_array_equal(packing.unpack_bits(words, n).numpy(), bits)


def test_bit_31_is_the_sign_bit():
    bits = np.zeros(32, np.int32)
    bits[31] = 1
    assert packing.pack_bits(bits).numpy()[0] == np.iinfo(np.int32).min


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 15, 16, 31])
def test_fields_round_trip_without_the_sign_bit(rng, width):
    n = 257
    values = rng.integers(0, 2**width, n).astype(np.int32)
    words = packing.pack_fields(values, width).numpy()
    assert len(words) == -(-n // (31 // width))
    assert np.all(words >= 0)  # the sign bit is never used
    np.testing.assert_array_equal(packing.unpack_fields(words, width, n).numpy(), values)


@pytest.mark.parametrize("workers, levels", [(2, 2), (4, 2), (8, 2), (16, 2), (4, 8), (16, 8)])
def test_summed_words_decode_to_summed_fields(rng, workers, levels):
    """Adding the words of all workers adds every field: the all-reduce property."""
    width = packing.field_width(levels * workers)
    n = 1000
    values = rng.integers(0, levels + 1, (workers, n)).astype(np.int32)
    total = sum(packing.pack_fields(v, width) for v in values)
    np.testing.assert_array_equal(packing.unpack_fields(total, width, n).numpy(), values.sum(0))


@pytest.mark.parametrize("offset, span", [(0, 1), (1, 2), (4, 8), (0, 15)])
@pytest.mark.parametrize("workers", [1, 3, 8])
def test_summable_words_add_to_the_sum_of_the_integers(rng, offset, span, workers):
    """pack_summable on every worker, add the words, unpack_summable: the sum."""
    n = 300
    integers = rng.integers(-offset, span - offset + 1, (workers, n)).astype(np.int32)
    total = sum(packing.pack_summable(q, offset, span, workers) for q in integers)
    decoded = packing.unpack_summable(total, n, offset, span, workers, count=workers).numpy()
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, integers.sum(0))
    # The field holds span * workers, and the words are what summable_bits counts.
    width = int(np.ceil(np.log2(span * workers + 1)))
    assert packing.summable_width(span, workers) == width
    assert packing.summable_bits(n, span, workers) == 32 * -(-n // (31 // width))
    assert 32 * len(total.numpy()) == packing.summable_bits(n, span, workers)


def test_field_width():
    assert [packing.field_width(m) for m in (1, 2, 3, 4, 7, 8, 2**31 - 1)] == [1, 2, 2, 3, 3, 4, 31]
    with pytest.raises(ValueError, match="max_value"):
        packing.field_width(0)
    with pytest.raises(ValueError, match="31 bits"):
        packing.field_width(2**31)
    with pytest.raises(ValueError, match="Invalid width=32"):
        packing.fields_per_word(32)
    with pytest.raises(ValueError, match="Invalid max_value=1.5"):
        packing.field_width(1.5)
