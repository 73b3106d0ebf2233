"""Figure 2 (left)'s claims: the interventions on S5 (`assess`)."""

from __future__ import annotations

import math

from repro.files import figure_file
from repro.claims.rules import (
    INCONCLUSIVE, Claim, Sweep, _data_needed, _effect_text, _generalizes, _lacking, _not_testable, _per_seed,
    _seeds, _seeds_text, _spread_text, combine, compare, threshold,
)


def assess(sweep: Sweep) -> list[Claim]:
    frame, figure = sweep.frame, figure_file("interventions")
    known = set(frame["intervention"])
    seeds = frame["seed"].nunique()
    fractions = sorted(frame["train_fraction"].unique())
    area = "each seed's best validation accuracy averaged over the fraction grid"
    claims = []

    statement = "Weight decay (AdamW, decay 1) more than halves the training data needed to generalize (S5 product)."
    criterion = ("Data needed = a seed's smallest fraction whose best validation accuracy is ≥ 99%. In every seed "
                 "AdamW's must be ≤ half of minibatch Adam's (the paper's \"more than halves\", no tolerance).")
    if {"adamw", "minibatch_adam"} - known:
        claims.append(_not_testable("fig2_weight_decay", figure, statement, criterion, "—",
                                    _lacking(sweep, "intervention", sorted({"adamw", "minibatch_adam"} - known)),
                                    seeds))
    else:
        wd, adam = _data_needed(frame, "intervention", "adamw"), _data_needed(frame, "intervention", "minibatch_adam")
        measured = f"data needed: AdamW {_seeds_text(wd, '{:.0%}')}; Adam {_seeds_text(adam, '{:.0%}')}"
        if min(fractions) > max(fractions) / 2:
            claims.append(_not_testable("fig2_weight_decay", figure, statement, criterion, measured,
                                        f"the grid's fractions ({', '.join(f'{f:.0%}' for f in fractions)}) cannot "
                                        "show a halving: its smallest is more than half its largest", seeds))
        else:
            passes = []
            for s in sorted(wd):
                if math.isfinite(wd[s]) and math.isfinite(adam[s]):
                    passes.append(wd[s] <= adam[s] / 2)
                elif math.isfinite(wd[s]):  # Adam needs more than the largest fraction
                    passes.append(True if wd[s] <= max(fractions) / 2 else None)
                else:
                    passes.append(False if math.isfinite(adam[s]) else None)
            verdict = INCONCLUSIVE if seeds < 2 else threshold(passes)
            claims.append(Claim("fig2_weight_decay", figure, statement, criterion, measured,
                                f"AdamW ≤ half of Adam in {sum(p is True for p in passes)} of {len(passes)} seed(s)",
                                _seeds(seeds, "one seed"), seeds, "comparison", verdict))

    def comparison(claim_id, statement, pairs, criterion, testable_if=None):
        absent = sorted({n for pair in pairs for n in pair} - known)
        if absent:
            return _not_testable(claim_id, figure, statement, criterion, "—", _lacking(sweep, "intervention", absent),
                                 seeds)
        values = {n: _per_seed(frame, "intervention", n) for pair in pairs for n in pair}
        measured = "; ".join(f"{n}: {_seeds_text(v)}" for n, v in values.items())
        if testable_if is not None and not testable_if[0]:
            return _not_testable(claim_id, figure, statement, criterion, measured, testable_if[1], seeds)
        found = [compare(values[a], values[b]) for a, b in pairs]
        effect = "; ".join(f"{a} − {b}: {_effect_text(c)}" for (a, b), c in zip(pairs, found))
        spread = "; ".join(_spread_text(c) for c in found)
        return Claim(claim_id, figure, statement, f"{criterion} Values: {area}.", measured, effect, spread, seeds,
                     "comparison", combine([c.verdict for c in found]))

    claims.append(comparison(
        "fig2_decay_to_init", "Weight decay towards the initialisation helps less than decay towards zero.",
        [("adamw", "decay_to_init")], "Decay to zero above decay to the initial weights."))
    claims.append(comparison(
        "fig2_noise_helps", "Noise helps: minibatches beat full batches, and Gaussian noise on the update helps "
        "full-batch Adam.", [("minibatch_adam", "full_batch_adam"), ("full_batch_adam_noise", "full_batch_adam")],
        "Minibatch Adam above full-batch Adam, and full-batch Adam with update noise above full-batch Adam."))
    central = "minibatch_adam"
    claims.append(comparison(
        "fig2_learning_rate", "The learning rate must lie within about one order of magnitude.",
        [(central, "adam_lr_low"), (central, "adam_lr_high")],
        "The central learning rate above both the 3× smaller and the 3× larger one (a good window narrower than "
        "10×). Testable only if the central learning rate generalizes somewhere in the grid.",
        testable_if=(central in known and _generalizes(frame, "intervention", central),
                     "minibatch Adam at the central learning rate never reaches 99% validation accuracy in this "
                     "grid, so there is no window to locate")))

    train, budget = frame["updates_to_99_train"], sweep.grid["budget"]
    slowest = float(train.max())
    per_seed = {int(s): float(rows["updates_to_99_train"].max()) for s, rows in frame.groupby("seed")}
    statement = "Training accuracy reaches 100% within 10³–10⁴ updates for every method."
    criterion = "Every run of every method reaches 99% training accuracy within 10⁴ updates, the paper's number."
    measured = f"slowest run to 99% training accuracy: {_seeds_text(per_seed, '{:,.0f} updates')}"
    if sweep.missing:  # "every method"
        claims.append(_not_testable("fig2_train_fits", figure, statement, criterion, measured,
                                    _lacking(sweep, "intervention", sweep.untrained("intervention")), seeds))
    elif budget < 10_000 and not math.isfinite(slowest):
        claims.append(_not_testable("fig2_train_fits", figure, statement, criterion, measured,
                                    f"the budget ({budget:,}) ends before 10⁴ and some run had not fitted by then",
                                    seeds))
    else:
        claims.append(Claim("fig2_train_fits", figure, statement, criterion, measured,
                            f"slowest: {slowest:,.0f} updates" if math.isfinite(slowest) else "slowest: never",
                            _seeds(seeds, "one seed"), seeds, "threshold",
                            threshold([v <= 10_000 for v in per_seed.values()])))
    return claims
