"""`SharedCodebook`: one centroid table that several `Clustered` layers decode from."""

from __future__ import annotations

from typing import Any

import keras

from tfqnn import _validation
from tfqnn.codebook import _arrays


@keras.saving.register_keras_serializable(package="tfqnn")
class SharedCodebook(keras.layers.Layer):
    """The centroids of ``scope="model"`` clustering (Choi et al. 2017, arXiv:1612.01543).

    Owns one trainable variable ``centroids`` of shape (stages, k, d) that
    every `Clustered` layer given this object as ``shared`` decodes its
    kernels from. Because the variable is one, ``fit`` gives it the sum of
    the gradients of all its members in all layers (the gradient of a
    gather, summed over its uses): Han et al. 2016's eq. 3 over the whole
    model. It is never called; the wrappers read `centroids`.

    Saving: each wrapper's config holds this layer object, and Keras's
    `.keras` format records an object met twice once (``shared_object_id``),
    so a loaded model's wrappers share one `SharedCodebook` again. Outside
    that format the sharing is not restored: ``keras.Model.from_config(
    model.get_config())`` gives each wrapper a copy of its own, and
    ``keras.models.clone_model`` gives the clone's wrappers the original's
    `SharedCodebook` (`tfqnn.codebook`'s `cluster`, `strip` and `prune`
    copy it correctly).

    Args:
        clusters: k, in [2, 65536].
        stages: entries summed per sub-vector (1 for scalar codebooks).
        subvector_size: d (1 for scalar codebooks).
    """

    def __init__(
        self, clusters: int, stages: int = 1, subvector_size: int = 1, **kwargs: Any
    ) -> None:
        kwargs.setdefault("trainable", True)
        super().__init__(**kwargs)
        self.clusters = _arrays.check_clusters(clusters)
        self.stages = _validation.check_int("stages", stages, 1)
        self.subvector_size = _validation.check_int("subvector_size", subvector_size, 1)
        self.owner: str | None = None  # the first wrapper built on it (counts its size)

    def build(self, input_shape: Any = None) -> None:
        self.centroids = self.add_weight(
            name="centroids",
            shape=(self.stages, self.clusters, self.subvector_size),
            initializer="zeros",
        )
        self.built = True

    def call(self, inputs: Any) -> Any:
        raise NotImplementedError(
            "SharedCodebook is not called: Clustered layers read its centroids."
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            clusters=self.clusters, stages=self.stages, subvector_size=self.subvector_size
        )
        return config
