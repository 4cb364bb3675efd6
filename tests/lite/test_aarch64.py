"""The C++ core on its own, natively and on aarch64 (NEON) under qemu-user.

``tests/lite/native/core_test.cc`` is a standalone C++ program (no Python, no
TFLite, no numpy): it runs every kernel of the core (bdense, BDense, BConv2d
with and without an int8 residual, bmaxpool2d, bitpack, unpack, the int8 ADD on
all 65,536 int8 pairs) on every ISA the CPU supports against a naive
reference of docs/lite_ops.md written in C++, bit for bit, on ~1600 random
shapes, and prints ``core_test: N cases, M checks, isas: ..., default ..., OK``.

* aarch64: cross-compiled statically with Debian's ``aarch64-linux-gnu-g++``
  and run with ``qemu-aarch64`` (Debian's qemu-user), so the NEON kernels
  are tested on an x86 machine; the whole kernel library (core and TFLite
  glue) must also link as an aarch64 shared library. Skipped unless both
  tools are on PATH (``.ci/run`` installs them).
* native: the same program built with the host's g++, plainly and under
  AddressSanitizer + UndefinedBehaviorSanitizer, tests scalar / AVX2 /
  AVX-512 against the C++ reference.

Objects and programs are cached under ``build/core_test/`` by the hash of
their compiler, flags and sources (with every header of the kernels), so only
a session's first run compiles (~15 s on two cores). ``-ffp-contract=off`` as
setup.py: aarch64 GCC would otherwise fuse the output transform's multiply
and add into one FMADD/FMLA rounding, which is not the op's definition.
"""

import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "tfqnn" / "lite" / "kernels"
CORE_TEST = Path(__file__).resolve().parent / "native" / "core_test.cc"
BUILD = ROOT / "build" / "core_test"

CROSS = "aarch64-linux-gnu-g++"
QEMU = "qemu-aarch64"
# -fPIC: the same objects make the static test program and the shared library.
FLAGS = ["-O2", "-std=c++17", "-pthread", "-ffp-contract=off", "-fPIC", "-Wall", "-Wextra"]
SANITIZE = [
    "-O1",
    "-g",
    "-fsanitize=address,undefined,float-cast-overflow",
    "-fno-sanitize-recover=all",
]
SUMMARY = re.compile(
    r"core_test: (\d+) cases, (\d+) checks, isas: ([a-z0-9 ]+), "
    r"default (\w+), (OK|FAILED)"
)
MIN_CASES = 1500

requires_cross = pytest.mark.skipif(
    not (shutil.which(CROSS) and shutil.which(QEMU)),
    reason=f"needs {CROSS} and {QEMU} (Debian: g++-aarch64-linux-gnu, qemu-user)",
)


def _native_compiler():
    return shutil.which("g++") or shutil.which("c++")


requires_native = pytest.mark.skipif(
    sys.platform != "linux" or _native_compiler() is None, reason="needs g++ on Linux"
)


# ---- the cached build ---------------------------------------------------------------


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


_VERSIONS = {}


def _compiler_version(cxx):
    if cxx not in _VERSIONS:
        _VERSIONS[cxx] = subprocess.run(
            [cxx, "--version"], capture_output=True, text=True, check=True
        ).stdout
    return _VERSIONS[cxx]


def _headers_digest():
    headers = sorted(KERNELS.rglob("*.h"))
    return _digest(*(part for h in headers for part in (h.relative_to(ROOT), h.read_bytes())))


def _atomic_output(path):
    """A temporary name next to `path`, to be os.replace()d onto it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _run_tool(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")
    return result


def _objects(cxx, flags, sources):
    """Compiles `sources` (in parallel, cached by content); returns the objects."""
    key = _digest(_compiler_version(cxx), *flags, _headers_digest())
    jobs = []
    for source in sources:
        obj = BUILD / "obj" / f"{source.stem}-{_digest(key, source, source.read_bytes())}.o"
        jobs.append((source, obj))

    def compile_one(job):
        source, obj = job
        if obj.exists():
            return obj
        tmp = _atomic_output(obj)
        _run_tool([cxx, *flags, f"-I{ROOT}", "-c", str(source), "-o", str(tmp)])
        os.replace(tmp, obj)
        return obj

    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(compile_one, jobs))


def _link(cxx, objects, link_flags, name):
    """Links `objects` (cached by their names, which hash their inputs)."""
    out = BUILD / f"{name}-{_digest(cxx, *link_flags, *(o.name for o in objects))}"
    if not out.exists():
        tmp = _atomic_output(out)
        _run_tool([cxx, *map(str, objects), "-o", str(tmp), *link_flags])
        os.replace(tmp, out)
    return out


def _core_sources():
    return sorted((KERNELS / "core").glob("*.cc"))


def _run_core_test(command, timeout=300, env=None):
    env = dict(os.environ if env is None else env)
    env.setdefault("QEMU_CPU", "max")
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    output = result.stdout + result.stderr
    match = SUMMARY.search(output)
    assert result.returncode == 0 and match and match.group(5) == "OK", output[-5000:]
    cases, checks, isas, default = (
        int(match.group(1)),
        int(match.group(2)),
        match.group(3).split(),
        match.group(4),
    )
    assert checks == cases * len(isas), output
    return cases, isas, default, output


def _without_isa_variable():
    return {k: v for k, v in os.environ.items() if k != "TFQNN_ISA"}


# ---- aarch64 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aarch64_core_test():
    objects = _objects(CROSS, FLAGS, [*_core_sources(), CORE_TEST])
    return _link(CROSS, objects, ["-static", "-pthread"], "core_test-aarch64")


@requires_cross
def test_neon_kernels_under_qemu(aarch64_core_test):
    cases, isas, default, _ = _run_core_test(
        [QEMU, str(aarch64_core_test), "--scale", "2"], env=_without_isa_variable()
    )
    assert isas == ["scalar", "neon"]
    assert default == "neon"  # NEON is mandatory on ARMv8-A: the default there
    assert cases >= 2 * MIN_CASES


@requires_cross
@pytest.mark.parametrize(
    ("variable", "expected"), [("scalar", "scalar"), ("neon", "neon"), ("avx2", "scalar")]
)
def test_isa_variable_on_aarch64(aarch64_core_test, variable, expected):
    env = {**os.environ, "TFQNN_ISA": variable}
    _, _, default, _ = _run_core_test([QEMU, str(aarch64_core_test), "--scale", "0.02"], env=env)
    assert default == expected


@requires_cross
def test_kernel_library_cross_compiles_for_aarch64():
    # The whole library as setup.py links it (the glue's static_asserts
    # assume LP64, as aarch64 is).
    sources = sorted(KERNELS.rglob("*.cc"))
    assert any(s.parent.name == "tflite" for s in sources) and len(sources) > 10
    library = _link(
        CROSS,
        _objects(CROSS, FLAGS, sources),
        ["-shared", "-ldl", "-pthread"],
        "libtfqnn_ops-aarch64.so",
    )
    header = library.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[16] == 3  # ET_DYN
    assert int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


# ---- native -------------------------------------------------------------------------


def _cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    match = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else None


def _expected_native_isas():
    """The ISAs core/dispatch.cc should find on this CPU (None: unknown)."""
    machine = os.uname().machine
    if machine in ("aarch64", "arm64"):
        return ["scalar", "neon"]
    flags = _cpu_flags()
    if machine != "x86_64" or flags is None:
        return None
    isas = ["scalar"]
    if {"avx2", "popcnt"} <= flags:
        isas.append("avx2")
    if {"avx512f", "avx512_vpopcntdq", "avx512vl", "avx512bw", "avx512dq"} <= flags:
        isas.append("avx512")
    return isas


@requires_native
def test_core_natively():
    cxx = _native_compiler()
    objects = _objects(cxx, FLAGS, [*_core_sources(), CORE_TEST])
    program = _link(cxx, objects, ["-pthread"], "core_test-native")
    cases, isas, default, _ = _run_core_test(
        [str(program), "--scale", "2"], env=_without_isa_variable()
    )
    expected = _expected_native_isas()
    if expected is not None:
        assert isas == expected
    assert default == isas[-1]
    assert cases >= 2 * MIN_CASES


@requires_native
def test_core_natively_under_sanitizers():
    cxx = _native_compiler()
    flags = [*FLAGS, *SANITIZE]
    try:
        objects = _objects(cxx, flags, [*_core_sources(), CORE_TEST])
        program = _link(cxx, objects, [*SANITIZE, "-pthread"], "core_test-sanitized")
    except pytest.fail.Exception as error:
        if "sanitize" in str(error) and ("cannot find" in str(error) or "-lasan" in str(error)):
            pytest.skip("no ASan/UBSan runtime for this compiler")
        raise
    env = {
        **_without_isa_variable(),
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
        "UBSAN_OPTIONS": "print_stacktrace=1",
    }
    cases, _, _, output = _run_core_test([str(program), "--seed", "2"], env=env)
    assert "runtime error" not in output and "AddressSanitizer" not in output
    assert cases >= MIN_CASES
