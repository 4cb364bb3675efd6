"""`CompressionConfig`: what to compress and what to do on a non-finite step.

The settings `GradientCompressionStrategy` and `CompressedOptimizer` take,
validated once, here. The strategy exposes them as its
``compression_config``; the optimizer hook reads that attribute from the
optimizer's strategy without knowing the strategy's class.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tfqnn import _validation
from tfqnn.distribute import compressors, nonfinite
from tfqnn.distribute.defaults import DEFAULT_MIN_ELEMENTS


def check_min_elements(value: object) -> int:
    """Returns ``value`` if it is an integer >= 1 (``Invalid min_elements=...``)."""
    return _validation.check_int("min_elements", value, low=1)


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """The compressor and the policy of one compressed gradient exchange.

    Args:
        compressor: a `Compressor` or an identifier of
            `tfqnn.distribute.compressors.get` (``"onebit_ef"``, a config
            dict); stored as the `Compressor`.
        min_elements: gradients with fewer elements go uncompressed (>= 1).
        on_nonfinite: ``"skip"``, ``"raise"`` or ``"nan"`` (see
            `tfqnn.distribute.nonfinite`).

    Raises:
        ValueError: for an invalid argument, naming it.

    >>> CompressionConfig("onebit_ef", min_elements=4096)
    CompressionConfig(compressor=OneBitEF(bucket_size=512, two_phase=False, column_major=True), min_elements=4096, on_nonfinite='skip')
    """

    compressor: compressors.Compressor
    min_elements: int = DEFAULT_MIN_ELEMENTS
    on_nonfinite: str = "skip"

    def __init__(
        self,
        compressor: Any,
        min_elements: int = DEFAULT_MIN_ELEMENTS,
        on_nonfinite: str = "skip",
    ) -> None:
        # A frozen dataclass: the validated values are set once, here.
        object.__setattr__(self, "compressor", compressors.get(compressor))
        object.__setattr__(self, "min_elements", check_min_elements(min_elements))
        object.__setattr__(self, "on_nonfinite", nonfinite.check(on_nonfinite))


class ConfiguredByCompression:
    """Reads ``compressor``, ``min_elements`` and ``on_nonfinite`` from the
    ``compression_config`` attribute (the strategy and the optimizer share it)."""

    compression_config: CompressionConfig

    @property
    def compressor(self) -> compressors.Compressor:
        return self.compression_config.compressor

    @property
    def min_elements(self) -> int:
        return self.compression_config.min_elements

    @property
    def on_nonfinite(self) -> str:
        return self.compression_config.on_nonfinite
