"""Evaluation: the numbers a run's history says about grokking.

"First reached" is the first logged update at which the accuracy is at least
the threshold, so it is as precise as the log grid (log-spaced evaluations):
a few percent of the update count.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd

from repro.config import ConfigError, RunConfig, SweepConfig

HISTORY_COLUMNS = ["update", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "weight_norm"]

THRESHOLD = 0.99
NOT_REACHED = "not reached"


def read_history(run_dir: Path, name: str | None = None) -> pd.DataFrame:
    path = run_dir / "history.csv"
    if not path.is_file():
        raise ConfigError(f"missing training history {path}; train the run first with `repro train {name or run_dir.name}`")
    history = pd.read_csv(path)
    if list(history.columns) != HISTORY_COLUMNS or history.empty:
        raise ConfigError(f"{path} is not a training history (columns {HISTORY_COLUMNS}); retrain the run")
    return history


def first_reached(history: pd.DataFrame, column: str, threshold: float = THRESHOLD) -> int | str:
    reached = history.loc[history[column] >= threshold, "update"]
    return int(reached.iloc[0]) if len(reached) else NOT_REACHED


def descents(values, rise: float = 0.2) -> int:
    """How many times `values` descends: a new descent starts when, after rising at least
    `rise` (20%) above its lowest value so far, it falls below that value again."""
    count, low, risen = 0, math.inf, True
    for value in values:
        if value < low:
            count += risen
            low, risen = value, False
        elif value >= low * (1 + rise):
            risen = True
    return count


def summarize(history: pd.DataFrame) -> dict:
    """Updates to 99% train and validation accuracy, best and final values."""
    train_99 = first_reached(history, "train_accuracy")
    val_99 = first_reached(history, "val_accuracy")
    best = history.loc[history["val_accuracy"].idxmax()]
    final = history.iloc[-1]
    both = isinstance(train_99, int) and isinstance(val_99, int) and train_99 > 0
    return {
        "updates": int(final["update"]),
        "updates_to_99_train": train_99,
        "updates_to_99_val": val_99,
        # How many times longer generalization took than fitting: the paper's Figure 1 gap.
        "generalization_delay": round(val_99 / train_99, 3) if both else NOT_REACHED,
        "best_val_accuracy": float(best["val_accuracy"]),
        "best_val_update": int(best["update"]),
        "val_loss_descents": descents(history["val_loss"]),
        "final": {
            name: float(final[name])
            for name in ("train_accuracy", "val_accuracy", "train_loss", "val_loss", "weight_norm")
        },
    }


def setting(run: RunConfig) -> dict:
    """What a reader needs to judge a run's numbers: model, optimiser, data and budget."""
    t = run.training
    return {
        "model": run.model.kind,
        "operation": run.dataset.operation,
        "train_fraction": run.dataset.train_fraction,
        "learning_rate": t.learning_rate,
        "weight_decay": t.weight_decay,
        "budget": t.updates,
    }


RESULT_FILES = ("history.csv", "model.weights.h5", "run.json")  # what `repro verify` compares byte for byte


def fingerprints(run_dir: Path) -> dict[str, str]:
    """sha256 of each result file: committed with the metrics, so a fresh run can be compared."""
    return {name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest() for name in RESULT_FILES}


def comparable(summary: dict, sha256: dict[str, str]) -> dict:
    """The numbers `repro verify` compares, with the result files' hashes: a sweep member's metrics."""
    return {
        **{k: summary[k] for k in ("updates_to_99_train", "updates_to_99_val", "best_val_accuracy")},
        "final_train_accuracy": summary["final"]["train_accuracy"],
        "final_val_accuracy": summary["final"]["val_accuracy"],
        "sha256": sha256,
    }


def summarize_run(run: RunConfig, run_dir: Path) -> dict:
    return {**summarize(read_history(run_dir, run.name)), "setting": setting(run), "sha256": fingerprints(run_dir)}


def summarize_sweep(sweep: SweepConfig, runs: dict[str, RunConfig], runs_dir: Path) -> dict:
    """One summary per member of the sweep, keyed by member name, plus the grid itself."""
    members = {}
    for name in sweep.members:
        run = runs[name]
        run_dir = runs_dir / run.directory
        summary = summarize(read_history(run_dir, name))
        members[name.split("/", 1)[1]] = {
            "operation": run.dataset.operation,
            "train_fraction": run.dataset.train_fraction,
            "seed": run.training.seed,
            "intervention": name.rsplit("-", 1)[1],
            **comparable(summary, fingerprints(run_dir)),
        }
    first = runs[sweep.members[0]]
    return {
        "grid": {
            "model": sweep.model,
            "budget": first.training.updates,
            "operations": list(sweep.operations),
            "fractions": list(sweep.fractions),
            "seeds": list(sweep.seeds),
            "interventions": list(sweep.interventions),
        },
        "runs": members,
    }


def sweep_frame(summary: dict) -> pd.DataFrame:
    """A sweep's runs as rows; "not reached" becomes infinity, so it sorts above every update count."""
    frame = pd.DataFrame(summary["runs"].values())
    for column in ("updates_to_99_train", "updates_to_99_val"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(math.inf)
    return frame


def read_metrics(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"missing metrics file {path}; make it with `repro evaluate {path.stem}` (or `dvc repro`)")
    return json.loads(path.read_text(encoding="utf-8"))
