"""Bits and small integer fields packed into int32 words, in TensorFlow ops.

CPU collectives move int32, int64 and float tensors only (not int8, uint8
or bool), so compressed gradients travel as int32 words:

* `pack_bits` puts 32 bits in a word, bit ``i`` of the input in bit
  ``i % 32`` of word ``i // 32`` (lowest bit first). For all-gather.
* `pack_fields` puts ``31 // width`` unsigned fields of ``width`` bits in a
  word and never uses the sign bit, so that adding the words of several
  workers adds each field on its own (no carry crosses a field, and no int32
  addition overflows) as long as every field's sum stays below
  ``2 ** width``: a summable payload for all-reduce. `field_width` gives the
  width that holds sums up to a bound.
"""

import math

import tensorflow as tf


def field_width(max_value):
    """Bits of an unsigned field that holds every integer in [0, max_value]."""
    if max_value < 1:
        raise ValueError(f"max_value must be >= 1, got {max_value}")
    width = math.ceil(math.log2(max_value + 1))
    if width > 31:
        raise ValueError(f"max_value={max_value} needs more than 31 bits")
    return width


def fields_per_word(width):
    """How many `width`-bit fields one int32 word holds (sign bit unused)."""
    if not 1 <= width <= 31:
        raise ValueError(f"width must be in [1, 31], got {width}")
    return 31 // width


def num_words(num_values, width=None):
    """Words that `pack_bits` (width None) or `pack_fields` uses for `num_values`."""
    per_word = 32 if width is None else fields_per_word(width)
    return -(-num_values // per_word)


def _pack(values, width, per_word):
    values = tf.reshape(tf.cast(values, tf.int32), [-1])
    n = tf.size(values)
    padded = tf.pad(values, [[0, (-n) % per_word]])
    groups = tf.reshape(padded, [-1, per_word])
    shifts = tf.range(per_word, dtype=tf.int32) * width
    # Fields do not overlap, so the sum is the bitwise OR (and it may set
    # the sign bit only for 32 one-bit fields, where it wraps as intended).
    return tf.reduce_sum(tf.bitwise.left_shift(groups, shifts), axis=1)


def _unpack(words, width, per_word, num_values):
    shifts = tf.range(per_word, dtype=tf.int32) * width
    fields = tf.bitwise.right_shift(tf.reshape(words, [-1, 1]), shifts)
    mask = tf.constant(-1 if width == 32 else (1 << width) - 1, tf.int32)
    fields = tf.bitwise.bitwise_and(fields, mask)
    return tf.reshape(fields, [-1])[:num_values]


def pack_bits(bits):
    """0/1 values (any shape) -> int32 words, 32 per word, lowest bit first."""
    return _pack(bits, 1, 32)


def unpack_bits(words, num_values):
    """The first `num_values` bits of `words`, as int32 0/1."""
    return _unpack(words, 1, 32, num_values)


def pack_fields(values, width):
    """Integers in [0, 2**width) -> int32 words of `31 // width` fields each."""
    return _pack(values, width, fields_per_word(width))


def unpack_fields(words, width, num_values):
    """The first `num_values` fields of `words`, as int32."""
    return _unpack(words, width, fields_per_word(width), num_values)
