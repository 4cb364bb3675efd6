"""benchmarks/zoo_op_profile.py: the single-op models it cuts out of a binary export."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tfqnn

litert = pytest.importorskip("ai_edge_litert.interpreter")

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def profile() -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("zoo_op_profile")
    finally:
        sys.path.remove(str(BENCHMARKS))


def residual_binary() -> keras.Model:
    """A float stem, two binary convolutions (pad_values 0 and 1) and a float shortcut."""
    binary = {
        "input_quantizer": "ste_sign",
        "kernel_quantizer": "ste_sign",
        "kernel_constraint": "weight_clip",
        "use_bias": False,
    }
    inputs = keras.Input((8, 8, 3))
    stem = keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = tfqnn.layers.QuantConv2D(32, 3, padding="same", pad_values=0.0, **binary)(stem)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Add()([x, stem])
    x = tfqnn.layers.QuantConv2D(64, 3, padding="same", pad_values=1.0, **binary)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def interpreter(content: bytes) -> Any:
    delegate = litert.load_delegate(str(tfqnn.lite.library_path()), options={"num_threads": "1"})
    result = litert.Interpreter(
        model_content=content, num_threads=1, experimental_delegates=[delegate]
    )
    result.allocate_tensors()
    return result


def own_ops(interp: Any) -> list[str]:
    """The model's operators (not the DELEGATE nodes that delegates add)."""
    return [op["op_name"] for op in interp._get_ops_details() if op["op_name"] != "DELEGATE"]


@pytest.mark.parametrize("variant", ["binary", "binary-int8"])
def test_cuts_chained_reproduce_the_file(profile: Any, variant: str) -> None:
    keras.utils.set_random_seed(3)
    model = residual_binary()
    if variant == "binary":
        data = tfqnn.export.to_tflite(model, batch_size=1, verbose=0)
    else:
        calibration = np.random.default_rng(5).standard_normal((8, 8, 8, 3)).astype(np.float32)
        data = tfqnn.export.to_tflite(
            model, batch_size=1, int8_representative_data=calibration, verbose=0
        )
    cuts, empty = profile.cut_models(data)
    whole = interpreter(data)
    kinds = own_ops(whole)
    assert [c.kind for c in cuts] == kinds
    assert {"TfqnnBconv2d", "TfqnnQuantize", "CONV_2D"} <= set(kinds)
    # The shortcut ADD is fused into the binary convolution (its fifth input,
    # float or int8), so a cut op with two non-constant inputs is still exercised.
    assert "ADD" not in kinds
    if variant != "binary":
        # int8 builtins: the input's QUANTIZE and the output's DEQUANTIZE; the
        # cuts keep the tensors' scales.
        assert {"QUANTIZE", "DEQUANTIZE"} <= set(kinds)
    assert [c.custom for c in cuts] == [k.startswith("Tfqnn") for k in kinds]

    x = np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)
    (detail,) = whole.get_input_details()
    whole.set_tensor(detail["index"], x)
    whole.invoke()
    (out,) = whole.get_output_details()
    expected = whole.get_tensor(out["index"])

    # Each cut keeps the file's tensor indices: run them in order, each on
    # the values the ones before it produced.
    values = {detail["index"]: x}
    for cut in cuts:
        single = interpreter(cut.content)
        assert own_ops(single) == [cut.kind]
        for d in single.get_input_details():
            single.set_tensor(d["index"], values[d["index"]])
        single.invoke()
        for d in single.get_output_details():
            values[d["index"]] = single.get_tensor(d["index"])
    np.testing.assert_array_equal(values[out["index"]], expected)

    nothing = interpreter(empty.content)
    assert own_ops(nothing) == []
    assert [d["index"] for d in nothing.get_input_details()] == [detail["index"]]
