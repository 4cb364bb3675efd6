"""Fuzzing tfqnn's TFLite kernels with malformed models, under ASan and UBSan.

A `.tflite` file is input from outside: Prepare must reject every malformed
option, tensor type or shape with an error, never crash or read out of
bounds. Two fuzzers check that:

* ``test_native_fuzz``: ``tests/lite/native/fuzz_ops.cc``, compiled with the
  whole kernel library under AddressSanitizer and UndefinedBehaviorSanitizer,
  drives the TFLite glue through a fake TfLiteContext: generated custom
  options (valid FlexBuffer maps, mutated ones, random bytes) and tensors
  (types, ranks, dims, constant or not, data missing or of the wrong size),
  Invoke on exactly sized buffers when Prepare accepts; TfqnnQuantize's
  thresholds input valid and not (NaN, empty, too many, decreasing with
  binary encoding), each kind refused by Prepare.
* ``test_model_fuzz``: malformed models (``tfqnn.lite.testing``: one op, or
  a Quantize -> Bdense -> Dequantize chain; bad option bytes, wrong types
  and shapes, constant tensors with wrong buffers, aliased or constant
  outputs...) through the real LiteRT interpreter and tfqnn's delegate, in a
  subprocess that loads a sanitized build of ``libtfqnn_ops.so``
  (``LD_PRELOAD`` of the ASan runtime, ``TFQNN_LIBRARY``): every model must
  load, allocate, run (and run again after an input resize), or raise
  ValueError / RuntimeError. ``test_model_fuzz_tf_lite_op_registerer`` does
  the same through tf.lite's interpreter and tfqnn's op registerer, where no
  delegate partitioning stands between the model and the kernels.

The sanitized objects are cached under ``build/fuzz/`` by the hash of their
sources and flags, so only the first run of a session compiles (about 20 s on
two cores). Longer jobs: ``pytest -m slow tests/lite/test_fuzz.py`` or
``scripts/fuzz_kernels.sh``. Environment: ``TFQNN_FUZZ_SEED`` (default 1)
and ``TFQNN_FUZZ_SCALE`` (a factor on every case count).

This file is also the subprocess of the model fuzzer:
``python tests/lite/test_fuzz.py models --seed 1 --cases 2000 --progress FILE``.
"""

import argparse
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import pytest
except ImportError:  # the subprocess needs no pytest
    pytest = None

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "tfqnn" / "lite" / "kernels"
NATIVE = Path(__file__).resolve().parent / "native"
BUILD = ROOT / "build" / "fuzz"

# -O1 keeps ASan's reports precise and the build quick; the glue's and the
# core's flags otherwise as setup.py's (-fPIC: the same objects make the
# driver and the sanitized shared library).
SANITIZE = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all"]
CXXFLAGS = [
    "-std=c++17",
    "-O1",
    "-g",
    "-fno-omit-frame-pointer",
    "-fPIC",
    "-fvisibility=hidden",
    "-ffp-contract=off",
    "-D_GLIBCXX_ASSERTIONS",
    "-pthread",
    *SANITIZE,
]
LIBS = ["-pthread", "-ldl"]
SANITIZER_ERRORS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
)

SEED = int(os.environ.get("TFQNN_FUZZ_SEED", "1"))
SCALE = float(os.environ.get("TFQNN_FUZZ_SCALE", "1"))


def scaled(n):
    return max(1, int(n * SCALE))


# ---- the sanitizer build ----------------------------------------------------


def compiler():
    """g++ and its ASan runtime, or None where either is missing."""
    cxx = shutil.which("g++")
    if cxx is None:
        return None
    runtime = subprocess.run(
        [cxx, "-print-file-name=libasan.so"], check=False, capture_output=True, text=True
    ).stdout.strip()
    if not os.path.isabs(runtime) or not os.path.exists(runtime):
        return None
    return cxx


@contextlib.contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


@dataclasses.dataclass
class SanitizerBuild:
    driver: Path  # the fuzz_ops executable
    library: Path  # libtfqnn_ops.so with the same sanitizers
    runtime: str  # LD_PRELOAD for the library: the ASan runtime, libstdc++
    compiled: int  # objects compiled by this build (0: all cached)
    seconds: float


def build_sanitized(cxx):
    """Compiles (or finds in the cache) the sanitized driver and library."""
    start = time.monotonic()
    sources = sorted(KERNELS.rglob("*.cc"))
    headers = sorted(KERNELS.rglob("*.h")) + sorted(NATIVE.glob("*.h"))
    version = subprocess.run([cxx, "--version"], check=False, capture_output=True, text=True).stdout
    common = _digest(
        version,
        *CXXFLAGS,
        *(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes() for p in headers),
    )
    objects = {}
    for source in sources + [NATIVE / "fuzz_ops.cc"]:
        key = _digest(common, source.relative_to(ROOT).as_posix(), source.read_bytes())
        objects[source] = BUILD / "obj" / f"{source.stem}-{key}.o"
    library_key = _digest(*(objects[s].name for s in sources))
    driver = BUILD / f"fuzz_ops-{_digest(library_key, objects[NATIVE / 'fuzz_ops.cc'].name)}"
    library = BUILD / f"libtfqnn_ops-asan-{library_key}.so"
    with _locked(BUILD / ".lock"):
        todo = [(s, o) for s, o in objects.items() if not o.exists()]

        def compile_one(pair):
            source, obj = pair
            obj.parent.mkdir(parents=True, exist_ok=True)
            tmp = obj.with_suffix(f".{os.getpid()}.tmp")
            result = subprocess.run(
                [cxx, *CXXFLAGS, f"-I{ROOT}", "-c", str(source), "-o", str(tmp)],
                check=False,
                capture_output=True,
                text=True,
            )
            if result.returncode == 0:
                os.replace(tmp, obj)
            return source, result

        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            failures = [
                f"{source}:\n{result.stderr}"
                for source, result in pool.map(compile_one, todo)
                if result.returncode != 0
            ]
        if failures:
            raise RuntimeError("compiling the sanitizer build failed:\n" + "\n".join(failures))

        def link(output, args):
            if output.exists():
                return
            tmp = output.with_name(output.name + f".{os.getpid()}.tmp")
            subprocess.run(
                [cxx, *CXXFLAGS, *args, "-o", str(tmp), *LIBS], check=True, capture_output=True
            )
            os.replace(tmp, output)

        link(library, ["-shared", *(str(objects[s]) for s in sources)])
        # -rdynamic: the driver's fake MutableOpResolver::AddCustom and the
        # core's test hooks are found with dlsym, as in a real process.
        link(driver, ["-rdynamic", *(str(o) for o in objects.values())])
        # Drop what older sources left behind.
        keep = {driver, library, *objects.values()}
        for path in (
            list(BUILD.glob("fuzz_ops-*"))
            + list(BUILD.glob("libtfqnn_ops-asan-*"))
            + list((BUILD / "obj").glob("*.o"))
        ):
            if path not in keep and not path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
    # The ASan runtime first, and libstdc++ with it: Python does not link
    # libstdc++, and ASan's __cxa_throw interceptor needs it at start-up.
    runtime = " ".join(
        os.path.realpath(
            subprocess.run(
                [cxx, f"-print-file-name={name}"], check=False, capture_output=True, text=True
            ).stdout.strip()
        )
        for name in ("libasan.so", "libstdc++.so.6")
    )
    return SanitizerBuild(driver, library, runtime, len(todo), time.monotonic() - start)


def sanitizer_env(**extra):
    env = dict(os.environ)
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env.update(extra)
    return env


def parse_counts(text):
    """The `name: number` lines of the driver's summary."""
    counts = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z][a-z ()_]*): (\d+)", line)
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def assert_clean(result, what):
    output = result.stdout + result.stderr
    found = [marker for marker in SANITIZER_ERRORS if marker in output]
    assert result.returncode == 0 and not found, (
        f"{what} failed (exit {result.returncode}, {found}):\n{output[-20000:]}"
    )


# ---- the native fuzzer (fuzz_ops.cc) ------------------------------------------


def run_native(build, seed, cases, tmp_path):
    progress = tmp_path / f"native-progress-{seed}"
    command = [
        str(build.driver),
        "--seed",
        str(seed),
        "--cases",
        str(cases),
        "--progress",
        str(progress),
    ]
    start = time.monotonic()
    result = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        env=sanitizer_env(ASAN_OPTIONS="detect_leaks=1:halt_on_error=1"),
    )
    seconds = time.monotonic() - start
    if result.returncode != 0 and progress.exists():
        last = progress.read_text().split()
        if len(last) == 2:
            result.stderr += (
                f"\nthe driver stopped in case {last[1]} of seed {last[0]}; "
                f"replay: {build.driver} --seed {last[0]} --case {last[1]}\n"
            )
    assert_clean(result, " ".join(command))
    print(result.stdout)
    print(
        f"native fuzz: {cases} cases in {seconds:.1f} s (build {build.seconds:.1f} s, "
        f"{build.compiled} objects compiled)"
    )
    return result.stdout


def feature_errors(text, feature):
    """The error categories the driver lists under ``<feature> errors:``."""
    lines = text.splitlines()
    start = lines.index(f"{feature} errors:") + 1
    errors = {}
    for line in lines[start:]:
        m = re.match(r"^  +(\d+)  (.*)$", line)
        if not m:
            break
        errors[m.group(2)] = int(m.group(1))
    return errors


# What TfqnnQuantize's Prepare says of each kind of bad thresholds the driver
# draws (error categories: numbers as N).
THRESHOLD_ERRORS = [
    "thresholds must not be NaN",
    "thresholds must have at most N values, got N",
    "thresholds has a dimension <= N",
    "thresholds must have N^k - N values for binary encoding, got N",
    "thresholds must not decrease for binary encoding",
    "option 'encoding' needs thresholds (a second input)",
]


def check_native_counts(text, cases):
    counts = parse_counts(text)
    assert counts["total cases"] == cases
    assert counts["violations"] == 0
    # Not vacuous: a good share of the cases passes Prepare and runs.
    assert counts["prepare ok"] >= 0.2 * cases, counts
    assert counts["invoke ran"] >= 0.2 * cases, counts
    assert counts["prepare failed"] >= 0.2 * cases, counts
    # TfqnnQuantize's thresholds (valid ones bitpack; each kind of bad one is refused).
    assert counts["quantize thresholds cases"] >= 0.03 * cases, counts
    assert counts["quantize thresholds invoke ran"] >= 0.2 * counts["quantize thresholds cases"]
    errors = feature_errors(text, "quantize thresholds")
    missing = [e for e in THRESHOLD_ERRORS if not errors.get(e)]
    assert not missing, (missing, errors)


# ---- the model fuzzer (subprocess) ----------------------------------------------

OPS = [
    "TfqnnQuantize",
    "TfqnnDequantize",
    "TfqnnBdense",
    "TfqnnBconv2d",
    "TfqnnBMaxPool2d",
    "TfqnnCodebookDecode",
]
DTYPES = ["float32", "int32", "int8", "float16", "uint8", "int64", "bool", "int16"]
# Keys of every op, for options that belong to another op.
KEYS = [
    "input_bases",
    "weight_bases",
    "channels",
    "in_features",
    "output_type",
    "clamp_min",
    "clamp_max",
    "channels_in",
    "groups",
    "stride_height",
    "stride_width",
    "dilation_height_factor",
    "dilation_width_factor",
    "padding",
    "pad_values",
    "filter_height",
    "filter_width",
    "bits",
    "encoding",
    "output_encoding",
]
SPECIAL_INTS = [
    0,
    -1,
    1,
    2,
    3,
    31,
    32,
    33,
    1 << 24,
    (1 << 24) + 1,
    2**31 - 1,
    -(2**31),
    2**31,
    2**62,
    2**63 - 1,
    -(2**63),
]
# (Python's flexbuffers writes no double beyond float32's range; the native
# fuzzer covers those.)
SPECIAL_FLOATS = [
    0.0,
    -0.0,
    1.5,
    -1e30,
    1e30,
    3.4e38,
    1e-45,
    float("inf"),
    float("-inf"),
    float("nan"),
]


def _words(channels):
    return -(-channels // 32)


@dataclasses.dataclass
class ModelCase:
    """One op (or a chain) before it is written: easy to perturb."""

    ops: list  # [Op-like: [name, options, input indices, output indices]]
    tensors: list  # [Tensor]
    inputs: list = None
    outputs: list = None
    perturbations: list = dataclasses.field(default_factory=list)
    use_path: bool = False
    num_threads: int = 1

    def describe(self):
        ops = [
            (name, opts if isinstance(opts, dict) else bytes(opts).hex(), i, o)
            for name, opts, i, o in self.ops
        ]
        tensors = [
            (t.shape, t.dtype, None if t.data is None else len(_raw(t)), t.scale, t.zero_point)
            for t in self.tensors
        ]
        return (
            f"ops={ops} tensors={tensors} inputs={self.inputs} outputs={self.outputs} "
            f"perturbations={self.perturbations} path={self.use_path}"
        )


def _raw(tensor):
    if isinstance(tensor.data, (bytes, bytearray)):
        return bytes(tensor.data)
    return np.ascontiguousarray(tensor.data, np.dtype(tensor.dtype)).tobytes()


def _random_data(r, shape, dtype):
    n = int(np.prod(shape)) if len(shape) else 1
    if dtype == "float32":
        return r.normal(size=n).astype(np.float32).reshape(shape)
    if dtype == "int32":
        return r.integers(-(2**31), 2**31, size=n, dtype=np.int64).astype(np.int32).reshape(shape)
    return r.integers(-128, 128, size=n).astype(np.int8).reshape(shape)


def _lead(r, max_rank=3, limit=5):
    return [int(r.integers(1, limit)) for _ in range(int(r.integers(0, max_rank + 1)))]


def _dim(r, hi):
    if r.random() < 0.1:
        return int(r.choice([1, 31, 32, 33, 64, 65]))
    return int(r.integers(1, hi + 1))


def _output(r, Tensor, shape, dtype, **quant):
    if r.random() < 0.15:
        shape = []
    elif r.random() < 0.1 and shape:
        shape = shape[:-1] + [shape[-1] + 1]
    return Tensor(list(shape), dtype, **quant)


def _transform_options(r, options):
    output_type = int(r.integers(0, 3))
    if output_type or r.random() < 0.3:
        options["output_type"] = output_type
    if r.random() < 0.4:
        options["clamp_min"] = float(r.choice([0.0, -1.5, -10.0]))
    if r.random() < 0.4:
        options["clamp_max"] = float(r.choice([1.0, 6.0, 40.0]))
    dtype = ["float32", "int8", "int32"][output_type]
    quant = (
        {"scale": float(r.uniform(0.01, 2)), "zero_point": int(r.integers(-128, 128))}
        if output_type == 1
        else {}
    )
    return output_type, dtype, quant


def _bases(r, options, output_type):
    """Multi-basis options of a binary op (in a third of the cases): (N, M, thresholds,
    output bases); the output thresholds in binary encoding (2^k - 1 of them, k bases)
    in a third of the cases that have them."""
    if r.random() > 0.35:
        return 1, 1, 0, 1
    nb, mb = int(r.integers(1, 4)), int(r.integers(1, 4))
    for key, value in (("input_bases", nb), ("weight_bases", mb)):
        if value != 1 or r.random() < 0.3:
            options[key] = value
    nt = int(r.integers(1, 4)) if output_type == 2 and r.random() < 0.5 else 0
    out_bases = max(nt, 1)
    if nt and r.random() < 0.35:
        out_bases = int(r.integers(1, 4))
        nt = 2**out_bases - 1
        options["output_encoding"] = 1
    return nb, mb, nt, out_bases


def _thresholds(r, count):
    from tfqnn.lite.testing import Tensor

    if not count:
        return []
    return [Tensor([count], data=np.sort(r.normal(size=count)).astype(np.float32))]


def valid_case(r, op):
    """A valid single-op model of `op` (sizes random and small)."""
    from tfqnn.lite.testing import Tensor

    options = {}
    if op == "TfqnnQuantize":
        c = _dim(r, 70)
        shape = _lead(r) + [c]
        int8 = r.random() < 0.3
        quant = (
            {"scale": float(r.uniform(0.01, 1)), "zero_point": int(r.integers(-128, 128))}
            if int8
            else {}
        )
        ins = [Tensor(shape, "int8" if int8 else "float32", **quant)]
        bases = 1
        if r.random() < 0.3:  # multi-basis: thresholds
            count = bases = int(r.integers(1, 5))
            if r.random() < 0.35:  # binary encoding: 2^k - 1 thresholds, k bases
                options["encoding"] = 1
                count = 2**bases - 1
            ins.append(Tensor([count], data=np.sort(r.normal(size=count)).astype(np.float32)))
        outs = [_output(r, Tensor, shape[:-1] + [bases * _words(c)], "int32")]
    elif op == "TfqnnDequantize":
        c = _dim(r, 100)
        options["channels"] = c
        lead = _lead(r)
        ins = [Tensor(lead + [_words(c)], "int32")]
        outs = [_output(r, Tensor, lead + [c], "float32")]
    elif op == "TfqnnBdense":
        k, n = _dim(r, 130), _dim(r, 70)
        options["in_features"] = k
        output_type, dtype, quant = _transform_options(r, options)
        nb, mb, nt, out_bases = _bases(r, options, output_type)
        lead = _lead(r, 2) or [1]
        ins = [
            Tensor(lead + [nb * _words(k)], "int32"),
            Tensor([mb * n, _words(k)], "int32", _random_data(r, [mb * n, _words(k)], "int32")),
            Tensor([nb * mb * n], data=r.uniform(-2, 2, nb * mb * n).astype(np.float32)),
            Tensor([n], data=r.normal(size=n).astype(np.float32)),
        ] + _thresholds(r, nt)
        width = out_bases * _words(n) if output_type == 2 else n
        outs = [_output(r, Tensor, lead + [width], dtype, **quant)]
    elif op == "TfqnnBconv2d":
        groups = 1
        if r.random() < 0.2:
            groups = int(r.integers(2, 4))
            cin, cout = groups * 32 * int(r.integers(1, 3)), groups * int(r.integers(1, 4))
        else:
            cin, cout = _dim(r, 70), _dim(r, 40)
        kh, kw = int(r.integers(1, 4)), int(r.integers(1, 4))
        sh, sw = int(r.integers(1, 3)), int(r.integers(1, 3))
        dh, dw = (1, 1) if r.random() < 0.8 else (int(r.integers(1, 3)), int(r.integers(1, 3)))
        padding = int(r.integers(1, 3))
        eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        h = eh + int(r.integers(0, 6)) if padding == 2 else int(r.integers(1, 9))
        w = ew + int(r.integers(0, 6)) if padding == 2 else int(r.integers(1, 9))
        batch = int(r.integers(1, 3))
        options.update(channels_in=cin, padding=padding)
        for key, value, default in [
            ("groups", groups, 1),
            ("stride_height", sh, 1),
            ("stride_width", sw, 1),
            ("dilation_height_factor", dh, 1),
            ("dilation_width_factor", dw, 1),
            ("pad_values", int(r.integers(-1, 2)), 1),
        ]:
            if value != default or r.random() < 0.3:
                options[key] = value
        output_type, dtype, quant = _transform_options(r, options)
        nb, mb, nt, out_bases = _bases(r, options, output_type)
        fshape = [mb * cout, kh, kw, _words(cin // groups)]
        terms = nb * mb * cout
        ins = [
            Tensor([batch, h, w, nb * _words(cin)], "int32"),
            Tensor(fshape, "int32", _random_data(r, fshape, "int32")),
            Tensor([terms], data=r.uniform(-2, 2, terms).astype(np.float32)),
            Tensor([cout], data=r.normal(size=cout).astype(np.float32)),
        ] + _thresholds(r, nt)
        ho = -(-h // sh) if padding == 1 else (h - eh) // sh + 1
        wo = -(-w // sw) if padding == 1 else (w - ew) // sw + 1
        if output_type == 0 and nt == 0 and r.random() < 0.3:  # a fused shortcut
            options["residual"] = 1
            ins.append(Tensor([batch, ho, wo, cout]))
        elif output_type == 1 and r.random() < 0.4:  # an int8 shortcut (an int8 ADD)
            # Scales within an int8 ADD's range of the output's (2^-10 to 2^8).
            options.update(
                residual=1,
                y_scale=float(quant["scale"] * 2.0 ** r.uniform(-4, 4)),
                y_zero_point=int(r.integers(-128, 128)),
            )
            residual_quant = {
                "scale": float(quant["scale"] * 2.0 ** r.uniform(-4, 4)),
                "zero_point": int(r.integers(-128, 128)),
            }
            ins.append(Tensor([batch, ho, wo, cout], "int8", **residual_quant))
        outs = [
            _output(
                r,
                Tensor,
                [batch, ho, wo, out_bases * _words(cout) if output_type == 2 else cout],
                dtype,
                **quant,
            )
        ]
    elif op == "TfqnnCodebookDecode":
        bits = int(r.integers(1, 17))
        codes = 1 << bits if r.random() < 0.5 else int(r.integers(1, (1 << bits) + 1))
        options["bits"] = bits
        shape = _lead(r) or [int(r.integers(1, 40))]
        count = int(np.prod(shape))
        packed = r.integers(0, 256, -(-count * bits // 8), dtype=np.uint8)
        ins = [
            Tensor([packed.size], "uint8", packed),
            Tensor([codes], data=r.normal(size=codes).astype(np.float32)),
        ]
        outs = [_output(r, Tensor, shape, "float32")]
    else:  # TfqnnBMaxPool2d
        fh, fw = int(r.integers(1, 4)), int(r.integers(1, 4))
        sh, sw = int(r.integers(1, 4)), int(r.integers(1, 4))
        padding = int(r.integers(1, 3))
        h = fh + int(r.integers(0, 6)) if padding == 2 else int(r.integers(1, 9))
        w = fw + int(r.integers(0, 6)) if padding == 2 else int(r.integers(1, 9))
        batch, words = int(r.integers(1, 3)), int(r.integers(1, 4))
        options.update(filter_height=fh, filter_width=fw, padding=padding)
        if sh != 1 or r.random() < 0.3:
            options["stride_height"] = sh
        if sw != 1 or r.random() < 0.3:
            options["stride_width"] = sw
        ins = [Tensor([batch, h, w, words], "int32")]
        ho = -(-h // sh) if padding == 1 else (h - fh) // sh + 1
        wo = -(-w // sw) if padding == 1 else (w - fw) // sw + 1
        outs = [_output(r, Tensor, [batch, ho, wo, words], "int32")]
    tensors = ins + outs
    n_in = len(ins)
    return ModelCase(
        ops=[[op, options, list(range(n_in)), list(range(n_in, len(tensors)))]], tensors=tensors
    )


def chain_case(r):
    """float -> Quantize -> Bdense (bitpacked) -> Dequantize: one delegated partition."""
    from tfqnn.lite.testing import Tensor

    k, n = _dim(r, 100), _dim(r, 70)
    rows = int(r.integers(1, 4))
    w = _random_data(r, [n, _words(k)], "int32")
    tensors = [
        Tensor([rows, k]),
        Tensor([rows, _words(k)], "int32"),
        Tensor(list(w.shape), "int32", w),
        Tensor([n], data=r.uniform(-2, 2, n).astype(np.float32)),
        Tensor([n], data=r.normal(size=n).astype(np.float32)),
        Tensor([rows, _words(n)], "int32"),
        Tensor([rows, n]),
    ]
    ops = [
        ["TfqnnQuantize", {}, [0], [1]],
        ["TfqnnBdense", {"in_features": k, "output_type": 2}, [1, 2, 3, 4], [5]],
        ["TfqnnDequantize", {"channels": n}, [5], [6]],
    ]
    return ModelCase(ops=ops, tensors=tensors, inputs=[0], outputs=[6])


def _mutate_bytes(r, data):
    data = bytearray(data)
    kind = int(r.integers(0, 6))
    if kind == 0 and data:
        for _ in range(int(r.integers(1, 5))):
            data[int(r.integers(0, len(data)))] ^= 1 << int(r.integers(0, 8))
    elif kind == 1 and data:
        data[int(r.integers(0, len(data)))] = int(r.choice([0, 1, 2, 4, 8, 0x24, 0x7F, 0xFF]))
    elif kind == 2:
        del data[int(r.integers(0, len(data) + 1)) :]
    elif kind == 3:
        data += r.integers(0, 256, int(r.integers(1, 17)), dtype=np.uint8).tobytes()
    elif kind == 4:
        prefix = r.integers(0, 256, int(r.integers(1, 17)), dtype=np.uint8).tobytes()
        data = bytearray(prefix) + data
    else:
        data = bytearray(r.integers(0, 256, int(r.integers(0, 64)), dtype=np.uint8).tobytes())
    return bytes(data)


def _random_value(r):
    kind = int(r.integers(0, 7))
    if kind == 0:
        return int(r.choice(SPECIAL_INTS))
    if kind == 1:
        return float(r.choice(SPECIAL_FLOATS))
    if kind == 2:
        return "x" * int(r.integers(0, 20))
    if kind == 3:
        return bool(r.integers(0, 2))
    if kind == 4:
        return [1, 2]
    if kind == 5:
        return None
    return int(r.integers(-3, 40))


def perturb(r, case):
    """Changes one thing of the case."""
    from tfqnn.lite.testing import options_bytes

    op = case.ops[int(r.integers(0, len(case.ops)))]
    kind = r.random()
    if kind < 0.3:  # options
        if isinstance(op[1], dict) and r.random() < 0.6:
            options = dict(op[1])
            sub = int(r.integers(0, 3))
            if sub == 0 and options:
                key = str(r.choice(sorted(options)))
                del options[key]
                case.perturbations.append(f"drop {key}")
            elif sub == 1:
                key = str(r.choice(KEYS + ["", "x", "Channels"]))
                options[key] = _random_value(r)
                case.perturbations.append(f"set {key}={options[key]!r}")
            else:
                key = str(r.choice(sorted(options))) if options else "channels"
                options[key] = _random_value(r)
                case.perturbations.append(f"value {key}={options[key]!r}")
            op[1] = options
        else:
            op[1] = _mutate_bytes(r, options_bytes(op[1]))
            case.perturbations.append("option bytes")
        return
    if kind < 0.75:  # a tensor of the op
        index = int(r.choice(op[2] + op[3]))
        if not 0 <= index < len(case.tensors):
            return
        t = case.tensors[index]
        sub = int(r.integers(0, 10))
        if sub == 0:  # the data, if any, keeps its bytes
            if t.data is not None:
                t.data = _raw(t)
            t.dtype = str(r.choice(DTYPES))
            case.perturbations.append(f"t{index} dtype {t.dtype}")
        elif sub == 1:  # rank +-1
            shape = list(t.shape)
            if shape and r.random() < 0.5:
                del shape[int(r.integers(0, len(shape)))]
            else:
                shape.insert(int(r.integers(0, len(shape) + 1)), int(r.integers(1, 4)))
            _reshape(t, shape)
            case.perturbations.append(f"t{index} shape {shape}")
        elif sub == 2:  # a dim off by one, zero or negative
            shape = list(t.shape) or [1]
            i = int(r.integers(0, len(shape)))
            shape[i] = int(r.choice([shape[i] + 1, shape[i] - 1, 0, -1]))
            _reshape(t, shape)
            case.perturbations.append(f"t{index} shape {shape}")
        elif sub == 3:  # huge: more than 2**31 elements in all
            shape = list(t.shape) + [1] * max(0, 2 - len(t.shape))
            shape[0], shape[-1] = int(r.choice([1 << 30, 2**31 - 1, 46341])), 65536
            _reshape(t, shape)
            case.perturbations.append(f"t{index} shape {shape}")
        elif sub == 4:  # constant data added, removed, or of the wrong size
            if t.data is None:
                t.data = _random_bytes(r, t.shape, t.dtype)
                case.perturbations.append(f"t{index} constant")
            elif r.random() < 0.5:
                t.data = None
                case.perturbations.append(f"t{index} not constant")
            else:
                raw = _raw(t)
                short = raw and r.random() < 0.6
                t.data = raw[: -int(r.integers(1, 5))] if short else raw + b"\0" * 4
                case.perturbations.append(f"t{index} wrong bytes")
        elif sub == 5:
            t.scale = float(r.choice([0.0, -1.0, float("nan"), float("inf"), 1e-45, 0.5]))
            t.zero_point = int(r.choice([0, 127, -128, 128, -129, 2**31 - 1]))
            case.perturbations.append(f"t{index} quantization {t.scale} {t.zero_point}")
        elif sub == 6:  # a dynamic dim in the signature
            t.shape_signature = [-1] + list(t.shape[1:])
            case.perturbations.append(f"t{index} signature")
        elif sub == 7:  # rank 0 or high
            _reshape(t, [] if r.random() < 0.4 else [1] * int(r.integers(5, 10)))
            case.perturbations.append(f"t{index} rank {len(t.shape)}")
        elif sub == 9 and isinstance(t.data, np.ndarray) and t.data.dtype == np.float32:
            # Constant float values (thresholds among them): a NaN, or reversed.
            values = np.array(t.data, np.float32)
            if values.size and r.random() < 0.5:
                values.flat[int(r.integers(0, values.size))] = np.nan
            else:
                values = np.ascontiguousarray(values.reshape(-1)[::-1]).reshape(values.shape)
            t.data = values
            case.perturbations.append(f"t{index} float values")
        else:
            _reshape(t, [int(r.integers(-1, 7)) for _ in range(int(r.integers(0, 6)))])
            case.perturbations.append(f"t{index} random shape {t.shape}")
        return
    if kind < 0.93:  # the op's tensor lists
        n = len(case.tensors)
        sub = int(r.integers(0, 6))
        if sub == 0 and op[2]:
            del op[2][int(r.integers(0, len(op[2])))]
            case.perturbations.append("input removed")
        elif sub == 1:
            op[2].append(int(r.integers(0, n)))
            case.perturbations.append("input added")
        elif sub == 2 and op[2]:
            op[2][int(r.integers(0, len(op[2])))] = -1  # the optional-tensor index
            case.perturbations.append("input -1")
        elif sub == 3 and op[2] and op[3]:
            op[3][0] = int(r.choice(op[2]))
            case.perturbations.append("output is an input")
        elif sub == 4 and op[3] and 0 <= op[3][0] < n:
            t = case.tensors[op[3][0]]
            t.data = _random_bytes(r, t.shape, t.dtype)
            case.perturbations.append("output is constant")
        else:
            op[2], op[3] = op[3], op[2]
            case.perturbations.append("inputs and outputs swapped")
        return
    if r.random() < 0.5:
        op[0] = str(r.choice(OPS))
    else:
        op[0] = str(r.choice(["TfqnnFoo", "tfqnnquantize", "TfqnnBdense2", ""]))
    case.perturbations.append(f"name {op[0]!r}")


def _itemsize(dtype):
    return {
        "float32": 4,
        "int32": 4,
        "int8": 1,
        "float16": 2,
        "uint8": 1,
        "int64": 8,
        "bool": 1,
        "int16": 2,
    }[dtype]


def _random_bytes(r, shape, dtype):
    """Constant data of a tensor: its size (up to 1 MiB; 0 for a bad shape)."""
    n = int(np.prod([max(d, 0) for d in shape])) * _itemsize(dtype)
    return r.integers(0, 256, min(n, 1 << 20), dtype=np.uint8).tobytes()


def _reshape(t, shape):
    t.shape = [(int(d) + 2**31) % 2**32 - 2**31 for d in shape]  # int32, wrapping
    t.shape_signature = None


def make_model_case(seed, index):
    r = np.random.default_rng([seed, index])
    case = chain_case(r) if r.random() < 0.1 else valid_case(r, str(r.choice(OPS)))
    p = r.random()
    count = 0 if p < 0.35 else 1 if p < 0.85 else int(r.integers(2, 4))
    for _ in range(count):
        perturb(r, case)
    case.use_path = r.random() < 0.1
    case.num_threads = int(r.choice([1, 1, 2]))
    return case, r


def write_model(case):
    from tfqnn.lite.testing import Op, op_model

    n = len(case.tensors)
    ops = [Op(name, list(i), list(o), options) for name, options, i, o in case.ops]
    if case.inputs is not None:
        # Never a constant tensor as a model input: LiteRT's set_tensor()
        # writes into its buffer, which is the read-only mapped file with
        # model_path (a SIGSEGV in LiteRT itself, not in tfqnn's kernels).
        inputs = [i for i in case.inputs if case.tensors[i].data is None]
        outputs = case.outputs
    else:
        # As single_op_model: the non-constant inputs in, the outputs out.
        inputs, outputs = [], []
        for _, _, ins, outs in case.ops:
            inputs += [
                i for i in ins if 0 <= i < n and case.tensors[i].data is None and i not in inputs
            ]
            outputs += [o for o in outs if 0 <= o < n and o not in outputs]
    return op_model(ops, case.tensors, inputs, outputs)


def error_category(error):
    text = str(error).replace("\n", " ")
    m = re.search(r"(Tfqnn\w+: .*?|tfqnn delegate: .*?)(Node number|$)", text)
    if m:
        text = m.group(1)
    text = re.sub(r"(?<![A-Za-z])-?\d+", "N", text)
    text = re.sub(r"'[^']*'", "'K'", text)
    return f"{type(error).__name__}: {text[:100]}"


def make_interpreter(runtime, **kwargs):
    """LiteRT with tfqnn's delegate, or tf.lite with tfqnn's op registerer."""
    if runtime == "litert":
        from tfqnn.lite import Interpreter

        return Interpreter(**kwargs)
    from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

    return InterpreterWithCustomOps(custom_op_registerers=["TfqnnRegisterOps"], **kwargs)


def run_model_case(case, r, tmpdir, runtime="litert"):
    """'invoked' or 'resized', or the category of the error the model raised."""
    model = write_model(case)
    stage = "load"
    try:
        if case.use_path:
            path = os.path.join(tmpdir, "model.tflite")
            with open(path, "wb") as handle:
                handle.write(model)
            interpreter = make_interpreter(runtime, model_path=path, num_threads=case.num_threads)
        else:
            interpreter = make_interpreter(
                runtime, model_content=model, num_threads=case.num_threads
            )
        stage = "allocate"
        interpreter.allocate_tensors()
        stage = "invoke"
        _fill_and_invoke(interpreter, r)
        details = interpreter.get_input_details()
        if details and r.random() < 0.3:
            # A new input shape: the interpreter prepares the ops again.
            stage = "resize"
            shape = [int(d) for d in details[0]["shape"]]
            if shape and r.random() < 0.7:
                shape[0] = int(r.integers(1, 5))
            elif shape:
                shape[int(r.integers(0, len(shape)))] = int(r.integers(0, 9))
            interpreter.resize_tensor_input(details[0]["index"], shape)
            interpreter.allocate_tensors()
            _fill_and_invoke(interpreter, r)
            return "resized", stage
        return "invoked", stage
    except (ValueError, RuntimeError) as error:
        return error_category(error), stage


def _fill_and_invoke(interpreter, r):
    for detail in interpreter.get_input_details():
        shape = [int(d) for d in detail["shape"]]
        if np.prod(shape) > 1 << 20:
            continue  # not worth filling: the kernels read what is there
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            value = r.normal(size=shape).astype(dtype)
        elif dtype.kind == "b":
            value = r.integers(0, 2, size=shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            value = r.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    for detail in interpreter.get_output_details():
        interpreter.get_tensor(detail["index"])


def model_fuzz_main(argv):
    parser = argparse.ArgumentParser(description="fuzz tfqnn's ops with malformed models")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--progress", help="file: the case that runs now")
    parser.add_argument(
        "--runtime",
        choices=["litert", "tflite"],
        default="litert",
        help="ai-edge-litert with the delegate (default), or tf.lite "
        "with the op registerer (needs TensorFlow)",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    # Only tfqnn.lite (and tf.lite for the registerer): Keras and the rest of
    # tfqnn are not needed, and slow under an LD_PRELOADed ASan.
    sys.modules["keras"] = None
    if args.runtime == "litert":
        sys.modules["tensorflow"] = None
    import tfqnn.lite

    if args.runtime == "tflite":
        tfqnn.lite.load_library()  # RTLD_GLOBAL: tf.lite finds TfqnnRegisterOps by name

    counts = {
        "cases": 0,
        "invoked": 0,
        "resized and invoked again": 0,
        "failed at load": 0,
        "failed at allocate": 0,
        "failed at invoke": 0,
        "failed at resize": 0,
        "unexpected": 0,
    }
    categories = {}
    unexpected = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmpdir:
        for index in range(args.first, args.first + args.cases):
            case, r = make_model_case(args.seed, index)
            if args.progress:
                with open(args.progress, "w") as handle:
                    handle.write(f"{args.seed} {index}\n{case.describe()}\n")
            if args.verbose:
                print(index, case.describe(), flush=True)
            counts["cases"] += 1
            try:
                outcome, stage = run_model_case(case, r, tmpdir, args.runtime)
            except Exception as error:  # noqa: BLE001 -- another type: reported, fails the test
                counts["unexpected"] += 1
                if len(unexpected) < 20:
                    unexpected.append(
                        f"case {index}: {type(error).__name__}: {error} [{case.describe()}]"
                    )
                continue
            if outcome == "invoked":
                counts["invoked"] += 1
            elif outcome == "resized":
                counts["invoked"] += 1
                counts["resized and invoked again"] += 1
            else:
                counts[f"failed at {stage}"] += 1
                if stage == "resize":  # after a first invoke
                    counts["invoked"] += 1
                categories[outcome] = categories.get(outcome, 0) + 1
    counts["seconds"] = round(time.monotonic() - start, 1)
    counts["library"] = tfqnn.lite.library_path()
    counts["runtime"] = args.runtime
    top = dict(sorted(categories.items(), key=lambda kv: -kv[1])[:40])
    print(json.dumps({"counts": counts, "categories": top, "unexpected": unexpected}, indent=1))
    return 1 if unexpected else 0


def run_models(build, seed, cases, tmp_path, runtime="litert", sanitized=True):
    progress = tmp_path / f"models-progress-{runtime}-{seed}"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "models",
        "--seed",
        str(seed),
        "--cases",
        str(cases),
        "--progress",
        str(progress),
        "--runtime",
        runtime,
    ]
    env = sanitizer_env(PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if sanitized:
        env.update(
            LD_PRELOAD=build.runtime,
            TFQNN_LIBRARY=str(build.library),
            # Python and LiteRT are not instrumented: no leak checks, and
            # malloc may fail (huge tensors) instead of aborting.
            ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1",
        )
    start = time.monotonic()
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.monotonic() - start
    if result.returncode != 0 and progress.exists():
        seed_index, _, description = progress.read_text().partition("\n")
        replay_seed, _, index = seed_index.partition(" ")
        preload = (
            f"LD_PRELOAD='{build.runtime}' TFQNN_LIBRARY={build.library} "
            f"ASAN_OPTIONS={env['ASAN_OPTIONS']} "
            if sanitized
            else ""
        )
        result.stderr += (
            f"\nthe model fuzzer stopped in case {index} of seed {replay_seed}: "
            f"{description}\nreplay: {preload}{sys.executable} {command[1]} models "
            f"--runtime {runtime} --seed {replay_seed} --first {index} --cases 1 "
            f"--verbose\n"
        )
    assert_clean(result, " ".join(command))
    report = json.loads(result.stdout[result.stdout.index("{") :])
    print(json.dumps(report, indent=1))
    print(
        f"model fuzz: {cases} cases in {seconds:.1f} s with {runtime} "
        f"({'ASan/UBSan library' if sanitized else 'plain library'})"
    )
    counts = report["counts"]
    assert counts["cases"] == cases
    assert counts["unexpected"] == 0, report["unexpected"]
    assert counts["invoked"] >= 0.2 * cases, counts
    assert counts["invoked"] <= 0.9 * cases, counts  # malformed ones are there too
    if sanitized:
        assert os.path.samefile(counts["library"], build.library)
    return counts


# ---- the tests -------------------------------------------------------------------

if pytest is not None:

    @pytest.fixture(scope="module")
    def sanitizer_build():
        cxx = compiler()
        if cxx is None:
            pytest.skip("needs g++ with the ASan runtime (libasan)")
        return build_sanitized(cxx)

    def test_native_fuzz(sanitizer_build, tmp_path):
        cases = scaled(10_000)
        check_native_counts(run_native(sanitizer_build, SEED, cases, tmp_path), cases)

    def test_model_fuzz(sanitizer_build, tmp_path):
        """ai-edge-litert, tfqnn's delegate (tfqnn.lite.Interpreter)."""
        run_models(sanitizer_build, SEED, scaled(5_000), tmp_path)

    def test_model_fuzz_tf_lite_op_registerer(sanitizer_build, tmp_path):
        """tf.lite with tfqnn's op registerer: no delegate partitioning in between."""
        if importlib.util.find_spec("tensorflow") is None:
            pytest.skip("needs TensorFlow (tf.lite)")
        run_models(sanitizer_build, SEED, scaled(2_000), tmp_path, runtime="tflite")

    @pytest.mark.slow
    def test_native_fuzz_long(sanitizer_build, tmp_path):
        cases = scaled(200_000)
        check_native_counts(run_native(sanitizer_build, SEED + 1000, cases, tmp_path), cases)

    @pytest.mark.slow
    def test_model_fuzz_long(sanitizer_build, tmp_path):
        run_models(sanitizer_build, SEED + 1000, scaled(50_000), tmp_path)

    @pytest.mark.slow
    def test_model_fuzz_tf_lite_op_registerer_long(sanitizer_build, tmp_path):
        if importlib.util.find_spec("tensorflow") is None:
            pytest.skip("needs TensorFlow (tf.lite)")
        run_models(sanitizer_build, SEED + 1000, scaled(20_000), tmp_path, runtime="tflite")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "models":
        sys.exit(model_fuzz_main(sys.argv[2:]))
    print("usage: test_fuzz.py models [--seed S] [--cases N] [--progress FILE]")
    sys.exit(2)
