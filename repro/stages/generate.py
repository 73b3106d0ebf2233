"""`repro generate NAMES`: the operation tables, data/<name>/ (equations.csv and manifest.json)."""

from __future__ import annotations

import click

from repro import datasets, files
from repro.stages import clear_errors, config_of


def stage(config, names: tuple[str, ...] = ()) -> dict[str, dict]:
    """Writes data/<name>/ for each of NAMES (default: every dataset); returns {name: its manifest}."""
    manifests = {}
    for name in names or tuple(config.datasets):
        dataset = datasets.make(config.dataset(name))
        datasets.write(dataset, files.DATA_DIR / name)
        manifests[name] = dataset.manifest
    return manifests


@click.command("generate")
@click.argument("names", nargs=-1)
@click.pass_context
@clear_errors
def command(context: click.Context, names: tuple[str, ...]) -> None:
    """Writes the operation tables of NAMES (default: every dataset) under data/."""
    manifests = stage(config_of(context), names)
    for name, m in manifests.items():
        click.echo(f"{files.DATA_DIR / name}: {m['formula']}, {m['equations']} equations, "
                   f"{m['train']} train / {m['validation']} validation")
