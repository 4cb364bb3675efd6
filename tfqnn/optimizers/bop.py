"""Bop, the binary optimizer of Helwegen et al. (2019)."""

from __future__ import annotations

import warnings
from typing import Any

import keras
from keras import ops

from tfqnn import _validation
from tfqnn.optimizers.predicates import is_binary_variable
from tfqnn.quantizers import binary


def _check_threshold(value: Any) -> float:
    return _validation.check_number("threshold", value, non_negative=True)


def _check_gamma(value: Any) -> float:
    gamma = _validation.check_number("gamma", value, positive=True)
    if gamma > 1:
        raise ValueError(f"Invalid gamma={value!r}: expected a number in (0, 1].")
    return gamma


@keras.saving.register_keras_serializable(package="tfqnn")
class Bop(keras.optimizers.Optimizer):
    """Binary optimizer: flips a weight's sign when its gradient average says so.

    Bop treats each variable as binary (±1) and keeps no latent weight
    beyond its sign (Helwegen et al. 2019, "Latent Weights Do Not Exist:
    Rethinking Binarized Neural Network Optimization", NeurIPS). Per
    variable it keeps ``m``, an exponential moving average of the gradient
    ``g``, and sets, with ``s = sign(w)`` (``sign(0) = +1``)::

        m <- m + gamma * (g - m)        (m starts at 0)
        w <- -s   if s * m > threshold  (the average pushes against the sign)
        w <-  s   otherwise

    so after the first step every weight is ±1. ``gamma`` sets how fast the
    average adapts (as a learning rate does), ``threshold`` how strong a
    signal must be to flip. Both are variables, saved with the optimizer's
    state and settable during training (``bop.gamma = 1e-5``, or
    `tfqnn.callbacks.HyperparameterScheduler`); Bop has no learning rate.

    Use it on binary kernels only, through `CaseOptimizer` with
    `is_binary_variable`; ``build`` warns about any other variable, whose
    values Bop would replace by their signs.

    Args:
        threshold: the flip threshold, a number >= 0.
        gamma: the adaptivity rate, in (0, 1].
        name: the optimizer's name.
        **kwargs: the other arguments of `keras.optimizers.Optimizer`
            (``clipnorm``, ``clipvalue``, ...).

    Example:
    >>> bop = tfqnn.optimizers.Bop(threshold=1e-6, gamma=1e-3)
    >>> bop.gamma = 5e-4  # a variable, settable during training
    >>> round(float(bop.gamma), 6)
    0.0005
    """

    def __init__(
        self,
        threshold: float = 1e-8,
        gamma: float = 1e-4,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("learning_rate", None)  # Bop has none (the base class requires one)
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self._threshold = self.add_variable(
            (),
            initializer=keras.initializers.Constant(_check_threshold(threshold)),
            aggregation="only_first_replica",
            name="threshold",
        )
        self._gamma = self.add_variable(
            (),
            initializer=keras.initializers.Constant(_check_gamma(gamma)),
            aggregation="only_first_replica",
            name="gamma",
        )

    @property
    def threshold(self) -> keras.Variable:
        """The flip threshold (a variable; assign a number >= 0 to change it)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold.assign(_check_threshold(_to_float(value)))

    @property
    def gamma(self) -> keras.Variable:
        """The adaptivity rate (a variable; assign a number in (0, 1] to change it)."""
        return self._gamma

    @gamma.setter
    def gamma(self, value: float) -> None:
        self._gamma.assign(_check_gamma(_to_float(value)))

    def build(self, variables: list[Any]) -> None:
        """Creates the gradient average ``m`` of each variable."""
        if self.built:
            return
        super().build(variables)
        others = [v.path for v in variables if not is_binary_variable(v)]
        if others:
            warnings.warn(
                f"Bop trains {others}, which are not latent weights of binary kernels: "
                "it sets them to their signs. Route them elsewhere with CaseOptimizer "
                "and tfqnn.optimizers.is_binary_variable.",
                stacklevel=2,
            )
        self._averages = self.add_optimizer_variables(variables, "gradient_average")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """Updates the average and flips ``variable`` where it exceeds the threshold."""
        dtype = variable.dtype
        m = self._averages[self._get_variable_index(variable)]
        gamma = ops.cast(self._gamma, dtype)
        threshold = ops.cast(self._threshold, dtype)
        gradient = ops.cast(gradient, dtype)
        self.assign_add(m, ops.multiply(gamma, ops.subtract(gradient, m)))
        sign = binary.sign(ops.convert_to_tensor(variable))
        flip = ops.greater(ops.multiply(sign, m), threshold)
        self.assign(variable, ops.where(flip, ops.negative(sign), sign))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.pop("learning_rate", None)
        config["threshold"] = _to_float(self._threshold)
        config["gamma"] = _to_float(self._gamma)
        return config


def _to_float(value: Any) -> Any:
    """A Python float from a number, tensor or variable (other values pass unchanged)."""
    if isinstance(value, keras.Variable) or keras.ops.is_tensor(value):
        return float(keras.ops.convert_to_numpy(value))
    return value
