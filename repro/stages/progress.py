"""`repro progress NAMES`: Nanda et al.'s progress measures of named runs, into progress/NAME/.

repro/replay.py trains the run again and checks it against its history; repro/progress.py holds the measures.
"""

from __future__ import annotations

import click

from repro import files, progress, replay
from repro.config import ConfigError
from repro.progress import Measured
from repro.stages import clear_errors, config_of


def stage(config, name: str) -> Measured:
    """Measures named run NAME (listed under params.yaml's `progress`) into progress/NAME/."""
    if name not in config.progress:
        raise ConfigError(f"{name!r} is not listed under params.yaml's `progress` (named runs on a cyclic group's "
                          f"table): {', '.join(config.progress) or 'none'}")
    run = config.runs[name]
    measured = replay.measure(run, files.RUNS_DIR / run.directory)
    progress.write(measured, progress.FOLDER / name)
    return measured


@click.command("progress")
@click.argument("names", nargs=-1)
@click.pass_context
@clear_errors
def command(context: click.Context, names: tuple[str, ...]) -> None:
    """Progress measures of named runs NAMES (default: all under params.yaml's `progress`), into progress/NAME/.

    Replays each trained run, checks the replay against its history, and measures its Fourier spectrum,
    key frequencies, restricted and excluded loss and Gini coefficient at every logged update.
    """
    config = config_of(context)
    for name in names or config.progress:
        summary = stage(config, name).summary
        phases = summary["phases"]
        click.echo(f"{progress.FOLDER / name}: key frequencies {summary['key_frequencies']} "
                   f"({summary['key_share']:.0%} of the logits' energy); phases end at "
                   f"{phases['memorization_ends']}, {phases['circuit_formation_ends']}, {phases['cleanup_ends']}; "
                   f"replay {'identical' if summary['replay']['identical'] else 'differs'}")
