"""IncrementalQuantization (INQ): the codebook and its nearest-level rule against numpy,
the partitions, frozen weights under SGD with momentum and Adam, checkpoint resume,
the summary and saving after the last step, bad input."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tfqnn
from tests.layers.factories import nested_recurrent_model
from tfqnn.callbacks import IncrementalQuantization
from tfqnn.callbacks.incremental_quantization import (
    STATE_ATTRIBUTE,
    power_of_two_exponents,
    quantize_to_powers_of_two,
)
from tfqnn.layers.base import latent_quantizer

# ---------------------------------------------------------------------------
# The codebook and the nearest-level rule.


def reference_exponents(kernel, bits):
    """n1 = floor(log2(4 s / 3)) by the logarithm, corrected at exact powers of two."""
    s = float(np.max(np.abs(kernel)))
    n1 = int(np.floor(np.log2(4.0 * s / 3.0)))
    if 2.0 ** (n1 + 1) <= 4.0 * s / 3.0:
        n1 += 1
    return n1, n1 + 1 - 2 ** (bits - 1) // 2


def reference_quantize(w, n1, n2):
    """Brute force: the distance to every level of {0, +-2^n2..+-2^n1}; among equally
    near levels the one of larger magnitude (INQ's (alpha + beta) / 2 <= |w|)."""
    powers = 2.0 ** np.arange(n2, n1 + 1)
    levels = np.concatenate([[0.0], powers, -powers])
    w64 = np.asarray(w, np.float64).reshape(-1)
    distance = np.abs(w64[:, None] - levels[None, :])
    nearest = distance == distance.min(axis=1, keepdims=True)
    magnitude = np.where(nearest, np.abs(levels)[None, :], -1.0)
    chosen = levels[np.argmax(magnitude, axis=1)]
    return chosen.reshape(np.shape(w))


@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_exponents_match_the_formula(rng, bits):
    for scale in [1e-3, 0.05, 0.7, 1.0, 3.0, 40.0]:
        kernel = rng.normal(0, scale, (7, 5)).astype(np.float32)
        assert power_of_two_exponents(kernel, bits) == reference_exponents(kernel, bits)
    # max|W| = 3/4 2^k is exactly where n1 turns from k - 1 to k.
    for k in [-6, -1, 0, 3]:
        edge = np.float32(0.75 * 2.0**k)
        below = np.nextafter(edge, np.float32(0))
        assert power_of_two_exponents(np.array([edge, -0.1 * edge]), bits)[0] == k
        assert power_of_two_exponents(np.array([below]), bits)[0] == k - 1
    # The paper's example: b = 3, n1 = -1 gives n2 = -2.
    assert power_of_two_exponents(np.array([0.5, -0.2]), 3) == (-1, -2)


def test_nearest_level_and_ties_match_the_brute_force_reference(rng):
    n1, n2 = 0, -4
    random = rng.normal(0, 0.6, 4000)
    # Every tie: midpoints between adjacent levels, the zero threshold, and beyond 2^n1.
    midpoints = 1.5 * 2.0 ** np.arange(n2, n1)
    ties = np.concatenate([midpoints, [2.0 ** (n2 - 1)], -midpoints, [-(2.0 ** (n2 - 1))]])
    near_ties = np.concatenate([np.nextafter(ties, 0), np.nextafter(ties, 2 * ties)])
    edges = np.array([0.0, -0.0, 1.0, 1.49, 1.5, 7.0, -7.0, 2.0**-4, 2.0**-6])
    w = np.concatenate([random, ties, near_ties, edges]).astype(np.float32)
    got = quantize_to_powers_of_two(w, n1, n2)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, reference_quantize(w, n1, n2))
    # Ties go away from zero: 1.5 * 2^k -> 2^(k+1), 2^(n2-1) -> 2^n2.
    np.testing.assert_array_equal(
        quantize_to_powers_of_two(np.float32([0.75, -0.09375]), 0, -4), [1.0, -0.125]
    )
    np.testing.assert_array_equal(
        quantize_to_powers_of_two(np.float32([0.03125, 0.0312]), 0, -4), [0.0625, 0.0]
    )


@pytest.mark.parametrize("bits", [2, 4, 5])
def test_agrees_with_the_power_of_two_quantizer(rng, bits):
    # PowerOfTwo fixes (n1, n2) from the tensor it quantizes, as INQ's first step does.
    kernel = rng.normal(0, 0.3, (6, 9)).astype(np.float32)
    n1, n2 = power_of_two_exponents(kernel, bits)
    expected = tfqnn.quantizers.PowerOfTwo(bits)(kernel).numpy()
    np.testing.assert_array_equal(quantize_to_powers_of_two(kernel, n1, n2), expected)


# ---------------------------------------------------------------------------
# The procedure in fit.


def make_data(n=96):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(n, 6, 6, 1)).astype(np.float32)
    y = (x[:, :3].sum(axis=(1, 2, 3)) > x[:, 3:].sum(axis=(1, 2, 3))).astype(np.int32)
    return x, y


def make_model(optimizer="adam", seed=3):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            tfqnn.layers.QuantConv2D(4, 3, name="conv"),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            tfqnn.layers.QuantDense(
                8, activation="relu", kernel_constraint="weight_clip", name="hidden"
            ),
            tfqnn.layers.QuantDense(2, name="out"),
        ]
    )
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model


def key(target):
    """``layer/weight`` of an INQ target, the same in two models."""
    return f"{target.layer.name}/{target.spec.weight}"


class Recorder(keras.callbacks.Callback):
    """Checks after every batch that frozen entries keep the value they were frozen at,
    and records per step the mask, the kernels and whether free entries moved."""

    def __init__(self):
        super().__init__()
        self.masks = []  # per step: {path: mask}
        self.free_moved = False
        self.checked_batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.before = {t.variable.path: t.variable.numpy() for t in self.state().targets}

    def on_train_batch_end(self, batch, logs=None):
        state = self.state()
        for target, mask_var, values_var in zip(state.targets, state.masks, state.values):
            path = target.variable.path
            kernel, mask = target.variable.numpy(), mask_var.numpy()
            np.testing.assert_array_equal(kernel[mask], values_var.numpy()[mask])
            np.testing.assert_array_equal(kernel[mask], self.before[path][mask])
            if np.any(kernel[~mask] != self.before[path][~mask]):
                self.free_moved = True
        self.checked_batches += 1

    def on_epoch_begin(self, epoch, logs=None):
        state = self.state()
        self.masks.append({key(t): m.numpy() for t, m in zip(state.targets, state.masks)})

    def state(self):
        return getattr(self.model, STATE_ATTRIBUTE)


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=1e-3),
        lambda: keras.optimizers.Adam(0.02),
    ],
    ids=["sgd_momentum", "adam"],
)
def test_frozen_weights_stay_bit_identical(data, optimizer):
    x, y = data
    model = make_model(optimizer())
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # "trained", train step traced
    trained = {
        layer.name: layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")
    }
    recorder = Recorder()  # after the INQ callback: sees the state of each step
    inq = IncrementalQuantization(bits=4, verbose=0)
    model.fit(x, y, epochs=3, batch_size=32, callbacks=[inq, recorder], verbose=0)
    assert recorder.checked_batches == 9 and recorder.free_moved
    assert inq.done and inq.step == 4

    # Step 1 froze the largest half of each kernel (magnitudes of the trained kernel).
    for layer_name, kernel in trained.items():
        path = f"{layer_name}/kernel"
        mask = recorder.masks[0][path]
        count = int(np.floor(0.5 * kernel.size + 0.5))
        largest = np.argsort(-np.abs(kernel).reshape(-1), kind="stable")[:count]
        expected = np.zeros(kernel.size, bool)
        expected[largest] = True
        np.testing.assert_array_equal(mask.reshape(-1), expected)
        # The portions accumulate, each mask containing the previous one.
        for portion, (earlier, later) in zip(
            (0.75, 0.875), zip(recorder.masks, recorder.masks[1:])
        ):
            assert np.all(later[path][earlier[path]])
            assert later[path].sum() == int(np.floor(portion * kernel.size + 0.5))

    # After the last step every kernel lies in the codebook fixed from the trained kernel.
    for layer_name, kernel in trained.items():
        layer = model.get_layer(layer_name)
        n1, n2 = reference_exponents(kernel, 4)
        final = layer.kernel.numpy()
        np.testing.assert_array_equal(final, reference_quantize(final, n1, n2))
        assert layer.kernel_quantizer == tfqnn.quantizers.PowerOfTwo(4)
    # The state leaves the model and the kernels their freezing constraint with fit.
    assert not hasattr(model, STATE_ATTRIBUTE)
    assert model.get_layer("conv").kernel.constraint is None
    assert isinstance(model.get_layer("hidden").kernel.constraint, tfqnn.constraints.WeightClip)
    summary = tfqnn.summary(model, print_fn=None)
    assert [row.weight_bits for row in summary.layers if row.weight_bits] == [4, 4, 4]


def test_random_partition_is_seeded_and_sized(data):
    x, y = data

    def first_masks(seed, partition="random"):
        model = make_model()
        recorder = Recorder()
        inq = IncrementalQuantization(
            portions=(0.3, 1.0), partition=partition, seed=seed, verbose=0
        )
        model.fit(x, y, epochs=1, batch_size=48, callbacks=[inq, recorder], verbose=0)
        return recorder.masks[0]

    random, magnitude = first_masks(1), first_masks(None, "magnitude")
    for index, (key_, mask) in enumerate(random.items()):
        # The documented draw: numpy's Generator seeded with (seed, step, kernel index).
        count = int(np.floor(0.3 * mask.size + 0.5))
        expected = np.zeros(mask.size, bool)
        expected[np.random.default_rng((1, 0, index)).permutation(mask.size)[:count]] = True
        np.testing.assert_array_equal(mask.reshape(-1), expected, err_msg=key_)
    assert any(not np.array_equal(random[k], magnitude[k]) for k in random)


@pytest.mark.parametrize("backup_first", [True, False], ids=["backup_first", "backup_last"])
def test_backup_and_restore_resumes_to_the_same_weights(data, tmp_path, backup_first):
    x, y = data
    fit = dict(epochs=5, batch_size=32, shuffle=False, verbose=0)

    def inq():
        return IncrementalQuantization(partition="random", seed=5, verbose=0)

    uninterrupted = make_model(keras.optimizers.SGD(0.05, momentum=0.9))
    uninterrupted.fit(x, y, callbacks=[inq()], **fit)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    def callbacks(*extra):
        backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
        return [backup, inq(), *extra] if backup_first else [inq(), backup, *extra]

    interrupted = make_model(keras.optimizers.SGD(0.05, momentum=0.9))
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(x, y, callbacks=callbacks(Interrupt()), **fit)

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch)

    started = []
    resumed = make_model(keras.optimizers.SGD(0.05, momentum=0.9))
    resumed.fit(x, y, callbacks=callbacks(Epochs()), **fit)
    assert started == [2, 3, 4]  # resumed after epoch 1, with steps 1 to 3 of 4 done
    for a, b in zip(uninterrupted.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    import tfqnn, keras, numpy
    model = keras.models.load_model(sys.argv[1])
    numpy.save(sys.argv[3], model.predict(numpy.load(sys.argv[2]), verbose=0))
    for layer in model.layers:
        if hasattr(layer, "kernel_quantizer"):
            numpy.save(sys.argv[3] + "." + layer.name, layer.kernel.numpy())
            print(layer.name, type(layer).__name__, layer.kernel_quantizer)
    """
)


@pytest.mark.slow
def test_saved_model_loads_in_a_fresh_process_with_power_of_two_kernels(data, tmp_path):
    x, y = data
    model = make_model()
    inq = IncrementalQuantization(portions=(0.6, 1.0), bits=3, verbose=0)
    model.fit(x, y, epochs=2, batch_size=48, callbacks=[inq], verbose=0)
    path, x_path, out = (str(tmp_path / name) for name in ("inq.keras", "x.npy", "out.npy"))
    model.save(path)
    np.save(x_path, x[:10])
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, path, x_path, out],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        cwd=os.path.dirname(os.path.dirname(tfqnn.__file__)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()[-3:]
    assert lines == [
        "conv QuantConv2D PowerOfTwo(bits=3)",
        "hidden QuantDense PowerOfTwo(bits=3)",
        "out QuantDense PowerOfTwo(bits=3)",
    ]
    np.testing.assert_array_equal(np.load(out), model.predict(x[:10], verbose=0))
    for name in ("conv", "hidden", "out"):
        kernel = np.load(f"{out}.{name}.npy")
        np.testing.assert_array_equal(kernel, model.get_layer(name).kernel.numpy())
        nonzero = np.abs(kernel[kernel != 0])
        np.testing.assert_array_equal(np.exp2(np.round(np.log2(nonzero))), nonzero)
        assert len(np.unique(nonzero)) <= 2 ** (3 - 2)


def test_stops_short_continues_with_initial_epoch_and_saves(data, capsys, tmp_path):
    x, y = data
    model = make_model()
    inq = IncrementalQuantization(epochs_per_step=2, layers=["out"])
    model.fit(x, y, epochs=3, batch_size=48, callbacks=[inq], verbose=0)
    assert inq.step == 2 and not inq.done
    printed = capsys.readouterr().out
    assert "step 2/4" in printed and "stopped at step 2 of 4" in printed
    assert "end of epoch 6" in printed
    assert model.get_layer("out").kernel_quantizer is None
    assert not hasattr(model, STATE_ATTRIBUTE)
    model.evaluate(x, y, callbacks=[inq], verbose=0)  # attaches the state, and takes it off
    assert not hasattr(model, STATE_ATTRIBUTE)
    model.fit(x, y, epochs=6, initial_epoch=3, batch_size=48, callbacks=[inq], verbose=0)
    assert inq.done
    assert model.get_layer("out").kernel_quantizer == tfqnn.quantizers.PowerOfTwo(5)
    assert model.get_layer("hidden").kernel_quantizer is None  # not selected
    path = str(tmp_path / "inq.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("out").kernel_quantizer == tfqnn.quantizers.PowerOfTwo(5)
    np.testing.assert_array_equal(
        loaded.get_layer("out").kernel.numpy(), model.get_layer("out").kernel.numpy()
    )
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_config_round_trip():
    inq = IncrementalQuantization((0.2, 0.6, 1.0), 3, "random", 2, ["a", "b"], 9, 0)
    config = inq.get_config()
    assert config == {
        "portions": [0.2, 0.6, 1.0],
        "bits": 3,
        "partition": "random",
        "epochs_per_step": 2,
        "layers": ["a", "b"],
        "seed": 9,
        "verbose": 0,
    }
    assert IncrementalQuantization.from_config(config).get_config() == config


# ---------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bits": 1}, "Invalid bits=1: expected an integer from 2 to 8"),
        ({"bits": 9}, "Invalid bits=9"),
        ({"portions": (0.5, 0.4, 1.0)}, "Invalid portions"),
        ({"portions": (0.5, 0.9)}, "ending at 1.0"),
        ({"portions": ()}, "Invalid portions"),
        ({"portions": (0.0, 1.0)}, "Invalid portions"),
        ({"portions": (0.5, 0.5, 1.0)}, "strictly"),
        ({"portions": "1.0"}, "Invalid portions"),
        (
            {"partition": "largest"},
            "Invalid partition='largest': expected one of 'magnitude', 'random'",
        ),
        ({"epochs_per_step": 0}, "Invalid epochs_per_step=0"),
        ({"layers": "dense"}, "Invalid layers='dense'"),
        ({"layers": []}, "Invalid layers"),
        ({"seed": -1}, "Invalid seed=-1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        IncrementalQuantization(**kwargs)


def fit_with(model, inq):
    model.compile("sgd", "mse")
    model.fit(
        np.zeros((4, 4), np.float32),
        np.zeros((4, 2), np.float32),
        epochs=1,
        verbose=0,
        callbacks=[inq],
    )


def test_bad_layers_and_models():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            tfqnn.layers.QuantDense(
                3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name="binary"
            ),
            keras.layers.Dense(2, name="plain"),
        ]
    )
    with pytest.raises(
        ValueError,
        match=r"'missing' is not a layer of model .* its layers are \['binary', 'plain'\]",
    ):
        fit_with(model, IncrementalQuantization(layers=["missing"]))
    with pytest.raises(ValueError, match="layer 'binary' .QuantDense. has no unquantized kernel"):
        fit_with(model, IncrementalQuantization(layers=["binary"]))
    with pytest.raises(ValueError, match="layer 'plain' .Dense. has no unquantized kernel"):
        fit_with(model, IncrementalQuantization(layers=["plain"]))
    with pytest.raises(ValueError, match="found no kernel to quantize in model"):
        fit_with(model, IncrementalQuantization())
    no_kernels = keras.Sequential(
        [keras.Input((4,)), keras.layers.Activation("relu"), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="found no kernel to quantize"):
        fit_with(no_kernels, IncrementalQuantization())


def test_nested_models_and_recurrent_cells(data):
    inner = keras.Sequential(
        [keras.Input((5, 3)), tfqnn.layers.QuantLSTM(4, name="lstm")], name="inner"
    )
    model = keras.Sequential([keras.Input((5, 3)), inner, tfqnn.layers.QuantDense(2, name="out")])
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(8, 5, 3)).astype(np.float32)
    inq = IncrementalQuantization(portions=(1.0,), bits=3, verbose=0)
    model.fit(x, np.zeros((8, 2), np.float32), epochs=1, verbose=0, callbacks=[inq])
    cell = inner.get_layer("lstm").cell
    assert cell.kernel_quantizer == tfqnn.quantizers.PowerOfTwo(3)
    assert cell.recurrent_quantizer == tfqnn.quantizers.PowerOfTwo(3)
    assert cell.bias_quantizer is None  # biases stay float
    for kernel in (cell.kernel, cell.recurrent_kernel, model.get_layer("out").kernel):
        values = kernel.numpy()
        nonzero = np.abs(values[values != 0])
        np.testing.assert_array_equal(np.exp2(np.round(np.log2(nonzero))), nonzero)


class Crash(keras.callbacks.Callback):
    """Raises at the end of the first epoch: Keras then skips every on_train_end."""

    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("crash")


def frozen_kernels_move(model, x, y):
    """Whether one more SGD step (without INQ) moves every kernel entry INQ had frozen."""
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    before = model.get_layer("conv").kernel.numpy()
    model.fit(x, y, epochs=1, batch_size=96, verbose=0)
    return bool(np.all(model.get_layer("conv").kernel.numpy() != before))


@pytest.mark.parametrize("how", ["method", pytest.param("with", marks=pytest.mark.slow)])
def test_a_fit_that_raises_leaves_nothing_behind(data, how):
    x, y = data
    model = make_model()
    original = model.get_layer("hidden").kernel.constraint
    inq = IncrementalQuantization(verbose=0)
    with pytest.raises(RuntimeError, match="crash"):
        if how == "with":
            with inq:
                model.fit(x, y, epochs=3, batch_size=48, callbacks=[inq, Crash()], verbose=0)
        else:
            model.fit(x, y, epochs=3, batch_size=48, callbacks=[inq, Crash()], verbose=0)
    if how == "method":
        # Without on_train_end the freezing constraints are still on the kernels.
        assert model.get_layer("conv").kernel.constraint is not None
        assert hasattr(model, STATE_ATTRIBUTE)
        inq.restore_constraints()
        inq.restore_constraints()  # idempotent
    assert model.get_layer("conv").kernel.constraint is None
    assert model.get_layer("hidden").kernel.constraint is original
    assert not hasattr(model, STATE_ATTRIBUTE)
    assert inq.step == 2  # its state is kept (step 2 came at the end of epoch 0): fit can go on
    assert frozen_kernels_move(model, x, y)


def test_fit_again_after_a_crash_does_not_stack_the_constraints(data):
    x, y = data
    model = make_model()
    original = model.get_layer("hidden").kernel.constraint
    inq = IncrementalQuantization(verbose=0)
    with pytest.raises(RuntimeError, match="crash"):
        model.fit(x, y, epochs=3, batch_size=48, callbacks=[inq, Crash()], verbose=0)
    model.fit(x, y, epochs=3, initial_epoch=1, batch_size=48, callbacks=[inq], verbose=0)
    assert inq.done
    assert model.get_layer("conv").kernel.constraint is None
    assert model.get_layer("hidden").kernel.constraint is original


def test_cells_of_bidirectional_and_stacked_rnns():
    model = nested_recurrent_model()
    model.compile("adam", "mse")
    owners = [
        owner
        for layer in model.layers
        for _, owner in tfqnn.layers.selection.quantizer_owners(layer)
    ]
    assert len(owners) == 5  # both LSTM directions, two stacked cells, out
    kernels = [(o, w) for o in owners for w in ("kernel", "recurrent_kernel") if hasattr(o, w)]
    before = [getattr(owner, name).numpy() for owner, name in kernels]
    inq = IncrementalQuantization(portions=(1.0,), bits=3, verbose=0)
    inq.set_model(model)  # the calls fit makes (fit itself: the tests above)
    inq.on_train_begin()
    inq.on_epoch_begin(0)
    inq.on_train_end()
    for (owner, name), initial in zip(kernels, before):
        # One step quantizes every weight at the first epoch's start.
        expected = quantize_to_powers_of_two(initial, *power_of_two_exponents(initial, 3))
        np.testing.assert_array_equal(getattr(owner, name).numpy(), expected)
        quantizer = "kernel_quantizer" if name == "kernel" else "recurrent_quantizer"
        assert getattr(owner, quantizer) == tfqnn.quantizers.PowerOfTwo(3)
        assert latent_quantizer(getattr(owner, name)) == tfqnn.quantizers.PowerOfTwo(3)
    for owner in owners[:4]:
        assert owner.bias_quantizer is None
