"""`repro train NAME`: trains a run, a group or a whole sweep into runs/NAME/; resumable, stoppable.

The numbers of every update are repro/train.py's; repro/runner.py runs them on threads, checkpoints,
stops at a deadline or a signal, and writes the run folders.
"""

from __future__ import annotations

import click

from repro import datasets, files
from repro.config import Config
from repro.runner import Stop, Trained, train_groups
from repro.stages import clear_errors, config_of, duration


def stage(config: Config, name: str, precision: str = "fp32", seconds: float | None = None,
          must_resume: bool = False) -> Trained:
    """Every group NAME trains (Config.trained_by), into runs/NAME/ (a group: its name).

    A named run's data are its generated table (data/, a DVC output); a sweep member's split is made
    here, which is cheap. `seconds`: stop after so long (Stop), checkpointing every shard. `must_resume`:
    a checkpoint this code cannot continue is a ConfigError before anything trains, and is left as it is.
    """
    groups = config.trained_by(name)
    root = name if name in config.sweeps else groups[0].name
    jobs = []
    for group in groups:
        runs = [config.runs[member] for member in group.members]
        data = [datasets.make(run.dataset) if run.dataset_name is None
                else datasets.load(files.DATA_DIR / run.dataset_name, run.dataset) for run in runs]
        jobs.append((group.name, runs, data))
    trained = train_groups(root, jobs, files.RUNS_DIR / root, files.CHECKPOINT_DIR, precision,
                           config.execution.checkpoint_seconds, config.keeps_weights, Stop(seconds), must_resume)
    trained.finished = [(run, history[-1]) for (_, runs, _), group_history in zip(jobs, trained.histories)
                        for run, history in zip(runs, group_history)]
    return trained


@click.command("train")
@click.argument("name")
@click.option("--precision", type=click.Choice(["fp32", "tf32"]), default="fp32", show_default=True,
              help="Matrix-product precision on GPUs (CPUs compute fp32 either way); recorded in run.json.")
@click.option("--for", "duration_text", metavar="DURATION", default=None,
              help="Train for at most this long (90s, 45m, 2h, 1h30m), then checkpoint and exit 0; run again to "
                   "continue. A named run stopped so leaves its history so far in runs/NAME/ (a partial result).")
@click.option("--must-resume", is_flag=True,
              help="A checkpoint under checkpoints/ that this code cannot continue is an error, not a fresh start: "
                   "it is left as it is (paper/campaign.sh trains so; `repro adopt` carries state across code).")
@click.pass_context
@clear_errors
def command(context: click.Context, name: str, precision: str, duration_text: str | None, must_resume: bool) -> None:
    """Trains sweep NAME into runs/NAME/ (every group of it, in one process), or group NAME into runs/NAME/.

    A group is a named run, or a sweep's `<sweep>/<operation>-<intervention>`;
    a sweep member's name trains the whole group it belongs to. A killed
    process resumes from its checkpoints; Ctrl-C checkpoints within seconds and
    exits 130 (twice: at once). KERAS_BACKEND picks the backend (tensorflow,
    the default, or jax).
    """
    seconds = None if duration_text is None else duration(duration_text)
    outcome = stage(config_of(context), name, precision, seconds, must_resume)
    for group, positions, reached, budget in outcome.stopped:
        where = "not started" if reached < 0 else f"stopped at update {reached:,} of {budget:,}"
        click.echo(f"{group}: runs {positions} {where}; run again to continue")
    if outcome.stopped:
        click.echo(f"{name}: stopped ({'the deadline' if outcome.reason == 'deadline' else outcome.reason}); its "
                   f"checkpoints are under {files.CHECKPOINT_DIR}/, and `repro pack {name} FILE` carries them "
                   f"elsewhere")
        if outcome.reason != "deadline":
            context.exit(130 if outcome.reason == "SIGINT" else 143)
        return
    for run, last in outcome.finished:
        click.echo(f"{files.RUNS_DIR / run.directory}: {int(last[0])} updates, train acc {last[2]:.3f}, "
                   f"val acc {last[4]:.3f}")
