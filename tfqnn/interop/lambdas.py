"""tf_keras ``Lambda`` layers, whose functions are saved as Python bytecode, as Keras 3 ``Lambda``.

tf_keras saves a ``Lambda`` of a Python ``lambda`` with its ``func_dump``:
``[base64(marshal.dumps(f.__code__)), f.__defaults__, closure values]``,
under ``function_type: "lambda"``, and rebuilds it with ``func_load``:
base64 -> ``marshal.loads`` -> ``types.FunctionType(code, globals, name,
defaults, closure)``, the globals being its own module's (``tf`` is
TensorFlow, ``np`` NumPy) updated with those of the module the lambda was
written in when that module is imported. `function` does the same, reading
the marshal data with `tfqnn.interop.marshal_code` rather than
``marshal.loads``, which can crash the interpreter on damaged data.

Marshalled bytecode belongs to one Python version (3.11 bytecode is not
3.12's) and is not checked by Python: a code object from another version,
or a damaged one, can crash the interpreter when it runs. `function`
therefore checks every instruction against this interpreter's opcodes,
every index against the code object's tables and the stack depth along
every path before building the function, and raises ValueError otherwise.
That guards against accidents, not attacks, and not completely (CPython
has no bytecode verifier: a damaged function that passes can still crash
when it runs; seen in about 1 of 300 to 1,000 random bit flips): ``marshal.loads`` of crafted data is not safe, and a
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
import sys
import types
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfqnn.interop import marshal_code
from tfqnn.interop.keras_layers import CONFIG_ERRORS, clean_config, last_line
from tfqnn.interop.report import Report

# The most stack slots a function may ask for (CPython trusts co_stacksize).
MAX_STACK = 1 << 16
# How tf_keras marks a Lambda's function: bytecode, a function by name, or a value.
FUNCTION_TYPES = ("lambda", "function", "raw")
GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200  # generator, coroutine, async
JUMPS = frozenset(dis.hasjrel + dis.hasjabs)
# Instructions after which the next one is not reached, and how many values
# instructions that push results first take (where stack_effect nets them).
# Opcodes the compiler writes in no function, and only in generators.
NEVER = frozenset(("CACHE", "RETURN_GENERATOR", "SETUP_ANNOTATIONS", "IMPORT_STAR"))
GENERATORS = frozenset(
    ("SEND", "YIELD_VALUE", "ASYNC_GEN_WRAP", "GET_AWAITABLE", "GET_ANEXT", "GET_AITER")
    + ("END_ASYNC_FOR", "BEFORE_ASYNC_WITH", "GET_YIELD_FROM_ITER", "END_SEND")
)
PROLOGUE = {"MAKE_CELL", "COPY_FREE_VARS", "RETURN_GENERATOR", "POP_TOP", "NOP"}
ENDS = frozenset(
    ("RETURN_VALUE", "RAISE_VARARGS", "RERAISE", "JUMP_FORWARD", "JUMP_BACKWARD")
    + ("JUMP_BACKWARD_NO_INTERRUPT", "JUMP_ABSOLUTE", "RETURN_CONST", "JUMP", "JUMP_NO_INTERRUPT")
)
# How many values an instruction takes from the stack before pushing its
# results (stack_effect gives only the net change), by its argument.
TAKES: dict[str, Any] = {
    **dict.fromkeys(
        ("BINARY_OP", "BINARY_SUBSCR", "COMPARE_OP", "IS_OP", "CONTAINS_OP", "STORE_ATTR")
        + ("DELETE_SUBSCR", "CHECK_EXC_MATCH", "IMPORT_NAME", "BINARY_SLICE"),
        lambda arg: 2,
    ),
    **dict.fromkeys(("STORE_SUBSCR",), lambda arg: 3),
    "STORE_SLICE": lambda arg: 4,
    **dict.fromkeys(
        ("POP_TOP", "GET_ITER", "RETURN_VALUE", "LOAD_ATTR", "LOAD_METHOD", "UNARY_NEGATIVE")
        + ("UNARY_NOT", "UNARY_INVERT", "UNARY_POSITIVE", "UNPACK_SEQUENCE", "UNPACK_EX")
        + ("FOR_ITER", "LIST_TO_TUPLE", "GET_LEN", "BEFORE_WITH", "PUSH_EXC_INFO")
        + ("POP_EXCEPT", "IMPORT_FROM", "YIELD_VALUE", "STORE_FAST", "STORE_NAME")
        + ("STORE_GLOBAL", "STORE_DEREF", "DELETE_ATTR", "JUMP_IF_TRUE_OR_POP")
        + ("JUMP_IF_FALSE_OR_POP", "POP_JUMP_FORWARD_IF_TRUE", "POP_JUMP_FORWARD_IF_FALSE")
        + ("POP_JUMP_BACKWARD_IF_TRUE", "POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_IF_TRUE")
        + ("POP_JUMP_IF_FALSE", "POP_JUMP_FORWARD_IF_NONE", "POP_JUMP_FORWARD_IF_NOT_NONE")
        + ("POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE", "PRINT_EXPR"),
        lambda arg: 1,
    ),
    **dict.fromkeys(("BUILD_TUPLE", "BUILD_LIST", "BUILD_SET", "BUILD_STRING"), lambda a: a),
    **dict.fromkeys(("BUILD_SLICE", "RAISE_VARARGS"), lambda arg: arg),
    "COPY": lambda arg: arg if arg >= 1 else MAX_STACK + 1,  # COPY 0 reads above the stack
    "SWAP": lambda arg: arg if arg >= 2 else MAX_STACK + 1,
    "BUILD_MAP": lambda arg: 2 * arg,
    "BUILD_CONST_KEY_MAP": lambda arg: arg + 1,
    **dict.fromkeys(
        ("LIST_APPEND", "SET_ADD", "LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE", "DICT_MERGE"),
        lambda arg: arg + 1,
    ),
    "MAP_ADD": lambda arg: arg + 2,
    "PRECALL": lambda arg: arg + 2,
    # Python 3.11's stack_effect counts CALL's arguments on the PRECALL before it.
    "CALL": (lambda arg: 2) if "PRECALL" in dis.opmap else (lambda arg: arg + 2),
    "CALL_FUNCTION_EX": lambda arg: 3 + (arg & 1),
    "MAKE_FUNCTION": lambda arg: 1 + bin(arg & 0x0F).count("1"),
    "FORMAT_VALUE": lambda arg: 1 + bool(arg & 4),
    "RERAISE": lambda arg: 1 + bool(arg),
    "WITH_EXCEPT_START": lambda arg: 4,
}
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

    `code` comes from `marshal_code.loads`, which has checked its opcodes and
    inline caches (`marshal_code.check_bytecode`). Raises ValueError for an
    argument out of the code object's tables, a jump or handler outside the
    code, a cell without its MAKE_CELL or COPY_FREE_VARS, a value stack that
    underflows (`_stack_depth`), or a generator as the function. CPython
    trusts ``co_stacksize``; it is raised to the depth found.
    """
    if depth > 20:
        raise ValueError("code objects nested too deeply")
    if depth == 0 and code.co_flags & GENERATOR_FLAGS:
        raise ValueError("a generator or coroutine")  # a Lambda's function returns its value
    size = len(code.co_code)
    try:
        instructions = list(dis.get_instructions(code))
    except Exception as error:  # dis indexes the tables with each argument
        raise ValueError(f"an instruction out of its tables ({type(error).__name__})") from error
    if size % 2 or not instructions:
        raise ValueError("code of an odd or zero length")
    names = [i.opname for i in instructions]
    start = names.index("RESUME") if "RESUME" in names else -1
    if start < 0 or set(names[:start]) - PROLOGUE:
        raise ValueError(f"no RESUME at its start, which Python {VERSION}'s code has")
    offsets = {i.offset for i in instructions}
    cells = set(code.co_cellvars) | set(code.co_freevars)
    made = {i.argval for i in instructions if i.opname == "MAKE_CELL"}
    copied = [i.arg for i in instructions[:start] if i.opname == "COPY_FREE_VARS"]
    if set(code.co_cellvars) - made or (code.co_freevars and copied != [len(code.co_freevars)]):
        raise ValueError("cells without their MAKE_CELL or COPY_FREE_VARS")
    generator = bool(code.co_flags & GENERATOR_FLAGS)
    for position, (before, instruction) in enumerate(zip([None, *instructions], instructions)):
        misplaced = instruction.opname in GENERATORS and not generator
        if position > start and (instruction.opname in NEVER or misplaced):
            raise ValueError(f"{instruction.opname} where the compiler does not put it")
        if (
            instruction.opname == "CALL"
            and "PRECALL" in dis.opmap
            and (before is None or (before.opname, before.arg) != ("PRECALL", instruction.arg))
        ):
            raise ValueError("a CALL without its PRECALL")
        if instruction.opcode in JUMPS and not (
            isinstance(instruction.argval, int) and instruction.argval in offsets
        ):
            raise ValueError(f"a jump to {instruction.argval}, not an instruction")
        if instruction.opcode in dis.hasfree and instruction.argval not in cells:
            raise ValueError(f"a cell access to {instruction.argval!r}, not a cell")
        if instruction.opcode in dis.haslocal and instruction.argval not in code.co_varnames:
            raise ValueError(f"a local access to {instruction.argval!r}, not a local")
    parse = getattr(dis, "_parse_exception_table", None)
    handlers = list(parse(code)) if parse is not None else []
    for entry in handlers:
        if not (0 <= entry.start <= entry.end <= size and entry.target in offsets):
            raise ValueError("an exception handler outside the code")
    stack = _stack_depth(instructions, handlers, start)
    if stack > MAX_STACK:
        raise ValueError(f"a stack of {stack} slots")
    consts = tuple(
        _checked(c, depth + 1) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_stacksize=max(stack, code.co_stacksize), co_consts=consts)


def _stack_depth(instructions: list[dis.Instruction], handlers: list[Any], start: int) -> int:
    """The deepest the value stack gets, following every jump; ValueError if it underflows.

    The compiler gives each instruction one depth whichever way it is
    reached; damaged bytecode that pops what was never pushed, or reaches
    an instruction at two depths, is refused. The prologue before
    ``instructions[start]`` (RESUME) is not counted, as by the compiler.
    """
    at = {instruction.offset: i for i, instruction in enumerate(instructions)}
    depths: dict[int, int] = {}
    pending = [(start, 0)] + [(at[h.target], h.depth + int(h.lasti) + 1) for h in handlers]
    deepest = 0
    while pending:
        index, depth = pending.pop()
        while 0 <= index < len(instructions):
            if index in depths:
                if depths[index] != depth:
                    raise ValueError("an instruction reached at two stack depths")
                break
            depths[index] = depth
            instruction = instructions[index]
            try:
                effects = [dis.stack_effect(instruction.opcode, instruction.arg, jump=False)]
                if instruction.opcode in JUMPS:
                    jumped = dis.stack_effect(instruction.opcode, instruction.arg, jump=True)
            except ValueError as error:
                raise ValueError(f"{instruction.opname} has no stack effect ({error})") from error
            takes = TAKES.get(instruction.opname)
            if depth - (takes(instruction.arg or 0) if takes else 0) < 0 or depth + effects[0] < 0:
                raise ValueError(f"{instruction.opname} pops from an empty stack")
            deepest = max(deepest, depth + max(effects[0], 0))
            if instruction.opcode in JUMPS:
                if depth + jumped < 0:
                    raise ValueError(f"{instruction.opname} pops from an empty stack")
                deepest = max(deepest, depth + jumped)
                pending.append((at[instruction.argval], depth + jumped))
            if instruction.opname in ENDS:
                break
            depth += effects[0]
            index += 1
        if index >= len(instructions):
            raise ValueError("code that runs past its end")
    return deepest + 2


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
        raise ValueError(f"{path}: a Lambda function that is not base64 text")  # noqa: TRY004
    if defaults is not None and not isinstance(defaults, (list, tuple)):
        raise ValueError(f"{path}: Lambda defaults that are not a list")
    if closure is not None and not isinstance(closure, (list, tuple)):
        raise ValueError(f"{path}: a Lambda closure that is not a list")
    try:
        raw = codecs.decode(code_text.encode("ascii"), "base64")
        code = marshal_code.loads(raw)
    except (ValueError, UnicodeEncodeError) as error:  # binascii.Error is a ValueError
        raise ValueError(
            f"{path}: the Lambda's bytecode does not load in Python {VERSION} ({error}); "
            "it was saved by another Python version or is damaged"
        ) from error
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
    if report.safe_mode and ("lambda" in kinds or config.get("function_type") != "function"):
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
        report.unsupported(
            path, f"tf_keras Lambda with a config Keras 3 rejects: {last_line(error)}"
        )
        return None
