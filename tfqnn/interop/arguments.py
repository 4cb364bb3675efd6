"""A peer layer's quantizer arguments replaced by tfqnn quantizers, shared by larq and QKeras."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tfqnn.interop.report import Report


def translate_quantizers(
    config: dict[str, Any],
    names: Sequence[str],
    describe: Callable[[Any], str],
    quantizer: Callable[[Any, str, Report], Any],
    path: str,
    report: Report,
) -> str:
    """Replaces each argument of ``names`` in ``config`` by ``quantizer(value, path, report)``.

    Returns the source quantizers as text, ``"name=<describe(value)>, ..."``
    (the ones that are not None), for the report's table.
    """
    described = []
    for name in names:
        value = config.get(name)
        if value is not None:
            described.append(f"{name}={describe(value)}")
        config[name] = quantizer(value, f"{path}/{name}", report)
    return ", ".join(described)
