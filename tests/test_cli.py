"""Bad input through the command line: a clear message, a non-zero exit, no output left behind."""

import csv
import json
import platform
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import REPO, tiny_params
from repro import files
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
    assert result.exit_code != 0 and "no sweep, group or run named 'nope'" in result.output
    assert "grid" in result.output and "tiny" in result.output  # the sweeps and the groups it could have meant


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
    result = _invoke("evaluate", "grid")  # a sweep never trained, which a sweep trained in part is not
    assert result.exit_code != 0 and "the sweep is not trained; train it with `repro train grid`" in result.output
    assert _leftovers(workdir) == []


def _params(change) -> None:
    raw = tiny_params()
    change(raw)
    Path("params.yaml").write_text(yaml.safe_dump(raw))


def test_a_negative_seed_is_refused_with_a_message(workdir):
    _params(lambda raw: raw["datasets"]["add_23"].update(seed=-1))
    result = _invoke("generate")
    assert result.exit_code == 1 and "datasets.add_23.seed must not be negative" in result.output
    _params(lambda raw: raw["sweeps"]["grid"].update(seeds=[0, -2]))
    result = _invoke("generate")
    assert result.exit_code == 1 and "sweeps.grid.seeds must not be negative" in result.output
    assert _leftovers(workdir) == []


def test_a_damaged_manifest_says_to_regenerate(workdir):
    assert _invoke("generate").exit_code == 0
    (workdir / "data/add_23/manifest.json").write_text("{bad")
    result = _invoke("train", "tiny")
    assert result.exit_code == 1 and "manifest.json is damaged" in result.output
    assert "repro generate add_23" in result.output and not (workdir / "runs").exists()


@pytest.mark.parametrize("column", ["c", "split"])
def test_one_changed_answer_or_split_label_is_refused(workdir, column):
    assert _invoke("generate").exit_code == 0
    path = workdir / "data/add_23/equations.csv"
    rows = list(csv.DictReader(path.open()))
    rows[5][column] = {"c": rows[6]["c"] if rows[6]["c"] != rows[5]["c"] else rows[4]["c"],
                       "split": "validation" if rows[5]["split"] == "train" else "train"}[column]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    result = _invoke("train", "tiny")
    assert result.exit_code == 1 and "differs from the table params.yaml defines (row 7)" in result.output
    assert not (workdir / "runs").exists()


def _trained(workdir) -> Path:
    assert _invoke("generate").exit_code == 0 and _invoke("train", "tiny").exit_code == 0
    return workdir / "runs/tiny/history.csv"


def test_a_truncated_or_unfinished_history_is_refused(workdir):
    history = _trained(workdir)
    text = history.read_text()
    history.write_text(text[: len(text) - 7])  # cut mid-line
    result = _invoke("evaluate", "tiny")
    assert result.exit_code == 1 and "is damaged" in result.output and "repro train tiny" in result.output
    history.write_text("".join(text.splitlines(keepends=True)[:-3]))  # whole lines, but stops short
    result = _invoke("evaluate", "tiny")
    assert result.exit_code == 1 and "the run did not finish" in result.output
    assert not (workdir / "metrics").exists() and not (workdir / "histories").exists()


def test_truncated_weights_are_refused_by_evaluate_and_by_figure_3s_analysis(workdir):
    """A cut weights file hashes without complaint; evaluate and `repro embeddings` must say it is damaged."""
    from repro import config as config_module
    from repro import embeddings

    _trained(workdir)
    weights = workdir / "runs/tiny/model.weights.h5"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) * 2 // 3])
    result = _invoke("evaluate", "tiny")
    assert result.exit_code == 1 and "model.weights.h5 is damaged" in result.output
    assert "repro train tiny" in result.output and not (workdir / "records").exists()
    run = config_module.load(workdir / "params.yaml").runs["tiny"]
    with pytest.raises(config_module.ConfigError, match="model.weights.h5 is damaged"):
        embeddings.load_output_rows(workdir / "runs/tiny", run)


def test_a_damaged_record_says_how_to_remake_it(workdir):
    (workdir / "records").mkdir()
    (workdir / "records/grid.json").write_text('{"runs": ')
    result = _invoke("figures", "fractions")
    assert result.exit_code == 1 and "records/grid.json is damaged" in result.output
    assert "repro evaluate grid" in result.output


GRID = [f"grid/{op}-{f}-0-{i}" for op in ("s5_mul", "add") for f in (0.5, 0.8) for i in ("adamw", "minibatch_adam")]
FIGURES = ["fig1_left_accuracy.png", "fig4_loss.png", "fig1_right_table.png", "fig1_center_fractions.png",
           "fig2_left_interventions.png", "fig2_right_operations.png", "fig3_tsne.png", "fig5_progress.png"]
assert sorted(FIGURES) == sorted(f for figure in files.FIGURES.values() for f in figure.files)  # the registry


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(workdir):
    commands = [("generate",), ("train", "tiny"), *(("train", name) for name in GRID),
                ("evaluate", "tiny"), ("evaluate", "grid"), ("progress", "tiny"), ("embeddings",), ("figures",),
                ("claims",)]
    for args in commands:
        result = _invoke(*args)
        assert result.exit_code == 0, (args, result.output)
    metrics = json.loads((workdir / "metrics/tiny.json").read_text())
    assert set(metrics) == {"updates_to_99_train", "updates_to_99_val", "generalization_delay", "best_val_accuracy",
                            "val_loss_descents", "final_val_accuracy"}  # a few numbers: a row of a table
    record = json.loads((workdir / "records/tiny.json").read_text())
    assert record["updates"] == 300 and set(record["sha256"]) == {"history.csv", "model.weights.h5", "run.json"}
    assert record["made_on"]["backend"] == "tensorflow" and record["made_on"]["precision"] == "fp32"
    if Path("/proc/cpuinfo").is_file():  # the vector units tell apart CPUs of one model name (docs/exactness.md)
        assert "sse4_2" in record["made_on"]["vector_extensions"] or platform.machine() != "x86_64"
    record = json.loads((workdir / "runs/tiny/run.json").read_text())
    assert record["run"]["training"]["seed"] == 0 and record["versions"]["tensorflow"]
    assert json.loads((workdir / "metrics/grid.json").read_text())["runs"] == len(GRID)
    sweep = json.loads((workdir / "records/grid.json").read_text())
    assert sorted(sweep["runs"]) == sorted(name.split("/")[1] for name in GRID)
    claims = json.loads((workdir / "reports/claims.json").read_text())
    assert len(claims["claims"]) == sum(claims["summary"].values()) == 16 + 4 + 1  # the paper's, Figure 5's, the blog's
    assert "| claim | paper | measured here | effect | spread over seeds | verdict | figure |" in (
        workdir / "reports/claims.md").read_text()
    assert (workdir / "histories/tiny.csv").read_bytes() == (workdir / "runs/tiny/history.csv").read_bytes()
    assert len(list((workdir / "histories/grid").glob("*.csv"))) == len(GRID)
    figures = {name: (workdir / "figures" / name).read_bytes() for name in FIGURES}
    assert all(data.startswith(b"\x89PNG") for data in figures.values())
    assert _invoke("figures").exit_code == 0
    assert figures == {name: (workdir / "figures" / name).read_bytes() for name in figures}  # same bytes again
    assert not list(workdir.rglob(".*.tmp*"))  # no temporaries left behind


def test_a_crash_inside_a_command_prints_every_threads_python_stack(workdir):
    """A segmentation fault in TensorFlow or XLA leaves no traceback; faulthandler leaves the stacks in the log."""
    import subprocess
    import sys

    from conftest import REPO

    script = ("import os, signal\nfrom repro import cli\n"
              "cli.main(['generate'], standalone_mode=False)\n"
              "os.kill(os.getpid(), signal.SIGSEGV)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert result.returncode == -11
    assert "Fatal Python error: Segmentation fault" in result.stderr
    assert 'File "<string>", line 4' in result.stderr  # the line that crashed


def test_a_partial_or_empty_sweep_is_drawn_and_says_what_it_lacks(tmp_path):
    from repro import figures, tasks

    grid = {"model": "transformer", "budget": 1000, "operations": ["add", "sub", "mul"], "fractions": [0.5, 0.8],
            "seeds": [0], "interventions": ["adamw"]}
    made_on = {"backend": "jax", "device": "gpu", "precision": "fp32"}
    runs = {f"add-{f}-0-adamw": {"operation": "add", "train_fraction": f, "seed": 0, "intervention": "adamw",
                                 "updates_to_99_train": 100, "updates_to_99_val": "not reached",
                                 "best_val_accuracy": 0.5, "made_on": made_on} for f in (0.5, 0.8)}
    partial = {"grid": grid, "trained_groups": ["operations/add-adamw-seed0"],
               "missing_groups": ["operations/sub-adamw-seed0", "operations/mul-adamw-seed0"], "runs": runs}
    caption = figures._sweep_caption(partial, "mean over seeds", "paper")
    assert "2 of the grid's 6 runs" in caption and caption.endswith("NOT TRAINED YET (not drawn): sub, mul")
    assert figures._partial(partial) == " [partial: 1 of 3 groups trained]"
    whole = {**partial, "trained_groups": ["operations/add-adamw-seed0", "operations/sub-adamw-seed0", "operations/mul-adamw-seed0"],
             "missing_groups": []}
    assert "NOT TRAINED" not in figures._sweep_caption(whole, "x", "paper") and figures._partial(whole) == ""
    empty = {**whole, "trained_groups": [], "missing_groups": whole["trained_groups"], "runs": {}}
    for summary in (partial, empty):
        figures.operations_figure(summary, tasks.OPERATIONS, tmp_path / "operations.png", "paper")
        figures.fractions_figure(summary, tmp_path / "fractions.png", "paper")
        assert (tmp_path / "operations.png").read_bytes().startswith(b"\x89PNG")


# --- input that once gave a traceback (issue 25's reliability probe) ----------------------------------------------

def _edit_params(workdir, change) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    change(params)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.parametrize("change, message", [
    (lambda p: p["datasets"]["add_23"].update(train_fraction=0.0001), "leaves an empty training or validation set"),
    (lambda p: p["sweeps"]["grid"].update(modulus=2, fractions=[0.9]), "leaves an empty training or validation set"),
    (lambda p: p["datasets"]["add_23"].update(modulus=100_000), "above 1000"),
])
def test_params_that_cannot_make_a_table_are_refused_at_load(workdir, change, message):
    _edit_params(workdir, change)
    result = _invoke("generate")
    assert result.exit_code == 1 and message in result.output and result.exception.__class__ is SystemExit
    assert not (workdir / "data").exists()


def test_non_utf8_params_and_tables_are_refused_with_a_message(workdir):
    assert _invoke("generate").exit_code == 0
    table = workdir / "data/add_23/equations.csv"
    table.write_bytes(table.read_bytes().replace(b"train", b"tr\xffn", 1))
    result = _invoke("train", "tiny")
    assert result.exit_code == 1 and "not readable UTF-8 CSV" in result.output
    manifest = workdir / "data/add_23/manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "elements": [[0]] * len(data["elements"])}))
    result = _invoke("train", "tiny")
    assert result.exit_code == 1 and "manifest.json is damaged" in result.output
    (workdir / "params.yaml").write_bytes(b"scale: caf\xe9\n")
    result = _invoke("generate")
    assert result.exit_code == 1 and "is not UTF-8 text" in result.output


def test_an_unsupported_backend_and_a_damaged_report_say_what_to_do(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    result = _invoke("generate")
    assert result.exit_code == 1 and "KERAS_BACKEND='torch' is not supported" in result.output
    monkeypatch.delenv("KERAS_BACKEND")
    (workdir / "reports").mkdir()
    (workdir / "reports/claims.json").write_text('{"summary": ')
    (workdir / "README.md").write_text("x\n")
    result = _invoke("readme")
    assert result.exit_code == 1 and "claims.json is damaged" in result.output and "repro claims" in result.output
    assert (workdir / "README.md").read_text() == "x\n"


def test_a_run_json_without_a_key_says_to_retrain(workdir):
    _trained(workdir)
    record = workdir / "runs/tiny/run.json"
    data = json.loads(record.read_text())
    del data["determinism"]
    record.write_text(json.dumps(data))
    result = _invoke("evaluate", "tiny")
    assert result.exit_code == 1 and "run.json is damaged" in result.output and "repro train tiny" in result.output


def test_a_diverged_run_is_a_result_that_evaluate_and_the_figures_accept(workdir):
    _edit_params(workdir, lambda p: p["runs"]["tiny"].update(learning_rate=3.0))
    history = _trained(workdir)
    assert "nan" in history.read_text()  # the run diverged: its losses are not finite from some update on
    result = _invoke("evaluate", "tiny")
    assert result.exit_code == 0, result.output
    record = json.loads((workdir / "records/tiny.json").read_text())
    assert isinstance(record["diverged_at"], int) and record["diverged_at"] > 0
    assert _invoke("figures", "curves").exit_code == 0
    # A value that is not a number, rather than a non-finite one, is still damage.
    history.write_text(history.read_text().replace("nan", "abc", 1))
    result = _invoke("evaluate", "tiny")
    assert result.exit_code == 1 and "is damaged" in result.output


def test_help_lists_the_stages_dvc_runs_in_order_then_the_tools():
    """`repro --help` (issue 35): the commands both dvc.yaml files run, and only those, under "Stages"."""
    from repro import cli

    run = {re.search(r"cmd: repro (\w+)", line).group(1) for path in (REPO / "dvc.yaml", REPO / "paper/dvc.yaml")
           for line in path.read_text().splitlines() if "cmd: repro " in line}
    assert run == set(cli.STAGES)
    text = CliRunner().invoke(main, ["--help"]).output
    stages, tools = text.split("Stages (dvc.yaml runs these, in this order):")[1].split("Tools:")
    listed = [line.split()[0] for line in stages.splitlines() if line.strip()]
    assert listed == list(cli.STAGES) and "trace" in tools and "generate" not in tools
