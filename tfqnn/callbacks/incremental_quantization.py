"""Incremental network quantization (INQ) of kernels to powers of two, as a callback.

Zhou et al. 2017, "Incremental Network Quantization: Towards Lossless CNNs
with Low-Precision Weights" (arXiv:1702.03044).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from tfqnn import _validation, quantizers
from tfqnn.layers import QuantizedKernel, QuantizerMixin, selection
from tfqnn.quantizers import multibit

# The model attribute that carries the procedure's state while ``fit`` runs,
# so that ``save_weights`` (and so `keras.callbacks.BackupAndRestore`) keeps it.
STATE_ATTRIBUTE = "_tfqnn_incremental_quantization"


def power_of_two_exponents(kernel: np.ndarray, bits: int) -> tuple[int, int]:
    """INQ's exponent range ``(n1, n2)`` of a kernel's codebook, as integers.

    `tfqnn.quantizers.multibit.power_of_two_exponents` (PowerOfTwo's):
    ``n1 = floor(log2(4 s / 3))`` with ``s = max|W|`` and
    ``n2 = n1 + 1 - 2^(bits-1) / 2``: the codebook is
    ``{0, +-2^n2, ..., +-2^n1}``, one bit for zero and ``bits - 1`` for
    ``2^(bits-1)`` signed powers. An all-zero kernel gets the range of the
    smallest positive value of its dtype.
    """
    n1, n2 = multibit.power_of_two_exponents(np.asarray(kernel), bits)
    return int(ops.convert_to_numpy(n1)), int(ops.convert_to_numpy(n2))


def quantize_to_powers_of_two(values: np.ndarray, n1: int, n2: int) -> np.ndarray:
    """Each value to the nearest of ``{0, +-2^n2, ..., +-2^n1}``, ties away from zero.

    `tfqnn.quantizers.multibit.nearest_power_of_two` (PowerOfTwo's rule,
    INQ's eq. 4), computed in float64 and returned in the dtype of ``values``.
    """
    w = np.asarray(values)
    y = multibit.nearest_power_of_two(w.astype(np.float64), n1, n2)
    return ops.convert_to_numpy(y).astype(w.dtype)


class IncrementalQuantization(keras.callbacks.Callback):
    """Incremental network quantization (INQ): kernels to powers of two, portion by portion.

    Give it to ``fit`` on a trained float model. When training starts it
    fixes each selected kernel's codebook ``{0, +-2^n2, ..., +-2^n1}`` from
    its trained weights (``n1 = floor(log2(4 max|W| / 3))``,
    ``n2 = n1 + 1 - 2^(bits-1) / 2``), quantizes the first portion of the
    kernel to its nearest level (ties away from zero) and freezes it; after
    every ``epochs_per_step`` epochs of retraining the rest it does the same
    for the next portion, until ``portions[-1] = 1.0``. The portions
    accumulate: ``(0.5, 0.75, 0.875, 1.0)`` freezes half of each kernel,
    then a quarter more, and so on; ``fit`` needs
    ``(len(portions) - 1) * epochs_per_step`` epochs for the whole procedure.

    A step brings each kernel of ``n`` weights to ``floor(p n + 1/2)``
    frozen ones: ``partition="magnitude"`` adds the largest remaining
    magnitudes (the paper's choice; equal magnitudes in flat index order),
    ``"random"`` a random subset, drawn by numpy's Generator seeded with
    ``(seed, step, kernel index)`` (``seed=None``: a seed from numpy's global
    generator, which `keras.utils.set_random_seed` fixes). Frozen weights stay at their codebook values bit for bit,
    whatever the optimizer (momentum, Adam's moments, weight decay): the
    callback sets a constraint on each kernel variable, which Keras
    applies after every optimizer update, for the duration of ``fit``.

    After the last step each selected layer's kernel quantizer becomes
    `tfqnn.quantizers.PowerOfTwo` ``(bits)``, which leaves the kernel as it
    is: `tfqnn.summary` reports ``bits`` per kernel weight and a `.keras`
    file saved then loads as plain tfqnn layers with exact power-of-two
    kernels.

    While ``fit`` runs, the state (frozen mask and values, codebook, step)
    is attached to the model, so ``model.save_weights`` and
    `keras.callbacks.BackupAndRestore` keep it: a run interrupted and
    resumed from a backup ends with the same weights as one that was not.
    The schedule follows ``fit``'s epoch index (resumed runs keep it);
    to go on in a later ``fit`` call, pass ``initial_epoch``. If ``fit``
    raises, Keras skips ``on_train_end``: call `restore_constraints`, or
    run ``fit`` inside ``with inq:`` (see `restore_constraints`).

    Zhou et al. 2017, "Incremental Network Quantization" (arXiv:1702.03044).

    Args:
        portions: the accumulated fractions of each kernel quantized at
            each step, increasing, in (0, 1], ending at 1.0.
        bits: bits per quantized weight, 2 to 8.
        partition: ``"magnitude"`` or ``"random"``.
        epochs_per_step: epochs of retraining between two steps, >= 1.
        layers: names of the layers to quantize, or None for every tfqnn
            layer whose kernel has no quantizer. Each must be a tfqnn layer
            (`tfqnn.layers.QuantDense`, ...) with an unquantized kernel.
        seed: seed of the random partition, or None.
        verbose: 1, 2 or ``"auto"`` prints a line at each step, 0 is silent.

    Example:
    >>> inq = tfqnn.callbacks.IncrementalQuantization(bits=5, epochs_per_step=2)
    >>> # model.fit(x, y, epochs=6, callbacks=[inq])
    """

    def __init__(
        self,
        portions: Sequence[float] = (0.5, 0.75, 0.875, 1.0),
        bits: int = 5,
        partition: str = "magnitude",
        epochs_per_step: int = 1,
        layers: Sequence[str] | None = None,
        seed: int | None = None,
        verbose: int | str = "auto",
    ) -> None:
        super().__init__()
        self.portions = _check_portions(portions)
        self.bits = _validation.check_int("bits", bits, 2, 8)
        self.partition = _validation.check_choice("partition", partition, ("magnitude", "random"))
        self.epochs_per_step = _validation.check_int("epochs_per_step", epochs_per_step, 1)
        self.layers = selection.check_layer_names(layers)
        self.seed = _validation.check_seed("seed", seed)
        self.verbose = _validation.check_verbose(verbose)
        self._state: _State | None = None
        self._state_model: keras.Model | None = None
        self._saved_constraints: list[Any] = []
        self._training = False

    @property
    def step(self) -> int:
        """How many portions have been quantized (0 before training starts)."""
        return 0 if self._state is None else int(self._state.step.numpy())

    @property
    def done(self) -> bool:
        """Whether every selected kernel is fully quantized."""
        return self.step == len(self.portions)

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        # Attached before any callback's on_train_begin, so that a
        # BackupAndRestore placed before this callback restores the state too.
        if model.built:
            self._attach()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._saved_constraints:  # a fit that raised skipped on_train_end
            self.restore_constraints()
        self._training = True
        self._attach()
        state = self._require_state()
        self._saved_constraints = []
        for target, mask, values in zip(state.targets, state.masks, state.values):
            variable = target.variable
            self._saved_constraints.append(variable.constraint)
            variable.constraint = _Freeze(mask, values, variable.constraint)
        # A model trained before has its train step traced without the
        # constraints: trace it again.
        self.model.make_train_function(force=True)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        state = self._require_state()
        if self.step == 0:
            state.first_epoch.assign(epoch)
        self._catch_up(epochs_trained=epoch - int(state.first_epoch.numpy()))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        state = self._require_state()
        self._catch_up(epochs_trained=epoch + 1 - int(state.first_epoch.numpy()))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        state = self._require_state()
        self.restore_constraints()
        if not self.done:
            first = int(state.first_epoch.numpy())
            last = first + (len(self.portions) - 1) * self.epochs_per_step
            _print(
                self.verbose,
                f"IncrementalQuantization: stopped at step {self.step} of "
                f"{len(self.portions)}; the last step comes at the end of epoch {last} "
                f"(fit with epochs >= {last}, initial_epoch to continue).",
            )

    def restore_constraints(self) -> None:
        """Gives the kernels back their own constraints and takes the state off the model.

        ``on_train_end`` does this. Keras skips it when ``fit`` raises (an
        error, a KeyboardInterrupt), which would leave the frozen entries
        frozen in later training: call this then, or run ``fit`` inside
        ``with inq:``, which calls it on the way out. A later ``fit`` with
        the callback also starts with it. The procedure's state (step,
        masks) stays with the callback, so ``fit`` can go on from it.
        Calling it again does nothing.
        """
        if self._saved_constraints and self._state is not None:
            for target, constraint in zip(self._state.targets, self._saved_constraints):
                target.variable.constraint = constraint
            self._saved_constraints = []
            self.model.make_train_function(force=True)
        self._training = False
        if self._state is not None and self._state_model is not None:
            self._detach()

    def __enter__(self) -> IncrementalQuantization:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore_constraints()

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        if not self._training:  # evaluate() on its own, outside fit
            self._detach()

    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
        if not self._training:
            self._detach()

    def get_config(self) -> dict[str, Any]:
        return {
            "portions": list(self.portions),
            "bits": self.bits,
            "partition": self.partition,
            "epochs_per_step": self.epochs_per_step,
            "layers": None if self.layers is None else list(self.layers),
            "seed": self.seed,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> IncrementalQuantization:
        return cls(**config)

    def _attach(self) -> None:
        """Selects the kernels (once per model) and attaches the state to the model."""
        if self._state is None or self._state_model is not self.model:
            targets = _select_kernels(self.model, self.layers)
            self._state = _State(targets)
            self._state_model = self.model
        # Not through Keras's __setattr__: the state must not become a layer
        # of the model, only an attribute that saving visits.
        object.__setattr__(self.model, STATE_ATTRIBUTE, self._state)

    def _detach(self) -> None:
        """Takes the state off the model: files saved after ``fit`` hold plain layers."""
        if self._state is not None and getattr(self.model, STATE_ATTRIBUTE, None) is self._state:
            object.__delattr__(self.model, STATE_ATTRIBUTE)

    def _require_state(self) -> _State:
        if self._state is None:
            self._attach()
        assert self._state is not None
        return self._state

    def _catch_up(self, epochs_trained: int) -> None:
        """Applies every step due after ``epochs_trained`` epochs since the first."""
        due = min(len(self.portions), 1 + max(epochs_trained, 0) // self.epochs_per_step)
        while self.step < due:
            self._quantize_next_portion()
        if self.done:
            self._set_quantizers()

    def _quantize_next_portion(self) -> None:
        state = self._require_state()
        step = self.step
        if step == 0 and self.seed is None and self.partition == "random":
            state.seed.assign(np.random.randint(2**31 - 1))  # keras.utils.set_random_seed fixes it
        elif step == 0:
            state.seed.assign(self.seed or 0)
        portion = self.portions[step]
        frozen_total = 0
        total = 0
        for index, (target, mask_var, values_var, exponents_var) in enumerate(
            zip(state.targets, state.masks, state.values, state.exponents)
        ):
            kernel = ops.convert_to_numpy(target.variable)
            if step == 0:
                exponents_var.assign(power_of_two_exponents(kernel, self.bits))
            n1, n2 = (int(n) for n in ops.convert_to_numpy(exponents_var))
            mask = ops.convert_to_numpy(mask_var).reshape(-1)
            count = min(kernel.size, math.floor(portion * kernel.size + 0.5))
            free = np.flatnonzero(~mask)
            new = count - (kernel.size - free.size)
            if new > 0:
                if self.partition == "magnitude":
                    order = np.argsort(-np.abs(kernel.reshape(-1)[free]), kind="stable")
                else:
                    seed = int(ops.convert_to_numpy(state.seed))
                    order = np.random.default_rng((seed, step, index)).permutation(free.size)
                mask = mask.copy()
                mask[free[order[:new]]] = True
            mask = mask.reshape(kernel.shape)
            quantized = quantize_to_powers_of_two(kernel, n1, n2)
            values = np.where(mask, quantized, np.zeros_like(kernel))
            target.variable.assign(np.where(mask, quantized, kernel))
            mask_var.assign(mask)
            values_var.assign(values)
            frozen_total += int(mask.sum())
            total += kernel.size
        state.step.assign(step + 1)
        _print(
            self.verbose,
            f"IncrementalQuantization: step {step + 1}/{len(self.portions)}: "
            f"{frozen_total:,} of {total:,} kernel weights ({frozen_total / total:.1%}) "
            f"frozen at {self.bits}-bit powers of two.",
        )

    def _set_quantizers(self) -> None:
        """Sets the selected kernels' quantizers to PowerOfTwo, the identity on them now."""
        for target in self._require_state().targets:
            current = getattr(target.layer, target.spec.quantizer)
            if current is None:
                setattr(target.layer, target.spec.quantizer, quantizers.PowerOfTwo(self.bits))


class _Target:
    """One kernel that INQ quantizes: its layer, its `QuantizedKernel` spec, its variable."""

    def __init__(self, layer: QuantizerMixin, spec: QuantizedKernel):
        self.layer = layer
        self.spec = spec
        self.variable: keras.Variable = getattr(layer, spec.weight)


class _State(keras.layers.Layer):
    """The procedure's variables: per kernel a frozen mask, the frozen values and
    ``(n1, n2)``; the step, the epoch of the first step and the partition's seed."""

    def __init__(self, targets: list[_Target]) -> None:
        super().__init__(name="incremental_quantization_state")
        self.targets = targets
        self.masks: list[keras.Variable] = []
        self.values: list[keras.Variable] = []
        self.exponents: list[keras.Variable] = []
        for target in targets:
            variable = target.variable
            name = variable.path.replace("/", "_")
            self.masks.append(self._state_weight(variable.shape, "bool", f"{name}_mask"))
            self.values.append(self._state_weight(variable.shape, variable.dtype, f"{name}_values"))
            self.exponents.append(self._state_weight((2,), "int32", f"{name}_exponents"))
        self.step = self._state_weight((), "int32", "step")
        self.first_epoch = self._state_weight((), "int32", "first_epoch")
        self.seed = self._state_weight((), "int64", "seed")
        self.built = True

    def _state_weight(self, shape: Any, dtype: Any, name: str) -> keras.Variable:
        return self.add_weight(
            shape=tuple(shape), dtype=dtype, initializer="zeros", trainable=False, name=name
        )


class _Freeze(keras.constraints.Constraint):
    """Keeps the frozen entries of a kernel at their values after each update.

    ``w -> where(mask, values, inner(w))``, ``inner`` the kernel's own constraint.
    """

    def __init__(self, mask: keras.Variable, values: keras.Variable, inner: Any) -> None:
        self.mask = mask
        self.values = values
        self.inner = inner

    def __call__(self, w: Any) -> Any:
        if self.inner is not None:
            w = self.inner(w)
        return ops.where(self.mask, ops.cast(self.values, w.dtype), w)


def _check_portions(portions: Any) -> tuple[float, ...]:
    ok = isinstance(portions, Sequence) and not isinstance(portions, str) and len(portions) > 0
    ok = ok and all(isinstance(p, numbers.Real) and not isinstance(p, bool) for p in portions)
    values = [float(p) for p in portions] if ok else []
    ok = ok and all(0.0 < p <= 1.0 for p in values) and values[-1] == 1.0
    ok = ok and all(a < b for a, b in zip(values, values[1:]))
    if not ok:
        raise ValueError(
            f"Invalid portions={portions!r}: expected a non-empty sequence of strictly "
            "increasing fractions in (0, 1] ending at 1.0, such as (0.5, 0.75, 0.875, 1.0)."
        )
    return tuple(values)


def _select_kernels(model: keras.Model, names: tuple[str, ...] | None) -> list[_Target]:
    found = selection.select_float_kernels(model, names, "IncrementalQuantization", "quantize")
    return [_Target(owner, spec) for _, owner, spec in found]


def _print(verbose: int, message: str) -> None:
    if verbose:
        print(message)
