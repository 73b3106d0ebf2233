"""dvc.yaml's code dependencies are what the code imports: `repro pipeline` writes them (repro/pipelines.py),
and the committed dvc.yaml must be what it writes. The closure starts at the `repro` subcommand's function in
cli.py (the imports inside it) and follows every import of a `repro` module, wherever it sits in the module.

cli.py itself is no stage's dependency, so that a help text can change
without retraining everything. That is safe only while it shapes no result:
each stage's command parses its arguments, loads params.yaml, calls its
module's one entry point and prints what came back. A test reads every stage
command's code and holds it to that, so a result-shaping line put there fails
here instead of being silently left out of DVC's view (issue 25).
"""

import ast

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
    for stage, module in (("train", "repro/history_csv.py"), ("claims", "repro/evaluate.py"),
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
    from repro import cli

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    names = set(dvc["stages"])
    assert "train_sweep" in names and dvc["stages"]["train_sweep"]["foreach"] == "${sweeps}"
    assert dvc["stages"]["train_sweep"]["do"]["outs"] == ["runs/${key}"]  # the folder `repro train <sweep>` writes
    assert {name for name in names if name.startswith("figure_")} == {f"figure_{f}" for f in cli.FIGURES}
    for figure in cli.FIGURES:
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


# The calls a stage command may make outside the text it prints: parse, load params.yaml, hand over, exit.
THIN = {"_config", "_duration", "click.echo", "context.exit", "tuple", "train_module.train_target",
        "figures_module.draw"}


def _callee(node: ast.Call) -> str:
    return ast.unparse(node.func)


def shaping_calls(function: ast.FunctionDef) -> list[str]:
    """Calls in a stage command other than its module's entry point (`X.stage`) and THIN; text printed aside."""
    found = []

    def visit(node):
        if isinstance(node, ast.Call) and _callee(node) == "click.echo":
            return  # what it prints is no result
        if isinstance(node, ast.Call) and not (_callee(node) in THIN or _callee(node).endswith(".stage")):
            found.append(ast.unparse(node))
        for child in ast.iter_child_nodes(node):
            visit(child)

    for statement in function.body:
        visit(statement)
    return found


def stage_commands(source: str) -> dict[str, ast.FunctionDef]:
    """cli.py's functions that dvc.yaml's stages run, by subcommand."""
    commands = {subcommand for subcommand, _ in stages(yaml.safe_load((REPO / "dvc.yaml").read_text())).values()}
    return {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name in commands}


def test_cli_py_shapes_no_result_so_changing_it_needs_no_rerun():
    commands = stage_commands((PACKAGE / "cli.py").read_text())
    assert set(commands) == {"generate", "train", "evaluate", "progress", "embeddings", "figures", "claims"}
    assert {name: shaping_calls(function) for name, function in commands.items()} == {name: [] for name in commands}


def test_a_result_shaping_line_in_cli_py_is_caught():
    source = (PACKAGE / "cli.py").read_text().replace(
        "    record = evaluate_module.stage(_config(context), name)\n",
        "    record = evaluate_module.stage(_config(context), name)\n"
        "    files.write_json(RECORDS_DIR / 'extra.json', evaluate_module.sweep_metrics(record))\n")
    assert shaping_calls(stage_commands(source)["evaluate"]) == [
        "files.write_json(RECORDS_DIR / 'extra.json', evaluate_module.sweep_metrics(record))",
        "evaluate_module.sweep_metrics(record)"]


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
