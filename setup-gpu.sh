#!/usr/bin/env bash
# The GPU set-up: .venv-gpu with Python 3.12 and exactly requirements-gpu.lock (JAX 0.11.2 with CUDA 13,
# Keras 3.15.1; no TensorFlow), then the package itself. Training there runs with KERAS_BACKEND=jax.
# WHEELS=DIR installs from a folder of downloaded wheels instead of the index (machines without a network).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.12}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 12))' || {
  echo "setup-gpu.sh: Python 3.12 or later is required for JAX 0.11.2 (found $("$PYTHON" --version)); set PYTHON=" >&2
  exit 1
}
[ -x .venv-gpu/bin/python ] || "$PYTHON" -m venv .venv-gpu
source=(--require-hashes -r requirements-gpu.lock)
[ -n "${WHEELS:-}" ] && source=(--no-index --find-links "$WHEELS" --require-hashes -r requirements-gpu.lock)
.venv-gpu/bin/python -m pip install --quiet "${source[@]}"
.venv-gpu/bin/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>/dev/null \
  || .venv-gpu/bin/python -m pip install --quiet --no-deps -e .
echo "setup-gpu.sh: ready; run with: KERAS_BACKEND=jax .venv-gpu/bin/repro train <group>"
