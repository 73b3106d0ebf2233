"""Training: exact repeatability across processes, exact resume after a kill, and real grokking."""

import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, repro, tiny_params
from repro import config, datasets, evaluate, train

OUTPUTS = ("history.csv", "model.weights.h5", "run.json")


def _prepare(root, **run_overrides):
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(**run_overrides)))
    repro("generate", cwd=root)
    return root


def test_log_schedule_is_log_spaced_and_ends_at_the_budget():
    points = train.log_schedule(10_000, 50)
    assert points[0] == 0 and points[-1] == 10_000 and points == sorted(set(points))
    assert points[1:6] == [1, 2, 3, 4, 5]  # dense early, where the curves move fastest


def test_batch_is_capped_at_half_the_training_set():
    run = config.parse(tiny_params()).run("tiny")
    assert train.batch_size(run, 264) == 132
    assert train.batch_size(run, 5000) == 512


def test_stable_argsort_matches_numpys_stable_argsort_on_ties():
    keys = np.random.default_rng(0).integers(0, 5, size=(3, 200)).astype(np.float32) / 5  # 0.0 included
    assert np.array_equal(train.stable_argsort(keys), np.argsort(keys, axis=-1, kind="stable"))


def test_each_epoch_is_a_fresh_permutation_and_calls_do_not_change_training():
    run = config.parse(tiny_params()).run("tiny")
    dataset = datasets.make(run.dataset)
    whole = train.Trainer(run, dataset)
    orders = whole.shuffles(0)
    assert orders.shape == (train.EPOCHS_PER_CALL, whole.num_train)
    assert all(np.array_equal(np.sort(order), np.arange(whole.num_train)) for order in orders)
    assert len({order.tobytes() for order in orders}) == train.EPOCHS_PER_CALL
    whole.train_updates(0, 100)
    pieces = train.Trainer(run, dataset)
    per_block = pieces.batches_per_epoch * train.EPOCHS_PER_CALL
    for start, stop in [(0, 7), (7, per_block + 3), (per_block + 3, 100)]:  # across a block's end
        pieces.train_updates(start, stop)
    assert all(np.array_equal(a, b) for a, b in zip(whole.state(), pieces.state()))


def test_two_processes_give_byte_identical_outputs(tmp_path):
    outputs = []
    for name in ("first", "second"):
        root = _prepare(tmp_path / name)
        repro("train", "tiny", cwd=root)
        outputs.append({f: (root / "runs/tiny" / f).read_bytes() for f in OUTPUTS})
    assert outputs[0] == outputs[1]
    history = pd.read_csv(tmp_path / "first/runs/tiny/history.csv")
    assert list(history.columns) == evaluate.HISTORY_COLUMNS
    assert history["update"].iloc[-1] == 300 and history["train_accuracy"].iloc[-1] > history["train_accuracy"].iloc[0]


def test_different_seed_gives_a_different_run(tmp_path):
    first = _prepare(tmp_path / "a")
    second = _prepare(tmp_path / "b", seed=1)
    for root in (first, second):
        repro("train", "tiny", cwd=root)
    assert (first / "runs/tiny/history.csv").read_bytes() != (second / "runs/tiny/history.csv").read_bytes()


def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    long = dict(updates=20_000, log_points=60)
    whole = _prepare(tmp_path / "whole", **long)
    repro("train", "tiny", cwd=whole)

    broken = _prepare(tmp_path / "broken", **long)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "repro", "train", "tiny"], cwd=broken, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = broken / "checkpoints/tiny.npz"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # let it get further, mid-way between checkpoints
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the run should have checkpointed before it was killed"
    assert not (broken / "runs/tiny").exists(), "a killed run must leave no finished-looking output"

    resumed = repro("train", "tiny", cwd=broken)
    assert "resuming from update" in resumed.stderr
    for name in OUTPUTS:
        assert (broken / "runs/tiny" / name).read_bytes() == (whole / "runs/tiny" / name).read_bytes(), name
    assert not checkpoint.exists()


def test_a_checkpoint_of_other_parameters_is_not_resumed(tmp_path):
    root = _prepare(tmp_path / "run")
    run = config.parse(tiny_params()).run("tiny")
    other = config.parse(tiny_params(learning_rate=0.5)).run("tiny")
    dataset = datasets.load(root / "data/add_23", run.dataset)
    checkpoint = root / "checkpoints/tiny.npz"
    trainer = train.Trainer(other, dataset)
    train._save_checkpoint(checkpoint, other.fingerprint(), [[0.0, 1, 2, 3, 4, 5]], trainer.state())
    assert train._load_checkpoint(checkpoint, run.fingerprint()) is None
    assert train._load_checkpoint(checkpoint, other.fingerprint()) is not None


@pytest.mark.slow
def test_the_mlp_really_groks(tmp_path):
    """The shipped MLP run (x + y mod 97, 50% data): training fits long before validation generalizes."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = config.parse(raw)
    run = cfg.run("mlp_add")
    dataset = datasets.make(run.dataset)
    history = pd.DataFrame(train.train(run, dataset, tmp_path / "run", tmp_path / "ckpt.npz"),
                           columns=evaluate.HISTORY_COLUMNS)
    metrics = evaluate.summarize(history)
    assert metrics["final"]["train_accuracy"] >= 0.99
    assert isinstance(metrics["updates_to_99_val"], int), "validation accuracy never reached 99%"
    # Grokking: validation reaches 99% several times later than training did...
    assert metrics["updates_to_99_val"] >= 3 * metrics["updates_to_99_train"]
    # ...and was still far from generalizing when training had already fit.
    at_fit = history.loc[history["update"] == metrics["updates_to_99_train"], "val_accuracy"].item()
    assert at_fit < 0.5


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stream, ci, shown", [(_Terminal, None, True), (_Terminal, "true", False),
                                               (io.StringIO, None, False)])
def test_progress_shows_on_a_terminal_only_outside_ci(monkeypatch, stream, ci, shown):
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.delenv("CI", raising=False)
    if ci:
        monkeypatch.setenv("CI", ci)
    progress = train.Progress("tiny", 1000, 0)
    progress.update(1000, 1.0, 0.5)
    text = err.getvalue()
    assert ("1,000/1,000 updates (100%)" in text and "updates/s" in text and "left" in text) == shown
    assert shown or text == ""
