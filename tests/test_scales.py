"""`repro scale`: the paper's scale is one command away, and back again byte for byte."""

import shutil

import pytest

from conftest import REPO
from repro import config, scales


@pytest.fixture
def project(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path)
    shutil.copytree(REPO / "scales", tmp_path / "scales")
    return tmp_path


def test_laptop_is_what_params_yaml_ships_with(project):
    before = (project / "params.yaml").read_bytes()
    scales.apply("laptop", project / "params.yaml", project / "scales")
    assert (project / "params.yaml").read_bytes() == before


def test_paper_and_back(project):
    before = (project / "params.yaml").read_bytes()
    paper = scales.apply("paper", project / "params.yaml", project / "scales")
    assert paper.scale == "paper"
    transformer = paper.runs["transformer_div"].training
    assert (transformer.updates, transformer.weight_decay) == (1_000_000, 0.0)  # Figure 1: Adam, 10⁶ updates
    for sweep in paper.sweeps.values():
        assert sweep.seeds == (0, 1, 2)
        assert paper.runs[sweep.members[0]].model.kind == "transformer"
        assert paper.runs[sweep.members[0]].training.updates >= 100_000
    assert "# " in (project / "params.yaml").read_text()  # comments kept
    scales.apply("laptop", project / "params.yaml", project / "scales")
    assert (project / "params.yaml").read_bytes() == before


def test_unknown_scale_names_the_known_ones(project):
    before = (project / "params.yaml").read_bytes()
    with pytest.raises(config.ConfigError, match="laptop, paper"):
        scales.apply("huge", project / "params.yaml", project / "scales")
    assert (project / "params.yaml").read_bytes() == before


def test_a_scale_that_breaks_params_leaves_them_untouched(project):
    before = (project / "params.yaml").read_bytes()
    (project / "scales/broken.yaml").write_text("training: {updates: many}\n")
    with pytest.raises(config.ConfigError, match="updates"):
        scales.apply("broken", project / "params.yaml", project / "scales")
    assert (project / "params.yaml").read_bytes() == before
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml", "scales"]


def test_estimate_counts_full_batch_updates_by_their_size(project):
    from repro import bench

    paper = scales.apply("paper", project / "params.yaml", project / "scales")
    groups = bench.estimate(paper, {"transformer": {1: 36.0, 8: 80.0}, "mlp": {1: 1000.0}})
    assert groups["transformer_div"]["hours"] == pytest.approx(1_000_000 / 36.0 / 3600)
    # A group of 24 runs trains at the rate measured for 8 runs together (the largest size measured below 24).
    fractions = paper.sweeps["s5_fractions"]
    assert groups["s5_fractions"]["groups"] == 1 and groups["s5_fractions"]["runs"] == len(fractions.members)
    assert groups["s5_fractions"]["hours"] == pytest.approx(
        sum(paper.runs[n].training.updates for n in fractions.members) / 80.0 / 3600)
    full = next(paper.runs[n] for n in paper.sweeps["s5_interventions"].members if paper.runs[n].training.full_batch)
    # A full-batch update on 14,400 · fraction equations costs that many / 512 minibatch updates.
    assert bench.batch_updates(full) == pytest.approx(
        full.training.updates * round(full.dataset.train_fraction * 14_400) / 512)
