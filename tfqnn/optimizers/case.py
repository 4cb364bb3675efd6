"""CaseOptimizer: one optimizer per group of variables, chosen by predicates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras.src.utils.tracking import no_automatic_dependency_tracking

Predicate = Callable[[Any], bool]


@keras.saving.register_keras_serializable(package="tfqnn")
class CaseOptimizer(keras.optimizers.Optimizer):
    """Trains each variable with the first optimizer whose predicate holds for it.

    As `tf.case`: the pairs are tried in order; a variable no predicate
    claims goes to ``default_optimizer``. The usual binarized network trains
    its binary kernels with `Bop` and everything else (the first and last
    layers, BatchNorm, biases) with Adam (Helwegen et al. 2019)::

        CaseOptimizer((is_binary_variable, Bop()), default_optimizer=keras.optimizers.Adam())

    The routing is decided once, when the optimizer is built on the model's
    variables; each inner optimizer is built on its share and applies its
    own update (learning rate, clipping, schedules) under any
    `tf.distribute` strategy, including tfqnn's
    `GradientCompressionStrategy`, where each inner optimizer exchanges the
    gradients of its share. The inner optimizers' states save with the
    model. A `.keras` file stores the routing (the optimizer of each
    variable, in the order of the model's trainable variables), so a loaded
    model trains its variables with the same optimizers even when a
    predicate (a lambda) cannot be saved; registered predicates such as
    `is_binary_variable` are saved as well. Learning rates belong to the
    inner optimizers: ``learning_rate`` reads the default optimizer's (what
    Keras logs) and setting it raises; Keras's learning-rate callbacks set
    each of ``optimizers``, as for its own multi-optimizer wrappers.

    Args:
        *predicate_optimizer_pairs: ``(predicate, optimizer)`` tuples, where
            ``predicate(variable)`` returns a bool and ``optimizer`` is a
            Keras optimizer (each used once).
        default_optimizer: the optimizer of the variables no predicate
            claims, or None (then every variable must be claimed).
        name: this optimizer's name.

    Raises:
        ValueError: at construction for a pair that is not a (callable,
            optimizer) tuple or an optimizer given twice; at ``build`` for a
            variable no predicate claims when ``default_optimizer`` is None.
    """

    built: bool

    def __init__(
        self,
        *predicate_optimizer_pairs: tuple[Predicate, keras.optimizers.Optimizer],
        default_optimizer: keras.optimizers.Optimizer | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        routes = kwargs.pop("routes", None)  # from_config only
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        predicates: list[Predicate | None] = []
        optimizers: list[keras.optimizers.Optimizer] = []
        for i, pair in enumerate(predicate_optimizer_pairs):
            argument = f"predicate_optimizer_pairs[{i}]"
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValueError(
                    f"Invalid {argument}={pair!r}: expected a (predicate, optimizer) tuple."
                )
            predicate, optimizer = pair
            if predicate is not None and not callable(predicate):
                raise ValueError(
                    f"Invalid {argument}[0]={predicate!r}: expected a callable "
                    "predicate(variable) -> bool."
                )
            predicates.append(predicate)
            optimizers.append(_check_optimizer(f"{argument}[1]", optimizer))
        if default_optimizer is not None:
            optimizers.append(_check_optimizer("default_optimizer", default_optimizer))
        if not optimizers:
            raise ValueError(
                "Invalid predicate_optimizer_pairs=(): expected at least one pair or "
                "a default_optimizer."
            )
        if len({id(o) for o in optimizers}) != len(optimizers):
            raise ValueError(
                "Invalid predicate_optimizer_pairs: an optimizer appears twice; "
                "expected one optimizer object per pair and default_optimizer."
            )
        self.predicates = predicates
        self.optimizers = optimizers
        self.default_optimizer = default_optimizer
        # The index in `optimizers` of each variable, in build order (saved in the config).
        self.routes: list[int] = list(routes or [])
        self._route_keys: dict[Any, int] = {}

    def route(self, variable: Any) -> keras.optimizers.Optimizer:
        """The optimizer that trains ``variable``: the first whose predicate holds,
        else the default (after ``build``, the one it was routed to)."""
        key = self._var_key(variable)
        if key in self._route_keys:
            return self.optimizers[self._route_keys[key]]
        return self.optimizers[self._route_index(variable)]

    def _route_index(self, variable: Any) -> int:
        for i, predicate in enumerate(self.predicates):
            if predicate is None:
                raise ValueError(
                    f"CaseOptimizer {self.name!r} was loaded without predicate {i} (a lambda or "
                    f"an unregistered function cannot be saved) and has no saved route for "
                    f"{variable.path!r}: compile the model again with the predicates."
                )
            if predicate(variable):
                return i
        if self.default_optimizer is None:
            raise ValueError(
                f"Invalid default_optimizer=None: no predicate claims variable "
                f"{variable.path!r}; expected a default optimizer for such variables."
            )
        return len(self.optimizers) - 1

    @no_automatic_dependency_tracking  # the model's variables are not this optimizer's
    def build(self, variables: Sequence[Any]) -> None:
        """Routes ``variables`` and builds each inner optimizer on its share."""
        if self.built:
            return
        variables = list(variables)
        restored = self.routes if len(self.routes) == len(variables) else None
        self.routes = []
        shares: list[list[Any]] = [[] for _ in self.optimizers]
        for i, variable in enumerate(variables):
            index = restored[i] if restored is not None else self._route_index(variable)
            self.routes.append(index)
            self._route_keys[self._var_key(variable)] = index
            shares[index].append(variable)
        for optimizer, share in zip(self.optimizers, shares):
            with keras.name_scope(optimizer.name, caller=optimizer):
                optimizer.build(share)
        self._trainable_variables = list(variables)
        self.built = True

    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> None:
        """Applies each inner optimizer to the gradients of its variables."""
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "CaseOptimizer.apply without trainable_variables needs a built "
                    "optimizer: call build(variables) first."
                )
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
        shares: list[tuple[list[Any], list[Any]]] = [([], []) for _ in self.optimizers]
        for gradient, variable in zip(grads, trainable_variables):
            key = self._var_key(variable)
            if key not in self._route_keys:
                raise ValueError(
                    f"CaseOptimizer {self.name!r} was built without variable "
                    f"{variable.path!r}; it trains the variables it was built on."
                )
            share_grads, share_vars = shares[self._route_keys[key]]
            share_grads.append(gradient)
            share_vars.append(variable)
        for optimizer, (share_grads, share_vars) in zip(self.optimizers, shares):
            if share_vars:
                optimizer.apply(share_grads, share_vars)
        self._iterations.assign_add(1)

    @property
    def learning_rate(self) -> Any:
        """The default optimizer's learning rate (else the first inner optimizer's),
        which Keras logs; each inner optimizer applies its own."""
        return (self.default_optimizer or self.optimizers[0]).learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        raise ValueError(
            f"Invalid learning_rate={value!r} for CaseOptimizer {self.name!r}: it has none "
            "of its own; set or schedule an inner optimizer's (for instance with "
            "tfqnn.callbacks.HyperparameterScheduler(schedule, inner, 'learning_rate'))."
        )

    @property
    def variables(self) -> list[Any]:
        """This optimizer's variables, then those of each inner optimizer."""
        own: list[Any] = self._variables[:]
        for optimizer in self.optimizers:
            own.extend(optimizer.variables)
        return own

    def save_own_variables(self, store: Any) -> None:
        """Saves this optimizer's own variables (Keras saves the inner optimizers)."""
        for i, variable in enumerate(self._variables):
            store[str(i)] = keras.ops.convert_to_numpy(variable)

    def load_own_variables(self, store: Any) -> None:
        """Loads what `save_own_variables` saved."""
        for i, variable in enumerate(self._variables):
            if str(i) in store:
                variable.assign(store[str(i)])

    def get_config(self) -> dict[str, Any]:
        serialize = keras.saving.serialize_keras_object
        pairs = [
            [_serialize_predicate(predicate), serialize(optimizer)]
            for predicate, optimizer in zip(self.predicates, self.optimizers)
        ]
        return {
            "name": self.name,
            "predicate_optimizer_pairs": pairs,
            "default_optimizer": serialize(self.default_optimizer),
            "routes": list(self.routes),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> CaseOptimizer:
        config = dict(config)
        pairs = config.pop("predicate_optimizer_pairs")
        default = config.pop("default_optimizer")

        def load(item: Any) -> Any:
            return keras.saving.deserialize_keras_object(item, custom_objects=custom_objects)

        restored: list[Any] = [(None if p is None else load(p), load(o)) for p, o in pairs]
        return cls(
            *restored,
            default_optimizer=None if default is None else load(default),
            **config,
        )


def _check_optimizer(argument: str, optimizer: Any) -> keras.optimizers.Optimizer:
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(  # noqa: TRY004 (tfqnn raises ValueError for invalid arguments)
            f"Invalid {argument}={optimizer!r}: expected a keras.optimizers.Optimizer instance."
        )
    return optimizer


def _serialize_predicate(predicate: Predicate | None) -> Any:
    """The predicate's Keras serialization if it is registered with Keras, else None
    (lambdas and unregistered functions are restored from the saved routes)."""
    if (
        predicate is None
        or keras.saving.get_registered_object(keras.saving.get_registered_name(predicate))
        is not predicate
    ):
        return None
    return keras.saving.serialize_keras_object(predicate)
