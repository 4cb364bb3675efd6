"""`summary`: a model's parameters, MACs and memory per layer and precision."""

from __future__ import annotations

from typing import Any

from tfqnn._summary import summary as model_summary
from tfqnn.plot._figure import new_figure, note


def summary(model: Any) -> Any:
    """Bar charts of `tfqnn.summary`: per layer, parameters and MACs by precision, and memory.

    Three panels share the layer axis: parameters stacked by bits per
    value, MACs per sample stacked by the precision of the operation (1 bit
    where both operands are binary), and the bytes the parameters take at
    their precision. A model without quantized layers gives the same panels
    empty, with a note.

    Args:
        model: a built Keras model.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    result = model_summary(model, print_fn=None)
    quantized = [
        layer
        for layer in result.layers
        if layer.input_bits is not None or layer.weight_bits is not None
    ]
    figure = new_figure(max(6.0, 0.6 * len(result.layers) + 2), 7.5)
    axes = figure.subplots(3, 1, sharex=True)
    titles = ("parameters", "MACs per sample", "memory (bytes)")
    for ax, title in zip(axes, titles):
        ax.set_ylabel(title)
    axes[0].set_title(f"{result.name}: {result.compression_ratio:.1f}x smaller than float32")
    axes[-1].set_xlabel("layer")
    if not quantized:
        axes[0].set_title(f"{result.name}: no quantized layers")
        for ax in axes:
            note(ax, "no tfqnn quantized layer in this model")
        return figure
    names = [layer.name for layer in result.layers]
    positions = list(range(len(names)))
    every_bits = sorted({b for layer in result.layers for b in (*layer.params, *layer.macs)})
    colors = {b: f"C{i}" for i, b in enumerate(every_bits)}  # one color per precision
    for ax, field in zip(axes[:2], ("params", "macs")):
        bits = sorted({b for layer in result.layers for b in getattr(layer, field)})
        bottom = [0.0] * len(names)
        for b in bits:
            heights = [float(getattr(layer, field).get(b, 0)) for layer in result.layers]
            ax.bar(positions, heights, bottom=bottom, label=f"{b} bit", color=colors[b])
            bottom = [x + h for x, h in zip(bottom, heights)]
        ax.legend(fontsize="small", ncols=min(len(bits), 4))
    axes[2].bar(positions, [layer.memory_bytes for layer in result.layers], color="0.5")
    axes[2].set_xticks(positions, names, rotation=45, ha="right", fontsize="small")
    return figure
