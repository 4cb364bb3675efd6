"""Names that the docstring examples (run by pytest --doctest-modules) use."""

import keras
import numpy as np
import pytest

import tfqnn


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(np=np, keras=keras, tfqnn=tfqnn)
