"""Reading .tflite files in tests: the builtin ops a file holds (`tfqnn.lite.builtin_ops_in`)."""

from tfqnn.lite import builtin_ops_in as builtin_ops

__all__ = ["builtin_ops"]
