"""Canonical Huffman codes, length-limited, with numpy encoding and table decoding.

Code lengths come from Huffman's algorithm on the symbol counts; when the
longest exceeds `MAX_LENGTH` the counts are halved (rounding up, so no used
symbol vanishes) until it fits. Codes are canonical (Deflate's rule: shorter
codes first, then by symbol), so a file stores only the lengths. The average
length is within one bit of the entropy of the counts (Huffman 1952).
"""

from __future__ import annotations

import heapq

import numpy as np

MAX_LENGTH = 20


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code length of each symbol (0 for unused symbols; 1 when only one is used)."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = np.flatnonzero(counts)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used] = 1
        return lengths
    weights = counts[used]
    while True:
        found = _huffman(weights)
        if found.max() <= MAX_LENGTH:
            lengths[used] = found
            return lengths
        weights = (weights + 1) // 2


def _huffman(weights: np.ndarray) -> np.ndarray:
    """Code lengths of Huffman's algorithm for positive ``weights``."""
    heap = [(int(w), i, [i]) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    depth = np.zeros(weights.size, dtype=np.int64)
    tie = weights.size
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        members = s1 + s2
        depth[members] += 1
        heapq.heappush(heap, (w1 + w2, tie, members))
        tie += 1
    return depth


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code (an integer of ``lengths[s]`` bits) of each symbol."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    order = np.lexsort((np.arange(lengths.size), lengths))
    code = 0
    previous = 0
    for symbol in order:
        length = int(lengths[symbol])
        if length == 0:
            continue
        code <<= length - previous
        codes[symbol] = code
        code += 1
        previous = length
    return codes


def check_lengths(lengths: np.ndarray) -> bool:
    """Whether ``lengths`` describe a prefix code (Kraft sum <= 1, lengths <= MAX_LENGTH)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0 or lengths.min() < 0 or lengths.max() > MAX_LENGTH:
        return False
    used = lengths[lengths > 0]
    if used.size == 0:
        return False
    return int(np.sum(1 << (MAX_LENGTH - used))) <= 1 << MAX_LENGTH


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """The bits of ``symbols`` coded with ``lengths``: bytes (MSB first) and the bit count."""
    symbols = np.asarray(symbols, dtype=np.int64)
    codes = canonical_codes(lengths)[symbols]
    sizes = np.asarray(lengths, dtype=np.int64)[symbols]
    total = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.arange(total) - np.repeat(starts, sizes)
    shift = np.repeat(sizes, sizes) - 1 - position
    bits = (np.repeat(codes, sizes) >> shift) & 1
    return np.packbits(bits.astype(np.uint8)), total


def decode(data: np.ndarray, bit_count: int, count: int, lengths: np.ndarray) -> np.ndarray:
    """``count`` symbols decoded from the first ``bit_count`` bits of ``data``.

    Raises ValueError when the lengths are not a prefix code, the bits run
    out or a bit pattern matches no code.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if not check_lengths(lengths):
        raise ValueError("Invalid Huffman table: the code lengths are not a prefix code.")
    if bit_count > 8 * data.size or count > bit_count:
        raise ValueError("Invalid Huffman stream: fewer bits than symbols.")
    width = int(lengths.max())
    codes = canonical_codes(lengths)
    table_symbol = np.full(1 << width, -1, dtype=np.int64)
    table_length = np.zeros(1 << width, dtype=np.int64)
    for symbol in np.flatnonzero(lengths):
        shift = width - int(lengths[symbol])
        start = int(codes[symbol]) << shift
        table_symbol[start : start + (1 << shift)] = symbol
        table_length[start : start + (1 << shift)] = lengths[symbol]
    bits = np.unpackbits(data)[:bit_count].astype(np.int64)
    padded = np.concatenate([bits, np.zeros(width, dtype=np.int64)])
    window = np.zeros(bit_count, dtype=np.int64)
    for j in range(width):
        window = (window << 1) | padded[j : j + bit_count]
    symbol_at = table_symbol[window].tolist()
    length_at = table_length[window].tolist()
    out = [0] * count
    p = 0
    for i in range(count):
        if p >= bit_count:
            raise ValueError("Invalid Huffman stream: it ends before the last symbol.")
        s = symbol_at[p]
        if s < 0:
            raise ValueError("Invalid Huffman stream: a bit pattern matches no code.")
        out[i] = s
        p += length_at[p]
    if p > bit_count:
        raise ValueError("Invalid Huffman stream: the last code runs past the end.")
    return np.asarray(out, dtype=np.int64)
