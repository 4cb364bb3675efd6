"""Each figure renders (pixels drawn, axes labelled) and shows the right numbers."""

import keras
import numpy as np
import pytest

pytest.importorskip("matplotlib")

import tfqnn
from tests.optimizers.conftest import binary_mlp


def pixels(figure):
    """The rendered RGB image, and the share of its pixels that are not white."""
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    return image, float(np.mean(np.any(image < 250, axis=-1)))


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_summary_draws_params_macs_and_memory_per_layer():
    model = binary_mlp()
    figure = tfqnn.plot.summary(model)
    image, drawn = pixels(figure)
    assert image.shape[0] > 100 and drawn > 0.05
    axes = figure.axes
    assert [ax.get_ylabel() for ax in axes] == ["parameters", "MACs per sample", "memory (bytes)"]
    assert axes[-1].get_xlabel() == "layer"
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == [
        layer.name for layer in model.layers
    ]
    # Parameter bars: stacked heights per layer equal tfqnn.summary's counts.
    result = tfqnn.summary(model, print_fn=None)
    heights = np.zeros(len(model.layers))
    for patch in axes[0].patches:
        heights[round(patch.get_x() + patch.get_width() / 2)] += patch.get_height()
    np.testing.assert_array_equal(heights, [sum(row.params.values()) for row in result.layers])
    memory = [patch.get_height() for patch in axes[2].patches]
    np.testing.assert_allclose(memory, [row.memory_bytes for row in result.layers])


def test_summary_of_a_model_without_quantized_layers_is_empty_with_a_note():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    figure = tfqnn.plot.summary(model)
    _, drawn = pixels(figure)
    assert drawn > 0.01  # axes, labels and the note
    assert all(not ax.patches for ax in figure.axes)
    assert "no tfqnn quantized layer in this model" in texts(figure.axes[0])
    assert figure.axes[0].get_ylabel() == "parameters"


def sweep_front(points):
    """The 2-D front by sort and sweep: by increasing x, the points of the highest y at
    that x are on the front when that y beats every y at a smaller x (a point of smaller
    x and equal y beats them). Equal points do not beat each other."""
    front, best = [], -np.inf
    for x in sorted({x for x, _ in points}):
        group = [i for i, (a, _) in enumerate(points) if a == x]
        top = max(points[i][1] for i in group)
        if top > best:
            front += [i for i in group if points[i][1] == top]
            best = top
    return sorted(front)


def test_pareto_front_matches_sort_and_sweep(rng):
    for trial in range(40):
        n = int(rng.integers(1, 30))
        if trial % 2:  # few distinct values: ties in x, in y and equal points
            points = [tuple(p) for p in rng.integers(0, 5, size=(n, 2)).astype(float)]
        else:
            points = [tuple(p) for p in rng.normal(size=(n, 2))]
        front = tfqnn.plot.pareto_front(points)
        expected = sweep_front(points)
        assert sorted(front) == expected, points
        assert front == sorted(expected, key=lambda i: points[i])  # in order of x
        # Along the front, x rises and y rises with it (equal points aside).
        for i, j in zip(front, front[1:]):
            assert points[i] == points[j] or (
                points[i][0] < points[j][0] and points[i][1] < points[j][1]
            )
    assert tfqnn.plot.pareto_front([(1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (0.5, 0.1)]) == [3, 0, 1]
    assert tfqnn.plot.pareto_front([(1.0, 1.0), (1.0, 1.0), (1.0, 0.5), (0.0, 1.0)]) == [3]
    assert tfqnn.plot.pareto_front([]) == []


def test_pareto_marks_the_front_and_labels_every_run():
    results = {
        "float": {"accuracy": 0.91, "size": 4.0e6, "latency": 9.0},
        "binary": {"accuracy": 0.86, "size": 1.6e5, "latency": 2.0},
        "ternary": {"accuracy": 0.84, "size": 3.0e5, "latency": 3.0},  # beaten by binary
    }
    figure = tfqnn.plot.pareto(results, x="latency")
    _, drawn = pixels(figure)
    ax = figure.axes[0]
    assert drawn > 0.02
    assert ax.get_xlabel() == "latency (ms)" and ax.get_ylabel() == "accuracy"
    assert sorted(texts(ax)) == ["binary", "float", "ternary"]
    front = ax.collections[1].get_offsets()
    np.testing.assert_array_equal(front, [[2.0, 0.86], [9.0, 0.91]])
    assert "2 of 3 runs on the front" in ax.get_title()


def test_pareto_of_nothing_is_an_empty_chart_and_bad_input_raises():
    figure = tfqnn.plot.pareto({})
    assert "no results to plot" in texts(figure.axes[0])
    assert figure.axes[0].get_xlabel() == "model size (bytes)"
    with pytest.raises(ValueError, match="Invalid x='flops'"):
        tfqnn.plot.pareto({}, x="flops")
    with pytest.raises(ValueError, match=r"Invalid results\['a'\].*\['size'\]"):
        tfqnn.plot.pareto({"a": {"accuracy": 0.5}})


@pytest.mark.parametrize(
    "identifier, forward, backward",
    [
        ("ste_sign", lambda x: np.where(x >= 0, 1, -1), lambda x: (np.abs(x) <= 1).astype(float)),
        (
            "approx_sign",
            lambda x: np.where(x >= 0, 1, -1),
            lambda x: np.where(np.abs(x) <= 1, 2 - 2 * np.abs(x), 0),
        ),
    ],
)
def test_quantizer_draws_the_forward_pass_and_the_estimator(identifier, forward, backward):
    figure = tfqnn.plot.quantizer(identifier, x_range=(-1.5, 1.5), points=61)
    _, drawn = pixels(figure)
    left, right = figure.axes
    assert drawn > 0.02
    assert (left.get_ylabel(), right.get_ylabel(), left.get_xlabel()) == ("q(x)", "dq/dx", "x")
    x, y = left.lines[0].get_data()
    np.testing.assert_allclose(y, forward(x))
    x, dy = right.lines[0].get_data()
    keep = np.abs(np.abs(x) - 1) > 1e-3  # the estimator's kink at |x| = 1 is either side
    np.testing.assert_allclose(dy[keep], backward(x)[keep], atol=1e-5)


@pytest.mark.parametrize("alias", sorted(tfqnn.quantizers.ALIASES))
def test_every_quantizer_renders(alias):
    figure = tfqnn.plot.quantizer(alias, points=41)
    _, drawn = pixels(figure)
    assert drawn > 0.02
    y = figure.axes[0].lines[0].get_data()[1]
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(q=None), "Invalid q=None"),
        (dict(q="ste_sign", x_range=(1, -1)), "Invalid x_range="),
        (dict(q="ste_sign", points=1), "Invalid points=1"),
    ],
)
def test_quantizer_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfqnn.plot.quantizer(**kwargs)


def test_a_quantizer_owning_weights_is_drawn_with_its_initial_weights():
    quantizer = tfqnn.quantizers.MultiBinaryActivation(bases=2)
    figure = tfqnn.plot.quantizer(quantizer, x_range=(-1.0, 2.0), points=61)
    x, y = figure.axes[0].lines[0].get_data()
    # Initial shifts 0.5 - n / 3 and scales 1 / 4 (tfqnn/quantizers/multibase.py).
    shifts, scales = 0.5 - np.arange(1, 3) / 3, np.full(2, 0.25)
    clipped = np.clip(x[:, None] + shifts, 0.0, 1.0)
    expected = (scales * np.where(clipped - 0.5 >= 0, 1.0, -1.0)).sum(axis=1)
    keep = np.min(np.abs(x[:, None] + shifts - 0.5), axis=1) > 1e-3
    np.testing.assert_allclose(y[keep], expected[keep], atol=1e-6)
    assert quantizer.shifts is None  # the caller's quantizer stays free for a layer


def test_a_quantizer_with_non_trainable_weights_is_drawn_over_its_range():
    quantizer = tfqnn.quantizers.RangeFakeQuant(bits=2, min_value=-1.0, max_value=2.0)
    figure = tfqnn.plot.quantizer(quantizer, x_range=(-2.0, 3.0), points=101)
    x, y = figure.axes[0].lines[0].get_data()
    # 2 bits on [-1, 2]: four levels a step of 1 apart, the inputs clamped to the range.
    expected = np.clip(np.round(x), -1.0, 2.0)
    keep = np.abs(x - np.round(x) - 0.5) > 1e-3  # away from the rounding ties
    np.testing.assert_allclose(y[keep], expected[keep], atol=1e-6)
    assert quantizer.min_var is None  # the caller's quantizer stays free for a layer
