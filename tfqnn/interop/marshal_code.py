"""A Python reader of marshalled code objects: ``marshal.loads`` without its C-level risks.

``marshal.loads`` trusts its input: damaged data (a flipped bit) can make
it build objects with wrong reference counts and crash the interpreter
later. `loads` reads the same format (CPython's ``Python/marshal.c``,
version 4, as Python 3.11 to 3.13 write code objects: the types a code
object holds, and back-references) in Python, with every length checked
against the data left, and builds the code object with ``types.CodeType``,
which validates its fields, after `check_bytecode` (which it does not do:
an opcode whose inline caches run past the end makes CPython's quickening
write past the bytecode). Anything else raises ValueError.
"""

from __future__ import annotations

import opcode
import struct
import types
from typing import Any

FLAG_REF = 0x80
MAX_DEPTH = 100
# localspluskinds of a code object (Include/internal/pycore_code.h).
FAST_LOCAL, FAST_CELL, FAST_FREE = 0x20, 0x40, 0x80


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0
        self.refs: list[Any] = []

    def take(self, count: int) -> bytes:
        if count < 0 or self.position + count > len(self.data):
            raise ValueError("marshal data ends early")
        chunk = self.data[self.position : self.position + count]
        self.position += count
        return chunk

    def int32(self) -> int:
        return int(struct.unpack("<i", self.take(4))[0])

    def size(self, width: int = 4) -> int:
        count = self.take(1)[0] if width == 1 else self.int32()
        if count < 0 or count > len(self.data) - self.position:
            raise ValueError(f"a size of {count} beyond the data")
        return count

    def read(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("marshal data nested too deeply")
        code = self.take(1)[0]
        flag, kind = code & FLAG_REF, chr(code & ~FLAG_REF)
        slot = None
        if flag and kind in "()c>":  # containers take their slot before their items
            slot = len(self.refs)
            self.refs.append(_RESERVED)
        value = self._value(kind, depth)
        if flag:
            if slot is None:
                self.refs.append(value)
            else:
                self.refs[slot] = value
        return value

    def _value(self, kind: str, depth: int) -> Any:
        if kind in "NFT.":
            return {"N": None, "F": False, "T": True, ".": Ellipsis}[kind]
        if kind == "i":
            return self.int32()
        if kind == "l":
            digits = self.int32()
            if abs(digits) > len(self.data) - self.position:
                raise ValueError("a long beyond the data")
            value = 0
            for i, (digit,) in enumerate(struct.iter_unpack("<H", self.take(2 * abs(digits)))):
                if digit >= 1 << 15:
                    raise ValueError("a long digit out of range")
                value |= digit << (15 * i)
            return -value if digits < 0 else value
        if kind == "g":
            return struct.unpack("<d", self.take(8))[0]
        if kind == "y":
            real, imag = struct.unpack("<dd", self.take(16))
            return complex(real, imag)
        if kind == "s":
            return self.take(self.size())
        if kind in "tu":
            return self._text(self.take(self.size()), "utf-8")
        if kind in "aA":
            return self._text(self.take(self.size()), "ascii")
        if kind in "zZ":
            return self._text(self.take(self.size(1)), "ascii")
        if kind in "()>":
            count = self.size(1 if kind == ")" else 4)
            items = [self.read(depth + 1) for _ in range(count)]
            try:
                return frozenset(items) if kind == ">" else tuple(items)
            except TypeError as error:  # an unhashable item
                raise ValueError(f"a frozenset of {error}") from error
        if kind == "r":
            index = self.int32()
            if not 0 <= index < len(self.refs) or self.refs[index] is _RESERVED:
                raise ValueError(f"a back-reference to {index}, which is not there")
            return self.refs[index]
        if kind == "c":
            return self._code(depth)
        raise ValueError(f"marshal type {kind!r}, which code objects do not hold")

    @staticmethod
    def _text(raw: bytes, encoding: str) -> str:
        try:
            return raw.decode(encoding, "surrogatepass")
        except UnicodeDecodeError as error:
            raise ValueError(f"text that is not {encoding}") from error

    def _typed(self, expected: type, what: str, depth: int) -> Any:
        value = self.read(depth + 1)
        if not isinstance(value, expected):
            raise ValueError(f"a code object whose {what} is a {type(value).__name__}")  # noqa: TRY004
        return value

    def _code(self, depth: int) -> types.CodeType:
        argcount, posonly, kwonly, stacksize, flags = (self.int32() for _ in range(5))
        code = self._typed(bytes, "bytecode", depth)
        consts = self._typed(tuple, "constants", depth)
        names = self._typed(tuple, "names", depth)
        localsplus = self._typed(tuple, "local names", depth)
        kinds = self._typed(bytes, "local kinds", depth)
        filename = self._typed(str, "file name", depth)
        name = self._typed(str, "name", depth)
        qualname = self._typed(str, "qualified name", depth)
        firstlineno = self.int32()
        linetable = self._typed(bytes, "line table", depth)
        exceptiontable = self._typed(bytes, "exception table", depth)
        texts = names + localsplus
        if len(set(localsplus)) != len(localsplus):
            raise ValueError("a code object with two locals of one name")
        if len(kinds) != len(localsplus) or not all(isinstance(t, str) for t in texts):
            raise ValueError("a code object whose local names and kinds disagree")
        varnames = tuple(n for n, k in zip(localsplus, kinds) if k & FAST_LOCAL)
        cellvars = tuple(n for n, k in zip(localsplus, kinds) if k & FAST_CELL)
        freevars = tuple(n for n, k in zip(localsplus, kinds) if k & FAST_FREE)
        if any(k & ~(FAST_LOCAL | FAST_CELL | FAST_FREE) for k in kinds):
            raise ValueError("a code object with local kinds this reader does not know")
        check_bytecode(code)
        try:
            return types.CodeType(
                argcount,
                posonly,
                kwonly,
                len(varnames),
                stacksize,
                flags,
                code,
                consts,
                names,
                varnames,
                filename,
                name,
                qualname,
                firstlineno,
                linetable,
                exceptiontable,
                freevars,
                cellvars,
            )
        except (TypeError, ValueError, SystemError, OverflowError, MemoryError) as error:
            raise ValueError(f"a code object Python rejects ({error})") from error


def _cache_entries(op: int) -> int:
    """The inline cache code units after opcode `op` (Python 3.11-3.12: a list; 3.13: by name)."""
    entries = vars(opcode)["_inline_cache_entries"]  # the interpreter's own table (private)
    if isinstance(entries, dict):
        return int(entries.get(opcode.opname[op], 0))
    return int(entries[op])


KNOWN_OPCODES = frozenset(opcode.opmap.values())  # this Python's
_CACHE = opcode.opmap.get("CACHE", 0)


def check_bytecode(code: bytes) -> None:
    """ValueError unless `code` is whole 2-byte instructions of known opcodes, each followed by
    its inline cache units (CACHE, argument 0) inside the bytecode."""
    if len(code) % 2:
        raise ValueError("bytecode of an odd length")
    units = len(code) // 2
    i = 0
    while i < units:
        op = code[2 * i]
        if op not in KNOWN_OPCODES or op == _CACHE:
            raise ValueError(f"bytecode with an unknown opcode {op} at {2 * i}")
        caches = _cache_entries(op)
        if i + 1 + caches > units:
            raise ValueError(f"bytecode whose opcode {opcode.opname[op]} runs past its end")
        for j in range(i + 1, i + 1 + caches):
            if code[2 * j] != _CACHE or code[2 * j + 1] != 0:
                raise ValueError(f"bytecode with a damaged inline cache at {2 * j}")
        i += 1 + caches


_RESERVED = object()


def loads(data: bytes) -> types.CodeType:
    """The code object of ``marshal.dumps(code)``, read in Python; ValueError if it is not one."""
    reader = _Reader(bytes(data))
    try:
        code = reader.read()
    except (struct.error, RecursionError, OverflowError) as error:
        raise ValueError(f"damaged marshal data ({type(error).__name__})") from error
    if not isinstance(code, types.CodeType):
        raise ValueError(f"marshal data of a {type(code).__name__}, not code")  # noqa: TRY004
    if reader.position != len(reader.data):
        raise ValueError(f"{len(reader.data) - reader.position} bytes after the code object")
    return code
