"""Speed: `repro bench` (updates per second, one run and groups), `repro estimate` (the compute a params file needs)
and `repro savings` (what the stopping rule saves, read from committed histories)."""

from __future__ import annotations

import functools
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from repro.config import Config, ConfigError, DatasetConfig, ModelConfig, RunConfig, TrainingConfig
from repro.tasks import build_table

BENCH_BATCH = 512
CPU_GROUP_SIZES = (1, 2, 8)
GPU_GROUP_SIZES = (1, 8, 32, 128)


@dataclass(frozen=True)
class Rate:
    runs: int  # runs trained together
    median: float  # updates per second, all runs together
    low: float
    high: float
    updates: int
    repeats: int


def measure(model: ModelConfig, runs: int = 1, updates: int = 0, repeats: int = 3, precision: str = "fp32") -> Rate:
    """Updates per second of a group of `runs` runs, all together (batch drawing included, evaluation not).

    x / y mod 97, 50% training data, the paper's AdamW, batch 512; each run its
    own seed and split. Timed after one call that compiles.
    """
    from repro import datasets
    from repro.train import GroupTrainer

    configs = [DatasetConfig("div", 97, 0.5, seed) for seed in range(runs)]
    group = [RunConfig(f"bench{seed}", None, d, model, TrainingConfig(batch_size=BENCH_BATCH, seed=seed))
             for seed, d in enumerate(configs)]
    trainer = GroupTrainer(group, [datasets.make(d) for d in configs], precision)
    trainer.train_updates(0, 2)  # compiles
    count = updates or max(20, (100 if model.kind == "transformer" else 3000) // runs)  # ~3 s each on a CPU
    rates, start = [], 2
    for _ in range(repeats):
        began = time.perf_counter()
        trainer.train_updates(start, start + count)
        rates.append(count * runs / (time.perf_counter() - began))
        start += count
    return Rate(runs, statistics.median(rates), min(rates), max(rates), count, repeats)


def group_sizes() -> tuple[int, ...]:
    from repro import backend

    return GPU_GROUP_SIZES if backend.accelerator() == "gpu" else CPU_GROUP_SIZES


@functools.cache
def _equations(operation: str, modulus: int) -> int:
    return len(build_table(operation, modulus))


def batch_updates(run: RunConfig) -> float:
    """The run's work in batch-512 updates: a full-batch update costs (training set / 512) of them."""
    from repro.train import batch_size

    num_train = round(run.dataset.train_fraction * _equations(run.dataset.operation, run.dataset.modulus))
    return run.training.updates * max(1.0, batch_size(run, num_train) / BENCH_BATCH)


def rate_for(rates: dict[int, float], runs: int) -> float:
    """The total rate of a group of `runs` runs: the measured one, else interpolated on a log scale of the size
    between the nearest sizes measured below and above (stacking more runs helps less and less), else that of
    the largest size measured below (no extrapolation upwards)."""
    below = max(size for size in rates if size <= runs)
    above = [size for size in rates if size > runs]
    if below == runs or not above:
        return rates[below]
    above_size = min(above)
    share = (math.log(runs) - math.log(below)) / (math.log(above_size) - math.log(below))
    return rates[below] + share * (rates[above_size] - rates[below])


def group_seconds(config: Config, rates: dict[str, dict[int, float]]) -> dict[str, float]:
    """Seconds of training per group at `rates` (model kind → group size → total updates/s).

    Each group trains at the rate measured for its size (or interpolated, `rate_for`); a full-batch
    update counts as (training set / 512) batch-512 updates. Start-up and evaluation are left out.
    """
    seconds = {}
    for group in config.groups.values():
        members = [config.runs[name] for name in group.members]
        rate = rate_for(rates[members[0].model.kind], len(members))
        seconds[group.name] = sum(batch_updates(run) for run in members) / rate
    return seconds


def estimate(config: Config, rates: dict[str, dict[int, float]]) -> dict[str, dict]:
    """Hours of training per sweep or named run, at `rates` (see group_seconds)."""
    seconds = group_seconds(config, rates)
    out: dict[str, dict] = {}
    for group in config.groups.values():
        members = [config.runs[name] for name in group.members]
        entry = out.setdefault(group.name.split("/")[0], {"runs": 0, "groups": 0, "updates": 0, "hours": 0.0})
        entry["runs"] += len(members)
        entry["groups"] += 1
        entry["updates"] += sum(run.training.updates for run in members)
        entry["hours"] += seconds[group.name] / 3600
    return out


def parse_rates(given: tuple[str, ...], kinds: list[str]) -> dict[str, dict[int, float]]:
    """`repro estimate --rates`: "KIND:RUNS=RATE,RUNS=RATE" once per model kind → kind → runs → updates/s."""
    rates: dict[str, dict[int, float]] = {}
    for text in given:
        try:
            kind, pairs = text.split(":", 1)
            rates[kind] = {int(runs): float(rate) for runs, rate in (pair.split("=") for pair in pairs.split(","))}
        except ValueError:
            raise ConfigError(f"--rates {text!r} is not KIND:RUNS=RATE,… (for example transformer:1=2100,24=5300)") \
                from None
        if any(not math.isfinite(rate) or rate <= 0 for rate in rates[kind].values()):
            raise ConfigError(f"--rates {text!r}: every rate must be a positive, finite number of updates a second")
        if 1 not in rates[kind]:
            raise ConfigError(f"--rates {text!r} needs a positive rate for 1 run (groups of any size fall back on it)")
    missing = [kind for kind in kinds if kind not in rates]
    if missing:
        raise ConfigError(f"--rates gives no rates for {', '.join(missing)}, which params.yaml's runs use")
    return rates


def save_estimate(path: Path, config: Config, device: str, rates: dict[str, dict[int, float]],
                  seconds: dict[str, float]) -> None:
    """`repro estimate --save`'s file: every group's seconds, with the device and the rates they come from."""
    from repro import files

    files.write_json(path, {"device": device, "rates": {k: {str(n): r for n, r in v.items()} for k, v in rates.items()},
                            "scale": config.scale, "group_seconds": seconds})


def read_estimate(path: Path, groups: list[str]) -> dict[str, float]:
    """The group seconds `save_estimate` wrote; refused if damaged or if it lacks any of `groups`."""
    import json

    try:
        seconds = json.loads(path.read_text(encoding="utf-8"))["group_seconds"]
        missing = [name for name in groups if not isinstance(seconds.get(name), (int, float))
                   or isinstance(seconds[name], bool) or not 0 <= seconds[name] < math.inf]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"{path} is no `repro estimate --save` file ({type(error).__name__}: "
                          f"{error}); make it again") from None
    if missing:
        raise ConfigError(f"{path} has no seconds (a finite number, 0 or more) for {len(missing)} group(s) of "
                          f"params.yaml ({', '.join(missing[:3])}…): it was made for other parameters, or edited; "
                          f"make it again")
    return seconds


def figure_order(config: Config) -> list[str]:
    """Every group, in the order in which to train a scale when time is short (or GPU leases are few).

    Figure 1 (center) seed by seed, Figure 2 (left), Figure 2 (right), then the named runs: Figure 1 (left)
    with Figure 4 and Figure 3 (which a CPU can train a slice at a time), then any other group. In a
    sweep, full-batch groups (one per fraction and seed, the costliest) come last.
    """
    from repro.claims import seeds_of

    if config.figures is None:  # an experiments file: its groups in the order params.yaml gives them
        return list(config.groups)
    f = config.figures
    first = [run.group for run in seeds_of(config, f.curves[0])]

    def of(sweep: str) -> list[str]:  # full-batch groups, one per fraction, after those that hold every fraction
        return sorted((g for g in config.groups if g.startswith(f"{sweep}/")),
                      key=lambda g: config.runs[config.groups[g].members[0]].training.full_batch)

    ordered = [
        *of(f.fractions), *of(f.interventions), *of(f.operations),
        *first, *(config.runs[name].group for name in (*f.curves[1:], *f.embeddings)), *config.groups,
    ]
    return list(dict.fromkeys(ordered))


def run_counts(config: Config, names: list[str]) -> list[int]:
    """The run counts of groups `names`, each once, smallest first: the group sizes to `repro bench`."""
    unknown = [name for name in names if name not in config.groups]
    if unknown:
        raise ConfigError(f"not groups of params.yaml: {', '.join(unknown)} (`repro groups` lists them)")
    return sorted({len(config.groups[name].members) for name in names})


def leases(ordered: list[str], seconds: dict[str, float], lease: float) -> list[list[str]]:
    """`ordered`'s groups packed into leases of `lease` seconds, first fit: each group joins the first lease
    with room left, so a short group fills a gap that a longer, earlier one left, and otherwise the order
    stands. A group longer than a lease gets one of its own (it resumes across leases from its checkpoint)."""
    packed: list[list[str]] = []
    room: list[float] = []
    for group in ordered:
        need = seconds[group]
        place = next((i for i, left in enumerate(room) if need <= left), None)
        if place is None:
            packed.append([group])
            room.append(max(lease - need, 0.0))
        else:
            packed[place].append(group)
            room[place] -= need
    return packed


@dataclass(frozen=True)
class Savings:
    """What the stopping rule saves on a sweep or named run, from its committed histories."""

    name: str
    runs: int  # runs in it
    read: int  # runs whose committed history was there to read
    stopping: int  # runs the rule stops before their budget
    work: float  # the runs read, in batch-512 updates (batch_updates) over their whole budgets
    saved: float  # of which the rule leaves out

    @property
    def fraction(self) -> float:
        return self.saved / self.work if self.work else 0.0


def savings(config: Config, histories_dir: Path, records_dir: Path, stop_after: int | None = None) -> list[Savings]:
    """Per sweep (and, with `stop_after`, per named run): where the stopping rule (history_csv.decided_at)
    stops each run whose history is committed, and the work that saves.

    `stop_after`: the rule's log points for every run, as if params.yaml said so; None: each run's own (a
    run without the rule saves nothing). A history trained without the rule is the same as one trained
    with it up to the stop (tests/test_stopping.py), so the committed histories answer either way.
    """
    from repro import history_csv, results

    names = {sweep.name: list(sweep.members) for sweep in config.sweeps.values()}
    if stop_after is not None:
        names.update({name: [name] for name, run in config.runs.items() if run.group == name})
    found = []
    for name, members in names.items():
        read = stopping = 0
        work = saved = 0.0
        for member in members:
            run = config.runs[member]
            path = results.history_file(histories_dir, member)
            if not path.is_file():
                continue
            # A named run trained in part is read as far as its record says (sweeps are recorded whole).
            until = (results.committed_partial(records_dir, member) or {}).get("updates") if run.group == member \
                else None
            rows = history_csv.read(path, run, until=until).to_numpy(dtype=float)
            at = history_csv.decided_at(rows, run.training.stop_after if stop_after is None else stop_after)
            if at is None and rows[-1, 0] < run.training.updates:  # trained in part, not decided yet
                continue
            read += 1
            work += batch_updates(run)
            if at is not None and rows[at, 0] < run.training.updates:
                stopping += 1
                saved += batch_updates(run) * (1 - rows[at, 0] / run.training.updates)
        found.append(Savings(name, len(members), read, stopping, work, saved))
    return found

