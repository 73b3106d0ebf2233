"""The one configuration object: `params.yaml`, read and validated once, at the edge.

Everything downstream receives frozen dataclasses and may trust them. Every
mistake in the file is reported as a `ConfigError` naming the key, what was
wrong and what would be right.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from repro.tasks import check_fraction, check_operation

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
    # transformer (paper-spec §2)
    layers: int = 2
    width: int = 128
    heads: int = 4
    feedforward: int = 512
    # mlp (paper-spec §5)
    hidden: int = 128


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
    checkpoint_seconds: float = 60.0  # wall time between resumable checkpoints


@dataclass(frozen=True)
class RunConfig:
    name: str
    dataset_name: str
    dataset: DatasetConfig
    model: ModelConfig
    training: TrainingConfig

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A hash of everything that determines this run's results."""
        data = self.to_dict()
        # How often a checkpoint is written changes no result.
        del data["training"]["checkpoint_seconds"]
        del data["name"]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Config:
    datasets: dict[str, DatasetConfig]
    models: dict[str, ModelConfig]
    runs: dict[str, RunConfig]
    figures: dict[str, list[str]]

    def run(self, name: str) -> RunConfig:
        if name not in self.runs:
            raise ConfigError(f"no run named {name!r} in params.yaml; runs: {', '.join(self.runs)}")
        return self.runs[name]

    def dataset(self, name: str) -> DatasetConfig:
        if name not in self.datasets:
            raise ConfigError(
                f"no dataset named {name!r} in params.yaml; datasets: {', '.join(self.datasets)}"
            )
        return self.datasets[name]


# --- validation -------------------------------------------------------------

_TYPES = {int: "an integer", float: "a number", str: "a string"}


def _value(where: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where} must be {_TYPES[kind]}, got {value!r}")
    return value


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {value!r}")
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
        kind = {"int": int, "float": float, "str": str}[field.type]
        kwargs[name] = _value(f"{where}.{name}", values[name], kind)
    return cls(**kwargs)


def _positive(where: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")


def _check_dataset(where: str, d: DatasetConfig) -> None:
    try:
        check_operation(d.operation, d.modulus)
        check_fraction(d.train_fraction)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def _check_model(where: str, m: ModelConfig) -> None:
    if m.kind not in ("transformer", "mlp"):
        raise ConfigError(f"{where}.kind must be 'transformer' or 'mlp', got {m.kind!r}")
    for name in ("layers", "width", "heads", "feedforward", "hidden"):
        _positive(f"{where}.{name}", getattr(m, name))
    if m.width % m.heads:
        raise ConfigError(f"{where}: width {m.width} must be divisible by heads {m.heads}")


def _check_training(where: str, t: TrainingConfig) -> None:
    for name in ("learning_rate", "epsilon", "batch_size", "updates", "log_points"):
        _positive(f"{where}.{name}", getattr(t, name))
    for name in ("weight_decay", "warmup_updates", "seed", "checkpoint_seconds"):
        if getattr(t, name) < 0:
            raise ConfigError(f"{where}.{name} must not be negative, got {getattr(t, name)!r}")
    for name in ("beta_1", "beta_2"):
        if not 0.0 <= getattr(t, name) < 1.0:
            raise ConfigError(f"{where}.{name} must lie in [0, 1), got {getattr(t, name)!r}")


def parse(raw: Any) -> Config:
    """Validates the parsed YAML of params.yaml and returns the Config."""
    raw = _mapping("params.yaml", raw)
    sections = ("datasets", "models", "training", "runs", "figures")
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"params.yaml: unknown section(s) {', '.join(unknown)}; allowed: {', '.join(sections)}")
    for section in sections:
        if section not in raw:
            raise ConfigError(f"params.yaml: missing section {section!r}")

    datasets = {}
    for name, value in _mapping("datasets", raw["datasets"]).items():
        where = f"datasets.{name}"
        datasets[name] = _dataclass(DatasetConfig, where, _mapping(where, value))
        _check_dataset(where, datasets[name])

    models = {}
    for name, value in _mapping("models", raw["models"]).items():
        where = f"models.{name}"
        models[name] = _dataclass(ModelConfig, where, _mapping(where, value))
        _check_model(where, models[name])

    defaults = _mapping("training", raw["training"])
    _check_training("training", _dataclass(TrainingConfig, "training", defaults))

    runs = {}
    for name, value in _mapping("runs", raw["runs"]).items():
        where = f"runs.{name}"
        value = dict(_mapping(where, value))
        for key in ("dataset", "model"):
            if key not in value:
                raise ConfigError(f"{where}: missing required key {key!r}")
        dataset_name, model_name = value.pop("dataset"), value.pop("model")
        if dataset_name not in datasets:
            raise ConfigError(f"{where}.dataset: {dataset_name!r} is not in datasets ({', '.join(datasets)})")
        if model_name not in models:
            raise ConfigError(f"{where}.model: {model_name!r} is not in models ({', '.join(models)})")
        training = _dataclass(TrainingConfig, where, value, defaults)
        _check_training(where, training)
        runs[name] = RunConfig(name, dataset_name, datasets[dataset_name], models[model_name], training)

    figures = {}
    if "curves" not in _mapping("figures", raw["figures"]):
        raise ConfigError("figures: missing key 'curves' (the runs drawn in Figure 1 left and Figure 4)")
    for name, value in raw["figures"].items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"figures.{name} must be a list of run names, got {value!r}")
        missing = [v for v in value if v not in runs]
        if missing:
            raise ConfigError(f"figures.{name}: unknown run(s) {', '.join(missing)}; runs: {', '.join(runs)}")
        figures[name] = value
    return Config(datasets, models, runs, figures)


def load(path: str | Path = DEFAULT_PARAMS) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found; run from the repository root or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return parse(raw)
