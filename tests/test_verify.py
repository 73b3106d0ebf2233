"""`repro verify`: a fresh run of a committed run says "bit-identical"; a changed result says so by exit code."""

import json

from conftest import repro


def test_verify_tells_identical_from_changed(workdir):
    for command in (("generate",), ("train", "tiny"), ("evaluate", "tiny")):
        repro(*command, cwd=workdir)

    same = repro("verify", "tiny", cwd=workdir, check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "tiny: bit-identical" in same.stdout

    path = workdir / "metrics/tiny.json"
    metrics = json.loads(path.read_text())
    metrics["sha256"]["history.csv"] = "0" * 64  # other bytes, same numbers
    path.write_text(json.dumps(metrics))
    close = repro("verify", "tiny", cwd=workdir, check=False)
    assert close.returncode == 10 and "within tolerance" in close.stdout and "history.csv" in close.stdout

    metrics["best_val_accuracy"] -= 0.5  # a result that really changed
    path.write_text(json.dumps(metrics))
    changed = repro("verify", "tiny", cwd=workdir, check=False)
    assert changed.returncode == 11 and "beyond tolerance" in changed.stdout
    assert "best_val_accuracy" in changed.stdout and "BEYOND" in changed.stdout


def test_verify_without_committed_results_says_what_to_run(workdir):
    result = repro("verify", "tiny", cwd=workdir, check=False)
    assert result.returncode == 1
    assert "dvc repro" in result.stderr or "repro evaluate" in result.stderr
