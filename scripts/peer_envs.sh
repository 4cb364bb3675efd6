#!/usr/bin/env bash
# Builds the peers' virtual environments that make tfqnn.interop's fixtures
# (tests/interop/make_fixtures_*.py): tf_keras worlds that tfqnn never imports.
#
#   scripts/peer_envs.sh [DIR]      DIR defaults to $TFQNN_PEERS_DIR, else .peers
#
# DIR/tfkeras: tensorflow-cpu 2.21, tf-keras 2.21, QKeras 0.9.0 and
#   tensorflow-model-optimization 0.8.1 (both --no-deps: tf-keras and tfmot
#   would pull the full tensorflow wheel and absl-py 1.x), scikit-learn.
# DIR/larq: the same TensorFlow with numpy<2 (larq 0.14 pins it), larq 0.14.0.
#
# Idempotent: an environment whose imports already work is left as it is.
# The tests find them there (or through $TFQNN_PEERS_DIR); without them the
# slow test that rebuilds the fixtures skips.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-${TFQNN_PEERS_DIR:-.peers}}
python=${PYTHON:-python3}
mkdir -p "$dir"

ready() { [ -x "$dir/$1/bin/python" ] && TF_USE_LEGACY_KERAS=1 "$dir/$1/bin/python" -c "$2" >/dev/null 2>&1; }

if ready tfkeras "import tf_keras, qkeras, tensorflow_model_optimization"; then
  echo "$dir/tfkeras: ready"
else
  "$python" -m venv "$dir/tfkeras"
  "$dir/tfkeras/bin/pip" install -q -U pip
  "$dir/tfkeras/bin/pip" install -q tensorflow-cpu==2.21.0 scikit-learn h5py pyparsing networkx \
    scipy tqdm absl-py dm-tree six mock
  "$dir/tfkeras/bin/pip" install -q --no-deps tf-keras==2.21.0 qkeras==0.9.0 \
    tensorflow-model-optimization==0.8.1
  TF_USE_LEGACY_KERAS=1 "$dir/tfkeras/bin/python" -c \
    "import tf_keras, qkeras, tensorflow_model_optimization; print('$dir/tfkeras: built')"
fi

if ready larq "import larq, tf_keras"; then
  echo "$dir/larq: ready"
else
  "$python" -m venv "$dir/larq"
  "$dir/larq/bin/pip" install -q -U pip
  "$dir/larq/bin/pip" install -q tensorflow-cpu==2.21.0 "numpy<2" scikit-learn h5py
  "$dir/larq/bin/pip" install -q --no-deps tf-keras==2.21.0 larq==0.14.0
  "$dir/larq/bin/pip" install -q terminaltables packaging
  TF_USE_LEGACY_KERAS=1 "$dir/larq/bin/python" -c "import larq, tf_keras; print('$dir/larq: built')"
fi
