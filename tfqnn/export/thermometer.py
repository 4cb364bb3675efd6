"""DoReFa's k-bit activations as binary bases: a thermometer or binary code for multi-basis ops.

DoReFa-Net (Zhou et al. 2016, arXiv:1606.06160) quantizes an activation to
``q = round(n clip(x, 0, 1)) / n`` with ``n = 2^k - 1``: a step function of
``x`` with ``n`` steps. With ``t_j`` the smallest float32 at which ``q``
reaches level ``j`` and ``s_j = +1`` where ``x >= t_j``, else ``-1``,

```
q = sum_j [x >= t_j] / n = 1/2 + 1/(2n) sum_j s_j
```

so a layer that reads ``q`` through a kernel ``W`` is a multi-basis layer
(docs/lite_ops.md) of ``N = n`` input bases ``s_j`` (bit 1 where
``x < t_j``, one `TfqnnQuantize` with the thresholds, or the thresholded
output of the layer before), each scaled by ``1/(2n)``, plus the constant
``1/2 conv(1, W)``, which is ``1/2 sum(W)`` per output channel and goes into
the bias. A padding pixel of ``q = 0`` (Keras's ``pad_values=0``) is
``s_j = -1`` in every basis, the op's ``pad_values=-1``; ``q = 1``
(``pad_values=1``) is ``s_j = +1``, the op's ``pad_values=1``.

The binary code (`ENCODING`, the default) writes the level's digits
instead: with ``b_i`` bit ``i`` of the level ``L = sum_j [x >= t_j]`` and
``s_i = 2 b_i - 1``,

```
q = L / n = sum_i 2^i b_i / n = 1/2 + sum_i (2^i / (2n)) s_i
```

``k`` bases instead of ``2^k - 1``, with scales ``2^i / (2n)``, the same
constant ``1/2`` and the same padding (``q = 0`` is every digit 0, every
``s_i = -1``; ``q = 1`` every digit 1). `TfqnnQuantize` (option
``encoding``) and the bitpacked output of the layer before (``output_encoding``)
write the digits from the same ``2^k - 1`` thresholds (docs/lite_ops.md).

The thresholds are found among float32 values by bisection of the formula
and then checked against the quantizer itself on the float32 values around
each of them, so ``x < t_j`` splits every float32 input as Keras's rounding
(ties to even) does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

from tfqnn.lite import spec
from tfqnn.quantizers import DoReFa

# The most activation bits exported as bases: a k-bit input costs k binary
# passes (binary digits; 2^k - 1 thermometer bases). Chosen as the widest
# input at which DoReFa-Net's layers as bases still beat the same layers as
# int8 builtins (benchmarks/dorefa_bases_latency.py, benchmarks/README.md).
MAX_BITS = 4

# How the exporter writes a k-bit input (lite.spec.ENCODINGS): "binary", k
# bases (the level's digits), or "thermometer", 2^k - 1 bases.
ENCODING = "binary"

# A binary-coded input behind a max pool (binary digits are not monotone, so
# they cannot be pooled packed): "float", the layer before writes float, the
# pool is a builtin and a TfqnnQuantize writes the digits; "thermometer", the
# reading layer takes 2^k - 1 thermometer bases, pooled packed.
AFTER_POOL = "float"

# float32 neighbours of each threshold that are checked against the quantizer.
_WINDOW = 16


@dataclasses.dataclass(frozen=True)
class Thermometer:
    """An input ``q = offset + sum_i scales[i] s_i`` of bases ``s_i`` of ``thresholds``.

    ``encoding`` "thermometer": ``s_j = -1`` where ``x < thresholds[j]``;
    "binary": ``s_i = -1`` where bit ``i`` of ``L = #{j : x >= thresholds[j]}``
    is 0 (`tfqnn.lite.spec.ENCODINGS`).
    """

    thresholds: np.ndarray  # float32 [n], increasing
    scales: np.ndarray  # float64 [bases]
    offset: float
    encoding: str = "thermometer"

    @staticmethod
    def pad_values(keras_pad_value: float) -> int | None:
        """The op's ``pad_values`` for Keras's padding value of ``q``, or None if none fits.

        ``q = 0`` is every basis at -1, ``q = 1`` every basis at +1.
        """
        return {0.0: -1, 1.0: 1}.get(float(keras_pad_value))


def dorefa_bases(
    quantizer: Any, max_bits: int | None = None, encoding: str | None = None
) -> Thermometer | None:
    """The bases of a DoReFa activation quantizer of at most `max_bits` bits, or None.

    ``max_bits`` None is `MAX_BITS`, ``encoding`` None is `ENCODING` (both
    read at each call): ``"binary"`` (k bases, scales ``2^i / (2n)``) or
    ``"thermometer"`` (``n = 2^k - 1`` bases, scales ``1 / (2n)``). For
    ``k = 1`` the two codes are the same and it is "thermometer" (an op's
    default).
    """
    encoding = spec.check_encoding("encoding", ENCODING if encoding is None else encoding)
    if type(quantizer) is not DoReFa or quantizer.mode != "activations":
        return None
    if quantizer.bits > (MAX_BITS if max_bits is None else max_bits):
        return None
    n = 2**quantizer.bits - 1
    if n > spec.MAX_BASES:
        return None  # more thresholds than an op takes
    thresholds = _checked_steps(quantizer, n)
    if thresholds is None:
        return None
    if quantizer.bits == 1:
        encoding = "thermometer"
    return Thermometer(
        thresholds=thresholds, scales=base_scales(n, encoding), offset=0.5, encoding=encoding
    )


def base_scales(n: int, encoding: str) -> np.ndarray:
    """The scales of the bases of ``n = 2^k - 1`` thresholds in ``encoding``.

    ``"thermometer"``: ``1 / (2n)`` each of n; ``"binary"``: ``2^i / (2n)``
    for the k digits.
    """
    if encoding == "binary":
        return 2.0 ** np.arange(n.bit_length()) / (2 * n)
    return np.full(n, 0.5 / n)


def _level(x: np.ndarray, n: int) -> np.ndarray:
    """DoReFa's level ``round(n clip(x, 0, 1))`` in float32 arithmetic (ties to even)."""
    clipped = np.clip(x.astype(np.float32), np.float32(0), np.float32(1))
    return np.round(clipped * np.float32(n))


def _first_at_level(level: int, n: int) -> np.float32:
    """The smallest float32 in [0, 1] whose formula level is at least `level` (bisection)."""
    low = int(np.float32(0).view(np.int32))  # positive float32 order as their bits
    high = int(np.float32(1).view(np.int32))
    while low < high:
        middle = (low + high) // 2
        value = np.array([middle], np.int32).view(np.float32)
        if _level(value, n)[0] >= level:
            high = middle
        else:
            low = middle + 1
    return np.array([low], np.int32).view(np.float32)[0]


def _checked_steps(quantizer: Any, n: int) -> np.ndarray | None:
    """The step points of `quantizer`, as the quantizer itself computes them, or None."""
    steps = np.array([_first_at_level(j, n) for j in range(1, n + 1)], np.float32)
    offsets = np.arange(-_WINDOW, _WINDOW + 1, dtype=np.int32)
    windows = (steps.view(np.int32)[:, None] + offsets[None]).view(np.float32)  # [n, 2W+1]
    q = keras.ops.convert_to_numpy(quantizer(windows, training=False)).astype(np.float64)
    levels = np.round(q * n)
    for j in range(n):
        reached = levels[j] >= j + 1
        first = int(np.argmax(reached))
        # A step inside the window, with every value after it at the level.
        if not reached.any() or first == 0 or not reached[first:].all():
            return None
        steps[j] = windows[j, first]
    if np.any(np.diff(steps) <= 0):
        return None
    return steps
