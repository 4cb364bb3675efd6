"""`cluster`: replace a model's kernels with codebooks and indices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tfqnn import _validation
from tfqnn.codebook import _arrays, _rebuild
from tfqnn.codebook import bias_correction as bias_module
from tfqnn.codebook import damping as damping_module
from tfqnn.codebook import importance as importance_module
from tfqnn.codebook.codebook import Codebook
from tfqnn.codebook.ecsq import ecsq
from tfqnn.codebook.kmeans import INITS, kmeans
from tfqnn.codebook.optimal import optimal
from tfqnn.codebook.product import block_ids, product
from tfqnn.codebook.residual import residual
from tfqnn.codebook.shared import SharedCodebook
from tfqnn.codebook.uniform import uniform
from tfqnn.codebook.weighted_entropy import weighted_entropy
from tfqnn.codebook.wrappers import REASSIGN, Clustered, Pruned, kernel_names, kernel_variable

METHODS = ("kmeans", "optimal", "uniform", "ecsq", "weighted_entropy", "product", "residual")
SCALAR_METHODS = METHODS[:5]
SCOPES = ("layer", "model")
IMPORTANCE = (None, "hessian", "adam")


def cluster(
    model: keras.Model,
    clusters: int = 16,
    *,
    method: str = "kmeans",
    init: str = "linear",
    scope: str = "layer",
    importance: str | None = None,
    damping: float | str = 0.0,
    data: Any = None,
    validation_data: Any = None,
    damping_metric: str = "accuracy",
    bias_correction: bool | str = False,
    reassign: str = "never",
    layers: Sequence[str] | None = None,
    target_bits: float | None = None,
    lagrange_multiplier: float | None = None,
    subvector_size: int = 4,
    axis: int = -1,
    blocks: int = 1,
    stages: int = 2,
    seed: int | None = 0,
    verbose: int | str = "auto",
) -> keras.Model:
    """A copy of ``model`` whose selected kernels are a codebook plus indices.

    Each selected layer becomes a `Clustered` wrapper around a layer of the
    same class and config; all other weights are copied. The result is
    compiled as ``model`` was (Keras's ``clone_model`` copies the compile
    settings, with a fresh optimizer); compile it again to choose the
    fine-tuning optimizer. ``fit`` fine-tunes the centroids (Han et al.
    2016: the gradient of a centroid is the sum of its members' gradients).
    Kernels of `prune`d layers keep their zeros as a fixed zero code.
    Only the model's own layers are selected, not those of nested models.

    Args:
        model: a built Sequential or functional model.
        clusters: k per kernel (per stage for ``"residual"``), in [2, 65536].
        method: ``"kmeans"`` (Lloyd from ``init``), ``"optimal"`` (exact
            1-D k-means), ``"uniform"``, ``"ecsq"`` (with ``target_bits`` or
            ``lagrange_multiplier``), ``"weighted_entropy"``, ``"product"``
            (``subvector_size``, ``axis``) or ``"residual"`` (``stages``,
            ``subvector_size``, ``axis``; d = 1 unless ``subvector_size`` is
            given for it).
        init: the k-means initialisation: ``"linear"``, ``"density"``,
            ``"random"`` or ``"kmeans++"``.
        scope: ``"layer"`` (a codebook per kernel) or ``"model"`` (one
            codebook computed from all selected kernels together, Choi
            2017; scalar methods): the layers then share one centroid
            variable (a `SharedCodebook`), so fine-tuning moves each
            centroid by the sum of its members' gradients over all layers.
        importance: None, ``"hessian"`` (a diagonal Hessian estimate from
            ``data``) or ``"adam"`` (from the compiled model's trained Adam
            optimizer); weights the centroid means (kmeans, optimal,
            uniform, ecsq, product).
        damping: lambda >= 0, the importance used is h + lambda * mean(h),
            the mean over the weights that share a codebook (one kernel, or
            all selected kernels at ``scope="model"``): the damping of
            Optimal Brain Surgeon and GPTQ. 0 is the pure estimate; as lambda
            grows the weighting tends to plain k-means (uniform
            importance). Needs ``importance``. ``"auto"``: clusters once
            for each lambda of `damping.GRID` (0 to 10 and infinity, which is
            plain k-means), scores each result before fine-tuning on
            ``validation_data`` by ``damping_metric`` and returns the best
            (plain k-means on ties); the returned model's ``chosen_damping``
            holds its lambda (``math.inf`` for plain k-means). On
            ``validation_data`` it is therefore never worse than plain
            k-means by that score; after fine-tuning and on other data it
            can be.
        data: ``(x, y)`` for ``importance="hessian"`` (its first
            `importance.HESSIAN_SAMPLES`) and ``bias_correction`` (its first
            `bias_correction.BIAS_SAMPLES` inputs; ``x`` alone is enough
            there).
        validation_data: ``(x, y)`` held-out samples for ``damping="auto"``
            (not those of ``data``, nor the test set).
        damping_metric: ``damping="auto"``'s score: ``"accuracy"`` (the
            largest output is the integer or one-hot label) or ``"loss"``
            (the model's compiled loss, lower is better).
        bias_correction: after clustering, add to each hidden clustered
            layer's bias the shift of its mean pre-activation over ``data``,
            mean(z_float) - mean(z_clustered), layer by layer
            (`bias_correction.correct_biases`; output layers and layers
            without a bias are skipped). With ``damping="auto"`` every
            candidate is corrected before it is scored. ``"auto"``: each
            candidate is scored uncorrected and corrected (the uncorrected
            first, winning ties), the returned model's
            ``chosen_bias_correction`` says which won; needs
            ``validation_data``.
        reassign: ``"never"`` (fixed assignments) or ``"every_step"``
            (latent weights reassigned each step, straight-through).
        layers: names of the layers to cluster; all layers with kernels
            when None.
        target_bits, lagrange_multiplier: ``"ecsq"``'s constraint.
        subvector_size, axis: sub-vectors of ``"product"`` (and ``"residual"``).
        blocks: ``"product"``'s codebooks per kernel: 1 (one per layer) or B,
            one per block of output channels (the kernel's last axis cut
            into B equal blocks, Gong 2014; `product.block_ids`).
        stages: the stages of ``"residual"``.
        seed: seed of random initialisations.
        verbose: ``"auto"`` or 1 shows a Keras progress bar over the
            kernels (``"model"`` scope: one step), 2 prints a line per
            kernel, 0 nothing.
    """
    model = _rebuild.check_model(model)
    clusters = _arrays.check_clusters(clusters)
    _validation.check_choice("method", method, METHODS)
    _validation.check_choice("init", init, INITS)
    _validation.check_choice("scope", scope, SCOPES)
    _validation.check_choice("importance", importance, IMPORTANCE)
    _validation.check_choice("reassign", reassign, REASSIGN)
    verbose = _validation.check_verbose(verbose)
    if not (isinstance(damping, str) and damping == "auto"):
        try:
            damping = _validation.check_number("damping", damping, non_negative=True)
        except ValueError:
            raise ValueError(
                f"Invalid damping={damping!r}: expected a non-negative number or 'auto'."
            ) from None
    if damping and importance is None:
        raise ValueError(
            f"Invalid damping={damping!r} with importance=None: expected 0 "
            "(damping mixes the importance with its mean)."
        )
    if importance == "hessian" and data is None:
        raise ValueError("Invalid data=None: importance='hessian' needs data=(x, y).")
    _validation.check_choice("damping_metric", damping_metric, damping_module.METRICS)
    if not (isinstance(bias_correction, str) and bias_correction == "auto"):
        try:
            bias_correction = _validation.check_bool("bias_correction", bias_correction)
        except ValueError:
            raise ValueError(
                f"Invalid bias_correction={bias_correction!r}: expected True, False or 'auto'."
            ) from None
    if bias_correction and data is None:
        raise ValueError(
            f"Invalid data=None: bias_correction={bias_correction!r} needs data=(x, y) or x."
        )
    bias_x = None
    if bias_correction:
        bias_x = data[0] if isinstance(data, (tuple, list)) else data
    choosing = damping == "auto" or bias_correction == "auto"
    if choosing and validation_data is None:
        raise ValueError(
            "Invalid validation_data=None: damping='auto' and bias_correction='auto' need "
            "validation_data=(x, y) (held-out samples on which each candidate is scored)."
        )
    validation = None
    if choosing:
        validation = damping_module.check_data(validation_data)
    elif validation_data is not None:
        raise ValueError(
            f"Invalid validation_data with damping={damping!r}: expected None (only "
            "damping='auto' and bias_correction='auto' use it)."
        )
    if scope == "model" and method not in SCALAR_METHODS:
        raise ValueError(
            f"Invalid scope='model' with method={method!r}: expected a scalar method "
            f"({', '.join(SCALAR_METHODS)})."
        )
    if importance is not None and method in ("weighted_entropy", "residual"):
        raise ValueError(
            f"Invalid importance={importance!r} with method={method!r}: expected None "
            "(weighted_entropy weighs by w^2 itself; residual takes no importance)."
        )
    vector = method in ("product", "residual")
    if reassign == "every_step" and vector:
        raise ValueError(
            f"Invalid reassign='every_step' with method={method!r}: expected a scalar method."
        )
    d = subvector_size if method == "product" else 1
    t = stages if method == "residual" else 1
    _validation.check_int("subvector_size", subvector_size, 1)
    _validation.check_int("stages", stages, 1)
    _validation.check_int("blocks", blocks, 1)
    if blocks != 1 and method != "product":
        raise ValueError(
            f"Invalid blocks={blocks} with method={method!r}: expected 1 (per-block "
            "codebooks are for method='product')."
        )

    selected = _rebuild.select(model, layers)
    kernels = [
        (layer, name) for layer in selected for name in kernel_names(_rebuild.unwrapped(layer))
    ]
    values = [_rebuild.plain_values(layer)[name] for layer, name in kernels]
    masks = [_surviving(layer, name) for layer, name in kernels]
    if vector and any(m is not None for m in masks):
        raise ValueError(
            f"Invalid method={method!r} for a pruned model: expected a scalar method "
            "(pruned kernels keep their zeros as a scalar code)."
        )
    weights = _importance(model, kernels, importance, data)

    def run(
        v: np.ndarray, h: np.ndarray | None, shape: tuple[int, ...], pruned: bool = False
    ) -> Codebook:
        if method == "kmeans":
            return kmeans(v, clusters, init=init, importance=h, seed=seed)
        if method == "optimal":
            return optimal(v, clusters, importance=h)
        if method == "uniform":
            return uniform(v, clusters, importance=h)
        if method == "ecsq":
            return ecsq(
                v,
                clusters,
                target_bits=target_bits,
                lagrange_multiplier=lagrange_multiplier,
                importance=h,
            )
        if method == "weighted_entropy":
            # a pruned kernel's zero is its pruned code: no second zero level
            return weighted_entropy(v, clusters, zero_level=False if pruned else None)
        kernel = v.reshape(shape)
        if method == "product":
            return product(
                kernel,
                clusters,
                subvector_size=d,
                axis=axis,
                blocks=blocks,
                importance=None if h is None else h.reshape(shape),
                seed=seed,
            )
        return residual(kernel, clusters, stages=t, subvector_size=1, axis=axis, seed=seed)

    def surviving(i: int, plain: bool) -> tuple[np.ndarray, np.ndarray | None]:
        keep = masks[i]
        v = values[i].ravel() if keep is None else values[i].ravel()[keep.ravel()]
        h = None if plain else weights[i]
        if h is not None:
            h = h.ravel() if keep is None else h.ravel()[keep.ravel()]
        return v, h

    def build(damping: float, correct: bool, verbose: int) -> keras.Model:
        """The clustered model for one damping (infinity: plain k-means), bias-corrected or not."""
        plain = math.isinf(damping)
        codebooks: list[Codebook] = []
        steps = 1 if scope == "model" else len(kernels)
        progress = keras.utils.Progbar(steps, verbose=int(verbose == 1), unit_name="kernel")
        if scope == "model":
            parts = [surviving(i, plain) for i in range(len(kernels))]
            joint_h = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
            joint_h = _damped(joint_h, damping)
            pruned = any(m is not None for m in masks)
            joint = run(np.concatenate([p[0] for p in parts]), joint_h, (-1,), pruned)
            sizes = np.cumsum([0] + [p[0].size for p in parts])
            codebooks = [
                Codebook(joint.centroids, joint.indices[a:b]) for a, b in zip(sizes[:-1], sizes[1:])
            ]
            progress.update(1)
        else:
            for i in range(len(kernels)):
                v, h = surviving(i, plain)
                h = _damped(h, damping)
                codebooks.append(run(v, h, values[i].shape, masks[i] is not None))
                progress.update(i + 1)

        specs: dict[str, dict[str, dict[str, Any]]] = {}
        tables: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        keeps: dict[tuple[str, str], np.ndarray] = {}
        for (layer, name), value, keep, codebook in zip(kernels, values, masks, codebooks):
            centroids, indices = _as_state(codebook, value, keep, axis if vector else -1, blocks)
            specs.setdefault(layer.name, {})[name] = {
                "clusters": int(centroids.shape[1]) // blocks,
                "blocks": blocks,
                "stages": int(centroids.shape[0]),
                "subvector_size": int(centroids.shape[2]),
                "axis": int(axis) if vector else -1,
                "pruned": keep is not None,
            }
            tables[(layer.name, name)] = (centroids, indices)
            if keep is not None:
                keeps[(layer.name, name)] = keep.astype("float32")
            if verbose == 2:
                print(
                    f"cluster: {layer.name}/{name}: {value.size} weights, "
                    f"{centroids.shape[1]} centroids ({method})"
                )

        shared = None
        if scope == "model":  # one centroid variable for all layers
            shared = SharedCodebook(int(codebooks[0].centroids.size), name="shared_codebook")

        def wrap(layer_name: str) -> Any:
            return lambda inner: Clustered(
                inner, specs[layer_name], reassign=reassign, shared=shared, name=inner.name
            )

        new = _rebuild.rebuild(model, {name: wrap(name) for name in specs})
        for layer in new.layers:
            if layer.name not in specs:
                continue
            for name in specs[layer.name]:
                centroids, indices = tables[(layer.name, name)]
                layer.centroids(name).assign(centroids)
                if reassign == "never":
                    getattr(layer, f"_{name}_indices").assign(indices)
                    kernel = kernel_variable(layer, name)
                    kernel.assign(np.zeros(kernel.shape, dtype=kernel.dtype))
                elif specs[layer.name][name]["pruned"]:
                    getattr(layer, f"_{name}_mask").assign(keeps[(layer.name, name)])
        if correct:
            bias_module.correct_biases(model, new, bias_x)
        return new

    if not choosing:
        return build(float(damping), bool(bias_correction), verbose)
    assert validation is not None
    dampings = damping_module.GRID if damping == "auto" else (float(damping),)
    corrections = (False, True) if bias_correction == "auto" else (bool(bias_correction),)
    candidates = [(d, c) for d in dampings for c in corrections]
    best, best_score, chosen = None, -math.inf, candidates[0]
    progress = keras.utils.Progbar(len(candidates), verbose=int(verbose == 1), unit_name="model")
    for step, (candidate, correct) in enumerate(candidates):
        clustered = build(candidate, correct, 0)
        value = damping_module.score(
            clustered, validation, damping_metric, getattr(model, "loss", None)
        )
        if verbose == 2:
            print(
                f"cluster: damping={candidate:g}, bias_correction={correct}: validation "
                f"{damping_metric} {value:.6g}"
            )
        if best is None or value > best_score:  # the first (plain k-means) wins ties
            best, best_score, chosen = clustered, value, (candidate, correct)
        progress.update(step + 1)
    assert best is not None
    best.chosen_damping, best.chosen_bias_correction = chosen
    if verbose == 2:
        print(f"cluster: chose damping={chosen[0]:g}, bias_correction={chosen[1]}")
    return best


def _damped(importance: np.ndarray | None, damping: float) -> np.ndarray | None:
    """h + damping * mean(h) (None stays None): OBS / GPTQ damping of an importance."""
    if importance is None or not damping:
        return importance
    h = np.asarray(importance, dtype=np.float64)
    return h + damping * (float(np.mean(h)) if h.size else 0.0)


def _surviving(layer: keras.Layer, name: str) -> np.ndarray | None:
    """The kernel's mask of unpruned entries (None when it was not pruned)."""
    if isinstance(layer, Pruned):
        return np.asarray(layer.mask(name)) > 0
    if isinstance(layer, Clustered) and layer.codebooks[name]["pruned"]:
        return _rebuild.plain_values(layer)[name] != 0
    return None


def _importance(
    model: keras.Model, kernels: list[tuple[keras.Layer, str]], importance: str | None, data: Any
) -> list[np.ndarray | None]:
    """The importance of each kernel's entries (None for plain clustering)."""
    if importance is None:
        return [None] * len(kernels)
    variables = []
    for layer, name in kernels:
        if isinstance(layer, Clustered):
            raise ValueError(  # noqa: TRY004 (tfqnn raises ValueError for every bad argument)
                f"Invalid importance={importance!r} for the clustered layer {layer.name!r}: "
                "expected None (estimate importance on the float or pruned model)."
            )
        variables.append(kernel_variable(layer, name))
    if importance == "hessian":
        return list(importance_module.hessian(model, data, variables))
    return list(importance_module.adam(model.optimizer, variables))


def _as_state(
    codebook: Codebook, value: np.ndarray, keep: np.ndarray | None, axis: int, blocks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Wrapper state: centroids (stages, blocks k, d) and indices (stages, m) of a kernel.

    Per-block product indices become local to their block.
    """
    c = np.asarray(codebook.centroids, dtype=np.float32)
    i = np.asarray(codebook.indices, dtype=np.int32)
    if c.ndim == 1:  # scalar: the pruned entries get the zero code k
        full = i
        if keep is not None:
            full = np.full(value.size, c.size, dtype=np.int32)
            full[keep.ravel()] = i
        return c[None, :, None], full[None, :]
    if c.ndim == 2:  # product
        k = c.shape[0] // blocks
        local = i - block_ids(value.shape, axis, c.shape[1], blocks) * k
        return c[None], local.astype(np.int32)[None]
    return c, i
