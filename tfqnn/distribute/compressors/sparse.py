"""Sparse payloads: one int32 word per sent element, ``index * 2 + negative``.

Used by `Threshold` and `AdaQ`. A payload has a fixed number of slots, so
that every worker gathers buffers of one size; an unused slot holds -1. The
index takes 30 bits, so a gradient may have up to 2**30 elements.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

MAX_ELEMENTS = 2**30
EMPTY = -1


def check_size(num_elements: int, compressor: Any) -> None:
    if num_elements > MAX_ELEMENTS:
        raise ValueError(
            f"{type(compressor).__name__} encodes indices in 30 bits: a gradient "
            f"of {num_elements} elements is too large (at most {MAX_ELEMENTS})."
        )


def encode(indices: tf.Tensor, negative: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Words for the slots: ``index * 2 + negative`` where ``valid``, else -1."""
    words = tf.cast(indices, tf.int32) * 2 + tf.cast(negative, tf.int32)
    return tf.where(valid, words, EMPTY)


def decode(words: tf.Tensor, magnitudes: Any, num_elements: int) -> tf.Tensor:
    """A dense float32 vector: ``+-magnitudes`` at the words' indices (summed
    where indices repeat), 0 elsewhere. ``magnitudes`` is per slot."""
    valid = words >= 0
    indices = tf.where(valid, tf.bitwise.right_shift(words, 1), 0)
    signs = 1.0 - 2.0 * tf.cast(tf.bitwise.bitwise_and(words, 1), tf.float32)
    updates = tf.where(valid, signs * magnitudes, 0.0)
    return tf.tensor_scatter_nd_add(
        tf.zeros([num_elements], tf.float32), tf.expand_dims(indices, 1), updates
    )


def largest(scores: tf.Tensor, count: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Values and indices of the ``count`` largest scores (``count`` static)."""
    return tf.math.top_k(scores, k=count, sorted=False)
