"""The pipeline's stages: dvc.yaml's `cmd: repro <stage> …` runs repro/stages/<stage>.py, one module per stage.

Each stage module holds its click command (`command`: its arguments, its options and their defaults, what it
prints) and `stage(config, …)`, the work itself. dvc.yaml's code dependencies of a stage are the import
closure of its module (repro/tools/pipelines.py), so every line that can shape a result, an option's default
included, is a dependency. repro/cli.py only dispatches: it imports a stage's module when that stage is run.

This package's own code is what the commands share and no result depends on: the order of the stages, one
way to load the parameters, and one way to report bad input.
"""

from __future__ import annotations

import errno
import functools
import re
from pathlib import Path

import click

from repro import config as config_module
from repro.config import ConfigError

# The stages in the pipeline's order; `repro --help` lists them so, apart from the tools.
ORDER = ("generate", "train", "evaluate", "progress", "embeddings", "figures", "claims")

_DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM}


def clear_errors(command):
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


def config_of(context: click.Context) -> config_module.Config:
    """The parameters of `repro --params FILE` (default params.yaml), validated."""
    return config_module.load(Path(context.obj))


def duration(text: str) -> float:
    """Seconds in '90', '90s', '45m', '2h' or '1h30m'."""
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or parts is None or not any(parts.groups()):
        raise click.BadParameter(f"{text!r} is not a duration; write e.g. 90s, 45m, 2h or 1h30m")
    hours, minutes, seconds = (float(p) if p else 0.0 for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds
