"""How a stream of indices is stored: fixed-length, Huffman, or sparse Huffman.

Deep Compression's storage (Han et al. 2016, arXiv:1510.00149, section 4
and figure 3): a pruned kernel stores its nonzero entries only, each as the
gap to the previous one plus its cluster index; a gap longer than 2^b gets
filler entries (gap 2^b, the zero code). Gaps and indices are then Huffman
coded. `best` picks whichever of dense Huffman and sparse Huffman is
smaller; both `report` and `save_compressed` use it, so the report's
prediction is the file's payload.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tfqnn import _bits
from tfqnn.codebook import huffman

# Gap widths b tried by the sparse storage: a step of at most 2^b.
GAP_BITS = range(1, 13)


def fixed_bits(count: int, codes: int) -> int:
    """Bits of ``count`` fixed-length indices of ceil(log2(codes)) bits (at least 1)."""
    return count * _bits.index_bits(codes)


def huffman_bits(symbols: np.ndarray, alphabet: int) -> int:
    """Bits of ``symbols`` Huffman-coded with their own counts."""
    counts = np.bincount(symbols, minlength=alphabet)
    return int(np.sum(counts * huffman.code_lengths(counts)))


def to_sparse(indices: np.ndarray, zero_code: int, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(gap - 1, code) pairs of the entries that are not ``zero_code``, fillers included.

    Trailing fillers make the last pair end fewer than 2^b entries before the
    end, so a reader can bound the kernel's size by the pairs it has read.
    """
    step = 1 << gap_bits
    positions = np.flatnonzero(indices != zero_code)
    final = int(positions[-1]) if positions.size else -1
    tail = (indices.size - 1 - final) // step
    if tail:
        positions = np.concatenate([positions, final + step * np.arange(1, tail + 1)])
    gaps = np.diff(np.concatenate([[-1], positions]))
    fillers = (gaps - 1) // step
    pairs = fillers + 1
    total = int(pairs.sum())
    gap_out = np.full(total, step - 1, dtype=np.int64)
    code_out = np.full(total, zero_code, dtype=np.int64)
    last = np.cumsum(pairs) - 1
    gap_out[last] = gaps - fillers * step - 1
    code_out[last] = indices[positions]
    return gap_out, code_out


def from_sparse(gaps: np.ndarray, codes: np.ndarray, size: int, zero_code: int) -> np.ndarray:
    """The dense indices of `to_sparse`'s pairs; ValueError when they point past ``size``."""
    positions = np.cumsum(np.asarray(gaps, dtype=np.int64) + 1) - 1
    if positions.size and positions[-1] >= size:
        raise ValueError("Invalid sparse indices: a gap points past the end of the kernel.")
    out = np.full(size, zero_code, dtype=np.int64)
    out[positions] = codes
    return out


class Plan(NamedTuple):
    """The chosen storage of one index stream and its payload in bits."""

    kind: str  # "huffman" or "sparse"
    bits: int
    gap_bits: int  # 0 for "huffman"


def best(indices: np.ndarray, codes: int, zero_code: int | None) -> Plan:
    """The smaller of dense Huffman and (when there is a zero code) sparse Huffman."""
    plan = Plan("huffman", huffman_bits(indices, codes), 0)
    if zero_code is None:
        return plan
    for b in GAP_BITS:
        gaps, sparse_codes = to_sparse(indices, zero_code, b)
        bits = huffman_bits(gaps, 1 << b) + huffman_bits(sparse_codes, codes)
        if bits < plan.bits:
            plan = Plan("sparse", bits, b)
    return plan
