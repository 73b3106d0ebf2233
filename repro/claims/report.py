"""Every claim from the committed files (`inputs`, `assess`), and the report written from them (`to_markdown`,
`to_json`)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict
from pathlib import Path

from repro import analysis, history_csv, progress, results
from repro.claims import curves, mechanism, structure
from repro.claims import fractions as fractions_claims
from repro.claims import interventions as interventions_claims
from repro.claims import operations as operations_claims
from repro.config import Config
from repro.claims.rules import (
    COMPARISON_RULE, EQUIVALENCE_RULE, GRADED_RULE, PAIRED_RULE, STRUCTURE_RULE, THRESHOLD_RULE, VERDICTS, Claim,
    Sweep,
)


def seeds_of(config: Config, name: str) -> list:
    """Named run `name` and the named runs that differ from it in the training seed alone, by seed."""
    first = config.runs[name]

    def same(run) -> bool:
        return (run.dataset_name == first.dataset_name and run.model == first.model and run.group == run.name
                and dataclasses.replace(run.training, seed=0) == dataclasses.replace(first.training, seed=0))

    return sorted((run for run in config.runs.values() if same(run)), key=lambda run: run.training.seed)


def inputs(config: Config, histories_dir: Path, records_dir: Path, progress_dir: Path = progress.FOLDER) -> dict:
    """`assess`'s arguments, all from committed files: the histories, records/ (a named run trained in part, a
    sweep's groups not trained yet, the structure scores), progress/ (Figure 5's runs), params.yaml."""
    f = config.drawn()
    figure1, untrained = [], []
    for run in seeds_of(config, f.curves[0]):
        path = results.history_file(histories_dir, run.name)
        if not path.is_file():  # a seed not trained yet at this scale (the paper scale grows a run at a time)
            untrained.append(run.name)
            continue
        partial = results.committed_partial(records_dir, run.name)
        history = history_csv.read(path, run, until=partial["updates"] if partial else None)
        figure1.append({"name": run.name, **analysis.summarize(history), "setting": results.setting(run),
                        "updates_to_leave_chance": analysis.first_reached(history, "val_accuracy", curves.LEAVES_CHANCE),
                        "leave_chance_at": {str(level): analysis.first_reached(history, "val_accuracy", level)
                                            for level in curves.CHANCE_LEVELS},
                        "swings": analysis.swings(history["val_loss"]), **({"partial": partial} if partial else {})})

    def sweep(name: str) -> Sweep:
        missing = results.missing_groups(results.read_metrics(records_dir / f"{name}.json"), name)
        groups = results.groups_of(config.sweeps[name], config.runs)
        where = [results.coordinates(config.runs[groups[g][0]]) for g in missing]
        return Sweep(results.sweep_frame(config.sweeps[name], config.runs, histories_dir, missing),
                     results.grid(config.sweeps[name], config.runs),
                     tuple((w["operation"], w["intervention"]) for w in where))

    measured = {name: progress.read(progress_dir / name, name) if (progress_dir / name).exists() else None
                for name in f.progress}
    return {"figure1": figure1, "figure1_untrained": tuple(untrained), "fractions": sweep(f.fractions),
            "interventions": sweep(f.interventions), "operations": sweep(f.operations),
            "embeddings": results.read_metrics(records_dir / "embeddings.json"), "progress": measured}


def assess(figure1: list[dict], fractions: Sweep, interventions: Sweep, operations: Sweep,
           embeddings: dict, figure1_untrained: tuple[str, ...] = (), progress: dict | None = None) -> list[Claim]:
    """Every claim, in the paper's order of figures, then Nanda et al.'s (Figure 5). `figure1`: the Figure 1
    (left) run of each seed trained; `figure1_untrained`: its seeds not trained yet; `progress`: Figure 5's
    runs' measures (None: leave those claims out)."""
    return [
        *curves.figure1(figure1, figure1_untrained), *fractions_claims.assess(fractions),
        *interventions_claims.assess(interventions), *operations_claims.assess(operations),
        *structure.assess(embeddings), curves.figure4(figure1, figure1_untrained),
        *(mechanism.assess(progress) if progress is not None else []),
    ]


# --- the report ----------------------------------------------------------------------------------------

def summary(claims: list[Claim]) -> dict[str, int]:
    return {v: sum(c.verdict == v for c in claims) for v in VERDICTS}


def to_json(claims: list[Claim]) -> dict:
    rules = {"comparison": COMPARISON_RULE, "threshold": THRESHOLD_RULE, "structure": STRUCTURE_RULE,
             "graded": GRADED_RULE, "equivalence": EQUIVALENCE_RULE, "paired": PAIRED_RULE}
    return {"summary": summary(claims), "rules": rules, "claims": [asdict(c) for c in claims]}


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS)


def to_markdown(claims: list[Claim], scale: str) -> str:
    lines = [
        "# Claims of the paper, checked at this scale",
        "",
        f"Generated by `repro claims` from the committed histories under `histories/` and "
        f"`records/embeddings.json`, and the progress measures under `progress/`; {scale}. Verdicts are computed by `repro/claims/`.",
        "",
        _counts(summary(claims)),
        "",
        "| claim | paper | measured here | effect | spread over seeds | verdict | figure |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        lines.append(f"| `{c.id}` | {c.statement} | {c.measured} | {c.effect} | {c.spread} | **{c.verdict}** | "
                     f"[{c.figure}](../figures/{c.figure}) |")
    lines += ["", "## Rules", "", f"- {COMPARISON_RULE}", f"- {THRESHOLD_RULE}", f"- {STRUCTURE_RULE}",
              f"- {GRADED_RULE}", f"- {EQUIVALENCE_RULE}", f"- {PAIRED_RULE}",
              "", "## Criteria", ""]
    lines += [f"- `{c.id}` ({c.rule}): {c.criterion}" for c in claims]
    return "\n".join(lines) + "\n"
