"""The hook in Keras' optimizer that runs the compressed exchange.

Keras 3's TensorFlow optimizer all-reduces the gradients in
``TFOptimizer._backend_update_step`` (``_all_reduce_sum_gradients``, then
one ``update_step`` per variable), after its own unscaling, clipping and
weight decay. `install` replaces that method (and ``build``) once, for every
Keras optimizer; `CompressedOptimizer` and `GradientCompressionStrategy`
call it when they are constructed. An optimizer with an `OptimizerExchange`
attached (by `attach`: `CompressedOptimizer` attaches one to its inner
optimizer; ``build`` attaches one when the optimizer's strategy has a
``compression_config``) exchanges its gradients with
`communicator.all_reduce`; any other optimizer runs Keras' own code.
Metrics, BatchNorm statistics and losses use other all-reduces and stay
exact.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from tfqnn.distribute import communicator, nonfinite, state
from tfqnn.distribute.config import CompressionConfig

_ATTRIBUTE = "_tfqnn_exchange"
_original: dict[str, Callable[..., Any]] = {}


class OptimizerExchange:
    """What one optimizer runs in place of its gradient all-reduce: a
    `CompressionConfig`, the `CompressionState` of the optimizer's
    variables, and the update step with the compressed exchange.

    Args:
        config: the `CompressionConfig`.
        variables: the optimizer's trainable variables.
        make_variable: creates the state variables (see `CompressionState`).
    """

    def __init__(
        self,
        config: CompressionConfig,
        variables: Sequence[Any],
        make_variable: state.MakeVariable | None = None,
    ) -> None:
        self.config = config
        self.state = state.CompressionState(
            config.compressor, variables, config.min_elements, make_variable
        )

    def update_step(
        self,
        optimizer: Any,
        grads: Sequence[Any],
        trainable_variables: Sequence[Any],
        learning_rate: Any,
    ) -> None:
        """`TFOptimizer._backend_update_step` with the compressed exchange."""
        indices = [optimizer._get_variable_index(v) for v in trainable_variables]
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        sums, finite = communicator.all_reduce(
            self.config.compressor,
            grads,
            state=self.state,
            indices=indices,
            step=optimizer.iterations.value,
        )
        policy = self.config.on_nonfinite
        sums = nonfinite.apply(sums, finite, policy)
        tf.__internal__.distribute.interim.maybe_merge_call(
            functools.partial(_update_if, optimizer),
            optimizer._distribution_strategy,
            list(zip(sums, variables)),
            learning_rate,
            finite if policy == "skip" else tf.constant(True),
        )


def _update_if(
    optimizer: Any,
    distribution: tf.distribute.Strategy,
    grads_and_vars: Sequence[tuple[Any, Any]],
    learning_rate: Any,
    apply: tf.Tensor,
) -> None:
    """Keras' per-variable ``update_step``, where the bool ``apply`` holds."""

    def update(variable: Any, gradient: Any, learning_rate: Any, apply: tf.Tensor) -> tf.Tensor:
        def run() -> tf.Tensor:
            optimizer.update_step(gradient, variable, learning_rate)
            return tf.constant(True)

        return tf.cond(apply, run, lambda: tf.constant(False))

    for gradient, variable in grads_and_vars:
        distribution.extended.update(
            variable, update, args=(gradient, learning_rate, apply), group=False
        )


def attached(optimizer: Any) -> OptimizerExchange | None:
    """The `OptimizerExchange` attached to ``optimizer``, or None."""
    return getattr(optimizer, _ATTRIBUTE, None)


def attach(
    optimizer: Any, config: CompressionConfig, variables: Sequence[Any], owner: Any = None
) -> OptimizerExchange:
    """Attaches an `OptimizerExchange` to ``optimizer``; its state variables
    are tracked by ``owner`` (default: ``optimizer``), so that the owner's
    checkpoints and ``.weights.h5`` files carry them."""
    exchange = OptimizerExchange(config, variables, _variable_maker(owner or optimizer))
    setattr(optimizer, _ATTRIBUTE, exchange)
    return exchange


def _variable_maker(optimizer: Any) -> state.MakeVariable:
    def make(shape: tuple[int, ...], initializer: Any, name: str) -> keras.Variable:
        with keras.name_scope(optimizer.name, caller=optimizer):
            variable = state.new_variable(shape, initializer, name)
        optimizer._track_variable(variable)
        return variable

    return make


def warn_local_clipping(optimizer: Any) -> None:
    """Warns when ``optimizer`` clips each worker's gradient before the exchange."""
    clipping = [
        name
        for name in ("clipnorm", "global_clipnorm", "clipvalue")
        if getattr(optimizer, name, None) is not None
    ]
    if clipping:
        warnings.warn(
            f"{type(optimizer).__name__} has {', '.join(clipping)}: Keras clips each worker's "
            "gradient before the (compressed) exchange, not the sum.",
            stacklevel=3,
        )


def _backend_update_step(
    self: Any, grads: Sequence[Any], trainable_variables: Sequence[Any], learning_rate: Any
) -> Any:
    exchange = attached(self)
    if exchange is None:
        return _original["_backend_update_step"](self, grads, trainable_variables, learning_rate)
    return exchange.update_step(self, grads, trainable_variables, learning_rate)


def _build(self: Any, variables: Sequence[Any]) -> None:
    _original["build"](self, variables)
    strategy = getattr(self, "_distribution_strategy", None)
    config = getattr(strategy, "compression_config", None)
    # Wrappers (CompressedOptimizer, LossScaleOptimizer) delegate to their inner one.
    if config is not None and attached(self) is None and not hasattr(self, "inner_optimizer"):
        warn_local_clipping(self)
        attach(self, config, variables)


def _tf_optimizer_class() -> Any:
    from keras.src.backend.tensorflow.optimizer import TFOptimizer

    return TFOptimizer


def is_installed() -> bool:
    """Whether Keras' ``TFOptimizer`` runs this module's hook."""
    return _tf_optimizer_class()._backend_update_step is _backend_update_step


def install() -> None:
    """Replaces ``TFOptimizer._backend_update_step`` and ``build`` (idempotent).

    Raises:
        RuntimeError: when this Keras has no such private methods.
    """
    if _original:
        return
    cls = _tf_optimizer_class()
    needed = ("_backend_update_step", "_get_variable_index", "_track_variable", "update_step")
    missing = [name for name in needed if not hasattr(cls, name)]
    if missing:
        raise RuntimeError(
            f"tfqnn.distribute needs TFOptimizer.{', '.join(missing)}, which "
            f"Keras {keras.__version__} does not have."
        )
    _original["_backend_update_step"] = cls._backend_update_step
    _original["build"] = cls.build
    cls._backend_update_step = _backend_update_step
    cls.build = _build
