"""tensorflow-model-optimization 0.8: its pruning and clustering wrappers as tfqnn.codebook's.

| tfmot | tfqnn |
|---|---|
| ``PruneLowMagnitude(layer)`` (``prune_low_magnitude``) | `tfqnn.codebook.Pruned` (the file's mask, kept) |
| ``ClusterWeights(layer)`` (``cluster_weights``) | `tfqnn.codebook.Clustered` with ``reassign="every_step"`` |
| a wrapper around a layer without kernels (``Flatten``) | the layer itself |

Pruning: tfmot computes ``kernel * mask`` and, in training, updates the mask
on its schedule. tfqnn keeps the file's mask fixed, as after
``strip_pruning``: the outputs are tfmot's, and the pruned weights stay zero
in ``fit`` (their gradient is zero; tfmot computes it, then masks the
weights again after the step). ``tfqnn.codebook.prune`` prunes further.

Clustering: in every call tfmot assigns each latent weight to its nearest
centroid (``argmin |w - c|``, the first on ties), gathers the centroids, and
passes the gradient straight through to the latent weights and summed to the
centroids: `Clustered`'s ``every_step`` mode computes the same. Per-channel
clustering, ``preserve_sparsity`` and averaged centroid gradients are
reported as unsupported.

The quantization-aware wrappers of ``quantize_model`` are mapped by
`tfqnn.interop.tfmot_qat`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tfqnn.codebook import Clustered, Pruned
from tfqnn.interop import tfmot_qat
from tfqnn.interop.report import LayerMapping, Report, WeightMap
from tfqnn.interop.weights import _short

Arrays = list[tuple[str, np.ndarray]]
LayerFactory = Callable[[dict[str, Any], str, Report], Any]

# tfmot's wrappers tfqnn maps, and those it does not map yet.
WRAPPERS = ("PruneLowMagnitude", "ClusterWeights")
NOT_YET: dict[str, str] = {
    "QuantizeWrapper": "tfmot's first quantization-aware wrapper (QuantizeWrapper, v1) "
    "is not mapped",
    "ClusterWeightsMHA": "tfmot's clustering of MultiHeadAttention is not mapped",
}
ALTERNATIVES = {
    "QuantizeWrapper": "save the model again with tfmot 0.8's quantize_model "
    "(QuantizeWrapperV2), which tfqnn maps",
}
# tf_keras weight names that Keras 3 spells differently, per layer class.
RENAMED: dict[str, dict[str, str]] = {"DepthwiseConv2D": {"depthwise_kernel": "kernel"}}
# The variables of tfmot's wrappers themselves, which tfqnn's do not keep.
PRUNING_STATE = ("pruning_step", "threshold")


def _inner_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The wrapped layer's entry, renamed to ``name``."""
    inner = config.get("layer")
    if not isinstance(inner, dict) or not isinstance(inner.get("config"), dict):
        raise ValueError("the wrapper has no wrapped layer config")  # noqa: TRY004
    return {**inner, "config": {**inner["config"], "name": name}}


def _renamed(class_name: str, arrays: Arrays, dropped: tuple[str, ...]) -> Arrays:
    """The wrapped layer's own arrays under their Keras 3 names, without ``dropped`` ones."""
    names = RENAMED.get(class_name, {})
    return [(names.get(s, s), a) for n, a in arrays if not (s := _short(n)).startswith(dropped)]


def _pruned(
    class_name: str, inner: Any, name: str, arrays: Arrays, path: str, report: Report
) -> tuple[Any, WeightMap] | None:
    short = [_short(n) for n, _ in arrays]
    by_name = {_short(n): a for n, a in arrays}
    masks = short.count("mask")
    own = [n for n in short if n not in ("mask", *PRUNING_STATE)]
    if masks == 0:
        return inner, lambda found: _renamed(class_name, found, ("mask", *PRUNING_STATE))
    renames = RENAMED.get(class_name, {})
    # The pruned weight: the one of the mask's shape among the kernels tfmot prunes.
    kernels = [n for n in own if n.endswith("kernel") and by_name[n].shape == by_name["mask"].shape]
    if masks != 1 or len(kernels) != 1:
        report.unsupported(
            path,
            f"tfmot PruneLowMagnitude of {class_name} with {masks} masks: only layers with "
            "one pruned kernel are mapped",
            "strip_pruning in tfmot: the stripped model loads",
        )
        return None
    kernel = renames.get(kernels[0], kernels[0])
    report.notice(
        "tfmot pruning schedules are not continued: the file's masks are kept fixed, as "
        "strip_pruning would (tfqnn.codebook.prune prunes further)"
    )

    def weight_map(found: Arrays) -> Arrays:
        result = _renamed(class_name, found, ("mask", *PRUNING_STATE))
        mask = [a for n, a in found if _short(n) == "mask"]
        return result + [(f"{kernel}_mask", m) for m in mask]

    return Pruned(inner, kernels=[kernel], name=name), weight_map


def _clustered(
    class_name: str,
    inner: Any,
    name: str,
    config: dict[str, Any],
    arrays: Arrays,
    path: str,
    report: Report,
) -> tuple[Any, WeightMap] | None:
    settings = {
        "preserve_sparsity": (config.get("preserve_sparsity", False), False),
        "cluster_per_channel": (config.get("cluster_per_channel", False), False),
        "cluster_gradient_aggregation": (
            config.get("cluster_gradient_aggregation", "GradientAggregation.SUM"),
            "GradientAggregation.SUM",
        ),
    }
    wrong = [f"{k}={v!r}" for k, (v, expected) in settings.items() if v != expected]
    if wrong:
        report.unsupported(
            path,
            f"tfmot ClusterWeights with {', '.join(wrong)}: only per-tensor clustering "
            "without preserve_sparsity and with summed centroid gradients is mapped",
            "strip_clustering in tfmot: the stripped model loads",
        )
        return None
    prefix = "cluster_centroids_"
    clustered = [_short(n)[len(prefix) :] for n, _ in arrays if _short(n).startswith(prefix)]
    dropped = (prefix, "pulling_indices_")
    if not clustered:
        return inner, lambda found: _renamed(class_name, found, dropped)
    renames = RENAMED.get(class_name, {})
    clusters = config.get("number_of_clusters")
    codebooks = {renames.get(n, n): {"clusters": clusters} for n in clustered}
    try:
        wrapper = Clustered(inner, codebooks, reassign="every_step", name=name)
    except (TypeError, ValueError) as error:
        report.unsupported(path, f"tfmot ClusterWeights with {clusters!r} clusters: {error}")
        return None

    def weight_map(found: Arrays) -> Arrays:
        result = _renamed(class_name, found, dropped)
        for weight_name, array in found:
            short = _short(weight_name)
            if short.startswith(prefix):
                kernel = short[len(prefix) :]
                if array.ndim != 1:
                    raise ValueError(
                        f"the centroids {short!r} of layer {name!r} have shape {array.shape}, "
                        "not (clusters,)"
                    )
                result.append((f"{renames.get(kernel, kernel)}_centroids", array[None, :, None]))
        return result

    return wrapper, weight_map


def layer(
    class_name: str,
    config: dict[str, Any],
    path: str,
    model_name: str,
    arrays: Arrays,
    factory: LayerFactory,
    report: Report,
) -> Any:
    """The tfqnn layer for a tfmot wrapper entry, or None after reporting why not.

    ``factory`` translates the wrapped layer's entry; ``arrays`` are the
    wrapper's weights in the file, which say which kernels it prunes or
    clusters. Records how the file's weights become the new layer's in
    ``report.weight_maps``.
    """
    if class_name in NOT_YET:
        report.unsupported(
            path, f"tfmot {class_name}: {NOT_YET[class_name]}", ALTERNATIVES.get(class_name, "")
        )
        return None
    if class_name in tfmot_qat.CLASSES:
        return tfmot_qat.layer(class_name, config, path, model_name, factory, report)
    name = str(config.get("name"))
    # The wrapped layer takes the wrapper's name, as tfqnn.codebook names its wrappers.
    entry = _inner_entry(config, name)
    inner_class = str(entry.get("class_name"))
    inner = factory(entry, model_name, report)
    if inner is None:
        return None
    if class_name == "PruneLowMagnitude":
        found = _pruned(inner_class, inner, name, arrays, path, report)
        target = "tfqnn.Pruned"
    else:
        found = _clustered(inner_class, inner, name, config, arrays, path, report)
        target = "tfqnn.Clustered"
    if found is None:
        return None
    result, weight_map = found
    report.weight_maps[name] = weight_map
    wrapped_name = config["layer"]["config"].get("name")
    if isinstance(wrapped_name, str) and wrapped_name != name:
        report.aliases[wrapped_name] = name  # the file names the wrapped layer's weights so
    if result is not inner:
        report.mappings.append(
            LayerMapping(path, f"tfmot.{class_name}", "", target, _describe(result))
        )
    return result


def _describe(wrapper: keras.layers.Wrapper) -> str:
    if isinstance(wrapper, Clustered):
        return ", ".join(f"{k}: {v['clusters']} clusters" for k, v in wrapper.codebooks.items())
    return ", ".join(f"{k} masked" for k in getattr(wrapper, "kernels", []))


def is_tfmot_wrapper(class_name: str) -> bool:
    """Whether a tf_keras config's class name is one of tfmot's wrappers."""
    return class_name in WRAPPERS or class_name in NOT_YET or class_name in tfmot_qat.CLASSES
