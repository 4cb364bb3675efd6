"""Per-variable state of compressed exchanges: error-feedback residuals and
PowerSGD's warm-start factor.

Each worker keeps its own residual, so the state lives in
``synchronization="on_read"`` variables: assigning them inside a replica
context changes the local copy only, with no collective (a mirrored variable
would raise or silently all-reduce; research note, pitfall 4). They are
``aggregation="only_first_replica"``: a checkpoint of a worker saves and
restores that worker's own values (MultiWorkerMirroredStrategy has one
replica per worker).
"""

import keras
import tensorflow as tf

from tfqnn import _validation


def is_compressible(compressor, shape, dtype, min_elements):
    """Whether a dense gradient of this shape and dtype is compressed."""
    shape = tf.TensorShape(shape)
    return (
        tf.as_dtype(dtype).is_floating
        and shape.is_fully_defined()
        and shape.num_elements() >= min_elements
        and compressor.accepts(shape)
    )


def state_initializers(compressor, shape, num_workers):
    """Name -> (shape, initializer) of the state one compressed variable needs."""
    specs = {"residual": (tuple(shape), "zeros")} if compressor.error_feedback else {}
    specs.update(compressor.extra_state(shape, num_workers))
    return specs


def _new_variable(shape, initializer, name):
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
            an on-read `keras.Variable`).
        num_workers: the replicas that will exchange (default: those of the
            current strategy); some state is sized by it.

    Attributes:
        compressed: one bool per variable.
        slots: one dict per variable, state name -> variable.
    """

    def __init__(
        self, compressor, variables, min_elements=1024, make_variable=None, num_workers=None
    ):
        self.compressor = compressor
        if num_workers is None:
            num_workers = tf.distribute.get_strategy().num_replicas_in_sync
        self.num_workers = num_workers
        self.min_elements = _validation.check_int("min_elements", min_elements, low=1)
        make_variable = make_variable or _new_variable
        self.compressed, self.slots = [], []
        for variable in variables:
            compressed = is_compressible(compressor, variable.shape, variable.dtype, min_elements)
            self.compressed.append(compressed)
            name = getattr(variable, "path", None) or variable.name
            name = name.replace("/", "_").replace(":", "_")
            self.slots.append(
                {
                    slot: make_variable(shape, initializer, f"{slot}_{name}")
                    for slot, (shape, initializer) in (
                        state_initializers(compressor, variable.shape, num_workers).items()
                        if compressed
                        else ()
                    )
                }
            )

    @property
    def variables(self):
        return [v for slots in self.slots for v in slots.values()]
