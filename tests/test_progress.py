"""Progress measures (repro/progress.py) on planted tables, the replay they come from, and the claims on them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import repro, tiny_params
from repro import claims, config, progress, tasks
from repro.config import ConfigError

P = 97


def _group(operation: str = "add", modulus: int = P) -> tuple[progress.Cyclic, tasks.Table]:
    table = tasks.build_table(operation, modulus)
    return progress.cyclic(operation, modulus, table.a, table.b, table.c), table


def _planted(frequencies: dict[int, float], operation: str = "add") -> tuple[np.ndarray, progress.Cyclic, np.ndarray]:
    """Logits Σ_k α_k cos(w_k(s − c)) over every equation and class (Nanda et al.'s algorithm), and the labels."""
    group, table = _group(operation)
    n = group.order
    s = group.s[:, None]
    classes = np.arange(n)[None, :]
    logits = sum(alpha * np.cos(2 * np.pi * k * (s - classes) / n) for k, alpha in frequencies.items())
    full = np.zeros((len(table.c), n))
    full[group.rows] = logits
    return full[group.rows], group, group.answers


def test_a_planted_three_frequency_table_has_exactly_those_key_frequencies():
    logits, group, labels = _planted({3: 4.0, 14: 3.0, 40: 5.0})
    key, chance, shares = progress.key_frequencies(logits, group)
    assert key == [3, 14, 40]
    assert shares[[2, 13, 39]].sum() == pytest.approx(1.0)  # all the (centred) energy lies along s
    assert chance < 0.01


def test_the_restricted_loss_of_a_planted_table_is_its_full_loss():
    logits, group, labels = _planted({3: 4.0, 14: 3.0, 40: 5.0})
    full = progress.cross_entropy(logits, labels)
    assert progress.restricted_loss(logits, labels, group, [3, 14, 40]) == pytest.approx(full, abs=1e-9)
    # Keeping one of the three loses the others' part of the logits: a higher loss.
    assert progress.restricted_loss(logits, labels, group, [3]) > full + 0.1


def test_removing_the_key_frequencies_leaves_chance_and_sparing_them_leaves_the_fit():
    logits, group, labels = _planted({3: 4.0, 14: 3.0, 40: 5.0})
    train = np.arange(len(labels)) % 2 == 0
    assert progress.excluded_loss(logits, labels, train, group, [3, 14, 40]) == pytest.approx(np.log(P), abs=1e-9)
    assert progress.excluded_loss(logits, labels, train, group, [5]) < 1.0


def test_a_random_table_has_no_key_frequency_above_chance():
    group, table = _group()
    logits = np.random.default_rng(1).normal(size=(len(group.rows), P))
    key, chance, shares = progress.key_frequencies(logits, group)
    assert key == []
    assert shares.max() <= chance


def test_a_random_table_with_one_planted_frequency_finds_that_one():
    planted, group, _ = _planted({17: 0.3})
    logits = planted + np.random.default_rng(2).normal(size=planted.shape)
    assert progress.key_frequencies(logits, group)[0] == [17]


def test_discrete_logarithms_map_division_mod_97_onto_subtraction_mod_96_equation_by_equation():
    group, table = _group("div")
    assert group.order == 96 and progress.primitive_root(97) == 5
    label = {int(e): i for i, e in enumerate(group.elements)}  # element -> its discrete logarithm base 5
    assert sorted(label) == list(range(1, 97))
    a, b, c = table.a[group.rows], table.b[group.rows], table.c[group.rows]
    i, j = np.array([label[x] for x in a]), np.array([label[x] for x in b])
    assert np.array_equal(np.array([label[x] for x in c]), (i - j) % 96)
    assert np.array_equal(group.answers, (i - j) % 96) and np.array_equal(group.s, (i - j) % 96)
    assert len(group.rows) == 96 * 96 and (table.a[np.setdiff1d(np.arange(len(table.c)), group.rows)] == 0).all()


@pytest.mark.parametrize("operation, sign", [("add", 1), ("sub", -1), ("mul", 1)])
def test_each_cyclic_table_answers_along_its_direction(operation, sign):
    group, table = _group(operation)
    assert np.array_equal(group.answers, group.s)
    assert len(group.rows) == group.order ** 2 and group.sign == sign


def test_a_table_that_is_no_cyclic_group_is_refused():
    table = tasks.build_table("sq_sum", P)
    with pytest.raises(ConfigError, match="cyclic group"):
        progress.cyclic("sq_sum", P, table.a, table.b, table.c)


def test_the_gini_coefficient_and_the_fourier_norms():
    assert progress.gini(np.ones(48)) == pytest.approx(0.0)
    assert progress.gini(np.eye(48)[0]) == pytest.approx(47 / 48)
    rows = np.cos(2 * np.pi * 5 * np.arange(P) / P)[:, None] * np.ones((1, 4))
    norms = progress.fourier_norms(rows)
    assert np.argmax(norms) == 4 and norms[np.arange(48) != 4].max() < 1e-9


def test_the_phase_rule_places_each_boundary_at_its_first_log_point():
    frame = pd.DataFrame({"update": [0, 10, 100, 1000, 10000], "train_accuracy": [0, 0.5, 1, 1, 1],
                          "val_accuracy": [0, 0, 0.1, 0.5, 1], "val_loss": [2.0, 5, 6, 2, 0.1]})
    # The validation loss below chance (ln 97 = 4.57) at update 0 is before memorization: it does not count.
    assert progress.phases(frame, 97) == {"memorization_ends": 100, "circuit_formation_ends": 1000,
                                          "cleanup_ends": 10000}
    frame["val_accuracy"] = 0.0
    assert progress.phases(frame, 97)["cleanup_ends"] is None


def test_a_progress_list_that_leaves_out_a_cyclic_run_or_names_another_is_refused():
    params = tiny_params()
    config.parse(params)
    with pytest.raises(ConfigError, match="every named run on a cyclic group's table"):
        config.parse({**params, "progress": []})
    with pytest.raises(ConfigError, match="twice"):
        config.parse({**params, "progress": ["tiny", "tiny"]})
    with pytest.raises(ConfigError, match="sweep member"):
        config.parse({**params, "progress": ["tiny", "grid/add-0.5-0-adamw"]})
    with pytest.raises(ConfigError, match="figures.progress"):
        config.parse({**params, "figures": {**params["figures"], "progress": ["nothing"]}})


# --- the claims on the measures ------------------------------------------------------------------------------

def _frame(excluded, norm, train=1.0) -> pd.DataFrame:
    updates = [0, 10, 100, 1000, 10000]
    return pd.DataFrame({"update": updates, "train_loss": [4.6, 3, 0.01, 0.01, 0.01],
                         "train_accuracy": [0, 0.5, 1, train, 1], "val_loss": [4.6, 5, 3, 1, 0.1],
                         "val_accuracy": [0, 0, 0.2, 0.6, 1], "restricted_loss": [4.6, 4, 0.5, 0.3, 0.05],
                         "excluded_loss": excluded, "weight_norm": norm, "share_1": 0.0, "share_2": 0.0,
                         "share_3": 0.0, "share_4": 0.0})


def _summary(key=(1,), share=0.9) -> dict:
    return {"model": "mlp", "operation": "add", "group": "Z_9", "key_frequencies": list(key), "key_share": share,
            "phases": {"memorization_ends": 100, "circuit_formation_ends": 1000, "cleanup_ends": 10000}}


def _verdicts(frame, summary) -> dict[str, str]:
    return {c.id.split("[")[0]: c.verdict for c in claims.mechanism.run_claims("r", frame, summary)}


def test_nanda_claims_hold_on_a_run_that_behaves_as_the_account_says():
    found = _verdicts(_frame([0, 0, 0.01, 0.5, 2.0], [10, 20, 30, 30, 15]), _summary())
    assert found == {"fig5_restricted_early": "reproduced", "fig5_excluded_rises": "reproduced",
                     "fig5_norm_cleanup": "reproduced", "fig5_few_frequencies": "reproduced"}


def test_nanda_claims_fail_on_a_run_that_does_not():
    found = _verdicts(_frame([0, 0, 3.0, 3.1, 3.2], [10, 20, 30, 31, 40]), _summary(key=(1, 2, 3), share=0.3))
    assert found["fig5_excluded_rises"] == found["fig5_norm_cleanup"] == "not reproduced"
    assert found["fig5_few_frequencies"] == "not reproduced"
    assert _verdicts(_frame([0, 0, 0.01, 0.5, 2.0], [10, 20, 30, 30, 15], train=0.9),
                     _summary())["fig5_excluded_rises"] == "not reproduced"  # training accuracy fell


def test_a_weak_effect_is_called_weak_and_not_reproduced():
    claim = {c.id: c for c in claims.mechanism.run_claims("r", _frame([0, 0, 1.0, 1.6, 1.7], [10, 20, 30, 30, 28.5]),
                                                   _summary())}
    assert claim["fig5_excluded_rises[r]"].verdict == "not reproduced" and "weak" in claim["fig5_excluded_rises[r]"].effect
    assert claim["fig5_norm_cleanup[r]"].verdict == "not reproduced" and "weak" in claim["fig5_norm_cleanup[r]"].effect


def _window(excluded: list[float], train: list[float]) -> pd.DataFrame:
    """A run memorized at update 100 and generalized at the last of 12 log points, with these excluded losses
    and training accuracies from update 100 on."""
    updates = [0, 10, *(100 * 2 ** i for i in range(len(excluded)))]
    count = len(updates)
    return pd.DataFrame({"update": updates, "train_loss": 0.01, "train_accuracy": [0, 0.5, *train],
                         "val_loss": np.geomspace(4.6, 0.01, count), "val_accuracy": [*[0.0] * (count - 1), 1.0],
                         "restricted_loss": np.geomspace(4.6, 0.001, count), "excluded_loss": [0, 0, *excluded],
                         "weight_norm": 10.0, "share_1": 0.0, "share_2": 0.0, "share_3": 0.0, "share_4": 0.0})


def test_a_loss_spike_decides_the_excluded_loss_claim_neither_way():
    """transformer_div's window has 3 log points of 29 in loss spikes on one CPU kind, 10 of 32 on another (issue
    33): a spike is left out of the measurement, and neither vetoes a rise nor makes one; a training loss that is
    not low at most of the window's points still fails."""
    summary = {**_summary(), "phases": {"memorization_ends": 100, "circuit_formation_ends": None,
                                        "cleanup_ends": 100 * 2 ** 9}}
    rising, held = [1, 1.2, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5], [1.0] * 10

    def excluded(excluded, train):
        return {c.id: c for c in claims.mechanism.run_claims("r", _window(excluded, train), summary)}["fig5_excluded_rises[r]"]

    assert excluded(rising, held).verdict == "reproduced"
    spiked = held[:4] + [0.77] + held[5:]  # a spike mid-way, where the excluded loss jumps on it
    assert excluded(rising[:4] + [40] + rising[5:], spiked).verdict == "reproduced"
    flat = [1, 1.05, 1.1, 1, 1.05, 1.1, 1, 1.05, 1.1, 1]
    assert excluded(flat[:4] + [40] + flat[5:], spiked).verdict == "not reproduced"  # the spike's 40 is no rise
    fallen = [1.0] * 3 + [0.5, 0.6, 0.7, 0.5, 0.6, 0.7] + [1.0]  # fitted at 4 of 10 points: not most
    claim = excluded(rising, fallen)
    assert claim.verdict == "not reproduced" and "not held" in claim.effect


def test_the_restricted_loss_claim_reads_every_level_and_the_median_decides():
    """mlp_add's ratio was ×2.007 at ln 2 alone and 1.6-1.9 at the other levels (issue 33): the median decides."""
    frame = _frame([0, 0, 0.01, 0.5, 2.0], [10, 20, 30, 30, 15])
    claim = {c.id: c for c in claims.mechanism.run_claims("r", frame, _summary())}["fig5_restricted_early[r]"]
    assert claim.verdict == "reproduced" and "per level 3: 10.00×" in claim.effect
    for level in claims.mechanism.FALLEN_LEVELS:
        assert f"below {level:.2g}:" in claim.measured


# --- the replay: the stage end to end on a tiny run --------------------------------------------------------------

@pytest.mark.slow
def test_progress_replays_the_run_exactly_and_writes_the_same_bytes_twice(workdir):
    repro("generate", cwd=workdir)
    repro("train", "tiny", cwd=workdir)
    first = repro("progress", "tiny", cwd=workdir).stdout
    assert "replay identical" in first
    folder = workdir / "progress" / "tiny"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["replay"] == {"identical": True, "largest_difference": 0.0}
    measures = pd.read_csv(folder / "measures.csv")
    history = pd.read_csv(workdir / "runs" / "tiny" / "history.csv")
    assert measures[history.columns].equals(history)
    assert len([c for c in measures.columns if c.startswith("share_")]) == 11  # Z_23: frequencies 1 … 11
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    repro("progress", "tiny", cwd=workdir)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    repro("figures", "progress", cwd=workdir)
    assert (workdir / "figures" / "fig5_progress.png").stat().st_size > 10_000


def test_progress_refuses_a_run_it_does_not_list_and_one_not_trained(workdir):
    repro("generate", cwd=workdir)
    result = repro("progress", "grid/add-0.5-0-adamw", cwd=workdir, check=False)
    assert result.returncode != 0 and "not listed under params.yaml's `progress`" in result.stderr
    result = repro("progress", "tiny", cwd=workdir, check=False)
    assert result.returncode != 0 and "repro train tiny" in result.stderr
    assert not (workdir / "progress").exists()


def test_a_damaged_measures_file_says_how_to_remake_it(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "summary.json").write_text("{", encoding="utf-8")
    (folder / "measures.csv").write_text("update\n0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="repro progress tiny"):
        progress.read(folder, "tiny")
    (folder / "summary.json").write_text(json.dumps({"phases": {}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="repro progress tiny"):
        progress.read(folder, "tiny")


def test_the_laptop_params_measure_every_cyclic_named_run():
    from conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(params["progress"]) == {"transformer_div", "mlp_add", "mlp_add_no_decay"}
