"""What every replica does when some replica's gradient has a NaN or Inf.

One vocabulary, ``on_nonfinite``, shared by `GradientCompressionStrategy`,
`CompressedOptimizer` and `Compressor.all_reduce`:

* ``"skip"``: no replica applies the step: no variable, optimizer slot or
  compression state changes (the optimizer's iteration counter still
  advances). Only where an optimizer applies the sums.
* ``"raise"``: every replica raises ``tf.errors.InvalidArgumentError``.
* ``"nan"``: every replica gets NaN sums for every gradient (and an
  optimizer applies them, as Keras does without compression).

The exchange sends each replica's non-finite flag with its payload, so every
replica gets the same answer from the same collective and takes the same
branch; none is left waiting in a collective the others skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from tfqnn import _validation

ON_NONFINITE = ("skip", "raise", "nan")
"""The values of ``on_nonfinite``, in the order the error messages list them."""

MESSAGE = "tfqnn: a replica had a NaN or Inf gradient (on_nonfinite='raise')."


def check(value: object, *, applies_step: bool = True) -> str:
    """Returns ``value`` if it is one of `ON_NONFINITE`.

    Args:
        value: the ``on_nonfinite`` argument.
        applies_step: False where the caller gets the sums and applies no
            step itself (`Compressor.all_reduce`): ``"skip"`` is refused there.

    Raises:
        ValueError: ``Invalid on_nonfinite=...: expected one of ...``.
    """
    if applies_step or value != "skip":
        return str(_validation.check_choice("on_nonfinite", value, ON_NONFINITE))
    raise ValueError(
        "Invalid on_nonfinite='skip': expected 'raise' or 'nan' (all_reduce applies no "
        "step to skip: wrap the optimizer in CompressedOptimizer, or use "
        "tfqnn.distribute.communicator.all_reduce, which returns the finite flag)."
    )


def apply(
    sums: Sequence[tf.Tensor | None], finite: tf.Tensor, on_nonfinite: str
) -> list[tf.Tensor | None]:
    """The sums as ``on_nonfinite`` wants them, given the agreed ``finite`` flag.

    ``"raise"``: the sums, behind an assertion of ``finite``; ``"nan"``: NaN
    where not ``finite``; ``"skip"``: unchanged (the caller skips the update).
    None entries stay None.
    """
    if on_nonfinite == "raise":
        assertion = tf.debugging.Assert(finite, [MESSAGE])
        with tf.control_dependencies([assertion]):
            return [None if s is None else tf.identity(s) for s in sums]
    if on_nonfinite == "nan":
        return [None if s is None else _nan_unless(finite, s) for s in sums]
    return list(sums)


def _nan_unless(finite: tf.Tensor, value: tf.Tensor | tf.IndexedSlices) -> tf.Tensor:
    if isinstance(value, tf.IndexedSlices):
        values = tf.where(finite, value.values, tf.constant(float("nan"), value.values.dtype))
        return tf.IndexedSlices(values, value.indices, value.dense_shape)
    return tf.where(finite, value, tf.constant(float("nan"), value.dtype))
