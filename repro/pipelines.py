"""The paper scale's pipeline, paper/dvc.yaml, is the laptop's dvc.yaml read from one folder down.

DVC runs a stage in the folder of its dvc.yaml, and every `repro` command
reads params.yaml and writes data/, runs/, metrics/… relative to the folder
it runs in. So the paper scale needs the same stages with the code's paths
one level up, and nothing else: `paper_pipeline` derives it, a test keeps
the committed file equal to it, and `repro pipeline` rewrites it.
"""

from __future__ import annotations

import re

HEADER = """# Generated from ../dvc.yaml by `repro pipeline` (a test checks it): the same stages, run in paper/
# with paper/params.yaml, so the paper scale's results live under paper/ beside the laptop's.
# Run from this folder (README, "The paper scale"). Edit ../dvc.yaml, not this file.
"""


def paper_pipeline(laptop: str) -> str:
    """paper/dvc.yaml's text from dvc.yaml's: code paths one folder up, no `plots:` (they name laptop runs)."""
    stages = laptop[:laptop.index("\nplots:")] if "\nplots:" in laptop else laptop
    lines = stages.rstrip("\n").split("\n")
    while lines and lines[-1].startswith("#"):  # the comment that introduces `plots:`
        lines.pop()
    stages = "\n".join(lines)
    stages = re.sub(r"^(\s+- )repro/", r"\1../repro/", stages, flags=re.MULTILINE)
    return HEADER + stages.rstrip("\n") + "\n"
