"""The verdicts and the rules that decide them, shared by every figure's claims: comparison, threshold,
equivalence, paired, structure and graded (each rule's text is printed in the report)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from repro import analysis


REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE = "reproduced", "not reproduced", "inconclusive", "not testable"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)
THRESHOLD = analysis.THRESHOLD  # "generalizes": validation accuracy ≥ 99%, defined once where histories are read

COMPARISON_RULE = (
    "Comparison: each seed's value of one condition minus the same seed's value of the other. Reproduced when "
    "the difference has the paper's sign in every seed and its mean exceeds the seed-to-seed spread (the larger "
    "of the two conditions' ranges over seeds); not reproduced when the same holds with the opposite sign; "
    "inconclusive otherwise, and always with fewer than two seeds.")
THRESHOLD_RULE = (
    "Threshold: the criterion is checked in each seed. Reproduced when every seed meets it, not reproduced when "
    "none does, inconclusive when the seeds disagree or a seed cannot be decided.")
EQUIVALENCE_RULE = (
    "Equivalence: two conditions \"need about the same\" when each seed's values differ by at most the criterion's "
    "stated margin; not reproduced when every seed's differ by more; inconclusive otherwise and with one seed.")
PAIRED_RULE = (
    "Paired: each seed's value of one condition minus the same seed's value of the other. Reproduced when the mean "
    "difference has the paper's sign and exceeds twice its standard error (the differences' standard deviation "
    "over √seeds), not reproduced when it has the opposite sign by as much, inconclusive otherwise and with fewer "
    "than 3 seeds. A CPU of another kind changes each run as another seed would (docs/exactness.md): a verdict with "
    "two standard errors to spare is one that a second draw of seeds gives too, unless the effect is at its margin.")
MIN_PAIRED_SEEDS = 3
STRUCTURE_RULE = (
    "Structure: a score counts only above the 99th percentile of the same score for the same rows with their "
    "symbols shuffled (200 shuffles), which is what rows unrelated to their symbols give. Above that but below the "
    "claim's strong level is weak structure: not reproduced, and called weak, since the paper shows strong "
    "structure.")


@dataclass(frozen=True)
class Claim:
    id: str
    figure: str  # the PNG under figures/
    statement: str  # the paper's claim, with its number
    criterion: str  # how the verdict is decided, with the tolerance and why
    measured: str
    effect: str  # the measured effect, as the criterion defines it
    spread: str  # its spread over seeds (or "one run")
    seeds: int
    rule: str  # "comparison", "threshold", "structure", or "not testable"
    verdict: str


@dataclass(frozen=True)
class Sweep:
    """A sweep's runs (one row each: operation, train_fraction, seed, intervention, summary numbers) and grid."""

    frame: pd.DataFrame
    grid: dict
    missing: tuple[tuple[str, str], ...] = ()  # (operation, intervention) of each group not trained yet

    def untrained(self, column: str) -> list[str]:
        """The operations or interventions (by `column`) that have a group not trained yet."""
        return sorted({pair[("operation", "intervention").index(column)] for pair in self.missing})


def _lacking(sweep: Sweep, column: str, names) -> str:
    """Why `names` (operations or interventions, by `column`) have no runs: not trained yet, or not in the grid."""
    untrained = sweep.untrained(column)
    waiting, absent = [n for n in names if n in untrained], [n for n in names if n not in untrained]
    return "; ".join([*([f"not trained yet at this scale: {', '.join(waiting)} (a partial sweep)"] if waiting else []),
                      *([f"not in the grid: {', '.join(absent)}"] if absent else [])])


# --- the two rules -------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    differences: tuple[float, ...]  # per seed, first condition minus second
    spread: float
    verdict: str

    @property
    def mean(self) -> float:
        return float(np.mean(self.differences)) if self.differences else math.nan


def compare(first: dict[int, float], second: dict[int, float]) -> Comparison:
    """COMPARISON_RULE on per-seed values {seed: value}; the paper's sign is first > second."""
    seeds = sorted(set(first) & set(second))
    differences = tuple(first[s] - second[s] for s in seeds)
    if len(seeds) < 2:
        return Comparison(differences, math.nan, INCONCLUSIVE)
    spread = max(np.ptp([first[s] for s in seeds]), np.ptp([second[s] for s in seeds]))
    mean = float(np.mean(differences))
    if all(d > 0 for d in differences) and mean > spread:
        verdict = REPRODUCED
    elif all(d < 0 for d in differences) and -mean > spread:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    return Comparison(differences, float(spread), verdict)


@dataclass(frozen=True)
class Paired:
    differences: tuple[float, ...]  # per seed, first condition minus second
    mean: float
    margin: float  # twice the standard error of the mean (NaN with fewer than MIN_PAIRED_SEEDS seeds)
    verdict: str


def paired(differences: list[float]) -> Paired:
    """PAIRED_RULE on per-seed differences (the paper's sign: positive)."""
    values = np.asarray(differences, dtype=float)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < MIN_PAIRED_SEEDS:
        return Paired(tuple(differences), mean, math.nan, INCONCLUSIVE)
    margin = float(2 * values.std(ddof=1) / math.sqrt(len(values)))
    verdict = REPRODUCED if mean > margin else NOT_REPRODUCED if mean < -margin else INCONCLUSIVE
    return Paired(tuple(differences), mean, margin, verdict)


def threshold(passes: list[bool | None]) -> str:
    """THRESHOLD_RULE on each seed's outcome: True, False, or None (cannot be decided)."""
    if passes and all(p is True for p in passes):
        return REPRODUCED
    if passes and all(p is False for p in passes):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """Several comparisons behind one claim: all must hold; one that fails beyond noise fails the claim."""
    if NOT_REPRODUCED in verdicts:
        return NOT_REPRODUCED
    return REPRODUCED if verdicts and all(v == REPRODUCED for v in verdicts) else INCONCLUSIVE


def _per_seed(frame: pd.DataFrame, column: str, value: str) -> dict[int, float]:
    """Each seed's best validation accuracy averaged over the fraction grid (the area under its curve)."""
    rows = frame[frame[column] == value]
    return {int(s): float(v) for s, v in rows.groupby("seed")["best_val_accuracy"].mean().items()}


def _data_needed(frame: pd.DataFrame, column: str, value: str) -> dict[int, float]:
    """Each seed's smallest fraction whose best validation accuracy is ≥ 99% (infinity if none)."""
    found = {}
    for seed, rows in frame[frame[column] == value].groupby("seed"):
        reached = rows.loc[rows["best_val_accuracy"] >= THRESHOLD, "train_fraction"]
        found[int(seed)] = float(reached.min()) if len(reached) else math.inf
    return found


def _generalizes(frame: pd.DataFrame, column: str, value: str) -> bool:
    return bool((frame.loc[frame[column] == value, "best_val_accuracy"] >= THRESHOLD).any())


def _seeds_text(values: dict[int, float], fmt: str = "{:.3f}") -> str:
    return ", ".join(f"seed {s}: " + (fmt.format(v) if math.isfinite(v) else "never") for s, v in values.items())


def _seeds(count: int, one: str) -> str:
    """The spread column of a claim decided per seed: `one` ("one run", "one seed") or "N seeds"."""
    return one if count < 2 else f"{count} seeds"


def _spread_text(c: Comparison) -> str:
    return "one seed" if math.isnan(c.spread) else f"{c.spread:.3f} (seed range)"


def _effect_text(c: Comparison) -> str:
    per_seed = ", ".join(f"{d:+.3f}" for d in c.differences)
    return f"{c.mean:+.3f} (per seed: {per_seed})" if c.differences else "none"


def _not_testable(claim_id, figure, statement, criterion, measured, why: str, seeds: int) -> Claim:
    return Claim(claim_id, figure, statement, criterion, f"{measured}. Not testable: {why}", "—", "—", seeds,
                 "not testable", NOT_TESTABLE)


GRADED_RULE = (
    "Graded: a measured effect at or beyond the criterion's strong level is reproduced; one on the paper's side "
    "but short of it is not reproduced and called weak; none, or the opposite, is not reproduced. One run "
    "each: these claims are about what one run does, and each run is judged on its own.")


def _graded(value: float, strong: float, none: float, larger: bool = True) -> tuple[str, str]:
    """GRADED_RULE: (verdict, "" / "weak" / "none") for `value` against its strong level and its no-effect level
    (`larger`: the paper's side is above them; else below)."""
    sign = 1 if larger else -1
    if sign * value >= sign * strong:
        return REPRODUCED, ""
    return NOT_REPRODUCED, "weak" if sign * value > sign * none else "none"


def _structure(score: float, chance: float, strong: float) -> tuple[str, str]:
    """STRUCTURE_RULE: (verdict, what the score shows): none at or below chance; weak above chance but below
    `strong` (not reproduced: the paper shows strong structure); reproduced at or above `strong`."""
    if score <= chance:
        return NOT_REPRODUCED, "no structure beyond chance"
    return (REPRODUCED, "strong structure") if score >= strong else (NOT_REPRODUCED, "structure beyond chance but weak")
