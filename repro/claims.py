"""The claims report: each claim of paper-spec §4, the number measured here and a verdict.

Verdicts are computed from the metrics files, never typed:
    reproduced / not reproduced / not testable at this scale
"Not testable" means the run that would test the claim is not in this scale's
grid (for example the paper's 10⁶-update Adam run); the measured number is
still shown where there is one.

Where a claim is qualitative, the criterion used to decide it is stated in
the report next to the verdict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from repro.evaluate import sweep_frame

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE = "reproduced", "not reproduced", "not testable at this scale"
THRESHOLD = 0.99  # "generalizes": best validation accuracy ≥ 99%, as for the 99% curves of Figure 1


@dataclass(frozen=True)
class Claim:
    id: str
    figure: str  # the PNG under figures/
    statement: str  # the paper's claim, with its number
    criterion: str  # how the verdict is decided from the metrics
    measured: str
    verdict: str


def _mean_best(frame: pd.DataFrame, key: str, value: str) -> float:
    """Best validation accuracy averaged over the grid's fractions and seeds (a curve's area)."""
    return float(frame.loc[frame[key] == value, "best_val_accuracy"].mean())


def _data_needed(frame: pd.DataFrame, key: str, value: str) -> tuple[float, bool]:
    """(smallest fraction whose mean best accuracy ≥ 99%, found); (largest fraction, False) if none."""
    means = frame[frame[key] == value].groupby("train_fraction")["best_val_accuracy"].mean()
    reached = means[means >= THRESHOLD]
    return (float(reached.index.min()), True) if len(reached) else (float(means.index.max()), False)


def _fmt_needed(needed: tuple[float, bool]) -> str:
    return f"{needed[0]:.0%}" if needed[1] else f"> {needed[0]:.0%}"


def _figure1(run: dict) -> list[Claim]:
    s = run["setting"]
    train99, val99, delay = run["updates_to_99_train"], run["updates_to_99_val"], run["generalization_delay"]
    fits = isinstance(train99, int) and train99 < 1000
    paper_setting = s["weight_decay"] == 0 and s["budget"] >= 100_000
    if not paper_setting:
        delay_verdict = NOT_TESTABLE
    else:
        delay_verdict = REPRODUCED if isinstance(delay, float) and delay >= 100 else NOT_REPRODUCED
    setting = (f"{s['model']} on {s['operation']}, {s['train_fraction']:.0%} data, lr {s['learning_rate']:g}, "
               f"weight decay {s['weight_decay']:g}, {s['budget']:,} updates")
    return [
        Claim("fig1_fits_early", "fig1_left_accuracy.png",
              "Training accuracy is close to perfect before 10³ updates (x/y mod 97, 50% data).",
              "99% training accuracy before update 1,000.",
              f"99% training accuracy at update {train99} ({setting})",
              REPRODUCED if fits else NOT_REPRODUCED),
        Claim("fig1_generalizes_late", "fig1_left_accuracy.png",
              "Validation accuracy rises only after about 1000× more updates than training accuracy needed "
              "(Adam without weight decay, 10⁶ updates).",
              "Testable with Adam (weight decay 0) and ≥ 10⁵ updates; reproduced if 99% validation comes "
              "≥ 100× later than 99% training accuracy.",
              f"99% validation at update {val99}: {delay}× the updates to 99% training ({setting})",
              delay_verdict),
    ]


def _figure4(run: dict) -> Claim:
    descents = run["val_loss_descents"]
    return Claim("fig4_double_descent", "fig4_loss.png",
                 "The validation loss descends twice (x/y mod 97).",
                 "The validation loss falls, rises ≥ 20% above its lowest value so far, then falls below it.",
                 f"{descents} descent(s) of the validation loss", REPRODUCED if descents >= 2 else NOT_REPRODUCED)


def _fractions(sweep: dict) -> list[Claim]:
    frame = sweep_frame(sweep)
    medians = frame.groupby("train_fraction")[["updates_to_99_val", "updates_to_99_train"]].median()
    val = medians["updates_to_99_val"]
    val = val[np.isfinite(val)]
    # Growth of the median time per percentage point of data removed, between the two smallest
    # fractions that generalized.
    growth, where = None, "fewer than two fractions generalized"
    if len(val) >= 2:
        (f1, t1), (f2, t2) = list(val.items())[:2]
        growth = (t1 / t2) ** (1 / (100 * (f2 - f1))) - 1
        where = f"{growth:+.0%} per point of data removed between {f2:.0%} and {f1:.0%}"
    in_range = growth is not None and 0.2 <= min(val.index[:2]) and max(val.index[:2]) <= 0.35
    growth_verdict = (REPRODUCED if 0.25 <= growth <= 0.75 else NOT_REPRODUCED) if in_range else NOT_TESTABLE

    train = medians["updates_to_99_train"]
    finite = train[np.isfinite(train)]
    within = len(finite) == len(train) and finite.between(1_000, 10_000).all()
    trend = float(np.corrcoef(finite.index, finite.values)[0, 1]) if len(finite) >= 3 else math.nan
    train_text = ", ".join(f"{f:.0%}: {t:,.0f}" for f, t in train.items())
    return [
        Claim("fig1_center_steep", "fig1_center_fractions.png",
              "Around 25–30% data (S5 product), removing 1% of the data raises the median updates to 99% "
              "validation accuracy by 40–50%.",
              "Testable when two fractions within 20–35% generalize; reproduced for +25% to +75% per point.",
              where, growth_verdict),
        Claim("fig1_center_train", "fig1_center_fractions.png",
              "Updates until 99% training accuracy stay within 10³–10⁴ and trend down as the data shrinks.",
              "Every median within 1,000–10,000 and a positive correlation between fraction and updates.",
              f"median updates to 99% train: {train_text}; correlation with fraction {trend:+.2f}",
              REPRODUCED if within and trend > 0 else NOT_REPRODUCED),
    ]


def _interventions(sweep: dict) -> list[Claim]:
    frame = sweep_frame(sweep)
    known = set(frame["intervention"])
    needed = {name: _data_needed(frame, "intervention", name) for name in known}
    mean = {name: _mean_best(frame, "intervention", name) for name in known}
    claims = []

    def missing(*names):
        return [n for n in names if n not in known]

    # Weight decay more than halves the data needed. With bounds when a method never generalized.
    if missing("adamw", "minibatch_adam"):
        verdict, measured = NOT_TESTABLE, f"interventions missing: {missing('adamw', 'minibatch_adam')}"
    else:
        (wd, wd_found), (adam, adam_found) = needed["adamw"], needed["minibatch_adam"]
        measured = f"data needed: AdamW {_fmt_needed(needed['adamw'])}, Adam {_fmt_needed(needed['minibatch_adam'])}"
        if wd_found and adam_found:
            verdict = REPRODUCED if wd <= adam / 2 else NOT_REPRODUCED
        elif wd_found:  # Adam needs more than the largest fraction: proven only if AdamW needs ≤ half of it
            verdict = REPRODUCED if wd <= adam / 2 else NOT_TESTABLE
        else:
            verdict = NOT_REPRODUCED if adam_found else NOT_TESTABLE
    claims.append(Claim(
        "fig2_weight_decay", "fig2_left_interventions.png",
        "Weight decay (AdamW, decay 1) more than halves the training data needed to generalize (S5 product).",
        "Data needed = the smallest fraction whose best validation accuracy (mean over seeds) is ≥ 99%; "
        "AdamW's must be ≤ half of minibatch Adam's.", measured, verdict))

    def compare(claim_id, statement, better, worse, criterion):
        absent = missing(*better, *worse)
        if absent:
            return Claim(claim_id, "fig2_left_interventions.png", statement, criterion,
                         f"interventions missing: {absent}", NOT_TESTABLE)
        measured = "; ".join(f"{n}: {mean[n]:.3f}" for n in dict.fromkeys((*better, *worse)))
        holds = all(mean[b] > mean[w] for b, w in zip(better, worse))
        return Claim(claim_id, "fig2_left_interventions.png", statement, criterion,
                     f"mean best validation accuracy over the grid: {measured}",
                     REPRODUCED if holds else NOT_REPRODUCED)

    claims.append(compare(
        "fig2_decay_to_init", "Weight decay towards the initialisation helps less than decay towards zero.",
        ["adamw"], ["decay_to_init"],
        "Mean best validation accuracy over the fraction grid: decay to zero above decay to the initial weights."))
    claims.append(compare(
        "fig2_noise_helps", "Noise helps: minibatches beat full batches, and Gaussian noise on the update helps "
        "full-batch Adam.",
        ["minibatch_adam", "full_batch_adam_noise"], ["full_batch_adam", "full_batch_adam"],
        "Mean best validation accuracy: minibatch Adam above full-batch Adam, and full-batch Adam with noise "
        "above full-batch Adam."))
    claims.append(compare(
        "fig2_learning_rate", "The learning rate must lie within about one order of magnitude.",
        ["minibatch_adam", "minibatch_adam"], ["adam_lr_low", "adam_lr_high"],
        "Mean best validation accuracy: the central learning rate above both 3× smaller and 3× larger "
        "(so the good window is narrower than one order of magnitude)."))

    train = frame["updates_to_99_train"]
    budget = sweep["grid"]["budget"]
    slowest = train.max()
    claims.append(Claim(
        "fig2_train_fits", "fig2_left_interventions.png",
        "Training accuracy reaches 100% within 10³–10⁴ updates for every method.",
        "Every run reaches 99% training accuracy within 10⁴ updates (testable with a budget ≥ 10⁴).",
        f"slowest run to 99% training accuracy: "
        + (f"{slowest:,.0f} updates" if np.isfinite(slowest) else
           f"{int((~np.isfinite(train)).sum())} run(s) never reached it in {budget:,}"),
        NOT_TESTABLE if budget < 10_000 and not np.isfinite(slowest) else
        REPRODUCED if slowest <= 10_000 else NOT_REPRODUCED))
    return claims


SYMMETRIC_PAIRS = [("add", "sub"), ("mul", "div"), ("quad", "quad_x")]


def _operations(sweep: dict) -> list[Claim]:
    frame = sweep_frame(sweep)
    known = set(frame["operation"])
    mean = {op: _mean_best(frame, "operation", op) for op in known}
    fractions = sweep["grid"]["fractions"]
    claims = []
    pairs = [(s, a) for s, a in SYMMETRIC_PAIRS if s in known and a in known]
    claims.append(Claim(
        "fig2_symmetric", "fig2_right_operations.png",
        "Symmetric operations (x+y, x∗y, x²+xy+y²) need less data than their asymmetric counterparts "
        "(x−y, x/y, x²+xy+y²+x).",
        "Mean best validation accuracy over the fraction grid: each symmetric operation above its counterpart.",
        "; ".join(f"{s} {mean[s]:.3f} vs {a} {mean[a]:.3f}" for s, a in pairs) or "pairs missing",
        NOT_TESTABLE if not pairs else REPRODUCED if all(mean[s] > mean[a] for s, a in pairs) else NOT_REPRODUCED))
    if {"sub", "div"} <= known:
        gap = abs(mean["sub"] - mean["div"])
        measured, verdict = (f"x−y {mean['sub']:.3f}, x/y {mean['div']:.3f} (difference {gap:.3f})",
                             REPRODUCED if gap <= 0.05 else NOT_REPRODUCED)
    else:
        measured, verdict = "x−y or x/y is not in the grid", NOT_TESTABLE
    claims.append(Claim("fig2_sub_div", "fig2_right_operations.png", "x−y and x/y need about the same amount of data.",
                        "Mean best validation accuracy over the grid differs by ≤ 0.05.", measured, verdict))
    if "cube_xy2_y" in known:
        best = float(frame.loc[frame["operation"] == "cube_xy2_y", "best_val_accuracy"].max())
        measured, verdict = f"best validation accuracy at any fraction: {best:.3f}", (
            REPRODUCED if best < THRESHOLD else NOT_REPRODUCED)
    else:
        measured, verdict = "x³+xy²+y is not in the grid", NOT_TESTABLE
    claims.append(Claim(
        "fig2_cube_never", "fig2_right_operations.png", "x³+xy²+y does not generalize at any training fraction up to 95%.",
        f"Best validation accuracy stays < 99% at every fraction of the grid (largest: {max(fractions):.0%}).",
        measured, verdict))
    return claims


def _embeddings(found: dict) -> list[Claim]:
    s5, decay, no_decay = found["s5"], found["add_decay"], found["add_no_decay"]
    return [
        Claim("fig3_s5_cosets", "fig3_tsne.png",
              "For S5 the output layer's rows cluster by the cosets of a subgroup.",
              "The best subgroup's cosets explain ≥ 50% of the rows' variance beyond chance (score ≥ 0.5).",
              f"{s5['side']} cosets of a subgroup of order {s5['subgroup_order']}: score {s5['coset_score']:.2f}",
              REPRODUCED if s5["coset_score"] >= 0.5 else NOT_REPRODUCED),
        Claim("fig3_decay_clearer", "fig3_tsne.png",
              "For x+y the rows trace a number line (adding 8 in the paper); the structure is clearer with "
              "weight decay.",
              "Share of rows whose nearest neighbour is k ± s (best step s): larger with weight decay.",
              f"with weight decay: step {decay['number_line_step']}, {decay['number_line_share']:.0%}; without: "
              f"step {no_decay['number_line_step']}, {no_decay['number_line_share']:.0%}",
              REPRODUCED if decay["number_line_share"] > no_decay["number_line_share"] else NOT_REPRODUCED),
    ]


def assess(curves_run: dict, fractions: dict, interventions: dict, operations: dict, embeddings: dict) -> list[Claim]:
    """Every claim, in the paper's order of figures."""
    return [
        *_figure1(curves_run), *_fractions(fractions), *_interventions(interventions),
        *_operations(operations), *_embeddings(embeddings), _figure4(curves_run),
    ]


def to_json(claims: list[Claim]) -> dict:
    counts = {v: sum(c.verdict == v for c in claims) for v in (REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE)}
    return {"summary": counts, "claims": [asdict(c) for c in claims]}


def to_markdown(claims: list[Claim], scale: str) -> str:
    counts = to_json(claims)["summary"]
    lines = [
        "# Claims of the paper, checked at this scale",
        "",
        f"Generated by `repro claims` from the metrics under `metrics/`; {scale}.",
        "Verdicts are computed by `repro/claims.py`; the criterion of each is given with it.",
        "",
        ", ".join(f"{n} {v}" for v, n in counts.items()),
        "",
        "| claim | paper | measured here | verdict | figure |",
        "|---|---|---|---|---|",
    ]
    for c in claims:
        lines.append(f"| `{c.id}` | {c.statement} | {c.measured} | **{c.verdict}** | "
                     f"[{c.figure}](../figures/{c.figure}) |")
    lines += ["", "## Criteria", ""]
    lines += [f"- `{c.id}`: {c.criterion}" for c in claims]
    return "\n".join(lines) + "\n"


def verdict_table(report: dict) -> str:
    """The README's table of verdicts, from reports/claims.json (paths relative to the repository root)."""
    counts = ", ".join(f"{report['summary'][v]} {v}" for v in (REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE))
    lines = [f"{counts} ([full report](reports/claims.md)).", "",
             "| claim | measured here | verdict |", "|---|---|---|"]
    for c in report["claims"]:
        lines.append(f"| {c['statement']} ([figure](figures/{c['figure']})) | {c['measured']} | **{c['verdict']}** |")
    return "\n".join(lines)


README_BEGIN, README_END = "<!-- claims: generated by `repro readme`; do not edit -->", "<!-- /claims -->"


def with_verdicts(readme: str, report: dict) -> str:
    """`readme` with the text between the claims markers replaced by the current verdict table."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {README_BEGIN!r} … {README_END!r}")
    return readme[:start + len(README_BEGIN)] + "\n" + verdict_table(report) + "\n" + readme[end:]
