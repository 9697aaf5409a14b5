"""`tectonite import`, `export` and `mirror`, and the init step of `serve --init`."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli.context import CliContext, pass_context
from app.db import Database
from app.initdir.export import export_workspace
from app.initdir.layout import InitDirError, read_init_dir
from app.initdir.load import InitReport, load_init_dir
from app.initdir.mirror import MirrorError, fetch_metadata, write_mirror
from app.repo.state import find_workspace

_DIRECTORY = click.Path(file_okay=False, path_type=Path)


def initialise(database: Database, path: Path, configured_secret: str | None) -> InitReport:
    """Load `path` in one transaction (committed only when all of it loaded), or raise a
    ClickException listing each bad file and line: start-up stops, nothing changed."""
    with database.session() as session:
        try:
            report = load_init_dir(session, read_init_dir(path), configured_secret)
        except InitDirError as exc:
            session.rollback()
            raise click.ClickException(
                f"cannot load the init directory {path}:\n  " + "\n  ".join(exc.messages)
            ) from None
        session.commit()
    return report


def describe(report: InitReport) -> str:
    """The summary and every key created now (generated keys are shown this once)."""
    lines = [report.summary()]
    for key in report.created_keys:
        scope = f" on {key.workspace}" if key.workspace else ""
        shown = key.key if key.key is not None else "(the fixed key in keys.yaml)"
        lines.append(f"  {key.role}{scope} key {key.description!r}: {shown}")
    return "\n".join(lines)


@click.command(name="import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@pass_context
def import_dir(ctx: CliContext, directory: Path) -> None:
    """Bring the database to the state an init DIRECTORY describes (idempotent).

    DIRECTORY/<workspace>/features.yaml (+ transforms), DIRECTORY/<workspace>/data/<view>.csv|
    .jsonl|.parquet, optional DIRECTORY/<workspace>/workspace.yaml (live: false) and
    DIRECTORY/keys.yaml.
    """
    report = initialise(ctx.database, directory, ctx.settings.secret)
    click.echo(describe(report))


@click.command(name="export")
@click.option("--workspace", "-w", required=True, help="The workspace to export.")
@click.argument("directory", type=_DIRECTORY)
@pass_context
def export_dir(ctx: CliContext, workspace: str, directory: Path) -> None:
    """Write WORKSPACE as an init directory under DIRECTORY (keys are not exported)."""
    with ctx.database.session() as session:
        stored = find_workspace(session, workspace)
        if stored is None:
            raise click.ClickException(f'Workspace "{workspace}" not found.')
        report = export_workspace(session, stored, directory)
    click.echo(
        f"Exported workspace {workspace} to {directory / workspace}: "
        f"{report.views} view(s), {report.rows} row(s)."
    )


@click.command(name="mirror")
@click.option("--url", required=True, help="The cluster's base URL (https://<x>.tecton.ai).")
@click.option("--api-key", required=True, envvar="TECTON_API_KEY", help="A key that may read "
              "the service's metadata (default: $TECTON_API_KEY).")  # fmt: skip
@click.option("--workspace", "-w", required=True, help="The service's workspace.")
@click.option("--service", "-s", required=True, help="The feature service to mirror.")
@click.option("--rows", type=click.IntRange(min=0), default=10, show_default=True,
              help="Synthetic rows per feature table.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed for values.")
@click.argument("directory", type=_DIRECTORY)
def mirror(
    url: str, api_key: str, workspace: str, service: str, rows: int, seed: int, directory: Path
) -> None:
    """Write an init DIRECTORY whose service has the cluster's request keys, features and
    types, with ROWS rows of synthetic values (no cluster data is copied)."""
    try:
        metadata = fetch_metadata(url, api_key, workspace, service)
        written = write_mirror(metadata, workspace, service, directory, rows=rows, seed=seed)
    except MirrorError as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(f"wrote {directory / path}")
    click.echo(f"Start it with: tectonite serve --init {directory}")
