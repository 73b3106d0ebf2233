"""Speed: `repro bench` (updates per second) and `repro estimate` (the compute a params file needs)."""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass

from repro.config import Config, DatasetConfig, ModelConfig, RunConfig, TrainingConfig
from repro.tasks import build_table

BENCH_BATCH = 512


@dataclass(frozen=True)
class Rate:
    median: float
    low: float
    high: float
    updates: int
    repeats: int


def measure(model: ModelConfig, updates: int = 0, repeats: int = 3) -> Rate:
    """Updates per second of training alone (shuffles included, evaluation not), after one call that compiles it.

    x / y mod 97, 50% training data, the paper's AdamW, batch 512.
    """
    from repro import datasets
    from repro.train import Trainer

    dataset_config = DatasetConfig("div", 97, 0.5, 0)
    run = RunConfig("bench", "bench", dataset_config, model, TrainingConfig(batch_size=BENCH_BATCH))
    trainer = Trainer(run, datasets.make(dataset_config))
    trainer.train_updates(0, 2)  # compiles
    count = updates or (100 if model.kind == "transformer" else 3000)  # ~3 s each
    rates, start = [], 2
    for _ in range(repeats):
        began = time.perf_counter()
        trainer.train_updates(start, start + count)
        rates.append(count / (time.perf_counter() - began))
        start += count
    return Rate(statistics.median(rates), min(rates), max(rates), count, repeats)


@functools.cache
def _equations(operation: str, modulus: int) -> int:
    return len(build_table(operation, modulus))


def batch_updates(run: RunConfig) -> float:
    """The run's work in batch-512 updates: a full-batch update costs (training set / 512) of them."""
    from repro.train import batch_size

    num_train = round(run.dataset.train_fraction * _equations(run.dataset.operation, run.dataset.modulus))
    return run.training.updates * max(1.0, batch_size(run, num_train) / BENCH_BATCH)


def estimate(config: Config, rates: dict[str, float]) -> dict[str, dict]:
    """Hours of training per group of runs (each named run, each sweep) at `rates` (updates/s per model kind)."""
    groups: dict[str, dict] = {}
    for run in config.runs.values():
        group = run.name.split("/")[0] if "/" in run.name else run.name
        entry = groups.setdefault(group, {"runs": 0, "updates": 0, "hours": 0.0})
        entry["runs"] += 1
        entry["updates"] += run.training.updates
        entry["hours"] += batch_updates(run) / rates[run.model.kind] / 3600
    return groups
