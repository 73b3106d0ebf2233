"""Datasets on disk: `data/<name>/equations.csv` (one equation a row) and `manifest.json`.

The CSV is for people: the symbols a, b, c as written in the table and the
split ("train" or "validation"). The manifest lists the elements in token
order, so a symbol's token is its position there.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro import files
from repro.config import ConfigError, DatasetConfig
from repro.tasks import EQUALS_SYMBOL, OPERATOR_SYMBOL, build_table, split_mask

S5_CONVENTION = "a · b = b[a] with permutations as arrays: (a · b)[i] = b[a[i]], apply a then b"


@dataclass(frozen=True)
class Dataset:
    manifest: dict
    elements: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    train: np.ndarray  # boolean mask

    @property
    def num_elements(self) -> int:
        return len(self.elements)


def make(config: DatasetConfig) -> Dataset:
    """The table of `config.operation` and its seeded split, in memory."""
    table = build_table(config.operation, config.modulus)
    train = split_mask(len(table), config.train_fraction, config.seed)
    manifest = {
        "operation": config.operation,
        "formula": table.operation.formula,
        "modulus": table.modulus,
        "train_fraction": config.train_fraction,
        "seed": config.seed,
        "equations": len(table),
        "train": int(train.sum()),
        "validation": int((~train).sum()),
        "sequence": ["a", OPERATOR_SYMBOL, "b", EQUALS_SYMBOL, "c"],
        "elements": list(table.elements),
    }
    if table.operation.group == "s5":
        manifest["composition"] = S5_CONVENTION
    a, b, c = (column.astype(np.int32) for column in (table.a, table.b, table.c))
    return Dataset(manifest, table.elements, a, b, c, train)


def write(dataset: Dataset, out_dir: Path) -> None:
    """Writes equations.csv and manifest.json to `out_dir`, atomically as a whole."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["a", "b", "c", "split"])
    names = dataset.elements
    for a, b, c, is_train in zip(dataset.a, dataset.b, dataset.c, dataset.train):
        writer.writerow([names[a], names[b], names[c], "train" if is_train else "validation"])
    with files.atomic_directory(out_dir) as tmp:
        (tmp / "equations.csv").write_text(text.getvalue(), encoding="utf-8")
        files.write_json(tmp / "manifest.json", dataset.manifest)


def load(data_dir: Path, expected: DatasetConfig | None = None) -> Dataset:
    """Reads a generated dataset; checks it matches `expected` when given."""
    manifest_path, csv_path = data_dir / "manifest.json", data_dir / "equations.csv"
    for path in (manifest_path, csv_path):
        if not path.is_file():
            raise ConfigError(
                f"missing data file {path}; generate it first with `repro generate {data_dir.name}` "
                "(or `dvc repro`)"
            )
    regenerate = f"regenerate it with `repro generate {data_dir.name}`"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        elements, equations = tuple(manifest["elements"]), int(manifest["equations"])
        if not all(isinstance(e, str) for e in elements):
            raise TypeError("elements must be symbols (strings)")
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{manifest_path} is damaged ({type(error).__name__}: {error}); {regenerate}") from None
    if expected is not None:
        stale = {
            key: (manifest.get(key), getattr(expected, key))
            for key in ("operation", "train_fraction", "seed")
            if manifest.get(key) != getattr(expected, key)
        }
        if manifest.get("modulus") is not None and manifest["modulus"] != expected.modulus:
            stale["modulus"] = (manifest["modulus"], expected.modulus)
        if stale:
            details = ", ".join(f"{k}: file has {v[0]!r}, params.yaml has {v[1]!r}" for k, v in stale.items())
            raise ConfigError(
                f"{data_dir} was generated with other parameters ({details}); "
                f"regenerate it with `repro generate {data_dir.name}`"
            )
    token = {symbol: i for i, symbol in enumerate(elements)}
    try:
        with open(csv_path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"{csv_path} is not readable UTF-8 CSV ({error}); {regenerate}") from None
    try:
        a, b, c = (np.array([token[row[k]] for row in rows], dtype=np.int32) for k in "abc")
        splits = [row["split"] for row in rows]
    except (KeyError, TypeError) as error:
        raise ConfigError(f"{csv_path} is malformed ({error!r}); {regenerate}") from None
    if set(splits) - {"train", "validation"} or len(rows) != equations:
        raise ConfigError(f"{csv_path} does not match its manifest; {regenerate}")
    found = Dataset(manifest, elements, a, b, c, np.array([s == "train" for s in splits]))
    if expected is not None:  # every answer and split label, against the table params.yaml defines
        made = make(expected)
        if len(made.a) != len(a):
            raise ConfigError(f"{csv_path} has {len(a):,} equations, the table params.yaml defines "
                              f"{len(made.a):,}; {regenerate}")
        wrong = np.flatnonzero((made.a != a) | (made.b != b) | (made.c != c) | (made.train != found.train))
        if made.elements != elements or len(wrong):
            where = f"row {wrong[0] + 2}" if len(wrong) else "its elements"
            raise ConfigError(f"{csv_path} differs from the table params.yaml defines ({where}); {regenerate}")
    return found
