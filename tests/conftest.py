"""Fixtures shared by all tests."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fixed numpy Generator, so that every run tests the same tensors."""
    return np.random.default_rng(1234)
