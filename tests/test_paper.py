"""The paper scale: its own parameters and pipeline under paper/, never started by the laptop's `dvc repro`."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, start_up_seconds, tiny_scale
from repro import claims, config
from repro.tools import bench, pipelines


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


def test_paper_is_a_dvc_project_of_its_own_so_the_root_speaks_of_the_laptop_only():
    """`dvc status` or `dvc repro` at the root never lists paper/'s stages (issue 25): paper/ has its own .dvc/."""
    from dvc.repo import Repo

    assert (REPO / "paper/.dvc/config").is_file()
    with Repo(str(REPO)) as root:
        assert {stage.path_in_repo for stage in root.index.stages} == {"dvc.yaml"}
    with Repo(str(REPO / "paper")) as paper_repo:
        assert {stage.path_in_repo for stage in paper_repo.index.stages} == {"dvc.yaml"}
        assert len(paper_repo.index.stages) > 30  # every paper-scale stage, seen from paper/


def test_estimate_counts_full_batch_updates_by_their_size(paper):
    groups = bench.estimate(paper, {"transformer": {1: 36.0, 8: 80.0}, "mlp": {1: 1000.0}})
    assert groups["div_adam_0"]["hours"] == pytest.approx(1_000_000 / 36.0 / 3600)
    # A group of 20 runs (a seed's) trains at the rate measured for 8 runs together (the largest size measured,
    # none above it to interpolate towards).
    fractions = paper.sweeps["s5_fractions"]
    assert groups["s5_fractions"]["groups"] == 3 and groups["s5_fractions"]["runs"] == len(fractions.members)
    assert groups["s5_fractions"]["hours"] == pytest.approx(
        sum(paper.runs[n].training.updates for n in fractions.members) / 80.0 / 3600)
    # Between two sizes measured, on a log scale of the size: 4 runs lie halfway between 2 and 8.
    assert bench.rate_for({1: 10.0, 2: 20.0, 8: 40.0}, 4) == pytest.approx(30.0)
    assert bench.rate_for({1: 10.0, 2: 20.0, 8: 40.0}, 2) == 20.0 and bench.rate_for({1: 10.0}, 50) == 10.0
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
    assert listed[:3] == [f"s5_fractions/s5_mul-adamw-seed{s}" for s in range(3)]  # Figure 1 (center), seed by seed
    assert listed.index("s5_interventions/s5_mul-adamw-seed0") < listed.index("operations/add-adamw-seed0") \
        < listed.index("div_adam_0") < listed.index("add_no_decay")  # Figure 2 (left), (right), the CPU's runs
    full_batch = [paper.runs[paper.groups[g].members[0]].training.full_batch for g in listed
                  if g.startswith("s5_interventions/")]
    assert full_batch == sorted(full_batch) and sum(full_batch) == 48  # the costly groups last, per fraction and seed
    assert all(len(paper.groups[g].members) == 20 for g in listed if g.startswith("s5_fractions/"))  # one seed each
    assert '"${repro[@]}" groups' in (REPO / "paper/run-gpu.sh").read_text()


def test_leases_are_filled_first_fit_in_the_order_of_the_figures():
    seconds = {"a": 300.0, "b": 400.0, "c": 150.0, "d": 900.0, "e": 60.0}
    assert bench.leases(list(seconds), seconds, 480) == [["a", "c"], ["b", "e"], ["d"]]
    assert bench.leases(["d"], seconds, 480) == [["d"]]  # longer than a lease: a lease of its own


def test_groups_packs_the_paper_scale_into_leases_from_a_saved_estimate(paper, tmp_path, monkeypatch):
    """`repro groups --lease` reads `repro estimate --save`'s file: every group in one lease, in figure order."""
    from click.testing import CliRunner

    from repro.cli import main

    seconds = bench.group_seconds(paper, {"transformer": {1: 2100.0, 8: 5300.0, 32: 7700.0}})
    estimate = tmp_path / "estimate.json"
    estimate.write_text(json.dumps({"group_seconds": seconds}))
    args = ["--params", str(REPO / "paper/params.yaml"), "groups"]
    result = CliRunner().invoke(main, [*args, "--lease", "480", "--estimate", str(estimate)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    packed = [name for line in lines for name in line.split(": ", 1)[1].split()]
    assert sorted(packed) == sorted(paper.groups) and lines[0].startswith("lease 1 (")
    assert lines[0].split(": ", 1)[1].split()[0] == "s5_fractions/s5_mul-adamw-seed0"  # Figure 1 (center) first
    for line in lines:
        used, lease = (float(x.replace(",", "")) for x in line.split("(")[1].split(" s")[0].split(" of "))
        assert used <= lease or "longer than a lease" in line
    # Planned from paper/, the runs the CPU campaign finished (committed to git) are left out.
    monkeypatch.chdir(REPO / "paper")
    skipping = CliRunner().invoke(main, [*args, "--lease", "480", "--estimate", str(estimate), "--skip-trained"])
    assert skipping.exit_code == 0, skipping.output
    left = skipping.output.split()
    assert "add_decay" not in left and "s5_decay" not in left and "s5_fractions/s5_mul-adamw-seed0" in left
    del seconds["div_adam_0"]
    estimate.write_text(json.dumps({"group_seconds": seconds}))
    result = CliRunner().invoke(main, [*args, "--lease", "480", "--estimate", str(estimate)])
    assert result.exit_code == 1 and "for 1 group(s)" in result.output and "div_adam_0" in result.output
    result = CliRunner().invoke(main, [*args, "--lease", "480"])
    assert result.exit_code == 1 and "--lease needs --estimate" in result.output


def tiny_paper_params() -> dict:
    """paper/params.yaml with its names, shape and keep_weights kept, and every budget and grid cut to seconds."""
    params = tiny_scale(REPO / "paper/params.yaml", "paper-tiny", {"s5_fractions": [0.5], "s5_interventions": [0.8],
                                                                   "operations": [0.5]})
    params["sweeps"]["s5_interventions"]["interventions"] = ["adamw", "minibatch_adam"]
    params["sweeps"]["operations"]["operations"] = ["add", "s5_mul"]
    for seed in (1, 2):  # one Figure 1 (left) seed: each named run is a process of its own there
        del params["runs"][f"div_adam_{seed}"]
        params["progress"].remove(f"div_adam_{seed}")
    return params


def _run(*command, cwd, env=None):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _machines(tmp_path: Path, raw: dict, there_name: str = "there") -> tuple[Path, Path, dict, Path]:
    """A lent machine's copy of the checkout (no .git, its python3 ours, jax on a CPU), one here, the env and
    the $OUT folder of the device tool."""
    there, here = tmp_path / there_name, tmp_path / "here"
    for root in (there, here):
        if root.exists():
            continue
        (root / "paper").mkdir(parents=True)
        for name in ("device.sh", "dvc.yaml", ".gitignore"):
            shutil.copy(REPO / "paper" / name, root / "paper" / name)
        (root / "paper/params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    if not (there / "repro").exists():
        (there / "repro").symlink_to(REPO / "repro")  # no .git there, as on a lent machine
    if not (here / "repro").exists():
        shutil.copytree(REPO / "repro", here / "repro", ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the machine's python3: ours
    (bin_dir / "python3").chmod(0o755)
    out = tmp_path / f"{there_name}-out"
    out.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}", "OUT": str(out),
           "DEVICE_STATE": str(tmp_path / f"{there_name}-state"), "DEVICE_ALLOW_CPU": "1",
           "REPRO_GIT_COMMIT": "abc123", "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    return there, here, env, out


@pytest.mark.slow
def test_the_gpu_round_trip_rehearsed_on_a_cpu(tmp_path):
    """paper/device.sh there (here on a CPU, jax backend): a full check, then one lease that trains every group;
    then unpack, `dvc commit` and `dvc repro` here.

    The same bytes arrive, DVC trains nothing, and the paper pipeline ends up clean, claims report included.
    """
    raw = tiny_paper_params()
    there, here, env, out = _machines(tmp_path, raw)
    checked = _run("bash", "paper/device.sh", "check", cwd=there,
                   env={**env, "CHECK_BENCH_ARGS": "--runs 1 --repeats 1 --updates 5"})
    assert "transformer, 1 run(s):" in checked and "fp32 in two processes: identical bytes" in checked
    assert "TF32 against fp32: histories identical" in checked  # a CPU has no TF32
    assert (out / "check.txt").read_text() == checked and (there / "paper/runs/add_decay/run.json").is_file()
    (out / "check.txt").unlink()
    ordered = bench.figure_order(config.load(there / "paper/params.yaml"))
    leased = _run("bash", "paper/device.sh", "run", "--deadline", "900", "--check", *ordered, cwd=there, env=env)
    assert f"packed {len(ordered)} finished group(s): {' '.join(ordered)}; in flight: none" in leased
    assert "add_decay to update 512 in two processes: identical bytes" in leased  # the quick check
    assert "backend: jax" in leased and (out / "lease.txt").read_text() == leased
    assert "add_decay: trained" not in leased  # `check` made it
    assert any((tmp_path / "there-state/jax-cache").glob("jit__train_chunk_function-*"))  # `run` compiles into it
    assert "abc123 (given by REPRO_GIT_COMMIT" in (there / "paper/runs/add_decay/provenance.json").read_text()
    archives = [str(p) for p in out.glob("runs-*.tar.gz")]
    assert len(archives) == 1 and not list(out.glob("state-*"))

    _run("git", "init", "-q", cwd=here)
    _run("dvc", "init", "--subdir", "-q", cwd=here / "paper", env=env)  # paper/ is a DVC project of its own
    listed = _run("bash", "paper/device.sh", "unpack", *archives, cwd=here, env=env)
    stages = ["train@div_adam_0", "train@add_decay", "train@add_no_decay", "train@s5_decay",
              "train_sweep@s5_fractions", "train_sweep@s5_interventions", "train_sweep@operations"]
    assert f"dvc commit -f generate {' '.join(stages)}" in listed
    files = sorted(p.relative_to(there) for p in (there / "paper/runs").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(here) for p in (here / "paper/runs").rglob("*") if p.is_file())
    assert all((there / f).read_bytes() == (here / f).read_bytes() for f in files)
    assert {f.parent.name for f in files if f.name == "model.weights.h5"} == {
        "div_adam_0", "add_decay", "add_no_decay", "s5_decay"}

    # As if the lent time ran out before Figure 2 (right)'s x + y: a partial sweep, recorded as it stands.
    shutil.rmtree(here / "paper/runs/operations/add-adamw-seed0")
    repro = (sys.executable, "-m", "repro")
    partial = _run(*repro, "trained", cwd=here / "paper", env=env)
    assert "train_sweep@operations: partial, 1 of 2 groups: operations/s5_mul-adamw-seed0" in partial
    assert _run(*repro, "trained", "--stages", cwd=here / "paper", env=env).split() == \
        [s for s in stages if s != "train_sweep@operations"]
    assert _run(*repro, "trained", "--stages", "--partial", cwd=here / "paper", env=env).split() == stages
    trained_here = _run(*repro, "trained", "--groups", cwd=here / "paper", env=env).split()
    assert "operations/s5_mul-adamw-seed0" in trained_here and "operations/add-adamw-seed0" not in trained_here

    _run("dvc", "commit", "-f", "generate", *stages, cwd=here / "paper", env=env)
    repro_log = _run("dvc", "repro", cwd=here / "paper", env=env)
    assert "Running stage 'claims'" in repro_log and "Running stage 'train" not in repro_log  # nothing trained here
    assert "up to date" in _run("dvc", "status", "dvc.yaml", cwd=here / "paper", env=env)
    record = json.loads((here / "paper/records/operations.json").read_text())
    assert record["missing_groups"] == ["operations/add-adamw-seed0"] and all(m.startswith("s5_mul") for m in record["runs"])
    assert json.loads((here / "paper/metrics/operations.json").read_text())["groups_missing"] == 1
    report = {c["id"]: c for c in json.loads((here / "paper/reports/claims.json").read_text())["claims"]}
    assert report["fig2_symmetric"]["verdict"] == claims.NOT_TESTABLE
    assert "add/sub: not trained yet at this scale: add (a partial sweep); not in the grid: sub" in \
        report["fig2_symmetric"]["measured"]

    # The rest comes back later: unpacking again adds the missing group and leaves the others as they are.
    _run("bash", "paper/device.sh", "unpack", *archives, cwd=here, env=env)
    _run("dvc", "commit", "-f", "train_sweep@operations", cwd=here / "paper", env=env)
    repro_log = _run("dvc", "repro", cwd=here / "paper", env=env)
    assert "Running stage 'evaluate_sweep@operations'" in repro_log and "Running stage 'train" not in repro_log
    assert "up to date" in _run("dvc", "status", "dvc.yaml", cwd=here / "paper", env=env)
    assert json.loads((here / "paper/records/operations.json").read_text())["missing_groups"] == []
    assert "scale `paper-tiny`" in (here / "paper/reports/claims.md").read_text()


@pytest.mark.slow
def test_a_lease_cut_by_its_deadline_sends_back_what_it_may_and_the_next_lease_continues(tmp_path):
    """One foreground call a lease, under the device tool's limits, rehearsed on a CPU: it returns before its
    deadline, its files are few and small enough to come back (here 128 KiB a file, so that the state splits), it
    sends the group it finished whole and the state of the one cut short; a fresh machine carrying that
    state continues the run where it stopped.

    The deadlines are counted in this machine's start-up time, measured here (a lease starts 5 processes
    before it trains, and each group's training starts one more and compiles), and the second lease's from
    the set-up the first reported: on a slower CPU a fixed 30 s left no time to start (issue 33)."""
    import time

    raw = tiny_paper_params()
    raw["runs"]["div_adam_0"]["updates"] = 10 ** 6  # far more than a lease
    first = "s5_fractions/s5_mul-adamw-seed0"
    there, here, env, out = _machines(tmp_path, raw)
    margin = 10
    limits = {"LIMIT_BYTES": str(2 ** 17), "LIMIT_FILES": "8", "LEASE_MARGIN": str(margin)}  # packing takes seconds
    start_up = start_up_seconds("jax")
    # set-up (5 starts), `first` (a start and a compilation), div_adam_0 started (the same) and past update 0
    deadline = round(margin + 10 + 12 * start_up + 15)
    began = time.monotonic()
    leased = _run("bash", "paper/device.sh", "run", "--deadline", str(deadline), first, "div_adam_0", "add_decay",
                  cwd=there, env={**env, **limits})
    assert time.monotonic() - began < deadline
    assert f"{first}: trained" in leased and "div_adam_0: stopped at the deadline" in leased
    assert "add_decay: not started (no time left)" in leased
    set_up = int(re.search(r"== set-up: (\d+) s of the", leased).group(1))
    sent = sorted(out.iterdir())
    assert len(sent) <= 8 and all(f.is_file() and f.stat().st_size <= 2 ** 17 for f in sent)
    assert any(f.name.startswith("state-div_adam_0.tar.part-01") for f in sent)  # split to fit
    brought = [str(f) for f in sent if f.name.startswith(("state-", "runs-"))]

    _run("git", "init", "-q", cwd=here)
    _run("dvc", "init", "--subdir", "-q", cwd=here / "paper", env=env)
    unpacked = _run("bash", "paper/device.sh", "unpack", *brought, cwd=here, env=env)
    assert "paper/lease/div_adam_0.tar: in-flight state" in unpacked
    assert (here / "paper/runs" / first / "s5_mul-0.5-0-adamw/history.csv").is_file()
    state = here / "paper/lease/div_adam_0.tar"
    packed = json.loads(subprocess.run(["tar", "-xOf", str(state), "pack.json"], capture_output=True,
                                       text=True, check=True).stdout)
    reached = packed["checkpoints"][0]["updates"]
    assert reached > 0

    # The next lease: a fresh machine, carrying paper/lease/ as the working tree carries it. Its set-up is the
    # first's and the carried state's unpacking (a start); then div_adam_0 starts, resumes and is cut.
    again, _, env2, out2 = _machines(tmp_path, raw, "again")
    shutil.copytree(here / "paper/lease", again / "paper/lease")
    deadline = round(set_up + margin + 10 + 4 * start_up + 5)
    leased = _run("bash", "paper/device.sh", "run", "--deadline", str(deadline), "div_adam_0", cwd=again,
                  env={**env2, **limits})
    assert "div_adam_0: stopped at the deadline" in leased, leased
    assert f"resuming from update {reached}" in (out2 / "train.log").read_text()


def test_run_gpu_skips_the_groups_it_is_told_and_those_already_finished(tmp_path):
    shutil.copy(REPO / "paper/run-gpu.sh", tmp_path)
    fake = tmp_path / "fake-repro"  # lists three groups, and notes each one it is asked to train
    fake.write_text('#!/bin/sh\ncase "$1" in groups) printf "a\\nsweep/b\\nc\\n" ;; '
                    'train) echo "$2" >> trained.txt ;; esac\n')
    fake.chmod(0o755)
    (tmp_path / "runs/c").mkdir(parents=True)
    log = _run("bash", "run-gpu.sh", cwd=tmp_path, env={**os.environ, "REPRO": str(fake), "SKIP_GROUPS": "sweep/b"})
    assert (tmp_path / "trained.txt").read_text().split() == ["a"]
    assert "skipping sweep/b" in log and "every group is trained" in log


def test_figure_3s_s5_run_is_where_each_pipeline_looks_for_it(paper):
    laptop = config.load(REPO / "params.yaml")
    assert laptop.figures.embeddings[0] in laptop.sweeps[laptop.figures.fractions].members  # runs/<that sweep>
    assert paper.runs[paper.figures.embeddings[0]].group == paper.figures.embeddings[0]  # runs/<that run>
    for stage in ("embeddings", "figure_embeddings"):
        deps = yaml.safe_load((REPO / "paper/dvc.yaml").read_text())["stages"][stage]["deps"]
        assert "runs/${figures.embeddings[0]}" in deps and "runs/${figures.fractions}" not in deps


def test_named_runs_are_committed_to_git_and_sweeps_left_to_dvc_at_the_paper_scale(paper):
    ignored = (REPO / "paper/.gitignore").read_text().split()
    assert {f"/runs/{sweep}/" for sweep in paper.sweeps} <= set(ignored) and "/runs/" not in ignored
    stages = yaml.safe_load((REPO / "paper/dvc.yaml").read_text())["stages"]
    assert stages["train"]["do"]["outs"] == [{"runs/${key}": {"cache": False}}]
    assert stages["train_sweep"]["do"]["outs"] == ["runs/${key}"]


@pytest.mark.slow
def test_the_cpu_campaign_rehearsed_slice_by_slice(tmp_path):
    """paper/campaign.sh: a finished run, a run stopped at the deadline and packed, its state resumed by the next
    slice; `record` commits what is here in DVC and remakes only what its inputs allow, training nothing."""
    raw = tiny_paper_params()
    raw["runs"]["add_no_decay"]["updates"] = 2_000_000  # far beyond any slice here
    raw["runs"]["add_no_decay"]["log_points"] = 30
    here = tmp_path / "here"
    (here / "paper").mkdir(parents=True)
    for name in ("campaign.sh", "dvc.yaml", ".gitignore"):
        shutil.copy(REPO / "paper" / name, here / "paper" / name)
    (here / "paper/params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    shutil.copytree(REPO / "repro", here / "repro", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(here),
           "GIT_CEILING_DIRECTORIES": str(tmp_path), "MIN_SLICE": "5"}
    _run("git", "init", "-q", cwd=here)
    _run("dvc", "init", "--subdir", "-q", cwd=here / "paper", env=env)  # paper/ is a DVC project of its own

    # The first slice: tables, add_decay whole (a start and a compilation), add_no_decay started and past
    # update 0; the second: add_no_decay unpacked and resumed. In start-up times, measured (start_up_seconds).
    start_up = start_up_seconds()
    first = _run("bash", "paper/campaign.sh", "train", f"{round(20 + 6 * start_up)}s", cwd=here, env=env)
    assert "add_decay: complete" in first and "add_no_decay: partial, trained to" in first, first
    assert "(state: campaign/add_no_decay.tar)" in first and (here / "paper/campaign/add_no_decay.tar").is_file()
    assert not (here / "paper/campaign/add_decay.tar").exists()

    recorded = _run("bash", "paper/campaign.sh", "record", cwd=here, env=env)
    for made in ("evaluate@add_decay", "evaluate@add_no_decay", "figure_table", "evaluate_sweep@operations"):
        assert f"campaign: {made} made" in recorded, recorded
    for waiting in ("figure_curves", "embeddings", "figure_embeddings", "claims"):  # div_adam_0 and s5_decay: not trained yet
        assert f"campaign: {waiting} waits for inputs not trained yet" in recorded, recorded
    assert "Running stage 'train" not in recorded
    partial = json.loads((here / "paper/records/add_no_decay.json").read_text())["partial"]
    assert partial["budget"] == 2_000_000 and 0 < partial["updates"] < 2_000_000
    assert json.loads((here / "paper/records/operations.json").read_text())["trained_groups"] == []
    ignored = subprocess.run(["git", "check-ignore", "paper/runs/operations/", "paper/runs/add_decay/run.json"],
                             cwd=here, capture_output=True, text=True).stdout.split()
    assert ignored == ["paper/runs/operations/"]  # git keeps the named runs, DVC the sweeps

    # After a change of the training code the state cannot resume: the campaign says so and stops, its state
    # file byte for byte as it was (issue 33: it once packed a run started over on top of it).
    state = (here / "paper/campaign/add_no_decay.tar").read_bytes()
    models = here / "repro/models.py"
    code = models.read_text()
    models.write_text(code + "\n\ndef _changed():\n    return 1\n")
    shutil.rmtree(here / "paper/checkpoints")
    refused = subprocess.run(["bash", "paper/campaign.sh", "train", f"{round(8 + 3 * start_up)}s"], cwd=here, env=env,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "repro/models.py changed" in refused.stderr and "adopt" in refused.stderr
    assert "nothing was packed, and campaign/add_no_decay.tar is as it was" in refused.stderr, refused.stderr
    assert (here / "paper/campaign/add_no_decay.tar").read_bytes() == state
    models.write_text(code)

    # The next slice (another session) picks add_no_decay up where the packed state left it.
    shutil.rmtree(here / "paper/checkpoints")
    second = _run("bash", "paper/campaign.sh", "train", f"{round(8 + 3 * start_up)}s", cwd=here, env=env)
    assert "unpacked (update" in second and "resuming from update" in second, second


def test_the_campaign_fails_when_training_fails_and_packs_nothing(tmp_path):
    """issue 33: `repro train` crashing with a checkpoint folder left behind once ended the campaign with exit 0."""
    here = tmp_path / "here"
    (here / "paper").mkdir(parents=True)
    shutil.copy(REPO / "paper/campaign.sh", here / "paper")
    (here / "paper/params.yaml").write_text(yaml.safe_dump(tiny_paper_params(), sort_keys=False), encoding="utf-8")
    crashing = tmp_path / "repro"  # trains nothing: leaves a checkpoint folder and fails, as a crash would
    crashing.write_text(f'#!/bin/sh\nif [ "$1" = train ]; then mkdir -p "checkpoints/$2"; echo boom >&2; exit 1; fi\n'
                        f'exec "{sys.executable}" -m repro "$@"\n')
    crashing.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(REPO), "REPRO": str(crashing), "MIN_SLICE": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "paper/campaign.sh", "train", "60s"], cwd=here, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 1 and "repro train add_decay failed (exit 1); nothing was packed" in result.stderr
    assert not list((here / "paper/campaign").glob("*.tar"))
    bad = subprocess.run(["bash", "paper/campaign.sh", "train", "soon"], cwd=here, env=env, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "'soon' is not a duration" in bad.stderr and "Traceback" not in bad.stderr
    commit = subprocess.run(["bash", "paper/campaign.sh", "adopt", "notacommit"], cwd=here, env=env,
                            capture_output=True, text=True)
    assert commit.returncode == 2 and "not a commit" in commit.stderr


def test_an_unreadable_state_is_refused_here_and_said_there(tmp_path):
    """issue 33: `device.sh unpack` took a state-*.tar that would not unpack, and the next lease exited 1 with the
    reason in a log that never came back. Now unpack refuses it, and a lease carrying one says so and goes on."""
    bad = tmp_path / "state-div_adam_0.tar"
    bad.write_bytes(b"not a tar at all" * 64)
    result = subprocess.run(["bash", "paper/device.sh", "unpack", str(bad)], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode != 0 and "is not a readable state" in result.stderr and "nothing was unpacked" in result.stderr
    assert not (REPO / "paper/lease").exists()

    raw = tiny_paper_params()
    there, _, env, out = _machines(tmp_path, raw)
    (there / "paper/lease").mkdir()
    shutil.copy(bad, there / "paper/lease/div_adam_0.tar")
    leased = _run("bash", "paper/device.sh", "run", "--deadline", "300", "div_adam_0", cwd=there, env=env)
    assert "div_adam_0: its carried state lease/div_adam_0.tar did not unpack" in leased and "left out" in leased
    assert "packed 0 finished group(s)" in leased and (there / "paper/lease/div_adam_0.tar").read_bytes() == bad.read_bytes()


def test_unpack_refuses_links_and_a_lone_piece_before_writing_anything(tmp_path):
    import tarfile

    outside = tmp_path / "secret.txt"
    outside.write_text("not a run")
    evil = tmp_path / "runs-evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        link = tarfile.TarInfo("runs/div_adam_0/history.csv")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        tar.add(outside, arcname="data/x.txt")
    result = subprocess.run(["bash", "paper/device.sh", "unpack", str(evil)], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode != 0 and "other than plain files and folders" in result.stderr
    assert "nothing was unpacked" in result.stderr
    piece = tmp_path / "runs-1.tar.gz.part-01"
    piece.write_bytes(b"x")
    result = subprocess.run(["bash", "paper/device.sh", "unpack", str(piece)], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode != 0 and "give its .part-00 as well" in result.stderr
