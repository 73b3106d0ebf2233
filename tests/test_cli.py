"""Bad input through the command line: a clear message, a non-zero exit, no output left behind."""

import json

import yaml
from click.testing import CliRunner

from conftest import tiny_params
from repro.cli import main


def _invoke(*args):
    return CliRunner().invoke(main, list(args))


def _leftovers(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != "params.yaml")


def test_generate_writes_a_readable_table_and_manifest(workdir):
    result = _invoke("generate")
    assert result.exit_code == 0, result.output
    manifest = json.loads((workdir / "data/add_23/manifest.json").read_text())
    assert (manifest["equations"], manifest["train"], manifest["validation"]) == (529, 264, 265)
    lines = (workdir / "data/add_23/equations.csv").read_text().splitlines()
    assert lines[0] == "a,b,c,split" and len(lines) == 530
    assert lines[1].split(",")[:3] == ["0", "0", "0"]


def test_non_prime_modulus_for_division_fails_cleanly(workdir):
    raw = tiny_params()
    raw["datasets"]["add_23"].update(operation="div", modulus=24)
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw))
    result = _invoke("generate")
    assert result.exit_code != 0
    assert "modulus 24 is not prime" in result.output and "use a prime" in result.output
    assert _leftovers(workdir) == []


def test_unknown_run_names_the_known_ones(workdir):
    result = _invoke("train", "nope")
    assert result.exit_code != 0 and "no group or run named 'nope'" in result.output and "tiny" in result.output


def test_training_without_data_says_how_to_make_it(workdir):
    result = _invoke("train", "tiny")
    assert result.exit_code != 0
    assert "missing data file" in result.output and "repro generate add_23" in result.output
    assert _leftovers(workdir) == []


def test_stale_data_is_refused(workdir):
    assert _invoke("generate").exit_code == 0
    raw = tiny_params()
    raw["datasets"]["add_23"]["train_fraction"] = 0.3
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw))
    result = _invoke("train", "tiny")
    assert result.exit_code != 0 and "generated with other parameters" in result.output
    assert not (workdir / "runs").exists()


def test_mistyped_params_fail_every_command(workdir):
    raw = tiny_params()
    raw["training"]["updates"] = "many"
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw))
    for command in ("generate", "figures"):
        result = _invoke(command)
        assert result.exit_code != 0 and "updates must be an integer" in result.output


def test_evaluate_without_history_fails_cleanly(workdir):
    result = _invoke("evaluate", "tiny")
    assert result.exit_code != 0 and "repro train tiny" in result.output
    assert _leftovers(workdir) == []


GRID = [f"grid/{op}-{f}-0-{i}" for op in ("s5_mul", "add") for f in (0.5, 0.8) for i in ("adamw", "minibatch_adam")]
FIGURES = ["fig1_left_accuracy.png", "fig4_loss.png", "fig1_right_table.png", "fig1_center_fractions.png",
           "fig2_left_interventions.png", "fig2_right_operations.png", "fig3_tsne.png"]


def test_tiny_pipeline_end_to_end(workdir):
    commands = [("generate",), ("train", "tiny"), *(("train", name) for name in GRID),
                ("evaluate", "tiny"), ("evaluate", "grid"), ("figures",), ("claims",)]
    for args in commands:
        result = _invoke(*args)
        assert result.exit_code == 0, (args, result.output)
    metrics = json.loads((workdir / "metrics/tiny.json").read_text())
    assert metrics["updates"] == 300
    assert set(metrics) >= {"updates_to_99_train", "updates_to_99_val", "best_val_accuracy", "final"}
    record = json.loads((workdir / "runs/tiny/run.json").read_text())
    assert record["run"]["training"]["seed"] == 0 and record["versions"]["tensorflow"]
    sweep = json.loads((workdir / "metrics/grid.json").read_text())
    assert sorted(sweep["runs"]) == sorted(name.split("/")[1] for name in GRID)
    claims = json.loads((workdir / "reports/claims.json").read_text())
    assert len(claims["claims"]) == sum(claims["summary"].values()) == 15
    assert "| claim | paper | measured here | verdict | figure |" in (workdir / "reports/claims.md").read_text()
    figures = {name: (workdir / "figures" / name).read_bytes() for name in FIGURES}
    assert all(data.startswith(b"\x89PNG") for data in figures.values())
    assert _invoke("figures").exit_code == 0
    assert figures == {name: (workdir / "figures" / name).read_bytes() for name in figures}  # same bytes again
    assert not list(workdir.rglob(".*.tmp*"))  # no temporaries left behind
