#!/usr/bin/env bash
# The long fuzzing job of tfqnn's TFLite kernels: the slow tests of
# tests/lite/test_fuzz.py (ASan/UBSan builds of the kernel library; the native
# fuzz driver with 200,000 cases; 50,000 malformed models through LiteRT's
# delegate path and 20,000 through tf.lite's op registerer), counts printed.
#
#   scripts/fuzz_kernels.sh                  # seed 1
#   SEED=42 SCALE=5 scripts/fuzz_kernels.sh  # another seed, 5x the cases
#   scripts/fuzz_kernels.sh -k native        # extra pytest arguments
#
# A failure names the case and how to replay it (fuzz_ops --seed S --case I,
# or test_fuzz.py models --seed S --first I --cases 1 --verbose).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export TFQNN_FUZZ_SEED=${SEED:-1}
export TFQNN_FUZZ_SCALE=${SCALE:-1}
exec "$PYTHON" -m pytest -q -s -p no:cacheprovider -m slow tests/lite/test_fuzz.py "$@"
