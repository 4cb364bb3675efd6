"""`pareto`: accuracy against size or latency over several runs, with the front marked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfqnn import _validation
from tfqnn.plot._figure import new_figure, note

UNITS = {"size": "model size (bytes)", "latency": "latency (ms)"}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: none has ``x <=`` and ``y >=``
    with one of them strict (smaller cost, higher accuracy). Sorted by x."""
    front = []
    for i, (x, y) in enumerate(points):
        beaten = any(
            (x2 <= x and y2 >= y) and (x2 < x or y2 > y)
            for j, (x2, y2) in enumerate(points)
            if j != i
        )
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def pareto(results: Mapping[str, Mapping[str, float]], x: str = "size", y: str = "accuracy") -> Any:
    """Accuracy against model size or latency for several runs, with the Pareto front.

    Each run is a point labelled with its name; the runs on the front (none
    smaller and at least as accurate) are joined by a step line and drawn
    filled. An empty ``results`` gives empty axes with a note.

    Args:
        results: ``{run name: {"accuracy": ..., "size": ..., "latency": ...}}``.
        x: the cost axis, ``"size"`` (bytes) or ``"latency"`` (ms).
        y: the quality key, ``"accuracy"`` by default.

    Returns:
        A `matplotlib.figure.Figure`.

    Raises:
        ValueError: for another ``x``, or a run without the ``x`` or ``y`` entry.
    """
    _validation.check_choice("x", x, tuple(UNITS))
    names = list(results)
    points = []
    for name in names:
        run = results[name]
        missing = [key for key in (x, y) if key not in run]
        if missing:
            raise ValueError(
                f"Invalid results[{name!r}]={dict(run)!r}: expected numbers for {missing}."
            )
        points.append((float(run[x]), float(run[y])))
    figure = new_figure(6.0, 4.5)
    ax = figure.subplots()
    ax.set_xlabel(UNITS[x])
    ax.set_ylabel(y)
    if not points:
        ax.set_title("no runs")
        note(ax, "no results to plot")
        return figure
    front = pareto_front(points)
    ax.set_title(f"{y} against {x}: {len(front)} of {len(points)} runs on the front")
    others = [i for i in range(len(points)) if i not in front]
    ax.scatter(
        [points[i][0] for i in others],
        [points[i][1] for i in others],
        facecolors="none",
        edgecolors="C0",
        label="run",
    )
    ax.scatter(
        [points[i][0] for i in front],
        [points[i][1] for i in front],
        color="C1",
        label="Pareto front",
        zorder=3,
    )
    ax.step([points[i][0] for i in front], [points[i][1] for i in front], where="post", color="C1")
    for name, (px, py) in zip(names, points):
        ax.annotate(name, (px, py), textcoords="offset points", xytext=(4, 4), fontsize="small")
    if x == "size" and max(p[0] for p in points) > 100 * min(p[0] for p in points):
        ax.set_xscale("log")
    ax.legend(fontsize="small")
    return figure
