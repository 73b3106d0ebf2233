"""A trained run's folder, runs/<run>/: the one module that writes and reads its run.json and provenance.json.

    history.csv        history_csv.py
    model.weights.h5   Keras (`save_weights` / `load_weights`)
    run.json           what determines the results: parameters and their fingerprint, seeds, dataset counts,
                       group, backend, precision, versions (train.record builds it)
    provenance.json    the machine and environment that made them (provenance.environment)

run.json is the same wherever the run is reproduced on the same backend; provenance.json is not, so
`repro verify` hashes run.json and leaves provenance.json out.
"""

from __future__ import annotations

import json
from pathlib import Path

from repro import files
from repro.config import ConfigError, RunConfig

RUN_JSON, PROVENANCE_JSON = "run.json", "provenance.json"


def write(run_dir: Path, record: dict, provenance: dict) -> None:
    files.write_json(run_dir / RUN_JSON, record)
    files.write_json(run_dir / PROVENANCE_JSON, provenance)


def read(run_dir: Path, run: RunConfig) -> dict:
    """run.json, refused unless the run was trained with `run`'s parameters (params.yaml's now)."""
    path = run_dir / RUN_JSON
    retrain = f"retrain it with `repro train {run.group}`"
    if not path.is_file():
        raise ConfigError(f"missing {path}; train the run first with `repro train {run.group}`")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        fingerprint = record["fingerprint"]
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path} is damaged ({type(error).__name__}: {error}); {retrain}") from None
    if fingerprint != run.fingerprint():
        raise ConfigError(f"{run_dir} was trained with other parameters than params.yaml's (an interrupted or "
                          f"skipped retrain?); {retrain}")
    return record


def made_on(run_dir: Path, record: dict) -> dict:
    """The machine and settings that made a run, as `repro verify` reports them."""
    try:
        provenance = json.loads((run_dir / PROVENANCE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        provenance = {}
    cpu = provenance.get("cpu", {})
    return {**{k: record["determinism"][k] for k in ("backend", "device", "precision")},
            "cpu": cpu.get("model"), "logical_cores": cpu.get("logical_cores"),
            "commit": provenance.get("git", {}).get("commit")}
