"""`GradientCompressionStrategy`: MultiWorkerMirroredStrategy with compressed gradients."""

from __future__ import annotations

import weakref
from typing import Any

import tensorflow as tf

from tfqnn.distribute import _hook
from tfqnn.distribute.config import (
    DEFAULT_MIN_ELEMENTS,
    CompressionConfig,
    ConfiguredByCompression,
)


class GradientCompressionStrategy(
    ConfiguredByCompression, tf.distribute.MultiWorkerMirroredStrategy
):
    """A `tf.distribute.MultiWorkerMirroredStrategy` whose gradient exchange is compressed.

    Use it as MWMS: build and compile the model under ``scope()`` with any
    Keras optimizer, then ``fit``. Each optimizer built under it gets the
    compressor and its per-variable state (error-feedback residuals, saved
    with the optimizer's variables), and its gradient all-reduce becomes the
    compressed exchange of `tfqnn.distribute.communicator`. Everything else
    the strategy reduces (metrics, synchronized BatchNorm statistics,
    losses, variable initialisation) stays exact.

    Args:
        compressor: a `Compressor` or an alias of
            `tfqnn.distribute.compressors.get` (``"onebit_ef"``, ...).
        strategy: the MultiWorkerMirroredStrategy to wrap; None creates one
            from ``TF_CONFIG`` (or ``cluster_resolver``). This strategy takes
            over the wrapped one's cluster and collectives: use this one
            from then on (the other's ``scope()`` and ``run`` would mix two
            strategies).
        min_elements: gradients with fewer elements go uncompressed.
        on_nonfinite: ``"skip"`` (every worker skips a step where any
            worker's gradient has a NaN or Inf), ``"raise"`` or ``"nan"``
            (see `tfqnn.distribute.nonfinite`).
        cluster_resolver, communication_options: as for MWMS, when
            ``strategy`` is None.

    The compression arguments are validated by `CompressionConfig`, which
    the strategy exposes as ``compression_config`` (the optimizers built
    under it read that attribute).

    Example (on each worker, with its ``TF_CONFIG``)::

        strategy = tfqnn.distribute.GradientCompressionStrategy("onebit_ef")
        with strategy.scope():
            model = make_model()
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(dataset, epochs=10)
    """

    def __init__(
        self,
        compressor: Any,
        strategy: tf.distribute.MultiWorkerMirroredStrategy | None = None,
        min_elements: int = DEFAULT_MIN_ELEMENTS,
        on_nonfinite: str = "skip",
        *,
        cluster_resolver: Any = None,
        communication_options: Any = None,
    ) -> None:
        self.compression_config = CompressionConfig(compressor, min_elements, on_nonfinite)
        _hook.install()
        self.wrapped_strategy = strategy
        if strategy is None:
            super().__init__(
                cluster_resolver=cluster_resolver, communication_options=communication_options
            )
            return
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise ValueError(  # noqa: TRY004 (tfqnn's convention for invalid arguments)
                f"Invalid strategy={strategy!r}: expected a "
                "tf.distribute.MultiWorkerMirroredStrategy or None."
            )
        if cluster_resolver is not None or communication_options is not None:
            raise ValueError(
                "cluster_resolver and communication_options configure a new "
                "strategy: pass them to the wrapped one, or pass strategy=None."
            )
        tf.distribute.Strategy.__init__(self, strategy.extended)
        # The extended object answers to one strategy: from now on this one.
        strategy.extended._container_strategy_weakref = weakref.ref(self)

    def __repr__(self) -> str:
        return (
            f"GradientCompressionStrategy({self.compressor!r}, "
            f"num_replicas_in_sync={self.num_replicas_in_sync}, "
            f"min_elements={self.min_elements}, on_nonfinite={self.on_nonfinite!r})"
        )
