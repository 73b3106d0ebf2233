"""Both pipelines' files from code: dvc.yaml's code dependencies from the import closure, and the paper
scale's pipeline, paper/dvc.yaml, which is the laptop's dvc.yaml read from one folder down.

Code dependencies. A module missing from a stage's deps leaves that stage's outputs silently stale when the
module changes; so `code_deps` lists them from the code: the import closure (repro/imports.py) of the stage's
module, repro/stages/<stage>.py, which holds its command and its options' defaults too. repro/cli.py only
dispatches to it and is no stage's dependency, so that the help can change without retraining anything.
`with_code_deps` rewrites each stage's run of `- repro/….py` lines in dvc.yaml's text, its comments and
everything else kept.

The paper scale.
DVC runs a stage in the folder of its dvc.yaml, and every `repro` command
reads params.yaml and writes data/, runs/, metrics/… relative to the folder
it runs in. So the paper scale needs the same stages with the code's paths
one level up, and three changes. Figure 3's S5 run is a named run (not a
member of Figure 1 (center)'s sweep), so Figure 3's stages (embeddings,
figure_embeddings) depend on its folder. Figure 3's claims rest on one run
each, as the paper's do, so the embeddings stage depends on no sweep of
other seeds. And a named run's folder is committed to git
(`cache: false`) rather than kept in DVC's cache. The paper scale's named
runs are trained a slice at a time over many sessions and machines
(docs/paper-scale.md), and no DVC remote carries a cache between them:
Figure 3 needs the weights of runs finished sessions apart, and a partial
run's history must outlive the machine that made it. `paper_pipeline`
derives the file, a test keeps the committed one equal to it, and `repro
pipeline` rewrites it.
"""

from __future__ import annotations

import re
from pathlib import Path

from repro import imports

PACKAGE = Path(__file__).resolve().parents[1]  # repro/
NOT_DEPS = {"repro/cli.py", "repro/__main__.py"}

HEADER = """# Generated from ../dvc.yaml by `repro pipeline` (a test checks it): the same stages, run in paper/
# with paper/params.yaml, so the paper scale's results live under paper/ beside the laptop's.
# Run from this folder (docs/paper-scale.md). Edit ../dvc.yaml, not this file.
"""


def paper_pipeline(laptop: str) -> str:
    """paper/dvc.yaml's text from dvc.yaml's: code paths one folder up, no `plots:` (they name laptop runs)."""
    stages = laptop[:laptop.index("\nplots:")] if "\nplots:" in laptop else laptop
    lines = stages.rstrip("\n").split("\n")
    while lines and lines[-1].startswith("#"):  # the comment that introduces `plots:`
        lines.pop()
    stages = "\n".join(lines)
    stages = re.sub(r"^(\s+- )repro/", r"\1../repro/", stages, flags=re.MULTILINE)
    start = stages.index("\n  train:\n")
    end = stages.index("\n\n  ", start + 1)
    named = stages[start:end].replace(
        "      outs:\n        - runs/${key}",
        "      outs:\n        - runs/${key}:                 # committed to git at this scale (repro/tools/pipelines.py)\n"
        "            cache: false")
    if named == stages[start:end]:
        raise ValueError("dvc.yaml's train stage no longer has `outs: - runs/${key}`; update repro/tools/pipelines.py")
    stages = stages[:start] + named + stages[end:]
    # Figure 3's S5 run is a member of Figure 1 (center)'s sweep at the laptop scale, and a named run at
    # the paper scale (so that it need not wait for that 60-run group): the stage depends on its folder.
    s5_run = "      - runs/${figures.fractions}       # its S5 run (figures.embeddings[0]) is a member of this sweep\n"
    if s5_run not in stages:
        raise ValueError("dvc.yaml's Figure 3 stages no longer depend on runs/${figures.fractions}; "
                         "update repro/tools/pipelines.py")
    stages = stages.replace(s5_run, "      - runs/${figures.embeddings[0]}   # its S5 run: a named run at this scale\n")
    # Figure 3's claims rest on one run each at the paper scale, as in the paper (config refuses decay_seeds there).
    seeds = "      - runs/${figures.decay_seeds}     # the x + y pair at other seeds (fig3_decay_clearer)\n"
    if seeds not in stages:
        raise ValueError("dvc.yaml's embeddings stage no longer depends on runs/${figures.decay_seeds}; "
                         "update repro/tools/pipelines.py")
    stages = stages.replace(seeds, "")
    return HEADER + stages.rstrip("\n") + "\n"


def code_deps(subcommand: str, package: Path = PACKAGE) -> list[str]:
    """Every repro module the `repro <subcommand>` stage runs: repro/stages/<subcommand>.py's import closure."""
    module = f"repro/stages/{subcommand}.py"
    if not (package.parent / module).is_file():
        raise ValueError(f"dvc.yaml runs `repro {subcommand}`, which repro/stages/ does not define ({module})")
    return imports.closure([module], package.parent, leave_out=NOT_DEPS)


_STAGE = re.compile(r"^  ([\w-]+):\s*(#.*)?$")
_CMD = re.compile(r"^\s+cmd: repro (\w+)")
_CODE = re.compile(r"^(\s+)- repro/[\w/]+\.py\s*$")


def with_code_deps(laptop: str, package: Path = PACKAGE) -> str:
    """dvc.yaml's text with each stage's `- repro/….py` lines replaced by `code_deps` of its command."""
    lines, out, stage, subcommand, written = laptop.split("\n"), [], None, None, set()
    i = 0
    while i < len(lines):
        line = lines[i]
        if _STAGE.match(line):
            stage, subcommand = _STAGE.match(line).group(1), None
        elif _CMD.match(line):
            subcommand = _CMD.match(line).group(1)
        elif _CODE.match(line) and stage is not None:
            if subcommand is None:
                raise ValueError(f"dvc.yaml's stage {stage} lists code before its `cmd: repro …` line")
            indent = _CODE.match(line).group(1)
            while i < len(lines) and _CODE.match(lines[i]):
                i += 1
            out += [f"{indent}- {path}" for path in code_deps(subcommand, package)]
            written.add(stage)
            continue
        out.append(line)
        i += 1
    commands = {m.group(1) for m in map(_CMD.match, lines) if m}
    if commands and not written:
        raise ValueError("dvc.yaml lists no `- repro/….py` code dependency; add one to each stage's deps")
    return "\n".join(out)
