"""What every gradient compressor shares: the `Payload` and the `Compressor` API.

A compressor turns one gradient into a `Payload` (int32 words, float32
scales) and back. On one process, ``decompress(compress(g))`` approximates
``g``; across workers, `tfqnn.distribute.communicator` moves the payloads
with collectives and sums the decoded gradients. One of four exchanges
applies, named by `Compressor.collective`:

* ``"all_reduce"``: *summable* payloads. Every worker quantises with the same
  scales (the maxima of `local_statistics` over all workers, shared before
  compressing), its integers are offset to be non-negative and packed into
  fields wide enough for the sum over all workers (`packing.pack_summable`),
  so one integer all-reduce adds the payloads and `decompress` of the sum is
  the sum of the decoded gradients. Traffic per worker: ``2 (P-1)/P``
  payloads.
* ``"all_gather"``: every worker's payload is gathered and each is decoded on
  its own. Traffic per worker: ``P - 1`` payloads.
* ``"linear"``: float payloads that add (`Float16`, `PowerSGD`'s factors).
* ``"two_phase"``: all-to-all of shards, then all-gather (`OneBitEF` with
  ``two_phase=True``): ``2 (P-1)/P`` payloads per worker.

Error feedback (``error_feedback = True``) keeps a residual ``e`` per
variable: ``p = g + e``, send ``C(p)``, then ``e <- p - D(C(p))``
(Seide 2014; Karimireddy 2019). The residual is state the exchange holds
(`tfqnn.distribute.CompressionState`), not the compressor: a compressor is
configuration and math, serializable with `get_config`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from tfqnn import _config
from tfqnn.distribute import nonfinite, packing
from tfqnn.distribute.defaults import DEFAULT_MIN_ELEMENTS

Exchange = Callable[..., tuple[list[tf.Tensor], list[tf.Tensor], list[Any], tf.Tensor]]
"""``exchange(points, *, slots, flag, seeds, context) -> (sums, locals, updates,
nonfinite)``; see `tfqnn.distribute.communicator`."""


@dataclasses.dataclass
class Payload:
    """What one worker sends for one gradient.

    Attributes:
        words: int32 vector, the packed integers (empty for float payloads).
        scales: float32 vector, what decoding needs besides the words
            (reconstruction values, norms, shared maxima).
        shape: the gradient's static `tf.TensorShape`.
        dtype: the gradient's dtype; `decompress` returns it.
        num_workers: the workers the fields were sized for (summable
            payloads: a field holds the sum over that many workers).
        count: how many workers' payloads were summed into ``words`` (1 for
            a payload that `compress` returned).
        values: float payload of the ``"linear"`` compressors (None otherwise).
    """

    words: tf.Tensor
    scales: tf.Tensor
    shape: tf.TensorShape
    dtype: tf.DType = tf.float32
    num_workers: int = 1
    count: int = 1
    values: tf.Tensor | None = None

    @property
    def num_bits(self) -> int:
        """Bits of this payload: 32 per word and per scale, plus the float values."""
        bits = 32 * (_static_size(self.words) + _static_size(self.scales))
        if self.values is not None:
            bits += self.values.dtype.size * 8 * _static_size(self.values)
        return bits


def _static_size(tensor: tf.Tensor) -> int:
    size = tensor.shape.num_elements()
    return int(tf.size(tensor)) if size is None else size


class Compressor(_config.ConfigObject):
    """Base class of tfqnn's gradient compressors.

    Subclasses set the class attributes and implement `compress`,
    `decompress`, `payload_bits` and `get_config`; those that share scales
    across workers implement `local_statistics` and `num_statistics` too.

    Class attributes:
        collective: ``"all_reduce"``, ``"all_gather"``, ``"linear"`` or
            ``"two_phase"`` (see the module docstring).
        error_feedback: whether a residual per variable is kept.
        unbiased: whether ``E[decompress(compress(g))] = g``.
        stochastic: whether `compress` draws random numbers (its ``seed``).
    """

    collective = "all_gather"
    error_feedback = False
    unbiased = False
    stochastic = False

    @property
    def exchange(self) -> Exchange | None:
        """None: the communicator exchanges the payloads as ``collective``
        says. A compressor with a protocol of its own (PowerSGD's two
        rounds, OneBitEF's two phases) returns it, an `Exchange`."""
        return None

    @property
    def summable(self) -> bool:
        """Whether the payloads of several workers are added by an all-reduce."""
        return self.collective in ("all_reduce", "linear")

    def accepts(self, shape: tf.TensorShape) -> bool:
        """Whether a gradient of this static shape is worth compressing."""
        return True

    def compresses(self, shape: Any, dtype: Any, min_elements: int) -> bool:
        """Whether a dense gradient of this shape and dtype is compressed: a
        floating dtype, a static shape of at least ``min_elements`` elements
        that `accepts` takes."""
        shape = tf.TensorShape(shape)
        return bool(
            tf.as_dtype(dtype).is_floating
            and shape.is_fully_defined()
            and shape.num_elements() >= min_elements
            and self.accepts(shape)
        )

    def extra_state(self, shape: Any, num_workers: int) -> dict[str, tuple[tuple[int, ...], Any]]:
        """State besides the error-feedback residual that each compressed
        variable needs: name -> ``(shape, initializer)``."""
        return {}

    def local_statistics(self, gradient: tf.Tensor) -> tf.Tensor:
        """Float32 vector that all workers share as its element-wise maximum
        before compressing (empty: nothing is shared)."""
        return tf.zeros([0], tf.float32)

    def num_statistics(self, shape: Any) -> int:
        """Length of `local_statistics` for a gradient of this shape."""
        return 0

    def compress(
        self,
        gradient: tf.Tensor,
        *,
        statistics: tf.Tensor | None = None,
        num_workers: int = 1,
        seed: tf.Tensor | None = None,
    ) -> Payload:
        """A `Payload` for ``gradient``.

        Args:
            gradient: a float tensor of static shape.
            statistics: the element-wise maximum of every worker's
                `local_statistics` (None: this gradient's own).
            num_workers: workers whose payloads will be summed (fields are
                sized for their sum) or gathered.
            seed: int32 or int64 tensor of shape [2] for the stateless random
                draws of stochastic compressors (None: a fresh random seed).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement compress().")

    def decompress(self, payload: Payload) -> tf.Tensor:
        """The gradient (the sum of ``payload.count`` gradients) the payload encodes."""
        raise NotImplementedError(f"{type(self).__name__} must implement decompress().")

    def decompress_sum(self, payloads: Sequence[Payload]) -> tf.Tensor:
        """The sum of `decompress` over ``payloads`` (one tensor's, gathered from
        every worker); a compressor may add them before its last decoding step."""
        return tf.add_n([self.decompress(q) for q in payloads])

    def payload_bits(self, shape: Any, num_workers: int = 1) -> int:
        """Exact bits of one worker's payload for a gradient of ``shape``
        (the shared statistics not included)."""
        raise NotImplementedError(f"{type(self).__name__} must implement payload_bits().")

    def bits_per_element(self, num_workers: int, shape: Any = None) -> float:
        """Bits on the wire per gradient element per worker, scales included.

        A ring all-reduce sends ``2 (P-1)/P`` payloads per worker, an
        all-gather ``P - 1``, and shared statistics travel by all-gather. With
        ``shape`` None, a large gradient (a matrix of 1024 x 1024) is assumed.
        """
        shape = tf.TensorShape([1024, 1024] if shape is None else shape)
        n = shape.num_elements()
        p = num_workers
        factor = (p - 1) if self.collective == "all_gather" else 2 * (p - 1) / p
        statistics = 32 * (p - 1) * self.num_statistics(shape)
        return (factor * self.payload_bits(shape, p) + statistics) / n

    def all_reduce(
        self,
        gradients: Sequence[tf.Tensor | None],
        state: Any = None,
        *,
        step: tf.Tensor | None = None,
        min_elements: int = DEFAULT_MIN_ELEMENTS,
        on_nonfinite: str = "raise",
    ) -> list[tf.Tensor | None]:
        """Sums ``gradients`` over the replicas, compressed; call it in a
        replica context (``strategy.run`` inside a `tf.function`).

        For custom training loops that apply the sums themselves (a Keras
        optimizer's ``apply`` would all-reduce again: wrap it in
        `CompressedOptimizer` instead). A shortcut for
        `tfqnn.distribute.communicator.all_reduce` followed by
        `tfqnn.distribute.nonfinite.apply`.

        Args:
            gradients: this replica's gradients, a list.
            state: a `tfqnn.distribute.CompressionState` for the variables
                (required with error feedback), made under the strategy's scope.
            step: an integer tensor that changes every step (seeds the
                stochastic compressors; default random).
            min_elements: without ``state``, smaller gradients go uncompressed.
            on_nonfinite: ``"raise"`` (every replica raises
                ``InvalidArgumentError`` when any had a NaN or Inf) or
                ``"nan"`` (every replica gets NaN sums instead); see
                `tfqnn.distribute.nonfinite` (``"skip"`` needs an optimizer).
        """
        # The exchange sits above the compressors and calls them: imported here.
        from tfqnn.distribute import communicator

        on_nonfinite = nonfinite.check(on_nonfinite, applies_step=False)
        sums, finite = communicator.all_reduce(
            self, gradients, state=state, step=step, min_elements=min_elements
        )
        return nonfinite.apply(sums, finite, on_nonfinite)

    # --- helpers for subclasses -------------------------------------------

    @staticmethod
    def _flat(gradient: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.cast(gradient, tf.float32), [-1])

    @staticmethod
    def _restore(flat: tf.Tensor, payload: Payload) -> tf.Tensor:
        return tf.cast(tf.reshape(flat, payload.shape), payload.dtype)

    @staticmethod
    def _summed_integers(payload: Payload, offset: int, span: int) -> tf.Tensor:
        """The float32 sum of the integers that ``payload.count`` workers packed
        with ``packing.pack_summable(..., offset, span, payload.num_workers)``."""
        return packing.unpack_summable(
            payload.words,
            payload.shape.num_elements(),
            offset,
            span,
            payload.num_workers,
            payload.count,
        )

    @staticmethod
    def _uniform(shape: Any, seed: tf.Tensor | None) -> tf.Tensor:
        """Uniform [0, 1) noise: stateless when a seed is given."""
        if seed is None:
            return tf.random.uniform(shape, dtype=tf.float32)
        return tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)


def num_buckets(num_elements: int, bucket_size: int) -> int:
    """Buckets of ``bucket_size`` elements that cover ``num_elements``."""
    return math.ceil(num_elements / bucket_size)


def bucketed(flat: tf.Tensor, bucket_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``flat`` zero-padded to whole buckets, as [buckets, bucket_size], and
    a 0/1 mask of the real elements in the same layout."""
    n = flat.shape[0]
    pad = (-n) % bucket_size
    values = tf.reshape(tf.pad(flat, [[0, pad]]), [-1, bucket_size])
    mask = tf.reshape(tf.pad(tf.ones([n], tf.float32), [[0, pad]]), [-1, bucket_size])
    return values, mask
