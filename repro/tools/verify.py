"""`repro verify`: retrain runs in a scratch folder and compare them with the committed results.

The committed records (records/<run>.json, records/<sweep>.json, read from
git's HEAD, not from the working tree, which a local `dvc repro` may have
rewritten) hold each run's numbers, the sha256 of its result files, its
parameters' fingerprint and the machine that made it. A fresh run is
"bit-identical" when every one of those files hashes the same. Otherwise each
metric's difference is reported against a stated tolerance: across machines,
round-off differs (docs/exactness.md), and a grokking run amplifies it, so
the tolerances are loose enough for that and tight enough to catch a changed
result.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from repro import analysis, history_csv, results, run_folder
from repro.stages.evaluate import comparable
from repro.config import Config, ConfigError
from repro.files import RECORDS_DIR

# metric: (kind, tolerance). "absolute": |fresh − committed|; "relative": |fresh / committed − 1|.
TOLERANCES = {
    "best_val_accuracy": ("absolute", 0.02),
    "final_train_accuracy": ("absolute", 0.02),
    "final_val_accuracy": ("absolute", 0.02),
    # 99%-times sit on a log grid (~8% per step for 120 points over 10⁴ updates): three steps.
    "updates_to_99_train": ("relative", 0.25),
    "updates_to_99_val": ("relative", 0.25),
}
IDENTICAL, WITHIN, BEYOND = "bit-identical", "within tolerance", "beyond tolerance"
OTHER_PARAMETERS = "other parameters"  # the committed result was made from another params.yaml: nothing to compare
EXIT_CODES = {IDENTICAL: 0, WITHIN: 10, BEYOND: 11, OTHER_PARAMETERS: 12}


@dataclass
class Outcome:
    name: str
    verdict: str
    differences: dict[str, tuple] = field(default_factory=dict)  # metric: (committed, fresh, difference, tolerance)
    files: list[str] = field(default_factory=list)  # result files whose bytes differ
    made_on: dict | None = None  # the committed result's machine and settings


def committed(config: Config, name: str) -> dict:
    """The numbers, file hashes, parameters and maker of run `name` as committed at git's HEAD."""
    if "/" in name:
        sweep, member = name.split("/", 1)
        record = results.committed_record(sweep, RECORDS_DIR)
        if member not in record["runs"]:
            why = ("its group is not trained yet at this scale (a sweep trained in part)"
                   if config.run(name).group in record.get("missing_groups", []) else "run `dvc repro` and commit first")
            raise ConfigError(f"{name} is not in the committed records/{sweep}.json: {why}")
        return record["runs"][member]
    record = results.committed_record(name, RECORDS_DIR)
    if not isinstance(record.get("sha256"), dict):
        raise ConfigError(f"the committed records/{name}.json has no file hashes (sha256): it is damaged or older "
                          f"than this package; remake it with `repro evaluate {name}` and commit it")
    return {**comparable(record, record["sha256"]), "fingerprint": record.get("fingerprint"),
            "made_on": record.get("made_on")}


def _difference(kind: str, old, new) -> float:
    if isinstance(old, str) or isinstance(new, str):  # "not reached" on one side or both
        return 0.0 if old == new else math.inf
    return abs(new - old) if kind == "absolute" else abs(new / old - 1) if old else math.inf


def compare(name: str, old: dict, new: dict) -> Outcome:
    names = dict.fromkeys([*old["sha256"], *new["sha256"]])  # the weights' file is absent where they are not kept
    files = [f for f in names if old["sha256"].get(f) != new["sha256"].get(f)]
    if not files:
        return Outcome(name, IDENTICAL)
    differences = {}
    for metric, (kind, tolerance) in TOLERANCES.items():
        differences[metric] = (old[metric], new[metric], _difference(kind, old[metric], new[metric]), tolerance)
    beyond = any(d > tol for _, _, d, tol in differences.values())
    return Outcome(name, BEYOND if beyond else WITHIN, differences, files)


def _repro(params: Path, cwd: Path, *args: str) -> None:
    # A fresh process per command, exactly as DVC runs the stage.
    result = subprocess.run([sys.executable, "-m", "repro", "--params", str(params), *args],
                            cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise ConfigError(f"`repro {' '.join(args)}` failed in the scratch folder:\n{result.stderr.strip()}")


def fresh(config: Config, params: Path, name: str, scratch: Path, trained: set[str]) -> dict:
    """Retrains the group of run `name` under `scratch` (once per group) and returns the run's numbers and hashes."""
    run, group = config.run(name), config.group(name)
    if group.name not in trained:
        for dataset in sorted({config.runs[m].dataset_name for m in group.members} - {None}):
            _repro(params, scratch, "generate", dataset)
        _repro(params, scratch, "train", group.name)
        trained.add(group.name)
    run_dir = scratch / "runs" / run.directory
    summary = analysis.summarize(history_csv.read(run_dir / history_csv.FILE, run))
    return comparable(summary, run_folder.fingerprints(run_dir, run_folder.read(run_dir, run)))


def verify(config: Config, params: Path, names: list[str]):
    """Yields the Outcome of each run in `names`, retraining each group once, in a scratch folder."""
    old = {name: committed(config, name) for name in names}  # fails before any training if nothing to compare
    trained: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="repro-verify-") as scratch:
        for name in names:
            if old[name].get("fingerprint") != config.run(name).fingerprint():
                yield Outcome(name, OTHER_PARAMETERS, made_on=old[name].get("made_on"))
                continue
            outcome = compare(name, old[name], fresh(config, params.resolve(), name, Path(scratch), trained))
            outcome.made_on = old[name].get("made_on")
            yield outcome


def overall(outcomes: list[Outcome]) -> str:
    verdicts = {o.verdict for o in outcomes}
    for verdict in (OTHER_PARAMETERS, BEYOND, WITHIN):
        if verdict in verdicts:
            return verdict
    return IDENTICAL
