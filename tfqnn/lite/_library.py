"""Where tfqnn's kernel library is, and loading it.

The library ``libtfqnn_ops.so`` holds the C++ kernels of tfqnn's TFLite custom
ops (``tfqnn/lite/kernels/``). ``pip install`` builds it beside this file; the
environment variable ``TFQNN_LIBRARY`` names another build (a sanitizer build,
say) instead.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

LIBRARY_NAME = "libtfqnn_ops.so"
ENV_VAR = "TFQNN_LIBRARY"

_BUILD_HINT = (
    "Build it from the source tree with `pip install -e .` (or "
    "`python setup.py build_ext --inplace`), which needs a C++17 compiler; "
    f"or set {ENV_VAR} to the path of a build."
)


class KernelLibraryError(ImportError):
    """The kernel library is missing or cannot be loaded."""


def library_path() -> str:
    """The path of the kernel library: ``$TFQNN_LIBRARY``, or the one beside this module."""
    override = os.environ.get(ENV_VAR)
    if override:
        return str(Path(override).expanduser())
    return str(Path(__file__).resolve().with_name(LIBRARY_NAME))


def load_library() -> ctypes.CDLL:
    """Loads the kernel library once per path (``RTLD_GLOBAL``) and returns its `ctypes.CDLL`.

    Raises:
        KernelLibraryError: (an ImportError) when the library is missing or
            does not load, with how to build it.
    """
    return _load(library_path())


@functools.cache
def _load(path: str) -> ctypes.CDLL:
    if not os.path.isfile(path):
        raise KernelLibraryError(f"tfqnn's kernel library {path} does not exist. {_BUILD_HINT}")
    try:
        return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError as error:
        raise KernelLibraryError(
            f"tfqnn's kernel library {path} does not load: {error}. {_BUILD_HINT}"
        ) from error
