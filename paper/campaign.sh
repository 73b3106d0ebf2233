#!/usr/bin/env bash
# The paper scale on a CPU, a slice at a time (docs/paper-scale.md).
#
#   paper/campaign.sh train DURATION   trains the campaign's runs in order for at most DURATION (90s, 45m,
#                                      2h): a run not finished resumes from paper/campaign/<run>.tar, its
#                                      in-flight state, and is packed there again when the time is up; a run
#                                      that finishes loses its state file, and the next run starts.
#   paper/campaign.sh record           records in DVC what runs/ holds (whole or partial), then remakes every
#                                      evaluation, figure and the claims report whose inputs are here, one
#                                      stage at a time (`dvc repro -s`): nothing else is ever trained; and
#                                      rewrites STATUS.md (`repro status`: each run's slices, hours and CPUs).
#   paper/campaign.sh status           where each run stands.
#   paper/campaign.sh adopt COMMIT     carries each run in flight (a state file in paper/campaign/) across a change
#                                      of the training code since COMMIT, the commit that trained it, if both codes
#                                      continue it to the same bytes (`repro adopt`, docs/paper-scale.md); else
#                                      leaves it as it is and fails.
#
# A session runs `nice -n 19 paper/campaign.sh train 2h &` at its start, then `record` and commits paper/
# before it stops (and at least hourly: `train` packs its state only when it stops, so stop it first with
# `kill -TERM` on its process group, which checkpoints within seconds). The state files are in git so that
# a run survives a change of machine; they resume only under the same training code and library versions
# (repro/checkpoints.py): after a change of that code, `adopt` checks that the run continues as before.
set -euo pipefail
cd "$(dirname "$0")"
RUNS=(add_decay add_no_decay s5_decay div_adam_0 div_adam_1 div_adam_2)
STATE=campaign
REPRO=${REPRO:-repro}
MIN_SLICE=${MIN_SLICE:-60}  # seconds: a slice shorter than this would be spent starting up

state_of() {  # "complete", "partial, …", "not trained": `repro trained`'s word for train@RUN
  $REPRO trained | sed -n "s/^train@$1: //p"
}

train() {
  local seconds end left run rc
  seconds=$(python -c '
import sys
from click import BadParameter
from repro.stages import duration
try:
    print(int(duration(sys.argv[1])))
except BadParameter as error:
    sys.exit(f"campaign.sh: {error.message}")' "$1") || exit 2
  end=$(( $(date +%s) + seconds ))
  $REPRO generate >/dev/null
  mkdir -p "$STATE"
  stopping=0
  trap 'stopping=1' INT TERM  # repro train checkpoints on the same signal; this shell then packs
  for run in "${RUNS[@]}"; do
    [ "$(state_of "$run")" = complete ] && { rm -f "$STATE/$run.tar"; continue; }
    left=$(( end - $(date +%s) ))
    if [ "$stopping" = 1 ] || [ "$left" -lt "$MIN_SLICE" ]; then break; fi
    [ -f "$STATE/$run.tar" ] && $REPRO unpack "$STATE/$run.tar" "$run"
    echo "campaign: $run for ${left}s ($(date -u +%FT%TZ))"
    rc=0
    # --must-resume: a state this code cannot continue (the training code or libraries changed) stops the
    # campaign here, its state file untouched, instead of starting the run over and packing that over it.
    $REPRO train "$run" --for "${left}s" --must-resume || rc=$?
    case $rc in
      0|130|143) ;;  # finished, stopped at the deadline, or by a signal: its checkpoints are sound
      *) echo "campaign: repro train $run failed (exit $rc); nothing was packed$([ -f "$STATE/$run.tar" ] \
                && echo ", and $STATE/$run.tar is as it was")" >&2
         exit "$rc" ;;
    esac
    if [ -d "checkpoints/$run" ]; then  # stopped before its budget: keep its state where git carries it
      $REPRO pack "$run" "$STATE/$run.tar"
      break
    fi
    rm -f "$STATE/$run.tar"
  done
  trap - INT TERM
  status
}

record() {
  local stages stage out
  $REPRO generate >/dev/null
  # A sweep not trained at all is recorded as a sweep in part with no group: its record, figure and claims
  # then say that every group is missing, and nothing trains it behind the user's back.
  for sweep in $(python -c 'from repro import config; print(" ".join(config.load("params.yaml").sweeps))'); do
    mkdir -p "runs/$sweep"
  done
  stages=$($REPRO trained --partial --stages)
  # shellcheck disable=SC2086
  dvc commit -f -q generate $stages
  for stage in $stages; do
    case $stage in
      train@*) run_stage "evaluate@${stage#train@}" ;;
      train_sweep@*) run_stage "evaluate_sweep@${stage#train_sweep@}" ;;
    esac
  done
  for stage in figure_table figure_curves embeddings figure_embeddings figure_fractions figure_interventions \
               figure_operations figure_progress claims; do
    run_stage "$stage"
  done
  # The campaign's progress page, which the README links (it carries no slice-by-slice progress itself).
  $REPRO status --title "The paper's settings: what is trained" --write STATUS.md
}

run_stage() {  # dvc repro -s STAGE, or a word that its inputs are not all here yet
  local out
  if out=$(dvc repro -s "$1" 2>&1); then
    echo "campaign: $1 made"
  elif grep -q "does not exist\|No such file\|a partial run keeps no weights\|no progress measures" <<<"$out"; then
    echo "campaign: $1 waits for inputs not trained yet"
  else
    echo "$out" >&2
    exit 1
  fi
}

adopt() {
    local commit=$1 run
    git rev-parse --verify --quiet "$commit^{commit}" > /dev/null \
        || { echo "campaign.sh: $commit is not a commit of this repository (git log shows them)" >&2; exit 2; }
    old=$(mktemp -d)  # global: the EXIT trap reads it after this function has returned
    trap 'git worktree remove --force "$old/code" 2> /dev/null; rm -rf "$old"' EXIT
    git worktree add --detach "$old/code" "$commit" > /dev/null
    for run in "${RUNS[@]}"; do
        [ -f "$STATE/$run.tar" ] || continue
        $REPRO unpack "$STATE/$run.tar" "$run"
        $REPRO adopt "$run" --old-code "$old/code"
        $REPRO pack "$run" "$STATE/$run.tar"
    done
}

status() {
  for run in "${RUNS[@]}"; do
    echo "$run: $(state_of "$run")$([ -f "$STATE/$run.tar" ] && echo " (state: $STATE/$run.tar)")"
  done
}

case ${1:-} in
  train) [ $# = 2 ] || { echo "usage: $0 train DURATION (e.g. 2h)" >&2; exit 2; }; train "$2" ;;
  record) record ;;
  status) status ;;
  adopt) [ $# = 2 ] || { echo "usage: $0 adopt COMMIT (the commit that trained the runs in flight)" >&2; exit 2; }
         adopt "$2" ;;
  *) echo "usage: $0 train DURATION | record | status | adopt COMMIT" >&2; exit 2 ;;
esac
