"""Evaluation: the numbers a run's history says about grokking.

"First reached" is the first logged update at which the accuracy is at least
the threshold, so it is as precise as the log grid (log-spaced evaluations):
a few percent of the update count.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from repro.config import ConfigError
from repro.train import HISTORY_COLUMNS

THRESHOLD = 0.99
NOT_REACHED = "not reached"


def read_history(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "history.csv"
    if not path.is_file():
        raise ConfigError(f"missing training history {path}; train the run first with `repro train {run_dir.name}`")
    history = pd.read_csv(path)
    if list(history.columns) != HISTORY_COLUMNS or history.empty:
        raise ConfigError(f"{path} is not a training history (columns {HISTORY_COLUMNS}); retrain the run")
    return history


def first_reached(history: pd.DataFrame, column: str, threshold: float = THRESHOLD) -> int | str:
    reached = history.loc[history[column] >= threshold, "update"]
    return int(reached.iloc[0]) if len(reached) else NOT_REACHED


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
        "final": {
            name: float(final[name])
            for name in ("train_accuracy", "val_accuracy", "train_loss", "val_loss", "weight_norm")
        },
    }
