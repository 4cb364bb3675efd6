"""Bias correction: a clustered layer's mean pre-activation restored from data.

Clustering replaces a kernel W by Q, which moves every unit's
pre-activation z = x W + b by x (Q - W). Its mean over the data does not
average out when the quantization error has a nonzero mean and the inputs
are non-negative (pixels, ReLU outputs): the cross terms a diagonal
importance (Choi et al. 2017) cannot see. Empirical bias correction
(Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization
and Bias Correction", arXiv:1906.04721, section 4.2, here from data) adds
to each unit's bias

    mean(z_float) - mean(z_clustered),

the means over the samples (and positions of a convolution), layer by layer
in the model's order, the clustered model's earlier layers already
corrected (so a correction also absorbs the shift of the layer's input).
With equal inputs x that is mean(x) (W - Q) for a Dense layer.

Output layers are left alone: a layer whose output reaches a model output
through layers without weights (an Activation, a Softmax). Restoring each
class's mean logit after a coarse codebook has shrunk the logits made the
prediction follow the class means (benchmarks/README.md, "Damped
importance, bias correction").
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tfqnn.codebook._rebuild import unwrapped
from tfqnn.codebook.wrappers import Clustered

# Samples of ``data`` that `cluster(..., bias_correction=True)` uses.
BIAS_SAMPLES = 2048


def output_layers(model: keras.Model) -> set[str]:
    """Names of the layers whose output reaches a model output through weightless layers."""
    found: set[str] = set()
    stack = [tensor._keras_history.operation for tensor in model.outputs]
    while stack:
        layer = stack.pop()
        if layer.name in found:
            continue
        found.add(layer.name)
        if layer.weights:
            continue
        for node in layer._inbound_nodes:
            stack.extend(t._keras_history.operation for t in node.input_tensors)
    return found


def correctable(layer: keras.Layer) -> bool:
    """Whether the layer inside ``layer`` has a bias vector and an ``activation`` to bypass."""
    inner = unwrapped(layer)
    bias = getattr(inner, "bias", None)
    return bias is not None and len(bias.shape) == 1 and hasattr(inner, "activation")


def correct_biases(
    original: keras.Model,
    clustered: keras.Model,
    x: Any,
    *,
    samples: int = BIAS_SAMPLES,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Adds to each hidden `Clustered` layer's bias its mean pre-activation shift, in place.

    Args:
        original: the model that was clustered (same layer names).
        clustered: `cluster`'s result; its biases are changed.
        x: input samples (the first ``samples`` are used).
        samples: how many samples of ``x``.
        batch_size: samples per forward pass.

    Returns:
        The shift added to each corrected layer's bias, by layer name. Layers
        without a bias vector (``use_bias=False``) and output layers
        (`output_layers`) are skipped.
    """
    x = np.asarray(x)[:samples]
    if x.shape[0] == 0:
        raise ValueError("Invalid data: bias correction needs at least one sample.")
    skip = output_layers(clustered)
    shifts: dict[str, np.ndarray] = {}
    for layer in clustered.layers:
        if not isinstance(layer, Clustered) or layer.name in skip or not correctable(layer):
            continue
        source = original.get_layer(layer.name)
        shift = _mean_pre_activation(original, source, x, batch_size) - _mean_pre_activation(
            clustered, layer, x, batch_size
        )
        bias = unwrapped(layer).bias
        bias.assign(np.asarray(bias) + shift.astype(bias.dtype))
        shifts[layer.name] = shift
    return shifts


def _mean_pre_activation(model: keras.Model, layer: keras.Layer, x: np.ndarray, batch: int) -> Any:
    """Mean over samples and positions of ``layer``'s output without its activation."""
    source = layer.input
    if any(source is tensor for tensor in model.inputs):
        inputs: Any = keras.ops.convert_to_tensor
    else:
        single = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        inputs = keras.Model(single, source)
    inner = unwrapped(layer)
    channel = 1 if getattr(inner, "data_format", "channels_last") == "channels_first" else -1
    activation = inner.activation
    inner.activation = keras.activations.linear
    try:
        total: Any = 0.0
        count = 0
        for start in range(0, x.shape[0], batch):
            z = np.asarray(layer(_feed(inputs, x[start : start + batch]), training=False))
            z = np.moveaxis(z, channel, -1).reshape(-1, z.shape[channel])
            total = total + z.astype(np.float64).sum(axis=0)
            count += z.shape[0]
    finally:
        inner.activation = activation
    return total / count


def _feed(inputs: Any, x: np.ndarray) -> Any:
    """The layer's input for the samples ``x`` (a sub-model, or the samples themselves)."""
    if isinstance(inputs, keras.Model):
        return inputs(x, training=False)
    return inputs(x)
