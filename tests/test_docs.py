"""The repository explains what it cites: every "PAPER.md §N" names a section of PAPER.md."""

import re

from conftest import REPO

SOURCES = [p for pattern in ("repro/*.py", "tests/*.py", "*.yaml", "paper/*.yaml", "*.md", "Dockerfile")
           for p in REPO.glob(pattern)]


def test_every_citation_of_the_paper_has_its_section():
    sections = set(re.findall(r"^## §(\d+)", (REPO / "PAPER.md").read_text(), flags=re.MULTILINE))
    cited = {(path.name, n) for path in SOURCES for n in re.findall(r"PAPER\.md §(\d+)", path.read_text())}
    assert cited, "nothing cites PAPER.md"
    assert {(name, n) for name, n in cited if n not in sections} == set()


def test_nothing_cites_notes_outside_the_repository():
    this = "paper" + "-spec"  # the team's notes, not part of the repository
    assert [p.name for p in SOURCES if this in p.read_text()] == []
