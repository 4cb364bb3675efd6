"""QuantizationMonitor: TensorBoard summaries of what quantized layers do in training."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from tfqnn import _validation
from tfqnn.layers import selection

# Histograms take an even stride of at most this many values of a larger tensor
# (TensorBoard's bucketing costs about a microsecond per value).
HISTOGRAM_VALUES = 2**16

INSTALL_HINT = (
    "QuantizationMonitor writes TensorBoard event files, which needs the tensorboard "
    "package: pip install 'tfqnn[tensorboard]' (or pip install tensorboard)."
)


class QuantizationMonitor(keras.callbacks.Callback):
    """Writes per-layer quantization statistics to a TensorBoard log directory.

    For every tfqnn quantized layer, under the tag prefix
    ``quantization/<layer name>/``, and every tfqnn cell of a recurrent layer
    (`keras.layers.RNN`, stacked cells, `keras.layers.Bidirectional`), under
    ``quantization/<layer name>/<cell name>/``
    (``quantization/<bidirectional>/<forward_ or backward_ layer>/<cell>/``):

    - ``<weight>/latent``: histogram of the latent float kernel (histograms
      take an even stride of at most 65,536 values of a larger tensor);
    - ``<weight>/at_bound``: the fraction of latent weights at the bound of
      the kernel's `WeightClip` constraint (``|w| >= clip_value``), where
      they stop learning;
    - ``<weight>/distinct_values``: how many distinct values the quantized
      kernel holds (2 for an unscaled binary kernel, at most ``2**bits``);
    - ``<weight>/flip_ratio``: for binary kernels, the fraction of weights
      whose sign (``sign(0) = +1``) changed since the previous write;
    - ``input/histogram`` and, for a binary input quantizer,
      ``input/positive_fraction`` (the share of +1 among the quantized
      inputs; 0.5 is balanced): the layer's inputs before quantization on
      ``data``, a fixed batch of model inputs, run through a probe model at
      each write (skipped when ``data`` is None, or with a warning where the
      model's graph does not give a layer's input).

    The events go to ``<log_dir>/train``, where `keras.callbacks.TensorBoard`
    writes its training summaries, so both show in one TensorBoard run
    (``tensorboard --logdir <log_dir>``). Epoch writes use the epoch as
    step, as Keras does; batch writes use the optimizer's iteration count.

    Needs the ``tensorboard`` package (``pip install 'tfqnn[tensorboard]'``);
    without it the constructor raises ImportError saying so.

    Args:
        log_dir: the TensorBoard log directory.
        update_freq: ``"epoch"``, or an integer N: write every N batches.
        data: a batch of model inputs (an array, or a list for several
            inputs) for the input statistics, or None.

    Example::

        model.fit(x, y, epochs=10, callbacks=[
            keras.callbacks.TensorBoard("logs"),
            tfqnn.callbacks.QuantizationMonitor("logs", data=x[:256]),
        ])
    """

    def __init__(self, log_dir: str = "logs", update_freq: str | int = "epoch", data: Any = None):
        super().__init__()
        if importlib.util.find_spec("tensorboard") is None:
            raise ImportError(INSTALL_HINT)
        self.log_dir = os.fspath(log_dir)
        if update_freq != "epoch":
            update_freq = _validation.check_int("update_freq", update_freq, low=1)
        self.update_freq = update_freq
        self.data = data
        self._writer: Any = None
        self._probe: Any = None
        self._probe_layers: list[Any] = []
        self._signs: dict[str, np.ndarray] = {}
        self._batches = 0

    def quantized_layers(self) -> list[Any]:
        """The model's tfqnn quantized layers and cells, in model order."""
        return [owner for _, owner in self._owners()]

    def _owners(self) -> list[tuple[str, Any]]:
        """(tag name, layer or cell) of each tfqnn quantized layer and cell."""
        return [
            owner
            for layer in selection.walk(self.model)
            for owner in selection.quantizer_owners(layer)
        ]

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        import tensorflow as tf

        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "train"))
        self._signs = {
            path: _sign(latent)
            for path, latent, quantizer, _ in self._kernels(self._owners())
            if quantizer.precision == 1
        }
        self._batches = 0
        self._probe = None

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.update_freq == "epoch":
            return
        self._batches += 1
        if self._batches % int(self.update_freq) == 0:
            self.write(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.update_freq == "epoch":
            self.write(epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write(self, step: int) -> None:
        """Writes every statistic at ``step`` (the callback calls it at its update_freq)."""
        import tensorflow as tf

        owners = self._owners()
        with self._writer.as_default(step=step):
            for path, latent, quantizer, constraint in self._kernels(owners):
                tag = f"quantization/{path}"
                tf.summary.histogram(f"{tag}/latent", _sample(latent))
                clip = getattr(constraint, "clip_value", None)
                if clip is not None:
                    at_bound = np.mean(np.abs(latent) >= np.float32(clip))
                    tf.summary.scalar(f"{tag}/at_bound", at_bound)
                quantized = keras.ops.convert_to_numpy(quantizer(latent, training=False))
                tf.summary.scalar(f"{tag}/distinct_values", len(np.unique(quantized)))
                if path in self._signs:
                    signs = _sign(latent)
                    tf.summary.scalar(f"{tag}/flip_ratio", np.mean(signs != self._signs[path]))
                    self._signs[path] = signs
            for layer, inputs in self._probed_inputs([owner for _, owner in owners]):
                tag = f"quantization/{layer.name}/input"
                tf.summary.histogram(f"{tag}/histogram", _sample(inputs))
                if layer.input_quantizer is not None and layer.input_quantizer.precision == 1:
                    quantized = keras.ops.convert_to_numpy(
                        layer.input_quantizer(inputs, training=False)
                    )
                    tf.summary.scalar(f"{tag}/positive_fraction", np.mean(quantized > 0))
        self._writer.flush()

    def _kernels(self, owners: list[tuple[str, Any]]) -> Iterator[tuple[str, np.ndarray, Any, Any]]:
        """(layer/weight name, latent values, quantizer, constraint) of each quantized kernel."""
        for owner_name, layer in owners:
            for spec in layer._quantized_kernels:
                weight = getattr(layer, spec.weight, None)
                quantizer = getattr(layer, spec.quantizer)
                if weight is None or quantizer is None:
                    continue
                name = f"{owner_name}/{spec.weight}"
                constraint = getattr(layer, spec.constraint, None)
                yield name, keras.ops.convert_to_numpy(weight), quantizer, constraint

    def _probed_inputs(self, layers: list[Any]) -> list[tuple[Any, np.ndarray]]:
        """Each probed layer with its inputs on ``data``."""
        if self.data is None:
            return []
        if self._probe is None:
            self._probe_layers = []
            outputs = []
            for layer in layers:
                try:
                    outputs.append(layer.input)
                except (AttributeError, ValueError):  # a cell, or a layer called twice
                    continue
                self._probe_layers.append(layer)
            if not outputs:
                warnings.warn(
                    "QuantizationMonitor: no quantized layer has a single graph input "
                    "(a subclassed model?); it writes no input statistics.",
                    stacklevel=2,
                )
                self.data = None
                return []
            inputs = self.model.inputs
            self._probe = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)
        results = self._probe.predict_on_batch(self.data)
        if not isinstance(results, list | tuple):
            results = [results]
        return [
            (layer, keras.ops.convert_to_numpy(r)) for layer, r in zip(self._probe_layers, results)
        ]


def _sample(values: np.ndarray) -> np.ndarray:
    """At most `HISTOGRAM_VALUES` of ``values``, an even stride through them."""
    flat = values.ravel()
    return flat[:: -(-flat.size // HISTOGRAM_VALUES)]


def _sign(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, np.int8(1), np.int8(-1))
