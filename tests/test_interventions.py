"""The interventions of Figure 2 (left): each is a real option that changes training, and each resumes exactly."""

import numpy as np
import pytest

from conftest import tiny_params
from repro import config, datasets, train

# One setting per intervention of PAPER.md §3 that is not a plain optimiser value.
INTERVENTIONS = {
    "full_batch": {"full_batch": True},
    "dropout": {"dropout": 0.1},
    "update_noise": {"update_noise": 0.01},
    "weight_noise": {"weight_noise": 0.05},
    "decay_to_init": {"decay_towards": "init"},
}


def _run(**overrides):
    return config.parse(tiny_params(**overrides)).run("tiny")


@pytest.fixture(scope="module")
def dataset():
    return datasets.make(_run().dataset)


def _train(run, dataset, chunks, state=None):
    """Trains in the given chunks of updates (after restoring `state`); returns (metrics, state)."""
    trainer = train.GroupTrainer([run], [dataset])
    start = 0
    if state is not None:
        start, state = state
        trainer.restore(state)
    for count in chunks:
        trainer.train_updates(start, start + count)
        start += count
    return trainer.evaluate()[0], (start, trainer.state_arrays())


def test_one_group_trains_runs_of_different_interventions_as_each_alone():
    """Each run's rate, noise and decay are its own values in the shared program.

    On a CPU each run is its own call, so to the bit. On a GPU the group is one
    program, which XLA fuses differently from one of one run, and reductions
    may add in another order (seen: the weight norm's last bit); bytes are
    promised per group there.

    (Runs of one batch width: a wider batch in the group pads the others, and a dropout mask of another
    shape draws other numbers.)
    """
    base = dict(tiny_params()["training"])
    runs = [_run(**INTERVENTIONS[name]) for name in ("dropout", "update_noise", "weight_noise", "decay_to_init")]
    runs = [config.RunConfig(f"r{i}", None, r.dataset, r.model, r.training) for i, r in enumerate(runs)]
    trainer = train.GroupTrainer(runs, [datasets.make(r.dataset) for r in runs])
    trainer.train_updates(0, 40)
    together = trainer.evaluate()
    for i, run in enumerate(runs):
        alone, _ = _train(run, datasets.make(run.dataset), [40])
        if train.backend.accelerator() == "cpu":
            assert np.array_equal(together[i], alone), run.training
        np.testing.assert_allclose(together[i], alone, rtol=1e-5, atol=1e-6, err_msg=str(run.training))
    assert base  # the tiny defaults are what every run started from


@pytest.fixture(scope="module")
def baseline(dataset):
    return _train(_run(), dataset, [150])[0]


@pytest.mark.parametrize("name", INTERVENTIONS)
def test_each_intervention_changes_training_and_still_learns(name, dataset, baseline):
    metrics, _ = _train(_run(**INTERVENTIONS[name]), dataset, [150])
    assert not np.array_equal(metrics, baseline), f"{name} had no effect"
    train_loss, train_accuracy = metrics[0], metrics[1]
    assert np.isfinite(metrics).all()
    assert train_accuracy > 0.2, f"{name}: training accuracy {train_accuracy:.2f} after 150 updates"


def test_full_batch_means_the_whole_training_set(dataset):
    run = _run(full_batch=True)
    assert train.batch_size(run, 264) == 264
    assert train.batch_size(run, 5000) == 5000


@pytest.mark.parametrize("name", ["dropout", "update_noise", "weight_noise", "decay_to_init"])
def test_a_resumed_intervention_continues_exactly(name, dataset):
    """Random noise and the initial weights are part of the state: a restored trainer carries on identically."""
    run = _run(**INTERVENTIONS[name])
    whole, _ = _train(run, dataset, [60, 60])
    _, halfway = _train(run, dataset, [60])
    resumed, _ = _train(run, dataset, [60], state=halfway)
    assert np.array_equal(whole, resumed)


def test_unknown_intervention_values_are_refused():
    with pytest.raises(config.ConfigError, match="decay_towards"):
        _run(decay_towards="one")
    with pytest.raises(config.ConfigError, match="dropout"):
        _run(dropout=1.5)
