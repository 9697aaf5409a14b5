"""The `tectonite` command: a click group; each feature package contributes its commands."""

from __future__ import annotations

import click

from app.cli.context import CliContext, pass_context
from app.cli.db import db
from app.cli.keys import access_control, api_key, service_account
from app.cli.serve import serve
from app.config import Settings, SettingsError
from app.emulator.cli import COMMANDS as EMULATOR_COMMANDS
from app.ingest.cli import ingest
from app.repo.cli import apply, plan, workspace


@click.group(name="tectonite", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tectonite", prog_name="tectonite")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Tectonite: Tecton's feature-serving API on PostgreSQL."""
    if ctx.obj is None:
        try:
            ctx.obj = CliContext(Settings.from_env())
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None


cli.add_command(db)
cli.add_command(serve)
cli.add_command(api_key)
cli.add_command(service_account)
cli.add_command(access_control)
cli.add_command(workspace)
cli.add_command(plan)
cli.add_command(apply)
cli.add_command(ingest)
for _command in EMULATOR_COMMANDS:
    cli.add_command(_command)

__all__ = ["CliContext", "cli", "main", "pass_context"]


def main() -> None:
    cli(prog_name="tectonite")
