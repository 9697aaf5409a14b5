"""`tectonite db`: schema migrations."""

from __future__ import annotations

import click

from app import migrate
from app.cli.context import CliContext, pass_context


@click.group()
def db() -> None:
    """Manage the database schema."""


@db.command()
@pass_context
def upgrade(ctx: CliContext) -> None:
    """Apply pending migrations (serve does this on start)."""
    database = ctx.database  # opening it applies pending migrations
    with database.read() as connection:
        revision = migrate.current_revision(connection)
    click.echo(f"Database schema is at revision {revision} (head).")


@db.command()
@pass_context
def current(ctx: CliContext) -> None:
    """Print the schema revision the database is at."""
    with ctx.database.read() as connection:
        click.echo(migrate.current_revision(connection) or "none")
