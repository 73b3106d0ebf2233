#!/usr/bin/env bash
# The paper scale on a GPU machine, which has JAX but no DVC (docs/gpu.md).
# Trains every group in the order of the figures (`repro groups`); a group cut short by a time
# limit resumes from its checkpoint when this script runs again, and a finished group (its folder under
# runs/ is written whole when it ends) is skipped.
# REPRO is the command that runs repro (default: ../.venv-gpu/bin/repro, from setup-gpu.sh; paper/device.sh
# sets "python3 -m repro"). SKIP_GROUPS names groups not to train, trained before on another machine and
# already brought back (`repro trained --groups` there lists them).
# Afterwards, on the machine with DVC: bring paper/runs/ back, then `cd paper && dvc commit -f
# <train stages> && dvc repro` evaluates, draws and writes the claims (docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")"
export KERAS_BACKEND=jax
read -ra repro <<< "${REPRO:-../.venv-gpu/bin/repro}"
"${repro[@]}" generate
read -ra skip <<< "${SKIP_GROUPS:-}"
for group in $("${repro[@]}" groups); do
    if [ -d "runs/$group" ]; then continue; fi  # written whole, at the end: the group is finished
    if [[ " ${skip[*]} " == *" $group "* ]]; then echo "run-gpu.sh: skipping $group"; continue; fi
    echo "run-gpu.sh: training $group ($(date -u +%H:%M:%S))"
    "${repro[@]}" train "$group"
done
echo "run-gpu.sh: every group is trained ($(date -u +%H:%M:%S))"
