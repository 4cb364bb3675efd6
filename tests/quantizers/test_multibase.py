"""MultiBinary (ABC-Net) and ResidualSign (network sketching) against numpy references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import quantizers


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def np_rows(w, axis):
    """(channels, values) rows of ``w`` and the inverse, with numpy only."""
    if axis is None:
        return w.reshape(1, -1), lambda r: r.reshape(w.shape)
    axes = tuple(a % w.ndim for a in np.atleast_1d(axis))
    other = [a for a in range(w.ndim) if a not in axes]
    moved = np.transpose(w, list(axes) + other)
    rows = moved.reshape(int(np.prod([w.shape[a] for a in axes])), -1)
    return rows, lambda r: np.transpose(r.reshape(moved.shape), np.argsort(list(axes) + other))


def reference_multi_binary(w, bases, axis):
    """ABC-Net: B_i = sign(W - mean + u_i std), alpha = lstsq per row."""
    rows, restore = np_rows(w.astype(np.float64), axis)
    u = np.linspace(-1, 1, bases) if bases > 1 else [0.0]
    out = np.empty_like(rows)
    for c, row in enumerate(rows):
        b = np.stack([np_sign(row - row.mean() + ui * row.std()) for ui in u], axis=1)
        alpha = np.linalg.lstsq(b, row, rcond=None)[0]
        out[c] = b @ alpha
    return restore(out)


def reference_sketch(w, bases, refined, axis=-1):
    """Network sketching, direct or refined; returns the approximation after each basis."""
    rows, restore = np_rows(w.astype(np.float64), axis)
    steps = [np.empty_like(rows) for _ in range(bases)]
    for c, row in enumerate(rows):
        residual, chosen, alphas = row, [], []
        for j in range(bases):
            b = np_sign(residual)
            chosen.append(b)
            if refined:
                matrix = np.stack(chosen, axis=1)
                alphas = np.linalg.lstsq(matrix, row, rcond=None)[0]
            else:
                alphas.append(np.mean(residual * b))  # = mean|R|
            approximation = np.stack(chosen, axis=1) @ np.asarray(alphas)
            residual = row - approximation
            steps[j][c] = approximation
    return [restore(s) for s in steps]


def forward_backward(quantizer, w):
    x = tf.constant(w)
    dy = tf.constant(np.random.default_rng(5).uniform(0.5, 2.0, w.shape).astype(w.dtype))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x)
    return y.numpy(), tape.gradient(y, x, output_gradients=dy).numpy(), dy.numpy()


@pytest.mark.parametrize("bases", [1, 2, 3, 5])
@pytest.mark.parametrize("axis", [None, -1, (-2, -1)], ids=["tensor", "channel", "two_axes"])
def test_multi_binary_matches_numpy(rng, bases, axis):
    w = rng.normal(0.1, 0.4, (3, 3, 4, 6)).astype(np.float32)
    y, grad, dy = forward_backward(quantizers.MultiBinary(bases, axis=axis), w)
    np.testing.assert_allclose(y, reference_multi_binary(w, bases, axis), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(grad, dy)  # straight through
    # Per row, at most 2^bases distinct values: M binary bases.
    rows, _ = np_rows(y, axis)
    assert all(len(np.unique(np.round(row, 5))) <= 2**bases for row in rows)


def test_multi_binary_least_squares_is_optimal(rng):
    # No other scales on the same bases come closer.
    w = rng.normal(size=(40, 8)).astype(np.float32)
    y = quantizers.MultiBinary(3)(w).numpy().astype(np.float64)
    u = np.linspace(-1, 1, 3)
    b = np.stack([np_sign(w - w.mean() + ui * w.std()).reshape(-1) for ui in u], axis=1)
    alpha = np.linalg.lstsq(b, y.reshape(-1), rcond=None)[0]  # the scales it used
    best = np.sum((w.reshape(-1) - b @ alpha) ** 2)
    for delta in rng.normal(0, 0.01, (20, 3)):
        assert np.sum((w.reshape(-1) - b @ (alpha + delta)) ** 2) >= best


@pytest.mark.parametrize("refined", [False, True], ids=["direct", "refined"])
@pytest.mark.parametrize("axis", [-1, None, (-2, -1)], ids=["filter", "tensor", "two_axes"])
def test_residual_sign_matches_numpy_and_residuals_shrink(rng, refined, axis):
    w = rng.normal(0.0, 0.3, (3, 3, 5, 4)).astype(np.float32)
    expected = reference_sketch(w, 5, refined, axis)
    norms = []
    for bases in range(1, 6):
        y, grad, dy = forward_backward(quantizers.ResidualSign(bases, refined, axis), w)
        np.testing.assert_allclose(y, expected[bases - 1], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(grad, dy)
        norms.append(np.linalg.norm(w - y))
    assert all(later < earlier for earlier, later in zip(norms, norms[1:])), norms


def test_refined_beats_direct_on_the_same_two_bases(rng):
    # With two bases both methods pick the same B_1 and B_2; least squares is no worse.
    w = rng.normal(size=(6, 6, 3, 8)).astype(np.float32)
    direct = quantizers.ResidualSign(2, refined=False)(w).numpy()
    refined = quantizers.ResidualSign(2, refined=True)(w).numpy()

    def per_filter(y):
        return np.sum((w - y) ** 2, axis=(0, 1, 2))

    assert np.all(per_filter(refined) <= per_filter(direct) * (1 + 1e-5))
    assert np.sum(per_filter(refined)) < np.sum(per_filter(direct))


def test_direct_sketch_scale_is_the_mean_magnitude():
    w = np.array([[0.5, -2.0], [-1.5, 1.0]], np.float32)  # two filters (columns)
    y = quantizers.ResidualSign(1, refined=False)(w).numpy()
    np.testing.assert_allclose(y, [[1.0, -1.5], [-1.0, 1.5]])


def test_degenerate_tensors():
    # Equal bases (a constant tensor) take the minimum-norm least-squares solution.
    ones = np.full((4, 3), 0.7, np.float32)
    np.testing.assert_allclose(quantizers.MultiBinary(4)(ones).numpy(), ones, rtol=1e-5)
    np.testing.assert_allclose(quantizers.ResidualSign(3)(ones).numpy(), ones, rtol=1e-5)
    zeros = np.zeros((2, 5), np.float32)
    np.testing.assert_array_equal(quantizers.ResidualSign(3)(zeros).numpy(), zeros)
    np.testing.assert_array_equal(quantizers.MultiBinary(2, axis=-1)(zeros).numpy(), zeros)


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: quantizers.MultiBinary(0), "Invalid bases=0: expected an integer from 1 to 8"),
        (lambda: quantizers.MultiBinary(9), "Invalid bases=9"),
        (lambda: quantizers.MultiBinary(True), "Invalid bases=True"),
        (lambda: quantizers.MultiBinary(axis="last"), "Invalid axis='last'"),
        (lambda: quantizers.ResidualSign(0), "Invalid bases=0"),
        (lambda: quantizers.ResidualSign(12), "Invalid bases=12"),
        (lambda: quantizers.ResidualSign(refined=1), "Invalid refined=1: expected True or False"),
        (lambda: quantizers.ResidualSign(axis=()), "Invalid axis=()"),
    ],
)
def test_bad_arguments(factory, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        factory()


def test_in_layers_with_the_kernels_channel_axis(rng):
    depthwise = tfqnn.layers.QuantDepthwiseConv2D(3, depthwise_quantizer="residual_sign")
    assert depthwise.depthwise_quantizer.axis == (-2, -1)
    dense = tfqnn.layers.QuantDense(4, kernel_quantizer=quantizers.MultiBinary(2, axis=-1))
    x = rng.normal(size=(8, 5)).astype(np.float32)
    out = dense(x).numpy()
    kernel = dense.kernel.numpy()
    expected = x @ reference_multi_binary(kernel, 2, -1)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    summary = tfqnn.summary(keras.Sequential([keras.Input((5,)), dense]), print_fn=None)
    assert summary.layers[0].weight_bits == 2


# ---------------------------------------------------------------------------
# MultiBinaryActivation: trainable shifts and scales, owned through a layer.


def activation_layer(bases, shifts, scales):
    layer = tfqnn.layers.QuantActivation(quantizers.MultiBinaryActivation(bases))
    layer.quantizer.shifts.assign(np.asarray(shifts, np.float32))
    layer.quantizer.scales.assign(np.asarray(scales, np.float32))
    return layer


def test_multi_binary_activation_forward_and_gradients_match_numpy(rng):
    shifts, scales = np.float32([0.3, 0.0, -0.35]), np.float32([0.5, 0.25, 1.5])
    layer = activation_layer(3, shifts, scales)
    # Points on the clip edges and the sign's threshold as well as random ones.
    edges = np.concatenate([-shifts, 1 - shifts, 0.5 - shifts]).astype(np.float32)
    x = np.concatenate([rng.uniform(-1, 2, 60).astype(np.float32), edges]).reshape(3, -1)
    dy = rng.uniform(0.5, 2.0, x.shape).astype(np.float32)
    x_tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tensor)
        y = layer(x_tensor, training=True)
    variables = [layer.quantizer.shifts, layer.quantizer.scales]
    dx, dshifts, dscales = tape.gradient(y, [x_tensor, *variables], output_gradients=dy)

    shifted = x[None] + shifts[:, None, None]  # (bases, ...)
    a = np.where(np.clip(shifted, 0, 1) >= 0.5, 1.0, -1.0)
    inside = (shifted >= 0) & (shifted <= 1)
    np.testing.assert_allclose(y.numpy(), np.tensordot(scales, a, 1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx.numpy(), np.tensordot(scales, inside * dy, 1), rtol=1e-5)
    np.testing.assert_allclose(
        dshifts.numpy(), scales * (inside * dy).sum(axis=(1, 2)), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(dscales.numpy(), (a * dy).sum(axis=(1, 2)), rtol=1e-5, atol=1e-5)


def test_multi_binary_activation_initial_staircase():
    layer = tfqnn.layers.QuantActivation("multi_binary_activation")
    np.testing.assert_allclose(layer.quantizer.shifts.numpy(), [0.25, 0.0, -0.25])
    np.testing.assert_allclose(layer.quantizer.scales.numpy(), [1 / 6] * 3)
    y = layer(np.float32([[-1.0, 0.2, 0.3, 0.6, 0.8, 2.0]])).numpy()
    np.testing.assert_allclose(y, [[-0.5, -0.5, -1 / 6, 1 / 6, 0.5, 0.5]], atol=1e-6)
    assert layer.quantizer.precision == 3


def test_abc_net_layer_is_the_double_sum_of_binary_products(rng):
    # sum_m sum_n alpha_m beta_n (A_n @ B_m) == quantized inputs @ quantized kernel.
    layer = tfqnn.layers.QuantDense(
        5,
        use_bias=False,
        input_quantizer=quantizers.MultiBinaryActivation(2),
        kernel_quantizer=quantizers.MultiBinary(3, axis=-1),
    )
    x = rng.uniform(-0.5, 1.5, (7, 6)).astype(np.float32)
    out = layer(x).numpy()
    q = layer.input_quantizer
    shifts, betas = q.shifts.numpy(), q.scales.numpy()
    w = layer.kernel.numpy().astype(np.float64)
    u = np.linspace(-1, 1, 3)
    mean, std = w.mean(axis=0), w.std(axis=0)
    b = [np_sign(w - mean + ui * std) for ui in u]
    alphas = np.stack(
        [
            np.linalg.lstsq(np.stack([bi[:, c] for bi in b], 1), w[:, c], rcond=None)[0]
            for c in range(5)
        ]
    )  # (channels, M)
    expected = np.zeros((7, 5))
    for n in range(2):
        a_n = np.where(np.clip(x + shifts[n], 0, 1) >= 0.5, 1.0, -1.0)
        for m in range(3):
            expected += betas[n] * alphas[:, m] * (a_n @ b[m])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_multi_binary_activation_needs_its_own_layer():
    with pytest.raises(ValueError, match="use it as a layer's input_quantizer or in"):
        quantizers.MultiBinaryActivation()(np.zeros(3, np.float32))
    shared = quantizers.MultiBinaryActivation(2)
    tfqnn.layers.QuantDense(2, input_quantizer=shared)
    with pytest.raises(ValueError, match="an instance belongs to one layer"):
        tfqnn.layers.QuantDense(2, input_quantizer=shared)
    with pytest.raises(ValueError, match="Invalid bases=0"):
        quantizers.MultiBinaryActivation(0)
    with pytest.raises(ValueError, match="Invalid bases=9"):
        quantizers.MultiBinaryActivation(9)


@pytest.mark.parametrize(
    "quantizer",
    [
        quantizers.MultiBinary(3, axis=-1),
        quantizers.MultiBinary(2),
        quantizers.ResidualSign(3, refined=False),
        quantizers.ResidualSign(4),
    ],
    ids=["multi_binary_channel", "multi_binary_tensor", "direct", "refined"],
)
def test_decompose_gives_the_bases_and_scales_that_sum_to_the_output(rng, quantizer):
    w = rng.normal(size=(3, 3, 5, 6)).astype(np.float32)
    scales, bases = (t.numpy() for t in quantizer.decompose(w))
    assert scales.shape == bases.shape == (quantizer.bases, *w.shape)
    assert set(np.unique(bases)) <= {-1.0, 1.0}
    # One scale per basis and output channel (per tensor without an axis).
    per = scales.reshape(quantizer.bases, -1, w.shape[-1])
    np.testing.assert_array_equal(per, np.broadcast_to(per[:, :1], per.shape))
    if quantizer.axis is None:
        np.testing.assert_array_equal(per, np.broadcast_to(per[:, :1, :1], per.shape))
    np.testing.assert_allclose(
        np.sum(scales * bases, axis=0), quantizer(w).numpy(), rtol=1e-5, atol=1e-6
    )
    # The first basis of sketching is sign(W), of ABC-Net sign(W - mean + u_1 std).
    if isinstance(quantizer, quantizers.ResidualSign):
        np.testing.assert_array_equal(bases[0], np.where(w >= 0, 1.0, -1.0))
