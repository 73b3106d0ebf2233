"""history.csv, a run's training history: the one module that writes and reads it.

One row per logged update (0, then log-spaced up to the budget): losses and
accuracies on the full training and validation sets, and the weights' norm.
Training writes it; evaluation, the figures, `repro verify` and the claims
read it, all through `read`, which refuses a damaged or unfinished file
with a message that says how to fix it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from repro.config import ConfigError, RunConfig

FILE = "history.csv"  # in every run folder, and the name `repro verify` hashes
COLUMNS = ["update", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "weight_norm"]
NON_FINITE = ("nan", "inf", "-inf")  # how `text` writes the values of a run that diverged
THRESHOLD = 0.99  # "reached": accuracy ≥ 99%, the level of Figure 1's curves; the one definition (claims, figures,
#                   progress, and the stopping rule below)
_TRAIN, _VAL = COLUMNS.index("train_accuracy"), COLUMNS.index("val_accuracy")


def as_written(value: float) -> float:
    """`value` as `text` writes it (8 significant digits): what every reader of the file sees."""
    return float(f"{value:.8g}")


def decided_at(rows: np.ndarray, stop_after: int) -> int | None:
    """The stopping rule (a run's `stop_after`): the first log point, as a row index of `rows` (log points ×
    COLUMNS), at which training and validation accuracy have both been ≥ THRESHOLD, as written, at
    `stop_after` log points in a row; None if that never happens in `rows`, or if `stop_after` is 0.

    From there on, the run has told everything its claims read (the updates to 99% and that it got there);
    training stops (repro/train.py), and `read` accepts a history that ends at this point, and only there.
    """
    if stop_after <= 0:
        return None
    reached = [as_written(row[_TRAIN]) >= THRESHOLD and as_written(row[_VAL]) >= THRESHOLD for row in rows]
    run = 0
    for index, ok in enumerate(reached):
        run = run + 1 if ok else 0
        if run >= stop_after:
            return index
    return None


def stopping_rule(stop_after: int) -> str:
    """The rule in words, for records and captions."""
    return (f"training and validation accuracy ≥ {THRESHOLD:.0%} at {stop_after} log points in a row "
            f"(stop_after: {stop_after})")


def diverged_at(history: pd.DataFrame) -> int | None:
    """The first logged update at which a value is not finite (the run diverged), or None."""
    bad = ~np.isfinite(history[COLUMNS[1:]].to_numpy(dtype=np.float64)).all(axis=1)
    return int(history["update"].iloc[int(np.argmax(bad))]) if bad.any() else None


def text(rows: np.ndarray, columns: list[str] = COLUMNS) -> str:
    """The file's text for `rows` (log points × `columns`, the update first): integer updates, 8 significant
    digits elsewhere. progress/'s measures.csv, a history with more columns, is written the same way."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([int(row[0]), *(f"{v:.8g}" for v in row[1:])])
    return buffer.getvalue()


def log_schedule(updates: int, points: int) -> list[int]:
    """The updates a history logs (training evaluates after each): 0, then `points` log-spaced steps to `updates`."""
    spaced = np.unique(np.round(np.geomspace(1, updates, num=points)).astype(int))
    return [0, *spaced.tolist()]


def read(path: Path, run: RunConfig, until: int | None = None) -> pd.DataFrame:
    """`run`'s history at `path`, checked: the right columns, numbers only, finished at the run's budget, or
    where its stopping rule (`decided_at`) stopped it.

    `until`: the last logged update of a run stopped before its budget (run.json's `partial`), which the
    history must end at instead.
    """
    name, updates = run.name, run.training.updates if until is None else until
    if not path.is_file():
        raise ConfigError(f"missing training history {path}; train the run first with `repro train {name}`")
    retrain = f"retrain it with `repro train {name}`"
    raw = path.read_bytes()
    if not raw.endswith(b"\n"):  # `text()` ends every row with one: a file cut short does not
        raise ConfigError(f"{path} is damaged (it ends mid-line, as a file cut short does); {retrain}")
    try:
        history = pd.read_csv(io.BytesIO(raw))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a readable training history ({error}); {retrain}") from None
    if list(history.columns) != COLUMNS or history.empty:
        raise ConfigError(f"{path} is not a training history (columns {COLUMNS}); {retrain}")
    numbers = history.apply(pd.to_numeric, errors="coerce")
    missing = numbers.isna()
    if missing.any().any():  # a diverged run is a result: training writes its non-finite values as nan or inf
        written = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
        missing[COLUMNS[1:]] &= ~written[COLUMNS[1:]].apply(lambda column: column.str.lower().isin(NON_FINITE))
    if missing.any().any():
        raise ConfigError(f"{path} is damaged (a missing or non-numeric value); {retrain}")
    logged, expected = numbers["update"].tolist(), log_schedule(run.training.updates, run.training.log_points)
    if logged != expected[:len(logged)]:  # a row deleted, repeated or moved: not what training logged
        at = next(i for i, (a, b) in enumerate(zip(logged + [None], expected + [None])) if a != b)
        raise ConfigError(f"{path} is damaged: its row {at + 2} logs update {logged[at] if at < len(logged) else '—'}"
                          f", where training logs update {expected[at] if at < len(expected) else '—'} (a row "
                          f"deleted, repeated or out of order); {retrain}")
    decided = None if until is not None else decided_at(numbers.to_numpy(dtype=np.float64), run.training.stop_after)
    if decided is not None:  # the rule stopped it there; a history that goes on was not made by this rule
        updates = int(numbers["update"].iloc[decided])
        if int(numbers["update"].iloc[-1]) != updates:
            raise ConfigError(f"{path} goes on past update {updates:,}, where its stopping rule "
                              f"({stopping_rule(run.training.stop_after)}) ends the run; {retrain}")
    if int(numbers["update"].iloc[-1]) != updates:
        raise ConfigError(f"{path} stops at update {int(numbers['update'].iloc[-1]):,} of {updates:,}: the run did "
                          f"not {'finish' if until is None else 'get as far as its run.json says'}; {retrain}")
    numbers["update"] = numbers["update"].astype(int)
    return numbers
