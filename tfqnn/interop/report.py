"""What `tfqnn.interop.load` mapped, what it ignored, and what it could not map."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

# How a file's weights for one layer, ``(name, array)`` pairs, become the
# new layer's (under its variables' names), where they differ (tfmot's wrappers).
WeightMap: TypeAlias = Callable[[list[tuple[str, np.ndarray]]], list[tuple[str, np.ndarray]]]


@dataclass(frozen=True)
class LayerMapping:
    """One source layer and the tfqnn layer it became.

    Attributes:
        path: the layer's place in the model (``model_name/layer_name``).
        source: the source class, ``"larq.QuantConv2D"`` or ``"keras.Dense"``.
        source_quantizers: the source quantizers, ``"kernel_quantizer=SteSign(clip_value=1.0)"``.
        target: the tfqnn or Keras 3 class it became.
        target_quantizers: the tfqnn quantizers, written as their ``repr``.
    """

    path: str
    source: str
    source_quantizers: str
    target: str
    target_quantizers: str


@dataclass(frozen=True)
class Issue:
    """A layer or quantizer that cannot be mapped, where, and what to use instead."""

    path: str
    what: str
    alternative: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.what}"
        return f"{text} (tfqnn alternative: {self.alternative})" if self.alternative else text


@dataclass
class Report:
    """Collects the mappings, the notices and the issues of one load.

    ``weight_maps``: per layer name, the `WeightMap` of the layers whose
    weights the file holds under other names or shapes. ``aliases``: the
    names the file gives the weights of a wrapped layer (tfmot's wrappers
    name them after the layer they wrap), and the layer that holds them.
    ``safe_mode``: `tfqnn.interop.load`'s; False lets Lambda layers' Python
    bytecode be loaded (`tfqnn.interop.lambdas`).
    """

    mappings: list[LayerMapping] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    weight_maps: dict[str, WeightMap] = field(default_factory=dict, repr=False)
    aliases: dict[str, str] = field(default_factory=dict, repr=False)
    safe_mode: bool = True

    def unsupported(self, path: str, what: str, alternative: str = "") -> None:
        """Records something that cannot be mapped; `raise_issues` reports them all at once."""
        self.issues.append(Issue(path, what, alternative))

    def notice(self, text: str) -> None:
        """Records something ignored on purpose (once per text)."""
        if text not in self.notices:
            self.notices.append(text)

    def raise_issues(self, source: str) -> None:
        """Raises a ValueError listing every issue, if there is any."""
        if self.issues:
            lines = "\n".join(f"  - {issue}" for issue in self.issues)
            raise ValueError(
                f"Cannot load {source}: {len(self.issues)} unsupported layer(s) or "
                f"quantizer(s):\n{lines}"
            )

    def table(self) -> str:
        """The mappings as a text table, then the notices."""
        header = ("layer", "source", "source quantizers", "tfqnn", "tfqnn quantizers")
        rows = [header] + [
            (m.path, m.source, m.source_quantizers, m.target, m.target_quantizers)
            for m in self.mappings
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines += [f"notice: {text}" for text in self.notices]
        return "\n".join(lines)
