#!/usr/bin/env bash
# Sets up .venv with exactly the versions in requirements.lock (every transitive
# dependency, with hashes) and the `repro` package itself (editable).
# The README, .ci/run and the Dockerfile all run this one script.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "setup.sh: Python 3.11 is required (found $("$PYTHON" --version)); set PYTHON=/path/to/python3.11" >&2
  exit 1
}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet pip==26.3
.venv/bin/python -m pip install --quiet --require-hashes -r requirements.lock
# The package alone: its dependencies are the locked ones above, and its build
# uses the locked setuptools rather than whatever an isolated build would fetch.
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
echo "setup.sh: ready; activate with: . .venv/bin/activate"
