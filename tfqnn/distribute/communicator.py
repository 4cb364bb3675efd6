"""The compressed gradient exchange: payloads through tf.distribute collectives.

`all_reduce` is what `CompressedOptimizer` and
`GradientCompressionStrategy` run in place of Keras' gradient all-reduce,
built from the primitives of `tfqnn.distribute.collectives`. In a replica
context of ``P`` replicas, for the gradients it compresses:

1. error feedback: ``p = g + e`` (the residual of each variable);
2. compressors with shared scales (``local_statistics``): one all-gather of
   every tensor's statistics, the maximum over the workers is used by all;
3. compress each ``p``; the int32 words of all tensors go in one buffer and
   the float scales in another, each followed by this worker's non-finite
   flag, and are exchanged with one collective each: all-reduce (summable),
   all-gather, or a float all-reduce (linear); PowerSGD has its own two
   rounds (a compressor whose `Compressor.exchange` is not None runs its
   own);
4. decode and sum; the residual becomes ``p - D(C(p))``.

Every exchange has one signature, ``exchange(points, *, slots, flag, seeds,
context) -> (sums, locals, updates, nonfinite)``: the residual-compensated
points, each one's state slots, this worker's non-finite flag (int32), one
seed per point; it returns the summed decodings, this worker's own decodings
(for the residual), ``(variable, value)`` state updates, and the number of
workers whose flag was set.

The other gradients (fewer than ``min_elements`` elements, sparse ones,
shapes the compressor declines) go through one plain float all-reduce, as in
Keras.

Collectives need the same order and sizes on every worker: the payload sizes
depend on static shapes only, and nothing is conditional on data. A NaN or
Inf on any worker sets its flag, the flags are summed with the payload, and
every worker gets the same ``finite`` answer, to which the caller applies
its ``on_nonfinite`` policy (`tfqnn.distribute.nonfinite`); on a non-finite
step the residuals keep their old values. ``all_gather`` needs
graph mode (inside `tf.function`, as ``fit`` and ``strategy.run`` in a
`tf.function` do).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tfqnn.distribute.collectives import all_gather, all_reduce_with_flag
from tfqnn.distribute.defaults import DEFAULT_MIN_ELEMENTS

Update = tuple[Any, tf.Tensor]
"""``(state variable, new value)``, assigned when the step is finite."""
ExchangeResult = tuple[list[tf.Tensor], list[tf.Tensor], list[Update], tf.Tensor]


def all_reduce(
    compressor: Any,
    gradients: Sequence[Any],
    *,
    state: Any = None,
    indices: Sequence[int] | None = None,
    step: tf.Tensor | None = None,
    min_elements: int = DEFAULT_MIN_ELEMENTS,
    replica_context: tf.distribute.ReplicaContext | None = None,
) -> tuple[list[Any], tf.Tensor]:
    """Sums ``gradients`` over the replicas, compressing those that qualify.

    Args:
        compressor: a `Compressor`.
        gradients: this replica's gradients: tensors, `tf.IndexedSlices`
            (exchanged uncompressed) or None (stays None).
        state: a `CompressionState`, required by error-feedback compressors.
        indices: for each gradient, its variable's index in ``state``
            (default: the gradient's position).
        step: integer scalar tensor that seeds the stochastic compressors,
            with the replica id and the tensor's position (default: random).
        min_elements: without ``state``, the smallest gradient compressed.
        replica_context: default: the current one.

    Returns:
        ``(sums, finite)``: the summed gradients, and a bool scalar tensor,
        the same on every replica, false when some replica had a non-finite
        gradient.
    """
    context = replica_context or tf.distribute.get_replica_context()
    if context is None:
        raise ValueError(
            "all_reduce() must be called in a replica context "
            "(inside strategy.run or a Keras train step)."
        )
    gradients = list(gradients)
    indices = list(range(len(gradients))) if indices is None else list(indices)
    if state is None and compressor.error_feedback:
        raise ValueError(
            f"{type(compressor).__name__} keeps error-feedback residuals: pass "
            "state=CompressionState(compressor, variables), made under the "
            "strategy's scope."
        )
    chosen = [
        i
        for i, g in enumerate(gradients)
        if _compress(compressor, g, state, indices[i], min_elements)
    ]
    plain = [i for i, g in enumerate(gradients) if g is not None and i not in chosen]
    results: list[Any] = list(gradients)
    finite = tf.constant(True)

    if chosen:
        slots = [state.slots[indices[i]] if state is not None else {} for i in chosen]
        grads = [tf.cast(gradients[i], tf.float32) for i in chosen]
        points = [g + s["residual"].value if "residual" in s else g for g, s in zip(grads, slots)]
        flag = tf.cast(tf.logical_not(_all_finite(points)), tf.int32)
        seeds = _seeds(context, step, len(chosen))
        exchange = compressor.exchange or functools.partial(
            _EXCHANGES[compressor.collective], compressor
        )
        sums, locals_, updates, nonfinite = exchange(
            points, slots=slots, flag=flag, seeds=seeds, context=context
        )
        finite = tf.logical_and(tf.equal(nonfinite, 0), _all_finite(sums))
        for i, total in zip(chosen, sums):
            results[i] = tf.cast(total, gradients[i].dtype)
        if compressor.error_feedback:
            updates = updates + [(s["residual"], p - d) for s, p, d in zip(slots, points, locals_)]
        for variable, value in updates:  # kept as they were on a skipped step
            variable.assign(tf.where(finite, value, variable.value))

    if plain:
        sums = context.all_reduce(tf.distribute.ReduceOp.SUM, [gradients[i] for i in plain])
        for i, total in zip(plain, sums):
            results[i] = total
        dense = [s.values if isinstance(s, tf.IndexedSlices) else s for s in sums]
        finite = tf.logical_and(finite, _all_finite(dense))
    return results, finite


def _compress(compressor: Any, gradient: Any, state: Any, index: int, min_elements: int) -> bool:
    if gradient is None or isinstance(gradient, tf.IndexedSlices):
        return False
    if state is not None:
        return bool(state.compressed[index])
    return bool(compressor.compresses(gradient.shape, gradient.dtype, min_elements))


def _all_finite(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    if not tensors:
        return tf.constant(True)
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def _seeds(
    context: tf.distribute.ReplicaContext, step: tf.Tensor | None, count: int
) -> list[tf.Tensor]:
    """One stateless seed per tensor: (step, replica id, position)."""
    if step is None:
        step = tf.random.uniform([], maxval=2**31 - 1, dtype=tf.int64)
    replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
    step = tf.cast(step, tf.int64)
    return [tf.stack([step, replica * 1_000_003 + i]) for i in range(count)]


def _shared_statistics(
    compressor: Any, points: Sequence[tf.Tensor], context: tf.distribute.ReplicaContext
) -> list[tf.Tensor | None]:
    """Every tensor's statistics, as the maximum over the replicas (or None)."""
    counts = [compressor.num_statistics(p.shape) for p in points]
    if not sum(counts):
        return [None] * len(points)
    local = tf.concat([compressor.local_statistics(p) for p in points], 0)
    local = tf.where(tf.math.is_finite(local), local, 0.0)  # the flag tells
    shared = tf.reduce_max(all_gather(context, local), axis=0)
    return list(tf.split(shared, counts))


def exchange_summed(
    compressor: Any,
    points: Sequence[tf.Tensor],
    *,
    slots: Sequence[dict[str, Any]],
    flag: tf.Tensor,
    seeds: Sequence[tf.Tensor],
    context: tf.distribute.ReplicaContext,
) -> ExchangeResult:
    """Payloads that add, with one all-reduce: integer fields (summable
    compressors, scales shared first) or float values (linear ones, in their
    dtype). The decoding of the sum is the sum of the decodings."""
    p = context.num_replicas_in_sync
    statistics = _shared_statistics(compressor, points, context)
    payloads = [
        compressor.compress(x, statistics=s, num_workers=p, seed=seed)
        for x, s, seed in zip(points, statistics, seeds)
    ]
    field = "words" if compressor.collective == "all_reduce" else "values"
    sums, nonfinite = all_reduce_with_flag(context, [getattr(q, field) for q in payloads], flag)
    totals = [
        compressor.decompress(dataclasses.replace(q, **{field: total, "count": p}))
        for q, total in zip(payloads, sums)
    ]
    locals_ = [compressor.decompress(q) for q in payloads] if compressor.error_feedback else []
    return totals, locals_, [], nonfinite


def exchange_gathered(
    compressor: Any,
    points: Sequence[tf.Tensor],
    *,
    slots: Sequence[dict[str, Any]],
    flag: tf.Tensor,
    seeds: Sequence[tf.Tensor],
    context: tf.distribute.ReplicaContext,
) -> ExchangeResult:
    """Every replica's payload is gathered and decoded on its own."""
    p = context.num_replicas_in_sync
    payloads = [compressor.compress(x, num_workers=p, seed=seed) for x, seed in zip(points, seeds)]
    words = all_gather(context, tf.concat([q.words for q in payloads] + [flag[None]], 0))
    scale_sizes = [q.scales.shape[0] for q in payloads]
    scales = (
        all_gather(context, tf.concat([q.scales for q in payloads], 0))
        if sum(scale_sizes)
        else tf.zeros([p, 0])
    )
    word_pieces = tf.split(words[:, :-1], [q.words.shape[0] for q in payloads], axis=1)
    scale_pieces = tf.split(scales, scale_sizes, axis=1)
    totals = [
        compressor.decompress_sum(
            [dataclasses.replace(q, words=w[r], scales=s[r]) for r in range(p)]
        )
        for q, w, s in zip(payloads, word_pieces, scale_pieces)
    ]
    locals_ = [compressor.decompress(q) for q in payloads]
    return totals, locals_, [], tf.reduce_sum(words[:, -1])


# The exchange of each `Compressor.collective` ("two_phase" compressors bring
# their own, as `Compressor.exchange`).
_EXCHANGES = {
    "all_reduce": exchange_summed,
    "linear": exchange_summed,
    "all_gather": exchange_gathered,
}
