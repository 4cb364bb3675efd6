"""FlipRatio: how many binary weights change sign per training step."""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
from keras import ops
from keras.src.utils.tracking import no_automatic_dependency_tracking

from tfqnn.optimizers import is_binary_variable
from tfqnn.quantizers import binary


@keras.saving.register_keras_serializable(package="tfqnn")
class FlipRatio(keras.metrics.Metric):
    """The fraction of binary weights whose sign changed in the last step, averaged over steps.

    Watches the latent weights of the binary kernels (`is_binary_variable`)
    of ``target``, a built layer or model. Each ``update_state`` compares
    their signs (``sign(0) = +1``) with those at the previous call::

        flips_t = #{i : sign(w_i,t) != sign(w_i,t-1)} / #weights

    and ``result()`` is the mean of ``flips_t`` over the updates since the
    last ``reset_state`` (each epoch in ``fit``); the first update ever only
    records the signs. Signs persist across ``reset_state``, so an epoch's
    first step counts the flips since the previous epoch's last step. A
    training step that flips nothing gives 0; Bop's flips and the sign
    changes of latent weights under Adam count alike (larq's ``flip_ratio``).

    ``update_state`` ignores its arguments, so the metric goes into
    ``compile``, where Keras updates it after each optimizer step::

        model.compile("adam", loss, metrics=[tfqnn.metrics.FlipRatio(model)])
        # per layer:
        metrics = [tfqnn.metrics.FlipRatio(l, name=f"flips_{l.name}") for l in binary_layers]

    A FlipRatio restored from a saved model's compile config watches
    nothing (a config cannot hold the model) and reports NaN with a
    warning: compile the loaded model again with ``FlipRatio(model)``.

    Args:
        target: a built Keras layer or model with at least one binary
            kernel; None only for the restored, unbound metric.
        name: the metric's name in the logs.
        dtype: the dtype of the result.
    """

    def __init__(self, target: Any = None, name: str = "flip_ratio", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self._watch([] if target is None else _binary_kernels(target))
        self._size = sum(math.prod(v.shape) for v in self._watched)
        self._previous = [
            self.add_variable(
                tuple(v.shape),
                initializer="zeros",
                dtype="int8",
                aggregation="only_first_replica",
                name=f"previous_sign_{i}",
            )
            for i, v in enumerate(self._watched)
        ]
        self._primed = self.add_variable(
            (), initializer="zeros", dtype="int8", aggregation="only_first_replica", name="primed"
        )
        self.total = self.add_variable((), initializer="zeros", aggregation="sum", name="total")
        self.count = self.add_variable((), initializer="zeros", aggregation="sum", name="count")
        self._warned = False

    @no_automatic_dependency_tracking  # the watched weights are the model's, not the metric's
    def _watch(self, kernels: list[Any]) -> None:
        self._watched = kernels

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        """Counts the sign changes of the watched weights since the previous call."""
        if not self._watched:
            if not self._warned:
                warnings.warn(
                    f"FlipRatio {self.name!r} watches no weights (restored from a config?): "
                    "it reports NaN. Compile with tfqnn.metrics.FlipRatio(model).",
                    stacklevel=2,
                )
                self._warned = True
            return
        changed = ops.convert_to_tensor(0.0, self.dtype)
        for variable, previous in zip(self._watched, self._previous):
            sign = ops.cast(binary.sign(ops.convert_to_tensor(variable)), "int8")
            changed = changed + ops.cast(ops.sum(ops.not_equal(sign, previous)), self.dtype)
            previous.assign(sign)
        primed = ops.cast(self._primed, self.dtype)
        self.total.assign_add(primed * changed / self._size)
        self.count.assign_add(primed)
        self._primed.assign(ops.ones((), "int8"))

    def result(self) -> Any:
        """The mean flip ratio per update since the last reset (NaN before any)."""
        if not self._watched:
            return ops.convert_to_tensor(float("nan"), self.dtype)
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self) -> None:
        """Resets the average; the previous signs stay."""
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


def _binary_kernels(target: Any) -> list[Any]:
    if not isinstance(target, keras.layers.Layer):
        raise ValueError(  # noqa: TRY004 (tfqnn raises ValueError for invalid arguments)
            f"Invalid target={target!r}: expected a Keras layer or model."
        )
    if not target.built:
        raise ValueError(
            f"Invalid target={target.name!r}: expected a built layer or model (call it "
            "on data or build it first)."
        )
    kernels = [v for v in target.trainable_variables if is_binary_variable(v)]
    if not kernels:
        raise ValueError(
            f"Invalid target={target.name!r}: expected a layer or model with a binary "
            "kernel (a tfqnn layer whose kernel quantizer has precision 1)."
        )
    return kernels
