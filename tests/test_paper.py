"""The paper scale: its own parameters and pipeline under paper/, never started by the laptop's `dvc repro`."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, repro, tiny_params
from repro import bench, claims, config, pipelines


@pytest.fixture(scope="module")
def paper() -> config.Config:
    return config.load(REPO / "paper/params.yaml")


def test_the_paper_pipeline_is_the_laptop_one_one_folder_down():
    expected = pipelines.paper_pipeline((REPO / "dvc.yaml").read_text())
    assert (REPO / "paper/dvc.yaml").read_text() == expected, "run `repro pipeline` after editing dvc.yaml"
    stages = yaml.safe_load(expected)["stages"]
    deps = [d for s in stages.values() for d in s.get("do", s).get("deps", [])]
    assert all(not str(d).startswith("repro/") for d in deps) and "../repro/train.py" in deps


def test_the_paper_scale_is_the_papers_settings(paper):
    assert paper.scale == "paper"
    assert {run.model.kind for run in paper.runs.values()} == {"transformer"}
    figure1 = claims.seeds_of(paper, paper.figures.curves[0])
    assert [r.training.seed for r in figure1] == [0, 1, 2]
    assert all(r.training.weight_decay == 0 and r.training.updates == 1_000_000 for r in figure1)
    assert all(r.dataset.operation == "div" and r.dataset.train_fraction == 0.5 for r in figure1)
    fractions = paper.sweeps["s5_fractions"].fractions
    assert min(fractions) == 0.2 and max(fractions) == 0.6
    steep = [f for f in fractions if 0.25 <= f <= 0.35]
    assert max(b - a for a, b in zip(steep, steep[1:])) <= 0.02 + 1e-9
    operations = paper.sweeps["operations"]
    assert len(operations.operations) == 13 and min(operations.fractions) == 0.1 and max(operations.fractions) == 0.95
    assert len(paper.sweeps["s5_interventions"].interventions) == 9
    assert all(len(s.seeds) == 3 for s in paper.sweeps.values())
    assert {paper.runs[n].training.updates for s in paper.sweeps.values() for n in s.members} == {100_000}


def test_the_laptop_pipeline_never_trains_the_paper_scale():
    laptop = config.load(REPO / "params.yaml")
    assert laptop.scale == "laptop"
    laptop_stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    outs = [str(o) for s in laptop_stages.values() for o in s.get("do", s).get("outs", [])]
    assert not [o for o in outs if "paper" in o]  # dvc repro's default target is ./dvc.yaml: paper/ is its own


def test_estimate_counts_full_batch_updates_by_their_size(paper):
    groups = bench.estimate(paper, {"transformer": {1: 36.0, 8: 80.0}, "mlp": {1: 1000.0}})
    assert groups["div_adam_0"]["hours"] == pytest.approx(1_000_000 / 36.0 / 3600)
    # A group of 60 runs trains at the rate measured for 8 runs together (the largest size measured below 60).
    fractions = paper.sweeps["s5_fractions"]
    assert groups["s5_fractions"]["groups"] == 1 and groups["s5_fractions"]["runs"] == len(fractions.members)
    assert groups["s5_fractions"]["hours"] == pytest.approx(
        sum(paper.runs[n].training.updates for n in fractions.members) / 80.0 / 3600)
    full = next(paper.runs[n] for n in paper.sweeps["s5_interventions"].members if paper.runs[n].training.full_batch)
    # A full-batch update on 14,400 · fraction equations costs that many / 512 minibatch updates.
    assert bench.batch_updates(full) == pytest.approx(
        full.training.updates * round(full.dataset.train_fraction * 14_400) / 512)


def test_groups_are_listed_in_the_order_of_the_figures(paper):
    from click.testing import CliRunner

    from repro.cli import main

    result = CliRunner().invoke(main, ["--params", str(REPO / "paper/params.yaml"), "groups"])
    assert result.exit_code == 0
    listed = result.output.split()
    assert sorted(listed) == sorted(paper.groups)
    assert listed[:4] == ["s5_fractions/s5_mul-adamw", "div_adam_0", "div_adam_1", "div_adam_2"]
    assert listed.index("add_no_decay") < listed.index("operations/add-adamw") < listed.index(
        "s5_interventions/s5_mul-adamw")
    assert '"${repro[@]}" groups' in (REPO / "paper/run-gpu.sh").read_text()


def _scale_folder(root, raw):
    """A repository of the scripts, the code and a params.yaml `raw` under paper/, as the device machine gets it."""
    (root / "paper").mkdir(parents=True)
    for script in ("device.sh", "run-gpu.sh"):
        shutil.copy(REPO / "paper" / script, root / "paper" / script)
    (root / "repro").symlink_to(REPO / "repro")
    (root / "paper/params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return root


def test_the_gpu_round_trip_rehearsed_on_a_cpu(tmp_path):
    """paper/device.sh: start and collect there (here on a CPU, jax backend), unpack here; the same bytes arrive."""
    raw = tiny_params()
    raw["sweeps"]["grid"]["keep_weights"] = ["s5_mul-0.8-0-adamw", "add-0.5-0-adamw"]  # Figure 3's two members
    there, here = _scale_folder(tmp_path / "there", raw), _scale_folder(tmp_path / "here", raw)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the machine's python3: ours
    (bin_dir / "python3").chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out),
           "DEVICE_STATE": str(tmp_path / "state"), "DEVICE_ALLOW_CPU": "1"}

    def device(*args, cwd=there):
        result = subprocess.run(["bash", "paper/device.sh", *args], cwd=cwd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "training started" in device("start")
    assert "packed 5 finished group(s)" in device("collect", "600")  # waits for the end: 4 groups of grid, tiny
    log = (out / "train.log").read_text()
    assert "every group is trained" in log and log.index("grid/s5_mul-adamw") < log.index("training tiny")
    assert (out / "env.txt").read_text().count("backend: jax") == 1
    archives = sorted(str(p) for p in out.glob("runs-*.tar.gz"))
    assert len(archives) == 1 and "packed 0 finished group(s)" in device("collect", "1")  # nothing twice

    listed = device("unpack", *archives, cwd=here)
    assert "train@tiny: complete" in listed and "train_sweep@grid: complete" in listed
    assert "dvc commit -f train@tiny train_sweep@grid" in listed
    files = sorted(p.relative_to(there) for p in (there / "paper/runs").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(here) for p in (here / "paper/runs").rglob("*") if p.is_file())
    assert all((there / f).read_bytes() == (here / f).read_bytes() for f in files)
    weights = {f.parent.name for f in files if f.name == "model.weights.h5"}
    assert weights == {"tiny", "s5_mul-0.8-0-adamw", "add-0.5-0-adamw"}

    shutil.rmtree(here / "paper/runs/grid/add-adamw")
    partial = repro("trained", cwd=here / "paper").stdout
    assert "train_sweep@grid: partial, 3 of 4 groups" in partial and "add-adamw" not in partial
    assert repro("trained", "--stages", cwd=here / "paper").stdout.split() == ["train@tiny"]
