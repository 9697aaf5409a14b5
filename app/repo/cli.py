"""`tectonite workspace …`, `tectonite plan` and `tectonite apply`."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
from sqlalchemy.orm import Session

from app.cli.context import CliContext, pass_context
from app.repo.definitions import Definitions
from app.repo.loader import DefinitionsError, load_definitions
from app.repo.plan import Plan
from app.repo.service import (
    PlannedApply,
    WorkspaceError,
    apply_plan,
    create_workspace,
    delete_workspace,
    list_workspaces,
    plan_apply,
)


@click.group()
def workspace() -> None:
    """Create, list and delete workspaces."""


@workspace.command("create")
@click.argument("name")
@click.option("--live/--development", default=True, help="Live workspaces serve online (default).")
@pass_context
def workspace_create(ctx: CliContext, name: str, live: bool) -> None:
    """Create a workspace."""
    with ctx.database.session() as session:
        try:
            create_workspace(session, name, live=live)
        except WorkspaceError as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
    click.echo(f'Created {"live" if live else "development"} workspace "{name}".')


@workspace.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_context
def workspace_list(ctx: CliContext, as_json: bool) -> None:
    """List workspaces."""
    with ctx.database.session() as session:
        workspaces = list_workspaces(session)
    if as_json:
        rows = [{"name": w.name, "live": w.live} for w in workspaces]
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    for title, live in (("Live Workspaces", True), ("Development Workspaces", False)):
        click.echo(f"{title}:")
        names = [w.name for w in workspaces if w.live is live]
        for name in names:
            click.echo(f"  {name}")
        if not names:
            click.echo("  (none)")


@workspace.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def workspace_delete(ctx: CliContext, name: str, yes: bool) -> None:
    """Delete a workspace with all its definitions and stored feature values."""
    if not yes:
        click.confirm(
            f'Deleting workspace "{name}" deletes all its definitions and stored feature values. '
            "Continue?",
            abort=True,
        )
    with ctx.database.session() as session:
        try:
            delete_workspace(session, name)
        except WorkspaceError as exc:
            raise click.ClickException(str(exc)) from None
        session.commit()
    click.echo(f'Deleted workspace "{name}".')


def _definitions(file: Path) -> Definitions:
    """The file's definitions, or the command's error listing every problem in it."""
    try:
        return load_definitions(file)
    except DefinitionsError as exc:
        for error in exc.errors:
            click.echo(error, err=True)
        raise click.ClickException(
            f"{len(exc.errors)} error(s) in {file}; nothing was applied."
        ) from None


def _plan(session: Session, desired: Definitions, workspace_name: str) -> PlannedApply:
    try:
        return plan_apply(session, desired, workspace_name)
    except WorkspaceError as exc:
        raise click.ClickException(str(exc)) from None


FILE_OPTION = click.option(
    "-f", "--file", "file", required=True,
    type=click.Path(dir_okay=False, path_type=Path), help="Definitions YAML file.",
)  # fmt: skip
WORKSPACE_OPTION = click.option("--workspace", "-w", required=True, help="Target workspace.")


@click.command()
@FILE_OPTION
@WORKSPACE_OPTION
@pass_context
def plan(ctx: CliContext, file: Path, workspace: str) -> None:
    """Show what `apply` would change; change nothing."""
    desired = _definitions(file)
    with ctx.database.session() as session:
        planned = _plan(session, desired, workspace)
    click.echo(f'Using workspace "{workspace}"')
    click.echo(planned.plan.render())


@click.command()
@FILE_OPTION
@WORKSPACE_OPTION
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@pass_context
def apply(ctx: CliContext, file: Path, workspace: str, yes: bool) -> None:
    """Make the workspace hold exactly what the file declares, in one transaction."""
    desired = _definitions(file)
    with ctx.database.session() as session:
        planned = _plan(session, desired, workspace)
        click.echo(f'Using workspace "{workspace}"')
        click.echo(planned.plan.render())
        if planned.plan.empty:
            return
        if not yes:
            click.confirm(
                f'Are you sure you want to apply this plan to: "{workspace}"?', abort=True
            )
        apply_plan(session, planned.workspace, planned.desired, planned.plan)
        session.commit()
    click.echo(_summary(planned.plan, workspace))


def _summary(changes: Plan, workspace: str) -> str:
    return f'🎉 Done! Applied changes to {len(changes.changes)} objects in workspace "{workspace}".'
