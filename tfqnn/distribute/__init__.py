"""Gradient compression for tf.distribute's MultiWorkerMirroredStrategy.

* `GradientCompressionStrategy(compressor)`: an MWMS whose Keras optimizers
  exchange compressed gradients; build and ``fit`` models under its scope.
* `CompressedOptimizer(optimizer, compressor)`: the same for one optimizer,
  under any strategy.
* `compressors`: the methods (``compressors.get("onebit_ef")``, ...), each
  with ``compress``/``decompress`` usable on one process, and
  ``compressor.all_reduce(gradients, state)`` for custom loops.
* `CompressionState`: error-feedback residuals as on-read variables.
* `communicator`: the exchange (collectives, packing, non-finite agreement);
  `packing`: bits and summable fields in int32 words.

Importing this package also works around Keras 3's broken ``model.fit``
under ``tf.distribute.MultiWorkerMirroredStrategy`` (keras-team/keras#20585):
`keras_workarounds.apply` patches two private functions of Keras'
TensorFlow trainer, so that a plain MWMS model trains too.
`keras_workarounds.is_applied()` says whether the patches are in place, and
`keras_workarounds.reason` why not. It also installs the optimizer hook
(`optimizer.install`), which leaves optimizers without compression as they
were.
"""

from tfqnn.distribute import (
    communicator,
    compressors,
    keras_workarounds,
    optimizer,
    packing,
)
from tfqnn.distribute.memory import CompressionState
from tfqnn.distribute.optimizer import CompressedOptimizer
from tfqnn.distribute.strategy import GradientCompressionStrategy

keras_workarounds.apply()
optimizer.install()

__all__ = [
    "CompressedOptimizer",
    "CompressionState",
    "GradientCompressionStrategy",
    "communicator",
    "compressors",
    "keras_workarounds",
    "optimizer",
    "packing",
]
