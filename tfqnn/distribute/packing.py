"""Bits and small integer fields packed into int32 words, in TensorFlow ops.

CPU collectives move int32, int64 and float tensors only (not int8, uint8
or bool), so compressed gradients travel as int32 words:

* `pack_bits` puts 32 bits in a word, bit ``i`` of the input in bit
  ``i % 32`` of word ``i // 32`` (lowest bit first). For all-gather.
* `pack_fields` puts ``31 // width`` unsigned fields of ``width`` bits in a
  word and never uses the sign bit, so that adding the words of several
  workers adds each field on its own (no carry crosses a field, and no int32
  addition overflows) as long as every field's sum stays below
  ``2 ** width``. `field_width` gives the width that holds values up to a
  bound.
* `pack_summable` builds on it: integers in ``[-offset, span - offset]``
  from each of ``num_workers`` workers, in fields of `summable_width` bits
  that hold their sum, so one integer all-reduce adds the payloads;
  `unpack_summable` decodes that sum.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tfqnn import _validation


def field_width(max_value: int) -> int:
    """Bits of an unsigned field that holds every integer in [0, max_value]."""
    _validation.check_int("max_value", max_value, low=1)
    width = math.ceil(math.log2(max_value + 1))
    if width > 31:
        raise ValueError(
            f"Invalid max_value={max_value!r}: expected at most {2**31 - 1} "
            "(a field has at most 31 bits)."
        )
    return width


def fields_per_word(width: int) -> int:
    """How many ``width``-bit fields one int32 word holds (sign bit unused)."""
    _validation.check_int("width", width, low=1, high=31)
    return 31 // width


def num_words(num_values: int, width: int | None = None) -> int:
    """Words that `pack_bits` (width None) or `pack_fields` uses for ``num_values``."""
    per_word = 32 if width is None else fields_per_word(width)
    return -(-num_values // per_word)


def _pack(values: tf.Tensor, width: int, per_word: int) -> tf.Tensor:
    values = tf.reshape(tf.cast(values, tf.int32), [-1])
    n = tf.size(values)
    padded = tf.pad(values, [[0, (-n) % per_word]])
    groups = tf.reshape(padded, [-1, per_word])
    shifts = tf.range(per_word, dtype=tf.int32) * width
    # Fields do not overlap, so the sum is the bitwise OR (and it may set
    # the sign bit only for 32 one-bit fields, where it wraps as intended).
    return tf.reduce_sum(tf.bitwise.left_shift(groups, shifts), axis=1)


def _unpack(words: tf.Tensor, width: int, per_word: int, num_values: int) -> tf.Tensor:
    shifts = tf.range(per_word, dtype=tf.int32) * width
    fields = tf.bitwise.right_shift(tf.reshape(words, [-1, 1]), shifts)
    mask = tf.constant(-1 if width == 32 else (1 << width) - 1, tf.int32)
    fields = tf.bitwise.bitwise_and(fields, mask)
    return tf.reshape(fields, [-1])[:num_values]


def pack_bits(bits: tf.Tensor) -> tf.Tensor:
    """0/1 values (any shape) -> int32 words, 32 per word, lowest bit first."""
    return _pack(bits, 1, 32)


def unpack_bits(words: tf.Tensor, num_values: int) -> tf.Tensor:
    """The first ``num_values`` bits of ``words``, as int32 0/1."""
    return _unpack(words, 1, 32, num_values)


def pack_fields(values: tf.Tensor, width: int) -> tf.Tensor:
    """Integers in [0, 2**width) -> int32 words of ``31 // width`` fields each."""
    return _pack(values, width, fields_per_word(width))


def unpack_fields(words: tf.Tensor, width: int, num_values: int) -> tf.Tensor:
    """The first ``num_values`` fields of ``words``, as int32."""
    return _unpack(words, width, fields_per_word(width), num_values)


def summable_width(span: int, num_workers: int) -> int:
    """Bits of a field that holds the sum over ``num_workers`` of integers in [0, span]."""
    return field_width(span * num_workers)


def pack_summable(integers: tf.Tensor, offset: int, span: int, num_workers: int) -> tf.Tensor:
    """Integers in ``[-offset, span - offset]`` as summable int32 words: each
    is stored as ``q + offset`` in a field that holds the sum over
    ``num_workers`` payloads."""
    return pack_fields(integers + offset, summable_width(span, num_workers))


def unpack_summable(
    words: tf.Tensor, num_values: int, offset: int, span: int, num_workers: int, count: int = 1
) -> tf.Tensor:
    """The float32 sum of the integers that ``count`` workers packed with
    ``pack_summable(..., offset, span, num_workers)`` and whose words were
    added into ``words``."""
    fields = unpack_fields(words, summable_width(span, num_workers), num_values)
    return tf.cast(fields - offset * count, tf.float32)


def summable_bits(num_values: int, span: int, num_workers: int) -> int:
    """Bits of the words that `pack_summable` makes for ``num_values`` integers."""
    return 32 * num_words(num_values, summable_width(span, num_workers))
