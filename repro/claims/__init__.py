"""The claims report: each claim of the paper (PAPER.md, "Figures and claims"), what was measured, a verdict.

Verdicts are computed from committed files (the training histories under
`histories/` and the structure scores in `records/embeddings.json`), never typed:

- reproduced: the effect the paper reports holds, beyond the seed-to-seed noise;
- not reproduced: the opposite holds, beyond that noise;
- inconclusive: the effect is within the noise, the seeds disagree, or there
  are too few seeds (one) to compare conditions;
- not testable: this scale or this model cannot decide the claim; the reason
  is given (a grid too short, a setting other than the paper's, or two
  conditions the model cannot tell apart by construction).

Every comparison between conditions follows one rule, `COMPARISON_RULE`, on
per-seed values; every claim about a threshold follows `THRESHOLD_RULE`. Each
claim's own criterion gives the paper's number and the tolerance used.

One module per figure, over the rules they share:
    rules.py          the verdicts, the rules and their helpers
    curves.py         Figure 1 (left) and Figure 4       fractions.py      Figure 1 (center)
    interventions.py  Figure 2 (left)                    operations.py     Figure 2 (right)
    structure.py      Figure 3                           mechanism.py      Figure 5 (Nanda et al.)
    report.py         every claim from the committed files, and the report's text
`repro claims` (repro/stages/claims.py) writes reports/claims.md and reports/claims.json.
"""

from repro.claims import curves, fractions, interventions, mechanism, operations, structure
from repro.claims.report import assess, inputs, seeds_of, summary, to_json, to_markdown
from repro.claims.rules import (
    COMPARISON_RULE, EQUIVALENCE_RULE, GRADED_RULE, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, PAIRED_RULE,
    REPRODUCED, STRUCTURE_RULE, THRESHOLD, THRESHOLD_RULE, VERDICTS, Claim, Comparison, Paired, Sweep, combine,
    compare, paired, threshold,
)

__all__ = [
    "curves", "fractions", "interventions", "mechanism", "operations", "structure",
    "assess", "inputs", "seeds_of", "summary", "to_json", "to_markdown",
    "COMPARISON_RULE", "EQUIVALENCE_RULE", "GRADED_RULE", "INCONCLUSIVE", "NOT_REPRODUCED", "NOT_TESTABLE",
    "PAIRED_RULE", "REPRODUCED", "STRUCTURE_RULE", "THRESHOLD", "THRESHOLD_RULE", "VERDICTS", "Claim", "Comparison",
    "Paired", "Sweep", "combine", "compare", "paired", "threshold",
]
