"""Figure 1 (center)'s claims: S5 over training fractions × seeds (`assess`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from repro import tasks
from repro.files import figure_file
from repro.claims.rules import (
    INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Claim, Sweep, _lacking, _not_testable, _seeds_text,
)


STEEP_REGION = (0.25, 0.35)  # "around 25–30%", with the next points of a 1–2% grid above it
STEEP_GROWTH = (0.30, 0.60)  # the paper's 40–50% per point, ± 10 points for reading a slope off a log axis


def _growth(points: pd.Series) -> float:
    """Rise of the updates per percentage point of data removed, from a least-squares line through log(updates)."""
    x, y = 100 * points.index.to_numpy(dtype=float), np.log(points.to_numpy(dtype=float))
    slope = np.polyfit(x, y, 1)[0]
    return float(math.exp(-slope) - 1)


def _rank_correlation(x: pd.Series, y: pd.Series) -> float:
    """Spearman's rank correlation ("never" ranks last); NaN where either side is constant."""
    x, y = x.rank(), y.replace(math.inf, np.finfo(float).max).rank()
    if x.nunique() < 2 or y.nunique() < 2:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def assess(sweep: Sweep) -> list[Claim]:
    frame, figure = sweep.frame, figure_file("fractions")
    seeds = frame["seed"].nunique()
    low, high = STEEP_REGION
    region = frame[(frame["train_fraction"] >= low - 1e-9) & (frame["train_fraction"] <= high + 1e-9)]
    medians = region.groupby("train_fraction")["updates_to_99_val"].median()
    medians = medians[np.isfinite(medians)]
    statement = ("Around 25–30% data (S5 product), removing 1% of the data raises the median updates to 99% "
                 "validation accuracy by 40–50%.")
    criterion = (f"Fit a line to log(median updates to 99% validation) over the fractions within "
                 f"{low:.0%}–{high:.0%} that generalized; its growth per point of data removed must be "
                 f"{STEEP_GROWTH[0]:.0%}–{STEEP_GROWTH[1]:.0%} (the paper's 40–50% ± 10 points read off a log "
                 "axis). The same fit for each seed gives the spread; every seed's growth must be positive.")
    fractions = sorted(frame["train_fraction"].unique())
    untrained = _lacking(sweep, "operation", sweep.untrained("operation"))  # empty for a whole sweep
    if untrained:
        claims = [_not_testable("fig1_center_steep", figure, statement, criterion, "—", untrained, seeds)]
    elif len(medians) < 2:
        claims = [_not_testable(
            "fig1_center_steep", figure, statement, criterion,
            f"fractions in the grid: {', '.join(f'{f:.0%}' for f in fractions)}",
            f"fewer than two fractions within {low:.0%}–{high:.0%} generalized, so there is no slope to measure",
            seeds)]
    else:
        growth = _growth(medians)
        per_seed = {}
        for seed, rows in region.groupby("seed"):
            own = rows.set_index("train_fraction")["updates_to_99_val"]
            own = own[np.isfinite(own)]
            per_seed[int(seed)] = _growth(own) if len(own) >= 2 else math.nan
        in_range = STEEP_GROWTH[0] <= growth <= STEEP_GROWTH[1]
        if seeds < 2:
            verdict = INCONCLUSIVE
        elif in_range and all(g > 0 for g in per_seed.values()):
            verdict = REPRODUCED
        elif not in_range and all(math.isfinite(g) and (g < STEEP_GROWTH[0]) == (growth < STEEP_GROWTH[0])
                                  and not STEEP_GROWTH[0] <= g <= STEEP_GROWTH[1] for g in per_seed.values()):
            verdict = NOT_REPRODUCED
        else:
            verdict = INCONCLUSIVE
        finite = [g for g in per_seed.values() if math.isfinite(g)]
        claims = [Claim("fig1_center_steep", figure, statement, criterion,
                        "median updates to 99% validation: "
                        + ", ".join(f"{f:.0%}: {t:,.0f}" for f, t in medians.items()),
                        f"{growth:+.0%} per point (per seed: {_seeds_text(per_seed, '{:+.0%}')})",
                        f"{min(finite):+.0%} to {max(finite):+.0%}" if finite else "—",
                        seeds, "threshold", verdict)]

    statement = "Updates until 99% training accuracy stay within 10³–10⁴ and trend down as the data shrinks."
    band = (500, 20_000)
    elements = max(120 if tasks.OPERATIONS[op].group == "s5" else sweep.grid["modulus"] for op in sweep.grid["operations"])
    chance = 10 / elements
    criterion = (f"Testable at the fractions where training is memorization: in every seed, validation accuracy is "
                 f"still below {chance:.1%} (ten times chance) when training accuracy first reaches 99%; where it "
                 f"is not, the updates to fit measure fitting already helped by generalization, which is not the "
                 f"paper's memorization curve; at least 3 such fractions are needed for a trend. There, every "
                 f"fraction's median within {band[0]:,}–{band[1]:,} updates (10³–10⁴ with a factor of 2 for reading "
                 "the paper's log axis), and in every seed a positive rank correlation (Spearman) between fraction "
                 "and updates, i.e. fewer updates with less data.")
    if untrained:
        claims.append(_not_testable("fig1_center_train", figure, statement, criterion, "—", untrained, seeds))
        return claims
    at_fit = frame.groupby("train_fraction")["val_accuracy_at_fit"].max()  # the highest over seeds
    memorized = [f for f, v in at_fit.items() if v < chance]
    at_fit_text = "validation accuracy when training first reached 99% (highest over seeds): " + ", ".join(
        f"{f:.0%}: {v:.3f}" for f, v in at_fit.items())
    if len(memorized) < 3:
        claims.append(_not_testable(
            "fig1_center_train", figure, statement, criterion, at_fit_text,
            f"validation accuracy had left chance when training fitted at {len(at_fit) - len(memorized)} of the "
            f"{len(at_fit)} fractions, leaving {len(memorized)} where training is memorization (3 needed)", seeds))
        return claims
    frame = frame[frame["train_fraction"].isin(memorized)]
    train = frame.groupby("train_fraction")["updates_to_99_train"].median()
    in_band = bool(np.isfinite(train).all() and train.between(*band).all())
    trends = {int(seed): _rank_correlation(rows["train_fraction"], rows["updates_to_99_train"])
              for seed, rows in frame.groupby("seed")}
    if not in_band or all(t < 0 for t in trends.values()) and seeds >= 2:
        verdict = NOT_REPRODUCED
    elif seeds >= 2 and all(t > 0 for t in trends.values()):
        verdict = REPRODUCED
    else:
        verdict = INCONCLUSIVE
    claims.append(Claim(
        "fig1_center_train", figure, statement, criterion,
        "median updates to 99% train: " + ", ".join(f"{f:.0%}: {t:,.0f}" for f, t in train.items()),
        f"rank correlation with fraction: {_seeds_text(trends, '{:+.2f}')}",
        f"{min(trends.values()):+.2f} to {max(trends.values()):+.2f}", seeds, "threshold", verdict))
    return claims
