"""`OneBitEF`: 1-bit SGD with error feedback (Seide et al., Interspeech 2014)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute import collectives, packing
from tfqnn.distribute.compressors.base import (
    Compressor,
    Exchange,
    Payload,
    bucketed,
    num_buckets,
)


@keras.saving.register_keras_serializable(package="tfqnn")
class OneBitEF(Compressor):
    """The sign of each element, and two reconstruction values per bucket.

    Within each bucket of ``bucket_size`` consecutive elements of
    ``p = g + e`` (gradient plus residual), an element is sent as one bit,
    ``p_i < 0``, and decoded as the mean of the bucket's non-negative
    elements (``a+``) or of its negative ones (``a-``). The quantisation
    error stays in the residual, ``e <- p - D(C(p))``, so nothing is lost,
    only delayed: error feedback is what makes 1-bit SGD converge. Seide et
    al. reconstruct per column; buckets of the flattened tensor are the same
    idea: by default (``column_major=True``) a kernel is read column by
    column, so that a bucket holds the weights of one output unit (Keras
    kernels keep the output axis last) and a unit that got no gradient (a
    ReLU that was off for the whole batch) decodes to exact zeros instead of
    oscillating through the residual (benchmarks/README.md compares the two
    layouts).

    Payload: ``ceil(n / 32)`` words of signs and ``2 * ceil(n / bucket_size)``
    float scales. By default it is all-gathered (each worker's
    reconstruction values differ): ``P - 1`` payloads per worker.

    ``two_phase=True`` exchanges in two rounds whose traffic does not grow
    with the workers, ``2 (P-1)/P`` payloads per worker (the compressed
    all-reduce of 1-bit Adam, Tang et al., ICML 2021): each worker splits
    its signs into ``P`` shards and sends shard ``j`` to worker ``j``
    (all-to-all); worker ``j`` decodes and adds its shard from everyone,
    plus its own *server* residual, compresses that sum again (keeping the
    new error as its server residual) and all-gathers it.

    Args:
        bucket_size: elements that share a pair of reconstruction values.
        two_phase: all-to-all then all-gather, instead of one all-gather.
        column_major: bucket a tensor of rank >= 2 along its columns
            (``shape[-1]`` outer, the other axes inner) instead of its
            flattened rows. Vectors are the same either way.

    >>> OneBitEF().bits_per_element(num_workers=4)  # 3 * (1 + 64 / 512)
    3.375
    >>> OneBitEF(two_phase=True).bits_per_element(num_workers=4)  # 1.5 * (1 + 64 / 512)
    1.6875
    """

    error_feedback = True

    def __init__(
        self, bucket_size: int = 512, two_phase: bool = False, column_major: bool = True
    ) -> None:
        self.bucket_size = _validation.check_int("bucket_size", bucket_size, low=1)
        self.two_phase = _validation.check_bool("two_phase", two_phase)
        self.column_major = _validation.check_bool("column_major", column_major)

    @property
    def collective(self) -> str:  # type: ignore[override]
        return "two_phase" if self.two_phase else "all_gather"

    @property
    def exchange(self) -> Exchange | None:
        """The two-phase exchange with ``two_phase=True``, else None (all-gather)."""
        return self._exchange_two_phase if self.two_phase else None

    # --- the code --------------------------------------------------------

    def _ordered(self, gradient: tf.Tensor) -> tf.Tensor:
        """``gradient`` as a float32 vector in bucket order."""
        x = tf.cast(gradient, tf.float32)
        if self.column_major and x.shape.rank >= 2:
            x = tf.transpose(tf.reshape(x, [-1, x.shape[-1]]))
        return tf.reshape(x, [-1])

    def _unordered(self, flat: tf.Tensor, shape: Any) -> tf.Tensor:
        """The inverse of `_ordered`: a vector in bucket order, shaped ``shape``."""
        shape = tf.TensorShape(shape)
        if self.column_major and shape.rank >= 2:
            flat = tf.transpose(tf.reshape(flat, [shape[-1], -1]))
        return tf.reshape(flat, shape)

    def encode(self, flat: tf.Tensor, mask: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Sign words and [buckets, 2] means of ``flat`` (means over the
        elements where ``mask`` is 1; default: all)."""
        values, real = bucketed(flat, self.bucket_size)
        if mask is not None:
            real = real * tf.reshape(mask, tf.shape(values))
        negative = tf.cast(values < 0, tf.float32) * real
        positive = real - negative
        mean_positive = tf.math.divide_no_nan(
            tf.reduce_sum(values * positive, 1), tf.reduce_sum(positive, 1)
        )
        mean_negative = tf.math.divide_no_nan(
            tf.reduce_sum(values * negative, 1), tf.reduce_sum(negative, 1)
        )
        return packing.pack_bits(flat < 0), tf.stack([mean_positive, mean_negative], 1)

    def decode(self, words: tf.Tensor, means: tf.Tensor, num_elements: int) -> tf.Tensor:
        """Float32 vector of ``num_elements`` from sign words and [buckets, 2] means."""
        negative = tf.cast(packing.unpack_bits(words, num_elements), tf.float32)
        negative, _ = bucketed(negative, self.bucket_size)
        flat = tf.where(negative > 0, means[:, 1:], means[:, :1])
        return tf.reshape(flat, [-1])[:num_elements]

    def compress(
        self,
        gradient: tf.Tensor,
        *,
        statistics: tf.Tensor | None = None,
        num_workers: int = 1,
        seed: tf.Tensor | None = None,
    ) -> Payload:
        words, means = self.encode(self._ordered(gradient))
        return Payload(
            words=words,
            scales=tf.reshape(means, [-1]),
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
        )

    def decompress(self, payload: Payload) -> tf.Tensor:
        flat = self.decode(
            payload.words, tf.reshape(payload.scales, [-1, 2]), payload.shape.num_elements()
        )
        return tf.cast(self._unordered(flat, payload.shape), payload.dtype)

    def decompress_sum(self, payloads: Sequence[Payload]) -> tf.Tensor:
        """Adds the decoded payloads in bucket order, then reorders once."""
        first = payloads[0]
        n = first.shape.num_elements()
        flat = tf.add_n([self.decode(q.words, tf.reshape(q.scales, [-1, 2]), n) for q in payloads])
        return tf.cast(self._unordered(flat, first.shape), first.dtype)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        n = tf.TensorShape(shape).num_elements()
        if self.two_phase:  # whole shards, one per worker
            n = num_workers * self.shard_size(n, num_workers)
        return 32 * packing.num_words(n) + 64 * num_buckets(n, self.bucket_size)

    # --- two phases ------------------------------------------------------

    def shard_size(self, num_elements: int, num_workers: int) -> int:
        """Elements of one worker's shard: whole buckets and whole words."""
        unit = math.lcm(self.bucket_size, 32)
        return unit * math.ceil(num_elements / (num_workers * unit))

    def extra_state(self, shape: Any, num_workers: int) -> dict[str, tuple[tuple[int, ...], Any]]:
        if not self.two_phase:
            return {}
        shard = self.shard_size(tf.TensorShape(shape).num_elements(), num_workers)
        return {"server_residual": ((shard,), "zeros")}

    def _exchange_two_phase(
        self,
        points: Sequence[tf.Tensor],
        *,
        slots: Sequence[dict[str, Any]],
        flag: tf.Tensor,
        seeds: Sequence[tf.Tensor],
        context: tf.distribute.ReplicaContext,
    ) -> tuple[list[tf.Tensor], list[tf.Tensor], list[tuple[Any, tf.Tensor]], tf.Tensor]:
        """The two-phase exchange (``two_phase=True``; see the class docstring)."""
        p = context.num_replicas_in_sync
        if p > 1 and len(context.strategy.extended.worker_devices) > 1:
            raise ValueError(
                "OneBitEF(two_phase=True) needs one replica per worker, as "
                "MultiWorkerMirroredStrategy has: all-to-all between replicas of "
                "one process does not run on CPU."
            )
        me = tf.cast(context.replica_id_in_sync_group, tf.int32)
        sizes = [x.shape.num_elements() for x in points]
        shards = [self.shard_size(n, p) for n in sizes]
        words, means, locals_ = [], [], []
        for x, n, shard in zip(points, sizes, shards):
            flat = tf.pad(self._ordered(x), [[0, p * shard - n]])
            real = tf.cast(tf.range(p * shard) < n, tf.float32)
            w, m = self.encode(flat, real)
            locals_.append(self._unordered(self.decode(w, m, p * shard)[:n], x.shape))
            words.append(tf.reshape(w, [p, -1]))
            means.append(tf.reshape(m, [p, -1]))
        # Phase 1: shard j of every worker to worker j, with everyone's flag.
        received = collectives.all_to_all(context, tf.concat(words + [tf.fill([p, 1], flag)], 1))
        received_means = collectives.all_to_all(context, tf.concat(means, 1))
        nonfinite = tf.reduce_sum(received[:, -1])
        word_pieces = tf.split(received[:, :-1], [w.shape[1] for w in words], axis=1)
        mean_pieces = tf.split(received_means, [m.shape[1] for m in means], axis=1)
        server_words, server_means, updates = [], [], []
        for n, shard, w, m, slot in zip(sizes, shards, word_pieces, mean_pieces, slots):
            total = tf.add_n(
                [self.decode(w[r], tf.reshape(m[r], [-1, 2]), shard) for r in range(p)]
            )
            real = tf.cast(me * shard + tf.range(shard) < n, tf.float32)
            server = (total + slot["server_residual"].value) * real
            sw, sm = self.encode(server, real)
            updates.append((slot["server_residual"], server - self.decode(sw, sm, shard) * real))
            server_words.append(sw)
            server_means.append(tf.reshape(sm, [-1]))
        # Phase 2: every worker's re-compressed shard to everyone.
        gathered = collectives.all_gather(context, tf.concat(server_words, 0))
        gathered_means = collectives.all_gather(context, tf.concat(server_means, 0))
        totals = []
        for x, n, shard, w, m in zip(
            points,
            sizes,
            shards,
            tf.split(gathered, [w.shape[0] for w in server_words], axis=1),
            tf.split(gathered_means, [m.shape[0] for m in server_means], axis=1),
        ):
            flat = tf.concat(
                [self.decode(w[r], tf.reshape(m[r], [-1, 2]), shard) for r in range(p)], 0
            )
            totals.append(self._unordered(flat[:n], x.shape))
        return totals, locals_, updates, nonfinite

    def get_config(self) -> dict[str, Any]:
        return {
            "bucket_size": self.bucket_size,
            "two_phase": self.two_phase,
            "column_major": self.column_major,
        }
