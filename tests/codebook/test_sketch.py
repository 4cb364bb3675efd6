"""tfqnn.codebook.sketch: post-training network sketching of a model's kernels."""

import warnings

import keras
import numpy as np
import pytest

import tfqnn
from tests.layers.factories import nested_recurrent_model
from tfqnn.codebook import sketch
from tfqnn.quantizers import ResidualSign


def make_mlp(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            tfqnn.layers.QuantDense(16, activation="relu", name="hidden"),
            tfqnn.layers.QuantDense(3, name="out"),
        ]
    )
    return model


def numpy_forward(x, kernels, biases):
    h = np.maximum(x @ kernels[0] + biases[0], 0.0)
    return h @ kernels[1] + biases[1]


@pytest.fixture
def x():
    return np.random.default_rng(3).normal(size=(20, 12)).astype(np.float32)


@pytest.mark.parametrize("refined", [True, False], ids=["refined", "direct"])
def test_sketched_model_computes_with_sketched_kernels(x, refined):
    model = make_mlp()
    before = model.predict(x, verbose=0)
    sketched = sketch(model, bases=2, refined=refined)
    kernels = [model.get_layer(n).kernel.numpy() for n in ("hidden", "out")]
    biases = [model.get_layer(n).bias.numpy() for n in ("hidden", "out")]
    expected = numpy_forward(x, [ResidualSign(2, refined)(k).numpy() for k in kernels], biases)
    np.testing.assert_allclose(sketched.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    # The copy keeps the latent weights; the original is left as it was.
    for a, b in zip(model.weights, sketched.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert model.get_layer("out").kernel_quantizer is None
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    summary = tfqnn.summary(sketched, print_fn=None)
    assert [row.weight_bits for row in summary.layers] == [2, 2]


def test_more_bases_come_closer_to_the_float_model(x):
    model = make_mlp()
    reference = model.predict(x, verbose=0)
    errors = [
        np.abs(sketch(model, bases=b).predict(x, verbose=0) - reference).mean()
        for b in (1, 2, 4, 6)
    ]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors


def test_selected_layers_nested_models_and_recurrent_cells():
    inner = keras.Sequential(
        [keras.Input((5, 3)), tfqnn.layers.QuantLSTM(4, name="lstm")], name="inner"
    )
    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            inner,
            tfqnn.layers.QuantDense(4, name="mid"),
            tfqnn.layers.QuantDense(2, name="out"),
            keras.layers.Dense(2, name="plain"),
        ]
    )
    everything = sketch(model, bases=3)
    cell = everything.get_layer("inner").get_layer("lstm").cell
    assert cell.kernel_quantizer == ResidualSign(3) and cell.recurrent_quantizer == ResidualSign(3)
    assert cell.bias_quantizer is None
    assert everything.get_layer("mid").kernel_quantizer == ResidualSign(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no weight_clip warning: sketching's STE does not clip
        only_out = sketch(model, bases=1, refined=False, layers=["out"])
    assert only_out.get_layer("out").kernel_quantizer == ResidualSign(1, False)
    assert only_out.get_layer("mid").kernel_quantizer is None
    assert only_out.get_layer("inner").get_layer("lstm").cell.kernel_quantizer is None


def test_fine_tunes_and_saves(x, tmp_path):
    model = make_mlp()
    sketched = sketch(model, bases=2)
    sketched.compile("adam", "mse")
    latent = sketched.get_layer("out").kernel.numpy()
    sketched.fit(x, np.zeros((20, 3), np.float32), epochs=1, verbose=0)
    assert not np.array_equal(sketched.get_layer("out").kernel.numpy(), latent)
    path = str(tmp_path / "sketched.keras")
    sketched.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("hidden").kernel_quantizer == ResidualSign(2)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), sketched.predict(x, verbose=0))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = tfqnn.layers.QuantDense(2)

    def call(self, inputs):
        return self.dense(inputs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bases": 0}, "Invalid bases=0: expected an integer from 1 to 8"),
        ({"bases": 9}, "Invalid bases=9"),
        ({"refined": "yes"}, "Invalid refined='yes'"),
        ({"layers": "out"}, "Invalid layers='out'"),
        (
            {"layers": ["nope"]},
            r"'nope' is not a layer of model .*its layers are \['hidden', 'out'\]",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sketch(make_mlp(), **kwargs)


def test_bad_models():
    binary = keras.Sequential(
        [
            keras.Input((4,)),
            tfqnn.layers.QuantDense(
                2, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name="b"
            ),
        ]
    )
    with pytest.raises(ValueError, match="found no kernel to sketch"):
        sketch(binary)
    with pytest.raises(ValueError, match=r"layer 'b' \(QuantDense\) has no unquantized kernel"):
        sketch(binary, layers=["b"])
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="found no kernel to sketch"):
        sketch(plain)
    with pytest.raises(ValueError, match="expected a built keras.Model"):
        sketch(keras.Sequential([tfqnn.layers.QuantDense(2)]))
    subclassed = Subclassed()
    subclassed(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="sketch copies Sequential and functional models"):
        sketch(subclassed)


def test_cells_of_bidirectional_and_stacked_rnns():
    model = nested_recurrent_model()
    x = np.random.default_rng(0).normal(size=(6, 5, 3)).astype(np.float32)
    sketched = sketch(model, bases=2)
    bidi, stack = sketched.get_layer("bidi"), sketched.get_layer("stack")
    cells = [bidi.forward_layer.cell, bidi.backward_layer.cell, *stack.cell.cells]
    for cell in cells[:3] + cells[4:]:
        assert cell.kernel_quantizer == ResidualSign(2)
        assert cell.recurrent_quantizer == ResidualSign(2)
        assert cell.bias_quantizer is None
    assert not hasattr(cells[3], "kernel_quantizer")  # the Keras cell
    assert sketched.get_layer("out").kernel_quantizer == ResidualSign(2)
    # The original with the same quantizers set on its cells computes the same.
    for _, owner, spec in tfqnn.layers.selection.select_float_kernels(model, None, "t", "a"):
        setattr(owner, spec.quantizer, ResidualSign(2))
    np.testing.assert_allclose(sketched(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
