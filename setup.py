"""Builds tfqnn's kernel library; the package's metadata is in pyproject.toml.

Every ``*.cc`` under ``tfqnn/lite/kernels/`` is compiled into one plain shared
library, ``tfqnn/lite/libtfqnn_ops.so`` (no Python ABI tag, no ``PyInit``:
Python loads it with ctypes, TFLite as a delegate). It needs a C++17 compiler
and nothing from TensorFlow or LiteRT, so build isolation is harmless. The
wheel is tagged ``py3-none-<platform>``: the library is native code, but it has
no Python ABI, so one wheel serves every Python 3.

    pip install -e .                     # editable: the .so lands in the source tree
    python setup.py build_ext --inplace  # the same, without installing (setuptools >= 77)

Environment:
    CXX             the compiler (default ``c++``), may carry flags: ``CXX="ccache g++"``
    TFQNN_CXXFLAGS  flags added after the defaults, e.g. for a sanitizer build
                    ``TFQNN_CXXFLAGS="-O1 -g -fsanitize=address,undefined"``
                    (used for linking too)
    TFQNN_LDFLAGS   flags added to the link only
"""

import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext

KERNELS = Path("tfqnn", "lite", "kernels")
LIBRARY = "tfqnn.lite.libtfqnn_ops"  # -> tfqnn/lite/libtfqnn_ops.so
# -ffp-contract=off: no FMA contraction, so the output transform
# (dot * multiplier + bias) rounds twice, bit-exact with numpy's float32.
CXXFLAGS = [
    "-O3",
    "-std=c++17",
    "-fvisibility=hidden",
    "-fPIC",
    "-ffp-contract=off",
    "-Wall",
    "-Wextra",
]
LDFLAGS = ["-shared"]
LIBS = ["-ldl", "-pthread"]


def _sorted_posix(paths):
    return sorted(path.as_posix() for path in paths)


class BuildKernelLibrary(build_ext):
    """build_ext that links the kernel sources into a plain shared library."""

    def get_ext_filename(self, fullname):
        # Called with the dotted name, and by get_ext_fullpath with its last part.
        if fullname in (LIBRARY, LIBRARY.rpartition(".")[2]):
            return os.path.join(*fullname.split(".")[:-1], "libtfqnn_ops.so")
        return super().get_ext_filename(fullname)

    def build_extension(self, ext):
        if ext.name != LIBRARY:
            super().build_extension(ext)
            return
        output = Path(self.get_ext_fullpath(ext.name))
        sources = [Path(source) for source in ext.sources]
        cxx = shlex.split(os.environ.get("CXX") or "c++")
        extra = shlex.split(os.environ.get("TFQNN_CXXFLAGS", ""))
        extra_ld = shlex.split(os.environ.get("TFQNN_LDFLAGS", ""))
        build_temp = Path(self.build_temp, "tfqnn_kernels")
        objects = [build_temp / source.with_suffix(".o") for source in sources]
        # The compiler and flags of the last build: a change rebuilds.
        stamp = build_temp / "command.txt"
        command_line = shlex.join(cxx + CXXFLAGS + extra + ["|"] + extra_ld + [str(output)])
        inputs = sources + [Path(path) for path in ext.depends] + [Path(__file__)]
        if (
            not self.force
            and output.exists()
            and stamp.exists()
            and stamp.read_text() == command_line
            and all(output.stat().st_mtime >= path.stat().st_mtime for path in inputs)
        ):
            print(f"{output} is up to date")
            return

        def compile_one(pair):
            source, obj = pair
            obj.parent.mkdir(parents=True, exist_ok=True)
            command = cxx + CXXFLAGS + extra + ["-c", str(source), "-o", str(obj)]
            print(" ".join(shlex.quote(part) for part in command))
            return subprocess.run(command, check=False, capture_output=True, text=True)

        jobs = min(len(sources), os.cpu_count() or 1) or 1
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(compile_one, zip(sources, objects)))
        failed = False
        for source, result in zip(sources, results):
            if result.stdout or result.stderr:
                print(result.stdout + result.stderr)
            if result.returncode != 0:
                print(f"error: compiling {source} failed")
                failed = True
        if failed:
            raise RuntimeError("compiling tfqnn's kernel library failed (see above)")
        output.parent.mkdir(parents=True, exist_ok=True)
        command = (
            cxx
            + CXXFLAGS
            + extra
            + LDFLAGS
            + extra_ld
            + [str(obj) for obj in objects]
            + ["-o", str(output)]
            + LIBS
        )
        print(" ".join(shlex.quote(part) for part in command))
        subprocess.run(command, check=True)
        stamp.write_text(command_line)


class PlatformWheel(bdist_wheel):
    """A wheel for this platform and any Python 3 (``py3-none-<platform>``)."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    ext_modules=[
        Extension(
            LIBRARY,
            sources=_sorted_posix(KERNELS.rglob("*.cc")),
            depends=_sorted_posix(KERNELS.rglob("*.h")),
        )
    ],
    cmdclass={"build_ext": BuildKernelLibrary, "bdist_wheel": PlatformWheel},
)
