"""HyperparameterScheduler: set an optimizer's hyperparameter from a schedule."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import keras

from tfqnn import _validation


class HyperparameterScheduler(keras.callbacks.Callback):
    """Sets ``optimizer.<hyperparameter>`` to ``schedule(t)`` every epoch or step.

    For hyperparameters besides the learning rate, such as `Bop`'s
    ``gamma`` and ``threshold`` (larq's callback of the same name). ``t``
    is the epoch index (from 0) at the start of each epoch, or the global
    step (``optimizer.iterations``) before each batch with
    ``update_freq="step"``. A schedule with two parameters gets the current
    value too: ``schedule(t, value)``. The value is written to the logs at
    each epoch's end under ``log_name``, so `keras.callbacks.TensorBoard`
    and ``History`` record it.

    The hyperparameter must be a variable of the optimizer (Bop's are,
    and so is a float learning rate): a plain Python attribute is baked into
    the compiled training step, and changing it would do nothing.

    Args:
        schedule: ``schedule(t)`` or ``schedule(t, value)``, returning a number.
        optimizer: the optimizer holding the hyperparameter (an inner
            optimizer of a `CaseOptimizer`, say), or None for the model's.
        hyperparameter: the attribute name (``"gamma"``, ``"threshold"``,
            ``"learning_rate"``).
        update_freq: ``"epoch"`` or ``"step"``.
        verbose: 0 (quiet), or 1, 2 or ``"auto"`` (a line per change).
        log_name: the name in the logs; defaults to ``hyperparameter``.

    Example:
    >>> bop = tfqnn.optimizers.Bop(gamma=1e-3)
    >>> decay = tfqnn.callbacks.HyperparameterScheduler(
    ...     lambda epoch: 1e-3 * 0.1 ** (epoch // 30), bop, "gamma")
    """

    def __init__(
        self,
        schedule: Callable[..., float],
        optimizer: keras.optimizers.Optimizer | None,
        hyperparameter: str,
        update_freq: str = "epoch",
        verbose: int | str = 0,
        log_name: str | None = None,
    ) -> None:
        super().__init__()
        if not callable(schedule):
            raise ValueError(  # noqa: TRY004 (tfqnn raises ValueError for invalid arguments)
                f"Invalid schedule={schedule!r}: expected a callable schedule(t) or "
                "schedule(t, value)."
            )
        if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
            raise ValueError(
                f"Invalid optimizer={optimizer!r}: expected a keras.optimizers.Optimizer or None."
            )
        if not isinstance(hyperparameter, str) or not hyperparameter:
            raise ValueError(
                f"Invalid hyperparameter={hyperparameter!r}: expected an attribute name."
            )
        self.schedule = schedule
        self.optimizer = optimizer
        self.hyperparameter = hyperparameter
        self.update_freq = _validation.check_choice("update_freq", update_freq, ("epoch", "step"))
        self.verbose = _validation.check_verbose(verbose)
        self.log_name = log_name or hyperparameter
        self._takes_value = _takes_two_arguments(schedule)
        if optimizer is not None:
            self._check(optimizer)

    def _check(self, optimizer: keras.optimizers.Optimizer) -> None:
        value = getattr(optimizer, self.hyperparameter, None)
        if not isinstance(value, keras.Variable):
            raise ValueError(  # noqa: TRY004 (tfqnn raises ValueError for invalid arguments)
                f"Invalid hyperparameter={self.hyperparameter!r}: "
                f"{type(optimizer).__name__} has no variable of that name (found "
                f"{type(value).__name__}); only variables reach the compiled training step."
            )

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        if self.optimizer is None:
            self.optimizer = model.optimizer
            self._check(self.optimizer)

    @property
    def value(self) -> float:
        """The hyperparameter's current value."""
        return float(keras.ops.convert_to_numpy(getattr(self.optimizer, self.hyperparameter)))

    def _update(self, t: int, when: str) -> None:
        args = (t, self.value) if self._takes_value else (t,)
        new = float(self.schedule(*args))
        setter = getattr(getattr(type(self.optimizer), self.hyperparameter, None), "fset", None)
        if setter is not None:  # a property that checks the value (Bop's, Keras's learning rate)
            setter(self.optimizer, new)
        else:
            getattr(self.optimizer, self.hyperparameter).assign(new)
        if self.verbose:
            print(f"{when} {t}: {self.log_name} is now {self.value:g}.")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.update_freq == "epoch":
            self._update(epoch, "Epoch")

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.update_freq == "step":
            assert self.optimizer is not None
            step = int(keras.ops.convert_to_numpy(self.optimizer.iterations))
            self._update(step, "Step")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs[self.log_name] = self.value


def _takes_two_arguments(schedule: Callable[..., float]) -> bool:
    try:
        inspect.signature(schedule).bind(0, 0.0)
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): call it with t only
        return False
    return True
