"""The `repro` command: one subcommand per pipeline stage (STAGES); the tools that are no stage are in
repro/tools/commands.py.

Paths are fixed by name so that dvc.yaml can state every input and output:
    data/<dataset>/        repro generate <dataset>
    runs/<run>/            repro train <run>
    metrics/<run>.json     repro evaluate <run>
    figures/*.png          repro figures
"""

from __future__ import annotations

import errno
import faulthandler
import functools
import os
import sys
from pathlib import Path

import click

from repro import config as config_module
from repro.config import ConfigError
from repro.files import CHECKPOINT_DIR, DATA_DIR, FIGURES, METRICS_DIR, RECORDS_DIR, RUNS_DIR


_DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM}


def _clear_errors(command):
    """Turns our ConfigError (bad input) into click's one-line error and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:  # a full or read-only disk, or no permission: every output is written atomically,
            if error.errno not in _DISK_ERRORS:  # so what was there before is intact
                raise
            raise click.ClickException(f"could not write {error.filename or 'an output'}: {error.strerror}; outputs "
                                       f"written before are intact (each is written whole or not at all). Free "
                                       f"space or make the folder writable, then run the command again") from None

    return wrapper


# The commands dvc.yaml runs, in the pipeline's order; `repro --help` lists them apart from the tools.
STAGES = ("generate", "train", "evaluate", "progress", "embeddings", "figures", "claims")


class _Commands(click.Group):
    """`repro --help` in two parts: the pipeline's stages in order, then the tools that are no stage.

    The tools live in repro/tools/commands.py, loaded here only when a command that is no stage is asked for
    (or the help): a stage's command never imports them, so no tool is a stage's dependency.
    """

    @staticmethod
    def _tools() -> None:
        import repro.tools.commands  # noqa: F401 (registers the tools on `main`)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._tools()
        names = super().list_commands(ctx)
        return [n for n in STAGES if n in names] + sorted(n for n in names if n not in STAGES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in STAGES:
            self._tools()
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        for title, stage in (("Stages (dvc.yaml runs these, in this order)", True), ("Tools", False)):
            part = [(name, command.get_short_help_str(formatter.width - 20)) for name, command in rows
                    if (name in STAGES) == stage and not command.hidden]
            if part:
                with formatter.section(title):
                    formatter.write_dl(part)


@click.group(cls=_Commands)
@click.option("--params", "params_path", default="params.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="The parameter file.")
@click.pass_context
def main(context: click.Context, params_path: str) -> None:
    """Regenerates the results of Power et al. (2022), "Grokking"."""
    # A crash inside TensorFlow or XLA kills the process with no Python traceback; this prints every
    # thread's stack to the process's own stderr first, so the stage's log says where it happened.
    # (sys.stderr may be a capture without a file descriptor, as under click's test runner.)
    if sys.__stderr__ is not None:
        faulthandler.enable(file=sys.__stderr__)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in ("tensorflow", "jax"):
        raise click.ClickException(f"KERAS_BACKEND={backend!r} is not supported; use 'tensorflow' (the CPU default) "
                                   f"or 'jax' (GPUs), or unset it")
    context.obj = Path(params_path)


def _config(context: click.Context) -> config_module.Config:
    return config_module.load(context.obj)


@main.command()
@click.argument("names", nargs=-1)
@click.pass_context
@_clear_errors
def generate(context: click.Context, names: tuple[str, ...]) -> None:
    """Writes the operation tables of NAMES (default: every dataset) under data/."""
    from repro import datasets

    manifests = datasets.stage(_config(context), names)
    for name in manifests:
        m = manifests[name]
        click.echo(f"{DATA_DIR / name}: {m['formula']}, {m['equations']} equations, "
                   f"{m['train']} train / {m['validation']} validation")


def _duration(text: str) -> float:
    """Seconds in '90', '90s', '45m', '2h' or '1h30m'."""
    import re

    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or parts is None or not any(parts.groups()):
        raise click.BadParameter(f"{text!r} is not a duration; write e.g. 90s, 45m, 2h or 1h30m")
    hours, minutes, seconds = (float(p) if p else 0.0 for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


@main.command()
@click.argument("name")
@click.option("--precision", type=click.Choice(["fp32", "tf32"]), default="fp32", show_default=True,
              help="Matrix-product precision on GPUs (CPUs compute fp32 either way); recorded in run.json.")
@click.option("--for", "duration", metavar="DURATION", default=None,
              help="Train for at most this long (90s, 45m, 2h, 1h30m), then checkpoint and exit 0; run again to "
                   "continue. A named run stopped so leaves its history so far in runs/NAME/ (a partial result).")
@click.option("--must-resume", is_flag=True,
              help="A checkpoint under checkpoints/ that this code cannot continue is an error, not a fresh start: "
                   "it is left as it is (paper/campaign.sh trains so; `repro adopt` carries state across code).")
@click.pass_context
@_clear_errors
def train(context: click.Context, name: str, precision: str, duration: str | None, must_resume: bool) -> None:
    """Trains sweep NAME into runs/NAME/ (every group of it, in one process), or group NAME into runs/NAME/.

    A group is a named run, or a sweep's `<sweep>/<operation>-<intervention>`;
    a sweep member's name trains the whole group it belongs to. A killed
    process resumes from its checkpoints; Ctrl-C checkpoints within seconds and
    exits 130 (twice: at once). KERAS_BACKEND picks the backend (tensorflow,
    the default, or jax).
    """
    from repro import train as train_module

    seconds = None if duration is None else _duration(duration)
    config = _config(context)
    outcome = train_module.train_target(config, name, precision, seconds, must_resume)
    for group, positions, reached, budget in outcome.stopped:
        where = "not started" if reached < 0 else f"stopped at update {reached:,} of {budget:,}"
        click.echo(f"{group}: runs {positions} {where}; run again to continue")
    if outcome.stopped:
        click.echo(f"{name}: stopped ({'the deadline' if outcome.reason == 'deadline' else outcome.reason}); its "
                   f"checkpoints are under {CHECKPOINT_DIR}/, and `repro pack {name} FILE` carries them elsewhere")
        if outcome.reason != "deadline":
            context.exit(130 if outcome.reason == "SIGINT" else 143)
        return
    for run, last in outcome.finished:
        click.echo(f"{RUNS_DIR / run.directory}: {int(last[0])} updates, train acc {last[2]:.3f}, "
                   f"val acc {last[4]:.3f}")


@main.command()
@click.argument("name")
@click.pass_context
@_clear_errors
def evaluate(context: click.Context, name: str) -> None:
    """Summarizes run or sweep NAME: metrics/NAME.json (a few numbers), records/NAME.json (per run, with
    file hashes), and copies its histories under histories/."""
    from repro import evaluate as evaluate_module

    record = evaluate_module.stage(_config(context), name)
    if "grid" in record:  # a sweep
        missing = record["missing_groups"]
        click.echo(f"{METRICS_DIR / name}.json: {len(record['runs'])} runs"
                   + (f"; not trained yet: {len(missing)} group(s): {', '.join(missing)}" if missing else ""))
    else:
        click.echo(f"{METRICS_DIR / name}.json: 99% train at {record['updates_to_99_train']}, "
                   f"99% validation at {record['updates_to_99_val']}, best val {record['best_val_accuracy']:.3f}")


@main.command()
@click.argument("names", nargs=-1)
@click.pass_context
@_clear_errors
def progress(context: click.Context, names: tuple[str, ...]) -> None:
    """Progress measures of named runs NAMES (default: all under params.yaml's `progress`), into progress/NAME/.

    Replays each trained run, checks the replay against its history, and measures its Fourier spectrum,
    key frequencies, restricted and excluded loss and Gini coefficient at every logged update.
    """
    from repro import progress as progress_module
    from repro import replay

    config = _config(context)
    for name in names or config.progress:
        summary = replay.stage(config, name).summary
        phases = summary["phases"]
        click.echo(f"{progress_module.FOLDER / name}: key frequencies {summary['key_frequencies']} "
                   f"({summary['key_share']:.0%} of the logits' energy); phases end at "
                   f"{phases['memorization_ends']}, {phases['circuit_formation_ends']}, {phases['cleanup_ends']}; "
                   f"replay {'identical' if summary['replay']['identical'] else 'differs'}")


@main.command()
@click.pass_context
@_clear_errors
def embeddings(context: click.Context) -> None:
    """Figure 3's analysis: structure scores, their chance levels and t-SNE maps of figures.embeddings' runs.

    Writes records/embeddings.json (the scores, the subgroups, the maps), records/output_layers/ (the rows
    they come from) and metrics/embeddings.json (the scores alone); `repro figures embeddings` draws them.
    """
    from repro import embeddings as embeddings_module

    record = embeddings_module.stage(_config(context))
    s5 = record["s5"]
    click.echo(f"{RECORDS_DIR / embeddings_module.RECORD}: S5 cosets of order {s5['subgroup_order']}, score "
               f"{s5['coset_score']} (the paper's subgroup {s5['paper_subgroup']['coset_score']}, chance "
               f"{s5['paper_subgroup']['chance_99']})")


@main.command()
@click.argument("names", nargs=-1)
@click.pass_context
@_clear_errors
def figures(context: click.Context, names: tuple[str, ...]) -> None:
    """Draws figures NAMES (default: all) from the runs and sweeps named in params.yaml's `figures`.

    curves: Figure 1 (left) and 4; table: Figure 1 (right); fractions: Figure 1 (center);
    interventions: Figure 2 (left); operations: Figure 2 (right); embeddings: Figure 3; progress: Figure 5
    (the registry: repro/files.py, FIGURES).
    """
    from repro import figures as figures_module

    config = _config(context)
    for name in names or tuple(FIGURES):
        for path in figures_module.draw(config, name):
            click.echo(str(path))


@main.command()
@click.pass_context
@_clear_errors
def claims(context: click.Context) -> None:
    """Writes reports/claims.md and reports/claims.json from the committed histories; trains nothing."""
    from repro import claims as claims_module

    for claim in claims_module.stage(_config(context)):
        click.echo(f"{claim.id}: {claim.verdict}")


