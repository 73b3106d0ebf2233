"""`repro submit` without a cluster (issue 37): the local executor runs the same task script as Slurm, a task per
group, with the same time limit, warning and requeue; tests/test_slurm.py runs it on a real one-node Slurm."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, repro, start_up_seconds, tiny_params
from repro.config import ConfigError
from repro.tools import submit

RESULTS = ("history.csv", "run.json", "model.weights.h5")


def two_groups_of_two(**training) -> dict:
    """A paper-like file cut to seconds: one sweep of two groups (two interventions), two runs each (fractions)."""
    params = tiny_params()
    params["sweeps"]["grid"].update(operations=["add"], interventions=["adamw", "minibatch_adam"])
    params["sweeps"]["grid"]["training"].update(training)
    params["figures"], params["progress"] = None, []  # a file to train, not to draw or measure
    return params


def folder_with(tmp_path: Path, name: str, params: dict) -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return root


def results(root: Path) -> dict[str, bytes]:
    """Every result file under runs/ but provenance.json (which names the machine, the time and the slices)."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted((root / "runs").rglob("*"))
            if path.is_file() and path.name != "provenance.json"}


def test_the_sbatch_line_requeues_warns_before_the_limit_and_finds_its_folder(tmp_path):
    line = submit.sbatch_command(tmp_path, 3, "2:00:00", 90, 1, 4, ("--partition=gpu",))
    assert line[:2] == ["sbatch", "--parsable"] and line[-1] == str((tmp_path / "task.sh").resolve())
    for option in ("--array=0-2", "--requeue", "--signal=B:USR1@90", "--time=2:00:00", "--cpus-per-task=4",
                   "--gres=gpu:1", "--partition=gpu", f"--export=ALL,REPRO_JOB={tmp_path.resolve()}"):
        assert option in line, option
    assert not [o for o in submit.sbatch_command(tmp_path, 1, "10", 60, 0, 2, ()) if o.startswith("--gres")]


@pytest.mark.parametrize("text, seconds", [("10", 600), ("5:30", 330), ("1:00:00", 3600), ("2-00", 172800),
                                           ("1-02:03", 93780), ("0-00:00:30", 30)])
def test_slurm_time_limits_are_read_as_slurm_reads_them(text, seconds):
    assert submit.seconds_of(text) == seconds


def test_a_time_limit_slurm_would_not_read_is_refused():
    with pytest.raises(ConfigError, match="not a Slurm time limit"):
        submit.seconds_of("two hours")


@pytest.mark.slow
def test_local_tasks_give_the_bytes_of_one_process_and_a_cut_task_is_requeued_to_the_same_bytes(tmp_path):
    """The sweep's two groups as two tasks equal `repro train grid` in one process; a task told at its time limit
    to checkpoint is run again from there and ends with the bytes of an uncut one; then nothing is left to do."""
    sweep = two_groups_of_two()
    whole, tasks = folder_with(tmp_path, "whole", sweep), folder_with(tmp_path, "tasks", sweep)
    repro("train", "grid", cwd=whole)
    done = repro("submit", "grid", "--executor", "local", cwd=tasks)
    assert "2 of 2 group(s) trained here" in done.stdout, done.stdout
    assert results(tasks) == results(whole) and len(results(whole)) == 4 * len(RESULTS)
    again = repro("submit", "grid", "--executor", "local", cwd=tasks, check=False)
    assert again.returncode == 1 and "nothing to submit" in again.stderr

    long = tiny_params(updates=60_000, log_points=20)
    long["execution"]["checkpoint_seconds"] = 1
    uncut, cut = folder_with(tmp_path, "uncut", long), folder_with(tmp_path, "cut", long)
    repro("submit", "tiny", "--executor", "local", cwd=uncut)
    # The warning the executor sends at its time limit, sent here once the run has a checkpoint (a limit in seconds
    # would land before or after training as this machine is busy; the timer itself is tested below).
    process = subprocess.Popen([sys.executable, "-m", "repro", "submit", "tiny", "--executor", "local"], cwd=cut,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    while process.poll() is None and not (cut / "checkpoints/tiny/0.npz").is_file():
        time.sleep(0.2)
    task = subprocess.run(["pgrep", "-f", f"^bash {cut}/jobs/.*/task.sh"], capture_output=True, text=True)
    assert task.returncode == 0, "the task ended before its first checkpoint"
    os.kill(int(task.stdout.split()[0]), signal.SIGUSR1)
    output = process.communicate()[0]
    assert process.returncode == 0, output
    done = subprocess.CompletedProcess(process.args, 0, output, "")
    assert "cut at its time limit (attempt 1), checkpointed; requeued" in done.stdout, done.stdout
    assert "tiny: trained" in done.stdout
    log = next((cut / "jobs").glob("*/logs/local_0.log")).read_text()
    assert "resuming from update" in log and "exited 143" in log
    assert results(cut) == results(uncut)


@pytest.mark.slow
def test_a_task_that_fails_for_a_real_reason_fails_once_with_its_reason_in_its_log(tmp_path):
    """A checkpoint of other parameters is an error under --must-resume: the task fails, is not run again, and
    the next tasks still run."""
    params = tiny_params(updates=400_000, log_points=20)  # never trained to its end here
    params["execution"]["checkpoint_seconds"] = 0
    root = folder_with(tmp_path, "root", params)
    repro("generate", cwd=root)
    repro("train", "tiny", "--for", f"{3 * start_up_seconds() + 5:.1f}s", cwd=root)
    assert (root / "checkpoints/tiny/0.npz").is_file()
    params["runs"]["tiny"]["learning_rate"] = 0.02
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    done = repro("submit", "tiny", "grid/add-adamw-seed0", "--executor", "local", cwd=root, check=False)
    assert done.returncode == 1 and "tiny: failed (exit 1)" in done.stdout, done.stdout
    assert "grid/add-adamw-seed0: trained" in done.stdout and "requeued" not in done.stdout
    log = next((root / "jobs").glob("*/logs/local_0.log")).read_text()
    assert "not resumed, since it was made with other parameters" in log and log.count("repro train tiny (") == 1
    assert (root / "checkpoints/tiny/0.npz").is_file()  # left as it was
    shutil.rmtree(root / "jobs")


def test_the_local_executor_warns_at_its_time_limit_and_stops_a_task_that_cannot_progress(tmp_path, monkeypatch):
    """The timer alone, on a stand-in task: the warning comes `warning` seconds before the limit; a task that asks to
    be requeued without a new checkpoint is failed, not run forever."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "jobs/x"
    (folder / "logs").mkdir(parents=True)
    (folder / "task.sh").write_text("trap 'echo warned; exit 99' USR1\nsleep 30 &\nwait\n")
    reported = []
    began = time.monotonic()
    submit.run_locally(folder, ["g"], 3.0, 2, reported.append)
    assert 0.9 < time.monotonic() - began < 10
    assert reported == ["g: cut at its time limit before it could checkpoint; a longer --time is needed",
                        f"g: failed (exit 1); its log: {folder}/logs/local_0.log"]
    assert "warned" in (folder / "logs/local_0.log").read_text() and (folder / "failed.txt").read_text() == "g\n"
