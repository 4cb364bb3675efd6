"""Run tfqnn's `.tflite` files: the interpreter with tfqnn's binary kernels.

`Interpreter` wraps ai-edge-litert's interpreter and loads tfqnn's kernels as
an external delegate, so inference needs neither TensorFlow nor Keras.
`spec` holds the op contract of docs/lite_ops.md (op names, option codes,
geometry, argument checks), `reference` a numpy implementation of every
custom op, `schema()` the TFLite flatbuffer schema that reads and writes
`.tflite` files, and `testing` a builder of small models around the ops.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tfqnn.lite import reference, spec
from tfqnn.lite._library import library_path, load_library
from tfqnn.lite.flatbuffer import builtin_ops_in, custom_ops_in, schema
from tfqnn.lite.interpreter import Interpreter

__all__ = [
    "Interpreter",
    "builtin_ops_in",
    "custom_ops_in",
    "library_path",
    "load_library",
    "reference",
    "schema",
    "spec",
    "testing",
]


def __getattr__(name: str) -> ModuleType:
    # `testing` needs the flatbuffers package (an ai-edge-litert dependency): loaded on first use.
    if name == "testing":
        return importlib.import_module("tfqnn.lite.testing")
    raise AttributeError(f"module 'tfqnn.lite' has no attribute {name!r}")
