"""`tfqnn.lite.Interpreter`: ai-edge-litert with tfqnn's kernels loaded."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfqnn._validation import check_int
from tfqnn.lite._library import library_path, load_library
from tfqnn.lite.flatbuffer import check_model_inputs


class Interpreter:
    """A TFLite interpreter that runs tfqnn's custom ops.

    It is ai-edge-litert's `Interpreter` with tfqnn's kernels attached as an
    external delegate: every `Tfqnn*` node runs in tfqnn's C++ kernels, every
    builtin op in LiteRT (with XNNPACK). All methods of the LiteRT interpreter
    (`allocate_tensors`, `get_input_details`, `set_tensor`, `invoke`,
    `get_signature_runner`, ...) are available; `predict` adds a one-call path.

    Args:
        model_path: path of a `.tflite` file.
        model_content: the model's bytes, as returned by
            `tfqnn.export.to_tflite`.
        num_threads: threads for LiteRT's builtin ops and tfqnn's kernels.
        experimental_delegates: further delegates, applied after tfqnn's.

    Example:
        >>> interpreter = tfqnn.lite.Interpreter(model_content=tflite_bytes)  # doctest: +SKIP
        >>> probabilities = interpreter.predict(x_test)                       # doctest: +SKIP

    The same file runs in `tf.lite.Interpreter` or ai-edge-litert's own
    interpreter when tfqnn's library is passed as a delegate:
    `load_delegate(tfqnn.lite.library_path())`.
    """

    def __init__(
        self,
        model_path: str | None = None,
        model_content: bytes | None = None,
        num_threads: int = 1,
        experimental_delegates: list[Any] | None = None,
    ) -> None:
        from ai_edge_litert import interpreter as litert

        if (model_path is None) == (model_content is None):
            given = "both" if model_path is not None else "neither"
            raise ValueError(
                f"Invalid model_path and model_content: expected exactly one of them, got {given}."
            )
        num_threads = check_int("num_threads", num_threads, low=1)
        if model_content is None:
            with open(str(model_path), "rb") as f:
                model_content = f.read()
        check_model_inputs(model_content)
        load_library()  # raises with instructions when the kernels are missing
        self._delegate = litert.load_delegate(
            library_path(), options={"num_threads": str(num_threads)}
        )
        self._interpreter = litert.Interpreter(
            model_content=model_content,
            num_threads=num_threads,
            experimental_delegates=[self._delegate, *(experimental_delegates or [])],
        )
        self.num_threads = num_threads
        self._allocated = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._interpreter, name)

    def predict(self, *inputs: Any, batch_size: int | None = None) -> np.ndarray | list[np.ndarray]:
        """Runs the model on whole arrays and returns its output(s).

        Each input is resized to its array's batch and converted to the
        input's dtype. With `batch_size`, runs in chunks of that many samples.
        Returns one array, or a list for several outputs.
        """
        details = self._interpreter.get_input_details()
        if len(inputs) != len(details):
            raise ValueError(
                f"Invalid inputs: expected one array per model input ({len(details)}), "
                f"got {len(inputs)}."
            )
        arrays = [np.asarray(x) for x in inputs]
        total = arrays[0].shape[0]
        if any(a.shape[0] != total for a in arrays):
            shapes = [a.shape for a in arrays]
            raise ValueError(
                f"Invalid inputs: expected one batch size for all, got shapes {shapes}."
            )
        step = total if batch_size is None else check_int("batch_size", batch_size, low=1)
        chunks = []
        for start in range(0, total, max(step, 1)):
            batch = [a[start : start + step] for a in arrays]
            chunks.append(self._run(details, batch))
        outputs = [np.concatenate(parts) for parts in zip(*chunks)]
        return outputs[0] if len(outputs) == 1 else outputs

    def _run(self, details: list[dict[str, Any]], batch: list[np.ndarray]) -> list[np.ndarray]:
        current = [tuple(d["shape"]) for d in self._interpreter.get_input_details()]
        if any(tuple(a.shape) != s for a, s in zip(batch, current)):
            for d, a in zip(details, batch):
                self._interpreter.resize_tensor_input(d["index"], a.shape)
            self._interpreter.allocate_tensors()
        elif not self._allocated:
            self._interpreter.allocate_tensors()
        self._allocated = True
        for d, a in zip(details, batch):
            self._interpreter.set_tensor(d["index"], a.astype(d["dtype"]))
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(index).copy() for index in self._output_indices()]

    def _output_indices(self) -> list[int]:
        """The output tensors in the Keras model's order.

        The converter names a model's outputs ``output_0``, ``output_1``, ... in
        its signature, in the order of the Keras model's outputs, while
        `get_output_details` lists them in tensor order; files without such a
        signature keep that order.
        """
        signatures = self._interpreter.get_signature_list()
        if len(signatures) == 1:
            key = next(iter(signatures))
            names = signatures[key]["outputs"]
            ordered = [f"output_{i}" for i in range(len(names))]
            if sorted(names) == sorted(ordered):
                found = self._interpreter.get_signature_runner(key).get_output_details()
                return [int(found[name]["index"]) for name in ordered]
        return [int(d["index"]) for d in self._interpreter.get_output_details()]
