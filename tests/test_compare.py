"""`repro compare`: results here against those committed, as a reviewer on another CPU would see them."""

import json
import subprocess

import pytest
from click.testing import CliRunner

from repro.tools import compare
from repro.cli import main
from repro.config import ConfigError

HISTORY = "update,train_loss,val_accuracy\n0,4.5,0.01\n10,1.25,0.5\n100,0.5,0.99\n"


def _claims(*verdicts: str) -> str:
    return json.dumps({"claims": [{"id": f"claim_{i}", "verdict": v} for i, v in enumerate(verdicts)]})


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """A repository with committed results: a history, a metrics file, a figure and a claims report."""
    files = {"histories/run.csv": HISTORY, "metrics/run.json": json.dumps({"best_val_accuracy": 0.99, "name": "x"}),
             "figures/fig.png": "png", "reports/claims.json": _claims("reproduced", "not reproduced")}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r"]):
        subprocess.run(["git", *command], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_untouched_tree_is_bit_identical(clone):
    result = CliRunner().invoke(main, ["compare"])
    assert result.exit_code == 0 and "4 files bit-identical, 0 differ" in result.output
    assert "verdicts: 2 of 2 the same" in result.output and result.output.endswith("compare: bit-identical\n")


def test_other_round_off_is_measured_and_the_verdicts_compared(clone):
    (clone / "histories/run.csv").write_text(HISTORY.replace("1.25,0.5", "1.2500004,0.5").replace("0.5,0.99", "0.5,0.98"))
    (clone / "metrics/run.json").write_text(json.dumps({"best_val_accuracy": 0.98, "name": "x"}))
    found = compare.compare(clone)
    assert found.different == ["histories/run.csv", "metrics/run.json"] and found.outcome == compare.SAME_VERDICTS
    assert found.largest["histories: train_loss"] == (pytest.approx(4e-7, rel=1e-3), "histories/run.csv")
    assert found.largest["histories: val_accuracy"][0] == pytest.approx(0.01)
    assert found.largest["metrics: best_val_accuracy"][0] == pytest.approx(0.01)
    result = CliRunner().invoke(main, ["compare"])
    assert result.exit_code == 10 and "histories: train_loss: 4e-07 (histories/run.csv)" in result.output

    (clone / "reports/claims.json").write_text(_claims("reproduced", "inconclusive"))
    result = CliRunner().invoke(main, ["compare"])
    assert result.exit_code == 11 and "claim_1: committed not reproduced, here inconclusive" in result.output
    assert "verdicts: 1 of 2 the same" in result.output


def test_missing_files_and_bad_input_are_named(clone):
    (clone / "figures/fig.png").unlink()
    (clone / "figures/extra.png").write_text("new")
    found = compare.compare(clone)
    assert found.only_committed == ["figures/fig.png"] and found.only_here == ["figures/extra.png"]
    with pytest.raises(ConfigError, match="git .* failed"):
        compare.compare(clone, "no-such-revision")
    (clone / "reports/claims.json").write_text("{")
    with pytest.raises(ConfigError, match="claims.json here is damaged"):
        compare.compare(clone)
    (clone / "reports/claims.json").unlink()
    result = CliRunner().invoke(main, ["compare"])
    assert result.exit_code == 1 and "run `dvc repro`" in result.output
