"""Constructors validate their arguments and name the bad one in a ValueError."""

import numpy as np
import pytest

import tfqnn
from tfqnn import quantizers

Q = quantizers

BAD_ARGUMENTS = [
    # clip_value: positive number or None
    (lambda: Q.SteSign(clip_value=0.0), "clip_value"),
    (lambda: Q.SteSign(clip_value=-1.0), "clip_value"),
    (lambda: Q.SteSign(clip_value="1"), "clip_value"),
    (lambda: Q.SteSign(clip_value=float("nan")), "clip_value"),
    (lambda: Q.SteTern(clip_value=0), "clip_value"),
    (lambda: Q.SteTern(clip_value=-0.5), "clip_value"),
    # threshold: non-negative number or None
    (lambda: Q.SteTern(threshold=-0.1), "threshold"),
    (lambda: Q.SteTern(threshold="0.5"), "threshold"),
    (lambda: Q.SteTern(threshold=float("inf")), "threshold"),
    (lambda: Q.SteTern(scaled="yes"), "scaled"),
    (lambda: Q.SteTern(scaled=1), "scaled"),
    (lambda: Q.FixedPoint(signed=0), "signed"),
    (lambda: Q.Uniform(stochastic=1), "stochastic"),
    # axis: int or non-empty tuple of ints
    (lambda: Q.ScaledSign(axis=1.5), "axis"),
    (lambda: Q.ScaledSign(axis="channels"), "axis"),
    (lambda: Q.ScaledSign(axis=None), "axis"),
    (lambda: Q.ScaledSign(axis=()), "axis"),
    (lambda: Q.ScaledSign(axis=(-1, 0.5)), "axis"),
    # DoReFa: bits 1..16 for weights, 1..32 for activations; known mode
    (lambda: Q.DoReFa(bits=0), "bits"),
    (lambda: Q.DoReFa(bits=33), "bits"),
    (lambda: Q.DoReFa(bits=-2), "bits"),
    (lambda: Q.DoReFa(bits=0, mode="weights"), "bits"),
    (lambda: Q.DoReFa(bits=17, mode="weights"), "bits"),
    (lambda: Q.DoReFa(bits=2.0), "bits"),
    (lambda: Q.DoReFa(bits=2.5), "bits"),
    (lambda: Q.DoReFa(bits="2"), "bits"),
    (lambda: Q.DoReFa(bits=True), "bits"),
    (lambda: Q.DoReFa(mode="gradients"), "mode"),
    (lambda: Q.DoReFa(mode="Weights"), "mode"),
    # DoReFaGradient
    (lambda: Q.DoReFaGradient(bits=0), "bits"),
    (lambda: Q.DoReFaGradient(bits=1.5), "bits"),
    (lambda: Q.DoReFaGradient(seed=-1), "seed"),
    # SymmetricUniform and PowerOfTwo need bits >= 2
    (lambda: Q.SymmetricUniform(bits=1), "bits"),
    (lambda: Q.SymmetricUniform(bits=0), "bits"),
    (lambda: Q.SymmetricUniform(bits=3.0), "bits"),
    (lambda: Q.PowerOfTwo(bits=1), "bits"),
    (lambda: Q.PowerOfTwo(bits=0), "bits"),
    (lambda: Q.PowerOfTwo(bits="4"), "bits"),
    # FixedPoint
    (lambda: Q.FixedPoint(integer_bits=0, fractional_bits=4, signed=True), "integer_bits"),
    (lambda: Q.FixedPoint(integer_bits=-1, signed=False), "integer_bits"),
    (lambda: Q.FixedPoint(integer_bits=2.5), "integer_bits"),
    (lambda: Q.FixedPoint(fractional_bits=-1), "fractional_bits"),
    (lambda: Q.FixedPoint(fractional_bits=0.5), "fractional_bits"),
    (lambda: Q.FixedPoint(integer_bits=0, fractional_bits=0, signed=False), "integer_bits"),
    (lambda: Q.FixedPoint(rounding="floor"), "rounding"),
    (lambda: Q.FixedPoint(rounding="Nearest"), "rounding"),
    (lambda: Q.FixedPoint(rounding=None), "rounding"),
    (lambda: Q.FixedPoint(signed="yes"), "signed"),
    (lambda: Q.FixedPoint(rounding="stochastic", seed=-3), "seed"),
    # Uniform
    (lambda: Q.Uniform(levels=0), "levels"),
    (lambda: Q.Uniform(levels=-5), "levels"),
    (lambda: Q.Uniform(levels=2.5), "levels"),
    (lambda: Q.Uniform(stochastic="no"), "stochastic"),
    (lambda: Q.Uniform(stochastic=True, seed=1.5), "seed"),
    # Seeds: None or a non-negative integer
    (lambda: Q.StochasticSign(seed=-1), "seed"),
    (lambda: Q.StochasticSign(seed=2.0), "seed"),
    (lambda: Q.StochasticSign(seed="42"), "seed"),
    (lambda: Q.StochasticTern(seed=-7), "seed"),
    (lambda: Q.StochasticTern(seed=[1]), "seed"),
    # NoOp
    (lambda: Q.NoOp(precision=0), "precision"),
    (lambda: Q.NoOp(precision=-8), "precision"),
    (lambda: Q.NoOp(precision=16.0), "precision"),
    # WeightClip
    (lambda: tfqnn.constraints.WeightClip(clip_value=-1.0), "clip_value"),
    (lambda: tfqnn.constraints.WeightClip(clip_value=0), "clip_value"),
    (lambda: tfqnn.constraints.WeightClip(clip_value=None), "clip_value"),
]


def _case_id(case):
    factory, name = case
    return f"{name}-{BAD_ARGUMENTS.index(case)}"


@pytest.mark.parametrize(
    "factory, argname", BAD_ARGUMENTS, ids=[_case_id(c) for c in BAD_ARGUMENTS]
)
def test_bad_argument_raises_value_error_naming_it(factory, argname):
    with pytest.raises(ValueError, match=argname):
        factory()


@pytest.mark.parametrize(
    "factory",
    [
        lambda: Q.SteSign(clip_value=1),
        lambda: Q.SteSign(clip_value=None),
        lambda: Q.SteTern(threshold=0),
        lambda: Q.SteTern(threshold=0.5, clip_value=None),
        lambda: Q.ScaledSign(axis=0),
        lambda: Q.ScaledSign(axis=[0, 1]),
        lambda: Q.ScaledSign(axis=np.int64(-1)),
        lambda: Q.DoReFa(bits=1),
        lambda: Q.DoReFa(bits=32),
        lambda: Q.DoReFa(bits=1, mode="weights"),
        lambda: Q.DoReFa(bits=16, mode="weights"),
        lambda: Q.DoReFa(bits=np.int32(4)),
        lambda: Q.DoReFaGradient(bits=1, seed=0),
        lambda: Q.SymmetricUniform(bits=2),
        lambda: Q.PowerOfTwo(bits=2),
        lambda: Q.FixedPoint(integer_bits=1, fractional_bits=0),
        lambda: Q.FixedPoint(integer_bits=0, fractional_bits=1, signed=False),
        lambda: Q.Uniform(levels=1),
        lambda: Q.StochasticSign(seed=0),
        lambda: Q.StochasticTern(seed=2**31),
        lambda: Q.NoOp(precision=1),
        lambda: tfqnn.constraints.WeightClip(clip_value=0.01),
    ],
)
def test_limits_that_are_allowed(factory):
    assert factory() is not None
