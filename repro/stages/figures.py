"""`repro figures NAMES`: the paper's figures, drawn by repro/figures.py from the registry (repro/files.py)."""

from __future__ import annotations

from pathlib import Path

import click

from repro import figures
from repro.config import ConfigError
from repro.files import FIGURE_DIR, FIGURES
from repro.stages import clear_errors, config_of


def stage(config, name: str, out_dir: Path = FIGURE_DIR) -> list[Path]:
    """Draws figure NAME of the registry (repro/files.py, FIGURES); returns the files written."""
    if name not in FIGURES:
        raise ConfigError(f"no figure named {name!r}; figures: {', '.join(FIGURES)}")
    config.drawn()  # an experiments file draws nothing
    return getattr(figures, FIGURES[name].drawer)(config, out_dir)


@click.command("figures")
@click.argument("names", nargs=-1)
@click.pass_context
@clear_errors
def command(context: click.Context, names: tuple[str, ...]) -> None:
    """Draws figures NAMES (default: all) from the runs and sweeps named in params.yaml's `figures`.

    curves: Figure 1 (left) and 4; table: Figure 1 (right); fractions: Figure 1 (center);
    interventions: Figure 2 (left); operations: Figure 2 (right); embeddings: Figure 3; progress: Figure 5
    (the registry: repro/files.py, FIGURES).
    """
    config = config_of(context)
    for name in names or tuple(FIGURES):
        for path in stage(config, name):
            click.echo(str(path))
