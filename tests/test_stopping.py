"""Early stopping (TrainingConfig.stop_after): a decided run stops, the rest of its group trains on, compacted,
and no run's numbers depend on who else was stacked with it or on where training was interrupted."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, tiny_params
from repro import backend, config, datasets, history_csv, run_folder, runner, train

STOP_AFTER = 3


def _params(stop_after: int = STOP_AFTER) -> dict:
    """x + y mod 23 at 30% and 90% of the table: at 90% the MLP generalizes in about 700 updates, at 30% not in
    3,000, so one run of the group stops by its rule and the other trains its whole budget."""
    raw = tiny_params()
    raw["models"]["mlp"]["hidden"] = 128
    raw["interventions"]["stop"] = {"stop_after": stop_after}
    grid = raw["sweeps"]["grid"]
    grid.update(fractions=[0.3, 0.9], interventions=["adamw", "stop"])
    grid["training"].update(updates=3000, log_points=40)
    raw["figures"]["embeddings"] = ["grid/s5_mul-0.9-0-adamw", "tiny", "grid/add-0.3-0-adamw"]  # none stops early
    return raw


def _runs(name: str = "grid/add-stop-seed0", stop_after: int = STOP_AFTER):
    cfg = config.parse(_params(stop_after))
    runs = [cfg.runs[member] for member in cfg.group(name).members]
    return runs, [datasets.make(run.dataset) for run in runs]


def _train(tmp_path: Path, label: str, runs, data, stop=None):
    out, checkpoints = tmp_path / label, tmp_path / f"{label}-checkpoints"
    trained = runner.train_groups("grid", [(runs[0].group, runs, data)], out, checkpoints, stop=stop)
    return trained, out / Path(runs[0].group).relative_to("grid")


def _outputs(folder: Path) -> dict[str, bytes]:
    found = {}
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        found[f"{run_dir.name}/history.csv"] = (run_dir / "history.csv").read_bytes()
        found[f"{run_dir.name}/run.json"] = (run_dir / "run.json").read_bytes()
        found[f"{run_dir.name}/weights"] = run_folder.weights_digest(_weights(run_dir / run_folder.WEIGHTS))
    return found


def _weights(path: Path) -> list[np.ndarray]:
    import h5py

    arrays = []
    with h5py.File(path, "r") as weights:
        weights.visititems(lambda _, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The group on a CPU: each run its own shard."""
    tmp_path = tmp_path_factory.mktemp("alone")
    runs, data = _runs()
    trained, folder = _train(tmp_path, "alone", runs, data)
    return runs, trained, folder


def test_a_decided_run_stops_where_its_rule_says_and_the_other_trains_its_budget(alone):
    runs, trained, folder = alone
    low, high = trained.histories[0]
    assert low[-1, 0] == 3000 and history_csv.decided_at(low, STOP_AFTER) is None
    assert high[-1, 0] < 1500 and history_csv.decided_at(high, STOP_AFTER) == len(high) - 1
    assert history_csv.decided_at(high[:-1], STOP_AFTER) is None  # not a log point earlier
    record = json.loads((folder / "add-0.9-0-stop/run.json").read_text())
    assert record[run_folder.STOPPED] == {"update": int(high[-1, 0]), "budget": 3000,
                                          "rule": history_csv.stopping_rule(STOP_AFTER)}
    assert run_folder.STOPPED not in json.loads((folder / "add-0.3-0-stop/run.json").read_text())
    # Read back as a whole result, by the same rule; the weights are those at the stop.
    read = history_csv.read(folder / "add-0.9-0-stop/history.csv", runs[1])
    assert int(read["update"].iloc[-1]) == int(high[-1, 0])
    assert (folder / "add-0.9-0-stop" / run_folder.WEIGHTS).is_file()


def test_stopping_changes_nothing_before_the_stop(alone, tmp_path):
    """The same run without the rule (its own fingerprint) logs the same rows up to the stop, bit for bit."""
    _, trained, _ = alone
    runs, data = _runs("grid/add-adamw-seed0")
    whole = runner.train_groups("grid", [(runs[0].group, runs[1:], data[1:])], tmp_path / "o", tmp_path / "c")
    stopped = trained.histories[0][1]
    assert np.array_equal(whole.histories[0][0][: len(stopped)], stopped)
    assert len(whole.histories[0][0]) > len(stopped)


def test_a_history_that_goes_past_its_rule_is_refused(alone, tmp_path):
    runs, _, folder = alone
    never_stopped = _runs("grid/add-adamw-seed0")[0][1]
    text = (folder / "add-0.9-0-stop/history.csv").read_text()
    rows = text.splitlines()
    following = history_csv.log_schedule(runs[1].training.updates, runs[1].training.log_points)[len(rows) - 1]
    longer = text + rows[-1].replace(rows[-1].split(",")[0], str(following), 1) + "\n"  # the next logged update
    path = tmp_path / "history.csv"
    path.write_text(longer)
    with pytest.raises(config.ConfigError, match="goes on past update"):
        history_csv.read(path, runs[1])
    # The same file cut short before the rule fired is an unfinished run.
    path.write_text("".join(text.splitlines(keepends=True)[:-1]))
    with pytest.raises(config.ConfigError, match="did not finish"):
        history_csv.read(path, runs[1])
    with pytest.raises(config.ConfigError, match="did not finish"):  # without the rule, it stopped short
        history_csv.read(folder / "add-0.9-0-stop/history.csv", never_stopped)


def test_a_run_gives_the_same_bytes_in_a_compacted_stack_as_in_the_whole_stack(tmp_path, monkeypatch):
    """As on a GPU: both runs in one stacked program. The decided run stops, and the stack is compacted to
    the other, which computes exactly what it computed in the whole stack (the batch width stays the
    group's). On TensorFlow each stacked run is written out in the program, so the bytes match; under
    JAX's vmap XLA may pick other kernels for another stack size (docs/speed.md)."""
    monkeypatch.setattr(backend, "accelerator", lambda: "gpu")
    runs, data = _runs()
    compactions = []
    original = train.Shard.compact
    monkeypatch.setattr(train.Shard, "compact", lambda self, keep: (compactions.append(list(keep)),
                                                                    original(self, keep))[1])
    _, compacted = _train(tmp_path, "compacted", runs, data)
    assert compactions == [[0]]
    monkeypatch.setattr(train.Shard, "compact", lambda self, keep: None)  # the stopped run stays in the stack
    _, whole = _train(tmp_path, "whole", runs, data)
    assert _outputs(compacted) == _outputs(whole)


def test_an_interrupted_compacted_stack_resumes_exactly(alone, tmp_path, monkeypatch):
    """Stopped at a chunk boundary after the compaction, its checkpoint holds the smaller stack, who stopped
    where, and the stopped run's weights; the next process finishes with the same bytes as one that was not
    interrupted."""
    monkeypatch.setattr(backend, "accelerator", lambda: "gpu")
    runs, data = _runs()
    whole, folder = _train(tmp_path, "whole", runs, data)
    seen = []
    original = train.Shard.log
    monkeypatch.setattr(train.Shard, "log", lambda self, update: (original(self, update), seen.append(
        bool(self.stopped)))[0])

    class AfterTheFirstStop(runner.Stop):
        def requested(self):
            if any(seen):
                self.request("deadline")
            return super().requested()

    interrupted, _ = _train(tmp_path, "pieces", runs, data, stop=AfterTheFirstStop())
    assert interrupted.stopped and interrupted.reason == "deadline"
    checkpoint = next((tmp_path / "pieces-checkpoints").rglob("*.npz"))
    with np.load(checkpoint) as saved:
        meta = json.loads(str(saved["meta"]))
    assert meta["stacked"] == [0] and list(meta["stopped"]) == ["1"]
    resumed, pieces = _train(tmp_path, "pieces", runs, data)
    assert not resumed.stopped
    assert _outputs(pieces) == _outputs(folder)


def test_runs_that_figures_read_to_the_end_may_not_stop_early():
    raw = tiny_params()
    raw["runs"]["tiny"]["stop_after"] = 2
    with pytest.raises(config.ConfigError, match="tiny stops early"):
        config.parse(raw)
    raw = tiny_params()
    raw["sweeps"]["grid"]["training"]["stop_after"] = 2
    with pytest.raises(config.ConfigError, match="s5_mul-0.8-0-adamw stops early"):
        config.parse(raw)
    raw = tiny_params()
    raw["sweeps"]["grid"]["training"]["stop_after"] = 21  # more than its 20 log points
    with pytest.raises(config.ConfigError, match="stop_after must lie in 0"):
        config.parse(raw)


def test_the_new_key_leaves_earlier_runs_fingerprints_and_records_as_they_were():
    """stop_after 0 is left out of run.json and the fingerprint, so the committed runs stay valid."""
    cfg = config.load(REPO / "params.yaml")
    for name in ("mlp_add", "transformer_div"):
        record = json.loads((REPO / "records" / f"{name}.json").read_text())
        assert cfg.runs[name].fingerprint() == record["fingerprint"]
        assert "stop_after" not in cfg.runs[name].to_dict()["training"]


def test_the_rule_reads_the_values_as_written():
    """0.989999999 is written as 0.99 and counts as reached, in training as in every reader."""
    rows = np.array([[u, 0.1, 1.0, 0.1, v, 1.0] for u, v in ((0, 0.5), (1, 0.989999999), (2, 0.995), (3, 0.9))])
    assert history_csv.decided_at(rows, 2) == 2
    assert history_csv.decided_at(rows, 3) is None
    assert history_csv.decided_at(rows, 0) is None
    frame = pd.DataFrame(rows, columns=history_csv.COLUMNS)
    assert history_csv.as_written(frame["val_accuracy"][1]) == 0.99
