"""`tfqnn.lite.Interpreter`: ai-edge-litert with tfqnn's kernels loaded."""

import numpy as np

from tfqnn._validation import check_int
from tfqnn.lite._library import library_path, load_library

CUSTOM_OP_PREFIX = "Tfqnn"


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
        self, model_path=None, model_content=None, num_threads=1, experimental_delegates=None
    ):
        from ai_edge_litert import interpreter as litert

        if (model_path is None) == (model_content is None):
            raise ValueError("Pass exactly one of model_path and model_content.")
        num_threads = check_int("num_threads", num_threads, low=1)
        if model_path is not None:
            with open(model_path, "rb") as f:
                model_content = f.read()
            model_path = None
        _check_model_inputs(model_content)
        load_library()  # raises with instructions when the kernels are missing
        self._delegate = litert.load_delegate(
            library_path(), options={"num_threads": str(num_threads)}
        )
        self._interpreter = litert.Interpreter(
            model_path=model_path,
            model_content=model_content,
            num_threads=num_threads,
            experimental_delegates=[self._delegate, *(experimental_delegates or [])],
        )
        self.num_threads = num_threads

    def __getattr__(self, name):
        return getattr(self._interpreter, name)

    def predict(self, *inputs, batch_size=None):
        """Runs the model on whole arrays and returns its output(s).

        Each input is resized to its array's batch and converted to the
        input's dtype. With `batch_size`, runs in chunks of that many samples.
        Returns one array, or a list for several outputs.
        """
        details = self._interpreter.get_input_details()
        if len(inputs) != len(details):
            raise ValueError(f"The model has {len(details)} inputs, got {len(inputs)}.")
        arrays = [np.asarray(x) for x in inputs]
        total = arrays[0].shape[0]
        if any(a.shape[0] != total for a in arrays):
            raise ValueError("All inputs must have the same batch size.")
        step = total if batch_size is None else check_int("batch_size", batch_size, low=1)
        chunks = []
        for start in range(0, total, max(step, 1)):
            batch = [a[start : start + step] for a in arrays]
            chunks.append(self._run(details, batch))
        outputs = [np.concatenate(parts) for parts in zip(*chunks)]
        return outputs[0] if len(outputs) == 1 else outputs

    def _run(self, details, batch):
        current = [tuple(d["shape"]) for d in self._interpreter.get_input_details()]
        if any(tuple(a.shape) != s for a, s in zip(batch, current)):
            for d, a in zip(details, batch):
                self._interpreter.resize_tensor_input(d["index"], a.shape)
            self._interpreter.allocate_tensors()
        elif not getattr(self, "_allocated", False):
            self._interpreter.allocate_tensors()
        self._allocated = True
        for d, a in zip(details, batch):
            self._interpreter.set_tensor(d["index"], a.astype(d["dtype"]))
        self._interpreter.invoke()
        return [
            self._interpreter.get_tensor(d["index"]).copy()
            for d in self._interpreter.get_output_details()
        ]


def custom_ops_in(model_content):
    """The custom op names in a `.tflite` model, with their counts.

    Reads the flatbuffer with the schema bundled in ai-edge-litert or
    TensorFlow. Raises ValueError for bytes that are not a TFLite model.
    """
    model = _read_model(model_content)
    try:
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            custom = code.CustomCode()
            codes.append(custom.decode() if custom is not None else None)
        counts = {}
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            for o in range(subgraph.OperatorsLength()):
                name = codes[subgraph.Operators(o).OpcodeIndex()]
                if name is not None:
                    counts[name] = counts.get(name, 0) + 1
    except Exception as error:  # a malformed flatbuffer: offsets out of range
        raise ValueError(f"model_content is not a valid TFLite model: {error}") from error
    return counts


def _check_model_inputs(model_content):
    """Rejects a model whose input tensors carry constant data.

    LiteRT 2.3.0 crashes in `set_tensor` on such a file instead of raising:
    a `.tflite` is input from outside, so tfqnn checks before LiteRT reads it.
    """
    model = _read_model(model_content)
    try:
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            for i in range(subgraph.InputsLength()):
                index = subgraph.Inputs(i)
                if not 0 <= index < subgraph.TensorsLength():
                    raise ValueError(f"input tensor index {index} is out of range")
                buffer = subgraph.Tensors(index).Buffer()
                if 0 < buffer < model.BuffersLength() and model.Buffers(buffer).DataLength():
                    raise ValueError(f"input tensor {index} of subgraph {s} holds constant data")
    except ValueError as error:
        raise ValueError(f"model_content is not a valid TFLite model: {error}") from error
    except Exception as error:  # offsets out of range in a malformed flatbuffer
        raise ValueError(f"model_content is not a valid TFLite model: {error}") from error


def _read_model(model_content):
    """The root table of a TFLite flatbuffer (its fields are read lazily)."""
    data = bytes(model_content)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("model_content is not a TFLite flatbuffer (no TFL3 identifier).")
    return _schema().Model.GetRootAsModel(data, 0)


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as schema
    return schema
