"""Run tfqnn's `.tflite` files: the interpreter with tfqnn's binary kernels.

`Interpreter` wraps ai-edge-litert's interpreter and loads tfqnn's kernels as
an external delegate, so inference needs neither TensorFlow nor Keras.
`reference` holds a numpy implementation of every custom op; the op contract
is in docs/lite_ops.md.
"""

from tfqnn.lite._library import library_path, load_library
from tfqnn.lite.interpreter import Interpreter, custom_ops_in

__all__ = ["Interpreter", "custom_ops_in", "library_path", "load_library", "reference"]


def __getattr__(name):
    if name == "reference":
        import importlib

        return importlib.import_module("tfqnn.lite.reference")
    raise AttributeError(f"module 'tfqnn.lite' has no attribute {name!r}")
