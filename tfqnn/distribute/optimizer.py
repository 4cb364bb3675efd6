"""`CompressedOptimizer`: a Keras optimizer wrapper whose gradient all-reduce is compressed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from tfqnn.distribute import _hook, compressors
from tfqnn.distribute.config import (
    DEFAULT_MIN_ELEMENTS,
    CompressionConfig,
    ConfiguredByCompression,
)
from tfqnn.distribute.state import CompressionState


@keras.saving.register_keras_serializable(package="tfqnn")
class CompressedOptimizer(ConfiguredByCompression, keras.optimizers.Optimizer):
    """Wraps a Keras optimizer so that its gradient all-reduce is compressed.

    Use it under any tf.distribute strategy's scope (MultiWorkerMirroredStrategy,
    or MirroredStrategy on one machine). The inner optimizer does the
    update; this one owns the compressor's state (error-feedback residuals),
    which is part of its ``variables``, so ``model.save``,
    ``ModelCheckpoint`` and ``BackupAndRestore`` keep it. Under
    `GradientCompressionStrategy` plain Keras optimizers compress without it.

    Args:
        optimizer: the Keras optimizer (instance, name or config).
        compressor: a `Compressor` or its alias (``"onebit_ef"``, ...).
        min_elements: gradients with fewer elements go uncompressed.
        on_nonfinite: ``"skip"``, ``"raise"`` or ``"nan"`` (see
            `tfqnn.distribute.nonfinite`).
        name: the optimizer's name.

    The arguments are validated by `CompressionConfig`, available as
    ``compression_config``.

    >>> import keras
    >>> opt = CompressedOptimizer(keras.optimizers.SGD(0.1), "onebit_ef")
    >>> opt.compressor
    OneBitEF(bucket_size=512, two_phase=False, column_major=True)
    """

    def __init__(
        self,
        optimizer: Any,
        compressor: Any,
        min_elements: int = DEFAULT_MIN_ELEMENTS,
        on_nonfinite: str = "skip",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        unsupported = {k: v for k, v in kwargs.items() if v not in (None, False)}
        if unsupported:
            raise ValueError(
                f"CompressedOptimizer does not take {', '.join(unsupported)}: set "
                "them on the inner optimizer."
            )
        config = CompressionConfig(compressor, min_elements, on_nonfinite)
        _hook.install()
        super().__init__(learning_rate=0.0, name=name)
        self.compression_config = config
        self.inner_optimizer = keras.optimizers.get(optimizer)
        _hook.warn_local_clipping(self.inner_optimizer)

    def build(self, var_list: Sequence[Any]) -> None:
        if self.built:
            return
        _hook.attach(self.inner_optimizer, self.compression_config, var_list, owner=self)
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def compression_state(self) -> CompressionState | None:
        """The `CompressionState` (None before `build`)."""
        exchange = _hook.attached(self.inner_optimizer)
        return None if exchange is None else exchange.state

    @property
    def variables(self) -> list[Any]:
        return self._variables + self.inner_optimizer.variables

    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> Any:
        if not self.built:
            if trainable_variables is None:
                raise ValueError(
                    "Call optimizer.build(trainable_variables) first, or pass trainable_variables."
                )
            with keras.name_scope(self.name, caller=self):
                self.build(list(trainable_variables))
        return self.inner_optimizer.apply(grads, trainable_variables)

    def scale_loss(self, loss: Any) -> Any:
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list: Sequence[Any]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self) -> Any:
        return self.inner_optimizer.iterations

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "optimizer": keras.optimizers.serialize(self.inner_optimizer),
            "compressor": compressors.serialize(self.compressor),
            "min_elements": self.min_elements,
            "on_nonfinite": self.on_nonfinite,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
    ) -> CompressedOptimizer:
        config = dict(config)
        config["optimizer"] = keras.optimizers.deserialize(
            config["optimizer"], custom_objects=custom_objects
        )
        config["compressor"] = compressors.deserialize(
            config["compressor"], custom_objects=custom_objects
        )
        return cls(**config)
