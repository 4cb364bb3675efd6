"""benchmarks/zoo_latency.py's helpers on one tiny binary network: files, timing, table, targets."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tfqnn

pytest.importorskip("ai_edge_litert")

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("zoo_latency")
    finally:
        sys.path.remove(str(BENCHMARKS))


def tiny_binary(size: int) -> keras.Model:
    binary = {
        "input_quantizer": "ste_sign",
        "kernel_quantizer": "ste_sign",
        "kernel_constraint": "weight_clip",
        "use_bias": False,
    }
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = tfqnn.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, **binary)(x)
    x = keras.layers.BatchNormalization()(x)
    x = tfqnn.layers.QuantConv2D(64, 3, padding="same", pad_values=1.0, **binary)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_float_architecture_drops_every_quantizer(bench: Any) -> None:
    model = tiny_binary(8)
    twin = bench.float_architecture(model)
    quantized = [layer for layer in model.layers if getattr(layer, "quantizers", None)]
    assert len(quantized) == 2
    for layer in twin.layers:
        for quantizer in getattr(layer, "quantizers", {}).values():
            assert quantizer is None
        if hasattr(layer, "pad_values"):
            assert layer.pad_values == 0.0
            assert layer.kernel_constraint is None
    assert twin.count_params() == model.count_params()
    # Without quantizers a binary layer of the twin is a plain float convolution.
    layer = next(layer for layer in twin.layers if isinstance(layer, tfqnn.layers.QuantConv2D))
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 32)).astype(np.float32)
    expected = keras.ops.conv(x, layer.kernel, padding="same")
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)
    assert np.any(np.asarray(layer(x)) < 0) and np.any(np.abs(np.asarray(layer(x))) != 1)


def test_tiny_network_table(bench: Any, tmp_path: Path) -> None:
    def builder(network: str, variant: str, size: int) -> keras.Model:
        assert network == "Tiny"
        model = tiny_binary(size)
        return model if variant == "binary" else bench.float_architecture(model)

    entries = bench.build_entries(["Tiny"], 8, 2, tmp_path, verbose=False, builder=builder)
    assert [(e.network, e.variant) for e in entries] == [
        ("Tiny", "binary"),
        ("Tiny", "binary-int8"),
        ("Tiny", "float32"),
        ("Tiny", "int8"),
    ]
    for entry in entries:
        assert entry.path.is_file() and entry.file_bytes == entry.path.stat().st_size > 0
    library = str(tfqnn.lite.library_path())
    for entry in entries[:2]:
        entry.peak_mb = bench.measure_memory(entry, library)
        assert entry.peak_mb is None or entry.peak_mb > 0

    bench.time_entries(entries, [1, 2], rounds=2, seconds=0.02, library=library, verbose=False)
    census = {e.variant: e.ops for e in entries}
    assert census["binary"]["TfqnnBconv2d"] == 2
    assert census["binary-int8"]["TfqnnBconv2d"] == 2
    assert not any(name.startswith("Tfqnn") for name in census["float32"])
    assert not any(name.startswith("Tfqnn") for name in census["int8"])
    assert census["int8"].get("QUANTIZE", 0) >= 1  # float input, int8 inside
    # The binary-int8 file: int8 tensors between the ops (the float file has
    # none), int8 weights for the float stem and classifier (a smaller file).
    int8_tensors = {}
    for entry in entries[:2]:
        details = tfqnn.lite.Interpreter(model_path=str(entry.path)).get_tensor_details()
        int8_tensors[entry.variant] = sum(d["dtype"] == np.int8 for d in details)
    assert int8_tensors["binary"] == 0 and int8_tensors["binary-int8"] >= 4
    assert entries[1].file_bytes < entries[0].file_bytes

    rows = bench.table_rows(entries, [1, 2])
    assert [(r["network"], r["variant"]) for r in rows] == [(e.network, e.variant) for e in entries]
    for row in rows:
        assert row["file_mb"] > 0
        assert all(ms > 0 for ms in row["ms"].values())
        assert row["threads_speedup"] == pytest.approx(row["ms"][1] / row["ms"][2])
        assert all(0 < row["p10_ms"][n] <= row["ms"][n] for n in (1, 2))
    binary, binary_int8, f32, int8 = rows
    for row in (binary, binary_int8):
        for n in (1, 2):
            assert row["vs_float32"][n] == pytest.approx(f32["ms"][n] / row["ms"][n])
            assert row["vs_int8"][n] == pytest.approx(int8["ms"][n] / row["ms"][n])
    assert "vs_float32" not in f32

    goals = bench.targets(entries, [1, 2])
    assert [(g["target"], g["file"]) for g in goals] == [
        ("Tiny binary vs its float32 (1T)", "binary"),
        ("Tiny binary vs its int8 (1T)", "binary"),
        ("Tiny binary-int8 vs its float32 (1T)", "binary-int8"),
        ("Tiny binary-int8 vs its int8 (1T)", "binary-int8"),
    ]
    assert goals[0]["measured"] == pytest.approx(binary["vs_float32"][1])
    assert goals[3]["measured"] == pytest.approx(binary_int8["vs_int8"][1])
    p10 = binary_int8["p10_ms"][1]
    assert goals[3]["measured_p10"] == pytest.approx(int8["p10_ms"][1] / p10)
    for goal in goals:
        assert goal["met"] == (goal["measured"] >= goal["goal"])
    # QuickNetSmall gets its own targets (10x / 3x), not the generic 5x / 2x too.
    renamed = [dataclasses.replace(e, network="QuickNetSmall") for e in entries]
    goals = bench.targets(renamed, [1, 2])
    assert [(g["target"], g["goal"]) for g in goals] == [
        (f"QuickNetSmall {v} vs its {w} (1T)", goal)
        for v in ("binary", "binary-int8")
        for w, goal in (("float32", 10.0), ("int8", 3.0))
    ]


def test_arguments(bench: Any) -> None:
    args = bench.parse_args(["--quick", "--size", "32", "--threads", "1"])
    assert args.models == list(bench.QUICK_MODELS) and args.threads == [1]
    assert bench.parse_args([]).models == list(bench.ALL_MODELS)
    for bad in (
        ["--models", "ResNet99"],
        ["--threads", "0"],
        ["--threads", "x"],
        ["--rounds", "0"],
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)
