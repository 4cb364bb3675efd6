"""Keras 3 ``fit`` under MultiWorkerMirroredStrategy: the two private patches.

Keras 3's TensorFlow trainer breaks under ``tf.distribute.MultiWorkerMirroredStrategy``
(keras-team/keras#20585, tensorflow/tensorflow#72388), in two places of
``keras.src.backend.tensorflow.trainer``:

1. ``TensorFlowTrainer._maybe_symbolic_build`` averages the first distributed
   batch with ``strategy.reduce("MEAN", batch, axis=None)``, which fails with
   ``ValueError: Attempt to convert a value (PerReplica:{...}) with an
   unsupported type (...PerReplica...) to a Tensor.`` The batch only gives
   shapes and dtypes to build the model, so the replacement takes the first
   local replica's values: no collective at all.
2. The module-level ``reduce_per_replica`` reduces every train/test step's
   metrics with ``strategy.reduce("MEAN", v, axis=0)`` in multi-worker mode;
   the metrics are scalars, hence ``ValueError: Invalid reduction dimension 0
   for input with 0 dimensions.`` The replacement averages them over the
   replicas (``axis=None``) for the ``"auto"``/``"mean"`` reductions and
   leaves every other case to the original.

`apply` (run when `tfqnn.distribute` is imported) installs both, once. It is
feature-detected: a patch is skipped, with the reason in `reason`, when its
private target is missing or no longer contains the faulty call (fixed
upstream). `is_applied` says whether both are in place.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import keras
import tensorflow as tf

_MARK = "_tfqnn_mwms_workaround"

reason: str | None = "apply() has not run"
"""Why `apply` left (part of) Keras unpatched, or None when both patches are in place."""


def _first_local_batch_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
    """`TensorFlowTrainer._maybe_symbolic_build`, without the eager reduce of the batch."""
    if self._distribute_strategy is None:
        return  # as upstream: build when the step function is traced
    strategy = self.distribute_strategy
    if iterator is not None:
        for _, _, it in iterator:
            data_batch = next(it)
            break

    def first_local(value: Any) -> Any:
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    data_batch = keras.tree.map_structure(first_local, data_batch)
    with strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _in_multi_worker_collective_mode(strategy: Any) -> bool:
    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and in_multi_worker_mode is not None
        and in_multi_worker_mode()
    )


def _wrap_reduce_per_replica(original: Callable[..., Any]) -> Callable[..., Any]:
    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction in ("auto", "mean") and _in_multi_worker_collective_mode(strategy):
            return keras.tree.map_structure(
                lambda v: None if v is None else strategy.reduce("MEAN", v, axis=None), values
            )
        return original(values, strategy, reduction)

    reduce_per_replica.__doc__ = (
        "Keras' `reduce_per_replica`, but a mean over the replicas (axis=None) "
        "in multi-worker mode, where the metrics are scalars."
    )
    setattr(reduce_per_replica, _MARK, original)
    return reduce_per_replica


setattr(_first_local_batch_build, _MARK, True)


def _still_faulty(function: Any, faulty_call: str) -> bool:
    """Whether ``function``'s source makes ``faulty_call``; True when it cannot be read."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return True
    return faulty_call in "".join(source.split())


def _trainer_module() -> tuple[ModuleType | None, str | None]:
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError as error:
        return None, f"keras.src.backend.tensorflow.trainer cannot be imported ({error})"
    return trainer, None


def _install(
    target: Any, faulty_call: str, patch: Callable[[], Any], missing: str, fixed: str
) -> str | None:
    """Runs ``patch`` unless ``target`` is missing, already patched, or no
    longer makes ``faulty_call``; returns why it did not patch (None: fine)."""
    if target is None:
        return missing
    if getattr(target, _MARK, False):
        return None
    if not _still_faulty(target, faulty_call):
        return f"{fixed} (fixed in Keras {keras.__version__})"
    patch()
    return None


def apply() -> bool:
    """Installs the patches that this Keras needs (idempotent); returns `is_applied()`."""
    global reason  # noqa: PLW0603 (the module-level answer of is_applied)
    trainer, why = _trainer_module()
    if trainer is None:
        reason = f"{why}; nothing patched"
        return False
    cls = getattr(trainer, "TensorFlowTrainer", None)
    build = getattr(cls, "_maybe_symbolic_build", None)
    if build is not None and not hasattr(cls, "_symbolic_build"):
        build = None
    reasons = [
        _install(
            build,
            "distribute_strategy.reduce(",
            lambda: setattr(cls, "_maybe_symbolic_build", _first_local_batch_build),
            "TensorFlowTrainer._maybe_symbolic_build/_symbolic_build not found",
            "TensorFlowTrainer._maybe_symbolic_build no longer reduces the batch",
        ),
        _install(
            getattr(trainer, "reduce_per_replica", None),
            'strategy.reduce("MEAN",v,axis=0)',
            lambda: setattr(
                trainer, "reduce_per_replica", _wrap_reduce_per_replica(trainer.reduce_per_replica)
            ),
            "keras.src.backend.tensorflow.trainer.reduce_per_replica not found",
            "reduce_per_replica no longer reduces scalars along axis 0",
        ),
    ]
    reason = "; ".join(r for r in reasons if r) or None
    return is_applied()


def is_applied() -> bool:
    """Whether both tfqnn replacements are the functions Keras now calls."""
    trainer, _ = _trainer_module()
    cls = getattr(trainer, "TensorFlowTrainer", None)
    return bool(
        getattr(getattr(cls, "_maybe_symbolic_build", None), _MARK, False)
        and getattr(getattr(trainer, "reduce_per_replica", None), _MARK, False)
    )
