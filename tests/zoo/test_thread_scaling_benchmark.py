"""benchmarks/thread_scaling.py: reading perf's report and the command line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# Lines of a real `perf report -s pid,sym --stdio` of QuickNet's 56x56x64
# binary convolution at two threads (caller 15776, the pool's worker 15786).
REPORT = """\
# Overhead  Pid:Command    Symbol
#
    13.17%    15776:python   [.] tfqnn::core::gemm_panel_avx512
     8.23%    15786:python   [.] tfqnn::core::(anonymous namespace)::Pool::worker
     7.30%    15786:python   [.] tfqnn::core::gemm_panel_avx512
     3.95%    15776:python   [.] tfqnn::core::add_residual_avx512
     0.40%    15776:python   [k] gemm_panel_lookalike_in_the_kernel
     0.11%    15786:python   [.] tfqnn::core::output_transform_avx512
"""


@pytest.fixture(scope="module")
def scaling() -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("thread_scaling")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_gemm_share_counts_the_gemm_samples_outside_the_caller(scaling: Any) -> None:
    assert scaling.parse_gemm_share(REPORT, 15776) == pytest.approx(7.30 / (13.17 + 7.30))
    # Seen from the worker, the caller's samples are the "other" ones.
    assert scaling.parse_gemm_share(REPORT, 15786) == pytest.approx(13.17 / (13.17 + 7.30))
    assert scaling.parse_gemm_share(REPORT, 1) == pytest.approx(1.0)


def test_gemm_share_is_none_without_gemm_samples(scaling: Any) -> None:
    assert scaling.parse_gemm_share("", 1) is None
    no_gemm = "\n".join(line for line in REPORT.splitlines() if "gemm_panel_avx512" not in line)
    assert scaling.parse_gemm_share(no_gemm, 15776) is None


@pytest.mark.parametrize(
    "argv",
    [["--spins", "5,x"], ["--spins", "-1"], ["--spins", ""], ["--rounds", "0"]],
)
def test_bad_arguments_are_rejected(scaling: Any, argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        scaling.parse_args(argv)


def test_spins_are_microseconds(scaling: Any) -> None:
    assert scaling.parse_args(["--spins", "0,5,30"]).spins == [0, 5, 30]
    assert scaling.parse_args([]).spins == list(scaling.DEFAULT_SPINS_US)
