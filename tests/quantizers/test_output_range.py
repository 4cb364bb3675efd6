"""`Quantizer.output_range`: the interval every output lies in, reached at both ends."""

import numpy as np
import pytest
import tensorflow as tf

import tfqnn
from tfqnn import quantizers

# (factory, expected range from the quantizer's formula, or None: unbounded).
CASES = [
    (lambda: quantizers.SteSign(), (-1.0, 1.0)),
    (lambda: quantizers.SteSign(clip_value=None), (-1.0, 1.0)),
    (lambda: quantizers.ApproxSign(), (-1.0, 1.0)),
    (lambda: quantizers.StochasticSign(seed=1), (-1.0, 1.0)),
    (lambda: quantizers.ScaledSign(), None),
    (lambda: quantizers.SteTern(), None),
    (lambda: quantizers.SteTern(scaled=False), (-1.0, 1.0)),
    (lambda: quantizers.SteTern(threshold=0.5, scaled=False), (-1.0, 1.0)),
    (lambda: quantizers.StochasticTern(seed=2), (-1.0, 1.0)),
    (lambda: quantizers.DoReFa(bits=2), (0.0, 1.0)),
    (lambda: quantizers.DoReFa(bits=8), (0.0, 1.0)),
    (lambda: quantizers.DoReFa(bits=3, mode="weights"), (-1.0, 1.0)),
    (lambda: quantizers.DoReFa(bits=1, mode="weights"), None),
    (lambda: quantizers.DoReFaGradient(bits=4, seed=3), None),
    (lambda: quantizers.FixedPoint(2, 3), (-2.0, 2.0 - 2.0**-3)),
    (lambda: quantizers.FixedPoint(1, 0), (-1.0, 0.0)),
    (lambda: quantizers.FixedPoint(3, 2, signed=False), (0.0, 8.0 - 0.25)),
    (lambda: quantizers.FixedPoint(4, 4, rounding="stochastic", seed=4), (-8.0, 8.0 - 2.0**-4)),
    (lambda: quantizers.Uniform(levels=7), None),
    (lambda: quantizers.Uniform(levels=7, stochastic=True, seed=5), None),
    (lambda: quantizers.SymmetricUniform(bits=2), (-0.5, 0.5)),
    (lambda: quantizers.SymmetricUniform(bits=4), (-1.0 + 2.0**-3, 1.0 - 2.0**-3)),
    (lambda: quantizers.PowerOfTwo(bits=3), None),
    (lambda: quantizers.NoOp(), None),
    (lambda: quantizers.SwishSign(), (-1.0, 1.0)),
    (lambda: quantizers.MagnitudeAwareSign(), None),
    (lambda: quantizers.SteHeaviside(), (0.0, 1.0)),
    (lambda: quantizers.DoReFaWeights(bits=3), (-1.0, 1.0)),
    (lambda: quantizers.DoReFaWeights(bits=1), (-1.0, 1.0)),
    (lambda: quantizers.QuantizedBits(4, 1), (-2.0, 1.75)),
    (lambda: quantizers.QuantizedBits(4, 1, symmetric=True, alpha=0.5), (-0.875, 0.875)),
    (lambda: quantizers.QuantizedBits(3, 0, keep_negative=False), (0.0, 0.875)),
    (lambda: quantizers.QuantizedBits(1, 0), (-1.0, 1.0)),
    (lambda: quantizers.QuantizedBits(4, 0, alpha="auto"), None),
    (lambda: quantizers.QuantizedBits(4, 0, alpha="auto_po2"), None),
    (lambda: quantizers.QuantizedRelu(3, 1), (0.0, 1.75)),
    (lambda: quantizers.QuantizedPo2(4), (-8.0, 8.0)),
    (lambda: quantizers.QuantizedPo2(4, max_value=1.0), (-1.0, 1.0)),
    (lambda: quantizers.QuantizedPo2(5, max_value=6.0), (-8.0, 8.0)),
    (lambda: quantizers.QuantizedBinary(), None),
    (lambda: quantizers.QuantizedTernary("auto"), None),
    (lambda: quantizers.MultiBinary(bases=3), None),
    (lambda: quantizers.ResidualSign(bases=2), None),
    (lambda: tfqnn.layers.QuantActivation(quantizers.MultiBinaryActivation(2)).quantizer, None),
    (lambda: quantizers.Logarithmic(bits=3, max_exponent=1.0), (0.0, 2.0)),
    (lambda: tfqnn.layers.QuantActivation(quantizers.RangeFakeQuant(8)).quantizer, None),
    (lambda: quantizers.QuantizedTanh(), (-1.0, 1.0 - 2.0**-7)),
    (lambda: quantizers.QuantizedTanh(3, symmetric=True, use_real_tanh=True), (-0.75, 0.75)),
    (lambda: quantizers.QuantizedSigmoid(), (0.0, 1.0 - 2.0**-8)),
    (lambda: quantizers.QuantizedSigmoid(2, symmetric=True, use_real_sigmoid=True), (0.25, 0.75)),
]
IDS = [repr(factory()) for factory, _ in CASES]

rng = np.random.default_rng(0)
# Large values of both signs, so that saturating quantizers reach their bounds.
X = np.concatenate(
    [np.linspace(-100.0, 100.0, 41), rng.normal(0.0, 3.0, 200), [0.0, 0.5, -0.5, 1.0, -1.0]]
).astype(np.float32)


@pytest.mark.parametrize("factory,expected", CASES, ids=IDS)
def test_output_range_is_the_formula(factory, expected):
    assert factory().output_range == expected


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("factory,expected", [c for c in CASES if c[1] is not None], ids=str)
def test_outputs_lie_in_the_range_and_reach_both_ends(factory, expected, training):
    low, high = factory().output_range
    y = factory()(tf.constant(X), training=training).numpy()
    assert low <= y.min() and y.max() <= high
    assert y.min() == np.float32(low) and y.max() == np.float32(high)


# Bounded by its trainable scales, not by a formula: no static range.
WEIGHT_BOUNDED = (quantizers.MultiBinaryActivation, quantizers.RangeFakeQuant)


@pytest.mark.parametrize(
    "factory,expected",
    [c for c in CASES if c[1] is None and not isinstance(c[0](), WEIGHT_BOUNDED)],
    ids=str,
)
def test_unbounded_quantizers_follow_the_input_scale(factory, expected):
    """None is right: scaling the input by 1000 takes the outputs far past [-1, 1]."""
    y = factory()(tf.constant(1000.0 * X), training=False).numpy()
    assert np.abs(y).max() >= 100.0


def test_multi_binary_activation_lies_within_its_scales():
    quantizer = tfqnn.layers.QuantActivation(quantizers.MultiBinaryActivation(3)).quantizer
    quantizer.scales.assign(np.float32([0.5, -2.0, 0.25]))
    y = quantizer(tf.constant(1000.0 * X), training=False).numpy()
    assert quantizer.output_range is None
    assert np.abs(y).max() <= 2.75


def test_every_quantizer_class_is_covered():
    covered = {type(factory()) for factory, _ in CASES}
    assert set(quantizers.ALIASES.values()) <= covered


def test_a_custom_quantizer_is_unbounded_unless_it_says_otherwise():
    class Halve(quantizers.Quantizer):
        def call(self, x, training=None):
            return x / 2

    assert Halve().output_range is None
