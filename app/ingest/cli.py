"""`tectonite ingest`: bulk-load a file into a feature view or table."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from app.cli.context import CliContext, pass_context
from app.ingest.bulk import (
    FORMATS,
    BulkLoadError,
    ProgressCallback,
    detect_format,
    load_events,
    load_file,
)
from app.ingest.service import BulkTargetError, bulk_target
from app.serving import clock
from app.store import analyze, vacuum

# Loads this large refresh the store's planner statistics before they commit.
ANALYZE_AFTER_ROWS = 10_000

PLAIN_PROGRESS_EVERY = 100_000  # rows between progress lines when stderr is not a terminal


@click.command()
@click.option("--workspace", "-w", required=True, help="The workspace of the feature view.")
@click.option("--feature-view", "feature_view", required=True, help="The view or table to load.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    help="File format (default: from the file name: .csv, .jsonl/.ndjson, .parquet).",
)
@click.option(
    "--timestamp-column",
    default=None,
    help="The column holding each row's event time (default: timestamp; for an aggregate "
    "view, its push source's timestamp field).",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def ingest(
    ctx: CliContext,
    workspace: str,
    feature_view: str,
    file_format: str | None,
    timestamp_column: str | None,
    file: Path,
) -> None:
    """Load FILE (CSV, JSON Lines or Parquet) into a feature view or table.

    Columns: the view's join keys, the event time, and the features by name, in any order.
    Nested values are JSON text in CSV; empty CSV cells are null. Per entity the newest event
    time wins; nothing is written unless every row is valid.

    An aggregate view takes an events file instead: its push source's columns, each row one
    event folded into the view's tiles.
    """
    file_format = file_format or detect_format(file)
    if file_format is None:
        raise click.UsageError(
            f"cannot tell the format of {file.name}; pass --format {'|'.join(FORMATS)}"
        )
    with ctx.database.session() as session:
        try:
            target = bulk_target(session, workspace, feature_view)
        except BulkTargetError as exc:
            raise click.ClickException(str(exc)) from None
        started = time.perf_counter()
        with _progress(file.name) as progress:
            try:
                if target.aggregation is not None:
                    result = load_events(
                        session,
                        target,
                        file,
                        file_format=file_format,
                        now=clock.stored_now(session),
                        timestamp_column=timestamp_column,
                        progress=progress,
                    )
                else:
                    result = load_file(
                        session,
                        target,
                        file,
                        file_format=file_format,
                        timestamp_column=timestamp_column or "timestamp",
                        progress=progress,
                    )
            except BulkLoadError as exc:
                session.rollback()
                for message in exc.messages:
                    click.echo(message, err=True)
                raise click.exceptions.Exit(1) from None
        large = result.written >= ANALYZE_AFTER_ROWS
        if large:
            analyze(session)  # the first reads after the load are planned on it
        session.commit()
        if large and ctx.database.bound_connection is None:
            vacuum(ctx.database.engine)  # ... and find its pages already settled
        elapsed = time.perf_counter() - started
    click.echo(f"read {result.read}, written {result.written}, skipped {result.skipped} as older")
    rate = f" ({result.read / elapsed:,.0f} rows/s)" if elapsed > 0 and result.read else ""
    click.echo(f"Loaded {file.name} into {feature_view} in {elapsed:.2f} s{rate}.", err=True)


@contextmanager
def _progress(label: str) -> Iterator[ProgressCallback]:
    """A rich progress bar on a terminal; plain lines every 100,000 rows otherwise."""
    if sys.stderr.isatty():
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        task = bar.add_task(label, total=None, rows=0)

        def update_bar(rows: int, done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total, rows=rows)

        with bar:
            yield update_bar
        return

    reported = 0

    def print_line(rows: int, done: int, total: int | None) -> None:
        nonlocal reported
        if rows - reported >= PLAIN_PROGRESS_EVERY:
            reported = rows
            share = f" ({100 * done / total:.0f}%)" if total else ""
            click.echo(f"read {rows:,} rows{share}", err=True)

    yield print_line
