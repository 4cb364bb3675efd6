"""Compression inside Keras' optimizer: `CompressedOptimizer` and the hook.

Keras 3's TensorFlow optimizer all-reduces the gradients in
``TFOptimizer._backend_update_step`` (``_all_reduce_sum_gradients``, then
one ``update_step`` per variable), after its own unscaling, clipping and
weight decay. `install` replaces that method once, for every Keras
optimizer: an optimizer with a `Compression` attached (by
`CompressedOptimizer`, or when built under a `GradientCompressionStrategy`)
exchanges its gradients with `communicator.all_reduce`; any other optimizer
runs Keras' own code. Metrics, BatchNorm statistics and losses use other
all-reduces and stay exact.
"""

import functools
import warnings

import keras
import tensorflow as tf

from tfqnn import _validation
from tfqnn.distribute import communicator, compressors
from tfqnn.distribute.memory import CompressionState

ON_NONFINITE = ("skip", "raise")
_ATTRIBUTE = "_tfqnn_compression"


class Compression:
    """A compressor, its per-variable state and the step's policy, attached
    to one optimizer (its attribute ``_tfqnn_compression``).

    Args:
        compressor: a `Compressor`.
        variables: the optimizer's trainable variables.
        make_variable: creates the state variables (see `CompressionState`).
        min_elements: gradients with fewer elements go uncompressed.
        on_nonfinite: ``"skip"``: when any worker has a NaN or Inf gradient,
            every worker skips the step (no variable, slot or residual
            changes; the iteration counter still advances). ``"raise"``:
            every worker raises ``InvalidArgumentError``.
    """

    def __init__(
        self, compressor, variables, make_variable=None, min_elements=1024, on_nonfinite="skip"
    ):
        self.compressor = compressor
        self.on_nonfinite = _validation.check_choice("on_nonfinite", on_nonfinite, ON_NONFINITE)
        self.state = CompressionState(compressor, variables, min_elements, make_variable)

    def update_step(self, optimizer, grads, trainable_variables, learning_rate):
        """`TFOptimizer._backend_update_step` with the compressed exchange."""
        indices = [optimizer._get_variable_index(v) for v in trainable_variables]
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        sums, finite = communicator.all_reduce(
            self.compressor,
            grads,
            state=self.state,
            indices=indices,
            step=optimizer.iterations.value,
        )
        if self.on_nonfinite == "raise":
            check = tf.debugging.Assert(
                finite,
                [
                    (
                        "tfqnn: a worker had a NaN or Inf gradient (on_nonfinite='raise'); "
                        "no worker applied the step."
                    )
                ],
            )
            with tf.control_dependencies([check]):
                sums = [tf.identity(s) for s in sums]
        tf.__internal__.distribute.interim.maybe_merge_call(
            functools.partial(_update_if_finite, optimizer),
            optimizer._distribution_strategy,
            list(zip(sums, variables)),
            learning_rate,
            finite,
        )


def _update_if_finite(optimizer, distribution, grads_and_vars, learning_rate, finite):
    def update(variable, gradient, learning_rate, finite):
        def apply():
            optimizer.update_step(gradient, variable, learning_rate)
            return tf.constant(True)

        return tf.cond(finite, apply, lambda: tf.constant(False))

    for gradient, variable in grads_and_vars:
        distribution.extended.update(
            variable, update, args=(gradient, learning_rate, finite), group=False
        )


def state_variable_maker(optimizer):
    """Creates state variables that ``optimizer`` tracks, so that its
    checkpoints and ``.weights.h5`` files carry them."""

    def make(shape, initializer, name):
        with keras.name_scope(optimizer.name, caller=optimizer):
            variable = keras.Variable(
                initializer=initializer,
                shape=shape,
                dtype="float32",
                trainable=False,
                synchronization="on_read",
                aggregation="only_first_replica",
                name=name,
            )
        optimizer._track_variable(variable)
        return variable

    return make


def warn_local_clipping(optimizer):
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


# --- the hook --------------------------------------------------------------


def _tf_optimizer_class():
    from keras.src.backend.tensorflow.optimizer import TFOptimizer

    return TFOptimizer


_original = {}


def _backend_update_step(self, grads, trainable_variables, learning_rate):
    compression = getattr(self, _ATTRIBUTE, None)
    if compression is None:
        return _original["_backend_update_step"](self, grads, trainable_variables, learning_rate)
    return compression.update_step(self, grads, trainable_variables, learning_rate)


def _build(self, variables):
    _original["build"](self, variables)
    from tfqnn.distribute.strategy import GradientCompressionStrategy

    strategy = getattr(self, "_distribution_strategy", None)
    if (
        isinstance(strategy, GradientCompressionStrategy)
        and getattr(self, _ATTRIBUTE, None) is None
        and not hasattr(self, "inner_optimizer")
    ):  # wrappers delegate to their inner one
        warn_local_clipping(self)
        setattr(
            self,
            _ATTRIBUTE,
            Compression(
                strategy.compressor,
                variables,
                state_variable_maker(self),
                strategy.min_elements,
                strategy.on_nonfinite,
            ),
        )


def install():
    """Replaces ``TFOptimizer._backend_update_step`` and ``build`` (idempotent).

    Raises:
        RuntimeError: when this Keras has no such private methods.
    """
    cls = _tf_optimizer_class()
    if _original:
        return
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


# --- the wrapper -----------------------------------------------------------


@keras.saving.register_keras_serializable(package="tfqnn")
class CompressedOptimizer(keras.optimizers.Optimizer):
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
        on_nonfinite: ``"skip"`` or ``"raise"`` (see `Compression`).

    >>> import keras
    >>> opt = CompressedOptimizer(keras.optimizers.SGD(0.1), "onebit_ef")
    >>> opt.compressor
    OneBitEF(bucket_size=512, two_phase=False, column_major=True)
    """

    def __init__(
        self, optimizer, compressor, min_elements=1024, on_nonfinite="skip", name=None, **kwargs
    ):
        unsupported = {k: v for k, v in kwargs.items() if v not in (None, False)}
        if unsupported:
            raise ValueError(
                f"CompressedOptimizer does not take {', '.join(unsupported)}: set "
                "them on the inner optimizer."
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = keras.optimizers.get(optimizer)
        self.compressor = compressors.get(compressor)
        self.min_elements = _validation.check_int("min_elements", min_elements, low=1)
        self.on_nonfinite = _validation.check_choice("on_nonfinite", on_nonfinite, ON_NONFINITE)
        warn_local_clipping(self.inner_optimizer)

    def build(self, var_list):
        if self.built:
            return
        compression = Compression(
            self.compressor,
            var_list,
            state_variable_maker(self),
            self.min_elements,
            self.on_nonfinite,
        )
        setattr(self.inner_optimizer, _ATTRIBUTE, compression)
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def compression_state(self):
        """The `CompressionState` (None before `build`)."""
        compression = getattr(self.inner_optimizer, _ATTRIBUTE, None)
        return None if compression is None else compression.state

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            if trainable_variables is None:
                raise ValueError(
                    "Call optimizer.build(trainable_variables) first, or pass trainable_variables."
                )
            with keras.name_scope(self.name, caller=self):
                self.build(list(trainable_variables))
        return self.inner_optimizer.apply(grads, trainable_variables)

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def get_config(self):
        return {
            "name": self.name,
            "optimizer": keras.optimizers.serialize(self.inner_optimizer),
            "compressor": compressors.serialize(self.compressor),
            "min_elements": self.min_elements,
            "on_nonfinite": self.on_nonfinite,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.optimizers.deserialize(
            config["optimizer"], custom_objects=custom_objects
        )
        config["compressor"] = compressors.deserialize(
            config["compressor"], custom_objects=custom_objects
        )
        return cls(**config)
