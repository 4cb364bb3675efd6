"""`.keras` files written by earlier tfqnn versions load and compute as they did.

Each folder ``tests/compat/v*/`` holds files written by `make_fixtures` with
that version: the model, its input and its outputs, and its optimizer's
variables in order.
"""

import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tfqnn

HERE = pathlib.Path(__file__).parent
FILES = sorted(HERE.glob("v*/*.keras"))


def _expected(path):
    return np.load(path.with_suffix(".npz"))


def test_there_are_fixtures():
    assert {path.stem for path in FILES} >= {
        "every_layer",
        "every_quantizer",
        "compressed_optimizer",
        "recurrent",
        "bop_case_optimizer",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_old_file_loads_and_computes_the_same(path):
    expected = _expected(path)
    model = keras.models.load_model(path)
    np.testing.assert_allclose(
        model(expected["x"], training=False).numpy(), expected["y"], rtol=1e-5, atol=1e-6
    )
    saved = sorted(key for key in expected.files if key.startswith("optimizer_"))
    if saved:
        variables = model.optimizer.variables
        assert len(variables) == len(saved)
        for key, variable in zip(saved, variables):
            np.testing.assert_array_equal(variable.numpy(), expected[key], err_msg=variable.path)


def test_old_compressed_optimizer_keeps_its_settings():
    path = next(p for p in FILES if p.stem == "compressed_optimizer")
    optimizer = keras.models.load_model(path).optimizer
    assert isinstance(optimizer, tfqnn.distribute.CompressedOptimizer)
    assert optimizer.compressor == tfqnn.distribute.compressors.OneBitEF()
    assert optimizer.min_elements == 100
    residuals = [v for v in optimizer.variables if "residual" in v.path]
    assert len(residuals) == 2 and all(np.any(v.numpy() != 0) for v in residuals)


def test_old_bop_case_optimizer_and_flip_ratio_come_back():
    path = next(p for p in FILES if p.stem == "bop_case_optimizer")
    model = keras.models.load_model(path)
    case = model.optimizer
    assert isinstance(case, tfqnn.optimizers.CaseOptimizer)
    bop, adam = case.optimizers
    assert isinstance(bop, tfqnn.optimizers.Bop) and isinstance(adam, keras.optimizers.Adam)
    assert case.default_optimizer is adam
    assert case.predicates[0] is tfqnn.optimizers.is_binary_variable
    # dense kernel, bias, BN gamma, beta, binary kernel, BN gamma, beta, binary kernel
    assert list(case.routes) == [1, 1, 1, 1, 0, 1, 1, 0]
    np.testing.assert_allclose([float(bop.threshold), float(bop.gamma)], [1e-6, 1e-2], rtol=1e-6)
    assert int(bop.iterations) == 4  # two epochs of two batches
    (flips,) = model._compile_config.config["metrics"]
    assert isinstance(flips, tfqnn.metrics.FlipRatio) and flips.name == "flip_ratio"
    # Training goes on from the saved state once FlipRatio watches the model again.
    model.compile(case, model.loss, metrics=[tfqnn.metrics.FlipRatio(model)])
    x = _expected(path)["x"]
    y = np.random.default_rng(0).integers(0, 3, size=len(x))
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert int(bop.iterations) == 6
    assert 0.0 <= history.history["flip_ratio"][0] <= 1.0


def test_old_files_load_in_a_fresh_process_with_only_import_tfqnn():
    script = textwrap.dedent("""
        import sys
        import keras
        import numpy as np
        import tfqnn
        for path in sys.argv[1:]:
            data = np.load(path[:-len(".keras")] + ".npz")
            model = keras.models.load_model(path)
            np.testing.assert_allclose(model(data["x"], training=False).numpy(), data["y"],
                                       rtol=1e-5, atol=1e-6)
        print("ok", len(sys.argv) - 1)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, FILES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["ok", str(len(FILES))]


def test_every_class_of_tfqnn_distribute_has_a_stand_in_before_its_import():
    import tfqnn.distribute  # noqa: F401 (registers the real classes)
    from tfqnn import _deferred

    registered = {
        name.split(">", 1)[1]
        for name, obj in keras.saving.get_custom_objects().items()
        if name.startswith("tfqnn>")
        and getattr(obj, "__module__", "").startswith(_deferred.PACKAGE + ".")
    }
    assert registered == set(_deferred.CLASSES)
