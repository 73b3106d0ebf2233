"""`repro submit`: the groups of a parameter file as one job array, on a Slurm cluster or on this machine.

One task per group, each `repro train GROUP --must-resume` in the folder `repro submit` ran in: the same
runner, checkpoints (checkpoints/GROUP/) and run folders (runs/GROUP/) as ever, on the cluster's shared
file system. The scheduler decides where and when a task runs; our part is that every cut resumes:

- the time limit near: Slurm signals the task's shell (`--signal=B:USR1@WARN`), which asks `repro train`
  to checkpoint (one SIGTERM: it checkpoints within one compiled call) and then requeues the task
  (`scontrol requeue`); the requeued task resumes from that checkpoint;
- preemption or `scancel`: Slurm sends SIGTERM to every process of the task, and `repro train`
  checkpoints and stops; a preempted task is requeued by Slurm (`--requeue`), a cancelled one resumes
  at the next `repro submit`;
- a real failure (bad parameters, a crash): the task fails once, its message in its log, never requeued.

Executors. `slurm`: one `sbatch --array` (sbatch and scontrol on PATH). `local` (the default where there
is no sbatch): the same task script, run here one task after another, with the same time limit, warning
signal and requeue; what Slurm would do at the limit, this process does itself.

Every submission has a folder, jobs/<stamp>/: groups.txt (task i trains line i + 1), task.sh (the task,
written here and read by the scheduler), logs/ (one log per task, appended to across requeues).
docs/cluster.md says how to run paper/ so, and how to record what comes back (paper/campaign.sh record).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from repro import files
from repro.config import Config, ConfigError

JOBS_DIR = Path("jobs")
REQUEUED = 99  # task.sh's exit status when it asked to be requeued (local executor: run it again)

# One task of the array. Slurm runs it with SLURM_ARRAY_TASK_ID set; the local executor sets the same variables.
TASK = r"""#!/usr/bin/env bash
# A task of `repro submit` (repro/tools/submit.py): trains line SLURM_ARRAY_TASK_ID + 1 of groups.txt.
set -u
job=${REPRO_JOB:?the folder of the submission, set by repro submit}
group=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$job/groups.txt")
cd "$(cat "$job/workdir")"
warned=0
# The time limit is near (sbatch --signal=B:USR1@WARN): checkpoint, then requeue. One SIGTERM only: a second
# one would make `repro train` exit at once, without its checkpoint.
trap 'warned=1; kill -TERM "$child" 2>/dev/null' USR1
# scancel or preemption signal every process of the task, `repro train` included: it checkpoints by itself.
trap ':' TERM
echo "task ${SLURM_ARRAY_JOB_ID:-local}_${SLURM_ARRAY_TASK_ID} on $(hostname): repro train $group ($(date -u +%FT%TZ))"
{python} -m repro --params {params} train "$group" --must-resume &
child=$!
while :; do  # a trapped signal ends `wait` early: wait again until the child has exited
    wait "$child"
    rc=$?
    kill -0 "$child" 2>/dev/null || break
done
echo "task: repro train $group exited $rc ($(date -u +%FT%TZ))"
if [ "$warned" = 1 ] && [ "$rc" = 143 ]; then  # stopped at its checkpoint before the limit: continue later
    if [ -n "${SLURM_JOB_ID:-}" ]; then
        scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" && echo "task: requeued"
    fi
    exit {requeued}
fi
exit "$rc"
"""


@dataclass(frozen=True)
class Submission:
    folder: Path  # jobs/<stamp>/
    groups: list[str]
    job_id: str | None  # Slurm's array job id; None for the local executor
    failed: tuple[str, ...] = ()  # the local executor's groups that failed (also in failed.txt)


def pending(config: Config, names: tuple[str, ...] = ()) -> list[str]:
    """The groups to train: NAMES (runs, groups or sweeps, each expanded to its groups), else every group of the
    parameter file, in the figures' order (repro groups), less those whose runs are all here, whole."""
    from repro.tools import bench, status

    if names:
        found = [group.name for name in names for group in config.trained_by(name)]
    else:
        found = bench.figure_order(config)
    return [name for name in dict.fromkeys(found) if not status.complete(config, name)]


def prepare(config: Config, groups: list[str], params: Path, root: Path = JOBS_DIR) -> Path:
    """jobs/<stamp>/ with groups.txt, task.sh, workdir and logs/; returns it."""
    if not groups:
        raise ConfigError("nothing to submit: every group asked for is trained, whole (`repro trained` says so)")
    # The named runs' tables (data/, cheap to make), as `repro train` expects them; a sweep makes its own.
    from repro.stages import generate

    generate.stage(config, tuple(sorted({run.dataset_name for name in groups for run in
                                         (config.runs[m] for m in config.groups[name].members) if run.dataset_name})))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = root / stamp
    for number in range(1, 100):
        if not folder.exists():
            break
        folder = root / f"{stamp}-{number}"
    (folder / "logs").mkdir(parents=True)
    files.write_text(folder / "groups.txt", "".join(f"{group}\n" for group in groups))
    files.write_text(folder / "workdir", f"{Path.cwd()}\n")
    script = (TASK.replace("{python}", _quoted(sys.executable)).replace("{params}", _quoted(str(params.resolve())))
              .replace("{requeued}", str(REQUEUED)))
    files.write_text(folder / "task.sh", script)
    (folder / "task.sh").chmod(0o755)
    return folder


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def slurm_available() -> bool:
    return shutil.which("sbatch") is not None and shutil.which("scontrol") is not None


def sbatch_command(folder: Path, count: int, time_limit: str, warning: int, gpus: int, cpus: int,
                   extra: tuple[str, ...]) -> list[str]:
    """The sbatch command line of a submission of `count` tasks."""
    command = ["sbatch", "--parsable", f"--array=0-{count - 1}", "--requeue", f"--signal=B:USR1@{warning}",
               f"--time={time_limit}", f"--cpus-per-task={cpus}", "--job-name=repro",
               f"--output={folder.resolve()}/logs/%A_%a.log", "--open-mode=append",
               # Slurm runs a copy of task.sh from its spool: REPRO_JOB says where the submission's folder is.
               f"--export=ALL,REPRO_JOB={folder.resolve()}"]
    if gpus:
        command.append(f"--gres=gpu:{gpus}")
    return [*command, *extra, str((folder / "task.sh").resolve())]


def submit_slurm(folder: Path, groups: list[str], time_limit: str, warning: int, gpus: int, cpus: int,
                 extra: tuple[str, ...] = ()) -> Submission:
    if not slurm_available():
        raise ConfigError("--executor slurm needs sbatch and scontrol on PATH (a Slurm login node); use --executor "
                          "local to train here")
    done = subprocess.run(sbatch_command(folder, len(groups), time_limit, warning, gpus, cpus, extra), capture_output=True,
                          text=True)
    if done.returncode:
        raise ConfigError(f"sbatch refused the job: {done.stderr.strip() or done.stdout.strip()}")
    job = done.stdout.strip().split(";")[0]
    files.write_text(folder / "job_id", f"{job}\n")
    return Submission(folder, groups, job)


def run_locally(folder: Path, groups: list[str], seconds: float | None, warning: int, report) -> Submission:
    """Every task here, one after another: `seconds` (the time limit) less the warning, then USR1, as Slurm would;
    a task that stopped at its checkpoint runs again. A task that fails is reported, and the rest still run."""
    failed = []
    for task, group in enumerate(groups):
        attempt, before = 0, _checkpoints(group)
        while True:
            attempt += 1
            log = folder / "logs" / f"local_{task}.log"
            env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(task), "REPRO_JOB": str(folder.resolve())}
            env.pop("SLURM_JOB_ID", None)
            with open(log, "a", encoding="utf-8") as out:
                process = subprocess.Popen(["bash", str((folder / "task.sh").resolve())], env=env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
                try:
                    rc = process.wait(timeout=None if seconds is None else max(seconds - warning, 1))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGUSR1)  # the time limit is near
                    rc = process.wait()
            if rc == REQUEUED and _checkpoints(group) != before:
                report(f"{group}: cut at its time limit (attempt {attempt}), checkpointed; requeued")
                before = _checkpoints(group)
                continue
            if rc == REQUEUED:  # no new checkpoint: the limit leaves no time to train, and would forever
                rc = 1
                report(f"{group}: cut at its time limit before it could checkpoint; a longer --time is needed")
            if rc:
                failed.append(group)
                report(f"{group}: failed (exit {rc}); its log: {log}")
            else:
                report(f"{group}: trained")
            break
    files.write_text(folder / "failed.txt", "".join(f"{group}\n" for group in failed))
    return Submission(folder, groups, None, tuple(failed))


def _checkpoints(group: str) -> dict[str, int]:
    """The checkpoints of `group` here, with their times of change: what a cut task has left to resume from."""
    return {path.name: path.stat().st_mtime_ns for path in (files.CHECKPOINT_DIR / group).glob("*.npz")}


def seconds_of(time_limit: str) -> float:
    """Seconds in a Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS."""
    days, _, clock = time_limit.strip().rpartition("-")
    try:
        parts = [int(p) for p in clock.split(":")]
        if days:
            hours, minutes, seconds = (parts + [0, 0])[:3]
            return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
        if len(parts) == 1:
            return parts[0] * 60
        if len(parts) == 2:
            return parts[0] * 60 + parts[1]
        if len(parts) == 3:
            return (parts[0] * 60 + parts[1]) * 60 + parts[2]
    except ValueError:
        pass
    raise ConfigError(f"--time {time_limit!r} is not a Slurm time limit (minutes, MM:SS, HH:MM:SS or D-HH:MM:SS)")
