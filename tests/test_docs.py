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


def test_every_page_and_section_the_tree_points_to_exists():
    """README's links, docs/ pages named anywhere, and references to a README section all lead somewhere."""
    texts = {path: path.read_text() for path in [*SOURCES, *(REPO / "docs").glob("*.md"), *(REPO / "paper").glob("*.sh"),
                                                 *(REPO / "paper").glob("*/README.md"), REPO / "dvc.yaml"]}
    named = {page for text in texts.values() for page in re.findall(r"docs/([\w-]+\.md)", text)}
    assert named and {page for page in named if not (REPO / "docs" / page).is_file()} == set()
    for path in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\((?!https?:|#)([^)#]+)", texts[path]):
            assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"
    headings = set(re.findall(r"^#+ (.+)$", texts[REPO / "README.md"], flags=re.MULTILINE))
    cited = {section for text in texts.values() for section in re.findall(r'README, "([^"(]+)"', text)}
    assert cited - headings == set()


def test_the_readme_stays_short_and_keeps_its_results_first():
    """A newcomer's page: about a third of the 751-line notebook it was (issue 25); claims and figures early."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 260
    # The two scales' verdicts first (issue 35), then the paper scale's figures (issue 23), then the laptop's,
    # then how to use it; and no slice-by-slice progress: that lives in paper/STATUS.md, linked once.
    assert (readme.index("<!-- claims") < readme.index("![Figure 1 (left), paper scale](paper/figures/")
            < readme.index("![Figure 1 (left)](figures/") < readme.index("## Using it"))
    assert readme.count("paper/STATUS.md") == 1 and " slices" not in readme
