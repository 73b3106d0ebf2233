#!/usr/bin/env bash
# Sets up .venv with the pinned dependencies and the `repro` package (editable).
# Used by the README, .ci/run and the Dockerfile alike.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "setup.sh: Python 3.11 is required (found $("$PYTHON" --version)); set PYTHON=/path/to/python3.11" >&2
  exit 1
}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
echo "setup.sh: ready; activate with: . .venv/bin/activate"
