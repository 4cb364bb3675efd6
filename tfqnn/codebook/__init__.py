"""Model-level tools that rewrite a trained model's kernels as codebooks.

`sketch`: network sketching, each float kernel as a sum of binary bases.
"""

from tfqnn.codebook.sketch import sketch

__all__ = [
    "sketch",
]
