"""Gradient compression for tf.distribute (work in progress: see issue 4).

`packing` holds the int32 bit and field packing that compressed gradients
travel in.

Importing this package also works around Keras 3's broken ``model.fit``
under ``tf.distribute.MultiWorkerMirroredStrategy`` (keras-team/keras#20585):
`keras_workarounds.apply` patches two private functions of Keras'
TensorFlow trainer, so that a plain MWMS model trains too.
`keras_workarounds.is_applied()` says whether the patches are in place, and
`keras_workarounds.reason` why not.
"""

from tfqnn.distribute import keras_workarounds, packing

keras_workarounds.apply()

__all__ = ["keras_workarounds", "packing"]
