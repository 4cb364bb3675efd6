"""Optimizers for binarized networks (Keras 3 optimizers, saved with the model).

`Bop` flips binary weights by the sign of a gradient average (Helwegen et
al. 2019); `CaseOptimizer` gives each variable the first optimizer whose
predicate holds, so binary kernels can train with `Bop` and the rest with
Adam; `is_binary_variable` is the predicate for the latent weights of binary
kernels.

Example:
>>> optimizer = tfqnn.optimizers.CaseOptimizer(
...     (tfqnn.optimizers.is_binary_variable, tfqnn.optimizers.Bop()),
...     default_optimizer=keras.optimizers.Adam(0.01))
"""

from tfqnn.optimizers.bop import Bop
from tfqnn.optimizers.case import CaseOptimizer
from tfqnn.optimizers.predicates import is_binary_variable

__all__ = ["Bop", "CaseOptimizer", "is_binary_variable"]
