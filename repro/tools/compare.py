"""`repro compare`: the results in this working tree against those committed at a git revision.

A reviewer on another machine runs `dvc repro`, which rewrites the committed
histories, metrics, figures and claims report with what their CPU computed.
Round-off differs between CPUs (docs/exactness.md), and a grokking run
amplifies it, so the question is not only "are the bytes the same?" but "how
far apart are the numbers, and does any verdict change?". This answers all
three, reading the committed side from git (not from the working tree):

- files: which of the compared folders' files are byte-identical, differ, or
  are on one side only;
- numbers: for every history (histories/ and progress/), the largest absolute
  difference of each logged quantity over every run and update, and for
  metrics/ the largest difference of each metric;
- verdicts: each claim of reports/claims.json, committed and here.

records/ is left out: it names the commit and the machine that made each run,
so it differs across machines by design, and its numbers are metrics/'s.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from repro.config import ConfigError

FOLDERS = ("histories", "metrics", "progress", "figures", "reports")
CLAIMS = "reports/claims.json"
IDENTICAL, SAME_VERDICTS, VERDICTS_DIFFER = "bit-identical", "same verdicts", "verdicts differ"
EXIT_CODES = {IDENTICAL: 0, SAME_VERDICTS: 10, VERDICTS_DIFFER: 11}


@dataclass
class Comparison:
    revision: str
    identical: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    only_committed: list[str] = field(default_factory=list)
    only_here: list[str] = field(default_factory=list)
    largest: dict[str, tuple[float, str]] = field(default_factory=dict)  # quantity: (largest |difference|, where)
    verdicts: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # claim: (committed, here)

    @property
    def changed_verdicts(self) -> dict[str, tuple[str | None, str | None]]:
        return {claim: pair for claim, pair in self.verdicts.items() if pair[0] != pair[1]}

    @property
    def outcome(self) -> str:
        if self.changed_verdicts:
            return VERDICTS_DIFFER
        return SAME_VERDICTS if self.different or self.only_committed or self.only_here else IDENTICAL


def _git(root: Path, *args: str, data: bytes | None = None) -> bytes:
    try:
        return subprocess.run(["git", *args], cwd=root, input=data, capture_output=True, check=True).stdout
    except FileNotFoundError:
        raise ConfigError("`repro compare` needs git, and a clone of the repository") from None
    except subprocess.CalledProcessError as error:
        raise ConfigError(f"git {' '.join(args)} failed: {error.stderr.decode(errors='replace').strip()} (run "
                          f"`repro compare` in a clone of the repository, with a revision it holds)") from None


def committed_files(root: Path, revision: str) -> dict[str, bytes]:
    """Every file under FOLDERS at `revision`, read in one `git cat-file --batch`."""
    names = [n for n in _git(root, "ls-tree", "-r", "--name-only", revision, "--", *FOLDERS).decode().splitlines()
             if not Path(n).name.startswith(".")]
    if not names:
        raise ConfigError(f"{revision} holds no results under {', '.join(FOLDERS)}")
    out = _git(root, "cat-file", "--batch", data="".join(f"{revision}:{n}\n" for n in names).encode())
    found, at = {}, 0
    for name in names:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        found[name] = out[header_end + 1:header_end + 1 + size]
        at = header_end + 1 + size + 1  # the blob, then a newline
    return found


def working_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for folder in FOLDERS for p in sorted((root / folder).rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def _numbers(path: str, data: bytes, where: str) -> pd.DataFrame | None:
    """A history (a CSV with an `update` column) as numbers indexed by update; None for any other file."""
    if not path.endswith(".csv"):
        return None
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except (ValueError, UnicodeDecodeError):
        return None
    if "update" not in frame.columns:
        return None
    repeated = frame["update"][frame["update"].duplicated()]
    if len(repeated):
        raise ConfigError(f"{path} {where} is damaged: update {repeated.iloc[0]} is logged twice; remake it with "
                          f"`dvc repro` (or take the committed one back with `git checkout -- {path}`)")
    return frame.set_index("update").select_dtypes("number")


def _flat(tree, prefix: str = "") -> dict[str, float]:
    """The numbers of a JSON tree by dotted path (metrics/*.json)."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return {prefix.rstrip("."): float(tree)}
    return {}


def _note(largest: dict, quantity: str, difference: float, where: str) -> None:
    if math.isnan(difference):
        difference = math.inf  # a number on one side, not on the other
    if quantity not in largest or difference > largest[quantity][0]:
        largest[quantity] = (difference, where)


def _differences(path: str, old: bytes, new: bytes, largest: dict, revision: str) -> None:
    before, after = _numbers(path, old, f"at {revision}"), _numbers(path, new, "here")
    if before is not None and after is not None:
        for column in before.columns.intersection(after.columns):
            if column.startswith("share_"):  # a spectrum's 48 shares: one entry for all of them
                name = "progress: frequency shares"
            else:
                name = f"{path.split('/')[0]}: {column}"
            joined = pd.concat([before[column], after[column]], axis=1, join="inner").to_numpy(dtype=np.float64)
            if len(joined):
                gap = np.abs(joined[:, 0] - joined[:, 1])
                _note(largest, name, float(np.nanmax(gap)) if not np.isnan(gap).all() else math.nan, path)
        return
    if path.startswith("metrics/") and path.endswith(".json"):
        try:
            before_numbers, after_numbers = _flat(json.loads(old)), _flat(json.loads(new))
        except ValueError:
            return
        for key in before_numbers.keys() & after_numbers.keys():
            _note(largest, f"metrics: {key.split('.')[-1]}", abs(before_numbers[key] - after_numbers[key]), path)


def _verdicts(data: bytes | None, where: str) -> dict[str, str]:
    if data is None:
        return {}
    try:
        return {claim["id"]: claim["verdict"] for claim in json.loads(data)["claims"]}
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{CLAIMS} {where} is damaged; remake it with `repro claims` (or `dvc repro`)") from None


def compare(root: Path, revision: str = "HEAD") -> Comparison:
    """The results under `root` against those committed at `revision` (see the module's docstring)."""
    committed = committed_files(root, revision)
    here = working_files(root)
    if CLAIMS not in here:
        raise ConfigError(f"no {CLAIMS} here: run `dvc repro` (or `repro claims`) first, then compare")
    result = Comparison(revision)
    for path in sorted(committed.keys() | here.keys()):
        if path not in here:
            result.only_committed.append(path)
        elif path not in committed:
            result.only_here.append(path)
        elif committed[path] == here[path]:
            result.identical.append(path)
        else:
            result.different.append(path)
            _differences(path, committed[path], here[path], result.largest, revision)
    before, after = _verdicts(committed.get(CLAIMS), f"at {revision}"), _verdicts(here[CLAIMS], "here")
    result.verdicts = {claim: (before.get(claim), after.get(claim)) for claim in dict.fromkeys([*before, *after])}
    return result
