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

import numpy as np
import pandas as pd

from repro import history_csv, run_folder
from repro.config import ConfigError, RunConfig, SweepConfig

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


def fingerprints(run_dir: Path, record: dict) -> dict[str, str]:
    """sha256 of each result file (run.json given as `record`): committed in records/, so a fresh run can be compared."""
    found = {}
    for name in run_folder.result_files(record):
        path = run_dir / name
        if not path.is_file():
            raise ConfigError(f"missing {path}: the run folder is incomplete; retrain it with "
                              f"`repro train {record['run']['group']}`")
        if name == run_folder.WEIGHTS:
            run_folder.check_weights(path, record["run"]["group"])
        found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def comparable(summary: dict, sha256: dict[str, str]) -> dict:
    """The numbers `repro verify` compares, with the result files' hashes."""
    return {
        **{k: summary[k] for k in ("updates_to_99_train", "updates_to_99_val", "best_val_accuracy")},
        "final_train_accuracy": summary["final"]["train_accuracy"],
        "final_val_accuracy": summary["final"]["val_accuracy"],
        "sha256": sha256,
    }


def history_file(histories_dir: Path, name: str) -> Path:
    """The committed copy of run `name`'s history: histories/<name>.csv (a sweep member's under its sweep)."""
    return histories_dir / f"{name}.csv"


def export_histories(names: list[str], runs: dict[str, RunConfig], runs_dir: Path, target: Path) -> None:
    """Copies the histories of `names`, checked, into `target` (a file for one run, a folder for a sweep).

    These copies are committed to git, so the claims can be recomputed without training.
    """
    from repro import files

    checked = {}
    for name in names:
        run = runs[name]
        source = runs_dir / run.directory / history_csv.FILE
        history_csv.read(source, run, until=trained_to(run_folder.read(runs_dir / run.directory, run)))
        checked[name] = source.read_bytes()
    if target.suffix == ".csv":
        files.write_bytes(target, checked[names[0]])
        return
    with files.atomic_directory(target) as tmp:
        for name, data in checked.items():
            history_file(tmp, name.split("/", 1)[1]).write_bytes(data)


def trained_to(record: dict) -> int | None:
    """The last logged update of a run stopped before its budget (run.json's `partial`); None for a whole run."""
    partial = record.get(run_folder.PARTIAL)
    return None if partial is None else int(partial["updates"])


def _evaluated(run: RunConfig, run_dir: Path) -> tuple[dict, dict]:
    """(summary of the run's history, its fingerprint, hashes and maker); refuses a stale or unfinished run.

    A named run stopped before its budget (`repro train --for`) is evaluated as far as it got, and says so;
    a run its rule stopped (TrainingConfig.stop_after) is whole, and says where and why it stopped.
    """
    record = run_folder.read(run_dir, run)
    summary = summarize(history_csv.read(run_dir / history_csv.FILE, run, until=trained_to(record)))
    partial = {key: record[key] for key in (run_folder.PARTIAL, run_folder.STOPPED) if key in record}
    return summary, {"fingerprint": record["fingerprint"], "sha256": fingerprints(run_dir, record),
                     "made_on": run_folder.made_on(run_dir, record), **partial}


def run_record(run: RunConfig, run_dir: Path) -> dict:
    """records/<run>.json: everything evaluation says about a named run, its file hashes and its maker (and, for
    a run stopped before its budget, `partial`: the updates it was trained to, of its budget)."""
    summary, identity = _evaluated(run, run_dir)
    return {**summary, "setting": setting(run), **identity}


def committed_partial(records_dir: Path, name: str) -> dict | None:
    """records/<name>.json's `partial` ({"updates", "budget"}) for a named run trained in part, else None."""
    return read_metrics(records_dir / f"{name}.json").get(run_folder.PARTIAL)


def groups_of(sweep: SweepConfig, runs: dict[str, RunConfig]) -> dict[str, list[str]]:
    """The sweep's groups, in grid order, each with its members."""
    groups: dict[str, list[str]] = {}
    for name in sweep.members:
        groups.setdefault(runs[name].group, []).append(name)
    return groups


def sweep_record(sweep: SweepConfig, runs: dict[str, RunConfig], runs_dir: Path) -> dict:
    """records/<sweep>.json: the grid, its groups trained and not, and per member its place, numbers, hashes and
    maker.

    A sweep trained in part on a lent GPU is recorded in DVC as it stands (docs/gpu.md): a group
    is trained when its folder is there (it appears whole when the group ends); evaluation, figures and claims
    say which groups are missing. A sweep with no folder at all was never trained: an error.
    """
    if not (runs_dir / sweep.name).is_dir():
        raise ConfigError(f"missing {runs_dir / sweep.name}: the sweep is not trained; train it with "
                          f"`repro train {sweep.name}` (or `dvc repro`)")
    groups = groups_of(sweep, runs)
    trained = [g for g in groups if (runs_dir / g).is_dir()]
    missing = [g for g in groups if g not in trained]
    members = {}
    for name in (m for g in trained for m in groups[g]):
        summary, identity = _evaluated(runs[name], runs_dir / runs[name].directory)
        stopped = {run_folder.STOPPED: identity[run_folder.STOPPED]} if run_folder.STOPPED in identity else {}
        members[name.split("/", 1)[1]] = {**coordinates(runs[name]), **comparable(summary, identity["sha256"]),
                                          "fingerprint": identity["fingerprint"], "made_on": identity["made_on"],
                                          **stopped}
    return {"grid": grid(sweep, runs), "trained_groups": trained, "missing_groups": missing, "runs": members}


def run_metrics(record: dict) -> dict:
    """metrics/<run>.json: the few numbers `dvc metrics show` and `dvc metrics diff` set side by side."""
    keys = ("updates_to_99_train", "updates_to_99_val", "generalization_delay", "best_val_accuracy",
            "val_loss_descents")
    partial = {run_folder.PARTIAL: record[run_folder.PARTIAL]} if run_folder.PARTIAL in record else {}
    return {**{k: record[k] for k in keys}, "final_val_accuracy": record["final"]["val_accuracy"], **partial}


def sweep_metrics(record: dict) -> dict:
    """metrics/<sweep>.json: one row for the whole sweep."""
    members = list(record["runs"].values())
    best = [m["best_val_accuracy"] for m in members]

    def mean(values):  # None for a sweep with no group trained yet
        return round(float(np.mean(values)), 6) if values else None

    return {"runs": len(members), "groups_missing": len(record["missing_groups"]),
            "generalized": sum(b >= THRESHOLD for b in best), "mean_best_val_accuracy": mean(best),
            "mean_final_val_accuracy": mean([m["final_val_accuracy"] for m in members])}


def stage(config, name: str) -> dict:
    """`repro evaluate NAME` (a run or a sweep): writes records/NAME.json, metrics/NAME.json and the committed
    copies of its histories under histories/; returns the record."""
    from repro import files
    from repro.files import HISTORIES_DIR, METRICS_DIR, RECORDS_DIR, RUNS_DIR

    if name in config.sweeps:
        record = sweep_record(config.sweeps[name], config.runs, RUNS_DIR)
        export_histories([f"{name}/{member}" for member in record["runs"]], config.runs, RUNS_DIR,
                         HISTORIES_DIR / name)
        metrics = sweep_metrics(record)
    else:
        run = config.run(name)
        record = run_record(run, RUNS_DIR / run.directory)
        export_histories([name], config.runs, RUNS_DIR, HISTORIES_DIR / f"{name}.csv")
        metrics = run_metrics(record)
    files.write_json(RECORDS_DIR / f"{name}.json", record)
    files.write_json(METRICS_DIR / f"{name}.json", metrics)
    return record


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
