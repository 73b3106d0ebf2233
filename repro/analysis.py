"""What a run's history says about grokking: when each accuracy first reached 99%, the best and final values,
and the swings of the validation loss (the numbers `repro evaluate` records, and claims and figures read).

"First reached" is the first logged update at which the accuracy is at least
the threshold, so it is as precise as the log grid (log-spaced evaluations):
a few percent of the update count.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from repro import history_csv

THRESHOLD = history_csv.THRESHOLD  # "reached": accuracy ≥ 99%, defined once, where histories are read
NOT_REACHED = "not reached"


def first_reached(history: pd.DataFrame, column: str, threshold: float = THRESHOLD) -> int | str:
    reached = history.loc[history[column] >= threshold, "update"]
    return int(reached.iloc[0]) if len(reached) else NOT_REACHED


# Figure 4's detector. The loss is smoothed by a running median over 5 log points and read on a log
# scale; a swing counts when the smoothed loss moves by a factor of at least 1.25 from its last turning
# point. Noise of ±10% between neighbouring points (what a short run's validation loss shows) stays well
# inside that; a real rise between two descents (1.5x in the laptop run, far more in the paper's) is beyond it.
SWING_FACTOR = 1.25
SMOOTHING_POINTS = 5


def swings(values) -> list[float]:
    """The smoothed curve's alternating falls (< 1) and rises (> 1), as factors, in order."""
    logs = np.log(np.maximum(np.asarray(values, dtype=np.float64), 1e-12))
    half = SMOOTHING_POINTS // 2
    smooth = [float(np.median(logs[max(0, i - half):i + half + 1])) for i in range(len(logs))]
    threshold = math.log(SWING_FACTOR)
    found, direction, high, low = [], 0, smooth[0], smooth[0]
    anchor = extreme = smooth[0]  # the last turning point; the furthest point of the swing under way
    for value in smooth[1:]:
        if direction == 0:  # no swing yet: the first one starts at the highest or lowest point so far
            high, low = max(high, value), min(low, value)
            if high - value >= threshold:
                direction, anchor, extreme = -1, high, value
            elif value - low >= threshold:
                direction, anchor, extreme = 1, low, value
        elif (value - extreme) * direction > 0:
            extreme = value
        elif abs(value - extreme) >= threshold:  # turned by enough: the swing is over, the next begins
            found.append(extreme - anchor)
            direction, anchor, extreme = -direction, extreme, value
    if direction:
        found.append(extreme - anchor)
    return [math.exp(x) for x in found]


def descents(values) -> int:
    """How many times `values` descends by at least SWING_FACTOR, counted on the smoothed curve."""
    return sum(factor < 1 for factor in swings(values))


def summarize(history: pd.DataFrame) -> dict:
    """Updates to 99% train and validation accuracy, best and final values.

    A run that diverged (`diverged_at`: its first non-finite logged update) is summarized over the log points
    before it; its "final" values are its last finite ones.
    """
    diverged, updates = history_csv.diverged_at(history), int(history["update"].iloc[-1])
    if diverged is not None:
        history = history[history["update"] < diverged]
    train_99 = first_reached(history, "train_accuracy")
    val_99 = first_reached(history, "val_accuracy")
    best = history.loc[history["val_accuracy"].idxmax()]
    final = history.iloc[-1]
    both = isinstance(train_99, int) and isinstance(val_99, int) and train_99 > 0
    return {
        "updates": updates,
        "updates_to_99_train": train_99,
        "updates_to_99_val": val_99,
        # How many times longer generalization took than fitting: the paper's Figure 1 gap.
        "generalization_delay": round(val_99 / train_99, 3) if both else NOT_REACHED,
        "best_val_accuracy": float(best["val_accuracy"]),
        "best_val_update": int(best["update"]),
        "val_loss_descents": descents(history["val_loss"]),
        **({"diverged_at": diverged} if diverged is not None else {}),
        "final": {
            name: float(final[name])
            for name in ("train_accuracy", "val_accuracy", "train_loss", "val_loss", "weight_norm")
        },
    }
