"""Widths of fixed-length codes, shared by `tfqnn.codebook` and `tfqnn.lite`."""

from __future__ import annotations


def index_bits(codes: int) -> int:
    """``ceil(log2(codes))``, at least 1: the bits of a fixed-length index into ``codes`` entries."""
    return max(1, (int(codes) - 1).bit_length())
