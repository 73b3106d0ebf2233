import copy
import json

import pytest
import yaml

from conftest import REPO, tiny_params
from repro import config
from repro.config import ConfigError


def test_the_shipped_params_file_is_valid():
    cfg = config.load(REPO / "params.yaml")
    assert set(cfg.figures.curves) <= set(cfg.runs)
    transformer = cfg.run("transformer_div")
    interventions = cfg.sweeps[cfg.figures.interventions].interventions
    assert len(interventions) == 9  # PAPER.md §3
    assert transformer.training.weight_decay == 1.0 and transformer.training.beta_2 == 0.98


def test_run_overrides_sit_on_the_training_defaults():
    run = config.parse(tiny_params(learning_rate=0.003)).run("tiny")
    assert run.training.learning_rate == 0.003
    assert run.training.weight_decay == 1.0  # from `training`


def test_checkpoint_cadence_is_outside_what_determines_a_run():
    """execution.checkpoint_seconds changes no run (so no run.json, no DVC stage); the old place says where it went."""
    raw = tiny_params()
    raw["execution"]["checkpoint_seconds"] = 99
    base, other = config.parse(tiny_params()), config.parse(raw)
    assert other.execution.checkpoint_seconds == 99 and other.runs == base.runs
    assert "checkpoint_seconds" not in json.dumps(base.run("tiny").to_dict())
    assert base.run("tiny").fingerprint() != config.parse(tiny_params(seed=1)).run("tiny").fingerprint()
    old_place = tiny_params()
    old_place["training"]["checkpoint_seconds"] = 5
    with pytest.raises(config.ConfigError, match="now execution.checkpoint_seconds"):
        config.parse(old_place)


def _broken(edit):
    raw = copy.deepcopy(tiny_params())
    edit(raw)
    return raw


@pytest.mark.parametrize("edit,message", [
    (lambda r: r["training"].update(updates="ten"), r"training.updates must be an integer, got 'ten'"),
    (lambda r: r["training"].update(learning_rate=-1), r"learning_rate must be positive"),
    (lambda r: r["training"].update(beta_2=1.0), r"beta_2 must lie in \[0, 1\)"),
    (lambda r: r["training"].update(lerning_rate=0.1), r"unknown key\(s\) lerning_rate"),
    (lambda r: r["datasets"]["add_23"].update(operation="pow"), r"unknown operation 'pow'"),
    (lambda r: r["datasets"]["add_23"].update(train_fraction=1.0), r"strictly between 0 and 1"),
    (lambda r: r["datasets"]["add_23"].update(operation="div", modulus=24), r"modulus 24 is not prime"),
    (lambda r: r["runs"]["tiny"].update(dataset="nope"), r"'nope' is not in datasets"),
    (lambda r: r["runs"]["tiny"].pop("model"), r"missing required key 'model'"),
    (lambda r: r["runs"].update({".": dict(r["runs"]["tiny"])}), r"runs: '\.' is not a usable name"),
    (lambda r: r["runs"].update({"": dict(r["runs"]["tiny"])}), r"runs: '' is not a usable name"),
    (lambda r: r["runs"].update({"../x": dict(r["runs"]["tiny"])}), r"runs: '\.\./x' is not a usable name"),
    (lambda r: r["sweeps"].update({"a/b": dict(r["sweeps"]["grid"])}), r"sweeps: 'a/b' is not a usable name"),
    (lambda r: r["datasets"].update({"..": dict(r["datasets"]["add_23"])}), r"datasets: '\.\.' is not a usable"),
    (lambda r: r["models"]["mlp"].update(kind="cnn"), r"kind must be 'transformer' or 'mlp'"),
    (lambda r: r.pop("training"), r"missing section 'training'"),
    (lambda r: r["figures"].update(curves=["ghost"]), r"'ghost' is not in runs"),
    (lambda r: r["training"].update(full_batch="yes"), r"training.full_batch must be true or false"),
    (lambda r: r["training"].update(dropout=1.0), r"dropout must lie in \[0, 1\)"),
    (lambda r: r["training"].update(decay_towards="one"), r"decay_towards must be 'zero' or 'init'"),
    (lambda r: r["interventions"].update(bad={"update_noise": -1.0}), r"interventions.bad.update_noise must not be negative"),
    (lambda r: r["sweeps"]["grid"].update(interventions=["ghost"]), r"'ghost' is not in interventions"),
    # issue 33: "big-adamw" was accepted, then read back as "adamw" and pooled with it
    (lambda r: r["interventions"].update({"big-adamw": {"weight_decay": 2.0}}), r"may not hold '-'.*'big_adamw'"),
    (lambda r: r["training"].update(seed=2 ** 31), r"training.seed must be below 2\^31"),
    (lambda r: r["training"].update(batch_order="random"), r"batch_order must be one of epochs, official, replacement"),
    (lambda r: r["training"].update(full_batch=True, batch_order="replacement"), r"full_batch .* means nothing there"),
    (lambda r: r["models"]["mlp"].update(sequence="official"), r"sequence 'official' is a transformer's input"),
    (lambda r: r.update(figures="none"), r"progress: a file with `figures: none` has no pipeline"),
    (lambda r: r["sweeps"]["grid"].update(fractions=[0.5, 0.5]), r"lists an item twice"),
    (lambda r: r["sweeps"]["grid"].update(fractions=[1.5]), r"strictly between 0 and 1"),
    (lambda r: r["sweeps"]["grid"].pop("seeds"), r"missing required key\(s\) seeds"),
    (lambda r: r["figures"].update(embeddings=["tiny", "grid/add-0.5-0-adamw", "grid/add-0.8-0-adamw"]), r"must name an S5 run"),
    (lambda r: (r["sweeps"].update(other=dict(r["sweeps"]["grid"])),
                r["figures"].update(embeddings=["other/s5_mul-0.8-0-adamw", "tiny", "grid/add-0.5-0-adamw"])),
     r"embeddings\[0\] \(other/s5_mul-0.8-0-adamw\) must be a member of the sweep figures.fractions .* or a named run"),
    (lambda r: r["sweeps"]["grid"].update(keep_weights="some"), r"keep_weights must be 'all', 'none' or a list"),
    (lambda r: r["sweeps"]["grid"].update(keep_weights=["add-0.6-0-adamw"]),
     r"'add-0.6-0-adamw' is not a member of the sweep; .* for example s5_mul-0.5-0-adamw"),
    (lambda r: r["sweeps"]["grid"].update(keep_weights="none"),
     r"Figure 3 reads the weights of grid/s5_mul-0.8-0-adamw, which sweeps.grid.keep_weights does not keep; "
     r"add 's5_mul-0.8-0-adamw'"),
])
def test_mistakes_are_named_with_their_key(edit, message):
    with pytest.raises(ConfigError, match=message):
        config.parse(_broken(edit))


def test_sweeps_expand_into_named_runs():
    cfg = config.parse(tiny_params())
    sweep = cfg.sweep("grid")
    assert len(sweep.members) == 2 * 2 * 1 * 2
    run = cfg.run("grid/add-0.8-0-minibatch_adam")
    assert (run.dataset.operation, run.dataset.train_fraction, run.dataset.modulus) == ("add", 0.8, 23)
    assert run.training.weight_decay == 0.0 and run.training.updates == 100  # intervention over sweep over defaults
    assert cfg.run("grid/add-0.8-0-adamw").training.weight_decay == 1.0


def test_groups_are_per_seed_and_full_batch_runs_per_fraction_too():
    """A group fits a lent GPU lease: one seed. A group's batches are padded to its widest on a GPU, and a
    full-batch run's batch is its training set: one fraction."""
    raw = tiny_params()
    raw["interventions"]["full_batch_adam"] = {"weight_decay": 0.0, "full_batch": True}
    raw["sweeps"]["grid"]["interventions"].append("full_batch_adam")
    raw["sweeps"]["grid"]["seeds"] = [0, 1]
    cfg = config.parse(raw)
    assert cfg.group("grid/add-0.8-0-full_batch_adam").name == "grid/add-0.8-full_batch_adam-seed0"
    assert cfg.group("grid/add-0.8-0-minibatch_adam").members == ("grid/add-0.5-0-minibatch_adam",
                                                                  "grid/add-0.8-0-minibatch_adam")
    assert cfg.group("grid/add-0.8-1-minibatch_adam").name == "grid/add-minibatch_adam-seed1"
    assert cfg.run("grid/add-0.8-0-full_batch_adam").directory == \
        "grid/add-0.8-full_batch_adam-seed0/add-0.8-0-full_batch_adam"
    paper = config.load(REPO / "paper" / "params.yaml")
    sizes = sorted(len(paper.groups[g].members) for g in paper.groups if g.startswith("s5_interventions/"))
    assert sizes == [1] * 48 + [8] * 21  # 8 fractions a seed; each full-batch fraction and seed alone
    assert sorted({len(paper.groups[g].members) for g in paper.groups if g.startswith("s5_fractions/")}) == [20]


def test_a_sweep_keeps_the_weights_it_lists():
    """All by default (the laptop scale); the paper scale keeps Figure 3's S5 run's and named runs' alone."""
    cfg = config.parse(tiny_params())
    assert all(cfg.keeps_weights(run) for run in cfg.runs.values())
    raw = tiny_params()
    raw["sweeps"]["grid"]["keep_weights"] = ["s5_mul-0.8-0-adamw", "add-0.5-0-adamw"]
    cfg = config.parse(raw)
    assert {name for name, run in cfg.runs.items() if cfg.keeps_weights(run)} == {
        "tiny", "grid/s5_mul-0.8-0-adamw", "grid/add-0.5-0-adamw"}
    paper = config.load(REPO / "paper" / "params.yaml")
    kept = {name for name, run in paper.runs.items() if paper.keeps_weights(run)}
    assert kept == {*(n for n in paper.runs if "/" not in n), *paper.figures.embeddings}
    assert len(kept) == 6 and len(paper.runs) == 984  # 978 sweep members and 6 named runs


def test_unparsable_yaml_is_reported(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("runs: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(path)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "params.yaml")


def test_nan_and_infinite_numbers_are_refused():
    import math

    import pytest

    from conftest import tiny_params
    from repro import config

    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(config.ConfigError, match="learning_rate must be a finite number"):
            config.parse(tiny_params(learning_rate=bad))


def _decay_seeds(**sweep) -> dict:
    """tiny_params with Figure 3's x + y pair (tiny with weight decay, tiny_adam without) and a sweep `again`
    repeating it at seed 1."""
    raw = tiny_params()
    raw["runs"]["tiny_adam"] = {"dataset": "add_23", "model": "mlp", "weight_decay": 0.0}
    raw["sweeps"]["again"] = {"model": "mlp", "modulus": 23, "operations": ["add"], "fractions": [0.5], "seeds": [1],
                              "interventions": ["adamw", "minibatch_adam"], "training": {}, **sweep}
    raw["figures"].update(embeddings=["grid/s5_mul-0.8-0-adamw", "tiny", "tiny_adam"], decay_seeds="again")
    raw["progress"] = ["tiny", "tiny_adam"]
    return raw


def test_decay_seeds_repeat_figure_3s_pair_at_other_seeds():
    cfg = config.parse(_decay_seeds())
    assert cfg.figures.decay_seeds == "again"
    assert config.decay_pairs(cfg.sweeps["again"], cfg.figures.embeddings, cfg.runs) == {
        1: ("again/add-0.5-1-adamw", "again/add-0.5-1-minibatch_adam")}
    assert config.parse(tiny_params()).figures.decay_seeds is None  # one run each, as the paper scale
    laptop = config.load(REPO / "params.yaml")
    assert sorted(config.decay_pairs(laptop.sweeps[laptop.figures.decay_seeds], laptop.figures.embeddings,
                                     laptop.runs)) == list(range(1, 16))


@pytest.mark.parametrize("sweep, figures, message", [
    ({"seeds": [0, 1]}, {}, r"repeats seed 0, which tiny and tiny_adam already are"),
    ({"training": {"updates": 200}}, {}, r"again/add-0.5-1-adamw is not tiny or tiny_adam at another seed"),
    ({"fractions": [0.8]}, {}, r"is not tiny or tiny_adam at another seed"),
    ({"interventions": ["adamw"]}, {}, r"seed 1 has no member repeating tiny_adam"),
    ({"keep_weights": "none"}, {}, r"reads the weights of again/add-0.5-1-adamw, which sweeps.again.keep_weights"),
    ({}, {"decay_seeds": "ghost"}, r"figures.decay_seeds: 'ghost' is not in sweeps"),
    ({}, {"embeddings": ["grid/s5_mul-0.8-0-adamw", "tiny_adam", "tiny"]}, r"with weight decay, then without"),
])
def test_decay_seeds_that_repeat_something_else_are_refused(sweep, figures, message):
    raw = _decay_seeds(**sweep)
    raw["figures"].update(figures)
    with pytest.raises(ConfigError, match=message):
        config.parse(raw)


def test_the_paper_scale_refuses_decay_seeds():
    """paper/dvc.yaml's embeddings stage has no input for them (repro/pipelines.py): one run each, as the paper."""
    raw = _decay_seeds()
    raw["scale"] = "paper"
    with pytest.raises(ConfigError, match=r"the paper scale decides Figure 3's claims on one run each"):
        config.parse(raw)
