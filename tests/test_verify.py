"""`repro verify`: compares a fresh run with the result committed at git's HEAD, like with like."""

import json
import subprocess

import pytest
import yaml

from conftest import repro, tiny_params


def _git(workdir, *args):
    subprocess.run(["git", *args], cwd=workdir, check=True, capture_output=True)


def _commit(workdir, message="results"):
    _git(workdir, "add", "-A", "records", "params.yaml")
    _git(workdir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)


def _trained_and_committed(workdir):
    _git(workdir, "init", "-q")
    for command in (("generate",), ("train", "tiny"), ("evaluate", "tiny")):
        repro(*command, cwd=workdir)
    _commit(workdir)


@pytest.mark.slow
def test_verify_tells_identical_from_changed(workdir):
    _trained_and_committed(workdir)
    same = repro("verify", "tiny", cwd=workdir, check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "tiny: bit-identical" in same.stdout
    assert "committed result made with tensorflow on cpu (fp32)" in same.stdout

    path = workdir / "records/tiny.json"
    record = json.loads(path.read_text())
    record["sha256"]["history.csv"] = "0" * 64  # other bytes, same numbers
    path.write_text(json.dumps(record))
    _commit(workdir)
    close = repro("verify", "tiny", cwd=workdir, check=False)
    assert close.returncode == 10 and "within tolerance" in close.stdout and "history.csv" in close.stdout

    record["best_val_accuracy"] -= 0.5  # a result that really changed
    path.write_text(json.dumps(record))
    _commit(workdir)
    changed = repro("verify", "tiny", cwd=workdir, check=False)
    assert changed.returncode == 11 and "beyond tolerance" in changed.stdout
    assert "best_val_accuracy" in changed.stdout and "BEYOND" in changed.stdout


def test_verify_compares_with_head_not_with_the_working_tree(workdir):
    _trained_and_committed(workdir)
    path = workdir / "records/tiny.json"
    record = json.loads(path.read_text())
    record["best_val_accuracy"] -= 0.5  # a local rerun elsewhere rewrote the working tree's copy
    path.write_text(json.dumps(record))
    result = repro("verify", "tiny", cwd=workdir, check=False)
    assert result.returncode == 0 and "tiny: bit-identical" in result.stdout


def test_verify_says_when_the_parameters_differ(workdir):
    _trained_and_committed(workdir)
    (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params(learning_rate=0.02)))
    result = repro("verify", "tiny", cwd=workdir, check=False)
    assert result.returncode == 12 and "other parameters" in result.stdout
    assert "beyond tolerance" not in result.stdout


def test_verify_without_committed_results_says_what_to_run(workdir):
    result = repro("verify", "tiny", cwd=workdir, check=False)
    assert result.returncode == 1
    assert "dvc repro" in result.stderr and "commit" in result.stderr


def test_evaluate_refuses_a_run_trained_with_other_parameters(workdir):
    for command in (("generate",), ("train", "tiny")):
        repro(*command, cwd=workdir)
    (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params(learning_rate=0.02)))
    result = repro("evaluate", "tiny", cwd=workdir, check=False)
    assert result.returncode == 1 and "trained with other parameters" in result.stderr
    assert "repro train tiny" in result.stderr
    assert not (workdir / "metrics").exists() and not (workdir / "records").exists()


def test_a_run_without_its_weights_file_compares_on_the_files_it_has():
    """A sweep member whose weights are not kept has no weights file on either side: its run.json holds their digest."""
    from repro.tools import verify

    numbers = {"updates_to_99_train": 10, "updates_to_99_val": 20, "best_val_accuracy": 1.0,
               "final_train_accuracy": 1.0, "final_val_accuracy": 1.0}
    digest_only = {"history.csv": "a", "run.json": "b"}
    assert verify.compare("x", {**numbers, "sha256": digest_only}, {**numbers, "sha256": dict(digest_only)}).verdict \
        == verify.IDENTICAL
    kept = {**digest_only, "model.weights.h5": "c"}
    outcome = verify.compare("x", {**numbers, "sha256": kept}, {**numbers, "sha256": {**digest_only, "run.json": "d"}})
    assert outcome.verdict == verify.WITHIN and sorted(outcome.files) == ["model.weights.h5", "run.json"]


def test_verify_of_a_member_not_trained_yet_says_its_sweep_is_partial(workdir):
    _git(workdir, "init", "-q")
    (workdir / "records").mkdir()
    record = {"grid": {}, "missing_groups": ["grid/add-adamw-seed0", "grid/add-minibatch_adam-seed0"], "runs": {}}
    (workdir / "records/grid.json").write_text(json.dumps(record))
    _commit(workdir)
    result = repro("verify", "grid/add-0.5-0-adamw", cwd=workdir, check=False)
    assert result.returncode == 1
    assert "its group is not trained yet at this scale (a sweep trained in part)" in result.stderr
