"""`PowerSGD`: rank-r power iteration with error feedback (Vogels et al., NeurIPS 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute import collectives
from tfqnn.distribute.compressors.base import Compressor, Exchange, Payload


@keras.saving.register_keras_serializable(package="tfqnn")
class PowerSGD(Compressor):
    """A rank-``r`` approximation ``P Q^T`` of each gradient matrix, found by
    one step of power iteration per training step.

    The gradient plus residual is viewed as a matrix ``M`` of
    ``prod(shape[:-1])`` rows and ``shape[-1]`` columns (a Keras kernel's
    output axis is last). With ``Q`` from the previous step (warm start):
    ``P = M Q``, all-reduce ``P``, ``P^ = orth(P)``, ``Q = M^T P^``,
    all-reduce ``Q``, and the aggregate is ``P^ Q^T``; the residual keeps
    ``M - P^ (M^T P^)^T`` (Vogels, Karimireddy and Jaggi, "PowerSGD:
    practical low-rank gradient compression for distributed optimization",
    NeurIPS 2019, Algorithm 1). Both all-reduces are of float factors: the
    scheme is linear, so its traffic does not grow with the workers.

    Tensors where ``2 r (n + m) >= n m`` (vectors, small matrices) are not
    worth it and go uncompressed, as in PyTorch's PowerSGD hook.

    Args:
        rank: ``r``, the rank of the approximation: ``32 r (n + m)`` bits
            per ``n x m`` gradient and worker, and a closer approximation
            as it grows. The paper uses 2 on CIFAR-10 and 4 on its language
            model; benchmarks/README.md compares ranks 2 and 4.
        seed: the seed of the first ``Q`` (the same on every worker).

    >>> round(PowerSGD(rank=2).bits_per_element(num_workers=4, shape=(256, 2304)), 2)
    0.42
    """

    collective = "linear"
    error_feedback = True

    def __init__(self, rank: int = 4, seed: int = 0) -> None:
        self.rank = _validation.check_int("rank", rank, low=1)
        self.seed = _validation.check_int("seed", seed, low=0)

    @staticmethod
    def matrix_shape(shape: Any) -> tuple[int, int]:
        shape = tf.TensorShape(shape)
        return math.prod(shape[:-1]), shape[-1]

    def accepts(self, shape: Any) -> bool:
        if tf.TensorShape(shape).rank < 2:
            return False
        n, m = self.matrix_shape(shape)
        return 2 * self.rank * (n + m) < n * m

    def initial_q(self, shape: Any) -> tf.Tensor:
        """The first ``Q``, [m, rank], a standard normal draw from ``seed``."""
        _, m = self.matrix_shape(shape)
        return tf.random.stateless_normal([m, self.rank], seed=[self.seed, 0])

    def extra_state(self, shape: Any, num_workers: int) -> dict[str, tuple[tuple[int, ...], Any]]:
        q = self.initial_q(shape)
        return {"q": (tuple(q.shape), lambda shape, dtype=None: q)}

    def matrix(self, gradient: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.cast(gradient, tf.float32), self.matrix_shape(gradient.shape))

    @staticmethod
    def orthogonalize(p: tf.Tensor) -> tf.Tensor:
        """An orthonormal basis of ``p``'s columns (thin QR)."""
        return tf.linalg.qr(p).q

    def compress(
        self,
        gradient: tf.Tensor,
        *,
        statistics: tf.Tensor | None = None,
        num_workers: int = 1,
        seed: tf.Tensor | None = None,
        q: tf.Tensor | None = None,
    ) -> Payload:
        """The payload ``[P^, Q]`` for one worker on its own.

        Args:
            q: the warm-start ``Q`` (None: `initial_q`).
        """
        if min(self.matrix_shape(gradient.shape)) < self.rank:
            raise ValueError(
                f"PowerSGD(rank={self.rank}) needs a matrix of at least rank rows "
                f"and columns; got a gradient of shape {gradient.shape}."
            )
        m = self.matrix(gradient)
        q = self.initial_q(gradient.shape) if q is None else q
        p = self.orthogonalize(tf.matmul(m, q))
        q = tf.matmul(m, p, transpose_a=True)
        values = tf.concat([tf.reshape(p, [-1]), tf.reshape(q, [-1])], 0)
        return Payload(
            words=tf.zeros([0], tf.int32),
            scales=tf.zeros([0], tf.float32),
            shape=gradient.shape,
            dtype=gradient.dtype,
            num_workers=num_workers,
            values=values,
        )

    def factors(self, payload: Payload) -> tuple[tf.Tensor, tf.Tensor]:
        """``(P^, Q)`` of a payload."""
        n, m = self.matrix_shape(payload.shape)
        p, q = tf.split(payload.values, [n * self.rank, m * self.rank])
        return tf.reshape(p, [n, self.rank]), tf.reshape(q, [m, self.rank])

    def decompress(self, payload: Payload) -> tf.Tensor:
        p, q = self.factors(payload)
        return self._restore(tf.matmul(p, q, transpose_b=True), payload)

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        n, m = self.matrix_shape(shape)
        return 32 * self.rank * (n + m)

    @property
    def exchange(self) -> Exchange:
        """PowerSGD's own exchange: two rounds of float all-reduce."""
        return self._exchange_factors

    def _exchange_factors(
        self,
        points: Sequence[tf.Tensor],
        *,
        slots: Sequence[dict[str, Any]],
        flag: tf.Tensor,
        seeds: Sequence[tf.Tensor],
        context: tf.distribute.ReplicaContext,
    ) -> tuple[list[tf.Tensor], list[tf.Tensor], list[tuple[Any, tf.Tensor]], tf.Tensor]:
        """Algorithm 1 of the paper across the replicas: two float all-reduces.

        Returns the summed approximations, this replica's own ones (for the
        residual), the new warm-start ``Q`` of each tensor, and the number of
        replicas with a non-finite gradient.
        """
        matrices = [self.matrix(x) for x in points]
        ps = [tf.matmul(m, s["q"].value) for m, s in zip(matrices, slots)]
        ps, nonfinite = collectives.all_reduce_with_flag(context, ps, flag)
        ps = [self.orthogonalize(p) for p in ps]
        own_qs = [tf.matmul(m, p, transpose_a=True) for m, p in zip(matrices, ps)]
        qs = collectives.concat_split(
            own_qs, lambda buffer: collectives.all_reduce_sum(context, buffer)
        )
        totals = [
            tf.reshape(tf.matmul(p, q, transpose_b=True), x.shape)
            for p, q, x in zip(ps, qs, points)
        ]
        locals_ = [
            tf.reshape(tf.matmul(p, q, transpose_b=True), x.shape)
            for p, q, x in zip(ps, own_qs, points)
        ]
        return totals, locals_, [(s["q"], q) for s, q in zip(slots, qs)], nonfinite

    def get_config(self) -> dict[str, Any]:
        return {"rank": self.rank, "seed": self.seed}
