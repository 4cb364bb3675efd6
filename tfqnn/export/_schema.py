"""The TFLite flatbuffer schema, for the exporter.

`tfqnn.lite.schema()` is ai-edge-litert's generated reader. Exporting needs
TensorFlow but not ai-edge-litert, so where ai-edge-litert is absent the
exporter reads with TensorFlow's copy of the same generated module.
"""

from __future__ import annotations

from types import ModuleType

import tfqnn.lite


def tflite_schema() -> ModuleType:
    """ai-edge-litert's ``schema_py_generated``, or TensorFlow's where it is not installed."""
    try:
        return tfqnn.lite.schema()
    except ImportError:
        from tensorflow.lite.python import schema_py_generated

        return schema_py_generated
