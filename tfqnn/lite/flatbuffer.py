"""Reading `.tflite` files: the flatbuffer schema and what tfqnn checks in a model.

A `.tflite` file is a flatbuffer of the TFLite schema; ai-edge-litert ships the
generated Python reader (`schema`). tfqnn reads a model to count its custom
ops (`custom_ops_in`, `builtin_ops_in`) and to reject, before LiteRT reads it, a file that
LiteRT would crash on instead of raising (`check_model_inputs`).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any


def schema() -> ModuleType:
    """The TFLite flatbuffer schema module (``schema_py_generated``) of ai-edge-litert.

    It reads (``Model.GetRootAsModel``) and, through its object API
    (``ModelT``), writes `.tflite` files.

    Raises:
        ImportError: ai-edge-litert is not installed (``pip install "tfqnn[lite]"``).
    """
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def read_model(model_content: bytes, schema_module: ModuleType | None = None) -> Any:
    """The root ``Model`` table of a TFLite flatbuffer (its fields are read lazily).

    Raises ValueError for bytes without the ``TFL3`` file identifier.
    """
    data = bytes(model_content)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(
            "Invalid model_content: expected a TFLite flatbuffer (file identifier TFL3), "
            f"got {len(data)} bytes without it."
        )
    return (schema_module or schema()).Model.GetRootAsModel(data, 0)


def custom_ops_in(
    model_content: bytes, *, schema_module: ModuleType | None = None
) -> dict[str, int]:
    """The custom op names in a `.tflite` model, with their counts.

    ``schema_module`` reads the flatbuffer: `schema()` by default (TensorFlow's
    ``tensorflow.lite.python.schema_py_generated`` is the same schema).
    Raises ValueError for bytes that are not a TFLite model.
    """

    def name(code: Any, module: ModuleType) -> str | None:
        custom = code.CustomCode()
        return custom.decode() if custom is not None else None

    return _op_counts(model_content, schema_module, name)


def builtin_ops_in(
    model_content: bytes, *, schema_module: ModuleType | None = None
) -> dict[str, int]:
    """The builtin op names in a `.tflite` model (``"CONV_2D"``), with their counts.

    Custom ops are left out: `custom_ops_in` counts them. ``schema_module`` as
    for `custom_ops_in`. Raises ValueError for bytes that are not a TFLite model.
    """

    def name(code: Any, module: ModuleType) -> str | None:
        if code.CustomCode() is not None:
            return None
        names = {v: k for k, v in vars(module.BuiltinOperator).items() if not k.startswith("_")}
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        return names.get(builtin, f"BUILTIN_{builtin}")

    return _op_counts(model_content, schema_module, name)


def _op_counts(
    model_content: bytes,
    schema_module: ModuleType | None,
    name_of: Callable[[Any, ModuleType], str | None],
) -> dict[str, int]:
    """Counts, over every subgraph, the ops whose code ``name_of`` names (None: skipped)."""
    module = schema_module or schema()
    model = read_model(model_content, module)
    try:
        codes = [
            name_of(model.OperatorCodes(i), module) for i in range(model.OperatorCodesLength())
        ]
        counts: dict[str, int] = {}
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            for o in range(subgraph.OperatorsLength()):
                name = codes[subgraph.Operators(o).OpcodeIndex()]
                if name is not None:
                    counts[name] = counts.get(name, 0) + 1
    except Exception as error:  # a malformed flatbuffer: offsets out of range
        raise ValueError(
            f"Invalid model_content: expected a valid TFLite model ({error})."
        ) from error
    return counts


def check_model_inputs(model_content: bytes) -> None:
    """Rejects a model whose input tensors carry constant data.

    LiteRT 2.3.0 crashes in `set_tensor` on such a file instead of raising:
    a `.tflite` is input from outside, so tfqnn checks before LiteRT reads it.
    Raises ValueError, also for bytes that are not a TFLite model.
    """
    model = read_model(model_content)
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
    except Exception as error:  # offsets out of range in a malformed flatbuffer
        raise ValueError(
            f"Invalid model_content: expected a valid TFLite model ({error})."
        ) from error
