"""Keras wrappers that compute a layer's kernels from compressed state.

`Clustered` and `Pruned` wrap any Keras layer that owns kernels (Dense,
Conv1D/2D/3D, Depthwise, Separable, transposed convolutions and tfqnn's
quantized layers). The wrapped layer keeps its class, config and other
weights (bias); in ``call`` the wrapper decodes each kernel and hands it to
the layer's own ``call`` in place of the kernel variable, so the layer's
math (and a tfqnn layer's kernel quantizer) runs unchanged.

Why a wrapper and not a new kernel variable type: Keras 3 layers read their
kernel from an attribute in ``call``; a wrapper that swaps that attribute for
a decoded tensor works for every layer class without subclassing each one,
keeps a `.keras` file loadable with ``import tfqnn`` alone, and gives export
and `tfqnn.codebook.report` one place to find the codebook
(``Clustered.codebook(name)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import keras
import numpy as np
from keras import ops

from tfqnn import _bits, _validation
from tfqnn.codebook import _arrays
from tfqnn.codebook.product import block_ids
from tfqnn.codebook.shared import SharedCodebook

REASSIGN = ("never", "every_step")


def kernel_names(layer: keras.Layer) -> list[str]:
    """The names of ``layer``'s own kernel variables ("kernel", "depthwise_kernel", ...).

    A variable counts when its name ends in "kernel" and the layer itself
    (not a sub-layer) holds it. Recurrent layers' cells are not included.
    """
    own = list(layer._trainable_variables) + list(layer._non_trainable_variables)
    return [v.name for v in own if v.name.endswith("kernel")]


def _attribute_of(layer: keras.Layer, variable: Any) -> str:
    """The instance attribute of ``layer`` that holds ``variable``."""
    for attribute, value in vars(layer).items():
        if value is variable:
            return attribute
    raise ValueError(f"Layer {layer.name!r} keeps its {variable.name!r} in no attribute.")


def kernel_variable(layer: keras.Layer, name: str) -> Any:
    """``layer``'s own variable named ``name`` (a kernel); ValueError when it has none.

    Unwraps a `KernelWrapper` first: the variable is the wrapped layer's.
    """
    if isinstance(layer, KernelWrapper):
        layer = layer.layer
    for variable in list(layer._trainable_variables) + list(layer._non_trainable_variables):
        if variable.name == name:
            return variable
    raise ValueError(
        f"Invalid kernel {name!r}: layer {layer.name!r} has the kernels {kernel_names(layer)}."
    )


class KernelWrapper(keras.layers.Wrapper):
    """Base of the wrappers: runs the layer's ``call`` with decoded kernels.

    Subclasses create their state in `build_kernel` and decode it in
    `decoded_kernel`.

    Args:
        layer: the layer whose kernels are replaced.
        kernels: the names of its kernel variables to replace.
    """

    def __init__(self, layer: keras.Layer, kernels: Sequence[str], **kwargs: Any) -> None:
        super().__init__(layer, **kwargs)
        if isinstance(kernels, str) or not kernels:
            raise ValueError(f"Invalid kernels={kernels!r}: expected a list of kernel names.")
        self.kernels = [str(name) for name in kernels]
        self._attributes: dict[str, str] = {}
        self.kernel_shapes: dict[str, tuple[int, ...]] = {}

    def build(self, input_shape: Any = None) -> None:
        if not self.layer.built:
            self.layer.build(input_shape)
            self.layer.built = True
        for name in self.kernels:
            variable = kernel_variable(self.layer, name)
            self._attributes[name] = _attribute_of(self.layer, variable)
            self.kernel_shapes[name] = tuple(int(s) for s in variable.shape)
            self.build_kernel(name, variable)
        self.built = True

    def build_kernel(self, name: str, variable: Any) -> None:
        """Creates the state of kernel ``name`` (the wrapped layer's ``variable``)."""
        raise NotImplementedError

    def decoded_kernel(self, name: str, training: bool | None = None) -> Any:
        """The kernel ``name`` as the wrapped layer's ``call`` should see it."""
        raise NotImplementedError

    @contextmanager
    def _kernels_swapped(self, training: bool | None) -> Iterator[None]:
        saved = {}
        for name in self.kernels:
            attribute = self._attributes[name]
            saved[attribute] = vars(self.layer)[attribute]
            object.__setattr__(self.layer, attribute, self.decoded_kernel(name, training))
        try:
            yield
        finally:
            for attribute, value in saved.items():
                object.__setattr__(self.layer, attribute, value)

    def call(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        if getattr(self.layer, "_call_has_training_arg", False):
            kwargs["training"] = training
        with self._kernels_swapped(training):
            return self.layer.call(inputs, **kwargs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    def decoded_kernels(self) -> dict[str, np.ndarray]:
        """Each replaced kernel as a numpy array, by name."""
        return {name: np.asarray(self.decoded_kernel(name, False)) for name in self.kernels}

    def weight_precisions(self) -> dict[str, int]:
        """Bits per value of the variables stored other than as float, by path.

        `tfqnn.summary` counts the wrapper's weights at these precisions (0:
        not stored).
        """
        return {}

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["kernels"] = list(self.kernels)
        return config


@keras.saving.register_keras_serializable(package="tfqnn")
class Pruned(KernelWrapper):
    """A layer whose kernels are masked: pruned entries are exactly zero.

    ``kernel = latent * mask`` with a non-trainable 0/1 ``mask`` per kernel,
    so the pruned entries output zero and their latent weights get zero
    gradient; `tfqnn.codebook.prune` makes it (magnitude pruning, Han et al.
    2015/2016, the first stage of Deep Compression).

    Args:
        layer: the wrapped layer.
        kernels: the names of its pruned kernels.
    """

    def build_kernel(self, name: str, variable: Any) -> None:
        mask = self.add_weight(
            name=f"{name}_mask", shape=variable.shape, initializer="ones", trainable=False
        )
        setattr(self, f"_{name}_mask", mask)

    def mask(self, name: str) -> Any:
        """The 0/1 mask variable of kernel ``name``."""
        return getattr(self, f"_{name}_mask")

    def decoded_kernel(self, name: str, training: bool | None = None) -> Any:
        variable = kernel_variable(self.layer, name)
        return variable * ops.cast(self.mask(name), variable.dtype)

    def weight_precisions(self) -> dict[str, int]:
        """The masks are not stored: the zeros of the kernel mark the pruned entries."""
        return {self.mask(name).path: 0 for name in self.kernels}


@keras.saving.register_keras_serializable(package="tfqnn")
class Clustered(KernelWrapper):
    """A layer whose kernels are a codebook plus indices (weight sharing).

    Each kernel of shape ``shape`` is cut into m = size/d sub-vectors of d
    consecutive entries along ``axis`` (d = 1: scalar clustering) and
    stored as ``centroids`` (stages, blocks * k, d), trainable, and
    ``indices`` (stages, m), int32, non-trainable: sub-vector r is
    ``sum_s centroids[s, block(r) * k + indices[s, r]]``. With ``blocks`` = B
    > 1 (product codebooks per block, Gong et al. 2014) the kernel's last
    axis (the output channels of Dense and convolutions) is cut into B equal
    blocks, each with its own k centroids; ``block(r)`` is the block of
    sub-vector r and its index is local to its block's codebook (0 <= index
    < k). A kernel with pruned entries has one more code, k, whose value is a
    constant zero that never trains.

    ``shared``: a `SharedCodebook` whose single centroid variable all the
    wrapper's kernels decode from (``cluster(..., scope="model")``: every
    wrapper of the model gets the same object, so the whole model
    fine-tunes one codebook, Choi et al. 2017).

    ``reassign="never"`` (Deep Compression, Han et al. 2016,
    arXiv:1510.00149): the assignments are fixed; the gradient of a centroid
    is the sum of its members' gradients (the gradient of a gather), eq. 3.
    ``reassign="every_step"`` (tensorflow-model-optimization's clustering;
    scalar codebooks only): the latent float kernel is kept and trained,
    each step assigns it to its nearest centroids, and in training the
    gradient reaches both the centroids (summed) and the latent weights
    (straight through).

    Args:
        layer: the wrapped layer.
        codebooks: per kernel name, a dict with ``clusters`` (k),
            ``stages`` (default 1), ``subvector_size`` (default 1), ``axis``
            (default -1), ``pruned`` (default False) and ``blocks``
            (default 1).
        reassign: ``"never"`` or ``"every_step"``.
        shared: None (a centroid variable per kernel) or a `SharedCodebook`
            of the kernels' k, stages and d (one block each).
    """

    def __init__(
        self,
        layer: keras.Layer,
        codebooks: Mapping[str, Mapping[str, Any]],
        reassign: str = "never",
        shared: SharedCodebook | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("kernels", None)
        super().__init__(layer, list(codebooks), **kwargs)
        self.reassign = _validation.check_choice("reassign", reassign, REASSIGN)
        self.codebooks = {name: _codebook_spec(spec) for name, spec in codebooks.items()}
        if reassign == "every_step":
            for name, spec in self.codebooks.items():
                if spec["stages"] != 1 or spec["subvector_size"] != 1 or spec["blocks"] != 1:
                    raise ValueError(
                        f"Invalid reassign={reassign!r} for the vector codebook of {name!r}: "
                        "expected 'never' (every_step supports scalar codebooks only)."
                    )
        if isinstance(shared, Mapping):
            shared = keras.saving.deserialize_keras_object(dict(shared))
        if shared is not None and not isinstance(shared, SharedCodebook):
            raise ValueError(
                f"Invalid shared of type {type(shared).__name__}: expected None or a "
                "SharedCodebook."
            )
        if shared is not None:
            for name, spec in self.codebooks.items():
                wanted = (shared.clusters, shared.stages, shared.subvector_size, 1)
                got = (spec["clusters"], spec["stages"], spec["subvector_size"], spec["blocks"])
                if got != wanted:
                    raise ValueError(
                        f"Invalid codebook of {name!r}: (clusters, stages, subvector_size, "
                        f"blocks) = {got}, expected the shared codebook's {wanted}."
                    )
        self.shared = shared

    def build_kernel(self, name: str, variable: Any) -> None:
        spec = self.codebooks[name]
        d = spec["subvector_size"]
        shape = self.kernel_shapes[name]
        axis = spec["axis"]
        if shape[axis] % d:
            raise ValueError(
                f"Invalid subvector_size={d} for kernel {name!r} of shape {shape}: expected "
                f"a divisor of {shape[axis]}."
            )
        m = int(np.prod(shape)) // d
        if spec["blocks"] > 1:
            offsets = block_ids(shape, axis, d, spec["blocks"]) * spec["clusters"]
            setattr(self, f"_{name}_offsets", offsets.astype(np.int32))
        if self.shared is not None:
            if not self.shared.built:
                self.shared.build()
            if self.shared.owner is None:
                self.shared.owner = self.name
        else:
            centroids = self.add_weight(
                name=f"{name}_centroids",
                shape=(spec["stages"], spec["blocks"] * spec["clusters"], d),
                initializer="zeros",
            )
            setattr(self, f"_{name}_centroids", centroids)
        if self.reassign == "never":
            # Keras layers save their kernel themselves (Dense.save_own_variables), so
            # the variable stays, frozen; `cluster` zeroes it.
            variable.trainable = False
            indices = self.add_weight(
                name=f"{name}_indices",
                shape=(spec["stages"], m),
                initializer="zeros",
                dtype="int32",
                trainable=False,
            )
            setattr(self, f"_{name}_indices", indices)
        elif spec["pruned"]:
            mask = self.add_weight(
                name=f"{name}_mask", shape=shape, initializer="ones", trainable=False
            )
            setattr(self, f"_{name}_mask", mask)

    def centroids(self, name: str) -> Any:
        """The (stages, blocks * k, d) centroid variable of kernel ``name`` (maybe shared)."""
        if self.shared is not None:
            return self.shared.centroids
        return getattr(self, f"_{name}_centroids")

    def _table(self, name: str) -> Any:
        """The centroids with the constant zero code appended when the kernel is pruned."""
        c = self.centroids(name)
        if self.codebooks[name]["pruned"]:
            stages, _, d = c.shape
            c = ops.concatenate([c, ops.zeros((stages, 1, d), dtype=c.dtype)], axis=1)
        return c

    def indices(self, name: str) -> Any:
        """The (stages, m) int32 indices of kernel ``name`` (computed when reassigned).

        With blocks, each index is local to its sub-vector's block.
        """
        if self.reassign == "never":
            return getattr(self, f"_{name}_indices")
        latent = kernel_variable(self.layer, name)
        c = ops.stop_gradient(self.centroids(name)[0, :, 0])
        flat = ops.reshape(latent, (-1, 1))
        indices = ops.cast(ops.argmin(ops.abs(flat - c), axis=-1), "int32")
        if self.codebooks[name]["pruned"]:
            mask = ops.reshape(getattr(self, f"_{name}_mask"), (-1,))
            zero_code = self.codebooks[name]["clusters"]
            indices = ops.where(mask > 0, indices, zero_code)
        return ops.reshape(indices, (1, -1))

    def decoded_kernel(self, name: str, training: bool | None = None) -> Any:
        spec = self.codebooks[name]
        table = self._table(name)
        indices = self.indices(name)
        if spec["blocks"] > 1:  # block-local indices into the concatenated tables
            indices = indices + getattr(self, f"_{name}_offsets")[None, :]
        rows = ops.take(table[0], indices[0], axis=0)
        for s in range(1, spec["stages"]):
            rows = rows + ops.take(table[s], indices[s], axis=0)
        shape = self.kernel_shapes[name]
        axis = spec["axis"] % len(shape)
        moved = [n for i, n in enumerate(shape) if i != axis] + [shape[axis]]
        kernel = ops.moveaxis(ops.reshape(rows, moved), -1, axis)
        if self.reassign == "every_step":
            latent = kernel_variable(self.layer, name)
            if training:  # straight through to the latent weights (exact values otherwise)
                kernel = kernel + latent - ops.stop_gradient(latent)
            if spec["pruned"]:
                kernel = kernel * getattr(self, f"_{name}_mask")
        return kernel

    def codebook(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Kernel ``name``'s centroids (stages, blocks * k[+1], d) and indices (stages, m).

        A pruned kernel's table has the zero code last (index k); with
        blocks, block b's centroids are rows b * k to (b + 1) * k - 1 and the
        indices are local to each sub-vector's block.
        """
        return np.asarray(self._table(name)), np.asarray(self.indices(name))

    def index_bits(self, name: str) -> int:
        """Bits of one fixed-length index of kernel ``name``: ceil(log2(codes))."""
        spec = self.codebooks[name]
        return _bits.index_bits(spec["clusters"] + int(spec["pruned"]))

    def weight_precisions(self) -> dict[str, int]:
        """Indices at their fixed-length bits; the frozen float kernel is not stored.

        With ``reassign="every_step"`` the latent kernel counts at the index
        bits (what a deployment stores) and its mask at 0. A shared codebook
        counts in the first layer built on it only.
        """
        bits = {}
        for name in self.kernels:
            kernel = kernel_variable(self.layer, name)
            if self.reassign == "never":
                bits[kernel.path] = 0
                bits[getattr(self, f"_{name}_indices").path] = self.index_bits(name)
            else:
                bits[kernel.path] = self.index_bits(name)
                if self.codebooks[name]["pruned"]:
                    bits[getattr(self, f"_{name}_mask").path] = 0
        if self.shared is not None and self.shared.owner != self.name:
            bits[self.shared.centroids.path] = 0
        return bits

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("kernels")
        config["codebooks"] = {name: dict(spec) for name, spec in self.codebooks.items()}
        config["reassign"] = self.reassign
        if self.shared is not None:
            # The object itself: Keras serializes it, once per `.keras` file.
            config["shared"] = self.shared
        return config


def _codebook_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A codebook spec with its defaults filled in and checked."""
    unknown = set(spec) - {"clusters", "stages", "subvector_size", "axis", "pruned", "blocks"}
    if unknown:
        raise ValueError(f"Invalid codebook spec keys {sorted(unknown)}.")
    checked = {
        "clusters": _arrays.check_clusters(spec.get("clusters")),
        "stages": _validation.check_int("stages", spec.get("stages", 1), 1),
        "subvector_size": _validation.check_int("subvector_size", spec.get("subvector_size", 1), 1),
        "axis": _validation.check_int("axis", spec.get("axis", -1)),
        "pruned": _validation.check_bool("pruned", spec.get("pruned", False)),
        "blocks": _validation.check_int("blocks", spec.get("blocks", 1), 1),
    }
    if checked["blocks"] > 1 and (checked["pruned"] or checked["stages"] > 1):
        raise ValueError(
            f"Invalid blocks={checked['blocks']} with stages={checked['stages']} and "
            f"pruned={checked['pruned']}: expected one stage of an unpruned kernel."
        )
    return checked
