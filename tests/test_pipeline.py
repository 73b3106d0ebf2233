"""The real dvc.yaml at a tiny scale: a sweep run in parallel by DVC's queue, then `dvc repro` end to end."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, tiny_scale

DVC = str(Path(sys.executable).with_name("dvc"))


def tiny_real_params() -> dict:
    """params.yaml with its names and shape kept, and every budget and grid cut to seconds."""
    params = tiny_scale(REPO / "params.yaml", "tiny", {"s5_fractions": [0.9], "s5_interventions": [0.8],
                                                       "operations": [0.5], "decay_seeds": [0.5]})
    params["sweeps"]["s5_fractions"]["interventions"] = ["adamw"]
    params["sweeps"]["s5_interventions"]["interventions"] = ["adamw", "minibatch_adam"]
    params["sweeps"]["operations"].update(interventions=["adamw"], operations=["add", "sub", "s5_mul"])
    return params


def _run(*command, cwd, timeout=600):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


@pytest.fixture
def project(tmp_path):
    """A git + DVC repository holding the package, the real dvc.yaml and the tiny parameters."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(REPO / "repro", root / "repro", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", root)
    (root / "paper").mkdir()  # the paper scale's pipeline beside it, which the laptop's `dvc repro` must leave alone
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(REPO / "paper" / name, root / "paper" / name)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_real_params(), sort_keys=False))
    (root / ".gitignore").write_text("__pycache__/\n")
    _run("git", "init", "-q", cwd=root)
    _run(DVC, "init", "-q", cwd=root)
    _run(DVC, "init", "--subdir", "-q", cwd=root / "paper")  # as in the repository: a DVC project of its own
    _run("git", "add", "-A", cwd=root)
    _run("git", "commit", "-qm", "tiny project", cwd=root)
    return root


@pytest.mark.slow
def test_a_queued_parallel_sweep_then_repro_reuses_its_runs(project):
    # docs/pipeline.md, "Stages in parallel": one queued experiment per sweep, two workers.
    stages = [s for s in _run(DVC, "stage", "list", "--name-only", cwd=project).split()
              if s.startswith("train_sweep@")]
    assert len(stages) == 4
    queued, left = stages[:2], stages[2:]  # two workers need two experiments; the rest `dvc repro` trains
    for stage in queued:
        _run(DVC, "exp", "run", "--queue", stage, cwd=project)
    _run(DVC, "queue", "start", "--jobs", "2", cwd=project)
    deadline = time.monotonic() + 480
    while time.monotonic() < deadline:
        status = _run(DVC, "queue", "status", cwd=project)
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(2)
    assert status.count("Success") == 2, status
    _run(DVC, "queue", "stop", cwd=project)

    first = _run(DVC, "repro", cwd=project)
    for stage in queued:  # trained by the workers, restored from DVC's run cache, not retrained
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in first, first
    for stage in left:
        assert f"Running stage '{stage}'" in first, first
    for figure in ("fig1_left_accuracy", "fig1_center_fractions", "fig1_right_table", "fig2_left_interventions",
                   "fig2_right_operations", "fig3_tsne", "fig4_loss", "fig5_progress"):
        assert (project / "figures" / f"{figure}.png").is_file()
    assert "fig5_few_frequencies[mlp_add]" in (project / "reports/claims.md").read_text()
    assert (project / "progress/transformer_div/measures.csv").is_file()
    assert "paper/dvc.yaml:" not in first and not (project / "paper/runs").exists()

    again = _run(DVC, "repro", cwd=project)
    assert "Data and pipelines are up to date" in again
