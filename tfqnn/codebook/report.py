"""`report`: the size of a clustered model, per kernel and in total.

For a kernel of n weights clustered to k centroids of b = 32 bits (Choi et
al. 2017, arXiv:1612.01543, eq. 1; Han et al. 2016 eq. 1):

    fixed-length ratio  = n b / (stages * m * ceil(log2 codes) + stages * B * k * d * b)
    Huffman ratio       = n b / (sum_i |C_i| l_i + stages * B * k * d * b)

with m = n / d indices per stage, B the blocks of per-block product
codebooks (1 otherwise), ``codes`` = k plus the zero code of a pruned
kernel, and l_i the Huffman code length of index i. A codebook shared by
several layers (``scope="model"``) counts once, with the first kernel that
uses it; the others add only their indices. For a pruned
kernel the Huffman size is the smaller of dense and Deep Compression's
sparse storage (`storage.best`), what `save_compressed` writes. Entropy is
of the indices, in bits per weight. The totals add every other parameter
at its stored precision (32 bits for float32).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tfqnn.codebook import _arrays, _rebuild, storage
from tfqnn.codebook.wrappers import Clustered, kernel_variable

FLOAT_BITS = 32


@dataclasses.dataclass
class KernelReport:
    """The size of one clustered kernel (bits unless named otherwise)."""

    layer: str
    kernel: str
    weights: int
    nonzeros: int
    clusters: int
    stages: int
    subvector_size: int
    index_bits: int
    codebook_bits: int
    entropy: float
    fixed_bits: int
    huffman_bits: int
    storage: str
    shared_codebook: bool = False  # its codebook is the model's shared one

    @property
    def fixed_ratio(self) -> float:
        """Float32 size over fixed-length size."""
        return FLOAT_BITS * self.weights / self.fixed_bits

    @property
    def huffman_ratio(self) -> float:
        """Float32 size over Huffman-coded size."""
        return FLOAT_BITS * self.weights / self.huffman_bits


@dataclasses.dataclass
class CodebookReport:
    """Per-kernel reports and the model's totals."""

    kernels: list[KernelReport]
    other_bits: int
    float_bits: int

    @property
    def fixed_bits(self) -> int:
        """The model's bits with fixed-length indices."""
        return sum(k.fixed_bits for k in self.kernels) + self.other_bits

    @property
    def huffman_bits(self) -> int:
        """The model's bits with Huffman-coded indices."""
        return sum(k.huffman_bits for k in self.kernels) + self.other_bits

    @property
    def fixed_ratio(self) -> float:
        """The float32 model's size over the fixed-length size."""
        return self.float_bits / self.fixed_bits

    @property
    def huffman_ratio(self) -> float:
        """The float32 model's size over the Huffman-coded size."""
        return self.float_bits / self.huffman_bits

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), ratios included."""
        kernels = [
            {
                **dataclasses.asdict(k),
                "fixed_ratio": k.fixed_ratio,
                "huffman_ratio": k.huffman_ratio,
            }
            for k in self.kernels
        ]
        return {
            "kernels": kernels,
            "other_bits": self.other_bits,
            "float_bits": self.float_bits,
            "fixed_bits": self.fixed_bits,
            "huffman_bits": self.huffman_bits,
            "fixed_ratio": self.fixed_ratio,
            "huffman_ratio": self.huffman_ratio,
        }

    def __str__(self) -> str:
        header = (
            f"{'kernel':<28}{'weights':>10}{'nonzero':>10}{'k':>7}{'idx bits':>9}"
            f"{'entropy':>9}{'fixed':>9}{'Huffman':>9}  storage"
        )
        lines = [header, "-" * len(header)]
        for k in self.kernels:
            lines.append(
                f"{k.layer + '/' + k.kernel:<28}{k.weights:>10}{k.nonzeros:>10}{k.clusters:>7}"
                f"{k.index_bits:>9}{k.entropy:>9.3f}{k.fixed_ratio:>8.1f}x"
                f"{k.huffman_ratio:>8.1f}x  {k.storage}"
            )
        lines.append("-" * len(header))
        lines.append(
            f"{'total (other params at 32 bits)':<56}{'':>18}{self.fixed_ratio:>8.1f}x"
            f"{self.huffman_ratio:>8.1f}x"
        )
        lines.append(
            f"float32 {self.float_bits / 8 / 1024:.1f} KiB, fixed-length "
            f"{self.fixed_bits / 8 / 1024:.1f} KiB, Huffman {self.huffman_bits / 8 / 1024:.1f} KiB"
        )
        return "\n".join(lines)


def kernel_report(layer: Clustered, name: str, *, count_codebook: bool = True) -> KernelReport:
    """The size of kernel ``name`` of a `Clustered` layer.

    ``count_codebook=False``: the codebook (a shared one, counted with an
    earlier kernel) adds no bits.
    """
    spec = layer.codebooks[name]
    _, indices = layer.codebook(name)
    stages, k, d = spec["stages"], spec["clusters"], spec["subvector_size"]
    codes = k + int(spec["pruned"])
    zero_code = k if spec["pruned"] else None
    weights = int(np.prod(layer.kernel_shapes[name]))
    codebook_bits = stages * spec["blocks"] * k * d * FLOAT_BITS if count_codebook else 0
    plans = [storage.best(stream, codes, zero_code) for stream in indices]
    entropy = sum(_arrays.entropy(stream, codes) for stream in indices) / d
    decoded = np.asarray(layer.decoded_kernel(name, False))
    return KernelReport(
        layer=layer.name,
        kernel=name,
        weights=weights,
        nonzeros=int(np.count_nonzero(decoded)),
        clusters=k,
        stages=stages,
        subvector_size=d,
        index_bits=layer.index_bits(name),
        codebook_bits=codebook_bits,
        entropy=entropy,
        fixed_bits=stages * storage.fixed_bits(indices.shape[1], codes) + codebook_bits,
        huffman_bits=sum(p.bits for p in plans) + codebook_bits,
        storage="+".join(sorted({p.kind for p in plans})),
        shared_codebook=layer.shared is not None,
    )


def report(model: keras.Model, *, print_fn: Callable[[str], Any] | None = print) -> CodebookReport:
    """Sizes of ``model``'s clustered kernels and of the whole model.

    Args:
        model: a model from `cluster` (other layers count at their precision).
        print_fn: called with the table; None prints nothing.

    Returns:
        A `CodebookReport` (``to_dict()`` gives plain data).
    """
    model = _rebuild.check_model(model)
    kernels = []
    other_bits = 0
    float_bits = 0
    counted: set[int] = set()  # shared codebooks already counted
    for layer in model.layers:
        replaced = set()
        if isinstance(layer, Clustered):
            for name in layer.kernels:
                first = layer.shared is None or id(layer.shared) not in counted
                if layer.shared is not None:
                    counted.add(id(layer.shared))
                kernels.append(kernel_report(layer, name, count_codebook=first))
                float_bits += FLOAT_BITS * kernels[-1].weights
                replaced.add(id(kernel_variable(layer, name)))
        for variable in _rebuild.unwrapped(layer).weights:  # a shared codebook is not in here
            if id(variable) in replaced:
                continue
            size = int(np.prod(variable.shape))
            other_bits += size * np.dtype(variable.dtype).itemsize * 8
            float_bits += size * np.dtype(variable.dtype).itemsize * 8
    result = CodebookReport(kernels, other_bits, float_bits)
    if print_fn is not None:
        print_fn(str(result))
    return result
