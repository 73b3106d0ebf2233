"""The `repro` command: one subcommand per pipeline stage, then the tools that are no stage.

`repro <stage>` is repro/stages/<stage>.py (its `command`), imported only when that stage runs, so a
stage loads no other stage's code; the tools are in repro/tools/commands.py, loaded only when one is
asked for. Paths are fixed by name so that dvc.yaml can state every input and output:
    data/<dataset>/        repro generate <dataset>
    runs/<run>/            repro train <run>
    metrics/<run>.json     repro evaluate <run>
    figures/*.png          repro figures
"""

from __future__ import annotations

import ast
import faulthandler
import importlib
import os
import sys
from pathlib import Path

import click

from repro.stages import ORDER as STAGES


class _Commands(click.Group):
    """`repro --help` in two parts: the pipeline's stages in order, then the tools that are no stage."""

    @staticmethod
    def _tools() -> None:
        importlib.import_module("repro.tools.commands")  # registers the tools on `main`

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._tools()
        return [*STAGES, *sorted(name for name in super().list_commands(ctx) if name not in STAGES)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in STAGES:
            return importlib.import_module(f"repro.stages.{name}").command
        self._tools()
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        width = formatter.width - 20
        stages = [(name, _stage_help(name, width)) for name in STAGES]
        tools = [(name, command.get_short_help_str(width)) for name in self.list_commands(ctx) if name not in STAGES
                 for command in [self.get_command(ctx, name)] if not command.hidden]
        for title, part in (("Stages (dvc.yaml runs these, in this order)", stages), ("Tools", tools)):
            with formatter.section(title):
                formatter.write_dl(part)


def _stage_help(name: str, width: int) -> str:
    """A stage command's short help, read from its module's source: `repro --help` imports no stage (each
    loads Keras or matplotlib, seconds of start-up)."""
    tree = ast.parse((Path(__file__).parent / "stages" / f"{name}.py").read_text(encoding="utf-8"))
    command = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "command")
    return click.Command(name, help=ast.get_docstring(command)).get_short_help_str(width)


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
