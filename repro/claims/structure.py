"""Figure 3's claims: the structure of the output layer (`assess`), from records/embeddings.json."""

from __future__ import annotations

import math

from repro.files import figure_file
from repro.claims.rules import MIN_PAIRED_SEEDS, Claim, _seeds, _structure, paired


COSET_SCORE = 0.5  # "cluster by cosets": the cosets explain at least half the rows' variance beyond chance
LINE_SHARE = 0.5  # "trace a number line": at least half the symbols sit next to k ± s


def assess(found: dict) -> list[Claim]:
    s5, decay, no_decay = found["s5"], found["add_decay"], found["add_no_decay"]
    paper = s5["paper_subgroup"]
    score, chance = paper["coset_score"], paper["chance_99"]
    verdict, shows = _structure(score, chance, COSET_SCORE)
    claims = [Claim(
        "fig3_s5_cosets", figure_file("embeddings"),
        "For S5 the output layer's rows cluster by the cosets of the subgroup ⟨(0,3)(1,4), (1,2)(3,4)⟩ (order 10) "
        "or one of its conjugates.",
        f"Coset score (share of the rows' variance the coset means explain, 0 for a random partition) of the best "
        f"of its 6 conjugates' left and right cosets: reproduced at ≥ {COSET_SCORE} and above chance; not "
        "reproduced otherwise: at or below chance (none), or above chance but below that (weak).",
        f"paper's subgroup ({paper['side']} cosets of the best conjugate): score {score:.2f}, chance (99th "
        f"percentile) {chance:.2f}; best subgroup found: {s5['side']} cosets of a subgroup of order "
        f"{s5['subgroup_order']}, score {s5['coset_score']:.2f}",
        f"score {score:.2f} vs chance {chance:.2f}: {shows}", "one run", 1, "structure", verdict)]

    verdict, shows = _structure(decay["number_line_share"], decay["number_line_chance_99"], LINE_SHARE)
    claims.append(Claim(
        "fig3_number_line", figure_file("embeddings"),
        "For x+y (with weight decay) the rows trace a number line: each symbol's nearest row is a fixed step away "
        "(+8 in the paper).",
        f"Share of rows whose nearest neighbour is k ± s, for the best step s (any step counts: which one a run "
        f"uses is arbitrary): reproduced at ≥ {LINE_SHARE:.0%} and above chance (the paper's lines join every "
        "symbol); not reproduced otherwise: at or below chance (none), or above chance but below that (weak).",
        f"step {decay['number_line_step']}: {decay['number_line_share']:.0%} of rows, chance (99th percentile) "
        f"{decay['number_line_chance_99']:.0%}",
        f"{decay['number_line_share']:.0%} vs chance {decay['number_line_chance_99']:.0%}: {shows}", "one run", 1,
        "structure", verdict))

    claims.append(_decay_clearer([(decay, no_decay), *((o["add_decay"], o["add_no_decay"])
                                                       for o in found.get("decay_seeds", []))]))
    return claims


def _above(run: dict) -> float:
    """A run's number-line share above its own chance (the 99th percentile of its shuffled rows)."""
    return run["number_line_share"] - run["number_line_chance_99"]


def _decay_clearer(pairs: list[tuple[dict, dict]]) -> Claim:
    """fig3_decay_clearer on each seed's pair (with weight decay, without), by PAIRED_RULE."""
    seeds = {int(decay.get("seed", 0)): (decay, no_decay) for decay, no_decay in pairs}
    label = (lambda seed: f"seed {seed}: ") if len(seeds) > 1 else (lambda seed: "")
    measured = "; ".join(
        f"{label(seed)}with weight decay step {decay['number_line_step']}, {decay['number_line_share']:.0%} (chance "
        f"{decay['number_line_chance_99']:.0%}), without step {no_decay['number_line_step']}, "
        f"{no_decay['number_line_share']:.0%} (chance {no_decay['number_line_chance_99']:.0%})"
        for seed, (decay, no_decay) in seeds.items())
    found = paired([_above(decay) - _above(no_decay) for decay, no_decay in seeds.values()])
    per_seed = ", ".join(f"{d:+.0%}" for d in found.differences)
    if math.isnan(found.margin):
        effect = (f"with − without, above chance: {found.mean:+.0%} (per seed: {per_seed}); fewer than "
                  f"{MIN_PAIRED_SEEDS} seeds: a comparison needs more")
        spread = _seeds(len(seeds), "one run each")
    else:
        effect = f"with − without, above chance: {found.mean:+.0%} (per seed: {per_seed})"
        spread = f"2 standard errors {found.margin:.0%} over {len(seeds)} seeds"
    return Claim(
        "fig3_decay_clearer", figure_file("embeddings"),
        "The number line is clearer with weight decay than without.",
        "In each seed, each run's number-line share above its own chance (the 99th percentile of its shuffled rows), "
        "the run with weight decay minus the run without; by the paired rule over the seeds (at least "
        f"{MIN_PAIRED_SEEDS}).", measured, effect, spread, len(seeds), "paired", found.verdict)
