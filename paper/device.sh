#!/usr/bin/env bash
# The paper scale on a lent GPU machine that has JAX with CUDA on its python3 but no Keras, no DVC and no
# network, runs one command at a time for at most 10 minutes, sends back at most 8 files of 16 MiB from $OUT,
# and is given back 30 s after a call (docs/gpu.md, for the whole round trip).
#
#   here:    paper/device.sh wheels              Keras and the two packages it needs that such a machine lacks,
#                                                hash-checked against requirements-gpu.lock, into .whl/
#   there:   paper/device.sh check               a lease of its own: $OUT/check.txt, with `repro bench`,
#                                                determinism across two processes and TF32's effect on a run
#   there:   paper/device.sh run --deadline SECONDS [--check] GROUP...
#                                                one lease in one foreground call: trains the GROUPs in order
#                                                (continuing any state carried in paper/lease/), and before
#                                                SECONDS have passed packs into $OUT the groups finished and
#                                                the in-flight state of the one cut short, within the tool's
#                                                limits (8 files of 16 MiB); --check first runs the quick
#                                                check (`repro bench` on the groups' shapes and a short
#                                                determinism pair) into $OUT/lease.txt
#   here:    paper/device.sh unpack FILE...      the runs-*.tar.gz into paper/runs/ (the tables made here are
#                                                checked against those made there; it names the DVC stages
#                                                they complete), a state-*.tar into paper/lease/, where the
#                                                next lease's `run` continues it
#
# A lease is one `run` call: nothing depends on a second call coming before the machine is given back.
# State lives in /tmp on that machine; a fresh machine starts from nothing but what the call carries
# (paper/lease/ included). REPRO_GIT_COMMIT=<commit> names the commit where the copy sent there has no .git.
# DEVICE_ALLOW_CPU=1 lets `check` and `run` run without a GPU (the tests rehearse leases on a CPU).
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

LIMIT_FILES=${LIMIT_FILES:-8}                # what the device tool sends back from $OUT: files,
LIMIT_BYTES=${LIMIT_BYTES:-$((16 * 1024 * 1024))}  # and bytes a file
LEASE_MARGIN=${LEASE_MARGIN:-30}             # seconds kept for packing after training stops

lease_file() { echo "${1//\//__}.tar"; }     # a group's name as a file name (sweep groups hold a /)

split_to_limit() {  # FILE: left whole if it fits one file, else cut into .part-NN pieces that do
    if [ "$(stat -c %s "$1")" -gt "$LIMIT_BYTES" ]; then
        split -b "$((LIMIT_BYTES / 16 * 15))" -d "$1" "$1.part-"
        rm "$1"
    fi
}

quick_check() {  # REPORT GROUP...: `repro bench` on the groups' run counts, then two processes that must agree
    local report=$1 sizes run=add_decay trial scratch; shift
    sizes=$(python3 -m repro groups --sizes "$@")
    # shellcheck disable=SC2086  # one --runs option per size
    { echo "== repro bench --model transformer $sizes --repeats 1"
      python3 -m repro bench --model transformer $sizes --repeats 1; } >> "$report" 2>&1
    for trial in a b; do  # the run cut to QUICK_UPDATES, in two processes
        scratch="$state/quick/$trial"
        rm -rf "$scratch" && mkdir -p "$scratch" && cp -r data "$scratch/"
        python3 - "$run" "${QUICK_UPDATES:-512}" params.yaml "$scratch/params.yaml" << 'PYTHON'
import sys, yaml
run, updates, source, target = sys.argv[1:]
with open(source) as f:
    params = yaml.safe_load(f)
params["runs"][run].update(updates=int(updates), log_points=10)
with open(target, "w") as f:
    yaml.safe_dump(params, f, sort_keys=False)
PYTHON
        (cd "$scratch" && python3 -m repro train "$run") > "$scratch.log" 2>&1 \
            || { cat "$scratch.log" >> "$report"; die "the quick check's $run failed"; }
    done
    local differ=()
    for name in history.csv model.weights.h5 run.json; do
        cmp -s "$state/quick/a/runs/$run/$name" "$state/quick/b/runs/$run/$name" || differ+=("$name")
    done
    echo "== determinism, $run to update ${QUICK_UPDATES:-512} in two processes:" \
         "${differ[*]:+THE BYTES DIFFER in ${differ[*]}}${differ[*]:-identical bytes}" >> "$report"
}

run() {
    [ "${1:-}" = --deadline ] && [ -n "${2:-}" ] || die "usage: paper/device.sh run --deadline SECONDS [--check] GROUP..."
    local deadline=$2 end=$((SECONDS + $2)) quick=0 out=${OUT:?run writes into \$OUT} group left rc trained=() cut=""
    shift 2
    [ "${1:-}" = --check ] && { quick=1; shift; }
    [ "$#" -gt 0 ] || die "run needs the GROUPs to train (\`repro groups --lease\` packs them into leases)"
    install
    cd "$root/paper"
    local unknown
    unknown=$(comm -23 <(printf '%s\n' "$@" | sort -u) <(python3 -m repro groups | sort -u))
    [ -z "$unknown" ] || die "not groups of paper/params.yaml: $unknown (\`repro groups\` lists them)"
    if ! git -C "$root" rev-parse HEAD > /dev/null 2>&1 && [ -z "${REPRO_GIT_COMMIT:-}" ]; then
        echo "device.sh: no git repository here: each run's provenance.json will name no commit" \
             "(set REPRO_GIT_COMMIT=<the commit sent> to record it)" >&2
    fi
    local report="$out/lease.txt" log="$state/lease.log"
    mkdir -p "$state" && : > "$log"
    { python3 -m repro env; echo "== lease: $# group(s), a deadline of ${deadline} s"; } > "$report"
    python3 -m repro generate > /dev/null
    export JAX_COMPILATION_CACHE_DIR="$state/jax-cache"
    [ "$quick" = 1 ] && quick_check "$report" "$@"
    local skip=() carried
    for group in "$@"; do  # state carried from an earlier lease; one that will not unpack is said, not fatal
        carried="lease/$(lease_file "$group")"
        [ -f "$carried" ] || continue
        if ! python3 -m repro unpack "$carried" "$group" >> "$log" 2>&1; then
            echo "== $group: its carried state $carried did not unpack ($(tail -n 1 "$log")); left out of this" \
                 "lease, its state kept as it came" >> "$report"
            skip+=("$group")
        fi
    done
    echo "== set-up: $((SECONDS - (end - deadline))) s of the ${deadline} s (installing, checks, tables, carried state)" >> "$report"
    for group in "$@"; do
        [[ " ${skip[*]} " == *" $group "* ]] && continue
        [ -d "runs/$group" ] && { trained+=("$group"); continue; }
        left=$((end - SECONDS - LEASE_MARGIN))
        if [ -n "$cut" ] || [ "$left" -lt 10 ]; then echo "== $group: not started (no time left)" >> "$report"; continue; fi
        rc=0
        python3 -m repro train "$group" --for "${left}s" >> "$log" 2>&1 || rc=$?
        if [ -d "runs/$group" ] && [ ! -d "checkpoints/$group" ]; then
            trained+=("$group"); echo "== $group: trained" >> "$report"
        elif [ -d "checkpoints/$group" ]; then
            cut=$group; echo "== $group: stopped at the deadline (exit $rc); its state goes back" >> "$report"
        else
            echo "== $group: failed (exit $rc); see train.log" >> "$report"
        fi
    done
    if [ "${#trained[@]}" -gt 0 ]; then
        local archive
        archive="$out/runs-$(date -u +%Y%m%dT%H%M%S).tar.gz"
        tar -czf "$archive" data "${trained[@]/#/runs/}"
        split_to_limit "$archive"
    fi
    if [ -n "$cut" ]; then
        python3 -m repro pack "$cut" "$out/state-$(lease_file "$cut")" >> "$log" 2>&1
        split_to_limit "$out/state-$(lease_file "$cut")"
    fi
    tail -c 1000000 "$log" > "$out/train.log"
    local count
    count=$(find "$out" -maxdepth 1 -type f | wc -l)
    if [ "$count" -gt "$LIMIT_FILES" ]; then  # the state is what can be done without: its group starts over
        rm -f "$out"/state-*
        echo "== $count files would not all come back (at most $LIMIT_FILES): $cut's state left out" >> "$report"
    fi
    echo "== packed ${#trained[@]} finished group(s): ${trained[*]:-none}; in flight: ${cut:-none}" >> "$report"
    cat "$report"
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

from repro import analysis, config, history_csv

folder, run = Path(sys.argv[1]), config.load("params.yaml").run(sys.argv[2])
def path(trial, name):
    return folder / trial / "runs" / run.directory / name
differ = [n for n in ("history.csv", "model.weights.h5", "run.json")
          if path("fp32-a", n).read_bytes() != path("fp32-b", n).read_bytes()]
print("== determinism, fp32 in two processes:", f"differ in {', '.join(differ)}" if differ else "identical bytes")
histories = {trial: history_csv.read(path(trial, "history.csv"), run) for trial in ("fp32-a", "tf32")}
for trial, history in histories.items():
    found = analysis.summarize(history)
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
            */state-*.tar|state-*.tar|*/state-*.tar.part-00|state-*.tar.part-00)  # a lease's in-flight state
                local name=${archive##*/state-} checked
                name=${name%.part-00}
                cat "${archive%.part-00}"* > "$there/$name"
                # Checked before it is kept: an unreadable state would only fail the next lease, far away.
                if ! checked=$(cd "$root/paper" && PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" \
                               "${PYTHON:-python3}" -m repro unpack --check "$there/$name" 2>&1); then
                    die "$archive is not a readable state (${checked##*$'\n'}); nothing was unpacked from it"
                fi
                mkdir -p "$root/paper/lease"
                mv "$there/$name" "$root/paper/lease/$name"
                echo "device.sh: paper/lease/$name: in-flight state for the next lease's \`run\`"
                continue ;;
            */state-*.tar.part-*|state-*.tar.part-*) continue ;;  # read with its .part-00
            *.part-00) cat "${archive%.part-00}".part-* > "$there/whole.tar.gz"; archive=$there/whole.tar.gz ;;
            *.part-*)  # read with its .part-00, which must be given too
                [[ " $* " == *" ${archive%.part-*}.part-00 "* ]] \
                    || die "$archive is one piece of an archive: give its .part-00 as well (nothing was unpacked)"
                continue ;;
            *.tar.gz) ;;
            *) die "$archive is neither a runs-*.tar.gz nor a state-*.tar from \`paper/device.sh run\`" ;;
        esac
        # Only plain files and folders with relative names: a link could point outside paper/, and DVC would
        # then cache (and push) whatever it points to.
        local odd
        # awk reads the whole listing (a `head` would close the pipe early, and tar die of SIGPIPE under pipefail)
        odd=$(tar -tvzf "$archive" | awk '($1 !~ /^[-d]/ || $NF ~ /^\// || $NF ~ /(^|\/)\.\.(\/|$)/) && n++ < 3 {print $NF}') \
            || die "$archive is not a readable .tar.gz; nothing was unpacked"
        [ -z "$odd" ] || die "$archive holds something other than plain files and folders with relative names" \
                             "(${odd//$'\n'/, }); nothing was unpacked"
        rm -rf "$there/data"
        # Owners and modes are this user's, whatever the archive says.
        tar -xzf "$archive" -C "$there" --no-same-owner --no-same-permissions data runs
        chmod -R u=rwX,go=rX "$there/data" "$there/runs"  # the archive's modes (0600, say) are not kept either
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
    for group in $("${repro[@]}" groups); do  # a group brought back whole needs no carried state
        [ -d "runs/$group" ] && rm -f "lease/$(lease_file "$group")"
    done
    [ -d "$there/data" ] || { "${repro[@]}" trained; return; }  # only state came back
    "${repro[@]}" generate > /dev/null  # the tables the runs' DVC stages depend on
    diff -r "$there/data" data > /dev/null \
        || die "the operation tables made there differ from those made here: the runs are unpacked, but were" \
               "trained on other tables than DVC would record (compare the NumPy versions in their provenance.json)"
    "${repro[@]}" trained
}

command=${1:-}
shift || true
case "$command" in
    wheels|run|check|unpack) "$command" "$@" ;;
    *) die "usage: paper/device.sh wheels | run --deadline SECONDS [--check] GROUP... | check | unpack FILE..." ;;
esac
