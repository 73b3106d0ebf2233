"""Figure 2 (right)'s claims: the operations, each at its smallest fraction that generalizes (`assess`)."""

from __future__ import annotations

from repro.files import figure_file
from repro.claims.rules import (
    INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, THRESHOLD, Claim, Sweep, _effect_text, _generalizes, _lacking,
    _not_testable, _per_seed, _seeds, _seeds_text, _spread_text, combine, compare, threshold,
)


SYMMETRIC_PAIRS = [("add", "sub"), ("mul", "div"), ("quad", "quad_x")]
# Pairs a model cannot tell apart by construction. The MLP embeds each operand with its own weights, whose
# initial distribution does not change when one operand's symbols are relabelled; x − y is x + y with y
# relabelled as −y, and x / y is x · y with y relabelled as y⁻¹. So the MLP learns both alike, up to noise.
INDISTINGUISHABLE = {"mlp": {("add", "sub"), ("mul", "div")}}
POLYNOMIALS = ("sq_sum", "quad", "quad_x", "cube_xy")  # tables comparable to x³+xy²+y
SAME_DATA_MARGIN = 0.05  # "about the same": mean best validation accuracies within 0.05 in every seed


def assess(sweep: Sweep) -> list[Claim]:
    frame, figure, model = sweep.frame, figure_file("operations"), sweep.grid["model"]
    known, seeds = set(frame["operation"]), frame["seed"].nunique()
    fractions = sorted(frame["train_fraction"].unique())
    values = {op: _per_seed(frame, "operation", op) for op in known}
    claims = []

    statement = ("Symmetric operations (x+y, x∗y, x²+xy+y²) need less data than their asymmetric counterparts "
                 "(x−y, x/y, x²+xy+y²+x).")
    criterion = ("Each symmetric operation above its counterpart on each seed's best validation accuracy averaged "
                 "over the fraction grid. A pair is left out when the model cannot tell its two tables apart by "
                 "construction, or when neither reaches 99% anywhere in the grid (no data need to compare).")
    testable, skipped = [], []
    untrained = set(sweep.untrained("operation")) & {op for pair in SYMMETRIC_PAIRS for op in pair}
    for s, a in SYMMETRIC_PAIRS:
        if s not in known or a not in known:
            skipped.append(f"{s}/{a}: {_lacking(sweep, 'operation', [op for op in (s, a) if op not in known])}")
        elif (s, a) in INDISTINGUISHABLE.get(model, set()):
            skipped.append(f"{s}/{a}: the {model} cannot tell them apart (one operand relabelled)")
        elif not (_generalizes(frame, "operation", s) or _generalizes(frame, "operation", a)):
            skipped.append(f"{s}/{a}: neither reaches 99% in the grid")
        else:
            testable.append((s, a))
    measured = "; ".join(f"{s} vs {a}: {_seeds_text(values[s])} vs {_seeds_text(values[a])}"
                         for s, a in SYMMETRIC_PAIRS if s in known and a in known)
    if not testable or untrained:  # the claim is about every pair: none is left out for want of training
        claims.append(_not_testable("fig2_symmetric", figure, statement, criterion, measured or "pairs missing",
                                    "; ".join(skipped), seeds))
    else:
        found = [compare(values[s], values[a]) for s, a in testable]
        claims.append(Claim(
            "fig2_symmetric", figure, statement, criterion,
            measured + (f" (left out: {'; '.join(skipped)})" if skipped else ""),
            "; ".join(f"{s} − {a}: {_effect_text(c)}" for (s, a), c in zip(testable, found)),
            "; ".join(_spread_text(c) for c in found), seeds, "comparison", combine([c.verdict for c in found])))

    statement, criterion = "x−y and x/y need about the same amount of data.", (
        f"Equivalence: x−y (mod 97, the group Z_97) and x/y (mod 97, which is x−y in Z_96 once every non-zero symbol "
        f"is relabelled by its discrete logarithm: another group and table size) compared on each seed's best "
        f"validation accuracy averaged over the fraction grid. Reproduced when they differ by at most "
        f"{SAME_DATA_MARGIN:g} in every seed (a twentieth of the accuracy scale, fixed before looking); not "
        f"reproduced when they differ by more in every seed; inconclusive otherwise and with fewer than two seeds.")
    if not {"sub", "div"} <= known:
        claims.append(_not_testable("fig2_sub_div", figure, statement, criterion, "—",
                                    _lacking(sweep, "operation", [op for op in ("sub", "div") if op not in known]),
                                    seeds))
    else:
        seeds_both = sorted(set(values["sub"]) & set(values["div"]))
        gaps = {s: abs(values["sub"][s] - values["div"][s]) for s in seeds_both}
        verdict = (INCONCLUSIVE if len(gaps) < 2 else REPRODUCED if all(g <= SAME_DATA_MARGIN for g in gaps.values())
                   else NOT_REPRODUCED if all(g > SAME_DATA_MARGIN for g in gaps.values()) else INCONCLUSIVE)
        claims.append(Claim(
            "fig2_sub_div", figure, statement, criterion,
            f"mean best validation accuracy x−y {_seeds_text(values['sub'])}; x/y {_seeds_text(values['div'])}",
            f"|x−y − x/y|: {_seeds_text(gaps)} (margin {SAME_DATA_MARGIN:g})", _seeds(len(gaps), "one seed"),
            len(gaps), "equivalence", verdict))

    statement = "x³+xy²+y does not generalize at any training fraction up to 95%."
    criterion = ("In every seed, best validation accuracy < 99% at every fraction. Testable when the grid reaches "
                 "95% and a comparable polynomial table (x²+y², x²+xy+y², x²+xy+y²+x, x³+xy) generalizes "
                 "somewhere in it, so that failing is the table's doing, not the scale's.")
    if "cube_xy2_y" not in known:
        claims.append(_not_testable("fig2_cube_never", figure, statement, criterion, "—",
                                    _lacking(sweep, "operation", ["cube_xy2_y"]), seeds))
        return claims
    best = {int(s): float(rows["best_val_accuracy"].max())
            for s, rows in frame[frame["operation"] == "cube_xy2_y"].groupby("seed")}
    measured = f"best validation accuracy at any fraction: {_seeds_text(best)}"
    why = []
    if max(fractions) < 0.95 - 1e-9:
        why.append(f"the grid stops at {max(fractions):.0%}")
    if not any(_generalizes(frame, "operation", op) for op in POLYNOMIALS if op in known):
        waiting = [op for op in POLYNOMIALS if op not in known]
        why.append("no comparable polynomial table generalizes in this grid"
                   + (f" ({_lacking(sweep, 'operation', waiting)})" if waiting else ""))
    if why:
        claims.append(_not_testable("fig2_cube_never", figure, statement, criterion, measured, "; ".join(why), seeds))
    else:
        claims.append(Claim("fig2_cube_never", figure, statement, criterion, measured,
                            f"highest: {max(best.values()):.3f}", _seeds(seeds, "one seed"),
                            seeds, "threshold", threshold([b < THRESHOLD for b in best.values()])))
    return claims
