"""The one configuration object: `params.yaml`, read and validated once, at the edge (700 lines on purpose: every
key of the file, its meaning and every rule it must meet, in the one module that every stage reads).

Everything downstream receives frozen dataclasses and may trust them. Every
mistake in the file is reported as a `ConfigError` naming the key, what was
wrong and what would be right.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from repro.tasks import CYCLIC, check_fraction, check_operation, cyclic_group, table_size

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(ValueError):
    """params.yaml (or a command-line choice) is wrong; the message says how to fix it."""


@dataclass(frozen=True)
class DatasetConfig:
    operation: str
    modulus: int = 97
    train_fraction: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    kind: str  # "transformer" or "mlp"
    # transformer (PAPER.md §2)
    layers: int = 2
    width: int = 128
    heads: int = 4
    feedforward: int = 512
    # mlp (PAPER.md §5)
    hidden: int = 128
    # transformer: "answer" reads the answer at "=" of [a, ∘, b, =] over the table's elements and two symbols;
    # "official" is the official code's sequence, [<eos>, a, ∘, b, =, c] over its 239-token vocabulary, the
    # loss the mean of the answer's and of the <eos> after it (docs/fidelity.md: an experiment, not the default)
    sequence: str = "answer"


@dataclass(frozen=True)
class TrainingConfig:
    """The optimiser and schedule. AdamW with weight_decay 0 is Adam."""

    learning_rate: float = 1e-3
    weight_decay: float = 1.0
    beta_1: float = 0.9
    beta_2: float = 0.98
    epsilon: float = 1e-8
    warmup_updates: int = 10
    batch_size: int = 512  # the paper's min(512, half the training set): capped at run time
    updates: int = 100_000
    log_points: int = 120  # evaluations, log-spaced over the updates
    seed: int = 0
    # The interventions of Figure 2 (left), PAPER.md §3. All off by default.
    full_batch: bool = False  # every update sees the whole training set
    dropout: float = 0.0  # residual dropout (transformer) or hidden-unit dropout (mlp)
    update_noise: float = 0.0  # std of Gaussian noise added to every weight after each update
    weight_noise: float = 0.0  # std of Gaussian noise on the weights in each training forward pass
    decay_towards: str = "zero"  # weight decay pulls towards "zero" or towards the "init"ial weights
    # Stop a run once it has told what its claims read (history_csv.decided_at): training and validation
    # accuracy ≥ 99% at this many log points in a row. 0: train the whole budget.
    stop_after: int = 0
    # How minibatches are drawn (docs/fidelity.md). "epochs": every epoch a fresh permutation of the training
    # rows, cut into full batches, the rest dropped; "official": the same, the last, smaller batch kept, as the
    # official code's iterator does; "replacement": every batch drawn uniformly with replacement.
    batch_order: str = "epochs"
    # The dtype the loss (softmax cross-entropy) is computed in from the float32 logits: in float32 the loss of an
    # example whose answer leads the other logits by more than ~17 is exactly 0, and so is its gradient there
    # (Prieto et al. 2025's softmax collapse); float64 keeps both (docs/fidelity.md).
    loss_dtype: str = "float32"


# Fields added after results were committed, with the value that leaves them out of run.json and of the
# fingerprint: runs trained before keep their records and fingerprints, byte for byte.
_ADDED_LATER = {"training": {"stop_after": 0, "batch_order": "epochs", "loss_dtype": "float32"},
                "model": {"sequence": "answer"}}
LOSS_DTYPES = ("float32", "float64")
BATCH_ORDERS = ("epochs", "official", "replacement")
SEQUENCES = ("answer", "official")


@dataclass(frozen=True)
class RunConfig:
    name: str
    dataset_name: str | None  # the dataset under data/; None for sweep members, built in memory
    dataset: DatasetConfig
    model: ModelConfig
    training: TrainingConfig
    group: str = ""  # the group it trains in (its own name for a named run)
    directory: str = ""  # its output folder under runs/

    def __post_init__(self):
        for key in ("group", "directory"):
            if not getattr(self, key):
                object.__setattr__(self, key, self.name)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for part, added in _ADDED_LATER.items():
            for key, unset in added.items():
                if data[part][key] == unset:
                    del data[part][key]
        return data

    def fingerprint(self) -> str:
        """A hash of everything that determines this run's results."""
        data = self.to_dict()
        for key in ("name", "group", "directory"):
            del data[key]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GroupConfig:
    """Runs that share a model, an operation table, a budget and a log grid.

    A named run is a group of one. A sweep has one group per operation,
    intervention and seed, `<sweep>/<operation>-<intervention>-seed<seed>`,
    holding every fraction (full-batch runs: one per fraction too,
    `group_name`), written to runs/<group>/. On a GPU a group's runs are one program, their weights
    stacked along a leading axis; on a CPU each run is
    its own call of a program shared by the group (repro/train.py). DVC caches
    a whole sweep (runs/<sweep>/), which one process trains.
    """

    name: str
    members: tuple[str, ...]  # run names, in grid order


@dataclass(frozen=True)
class SweepConfig:
    """A grid of runs: operations × fractions × seeds × interventions.

    Member `op-fraction-seed-intervention` is the run `<sweep>/op-fraction-seed-intervention`;
    it trains in group `<sweep>/op-intervention-seedS` (full-batch runs: `<sweep>/op-fraction-intervention-seedS`,
    `group_name` says why), with outputs in runs/<group>/op-fraction-seed-intervention/.
    The seed sets both the split and the training seed.
    """

    name: str
    model: str
    modulus: int
    operations: tuple[str, ...]
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    interventions: tuple[str, ...]
    members: tuple[str, ...]  # run names, in grid order
    kept: tuple[str, ...]  # members whose weights are written (`keep_weights`); the others keep a digest


@dataclass(frozen=True)
class FiguresConfig:
    curves: tuple[str, ...]  # runs of Figure 1 (left) and Figure 4
    table: str  # the dataset drawn as Figure 1 (right)
    fractions: str  # the sweep of Figure 1 (center)
    interventions: str  # the sweep of Figure 2 (left)
    operations: str  # the sweep of Figure 2 (right)
    embeddings: tuple[str, ...]  # Figure 3: an S5 run, then modular addition with and without weight decay
    decay_seeds: str | None  # a sweep repeating Figure 3's x + y pair at other seeds, for fig3_decay_clearer
    progress: tuple[str, ...]  # Figure 5: runs whose progress measures it plots (members of `progress`)


@dataclass(frozen=True)
class ExecutionConfig:
    """How runs are executed, not what they compute: no result depends on it, so no stage reruns for it."""

    checkpoint_seconds: float = 60.0  # wall time between resumable checkpoints


@dataclass(frozen=True)
class Config:
    scale: str  # "laptop" (./params.yaml) or "paper" (paper/params.yaml): docs/paper-scale.md
    datasets: dict[str, DatasetConfig]
    models: dict[str, ModelConfig]
    runs: dict[str, RunConfig]  # named runs and every sweep member
    sweeps: dict[str, SweepConfig]
    groups: dict[str, GroupConfig]  # runs of one table and budget: one program on a GPU
    interventions: dict[str, dict[str, Any]]
    figures: FiguresConfig | None  # None: an experiments file (`figures: none`), whose runs no pipeline draws
    execution: ExecutionConfig
    progress: tuple[str, ...] = ()  # named runs on a cyclic group's table: their progress measures (repro/progress.py)

    def run(self, name: str) -> RunConfig:
        if name not in self.runs:
            raise ConfigError(f"no run named {name!r} in params.yaml; runs: {', '.join(self.runs)}")
        return self.runs[name]

    def group(self, name: str) -> GroupConfig:
        """The group called `name`, or the group that run `name` trains in."""
        if name in self.groups:
            return self.groups[name]
        if name in self.runs:
            return self.groups[self.runs[name].group]
        raise ConfigError(f"no group or run named {name!r} in params.yaml; groups: {', '.join(self.groups)}")

    def trained_by(self, name: str) -> list[GroupConfig]:
        """What `repro train NAME` trains: every group of sweep NAME, or group NAME, or the group of run NAME."""
        if name in self.sweeps:
            return [self.groups[g] for g in dict.fromkeys(self.runs[m].group for m in self.sweeps[name].members)]
        if name in self.groups or name in self.runs:
            return [self.group(name)]
        raise ConfigError(f"no sweep, group or run named {name!r} in params.yaml; sweeps: {', '.join(self.sweeps)}; "
                          f"groups: {', '.join(self.groups)}")

    def drawn(self) -> FiguresConfig:
        """`figures`, or a ConfigError where the file draws none (an experiments file, docs/fidelity.md)."""
        if self.figures is None:
            raise ConfigError("this params.yaml draws no figures (figures: none): it holds experiments, which "
                              "`repro train` trains; figures, claims and Figure 3's analysis need a pipeline's file")
        return self.figures

    def keeps_weights(self, run: RunConfig) -> bool:
        """Whether run `run` writes its weights (a named run always does; a sweep member if `keep_weights` says so)."""
        return _keeps_weights(run.name, self.sweeps)

    def sweep(self, name: str) -> SweepConfig:
        if name not in self.sweeps:
            raise ConfigError(f"no sweep named {name!r} in params.yaml; sweeps: {', '.join(self.sweeps)}")
        return self.sweeps[name]

    def dataset(self, name: str) -> DatasetConfig:
        if name not in self.datasets:
            raise ConfigError(
                f"no dataset named {name!r} in params.yaml; datasets: {', '.join(self.datasets)}"
            )
        return self.datasets[name]


# --- validation -------------------------------------------------------------

_TYPES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _value(where: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ConfigError(f"{where} must be {_TYPES[kind]}, got {value!r}")
    if kind is float and not math.isfinite(value):  # YAML's .nan and .inf would train a NaN run that looks finished
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return value


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {value!r}")
    return value


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _named(section: str, value: Any) -> dict[str, Any]:
    """`section` as a mapping whose keys are safe folder names: each names data/, runs/ or checkpoint folders, so
    `.`, `..`, an empty name or one with a slash would write outside its folder (or replace all of it)."""
    value = _mapping(section, value)
    for name in value:
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
            raise ConfigError(f"{section}: {name!r} is not a usable name; use letters, digits, _, - and . only, "
                              f"starting with a letter or digit (it names folders)")
    return value


def _dataclass(cls: type, where: str, raw: dict[str, Any], defaults: dict[str, Any] | None = None):
    """Builds `cls` from `raw` (over `defaults`), checking every key's name and type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}"
        )
    values = dict(defaults or {})
    values.update(raw)
    kwargs = {}
    for name, field in fields.items():
        if name not in values:
            if field.default is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing required key {name!r}")
            continue
        kind = {"int": int, "float": float, "str": str, "bool": bool}[field.type]
        kwargs[name] = _value(f"{where}.{name}", values[name], kind)
    return cls(**kwargs)


def _positive(where: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")


MAX_MODULUS = 1000  # a table of p² equations; the whole table is evaluated at once (p = 97 in the paper)


def _check_split(where: str, operation: str, modulus: int, fraction: float) -> None:
    """Both splits non-empty: a fraction too close to 0 or 1 for the table's size is refused here, not in training."""
    size = table_size(operation, modulus)
    train = int(round(fraction * size))
    if not 0 < train < size:
        raise ConfigError(f"{where}: train_fraction {fraction} of the {size:,} equations of {operation} leaves an "
                          f"empty training or validation set; choose a fraction further from 0 and 1")


def _check_dataset(where: str, d: DatasetConfig) -> None:
    try:
        check_operation(d.operation, d.modulus)
        check_fraction(d.train_fraction)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    if d.modulus > MAX_MODULUS:
        raise ConfigError(f"{where}.modulus {d.modulus} is above {MAX_MODULUS}: its table of {d.modulus ** 2:,} "
                          f"equations would not fit in memory; the paper uses 97")
    _check_split(where, d.operation, d.modulus, d.train_fraction)
    if d.seed < 0:
        raise ConfigError(f"{where}.seed must not be negative, got {d.seed!r}")


def _check_model(where: str, m: ModelConfig) -> None:
    if m.kind not in ("transformer", "mlp"):
        raise ConfigError(f"{where}.kind must be 'transformer' or 'mlp', got {m.kind!r}")
    for name in ("layers", "width", "heads", "feedforward", "hidden"):
        _positive(f"{where}.{name}", getattr(m, name))
    if m.width % m.heads:
        raise ConfigError(f"{where}: width {m.width} must be divisible by heads {m.heads}")
    if m.sequence not in SEQUENCES:
        raise ConfigError(f"{where}.sequence must be one of {', '.join(SEQUENCES)}, got {m.sequence!r}")
    if m.sequence != "answer" and m.kind != "transformer":
        raise ConfigError(f"{where}.sequence {m.sequence!r} is a transformer's input; an MLP reads the two operands")


def _check_training(where: str, t: TrainingConfig) -> None:
    for name in ("learning_rate", "epsilon", "batch_size", "updates", "log_points"):
        _positive(f"{where}.{name}", getattr(t, name))
    for name in ("weight_decay", "warmup_updates", "seed", "update_noise", "weight_noise"):
        if getattr(t, name) < 0:
            raise ConfigError(f"{where}.{name} must not be negative, got {getattr(t, name)!r}")
    if t.seed >= 2 ** 31:  # it keys the random draws of training as a 32-bit integer
        raise ConfigError(f"{where}.seed must be below 2^31 (2,147,483,648), got {t.seed!r}")
    if not 0.0 <= t.dropout < 1.0:
        raise ConfigError(f"{where}.dropout must lie in [0, 1), got {t.dropout!r}")
    if not 0 <= t.stop_after <= t.log_points:
        raise ConfigError(f"{where}.stop_after must lie in 0 … log_points ({t.log_points}), got {t.stop_after!r}")
    if t.batch_order not in BATCH_ORDERS:
        raise ConfigError(f"{where}.batch_order must be one of {', '.join(BATCH_ORDERS)}, got {t.batch_order!r}")
    if t.loss_dtype not in LOSS_DTYPES:
        raise ConfigError(f"{where}.loss_dtype must be one of {', '.join(LOSS_DTYPES)}, got {t.loss_dtype!r}")
    if t.full_batch and t.batch_order != "epochs":
        raise ConfigError(f"{where}: full_batch sees the whole training set every update, so batch_order "
                          f"{t.batch_order!r} means nothing there; leave it at 'epochs'")
    if t.decay_towards not in ("zero", "init"):
        raise ConfigError(f"{where}.decay_towards must be 'zero' or 'init', got {t.decay_towards!r}")
    for name in ("beta_1", "beta_2"):
        if not 0.0 <= getattr(t, name) < 1.0:
            raise ConfigError(f"{where}.{name} must lie in [0, 1), got {getattr(t, name)!r}")


def _list(where: str, value: Any, kind: type) -> tuple:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list, got {value!r}")
    items = tuple(_value(f"{where}[{i}]", v, kind) for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise ConfigError(f"{where} lists an item twice: {value!r}")
    return items


def _one_of(where: str, name: Any, known: dict, what: str) -> str:
    if name not in known:
        raise ConfigError(f"{where}: {name!r} is not in {what} ({', '.join(known)})")
    return name


def _run(name, dataset_name, dataset, model, overrides, defaults, group="", directory="") -> RunConfig:
    training = _dataclass(TrainingConfig, f"runs.{name}", overrides, defaults)
    _check_training(f"runs.{name}", training)
    return RunConfig(name, dataset_name, dataset, model, training, group, directory)


def group_name(sweep: str, operation: str, intervention: str, seed: int, fraction: float | None = None) -> str:
    """A sweep group's name: `<sweep>/op-intervention-seedS`, or `<sweep>/op-fraction-intervention-seedS` for
    full-batch runs.

    One group per seed, so that a group fits a lent GPU lease (15 minutes, start-up included): Figure 1
    (center)'s 20 fractions of one seed are 2·10⁶ updates, about 6 minutes at the 5,300 updates/s an H100
    gave 24 runs (docs/gpu.md); its 60 runs would not end in one. And a group's batches are padded to its widest on a GPU (one program), while a
    full-batch run's batch is its whole training set: in one group with every fraction, a run at 20% would
    cost what one at 90% costs (S5: 12,960 examples an update, 25 minibatches). One group per fraction pads
    nothing and is an eighth of the work.
    """
    if fraction is None:
        return f"{sweep}/{operation}-{intervention}-seed{seed}"
    return f"{sweep}/{operation}-{fraction}-{intervention}-seed{seed}"


def _check_group(group: GroupConfig, runs: dict[str, RunConfig]) -> None:
    first = runs[group.members[0]]
    for name in group.members[1:]:
        run = runs[name]
        for what, mine, theirs in (
            ("model", run.model, first.model),
            ("operation", (run.dataset.operation, run.dataset.modulus), (first.dataset.operation, first.dataset.modulus)),
            ("updates", run.training.updates, first.training.updates),
            ("log_points", run.training.log_points, first.training.log_points),
            ("loss_dtype", run.training.loss_dtype, first.training.loss_dtype),
        ):
            if mine != theirs:
                raise ConfigError(f"group {group.name}: {name} and {first.name} differ in {what} ({mine} vs {theirs}); "
                                  "runs trained together must share the model, table, budget, log grid and loss dtype")


def member_name(operation: str, fraction: float, seed: int, intervention: str) -> str:
    """A sweep member's name."""
    return f"{operation}-{fraction}-{seed}-{intervention}"


def _sweep(name, raw, models, interventions, defaults) -> tuple[SweepConfig, dict[str, RunConfig]]:
    where = f"sweeps.{name}"
    raw = _mapping(where, raw)
    keys = ("model", "modulus", "operations", "fractions", "seeds", "interventions", "training")
    unknown = sorted(set(raw) - {*keys, "keep_weights"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(keys)}, keep_weights")
    missing = [k for k in keys if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    model = _one_of(f"{where}.model", raw["model"], models, "models")
    modulus = _value(f"{where}.modulus", raw["modulus"], int)
    operations = _list(f"{where}.operations", raw["operations"], str)
    fractions = _list(f"{where}.fractions", raw["fractions"], float)
    seeds = _list(f"{where}.seeds", raw["seeds"], int)
    if any(seed < 0 for seed in seeds):
        raise ConfigError(f"{where}.seeds must not be negative, got {list(seeds)!r}")
    chosen = _list(f"{where}.interventions", raw["interventions"], str)
    for intervention in chosen:
        _one_of(f"{where}.interventions", intervention, interventions, "interventions")
    sweep_training = {**defaults, **_mapping(f"{where}.training", raw["training"])}
    runs = {}
    for operation, fraction, seed, intervention in itertools.product(operations, fractions, seeds, chosen):
        dataset = DatasetConfig(operation, modulus, fraction, seed)
        _check_dataset(where, dataset)
        member = member_name(operation, fraction, seed, intervention)
        overrides = {**interventions[intervention], "seed": seed}
        full_batch = {**sweep_training, **overrides}.get("full_batch", False)
        group = group_name(name, operation, intervention, seed, fraction if full_batch else None)
        runs[f"{name}/{member}"] = _run(f"{name}/{member}", None, dataset, models[model], overrides, sweep_training,
                                        group, f"{group}/{member}")
    kept = _kept_weights(where, raw.get("keep_weights", "all"), name, runs)
    sweep = SweepConfig(name, model, modulus, operations, fractions, seeds, chosen, tuple(runs), kept)
    return sweep, runs


def _keeps_weights(run: str, sweeps: dict[str, SweepConfig]) -> bool:
    sweep = run.split("/", 1)[0]
    return sweep not in sweeps or run in sweeps[sweep].kept


def _kept_weights(where: str, value: Any, sweep: str, runs: dict[str, RunConfig]) -> tuple[str, ...]:
    """`keep_weights`: "all" (the default), "none", or a list of member names (`op-fraction-seed-intervention`)."""
    if value == "all":
        return tuple(runs)
    if value == "none":
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where}.keep_weights must be 'all', 'none' or a list of member names, got {value!r}")
    kept = tuple(f"{sweep}/{member}" for member in _list(f"{where}.keep_weights", value, str))
    for member, name in zip(value, kept):
        if name not in runs:
            raise ConfigError(f"{where}.keep_weights: {member!r} is not a member of the sweep; members are named "
                              f"operation-fraction-seed-intervention, for example {next(iter(runs)).split('/', 1)[1]}")
    return kept


def _figures(raw: Any, datasets, runs, sweeps) -> FiguresConfig | None:
    if raw in ("none", None):  # an experiments file: its runs are trained, and read by no figure stage
        return None
    raw = _mapping("figures", raw)
    fields = [f.name for f in dataclasses.fields(FiguresConfig)]
    unknown, missing = sorted(set(raw) - set(fields)), [f for f in fields if f not in raw]
    if unknown or missing:
        raise ConfigError(f"figures: unknown key(s) {unknown} / missing key(s) {missing}; expected: {', '.join(fields)}")
    curves = _list("figures.curves", raw["curves"], str)
    embeddings = _list("figures.embeddings", raw["embeddings"], str)
    if len(embeddings) != 3:
        raise ConfigError("figures.embeddings must name 3 runs: S5, then x+y with and without weight decay")
    for run in (*curves, *embeddings):
        _one_of("figures", run, runs, "runs")
        if runs[run].training.stop_after:
            raise ConfigError(f"figures: {run} stops early (stop_after: {runs[run].training.stop_after}), but Figures 1 "
                              f"(left), 3 and 4 read a run to the end of its budget; give it stop_after: 0")
    operations = [runs[name].dataset.operation for name in embeddings]
    if operations[0] not in ("s5_mul", "s5_conj", "s5_xyx") or operations[1:] != ["add", "add"]:
        raise ConfigError(f"figures.embeddings must name an S5 run, then two x + y runs; got operations {operations}")
    fractions = sweeps[_one_of("figures.fractions", raw["fractions"], sweeps, "sweeps")]
    if embeddings[0] not in fractions.members and runs[embeddings[0]].group != embeddings[0]:
        raise ConfigError(f"figures.embeddings[0] ({embeddings[0]}) must be a member of the sweep figures.fractions "
                          f"({raw['fractions']}; dvc.yaml's Figure 3 stages depend on that sweep's folder) "
                          f"or a named run (paper/dvc.yaml's depends on the run's folder)")
    for name in embeddings:
        if not _keeps_weights(name, sweeps):
            sweep, member = name.split("/", 1)
            raise ConfigError(f"figures.embeddings: Figure 3 reads the weights of {name}, which sweeps.{sweep}."
                              f"keep_weights does not keep; add {member!r} to that list")
    return FiguresConfig(
        curves=curves,
        table=_one_of("figures.table", raw["table"], datasets, "datasets"),
        **{k: _one_of(f"figures.{k}", raw[k], sweeps, "sweeps") for k in ("fractions", "interventions", "operations")},
        embeddings=embeddings,
        decay_seeds=_decay_seeds(raw["decay_seeds"], embeddings, runs, sweeps),
        progress=() if raw["progress"] == [] else _list("figures.progress", raw["progress"], str),
    )


def decay_pairs(sweep: SweepConfig, embeddings: tuple[str, ...], runs: dict[str, RunConfig]) -> dict[int, tuple[str, str]]:
    """{seed: (run with weight decay, run without)}: the members of `sweep` that repeat Figure 3's x + y pair
    (embeddings[1], embeddings[2]) at another seed, the same in every other setting. Raises ConfigError when a
    member repeats neither, or a seed lacks one of the two."""
    pairs: dict[int, list[str | None]] = {seed: [None, None] for seed in sweep.seeds}
    for member in sweep.members:
        run, seed = runs[member], runs[member].training.seed
        for side, name in enumerate(embeddings[1:]):
            named = runs[name]
            if (run.model == named.model and run.dataset == dataclasses.replace(named.dataset, seed=seed)
                    and run.training == dataclasses.replace(named.training, seed=seed)):
                pairs[seed][side] = member
                break
        else:
            raise ConfigError(f"figures.decay_seeds: {member} is not {embeddings[1]} or {embeddings[2]} at another "
                              f"seed (operation, fraction, model and training must be theirs; only the seed differs)")
    for seed, (with_decay, without) in pairs.items():
        if with_decay is None or without is None:
            raise ConfigError(f"figures.decay_seeds: seed {seed} has no member repeating "
                              f"{embeddings[1] if with_decay is None else embeddings[2]}; give the sweep both")
    return {seed: (with_decay, without) for seed, (with_decay, without) in pairs.items()}


def _decay_seeds(raw: Any, embeddings: tuple[str, ...], runs: dict[str, RunConfig],
                 sweeps: dict[str, SweepConfig]) -> str | None:
    """`figures.decay_seeds`: none, or a sweep repeating Figure 3's x + y pair at seeds other than theirs."""
    if raw in (None, "none"):
        return None
    name = _one_of("figures.decay_seeds", raw, sweeps, "sweeps")
    with_decay, without = (runs[n] for n in embeddings[1:])
    if with_decay.training.weight_decay <= 0 or without.training.weight_decay != 0:
        raise ConfigError(f"figures.decay_seeds: Figure 3's x + y pair must be with weight decay, then without "
                          f"({embeddings[1]}: {with_decay.training.weight_decay:g}, {embeddings[2]}: "
                          f"{without.training.weight_decay:g})")
    taken = {with_decay.training.seed, without.training.seed} & set(sweeps[name].seeds)
    if taken:
        raise ConfigError(f"figures.decay_seeds: sweeps.{name} repeats seed {sorted(taken)[0]}, which "
                          f"{embeddings[1]} and {embeddings[2]} already are; give it other seeds")
    decay_pairs(sweeps[name], embeddings, runs)
    unkept = [m for m in sweeps[name].members if not _keeps_weights(m, sweeps)]
    if unkept:
        raise ConfigError(f"figures.decay_seeds: Figure 3's claim reads the weights of {unkept[0]}, which "
                          f"sweeps.{name}.keep_weights does not keep; keep them all")
    return name


def _progress(raw: Any, runs: dict[str, RunConfig], figures: FiguresConfig | None) -> tuple[str, ...]:
    """`progress`: every named run on a cyclic group's table, each once; Figure 5's runs among them (none in
    an experiments file, which has no pipeline to measure them)."""
    names = () if raw == [] else _list("progress", raw, str)  # empty where no named run is on a cyclic table
    if figures is None:
        if names:
            raise ConfigError("progress: a file with `figures: none` has no pipeline to measure progress in; "
                              "give it `progress: []`")
        return ()
    for name in names:
        run = runs[_one_of("progress", name, runs, "runs")]
        if run.group != name:
            raise ConfigError(f"progress: {name} is a sweep member; progress measures are for named runs")
        if run.training.stop_after:
            raise ConfigError(f"progress: {name} stops early (stop_after: {run.training.stop_after}), but its progress "
                              f"measures follow it to the end of its budget; give it stop_after: 0")
        if not cyclic_group(run.dataset.operation, run.dataset.modulus):
            raise ConfigError(f"progress: {name} trains on {run.dataset.operation} mod {run.dataset.modulus}, not a "
                              f"cyclic group's table ({', '.join(CYCLIC)}, x · y and x / y mod a prime only)")
    expected = [n for n, r in runs.items() if r.group == n and cyclic_group(r.dataset.operation, r.dataset.modulus)]
    if len(set(names)) != len(names) or set(names) != set(expected):
        raise ConfigError(f"progress must list every named run on a cyclic group's table once: {', '.join(expected)}; "
                          f"got {', '.join(names) or 'none'}")
    for name in figures.progress:
        if name not in names:
            raise ConfigError(f"figures.progress: {name!r} is not listed under `progress`")
    return names


def parse(raw: Any) -> Config:
    """Validates the parsed YAML of params.yaml and returns the Config."""
    raw = _mapping("params.yaml", raw)
    sections = ("scale", "datasets", "models", "training", "interventions", "runs", "sweeps", "figures", "progress",
                "execution")
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"params.yaml: unknown section(s) {', '.join(unknown)}; allowed: {', '.join(sections)}")
    for section in sections:
        if section not in raw:
            raise ConfigError(f"params.yaml: missing section {section!r}")

    datasets = {}
    for name, value in _named("datasets", raw["datasets"]).items():
        where = f"datasets.{name}"
        datasets[name] = _dataclass(DatasetConfig, where, _mapping(where, value))
        _check_dataset(where, datasets[name])

    models = {}
    for name, value in _named("models", raw["models"]).items():
        where = f"models.{name}"
        models[name] = _dataclass(ModelConfig, where, _mapping(where, value))
        _check_model(where, models[name])

    defaults = _mapping("training", raw["training"])
    if "checkpoint_seconds" in defaults:
        raise ConfigError("training.checkpoint_seconds is now execution.checkpoint_seconds (it changes no result, "
                          "so editing it must not retrain anything); move it there")
    _check_training("training", _dataclass(TrainingConfig, "training", defaults))

    interventions = {}
    for name, value in _named("interventions", raw["interventions"]).items():
        where = f"interventions.{name}"
        if "-" in name:  # a member is named op-fraction-seed-intervention, and read back from its last "-"
            raise ConfigError(f"{where}: an intervention's name may not hold '-' (sweep members are named "
                              f"operation-fraction-seed-intervention); write {name.replace('-', '_')!r}")
        interventions[name] = dict(_mapping(where, value or {}))
        _check_training(where, _dataclass(TrainingConfig, where, interventions[name], defaults))

    runs = {}
    for name, value in _named("runs", raw["runs"]).items():
        where = f"runs.{name}"
        value = dict(_mapping(where, value))
        for key in ("dataset", "model"):
            if key not in value:
                raise ConfigError(f"{where}: missing required key {key!r}")
        dataset_name = _one_of(f"{where}.dataset", value.pop("dataset"), datasets, "datasets")
        model_name = _one_of(f"{where}.model", value.pop("model"), models, "models")
        runs[name] = _run(name, dataset_name, datasets[dataset_name], models[model_name], value, defaults)

    sweeps = {}
    for name, value in _named("sweeps", raw["sweeps"]).items():
        if name in runs:
            raise ConfigError(f"sweeps.{name}: a run has the same name; rename one of them")
        sweeps[name], members = _sweep(name, value, models, interventions, defaults)
        runs.update(members)

    members: dict[str, list[str]] = {}
    for run in runs.values():
        members.setdefault(run.group, []).append(run.name)
    groups = {name: GroupConfig(name, tuple(names)) for name, names in members.items()}
    for group in groups.values():
        _check_group(group, runs)

    figures = _figures(raw["figures"], datasets, runs, sweeps)
    scale = _value("scale", raw["scale"], str)
    if scale.startswith("paper") and figures is not None and figures.decay_seeds:
        # paper/dvc.yaml drops the stage input (repro/tools/pipelines.py): the paper shows one run each, and so do we.
        raise ConfigError("figures.decay_seeds: the paper scale decides Figure 3's claims on one run each, as the "
                          "paper shows them (paper/dvc.yaml has no input for more seeds); set it to none")
    execution = _dataclass(ExecutionConfig, "execution", _mapping("execution", raw["execution"]))
    if execution.checkpoint_seconds < 0:
        raise ConfigError(f"execution.checkpoint_seconds must not be negative, got {execution.checkpoint_seconds!r}")
    progress = _progress(raw["progress"], runs, figures)
    return Config(scale, datasets, models, runs, sweeps, groups, interventions, figures, execution, progress)


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the last one would win unseen; DVC refuses
    such a file outright)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load(path: str | Path = DEFAULT_PARAMS) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found; run from the repository root or pass --params PATH")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeys)
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text ({error}); save it as UTF-8") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return parse(raw)
