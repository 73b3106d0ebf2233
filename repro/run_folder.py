"""A trained run's folder, runs/<run>/: the one module that writes it (`write_run`) and reads its run.json and
provenance.json.

    history.csv        history_csv.py
    model.weights.h5   Keras (`save_weights` / `load_weights`), where the run's weights are kept
    run.json           what determines the results: parameters and their fingerprint, seeds, dataset counts,
                       group, backend, precision, versions (runner.record builds it); for a run whose
                       weights are not kept, their SHA-256 (`weights_digest`); for a run stopped before
                       its budget, how far it got (`PARTIAL`), or where and why its rule stopped it (`STOPPED`)
    provenance.json    the machine and environment that made them (provenance.environment), and the
                       slices: each process that trained the run, on which machine, which updates, how long

run.json is the same wherever the run is reproduced on the same backend; provenance.json is not, so
`repro verify` hashes run.json and leaves provenance.json out.

Weights are kept unless a sweep's `keep_weights` says otherwise (config.py): at the paper scale
983 transformers' weights would be 1.7 GB, more than a lent GPU machine can send back. The digest in
run.json still pins those weights bit for bit, so `repro verify` loses nothing by their absence.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from repro import files, history_csv
from repro.config import ConfigError, RunConfig

RUN_JSON, PROVENANCE_JSON, WEIGHTS = "run.json", "provenance.json", "model.weights.h5"
WEIGHTS_DIGEST = "weights_sha256"  # run.json's key for the digest of weights that were not kept
# run.json's key for a named run stopped before its budget (`repro train --for`, Ctrl-C): {"updates": the
# last logged update, "budget": the run's updates}. Its folder holds the history so far and no weights.
PARTIAL = "partial"
# run.json's key for a run its rule stopped before its budget (TrainingConfig.stop_after): {"update", "budget",
# "rule"}. It is a whole result: its history ends there (history_csv.decided_at), its weights are those there.
STOPPED = "stopped_early"
REQUIRED = ("run", "fingerprint", "seeds", "batch_size", "dataset", "determinism", "versions")  # what readers use


def weights_digest(weights: list[np.ndarray]) -> str:
    """SHA-256 of a run's trained weights: each array's shape, then its float32 bytes, in the model's order."""
    digest = hashlib.sha256()
    for array in weights:
        array = np.ascontiguousarray(array, dtype="<f4")
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def result_files(record: dict) -> tuple[str, ...]:
    """The files that hold a run's results (run.json given as `record`): what `repro verify` compares."""
    kept = () if WEIGHTS_DIGEST in record or PARTIAL in record else (WEIGHTS,)
    return (history_csv.FILE, *kept, RUN_JSON)


def check_weights(path: Path, group: str) -> None:
    """Refuses a weights file that is not whole: every array in it must read back (a truncated or damaged
    HDF5 file opens, or hashes, without complaint; it fails here instead of in whoever loads it later)."""
    import h5py

    def read_all(_, item):
        if isinstance(item, h5py.Dataset):
            item[()]

    try:
        with h5py.File(path, "r") as weights:
            weights.visititems(read_all)
    except Exception as error:  # h5py raises OSError, KeyError, RuntimeError… for damage; all mean the same here
        raise ConfigError(f"{path} is damaged ({type(error).__name__}: {error}); retrain it with "
                          f"`repro train {group}`") from None


def fingerprints(run_dir: Path, record: dict) -> dict[str, str]:
    """sha256 of each result file (run.json given as `record`): committed in records/, so a fresh run can be compared."""
    found = {}
    for name in result_files(record):
        path = run_dir / name
        if not path.is_file():
            raise ConfigError(f"missing {path}: the run folder is incomplete; retrain it with "
                              f"`repro train {record['run']['group']}`")
        if name == WEIGHTS:
            check_weights(path, record["run"]["group"])
        found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def write_run(run_dir: Path, history: np.ndarray, record: dict, provenance: dict,
              save_weights: Callable[[Path], None] | None = None) -> None:
    """The whole folder of one run: its history (log points × history_csv.COLUMNS), the weights where they are
    kept (`save_weights(path)`, Keras' `save_weights` of the trained model), run.json and provenance.json.

    The caller makes it atomic, with every other run of its process (files.atomic_directory).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / history_csv.FILE).write_text(history_csv.text(history), encoding="utf-8")
    if save_weights is not None:
        save_weights(run_dir / WEIGHTS)
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
        missing = [key for key in REQUIRED if not isinstance(record.get(key), (dict, str, int, float))]
        if missing:
            raise KeyError(f"no {', '.join(missing)}")
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path} is damaged ({type(error).__name__}: {error}); {retrain}") from None
    if fingerprint != run.fingerprint():
        raise ConfigError(f"{run_dir} was trained with other parameters than params.yaml's (an interrupted or "
                          f"skipped retrain?); {retrain}")
    return record


def complete(run_dir: Path, fingerprint: str) -> bool:
    """Whether `run_dir` holds a whole run (history and run.json, not partial) trained with these parameters."""
    try:
        record = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("fingerprint") == fingerprint and PARTIAL not in record
            and (run_dir / history_csv.FILE).is_file())


def made_on(run_dir: Path, record: dict) -> dict:
    """The machine and settings that made a run, as `repro verify` reports them."""
    try:
        provenance = json.loads((run_dir / PROVENANCE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        provenance = {}
    cpu = provenance.get("cpu", {})
    return {**{k: record["determinism"][k] for k in ("backend", "device", "precision")},
            "cpu": cpu.get("model"), "logical_cores": cpu.get("logical_cores"),
            # Two CPUs of one model name may differ in vector units, and with them in round-off (docs/exactness.md).
            "vector_extensions": cpu.get("vector_extensions"),
            "commit": provenance.get("git", {}).get("commit")}
