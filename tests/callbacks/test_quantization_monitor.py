"""QuantizationMonitor writes the events it documents; read back with TensorBoard's reader."""

import importlib.util

import keras
import numpy as np
import pytest

import tfqnn
from tests.layers.factories import nested_recurrent_model
from tests.optimizers.conftest import binary_mlp, toy_data

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util


def read_events(log_dir):
    """{tag: [(step, value array)]} of every event file under log_dir/train."""
    accumulator = event_accumulator.EventAccumulator(
        str(log_dir / "train"), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    return {
        tag: [
            (e.step, np.asarray(tensor_util.make_ndarray(e.tensor_proto)))
            for e in accumulator.Tensors(tag)
        ]
        for tag in accumulator.Tags()["tensors"]
    }


class EpochKernels(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.kernels = []

    def on_train_begin(self, logs=None):
        self.on_epoch_end(-1)

    def on_epoch_end(self, epoch, logs=None):
        self.kernels.append(
            {
                layer.name: keras.ops.convert_to_numpy(layer.kernel).copy()
                for layer in self.model.layers
                if hasattr(layer, "kernel")
            }
        )


def test_epoch_events_hold_the_documented_statistics(tmp_path):
    model = binary_mlp()
    x, y = toy_data()
    model.compile(keras.optimizers.Adam(0.3), "sparse_categorical_crossentropy")
    recorder = EpochKernels()
    monitor = tfqnn.callbacks.QuantizationMonitor(tmp_path, data=x[:50])
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[recorder, monitor])
    events = read_events(tmp_path)
    binary = [model.layers[2].name, model.layers[4].name]
    expected = {f"quantization/{model.layers[0].name}/input/histogram"}
    for name in binary:
        expected |= {
            f"quantization/{name}/kernel/{s}"
            for s in ("latent", "at_bound", "distinct_values", "flip_ratio")
        }
        expected |= {f"quantization/{name}/input/{s}" for s in ("histogram", "positive_fraction")}
    assert set(events) == expected
    for name in binary:
        tag = f"quantization/{name}/kernel"
        assert [step for step, _ in events[f"{tag}/latent"]] == [0, 1, 2]
        for epoch in range(3):
            before, after = recorder.kernels[epoch][name], recorder.kernels[epoch + 1][name]
            histogram = events[f"{tag}/latent"][epoch][1]  # (bins, 3): left, right, count
            assert histogram[:, 2].sum() == after.size
            assert histogram[0, 0] == pytest.approx(after.min()) and histogram[
                -1, 1
            ] == pytest.approx(after.max())
            assert events[f"{tag}/at_bound"][epoch][1] == pytest.approx(
                np.mean(np.abs(after) >= 1.0)
            )
            assert events[f"{tag}/distinct_values"][epoch][1] == 2
            flips = np.mean(np.where(after >= 0, 1, -1) != np.where(before >= 0, 1, -1))
            assert events[f"{tag}/flip_ratio"][epoch][1] == pytest.approx(flips)
        assert (
            max(events[f"{tag}/at_bound"][e][1] for e in range(3)) > 0
        )  # Adam at lr 0.3 hits the clip
    # The inputs of the first binary layer: BatchNorm (inference) of the float layer's output.
    inputs = keras.ops.convert_to_numpy(model.layers[1](model.layers[0](x[:50]), training=False))
    balance = events[f"quantization/{binary[0]}/input/positive_fraction"][-1][1]
    assert balance == pytest.approx(np.mean(inputs >= 0))
    histogram = events[f"quantization/{binary[0]}/input/histogram"][-1][1]
    assert histogram[:, 2].sum() == inputs.size


def test_batch_frequency_writes_at_the_global_step(tmp_path):
    model = binary_mlp()
    x, y = toy_data(64)
    model.compile("adam", "sparse_categorical_crossentropy")
    monitor = tfqnn.callbacks.QuantizationMonitor(tmp_path, update_freq=3)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[monitor])  # 8 steps
    events = read_events(tmp_path)
    assert not any("input" in tag for tag in events)  # no data: no input statistics
    steps = [s for s, _ in events[f"quantization/{model.layers[4].name}/kernel/latent"]]
    assert steps == [3, 6]


def test_without_tensorboard_it_says_how_to_install(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else find_spec(name, *a),
    )
    with pytest.raises(ImportError, match=r"pip install 'tfqnn\[tensorboard\]'"):
        tfqnn.callbacks.QuantizationMonitor("logs")


@pytest.mark.parametrize("freq", [0, "batch", 1.5])
def test_invalid_update_freq_raises(freq):
    with pytest.raises(ValueError, match="Invalid update_freq="):
        tfqnn.callbacks.QuantizationMonitor("logs", update_freq=freq)


def test_cells_of_bidirectional_and_stacked_rnns(tmp_path):
    model = nested_recurrent_model(kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    monitor = tfqnn.callbacks.QuantizationMonitor(tmp_path)
    monitor.set_model(model)  # the calls fit makes, without training's tracing
    monitor.on_train_begin()
    monitor.on_epoch_end(0)
    monitor.on_train_end()
    events = read_events(tmp_path)
    bidi, stack = model.get_layer("bidi"), model.get_layer("stack")
    cells = {
        "bidi/forward_lstm/quant_lstm_cell": bidi.forward_layer.cell,
        "bidi/backward_lstm/quant_lstm_cell": bidi.backward_layer.cell,
        "stack/gru_cell": stack.cell.cells[0],
        "stack/simple_cell": stack.cell.cells[2],
    }
    assert {tag.rsplit("/", 2)[0] for tag in events} == {f"quantization/{name}" for name in cells}
    for name, cell in cells.items():
        histogram = events[f"quantization/{name}/kernel/latent"][0][1]
        assert histogram[:, 2].sum() == cell.kernel.numpy().size
        assert events[f"quantization/{name}/kernel/distinct_values"][0][1] == 2
