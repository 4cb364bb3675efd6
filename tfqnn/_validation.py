"""Argument checks shared by tfqnn's constructors.

Every check raises a ``ValueError`` that names the argument, the value it got
and what is allowed, so a typo in a config fails at construction time.
"""

from __future__ import annotations

import numbers
from collections.abc import Collection
from typing import Any, Literal, TypeVar, overload

T = TypeVar("T")


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Returns ``value`` if it is an integer in ``[low, high]``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        raise ValueError(f"Invalid {name}={value!r}: expected {_int_range(low, high)}.")
    return int(value)


@overload
def check_number(
    name: str,
    value: Any,
    *,
    positive: bool = ...,
    non_negative: bool = ...,
    allow_none: Literal[False] = ...,
) -> float: ...
@overload
def check_number(
    name: str,
    value: Any,
    *,
    positive: bool = ...,
    non_negative: bool = ...,
    allow_none: bool,
) -> float | None: ...
def check_number(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    non_negative: bool = False,
    allow_none: bool = False,
) -> float | None:
    """Returns ``value`` as a float if it is a finite real number (or None when allowed)."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and value == value and abs(value) != float("inf")
    if ok and positive:
        ok = value > 0
    if ok and non_negative:
        ok = value >= 0
    if not ok:
        kind = (
            "a positive number"
            if positive
            else ("a non-negative number" if non_negative else "a finite number")
        )
        if allow_none:
            kind += " or None"
        raise ValueError(f"Invalid {name}={value!r}: expected {kind}.")
    return float(value)


def check_choice(name: str, value: T, choices: Collection[T]) -> T:
    """Returns ``value`` if it is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"Invalid {name}={value!r}: expected one of {allowed}.")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Returns ``value`` if it is a bool (1 and 0 are not accepted for True and False)."""
    if not isinstance(value, bool):
        # tfqnn raises ValueError for every invalid argument, wrong types included.
        raise ValueError(f"Invalid {name}={value!r}: expected True or False.")  # noqa: TRY004
    return value


def check_seed(name: str, value: Any) -> int | None:
    """A seed is None or a non-negative integer."""
    if value is None:
        return None
    return check_int(name, value, low=0)


def check_verbose(value: Any, name: str = "verbose") -> int:
    """Keras's ``verbose`` as 0, 1 or 2.

    0 is silent, 1 a progress bar (or a line per step), 2 a line per item or
    one at the end; ``"auto"`` is 1 and a bool 0 or 1, as in ``Model.fit``.
    """
    if isinstance(value, str) and value == "auto":
        return 1
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, numbers.Integral) or int(value) not in (0, 1, 2):
        raise ValueError(f"Invalid {name}={value!r}: expected 'auto', 0, 1 or 2.")
    return int(value)


def _int_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an integer from {low} to {high}"
    if low is not None:
        return f"an integer >= {low}"
    if high is not None:
        return f"an integer <= {high}"
    return "an integer"
