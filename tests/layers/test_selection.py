"""tfqnn.layers.selection: the walk into recurrent layers that INQ, sketch, the summary
and the monitor share, and the unquantized kernels it selects."""

import keras
import pytest

import tfqnn
from tests.layers.factories import nested_recurrent_model
from tfqnn.layers import selection


def test_recurrent_cells_of_every_container():
    model = nested_recurrent_model()
    bidi, stack, out = (model.get_layer(n) for n in ("bidi", "stack", "out"))
    forward, backward = bidi.forward_layer.cell, bidi.backward_layer.cell
    assert forward is not backward
    gru, plain, simple = stack.cell.cells
    assert selection.named_cells(bidi) == [
        ("bidi/forward_lstm/quant_lstm_cell", forward),
        ("bidi/backward_lstm/quant_lstm_cell", backward),
    ]
    assert selection.named_cells(stack) == [
        ("stack/gru_cell", gru),
        ("stack/plain_cell", plain),
        ("stack/simple_cell", simple),
    ]
    assert selection.recurrent_cells(out) == []
    # The plain Keras cell holds no quantizer: it is no owner.
    owners = [selection.quantizer_owners(layer) for layer in model.layers]
    assert [[(name, id(o)) for name, o in found] for found in owners] == [
        [
            ("bidi/forward_lstm/quant_lstm_cell", id(forward)),
            ("bidi/backward_lstm/quant_lstm_cell", id(backward)),
        ],
        [("stack/gru_cell", id(gru)), ("stack/simple_cell", id(simple))],
        [("out", id(out))],
    ]


def test_float_kernels_are_the_cells_w_and_u():
    model = nested_recurrent_model(kernel_quantizer=None, recurrent_quantizer="ste_tern")
    found = selection.select_float_kernels(model, None, "tool", "act")
    bidi, stack, out = (model.get_layer(n) for n in ("bidi", "stack", "out"))
    gru, _, simple = stack.cell.cells
    # Only W of each tfqnn cell (U is ternary, biases are never selected) and out's kernel.
    expected = [
        (bidi, bidi.forward_layer.cell),
        (bidi, bidi.backward_layer.cell),
        (stack, gru),
        (stack, simple),
        (out, out),
    ]
    assert [(id(layer), id(owner), spec.weight) for layer, owner, spec in found] == [
        (id(layer), id(owner), "kernel") for layer, owner in expected
    ]
    named = selection.select_float_kernels(model, ("stack",), "tool", "act")
    assert [spec.weight for _, _, spec in named] == ["kernel", "kernel"]
    with pytest.raises(ValueError, match="layer 'plain' .RNN. has no unquantized kernel"):
        plain = keras.Sequential(
            [keras.Input((5, 3)), keras.layers.RNN(keras.layers.LSTMCell(2), name="plain")]
        )
        selection.select_float_kernels(plain, ("plain",), "tool", "act")


def test_summary_counts_every_cell():
    model = nested_recurrent_model(kernel_quantizer="ste_tern", recurrent_quantizer="ste_tern")
    rows = {row.name: row for row in tfqnn.summary(model, print_fn=None).layers}
    bidi, stack = model.get_layer("bidi"), model.get_layer("stack")
    ternary = sum(
        v.numpy().size
        for cell in selection.recurrent_cells(bidi) + selection.recurrent_cells(stack)
        if isinstance(cell, tfqnn.layers.QuantizerMixin)
        for v in (cell.kernel, cell.recurrent_kernel)
    )
    assert rows["bidi"].params[2] + rows["stack"].params[2] == ternary
    assert (
        rows["stack"].params[32]
        == sum(v.numpy().size for v in stack.weights) - (rows["stack"].params[2])
    )
