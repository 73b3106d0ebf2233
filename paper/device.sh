#!/usr/bin/env bash
# The paper scale on a lent GPU machine that has JAX with CUDA on its python3 but no Keras, no DVC and no
# network, runs one command at a time for at most 10 minutes, sends back at most 8 files of 16 MiB from $OUT,
# and is given back 30 s after a call (docs/gpu.md, for the whole round trip).
#
#   here:    paper/device.sh wheels              Keras and the two packages it needs that such a machine lacks,
#                                                hash-checked against requirements-gpu.lock, into .whl/
#   there:   paper/device.sh check               before training: $OUT/check.txt, with `repro bench`,
#                                                determinism across two processes and TF32's effect on a run
#   there:   paper/device.sh start [GROUP...]    installs .whl/ under /tmp, checks the GPU, writes
#                                                $OUT/env.txt, starts paper/run-gpu.sh in the background,
#                                                skipping the GROUPs (those already brought back: `cd paper &&
#                                                repro trained --groups` here lists them)
#                                                (REPRO_GIT_COMMIT=<commit> names the commit where the copy
#                                                sent there has no .git)
#   there:   paper/device.sh collect SECONDS     waits up to SECONDS (or until training ends), then packs
#                                                the groups finished since the last collect into $OUT
#   here:    paper/device.sh unpack FILE...      unpacks them into paper/runs/, makes the tables here and
#                                                checks them against those made there, and names the DVC
#                                                stages they complete
#
# Training runs on between calls (setsid), so a call only waits and packs: call again at once, before the
# machine is given back. State lives in /tmp on that machine; a fresh machine starts from nothing.
# DEVICE_ALLOW_CPU=1 lets `check` and `start` run without a GPU (the tests rehearse the round trip on a CPU).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state=${DEVICE_STATE:-/tmp/paper-device}
site=$state/site
gpu_lock="$root/requirements-gpu.lock"
carried=(keras namex optree)  # what Keras needs beyond the machine's own packages (numpy, h5py, ml-dtypes, rich, absl-py)

die() { echo "device.sh: $*" >&2; exit 1; }

# The lock's entry (the pin and its hashes) for each carried package.
pins() {
    for name in "${carried[@]}"; do
        awk -v name="$name" '$0 ~ "^"name"==" {on=1} on && /^[a-z]/ && $0 !~ "^"name"==" {exit} on' "$gpu_lock"
    done
}

wheels() {
    local requirements
    requirements=$(mktemp)
    pins | grep -v '^ *#' > "$requirements"
    mkdir -p "$root/.whl"
    python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$root/.whl" -r "$requirements"
    rm -f "$requirements"
    ls -l "$root/.whl"
    echo "device.sh: carry .whl in each call that runs \`paper/device.sh check\` or \`start\`"
}

environment() {
    export PYTHONPATH="$site:$root" KERAS_BACKEND=jax PYTHONUNBUFFERED=1
}

install() {
    # The carried wheels into the state folder, then checks: Keras importable, a GPU for JAX.
    mkdir -p "$state"
    if [ -d "$root/.whl" ] && compgen -G "$root/.whl/*.whl" > /dev/null; then
        python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
            "$root"/.whl/*.whl
    fi
    environment
    python3 -c 'import keras; assert keras.__version__ == "3.15.1", keras.__version__' \
        || die "Keras 3.15.1 is not importable: run \`paper/device.sh wheels\` here and carry .whl"
    if [ -z "${DEVICE_ALLOW_CPU:-}" ]; then
        python3 -c 'import jax, sys; sys.exit(jax.devices()[0].platform != "gpu")' \
            || die "JAX sees no GPU ($(python3 -c 'import jax; print(jax.devices())' 2>&1 | tail -1))"
    fi
}

start() {
    install
    if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2> /dev/null; then
        die "training is already running (pid $(cat "$state/pid")); use \`paper/device.sh collect SECONDS\`"
    fi
    if ! git -C "$root" rev-parse HEAD > /dev/null 2>&1 && [ -z "${REPRO_GIT_COMMIT:-}" ]; then
        echo "device.sh: no git repository here: each run's provenance.json will name no commit" \
             "(set REPRO_GIT_COMMIT=<the commit sent> to record it)" >&2
    fi
    python3 -m repro env > "${OUT:-$state}/env.txt"
    local unknown
    unknown=$(cd "$root/paper" && comm -23 <(printf '%s\n' "$@" | sort -u) <(python3 -m repro groups | sort -u))
    [ -z "$unknown" ] || die "not groups of paper/params.yaml: $unknown (\`repro groups\` lists them)"
    rm -f "$state/rc"
    # Groups of one shape compile the same programs (Figure 1 (left)'s three seeds and Figure 3's two x + y
    # runs; the operations sweep's groups of one table size; the minibatch interventions): JAX's persistent
    # cache compiles each once per machine. A cached program is the same binary, so the bytes are the same;
    # `check` trains without it, so that its two fp32 processes each compile.
    export JAX_COMPILATION_CACHE_DIR="$state/jax-cache"
    # A session of its own, so that the training outlives this call; its exit status is kept for `collect`.
    printf '%s\n' "$@" > "$state/packed"  # skipped: neither trained nor sent back (check's run included)
    REPRO="python3 -m repro" SKIP_GROUPS="$*" setsid nohup bash -c \
        '"$1/paper/run-gpu.sh"; echo $? > "$2/rc"' _ "$root" "$state" > "$state/train.log" 2>&1 < /dev/null &
    echo $! > "$state/pid"
    echo "device.sh: training started (pid $(cat "$state/pid"), log $state/train.log)"
}

running() { [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2> /dev/null; }

collect() {
    local seconds=${1:?collect needs SECONDS, the longest it may wait}
    [ -f "$state/pid" ] || die "nothing was started on this machine (a fresh one?): run \`paper/device.sh start\`"
    local deadline=$((SECONDS + seconds))
    while running && [ "$SECONDS" -lt "$deadline" ]; do sleep 5; done
    environment
    touch "$state/packed"
    local fresh=() groups
    groups=$(cd "$root/paper" && python3 -m repro groups)  # in the order of the figures
    for group in $groups; do  # a group's folder appears whole when the group is finished
        if [ -d "$root/paper/runs/$group" ] && ! grep -qxF "$group" "$state/packed"; then fresh+=("$group"); fi
    done
    local out=${OUT:?collect writes into \$OUT}
    if [ "${#fresh[@]}" -gt 0 ]; then
        local archive
        archive="$out/runs-$(date -u +%Y%m%dT%H%M%S).tar.gz"
        # The tables too, so that `unpack` can check that this machine made the ones made where it unpacks.
        tar -czf "$archive" -C "$root/paper" data "${fresh[@]/#/runs/}"
        if [ "$(stat -c %s "$archive")" -gt $((15 * 1024 * 1024)) ]; then  # the tool sends back 16 MiB a file
            split -b 15M -d "$archive" "$archive.part-"
            rm "$archive"
        fi
        printf '%s\n' "${fresh[@]}" >> "$state/packed"
    fi
    tail -c 1000000 "$state/train.log" > "$out/train.log"
    echo "device.sh: packed ${#fresh[@]} finished group(s): ${fresh[*]:-none}"
    if running; then
        echo "device.sh: still training: call \`paper/device.sh collect SECONDS\` again now"
    else
        echo "device.sh: training ended with exit status $(cat "$state/rc" 2> /dev/null || echo unknown)"
    fi
}

check() {
    # What issue 10 asks to measure on the GPU itself, before training: `repro bench`, the same bytes from two
    # processes, and what TF32 changes in a real grokking run (CHECK_RUN, default Figure 3's x + y with decay).
    install
    local out=${OUT:?check writes into \$OUT} run=${CHECK_RUN:-add_decay} trial scratch began
    local report="$out/check.txt"
    cd "$root/paper"
    python3 -m repro generate > /dev/null
    # shellcheck disable=SC2086  # CHECK_BENCH_ARGS is a list of options (the tests shorten the bench)
    { echo "== repro bench --model transformer ${CHECK_BENCH_ARGS:-}"
      python3 -m repro bench --model transformer ${CHECK_BENCH_ARGS:-}; } > "$report" 2>&1
    for trial in fp32-a fp32-b tf32; do
        scratch="$state/check/$trial"
        rm -rf "$scratch" && mkdir -p "$scratch" && cp -r params.yaml data "$scratch/"
        began=$SECONDS
        (cd "$scratch" && python3 -m repro train "$run" --precision "${trial%%-*}") > "$scratch.log" 2>&1 \
            || { cat "$scratch.log" >> "$report"; die "training $run ($trial) failed: see $report"; }
        echo "== $run, $trial: $((SECONDS - began)) s, start-up and compilation included" >> "$report"
    done
    python3 - "$state/check" "$run" >> "$report" << 'PYTHON'
import sys
from pathlib import Path

from repro import config, evaluate, history_csv

folder, run = Path(sys.argv[1]), config.load("params.yaml").run(sys.argv[2])
def path(trial, name):
    return folder / trial / "runs" / run.directory / name
differ = [n for n in ("history.csv", "model.weights.h5", "run.json")
          if path("fp32-a", n).read_bytes() != path("fp32-b", n).read_bytes()]
print("== determinism, fp32 in two processes:", f"differ in {', '.join(differ)}" if differ else "identical bytes")
histories = {trial: history_csv.read(path(trial, "history.csv"), run) for trial in ("fp32-a", "tf32")}
for trial, history in histories.items():
    found = evaluate.summarize(history)
    print(f"== {trial}: 99% train at update {found['updates_to_99_train']}, 99% validation at "
          f"{found['updates_to_99_val']}, final validation accuracy {found['final']['val_accuracy']:.4f}")
gap = (histories["tf32"]["val_accuracy"] - histories["fp32-a"]["val_accuracy"]).abs().max()
same = path("tf32", "history.csv").read_bytes() == path("fp32-a", "history.csv").read_bytes()
print(f"== TF32 against fp32: histories {'identical' if same else 'differ'}; largest difference in validation "
      f"accuracy at a log point {gap:.4f}")
PYTHON
    # The fp32 run is that run's result, made as run-gpu.sh makes it (and shown deterministic above): kept.
    if [ -d "$state/check/fp32-a/runs/$run" ] && [ ! -e "runs/$run" ]; then
        mkdir -p runs && cp -r "$state/check/fp32-a/runs/$run" "runs/.$run.tmp" && mv "runs/.$run.tmp" "runs/$run"
    fi
    cat "$report"
}

unpack() {
    [ "$#" -gt 0 ] || die "unpack needs the files that collect wrote (runs-*.tar.gz, or its .part-NN pieces)"
    local archive
    there=$(mktemp -d)  # global: the EXIT trap runs after this function has returned
    trap 'rm -rf "$there"' EXIT
    for archive in "$@"; do
        case "$archive" in
            *.part-00) cat "${archive%.part-00}".part-* > "$there/whole.tar.gz"; archive=$there/whole.tar.gz ;;
            *.part-*)  # read with its .part-00, which must be given too
                [[ " $* " == *" ${archive%.part-*}.part-00 "* ]] \
                    || die "$archive is one piece of an archive: give its .part-00 as well (nothing was unpacked)"
                continue ;;
            *.tar.gz) ;;
            *) die "$archive is not a runs-*.tar.gz from \`paper/device.sh collect\`" ;;
        esac
        # Only plain files and folders with relative names: a link could point outside paper/, and DVC would
        # then cache (and push) whatever it points to.
        local odd
        odd=$(tar -tvzf "$archive" | awk '$1 !~ /^[-d]/ || $NF ~ /^\// || $NF ~ /(^|\/)\.\.(\/|$)/ {print $NF}' | head -3)
        [ -z "$odd" ] || die "$archive holds something other than plain files and folders with relative names" \
                             "(${odd//$'\n'/, }); nothing was unpacked"
        rm -rf "$there/data"
        # Owners and modes are this user's, whatever the archive says.
        tar -xzf "$archive" -C "$there" --no-same-owner --no-same-permissions data runs
    done
    cd "$root/paper"
    local repro=("${PYTHON:-python3}" -m repro) group
    export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
    # Group by group, never over one already here: runs recorded in DVC are not to be replaced unseen.
    for group in $("${repro[@]}" groups); do
        [ -d "$there/runs/$group" ] || continue
        if [ ! -e "runs/$group" ]; then
            mkdir -p "runs/$(dirname "$group")" && mv "$there/runs/$group" "runs/$group"
        elif ! diff -r "$there/runs/$group" "runs/$group" > /dev/null; then
            echo "device.sh: runs/$group is here already and differs from the one unpacked: kept the one here" \
                 "(delete it and unpack again to take the new one)" >&2
        fi
    done
    "${repro[@]}" generate > /dev/null  # the tables the runs' DVC stages depend on
    diff -r "$there/data" data > /dev/null \
        || die "the operation tables made there differ from those made here: the runs are unpacked, but were" \
               "trained on other tables than DVC would record (compare the NumPy versions in their provenance.json)"
    "${repro[@]}" trained
}

command=${1:-}
shift || true
case "$command" in
    wheels|check|start|collect|unpack) "$command" "$@" ;;
    *) die "usage: paper/device.sh wheels | check | start [GROUP...] | collect SECONDS | unpack FILE..." ;;
esac
