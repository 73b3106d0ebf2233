"""A named run replayed for the progress stage (repro/stages/progress.py): its weights at every logged update.

Training is bit-for-bit deterministic on one machine, so this stage trains
the run again from scratch with the same program (train.GroupTrainer, the
same compiled calls between the same log points), keeps its weights at every
logged update in memory, and checks every logged number it evaluates against
the committed history, byte for byte. That costs one more training of each
run (half a minute for the laptop's MLP, minutes for its transformer) and
stores nothing. Snapshots would have stored ~1.7 MB per log point of the
transformer (200 MB a run) and changed training itself. On another machine
the replay may differ from the committed history by round-off; the summary
then says by how much, and the measures are the replay's.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from repro import datasets, history_csv, progress, run_folder
from repro.config import ConfigError, RunConfig
from repro.progress import Measured


@dataclass
class Replayed:
    history: np.ndarray  # (log points, 6), as history.csv
    weights: list[list[np.ndarray]]  # every log point's weights
    logits: object  # weights -> logits over the whole table, float32
    first: int  # the index of the first layer's kernel (progress.FIRST_LAYERS) among the weights


def run_again(run: RunConfig, dataset: datasets.Dataset, precision: str) -> Replayed:
    """Trains `run` again from scratch exactly as `repro train` did, keeping the weights at every log point."""
    from keras import ops

    from repro import backend, train

    trainer = train.GroupTrainer([run], [dataset], precision)
    shard = trainer.shards[0]
    model, table = shard.program.model, shard.table
    extra = [ops.zeros(v.shape, v.dtype) for v in model.non_trainable_variables]
    forward = backend.compile(lambda params: model.stateless_call(params, extra, table[0], training=False)[0])
    schedule = history_csv.log_schedule(run.training.updates, run.training.log_points)
    rows, weights = [], []

    def log(update: int) -> None:
        rows.append([float(update), *shard.evaluate()[0]])
        weights.append([np.asarray(ops.convert_to_numpy(p))[0] for p in shard.state["params"]])

    log(0)
    for previous, target in zip(schedule, schedule[1:]):  # the compiled calls of `repro train`'s loop
        shard.train(previous, target)
        log(target)
    first = next(i for i, v in enumerate(model.trainable_variables) if v.path.split("/")[0] in progress.FIRST_LAYERS)
    return Replayed(np.array(rows), weights, lambda w: np.asarray(ops.convert_to_numpy(forward(w))), first)


def measure(run: RunConfig, run_dir: Path) -> Measured:
    """Every progress measure at every logged update of the finished run in `run_dir`, from its replay."""
    record = run_folder.read(run_dir, run)
    if record.get(run_folder.PARTIAL):
        raise ConfigError(f"{run.name} is trained only to update {record[run_folder.PARTIAL]['updates']:,}; "
                          f"its progress measures wait for the run to finish (`repro train {run.name}`)")
    committed = history_csv.read(run_dir / history_csv.FILE, run)
    dataset = datasets.make(run.dataset)
    started = time.monotonic()
    replayed = run_again(run, dataset, record["determinism"]["precision"])
    replay_seconds, started = time.monotonic() - started, time.monotonic()

    # The replay's history as history.csv would hold it, against the committed file.
    text = history_csv.text(replayed.history)
    logged = pd.read_csv(io.StringIO(text)).to_numpy()
    difference = float(np.max(np.abs(logged[:, 1:] - committed.to_numpy()[:, 1:])))
    identical = text == (run_dir / history_csv.FILE).read_text(encoding="utf-8")
    if not identical:
        made = _machine({**run_folder.made_on(run_dir, record), "versions": record.get("versions", {})})
        here = _machine(_this_machine())
        if made == here:  # the kind of machine and the libraries that made it: round-off cannot be why
            raise ConfigError(f"{run_dir / history_csv.FILE} differs from its replay by up to {difference:.3g} on "
                              f"the kind of machine, backend and libraries that made it ({made}): the file was "
                              f"changed after training, or training is not deterministic here. Retrain it with "
                              f"`repro train {run.group}`")
        print(f"{run.name}: the replay differs from the committed history by up to {difference:.3g}: it was made "
              f"on {made}, replayed on {here}, whose round-off may differ (docs/exactness.md); the measures are "
              f"the replay's", flush=True)

    history = pd.DataFrame(replayed.history, columns=history_csv.COLUMNS).astype({"update": int})
    measured = progress.measure_points(history, [replayed.logits(w) for w in replayed.weights],
                                       [w[replayed.first] for w in replayed.weights], run.model.kind, dataset)
    measured.summary.update({
        "run": run.name, "fingerprint": run.fingerprint(),
        "replay": {"identical": identical, "largest_difference": difference},
        "record": {k: record[k] for k in ("run", "dataset", "batch_size", "determinism")},  # for Figure 5's captions
    })
    print(f"{run.name}: replayed {run.training.updates:,} updates in {replay_seconds:.1f} s, measured "
          f"{len(history)} log points in {time.monotonic() - started:.1f} s", flush=True)
    return measured


def _this_machine() -> dict:
    """This process's `_machine` fields, as a run's record and provenance give them for the machine that made it."""
    import platform

    import keras

    from repro import backend, provenance

    cpu = provenance.cpu()
    return {"backend": backend.NAME, "cpu": cpu.get("model"), "vector_extensions": cpu.get("vector_extensions"),
            "versions": {"python": platform.python_version(), "numpy": np.__version__, "keras": keras.__version__,
                         **backend.versions()}}


def _machine(found: dict) -> str:
    """What decides a run's round-off, in words: backend, CPU model and vector units, library versions."""
    extensions = found.get("vector_extensions")
    units = ", ".join(extensions) if extensions else "vector units not recorded"
    versions = ", ".join(f"{k} {v}" for k, v in sorted(found.get("versions", {}).items()))
    return f"{found.get('backend')} on {found.get('cpu')} ({units}); {versions}"
