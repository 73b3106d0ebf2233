"""`repro claims`: every claim of the paper decided from the committed files (repro/claims/), into
reports/claims.md and reports/claims.json. Trains nothing."""

from __future__ import annotations

import click

from repro import files
from repro.claims import Claim, assess, inputs, to_json, to_markdown
from repro.config import Config
from repro.files import HISTORIES_DIR, RECORDS_DIR, REPORT_DIR
from repro.stages import clear_errors, config_of


def stage(config: Config) -> list[Claim]:
    """Every claim assessed from the committed files, written to reports/claims.{md,json}."""
    found = assess(**inputs(config, HISTORIES_DIR, RECORDS_DIR))
    files.write_text(REPORT_DIR / "claims.md", to_markdown(found, f"scale `{config.scale}`"))
    files.write_json(REPORT_DIR / "claims.json", to_json(found))
    return found


@click.command("claims")
@click.pass_context
@clear_errors
def command(context: click.Context) -> None:
    """Writes reports/claims.md and reports/claims.json from the committed histories; trains nothing."""
    for claim in stage(config_of(context)):
        click.echo(f"{claim.id}: {claim.verdict}")
