"""The `tectonite` command: a click group whose commands are registered here, in one place,
and imported only when run (or listed in `--help`), so no command module is imported by the
group and none can import another through it."""

from __future__ import annotations

import importlib

import click

from app.cli.context import CliContext, pass_context
from app.config import Settings, SettingsError

# Command name → "module:attribute" of its click command.
COMMANDS = {
    "db": "app.cli.db:db",
    "serve": "app.cli.serve:serve",
    "api-key": "app.cli.keys:api_key",
    "service-account": "app.cli.keys:service_account",
    "access-control": "app.cli.keys:access_control",
    "workspace": "app.repo.cli:workspace",
    "plan": "app.repo.cli:plan",
    "apply": "app.repo.cli:apply",
    "ingest": "app.ingest.cli:ingest",
    "import": "app.initdir.cli:import_dir",
    "export": "app.initdir.cli:export_dir",
    "mirror": "app.initdir.cli:mirror",
    "clock": "app.emulator.cli:clock",
    "reset": "app.emulator.cli:reset_command",
    "fault": "app.emulator.cli:fault",
    "requests": "app.emulator.cli:requests",
    "explain": "app.emulator.cli:explain",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, from `lazy_commands`."""

    def __init__(self, *args: object, lazy_commands: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # click's own keyword set
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.lazy_commands, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_commands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover (a wrong COMMANDS entry)
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(
    name="tectonite",
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="tectonite", prog_name="tectonite")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Tectonite: Tecton's feature-serving API on PostgreSQL."""
    if ctx.obj is None:
        try:
            ctx.obj = CliContext(Settings.from_env())
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None


__all__ = ["CliContext", "cli", "main", "pass_context"]


def main() -> None:
    cli(prog_name="tectonite")
