"""The results as committed: histories/, records/ and metrics/ read back for claims, figures and the tools,
without the run folders that made them (those are DVC's, and not in a fresh clone).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from repro import history_csv, run_folder
from repro.analysis import THRESHOLD, summarize
from repro.config import ConfigError, RunConfig, SweepConfig


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


def history_file(histories_dir: Path, name: str) -> Path:
    """The committed copy of run `name`'s history: histories/<name>.csv (a sweep member's under its sweep)."""
    return histories_dir / f"{name}.csv"


def trained_to(record: dict) -> int | None:
    """The last logged update of a run stopped before its budget (run.json's `partial`); None for a whole run."""
    partial = record.get(run_folder.PARTIAL)
    return None if partial is None else int(partial["updates"])


def committed_partial(records_dir: Path, name: str) -> dict | None:
    """records/<name>.json's `partial` ({"updates", "budget"}) for a named run trained in part, else None."""
    return read_metrics(records_dir / f"{name}.json").get(run_folder.PARTIAL)


def groups_of(sweep: SweepConfig, runs: dict[str, RunConfig]) -> dict[str, list[str]]:
    """The sweep's groups, in grid order, each with its members."""
    groups: dict[str, list[str]] = {}
    for name in sweep.members:
        groups.setdefault(runs[name].group, []).append(name)
    return groups


def coordinates(run: RunConfig) -> dict:
    """Where a sweep member sits in its grid."""
    return {"operation": run.dataset.operation, "train_fraction": run.dataset.train_fraction,
            "seed": run.training.seed, "intervention": run.name.rsplit("-", 1)[1]}


def grid(sweep: SweepConfig, runs: dict[str, RunConfig]) -> dict:
    return {
        "model": sweep.model,
        "modulus": sweep.modulus,
        "budget": runs[sweep.members[0]].training.updates,
        "operations": list(sweep.operations),
        "fractions": list(sweep.fractions),
        "seeds": list(sweep.seeds),
        "interventions": list(sweep.interventions),
    }


def missing_groups(record: dict, name: str) -> list[str]:
    """The groups that records/<name>.json (a sweep's) says are not trained yet."""
    if not isinstance(record.get("missing_groups"), list):
        raise ConfigError(f"records/{name}.json does not say which groups it holds (an older repro made it); remake "
                          f"it with `repro evaluate {name}` (or `dvc repro`)")
    return record["missing_groups"]


def sweep_frame(sweep: SweepConfig, runs: dict[str, RunConfig], histories_dir: Path,
                missing: list[str]) -> pd.DataFrame:
    """A sweep's runs as rows, summarized from their committed histories, except those of the `missing` groups."""
    rows = []
    for name in (m for g, members in groups_of(sweep, runs).items() if g not in missing for m in members):
        run = runs[name]
        history = history_csv.read(history_file(histories_dir, name), run)
        summary = summarize(history)
        fitted = history.loc[history["train_accuracy"] >= THRESHOLD, "val_accuracy"]
        rows.append({**coordinates(run), **{k: summary[k] for k in (
            "updates_to_99_train", "updates_to_99_val", "best_val_accuracy")},
            # validation accuracy when training accuracy first reached 99%: had generalization begun by then?
            "val_accuracy_at_fit": float(fitted.iloc[0]) if len(fitted) else math.nan})
    return _frame(rows)


def record_frame(summary: dict) -> pd.DataFrame:
    """A sweep's record (records/<sweep>.json) as rows, "not reached" as infinity (for the figures)."""
    return _frame(list(summary["runs"].values()))


_COLUMNS = ("operation", "train_fraction", "seed", "intervention", "updates_to_99_train", "updates_to_99_val",
            "best_val_accuracy", "val_accuracy_at_fit")


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Runs as rows; "not reached" becomes infinity, so it sorts above every update count."""
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=_COLUMNS)  # no group trained yet
    for column in ("updates_to_99_train", "updates_to_99_val"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(math.inf)
    return frame


def read_metrics(path: Path) -> dict:
    """A metrics/ or records/ file, made by `repro evaluate NAME` (or, for embeddings.json, `repro embeddings`)."""
    maker = "repro embeddings" if path.name == "embeddings.json" else f"repro evaluate {path.stem}"
    if not path.is_file():
        raise ConfigError(f"missing metrics file {path}; make it with `{maker}` (or `dvc repro`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ConfigError(f"{path} is damaged ({error}); remake it with `{maker}` (or `dvc repro`)") from None


def committed_record(name: str, records_dir: Path) -> dict:
    """records/<name>.json as committed at git's HEAD: the reference `repro verify` compares with.

    The working tree's copy may already hold a fresh local run; HEAD holds what was committed and published.
    """
    import subprocess

    path = (records_dir / f"{name}.json").as_posix()
    found = subprocess.run(["git", "show", f"HEAD:./{path}"], capture_output=True, text=True)
    if found.returncode:
        raise ConfigError(f"git's HEAD has no {path} to compare with ({found.stderr.strip() or 'not a git checkout'}); "
                          f"run `dvc repro` and commit its records/ first")
    try:
        return json.loads(found.stdout)
    except ValueError as error:
        raise ConfigError(f"HEAD:{path} is damaged ({error})") from None
