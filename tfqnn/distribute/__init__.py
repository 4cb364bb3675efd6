"""Gradient compression for tf.distribute's MultiWorkerMirroredStrategy.

* `GradientCompressionStrategy(compressor)`: an MWMS whose Keras optimizers
  exchange compressed gradients; build and ``fit`` models under its scope.
* `CompressedOptimizer(optimizer, compressor)`: the same for one optimizer,
  under any strategy.
* `CompressionConfig`: the validated settings both take (compressor,
  ``min_elements``, ``on_nonfinite``); `nonfinite`: what every replica does
  when a gradient has a NaN or Inf.
* `compressors`: the methods (``compressors.get("onebit_ef")``, ...), each
  with ``compress``/``decompress`` usable on one process, and
  ``compressor.all_reduce(gradients, state)`` for custom loops.
* `CompressionState`: error-feedback residuals as on-read variables.
* `communicator`: the exchange (payloads, shared statistics, non-finite
  agreement), built on the primitives of `collectives`; `packing`: bits and
  summable fields in int32 words.

Importing this package also works around Keras 3's broken ``model.fit``
under ``tf.distribute.MultiWorkerMirroredStrategy`` (keras-team/keras#20585):
`keras_workarounds.apply` patches two private functions of Keras'
TensorFlow trainer, so that a plain MWMS model trains too.
`keras_workarounds.is_applied()` says whether the patches are in place, and
`keras_workarounds.reason` why not. Constructing a `CompressedOptimizer` or
a `GradientCompressionStrategy` installs the optimizer hook (once), which
leaves optimizers without compression as they were.
"""

from tfqnn.distribute import (
    collectives,
    communicator,
    compressors,
    keras_workarounds,
    nonfinite,
    optimizer,
    packing,
)
from tfqnn.distribute.config import CompressionConfig
from tfqnn.distribute.optimizer import CompressedOptimizer
from tfqnn.distribute.state import CompressionState
from tfqnn.distribute.strategy import GradientCompressionStrategy

keras_workarounds.apply()

__all__ = [
    "CompressedOptimizer",
    "CompressionConfig",
    "CompressionState",
    "GradientCompressionStrategy",
    "collectives",
    "communicator",
    "compressors",
    "keras_workarounds",
    "nonfinite",
    "optimizer",
    "packing",
]
