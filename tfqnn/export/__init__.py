"""Export trained tfqnn models to TFLite with bitpacked binary custom ops.

`to_tflite(model)` turns binary `QuantDense` / `QuantConv2D` layers (with the
BatchNorm, clamp and max pool after them folded in) into tfqnn's custom ops
and the rest into TFLite builtins; run the result with `tfqnn.lite`.
The ops are specified in docs/lite_ops.md.
"""

from tfqnn.export.converter import ExportError, to_tflite

__all__ = ["ExportError", "to_tflite"]
