"""A layer that applies a quantizer to its inputs."""

from __future__ import annotations

from typing import Any

import keras

from tfqnn import quantizers
from tfqnn.layers.base import build_quantizer_weights, seed_generators
from tfqnn.quantizers import Quantizer, QuantizerLike


@keras.saving.register_keras_serializable(package="tfqnn")
class QuantActivation(keras.layers.Layer):
    """Applies ``quantizer`` to its inputs: a quantized activation.

    Args:
        quantizer: a `tfqnn.quantizers` identifier (instance, config dict or
            alias such as ``"ste_sign"``).

    Example:
    >>> tfqnn.layers.QuantActivation("ste_sign")(np.array([[-0.5, 0.5]])).numpy()
    array([[-1.,  1.]], dtype=float32)
    """

    def __init__(self, quantizer: QuantizerLike, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        resolved = quantizers.get(quantizer)
        if resolved is None:
            raise ValueError("Invalid quantizer=None: QuantActivation needs a quantizer.")
        self.quantizer: Quantizer = resolved
        self.supports_masking = True
        self.built = True
        self._quantizer_seed_generators = seed_generators([self.quantizer])
        build_quantizer_weights(self, {"quantizer": self.quantizer})

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.quantizer(inputs, training=bool(training))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["quantizer"] = quantizers.serialize(self.quantizer)
        return config
