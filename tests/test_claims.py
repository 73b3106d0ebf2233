"""The claims report: verdicts follow the metrics, so changed metrics change the verdicts."""

import copy
import json

import pytest

from conftest import REPO
from repro import claims, evaluate


def _committed() -> dict:
    """The metrics of the committed laptop-scale run, as the claims stage reads them."""
    names = {"curves_run": "transformer_div", "fractions": "s5_fractions", "interventions": "s5_interventions",
             "operations": "operations", "embeddings": "embeddings"}
    return {key: evaluate.read_metrics(REPO / "metrics" / f"{name}.json") for key, name in names.items()}


def _verdicts(metrics: dict) -> dict[str, str]:
    return {c.id: c.verdict for c in claims.assess(**metrics)}


@pytest.fixture(scope="module")
def metrics():
    return _committed()


def test_the_committed_report_is_what_the_committed_metrics_give(metrics):
    """reports/claims.json is regenerated from metrics/, never edited by hand."""
    report = json.loads((REPO / "reports/claims.json").read_text())
    assert {c["id"]: c["verdict"] for c in report["claims"]} == _verdicts(metrics)


def test_a_late_fit_is_not_reproduced(metrics):
    changed = copy.deepcopy(metrics)
    changed["curves_run"]["updates_to_99_train"] = 5000
    assert _verdicts(metrics)["fig1_fits_early"] == claims.REPRODUCED
    assert _verdicts(changed)["fig1_fits_early"] == claims.NOT_REPRODUCED


def _with_runs(metrics: dict, sweep: str, column: str, value: str, **changes) -> dict:
    """A copy of `metrics` where the runs of `sweep` with `column` == `value` take `changes`."""
    changed = copy.deepcopy(metrics)
    for run in changed[sweep]["runs"].values():
        if run[column] == value:
            run.update(changes)
    return changed


def test_a_cube_that_generalizes_is_not_reproduced(metrics):
    changed = _with_runs(metrics, "operations", "operation", "cube_xy2_y", best_val_accuracy=1.0)
    assert _verdicts(metrics)["fig2_cube_never"] == claims.REPRODUCED
    assert _verdicts(changed)["fig2_cube_never"] == claims.NOT_REPRODUCED


def test_weight_decay_that_does_not_help_is_not_reproduced(metrics):
    changed = _with_runs(metrics, "interventions", "intervention", "decay_to_init", best_val_accuracy=1.0)
    assert _verdicts(changed)["fig2_decay_to_init"] == claims.NOT_REPRODUCED


def test_the_paper_setting_makes_the_delay_testable(metrics):
    """Adam at ≥ 10⁵ updates tests the 1000× delay; a short delay there is "not reproduced"."""
    changed = copy.deepcopy(metrics)
    changed["curves_run"]["setting"].update(weight_decay=0.0, budget=1_000_000)
    assert _verdicts(metrics)["fig1_generalizes_late"] == claims.NOT_TESTABLE
    changed["curves_run"]["generalization_delay"] = 8.7
    assert _verdicts(changed)["fig1_generalizes_late"] == claims.NOT_REPRODUCED
    changed["curves_run"]["generalization_delay"] = 900.0
    assert _verdicts(changed)["fig1_generalizes_late"] == claims.REPRODUCED


def test_markdown_lists_every_claim_with_its_figure(metrics):
    found = claims.assess(**metrics)
    text = claims.to_markdown(found, "scale `laptop`")
    for claim in found:
        assert f"`{claim.id}`" in text and f"../figures/{claim.figure}" in text
        assert (REPO / "figures" / claim.figure).is_file()


def test_the_readme_verdicts_are_generated_from_the_report():
    """README.md's verdict table is `repro readme`'s output for the committed report, not typed."""
    readme = (REPO / "README.md").read_text()
    report = json.loads((REPO / "reports/claims.json").read_text())
    assert claims.with_verdicts(readme, report) == readme
    changed = copy.deepcopy(report)
    changed["claims"][0]["verdict"] = claims.NOT_REPRODUCED
    assert claims.with_verdicts(readme, changed) != readme
    with pytest.raises(ValueError, match="markers"):
        claims.with_verdicts("# no markers here\n", report)
