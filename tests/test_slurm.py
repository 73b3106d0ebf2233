"""`repro submit --executor slurm` on a real one-node Slurm (issue 37): `.ci/slurm` starts one on a CI machine
(CI runs it before the tests, and sets REPRO_SLURM=1 so that a cluster that did not come up fails these tests
instead of skipping them). Elsewhere they run where `sinfo` shows an idle node, and are skipped where there is
no Slurm at all.

What they show, on a paper-like file cut to seconds:
- a sweep of two groups of two runs, one array task per group, gives the bytes of the local executor;
- a task warned before its time limit (the signal Slurm sends at `--signal=B:USR1@…`, sent here with `scancel
  --batch --signal=USR1` rather than by waiting minutes for a real limit) checkpoints, is requeued, resumes;
  cancelled later (`scancel`), it resumes at the next `repro submit`; and it ends with the bytes of an uncut run;
- a task that fails for a real reason fails once, its reason in its log, and is not requeued.

Slurm holds a requeued job back for two minutes before it may start again; the tests move its start to now.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import repro, tiny_params
from test_submit import folder_with, results, two_groups_of_two


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    found = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    return found.returncode == 0 and any(s.strip() in ("idle", "mixed", "allocated") for s in found.stdout.split())


@pytest.fixture(scope="module")
def slurm():
    if not _slurm_up():
        if os.environ.get("REPRO_SLURM"):
            pytest.fail("REPRO_SLURM is set but no Slurm node is up: run .ci/slurm (as root) first")
        pytest.skip("no Slurm here (sinfo shows no idle node); .ci/slurm starts a one-node cluster, as CI does")


def _job(root: Path) -> str:
    (found,) = root.glob("jobs/*/job_id")
    return found.read_text().strip()


def _state(task: str) -> dict[str, str]:
    """scontrol's fields of array task `task` (JOB_INDEX): JobState, Restarts, Reason…"""
    shown = subprocess.run(["scontrol", "show", "job", task], capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", shown))


def _wait(what, seconds: float, message: str):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = what()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:.0f} s: {message}")


def _ended(task: str) -> str:
    return _wait(lambda: (_state(task).get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
                          and _state(task)["JobState"]), 600, f"{task} to end ({_state(task).get('JobState')})")


def _checkpointed(root: Path, after: int = -1) -> int:
    """The update of the run's checkpoint, once there is one past `after`."""
    path = root / "checkpoints/tiny/0.npz"

    def update() -> int | None:
        if not path.is_file():
            return None
        try:
            import json

            import numpy as np

            with np.load(path) as saved:
                found = json.loads(str(saved["meta"]))["updates"]
        except Exception:  # being written (atomically, but read between two renames) or not there yet
            return None
        return found if found > after else None

    return _wait(update, 300, f"a checkpoint of tiny past update {after}")


def test_a_sweep_on_slurm_gives_the_bytes_of_this_machine(slurm, tmp_path):
    sweep = two_groups_of_two()
    here, cluster = folder_with(tmp_path, "here", sweep), folder_with(tmp_path, "cluster", sweep)
    repro("submit", "grid", "--executor", "local", cwd=here)
    sent = repro("submit", "grid", "--executor", "slurm", "--time", "10", "--cpus", "1", cwd=cluster)
    assert "2 task(s)" in sent.stdout
    job = _job(cluster)
    assert [_ended(f"{job}_{task}") for task in (0, 1)] == ["COMPLETED", "COMPLETED"]
    assert results(cluster) == results(here) and len(results(here)) == 12


def test_a_cut_task_is_requeued_a_cancelled_one_resubmitted_and_both_end_with_the_uncut_bytes(slurm, tmp_path):
    params = tiny_params(updates=60_000, log_points=20)
    params["execution"]["checkpoint_seconds"] = 1
    uncut, cut = folder_with(tmp_path, "uncut", params), folder_with(tmp_path, "cut", params)
    repro("submit", "tiny", "--executor", "local", cwd=uncut)

    repro("submit", "tiny", "--executor", "slurm", "--time", "10", cwd=cut)
    task = f"{_job(cut)}_0"
    _checkpointed(cut)
    subprocess.run(["scancel", "--batch", "--signal=USR1", task], check=True)  # what Slurm sends near the limit
    _wait(lambda: _state(task).get("Restarts") == "1" and _state(task).get("JobState") == "PENDING", 120,
          f"{task} requeued ({_state(task)})")
    subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], check=True)
    resumed = _wait(lambda: _resumed(cut), 300, "the requeued task to resume")
    _checkpointed(cut, after=resumed)  # trained past where it was cut
    subprocess.run(["scancel", task], check=True)  # cancelled: it checkpoints and is not requeued
    assert _ended(task) == "CANCELLED" and _state(task)["Restarts"] == "1"
    log = next(cut.glob("jobs/*/logs/*.log")).read_text()
    assert "task: requeued" in log and "stopped (SIGTERM)" in log, log

    shutil.rmtree(cut / "jobs")
    repro("submit", "tiny", "--executor", "slurm", "--time", "10", cwd=cut)
    assert _ended(f"{_job(cut)}_0") == "COMPLETED"
    assert _resumed(cut) > resumed
    assert results(cut) == results(uncut)


def _resumed(root: Path) -> int | None:
    """The update the submission's task last resumed from, by its log."""
    logs = list(root.glob("jobs/*/logs/*.log"))
    found = re.findall(r"resuming from update (\d+)", logs[0].read_text()) if logs else []
    return int(found[-1]) if found else None


def test_a_task_that_fails_for_a_real_reason_fails_once_on_slurm(slurm, tmp_path):
    """A parameter the file cannot have, found when the task reads it: the task fails, once, with the reason."""
    params = tiny_params()
    root = folder_with(tmp_path, "root", params)
    # Held at submission, broken, then released: the task reads the file only once it runs.
    sent = repro("submit", "tiny", "--executor", "slurm", "--time", "10", "--sbatch=--hold", cwd=root)
    assert "1 task(s)" in sent.stdout
    task = f"{_job(root)}_0"
    params["runs"]["tiny"]["learning_rate"] = "fast"
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    subprocess.run(["scontrol", "release", _job(root)], check=True)
    assert _ended(task) == "FAILED" and _state(task)["Restarts"] == "0"
    log = next(root.glob("jobs/*/logs/*.log")).read_text()
    assert "learning_rate" in log and "exited 1" in log and "requeued" not in log
