"""Figures of models, runs and quantizers (matplotlib, extra ``plot``).

`summary` draws what `tfqnn.summary` prints, `pareto` accuracy against
size or latency over several runs with the front marked, `quantizer` a
quantizer's forward and backward (straight-through estimator) curves. Each
returns a `matplotlib.figure.Figure` made without pyplot, so it works on any
backend and in scripts (``fig.savefig("x.png")``).
"""

from tfqnn.plot.model_summary import summary
from tfqnn.plot.pareto import pareto, pareto_front
from tfqnn.plot.quantizer_curves import quantizer

__all__ = ["pareto", "pareto_front", "quantizer", "summary"]
