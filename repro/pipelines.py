"""The paper scale's pipeline, paper/dvc.yaml, is the laptop's dvc.yaml read from one folder down.

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
        "      outs:\n        - runs/${key}:                 # committed to git at this scale (repro/pipelines.py)\n"
        "            cache: false")
    if named == stages[start:end]:
        raise ValueError("dvc.yaml's train stage no longer has `outs: - runs/${key}`; update repro/pipelines.py")
    stages = stages[:start] + named + stages[end:]
    # Figure 3's S5 run is a member of Figure 1 (center)'s sweep at the laptop scale, and a named run at
    # the paper scale (so that it need not wait for that 60-run group): the stage depends on its folder.
    s5_run = "      - runs/${figures.fractions}       # its S5 run (figures.embeddings[0]) is a member of this sweep\n"
    if s5_run not in stages:
        raise ValueError("dvc.yaml's Figure 3 stages no longer depend on runs/${figures.fractions}; "
                         "update repro/pipelines.py")
    stages = stages.replace(s5_run, "      - runs/${figures.embeddings[0]}   # its S5 run: a named run at this scale\n")
    # Figure 3's claims rest on one run each at the paper scale, as in the paper (config refuses decay_seeds there).
    seeds = "      - runs/${figures.decay_seeds}     # the x + y pair at other seeds (fig3_decay_clearer)\n"
    if seeds not in stages:
        raise ValueError("dvc.yaml's embeddings stage no longer depends on runs/${figures.decay_seeds}; "
                         "update repro/pipelines.py")
    stages = stages.replace(seeds, "")
    return HEADER + stages.rstrip("\n") + "\n"
