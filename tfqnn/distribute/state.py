"""`CompressionState`: per-variable state of compressed exchanges, such as
error-feedback residuals and PowerSGD's warm-start factor.

Each worker keeps its own residual, so the state lives in
``synchronization="on_read"`` variables: assigning them inside a replica
context changes the local copy only, with no collective (a mirrored
variable would raise, or all-reduce the residuals of all workers). They are
``aggregation="only_first_replica"``: a checkpoint of a worker saves and
restores that worker's own values (MultiWorkerMirroredStrategy has one
replica per worker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from tfqnn.distribute import config

MakeVariable = Callable[[tuple[int, ...], Any, str], Any]
"""``f(shape, initializer, name) -> variable``."""


def state_initializers(
    compressor: Any, shape: Any, num_workers: int
) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Name -> (shape, initializer) of the state one compressed variable needs."""
    specs = {"residual": (tuple(shape), "zeros")} if compressor.error_feedback else {}
    specs.update(compressor.extra_state(shape, num_workers))
    return specs


def new_variable(shape: tuple[int, ...], initializer: Any, name: str) -> keras.Variable:
    """A float32 state variable: on-read, each worker's own (see the module docstring)."""
    return keras.Variable(
        initializer=initializer,
        shape=shape,
        dtype="float32",
        trainable=False,
        synchronization="on_read",
        aggregation="only_first_replica",
        name=name,
    )


class CompressionState:
    """The state of a compressor for a list of variables.

    Create it where the variables are created (under the strategy's scope,
    in a cross-replica context). `CompressedOptimizer` makes one as
    optimizer variables, so that checkpoints of the optimizer carry it.

    Args:
        compressor: a `Compressor`.
        variables: the variables whose gradients will be exchanged, in the
            order of the gradient lists.
        min_elements: gradients with fewer elements go uncompressed.
        make_variable: ``f(shape, initializer, name) -> variable`` (default:
            `new_variable`).
        num_workers: the replicas that will exchange (default: those of the
            current strategy); some state is sized by it.

    Attributes:
        compressed: one bool per variable.
        slots: one dict per variable, state name -> variable.
    """

    def __init__(
        self,
        compressor: Any,
        variables: Sequence[Any],
        min_elements: int = config.DEFAULT_MIN_ELEMENTS,
        make_variable: MakeVariable | None = None,
        num_workers: int | None = None,
    ) -> None:
        self.compressor = compressor
        if num_workers is None:
            num_workers = tf.distribute.get_strategy().num_replicas_in_sync
        self.num_workers = num_workers
        self.min_elements = config.check_min_elements(min_elements)
        make_variable = make_variable or new_variable
        self.compressed: list[bool] = []
        self.slots: list[dict[str, Any]] = []
        for variable in variables:
            compressed = compressor.compresses(variable.shape, variable.dtype, min_elements)
            self.compressed.append(compressed)
            name = getattr(variable, "path", None) or variable.name
            name = name.replace("/", "_").replace(":", "_")
            specs = (
                state_initializers(compressor, variable.shape, num_workers) if compressed else {}
            )
            self.slots.append(
                {
                    slot: make_variable(shape, initializer, f"{slot}_{name}")
                    for slot, (shape, initializer) in specs.items()
                }
            )

    @property
    def variables(self) -> list[Any]:
        """Every state variable, variable by variable."""
        return [v for slots in self.slots for v in slots.values()]
