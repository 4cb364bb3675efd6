"""tf_keras ``Lambda`` layers, whose functions are saved as Python bytecode, as Keras 3 ``Lambda``.

tf_keras saves a ``Lambda`` of a Python ``lambda`` with its ``func_dump``:
``[base64(marshal.dumps(f.__code__)), f.__defaults__, closure values]``,
under ``function_type: "lambda"``, and rebuilds it with ``func_load``:
base64 -> ``marshal.loads`` -> ``types.FunctionType(code, globals, name,
defaults, closure)``, the globals being its own module's (``tf`` is
TensorFlow, ``np`` NumPy) updated with those of the module the lambda was
written in when that module is imported. `function` does the same.

Marshalled bytecode belongs to one Python version (3.11 bytecode is not
3.12's) and is not checked by Python: a code object from another version,
or a damaged one, can crash the interpreter when it runs. `function`
therefore checks every instruction against this interpreter's opcodes and
every index against the code object's tables before building the
function, and raises ValueError otherwise. That guards against accidents,
not attacks: ``marshal.loads`` of crafted data is not safe, and a
well-formed function runs whatever it was written to run, which is why
`tfqnn.interop.load` refuses Lambda layers unless ``safe_mode=False``.

tf_keras writes a closure value that is a function by its ``__name__``
only (larq-zoo's ``TFOpLayer(tf.split, ...)`` saves ``"split"``), which its
own ``func_load`` then calls as a string; `function` restores such a name
as the TensorFlow function ``tf.<name>`` and says so in the report.
"""

from __future__ import annotations

import builtins
import codecs
import dis
import marshal
import sys
import types
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfqnn.interop.keras_layers import CONFIG_ERRORS, clean_config, last_line
from tfqnn.interop.report import Report

# The most stack slots a function may ask for (CPython trusts co_stacksize).
MAX_STACK = 1 << 16
# How tf_keras marks a Lambda's function: bytecode, a function by name, or a value.
FUNCTION_TYPES = ("lambda", "function", "raw")
GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200  # generator, coroutine, async
OPCODES = frozenset(dis.opmap.values())
JUMPS = frozenset(dis.hasjrel + dis.hasjabs)
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
REFUSED = (
    "a Lambda layer holds its function as Python bytecode (marshal) of the saving "
    "interpreter's Python version, which can run any code; pass safe_mode=False if you trust "
    f"the file (the bytecode must come from Python {VERSION}, as this one)"
)


def _globals(module: Any) -> dict[str, Any]:
    """tf_keras's lambda_layer module globals, then those of the lambda's module if imported.

    ``__name__`` is this module's unless the lambda's is imported, so that
    Keras 3, loading a ``.keras`` file of the model with ``safe_mode=False``,
    gives the function these globals again.
    """
    globs: dict[str, Any] = {
        "__builtins__": builtins,
        "__name__": __name__,
        "tf": tf,
        "np": np,
        "sys": sys,
    }
    if isinstance(module, str) and module in sys.modules:
        globs.update(vars(sys.modules[module]))
    return globs


def _checked(code: types.CodeType, depth: int = 0) -> types.CodeType:
    """The code object, with a stack size that suffices, if all its instructions are this Python's.

    Raises ValueError for an opcode this interpreter lacks, an argument out
    of the code object's tables, a jump or handler outside the code, a cell
    without its MAKE_CELL or COPY_FREE_VARS, a nonzero inline cache, or a
    generator. CPython trusts ``co_stacksize``; it is raised to a bound.
    """
    if depth > 20:
        raise ValueError("code objects nested too deeply")
    if code.co_flags & GENERATOR_FLAGS:
        raise ValueError("a generator or coroutine")
    raw, size = code.co_code, len(code.co_code)
    try:
        instructions = list(dis.get_instructions(code))
    except Exception as error:  # dis indexes the tables with each argument
        raise ValueError(f"an instruction out of its tables ({type(error).__name__})") from error
    if size % 2 or not instructions:
        raise ValueError("code of an odd or zero length")
    if not any(i.opname == "RESUME" for i in instructions[:8]):
        raise ValueError(f"no RESUME at its start, which Python {VERSION}'s code has")
    offsets = {i.offset for i in instructions}
    if any(raw[o] or raw[o + 1] for o in range(0, size, 2) if o not in offsets):
        raise ValueError("a nonzero inline cache")
    cells = set(code.co_cellvars) | set(code.co_freevars)
    made = {i.argval for i in instructions if i.opname == "MAKE_CELL"}
    copied = [i.arg for i in instructions[:8] if i.opname == "COPY_FREE_VARS"]
    if set(code.co_cellvars) - made or (code.co_freevars and copied != [len(code.co_freevars)]):
        raise ValueError("cells without their MAKE_CELL or COPY_FREE_VARS")
    pushed = 4
    for instruction in instructions:
        if instruction.opname.startswith("<") or instruction.opcode not in OPCODES:
            raise ValueError(f"opcode {instruction.opcode} is not one of Python {VERSION}'s")
        if instruction.opcode in JUMPS and not (
            isinstance(instruction.argval, int) and 0 <= instruction.argval < size
        ):
            raise ValueError(f"a jump to {instruction.argval} outside the code")
        if instruction.opcode in dis.hasfree and instruction.argval not in cells:
            raise ValueError(f"a cell access to {instruction.argval!r}, not a cell")
        if instruction.opcode in dis.haslocal and instruction.argval not in code.co_varnames:
            raise ValueError(f"a local access to {instruction.argval!r}, not a local")
        pushed += 2 + (instruction.arg or 0) * instruction.opname.startswith("UNPACK")
    stack = max(code.co_stacksize, pushed)
    if stack > MAX_STACK:
        raise ValueError(f"a stack of {stack} slots")
    parse = getattr(dis, "_parse_exception_table", None)
    for entry in parse(code) if parse is not None else ():
        if not (0 <= entry.start <= entry.end <= size and 0 <= entry.target < size):
            raise ValueError("an exception handler outside the code")
        if not 0 <= entry.depth <= stack:
            raise ValueError("an exception handler deeper than the stack")
    consts = tuple(
        _checked(c, depth + 1) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_stacksize=stack, co_consts=consts)


def _cell(value: Any) -> Any:
    return (lambda: value).__closure__[0]  # type: ignore[index]


def _restore_name(value: Any, report: Report, path: str) -> Any:
    """A closure value tf_keras wrote as a function's name: the TensorFlow function of that name."""
    found = getattr(tf, value, None) if isinstance(value, str) and value.isidentifier() else None
    if not callable(found) or isinstance(found, type):
        return value
    report.notice(
        f"{path}: the Lambda's closure holds the name {value!r}, which tf_keras writes for a "
        f"function; restored as tf.{value}"
    )
    return found


def function(saved: Any, module: Any, path: str, report: Report) -> types.FunctionType:
    """The Python function of tf_keras's ``func_dump`` output ``[code, defaults, closure]``.

    Raises ValueError naming ``path`` when the bytecode is not valid for this
    Python version or does not match its defaults and closure.
    """
    code_text, defaults, closure = saved, None, None
    if isinstance(saved, (list, tuple)):
        if len(saved) != 3:
            raise ValueError(f"{path}: a Lambda function of {len(saved)} parts, not 3")
        code_text, defaults, closure = saved
    if not isinstance(code_text, str):
        raise ValueError(f"{path}: a Lambda function that is not base64 text")
    if defaults is not None and not isinstance(defaults, (list, tuple)):
        raise ValueError(f"{path}: Lambda defaults that are not a list")
    if closure is not None and not isinstance(closure, (list, tuple)):
        raise ValueError(f"{path}: a Lambda closure that is not a list")
    try:
        raw = codecs.decode(code_text.encode("ascii"), "base64")
        code = marshal.loads(raw)
    except Exception as error:  # ValueError, EOFError, TypeError; SystemError for bad code
        raise ValueError(
            f"{path}: the Lambda's bytecode does not load in Python {VERSION} ({error}); "
            "it was saved by another Python version or is damaged"
        ) from error
    if not isinstance(code, types.CodeType):
        raise ValueError(f"{path}: the Lambda's bytecode holds a {type(code).__name__}, not code")
    try:
        code = _checked(code)
    except ValueError as error:
        raise ValueError(
            f"{path}: the Lambda's bytecode is not Python {VERSION}'s ({error}); "
            "it was saved by another Python version or is damaged"
        ) from error
    cells = None
    if closure is not None:
        cells = tuple(_cell(_restore_name(value, report, path)) for value in closure)
    try:
        return types.FunctionType(
            code,
            _globals(module),
            name=code.co_name,
            argdefs=None if defaults is None else tuple(defaults),
            closure=cells,
        )
    except (TypeError, ValueError) as error:  # co_freevars and closure disagree
        raise ValueError(
            f"{path}: the Lambda's bytecode does not match its closure or defaults ({error})"
        ) from error


def _part(config: dict[str, Any], key: str, kind_key: str, path: str, report: Report) -> Any:
    """One of the Lambda's function, output_shape or mask, rebuilt by its type."""
    kind = config.get(kind_key, "raw" if key != "function" else None)
    value = config.get(key)
    module = config.get({"function": "module"}.get(key, f"{key}_module"))
    if kind == "lambda":
        return function(value, module, f"{path} ({key})", report)
    if kind == "function":
        found = getattr(sys.modules.get(str(module)), str(value), None)
        if not callable(found):
            raise ValueError(
                f"{path}: the Lambda's {key} is the function {value!r} of module {module!r}, "
                "which is not imported; import it first, or rebuild the layer in Keras 3"
            )
        return found
    if kind == "raw":
        return tuple(value) if isinstance(value, list) else value
    raise ValueError(f"{path}: Lambda {kind_key}={kind!r}; tf_keras writes one of {FUNCTION_TYPES}")


def layer(config: dict[str, Any], path: str, report: Report) -> Any:
    """The Keras 3 ``Lambda`` of a tf_keras ``Lambda`` config, or None after reporting why not."""
    kinds = (config.get(k) for k in ("function_type", "output_shape_type", "mask_type"))
    if report.safe_mode and "lambda" in kinds:
        report.unsupported(path, f"tf_keras Lambda: {REFUSED}")
        return None
    try:
        rebuilt = {
            key: _part(config, key, kind, path, report)
            for key, kind in (
                ("function", "function_type"),
                ("output_shape", "output_shape_type"),
                ("mask", "mask_type"),
            )
        }
    except ValueError as error:
        report.unsupported(path, str(error).removeprefix(f"{path}: "))
        return None
    arguments = config.get("arguments") or {}
    if not isinstance(arguments, dict):
        report.unsupported(path, "tf_keras Lambda whose arguments are not a dict")
        return None
    arguments = {  # tf_keras saves NumPy arguments as {"type": "ndarray", "value": ...}
        key: np.array(value["value"])
        if isinstance(value, dict) and value.get("type") == "ndarray"
        else value
        for key, value in arguments.items()
    }
    rest = {
        key: value
        for key, value in clean_config("Lambda", config).items()
        if key in ("name", "trainable", "dtype")
    }
    report.notice(
        "Lambda layers run the Python bytecode of the file (safe_mode=False); a .keras file "
        "of the model holds it too and loads with keras.saving.load_model(..., safe_mode=False), "
        "except lambdas with default arguments (Keras 3.15's Lambda.from_config raises TypeError)"
    )
    try:
        return keras.layers.Lambda(arguments=arguments, **rebuilt, **rest)
    except CONFIG_ERRORS as error:
        report.unsupported(path, f"tf_keras Lambda with a config Keras 3 rejects: {last_line(error)}")
        return None
