"""`repro evaluate NAME`: a run's or a sweep's summary, records/NAME.json (per run, with file hashes),
metrics/NAME.json (a few numbers) and the committed copies of its histories, histories/.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from repro import files, history_csv, run_folder
from repro.analysis import THRESHOLD, summarize
from repro.config import ConfigError, RunConfig, SweepConfig
from repro.files import HISTORIES_DIR, METRICS_DIR, RECORDS_DIR, RUNS_DIR
from repro.results import coordinates, grid, groups_of, history_file, setting, trained_to
from repro.stages import clear_errors, config_of


def comparable(summary: dict, sha256: dict[str, str]) -> dict:
    """The numbers `repro verify` compares, with the result files' hashes."""
    return {
        **{k: summary[k] for k in ("updates_to_99_train", "updates_to_99_val", "best_val_accuracy")},
        "final_train_accuracy": summary["final"]["train_accuracy"],
        "final_val_accuracy": summary["final"]["val_accuracy"],
        "sha256": sha256,
    }


def export_histories(names: list[str], runs: dict[str, RunConfig], runs_dir: Path, target: Path) -> None:
    """Copies the histories of `names`, checked, into `target` (a file for one run, a folder for a sweep).

    These copies are committed to git, so the claims can be recomputed without training.
    """
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


def _evaluated(run: RunConfig, run_dir: Path) -> tuple[dict, dict]:
    """(summary of the run's history, its fingerprint, hashes and maker); refuses a stale or unfinished run.

    A named run stopped before its budget (`repro train --for`) is evaluated as far as it got, and says so;
    a run its rule stopped (TrainingConfig.stop_after) is whole, and says where and why it stopped.
    """
    record = run_folder.read(run_dir, run)
    summary = summarize(history_csv.read(run_dir / history_csv.FILE, run, until=trained_to(record)))
    partial = {key: record[key] for key in (run_folder.PARTIAL, run_folder.STOPPED) if key in record}
    return summary, {"fingerprint": record["fingerprint"], "sha256": run_folder.fingerprints(run_dir, record),
                     "made_on": run_folder.made_on(run_dir, record), **partial}


def run_record(run: RunConfig, run_dir: Path) -> dict:
    """records/<run>.json: everything evaluation says about a named run, its file hashes and its maker (and, for
    a run stopped before its budget, `partial`: the updates it was trained to, of its budget)."""
    summary, identity = _evaluated(run, run_dir)
    return {**summary, "setting": setting(run), **identity}


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
    """NAME (a run or a sweep): writes records/NAME.json, metrics/NAME.json and the committed copies of its
    histories under histories/; returns the record."""
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


@click.command("evaluate")
@click.argument("name")
@click.pass_context
@clear_errors
def command(context: click.Context, name: str) -> None:
    """Summarizes run or sweep NAME: metrics/NAME.json (a few numbers), records/NAME.json (per run, with
    file hashes), and copies its histories under histories/."""
    record = stage(config_of(context), name)
    if "grid" in record:  # a sweep
        missing = record["missing_groups"]
        click.echo(f"{METRICS_DIR / name}.json: {len(record['runs'])} runs"
                   + (f"; not trained yet: {len(missing)} group(s): {', '.join(missing)}" if missing else ""))
    else:
        click.echo(f"{METRICS_DIR / name}.json: 99% train at {record['updates_to_99_train']}, "
                   f"99% validation at {record['updates_to_99_val']}, best val {record['best_val_accuracy']:.3f}")
