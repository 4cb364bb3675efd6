"""Activations used beside quantizers."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfqnn")
def hard_tanh(x: keras.KerasTensor) -> keras.KerasTensor:
    """``clip(x, -1, 1)``: the identity on [-1, 1], the STE region of sign.

    Courbariaux et al. 2016 use it as the real-valued stand-in of sign.
    """
    return ops.clip(x, -1.0, 1.0)


@keras.saving.register_keras_serializable(package="tfqnn")
def tf_keras_hard_sigmoid(x: keras.KerasTensor) -> keras.KerasTensor:
    """``clip(0.2 x + 0.5, 0, 1)``: the ``hard_sigmoid`` of tf_keras (Keras 2).

    Keras 3's ``hard_sigmoid`` is ``clip(x / 6 + 1 / 2, 0, 1)``; layers
    loaded from tf_keras files keep their outputs with this one.
    """
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="tfqnn")
def hard_sigmoid_half(x: keras.KerasTensor) -> keras.KerasTensor:
    """``clip((x + 1) / 2, 0, 1)``: the hard sigmoid of BinaryConnect.

    Courbariaux et al. 2015 (arXiv:1511.00363) define it so; QKeras names it
    ``hard_sigmoid``, the default ``recurrent_activation`` of its recurrent
    layers. ``2 hard_sigmoid_half(x) - 1`` is `hard_tanh`.
    """
    return ops.clip(0.5 * x + 0.5, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="tfqnn")
def clip_unit_interval(x: keras.KerasTensor) -> keras.KerasTensor:
    """``clip(x, 0, 1)``: DoReFa-Net's bound of activations before quantizing them.

    Zhou et al. 2016 (arXiv:1606.06160); larq-zoo's DoReFaNet names it
    ``clip_by_value_activation``. The gradient passes on [0, 1], ends included.
    """
    return ops.clip(x, 0.0, 1.0)
