"""dvc.yaml's code dependencies are what the code imports: `repro pipeline` writes them (repro/tools/pipelines.py),
and the committed dvc.yaml must be what it writes. `repro X` is repro/stages/X.py, and a stage's code is that
module's import closure (repro/imports.py), wherever the imports sit.

The stage module holds the command too, its options and their defaults, so
every line that can shape a result is in the closure. cli.py only dispatches
and is no stage's dependency, so that a help text can change without
retraining everything; a test holds it to defining no option but the
parameter file's. Scalar parameters a stage's code reads (`scale`) are
checked against its params as well.
"""

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from repro.tools import pipelines

PACKAGE = REPO / "repro"


def closure(subcommand: str) -> set[str]:
    return set(pipelines.code_deps(subcommand))


def stages(dvc: dict) -> dict[str, tuple[str, list[str]]]:
    """{stage: (subcommand, code deps)} for every stage of dvc.yaml (foreach, matrix or plain)."""
    found = {}
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        subcommand = body["cmd"].split()[1]
        found[name] = (subcommand, [d for d in body.get("deps", []) if str(d).startswith("repro/")])
    return found


def missing(dvc: dict) -> dict[str, set[str]]:
    """{stage: modules its command imports that its deps do not list}, for the stages lacking any."""
    gaps = {}
    for name, (subcommand, deps) in stages(dvc).items():
        absent = closure(subcommand) - set(deps)
        if absent:
            gaps[name] = absent
    return gaps


@pytest.fixture(scope="module")
def dvc() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_lists_every_module_it_imports(dvc):
    assert missing(dvc) == {}


def test_dvc_yaml_is_what_repro_pipeline_writes():
    """Each stage's code deps are exactly its closure (none missing, none extra), and paper/dvc.yaml follows."""
    text = (REPO / "dvc.yaml").read_text()
    assert pipelines.with_code_deps(text) == text
    assert pipelines.paper_pipeline(text) == (REPO / "paper/dvc.yaml").read_text()
    dropped = text.replace("      - repro/history_csv.py\n", "", 1)  # the first stage that lists it
    extra = text.replace("      - repro/tasks.py\n", "      - repro/tasks.py\n      - repro/bench.py\n", 1)
    assert dropped != text and pipelines.with_code_deps(dropped) == text
    assert extra != text and pipelines.with_code_deps(extra) == text
    with pytest.raises(ValueError, match="does not define"):
        pipelines.with_code_deps(text.replace("cmd: repro claims", "cmd: repro nonesuch"))


def test_a_module_removed_from_a_stage_is_caught(dvc):
    for stage, module in (("train", "repro/history_csv.py"), ("claims", "repro/results.py"),
                          ("embeddings", "repro/embeddings.py")):
        body = dvc["stages"][stage].get("do", dvc["stages"][stage])
        body["deps"] = [d for d in body["deps"] if d != module]
        assert module in missing(dvc)[stage]


def test_the_closure_follows_imports_inside_functions():
    # train imports history_csv at module level, models imports backend; figures imports progress lazily.
    assert {"repro/train.py", "repro/history_csv.py", "repro/backend.py"} <= closure("train")
    assert "repro/progress.py" in closure("figures")
    assert "repro/embeddings.py" not in closure("figures")  # Figure 3 is drawn from its record, not computed


def test_no_stage_depends_on_how_runs_execute(dvc):
    """execution: (checkpoint cadence) changes no result, so editing it must rerun nothing."""
    listed = [p for stage in dvc["stages"].values() for p in stage.get("do", stage).get("params", [])]
    assert not [p for p in listed if str(p).startswith("execution")]


def test_every_sweep_and_figure_has_its_stage(dvc):
    from repro.files import FIGURES

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    names = set(dvc["stages"])
    assert "train_sweep" in names and dvc["stages"]["train_sweep"]["foreach"] == "${sweeps}"
    assert dvc["stages"]["train_sweep"]["do"]["outs"] == ["runs/${key}"]  # the folder `repro train <sweep>` writes
    assert {name for name in names if name.startswith("figure_")} == {f"figure_{f}" for f in FIGURES}
    for figure in FIGURES:
        assert dvc["stages"][f"figure_{figure}"]["cmd"] == f"repro figures {figure}"


def test_the_figure_registry_is_what_dvc_yaml_and_the_drawing_code_say():
    """repro/files.py's FIGURES: each figure's stage writes exactly its files, and its drawer exists."""
    from repro import figures
    from repro.files import FIGURES

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, figure in FIGURES.items():
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages[f"figure_{name}"]["outs"]]
        assert outs == [f"figures/{file}" for file in figure.files]
        assert callable(getattr(figures, figure.drawer))
    assert sorted(p.name for p in (REPO / "figures").glob("*.png")) == sorted(
        file for figure in FIGURES.values() for file in figure.files)


def test_every_stage_is_one_hop_from_its_name_to_its_module(dvc):
    """`cmd: repro X` is repro/stages/X.py: its click command and its `stage`, and a dependency of the stage."""
    import importlib

    import click

    from repro.cli import STAGES

    assert {subcommand for subcommand, _ in stages(dvc).values()} == set(STAGES)
    assert sorted(p.stem for p in (PACKAGE / "stages").glob("*.py") if p.stem != "__init__") == sorted(STAGES)
    for name, (subcommand, deps) in stages(dvc).items():
        module = importlib.import_module(f"repro.stages.{subcommand}")
        assert isinstance(module.command, click.Command) and module.command.name == subcommand, name
        assert callable(module.stage) and f"repro/stages/{subcommand}.py" in deps, name


def test_what_a_stage_command_decides_is_a_dependency_of_the_stage():
    """An option's default (train's --precision) shapes results: each stage command, options included, is defined
    in a module of its stage's closure; cli.py, which no stage lists, defines no option but the parameter file's."""
    import importlib
    import inspect

    from repro.cli import STAGES

    for stage in STAGES:
        command = importlib.import_module(f"repro.stages.{stage}").command
        defined = Path(inspect.getsourcefile(inspect.unwrap(command.callback))).resolve().relative_to(REPO)
        assert defined.as_posix() in pipelines.code_deps(stage), stage
    assert any(option.name == "precision" and option.default == "fp32"
               for option in importlib.import_module("repro.stages.train").command.params)
    options = re.findall(r"@click\.option\(\s*\"(--[\w-]+)\"", (PACKAGE / "cli.py").read_text())
    assert options == ["--params"]


def test_every_stage_lists_the_scalar_parameters_its_code_reads(dvc):
    """A scalar parameter (params.yaml's `scale`, printed in every caption and the claims report) is a dependency of
    each stage whose code reads it; mappings are listed per key, and reach later stages through their outputs."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    scalars = [key for key, value in raw.items() if not isinstance(value, (dict, list))]
    assert "scale" in scalars
    for name, (subcommand, _) in stages(dvc).items():
        body = dvc["stages"][name].get("do", dvc["stages"][name])
        listed = {str(p).split(".")[0] for p in body.get("params", [])}
        code = "".join((REPO / path).read_text() for path in pipelines.code_deps(subcommand))
        read = {key for key in scalars if re.search(rf"\bconfig\.{key}\b", code)}
        assert read <= listed, f"{name} reads {sorted(read - listed)} but lists only {sorted(listed)}"


def test_dvc_lock_records_only_stages_that_exist():
    """DVC keeps a removed stage's entry in dvc.lock; parsed again after every stage, 132 stale ones cost ~3 s each."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        names = {stage.addressing for stage in repo.index.stages if stage.path_in_repo == "dvc.yaml"}
    locked = set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"])
    assert locked - names == set(), "stale entries in dvc.lock: delete them"
    assert {n for n in names if n.startswith("train")} <= locked  # every training stage's results are recorded


def test_no_stage_imports_a_tool():
    """repro/tools/ holds what is no stage (issue 35): editing a tool must rerun nothing, and a stage that came to
    import one would make it so; and `repro --help` still lists every tool (loaded lazily, repro/cli.py)."""
    from click.testing import CliRunner

    from repro.cli import STAGES, main

    tools = sorted(p.relative_to(REPO).as_posix() for p in (PACKAGE / "tools").glob("*.py"))
    assert "repro/tools/commands.py" in tools and "repro/tools/trace.py" in tools
    for stage in STAGES:
        assert not [path for path in pipelines.code_deps(stage) if path.startswith("repro/tools/")], stage
    text = CliRunner().invoke(main, ["--help"]).output
    assert all(f"  {name} " in text for name in ("bench", "verify", "compare", "trace", "status", "pack"))


def test_no_module_is_long_without_saying_why():
    """A module of more than about 500 lines does several jobs, unless its first line says why it is one (issue 35)."""
    long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > 550 and "on purpose" not in " ".join(lines[:2]):
            long[path.relative_to(REPO).as_posix()] = len(lines)
    assert long == {}
