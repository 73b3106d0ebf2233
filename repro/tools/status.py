"""`repro trained` and `repro status`: where every training stage stands, and what its runs cost to train.

Not a stage: it reads runs/ as it is. `paper/campaign.sh record` writes `repro status` to paper/STATUS.md,
the campaign's progress page (slices, hours, CPUs), which the README links once instead of carrying it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from repro import run_folder
from repro.config import Config, ConfigError, GroupConfig
from repro.files import RUNS_DIR


def made(config: Config, name: str) -> dict | None:
    """run.json of run `name` if runs/ holds it made with params.yaml's parameters, its files all there."""
    from repro import run_folder

    run_dir = RUNS_DIR / config.runs[name].directory
    try:
        record = run_folder.read(run_dir, config.runs[name])
        run_folder.fingerprints(run_dir, record)  # a history or weights file missing: not trained
    except ConfigError:
        return None
    return record


def complete(config: Config, group: str) -> bool:
    """Whether every run of `group` is here, whole (not stopped before its budget)."""
    records = [made(config, member) for member in config.groups[group].members]
    return all(r is not None and run_folder.PARTIAL not in r for r in records)


@dataclass(frozen=True)
class StageState:
    stage: str  # train@RUN or train_sweep@SWEEP
    sweep: str | None
    groups: list[GroupConfig]
    done: list[str]  # the groups here, whole
    stopped: list[dict]  # a named run stopped before its budget: its record's PARTIAL ({updates, budget})
    in_part: bool  # a sweep whose folder holds finished groups only

    @property
    def whole(self) -> bool:
        return len(self.done) == len(self.groups)

    def recordable(self, partial: bool) -> bool:
        return self.whole or partial and (self.in_part or bool(self.stopped))

    def describe(self) -> str:
        if self.whole:
            return "complete"
        if self.stopped:
            return f"partial, trained to {self.stopped[0]['updates']:,} of {self.stopped[0]['budget']:,} updates"
        if not self.done:
            return "not trained"
        return f"partial, {len(self.done)} of {len(self.groups)} groups: {', '.join(self.done)}"


def stage_states(config: Config) -> list[StageState]:
    """Every training stage of params.yaml (named runs, then sweeps) and what runs/ holds of it."""
    stages = {**{f"train@{name}": (None, [config.group(name)]) for name, run in config.runs.items()
                 if run.group == name},
              **{f"train_sweep@{name}": (name, config.trained_by(name)) for name in config.sweeps}}
    found = []
    for stage, (sweep, groups) in stages.items():
        records = {member: made(config, member) for g in groups for member in g.members}
        done = [g.name for g in groups if all(records[m] is not None and run_folder.PARTIAL not in records[m]
                                              for m in g.members)]
        # A named run stopped before its budget (`repro train --for`): its folder holds the history so far.
        stopped = [records[m][run_folder.PARTIAL] for g in groups for m in g.members
                   if sweep is None and records[m] is not None and run_folder.PARTIAL in records[m]]
        # A sweep in part: its folder holds finished groups only (a group's folder appears whole when it ends).
        in_part = (len(done) < len(groups) and sweep is not None and (RUNS_DIR / sweep).is_dir()
                   and all(g.name in done for g in groups if (RUNS_DIR / g.name).exists()))
        found.append(StageState(stage, sweep, groups, done, stopped, in_part))
    return found


def _slices(run_dir: Path) -> list[dict]:
    try:
        return json.loads((run_dir / run_folder.PROVENANCE_JSON).read_text(encoding="utf-8")).get("slices", [])
    except (OSError, ValueError):
        return []


def _cpu(piece: dict) -> str:
    extensions = piece.get("vector_extensions") or []
    widest = next((x for x in ("avx512", "avx2") if x in extensions or x + "f" in extensions), None)
    return piece.get("cpu", "unknown CPU") + (f" ({widest})" if widest else "")


def page(config: Config, title: str) -> str:
    """The status page: every training stage's state, then each named run's slices, hours and CPUs."""
    lines = [f"# {title}", "", "Written by `repro status` (`paper/campaign.sh record` rewrites it); the state of "
             "runs/ when it was written. Hours are wall-clock hours of the machine that trained each slice.", "",
             "| stage | state |", "|---|---|"]
    states = stage_states(config)
    lines += [f"| `{s.stage}` | {s.describe()} |" for s in states]
    lines += ["", "| run | updates trained | slices | hours | CPUs | first slice | last slice |",
              "|---|---|---|---|---|---|---|"]
    for s in states:
        if s.sweep is not None:
            continue
        name = s.stage.split("@", 1)[1]
        slices = _slices(RUNS_DIR / config.runs[name].directory)
        if not slices:
            continue
        reached = max(piece.get("updates", [0, 0])[1] for piece in slices)
        budget = config.runs[name].training.updates
        cpus = sorted({_cpu(piece) for piece in slices})
        started = sorted(piece.get("started", "") for piece in slices)
        lines.append(f"| `{name}` | {reached:,} of {budget:,} | {len(slices)} | "
                     f"{sum(piece.get('seconds', 0) for piece in slices) / 3600:.1f} | {'; '.join(cpus)} | "
                     f"{started[0][:10]} | {started[-1][:10]} |")
    return "\n".join(lines) + "\n"
