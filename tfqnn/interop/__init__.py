"""Models of the tf_keras peers (tf_keras itself, larq, QKeras, tfmot) loaded as tfqnn Keras 3 models.

``tfqnn.interop.load("model.h5")`` reads a full-model ``.h5`` file saved by
tf_keras with h5py alone (or a tf_keras SavedModel directory with
TensorFlow's checkpoint reader), without importing tf_keras or any peer library,
and rebuilds it from tfqnn's layers and quantizers with the same forward
and backward passes, so the model predicts as it did and keeps training the
same way. docs/migrating.md lists every name it maps.
"""

from __future__ import annotations

import functools
import os

import keras

from tfqnn import _validation
from tfqnn.interop import graph, h5file, savedmodel, translate, weights
from tfqnn.interop.report import Issue, LayerMapping, Report

COMPILE_NOTICE = (
    "the file's compile state (optimizer, loss, metrics) is not loaded: compile the model "
    "again (larq's optimizers such as Bop are not model state)"
)


def load_with_report(
    path: str | os.PathLike[str], safe_mode: bool = True
) -> tuple[keras.Model, Report]:
    """`load`, also returning the `Report` of what was mapped and ignored."""
    if not isinstance(safe_mode, bool):
        raise ValueError(f"safe_mode must be True or False, got {safe_mode!r}")  # noqa: TRY004
    source = savedmodel.read(path) if os.path.isdir(path) else h5file.read(path)
    report = Report(safe_mode=safe_mode)
    if source.has_training_config:
        report.notice(COMPILE_NOTICE)
    name = os.fspath(path)
    try:
        factory = functools.partial(translate.layer, file_weights=source.weights)
        model = graph.build(source.config, factory, report)
    except Exception as error:  # a malformed config can fail anywhere in Keras
        report.raise_issues(name)  # the issues, when there are any, say more
        if not isinstance(error, ValueError):
            error = ValueError(f"the model config is malformed ({type(error).__name__}: {error})")
        raise ValueError(f"Cannot load {name}: {error}") from error
    report.raise_issues(name)
    if model is None:  # pragma: no cover - a None layer always comes with an issue
        raise ValueError(f"Cannot load {name}.")
    try:
        weights.assign(model, source.weights, report.weight_maps, report.aliases)
    except Exception as error:  # a weight Keras cannot take, such as an array of strings
        raise ValueError(f"Cannot load {name}: {error}.") from error
    return model, report


def load(
    path: str | os.PathLike[str], verbose: int | str | bool = 0, safe_mode: bool = True
) -> keras.Model:
    """Loads a tf_keras full-model ``.h5`` file as a Keras 3 model of tfqnn layers.

    Args:
        path: a file written by tf_keras's ``model.save("model.h5")``
            (Sequential or Functional, with models nested as layers) whose
            layers are tf_keras's, larq's, QKeras's or tfmot's pruning,
            clustering and quantize_model wrappers; or the SavedModel
            directory of ``model.save("dir", save_format="tf")``
            (`tfqnn.interop.savedmodel`).
        verbose: 1, 2, ``"auto"`` or True prints a table: each source layer
            and its quantizers, and the tfqnn (or Keras 3) layer and
            quantizers it became; then the notices (what was ignored on
            purpose). 0 or False (the default) prints nothing.
        safe_mode: as in ``keras.saving.load_model``. True (the default)
            refuses tf_keras ``Lambda`` layers of a Python ``lambda``: the
            file holds its function as marshalled Python bytecode of the
            saving interpreter's version, and ``marshal.loads`` of crafted
            data is not safe (nor is running the function). False, for files
            you trust, rebuilds each as a ``keras.layers.Lambda`` the way
            tf_keras's ``func_load`` does (`tfqnn.interop.lambdas`), after
            checking the bytecode against this Python's opcodes, tables and
            stack depth; bytecode of another Python version raises ValueError
            naming the layer. The checks catch accidents, not attacks, and
            are not complete: a damaged function that passes them can still
            crash the interpreter when it runs.

    Returns:
        An uncompiled `keras.Model` with the file's weights; its predictions
        equal the source model's within float rounding.

    Raises:
        ValueError: the file cannot be read (not HDF5, weights only, Keras 3
            or unknown versions, damaged, weights that disagree with the
            config), or it holds layers or quantizers tfqnn cannot map; the
            message lists each with its path in the model and, where there
            is one, the tfqnn alternative.
    """
    verbose = _validation.check_verbose(verbose)
    model, report = load_with_report(path, safe_mode=safe_mode)
    if verbose:
        print(report.table())
    return model


__all__ = ["Issue", "LayerMapping", "Report", "load", "load_with_report"]
