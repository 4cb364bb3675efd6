"""The collectives the exchange is built from, over a tf.distribute replica context.

Every function takes the ``ReplicaContext`` first and works on one replica
as well (then it returns its input, reshaped where the result has a replica
axis). Collectives must be issued in the same order with the same sizes on
every replica: these functions depend on static shapes only.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence

import tensorflow as tf


def concat_split(
    tensors: Sequence[tf.Tensor], fn: Callable[[tf.Tensor], tf.Tensor]
) -> list[tf.Tensor]:
    """Applies ``fn`` to the concatenation of flat ``tensors``; returns the
    pieces of its result, shaped like ``tensors`` (``fn`` keeps the length)."""
    sizes = [t.shape.num_elements() for t in tensors]
    total = fn(tf.concat([tf.reshape(t, [-1]) for t in tensors], 0))
    return [tf.reshape(piece, t.shape) for piece, t in zip(tf.split(total, sizes), tensors)]


def all_reduce_sum(context: tf.distribute.ReplicaContext, buffer: tf.Tensor) -> tf.Tensor:
    """SUM all-reduce of one tensor (itself on a single replica)."""
    if context.num_replicas_in_sync == 1:
        return buffer
    return context.all_reduce(tf.distribute.ReduceOp.SUM, buffer)


def all_reduce_with_flag(
    context: tf.distribute.ReplicaContext, tensors: Sequence[tf.Tensor], flag: tf.Tensor
) -> tuple[list[tf.Tensor], tf.Tensor]:
    """One SUM all-reduce of ``tensors`` (one dtype) and a flag; returns
    ``(sums, the summed flag as int32)``."""
    dtype = tensors[0].dtype
    pieces = concat_split(
        [*tensors, tf.reshape(tf.cast(flag, dtype), [1])],
        lambda buffer: all_reduce_sum(context, buffer),
    )
    return pieces[:-1], tf.cast(tf.round(tf.cast(pieces[-1][0], tf.float32)), tf.int32)


def all_gather(context: tf.distribute.ReplicaContext, buffer: tf.Tensor) -> tf.Tensor:
    """[P, len] of every replica's ``buffer``, in replica order (graph mode)."""
    if context.num_replicas_in_sync == 1:
        return buffer[None]
    return tf.reshape(context.all_gather(buffer, axis=0), [context.num_replicas_in_sync, -1])


# tfqnn's own collective group for all-to-all (tf.distribute offers none);
# far from the keys MultiWorkerMirroredStrategy allocates (1, 100001, ...).
ALL_TO_ALL_GROUP_KEY = 0x7FFF0000
_instance_keys: collections.defaultdict[int, int] = collections.defaultdict(lambda: 1)


def all_to_all(context: tf.distribute.ReplicaContext, tensor: tf.Tensor) -> tf.Tensor:
    """Row ``j`` of every replica's [P, ...] ``tensor`` goes to replica ``j``;
    returns the [P, ...] rows this replica received, in replica order.

    Instance keys are counted per replica at trace time, as tf.distribute
    does for its own collectives: every worker traces the same functions in
    the same order, so the keys match.
    """
    p = context.num_replicas_in_sync
    if p == 1:
        return tensor
    replica = int(tf.get_static_value(context.replica_id_in_sync_group))
    key = _instance_keys[replica]
    _instance_keys[replica] = key + 1
    options = getattr(context.strategy.extended, "_communication_options", None)
    return tf.raw_ops.CollectiveAllToAllV2(
        input=tensor,
        group_size=p,
        group_key=ALL_TO_ALL_GROUP_KEY,
        instance_key=key,
        ordering_token=[],
        timeout_seconds=getattr(options, "timeout_seconds", None) or 0,
    )
