"""Damaged copies of a file's bytes, for the parsers' fuzz tests."""

import numpy as np


def truncated_or_flipped(data: bytes, rng: np.random.Generator, count: int):
    """``count`` copies of ``data``: even ones cut short, odd ones with 1 to 5 bit flips."""
    for case in range(count):
        damaged = bytearray(data)
        if case % 2 == 0:
            damaged = damaged[: int(rng.integers(0, len(damaged)))]
        else:
            for index in rng.integers(0, len(damaged), size=int(rng.integers(1, 6))):
                damaged[index] ^= 1 << int(rng.integers(0, 8))
        yield bytes(damaged)
