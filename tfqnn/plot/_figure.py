"""A pyplot-free matplotlib Figure, and the note drawn on empty charts."""

from __future__ import annotations

from typing import Any

INSTALL_HINT = "tfqnn.plot draws with matplotlib: pip install 'tfqnn[plot]' (or matplotlib)."


def new_figure(width: float, height: float) -> Any:
    """A `matplotlib.figure.Figure` with an Agg canvas (no pyplot, no display)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as error:
        raise ImportError(INSTALL_HINT) from error
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def note(ax: Any, text: str) -> None:
    """Writes ``text`` in the middle of an empty axes."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
