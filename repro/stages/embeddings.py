"""`repro embeddings`: Figure 3's analysis (repro/embeddings.py) written out for the figure and the claims."""

from __future__ import annotations

import click

from repro import files
from repro.embeddings import LAYERS, METRICS, PAIR, RECORD, analyse, rows_csv
from repro.stages import clear_errors, config_of


def scalars(tree: dict) -> dict:
    """`tree`'s numbers only (no names, no subgroups' elements, no maps): what `dvc metrics show` sets in a table."""
    return {k: scalars(v) if isinstance(v, dict) else v for k, v in tree.items()
            if isinstance(v, dict) or isinstance(v, (int, float)) and not isinstance(v, bool)}


def stage(config) -> dict:
    """Writes records/embeddings.json, records/output_layers/ and metrics/embeddings.json; returns the record."""
    record, layers = analyse(config)
    with files.atomic_directory(files.RECORDS_DIR / LAYERS) as tmp:  # the scores' inputs, committed
        for key, rows in layers.items():
            (tmp / f"{key}.csv").write_text(rows_csv(rows), encoding="utf-8")
    files.write_json(files.RECORDS_DIR / RECORD, record)
    metrics = {k: v for k, v in record.items() if k not in ("tsne", "decay_seeds")}
    metrics |= {f"{key}-seed{other['seed']}": other[key] for other in record["decay_seeds"] for key in PAIR}
    files.write_json(files.METRICS_DIR / METRICS, scalars(metrics))
    return record


@click.command("embeddings")
@click.pass_context
@clear_errors
def command(context: click.Context) -> None:
    """Figure 3's analysis: structure scores, their chance levels and t-SNE maps of figures.embeddings' runs.

    Writes records/embeddings.json (the scores, the subgroups, the maps), records/output_layers/ (the rows
    they come from) and metrics/embeddings.json (the scores alone); `repro figures embeddings` draws them.
    """
    record = stage(config_of(context))
    s5 = record["s5"]
    click.echo(f"{files.RECORDS_DIR / RECORD}: S5 cosets of order {s5['subgroup_order']}, score "
               f"{s5['coset_score']} (the paper's subgroup {s5['paper_subgroup']['coset_score']}, chance "
               f"{s5['paper_subgroup']['chance_99']})")
