"""README.md's two-scale table of verdicts (`repro readme`, issue 35): generated from both claims reports."""

import copy
import json

import pytest

from conftest import REPO
from repro import claims
from repro.tools import readme

LAPTOP = json.loads((REPO / "reports/claims.json").read_text())
PAPER = json.loads((REPO / "paper/reports/claims.json").read_text())


def _row(text: str, claim: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| [{readme.SHORT[claim]}]"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_the_readme_table_is_generated_from_both_reports():
    """The committed README's table is `repro readme`'s output for the committed reports, not typed."""
    text = (REPO / "README.md").read_text()
    assert readme.with_table(text, LAPTOP, PAPER) == text
    changed = copy.deepcopy(PAPER)
    changed["claims"][0]["verdict"] = claims.NOT_REPRODUCED
    assert readme.with_table(text, LAPTOP, changed) != text
    with pytest.raises(ValueError, match="markers"):
        readme.with_table("# no markers here\n", LAPTOP, PAPER)


def test_every_claim_of_either_report_has_a_row_and_a_short_name():
    table = readme.table(LAPTOP, PAPER)
    bases = {c["id"].split("[")[0] for report in (LAPTOP, PAPER) for c in report["claims"]}
    assert bases <= set(readme.SHORT), "a new claim needs its few words in readme.SHORT"
    rows = [line for line in table.splitlines() if line.startswith("| [")]
    assert len(rows) == len(bases - {"fig5_progress"})  # Figure 5's per-run claim stands for the four measures
    assert set(readme.VERDICTS) == set(claims.VERDICTS)


def test_where_the_scales_differ_the_row_says_why():
    laptop, paper = copy.deepcopy(LAPTOP), copy.deepcopy(PAPER)
    both = [c for c in laptop["claims"] if c["id"] in {p["id"] for p in paper["claims"]}]
    claim = both[0]["id"]
    theirs = next(c for c in paper["claims"] if c["id"] == claim)
    mine = next(c for c in laptop["claims"] if c["id"] == claim)
    mine.update(verdict=claims.REPRODUCED, effect="+30% (per seed: +20%, +40%)", spread="2 seeds")
    theirs.update(verdict=claims.NOT_REPRODUCED, effect="-5%", spread="one run")
    assert _row(readme.table(laptop, paper), claim)[1:] == [
        "**reproduced**", "**not reproduced**", "laptop: +30% (2 seeds); paper: -5% (one run)"]
    theirs.update(verdict=claims.NOT_TESTABLE, measured="—. Not testable: not trained yet (`repro train x`); more")
    assert _row(readme.table(laptop, paper), claim)[3] == "paper: not trained yet"
    mine.update(verdict=claims.NOT_TESTABLE, measured="—. Not testable: not trained yet")
    assert _row(readme.table(laptop, paper), claim)[1:] == ["**not testable**", "**not testable**", ""]
