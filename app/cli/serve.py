"""`tectonite serve`: migrate, then run the HTTP server (granian or gunicorn) until SIGTERM."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app import create_app
from app.cli.context import CliContext, pass_context
from app.config import SERVERS
from app.demo import instructions, prepare_demo
from app.initdir.cli import describe, initialise
from app.observability.metrics import prepare_multiprocess_dir
from app.server import make_server


def announce_ready(base_url: str) -> None:
    """The line tests, scripts and users wait for: the server is listening."""
    click.echo(f"Tectonite is serving the Tecton API at {base_url}/api")
    click.echo(f"Health: {base_url}/healthz  Readiness: {base_url}/readyz")
    sys.stdout.flush()


@click.command()
@click.option("--host", help="Listen address (TECTONITE_HOST, default 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(min=0), help="Listen port (PORT, default 8328; 0 = any)."
)
@click.option(
    "--server",
    type=click.Choice(SERVERS),
    help="HTTP server (TECTONITE_SERVER, default granian).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (WEB_CONCURRENCY).")
@click.option(
    "--threads", type=click.IntRange(min=1), help="Threads per worker (TECTONITE_THREADS)."
)
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), help="TLS certificate.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="TLS private key.")
@click.option(
    "--demo", is_flag=True, help="Create a demo workspace, data and key; print how to call it."
)
@click.option(
    "--init",
    "init_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Load this init directory before serving (TECTONITE_INIT_DIR).",
)
@pass_context
def serve(
    ctx: CliContext,
    host: str | None,
    port: int | None,
    server: str | None,
    workers: int | None,
    threads: int | None,
    certfile: str | None,
    keyfile: str | None,
    demo: bool,
    init_dir: Path | None,
) -> None:
    """Serve the Tecton-compatible API."""
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile must be given together.")
    overrides = {
        "host": host,
        "port": port,
        "server": server,
        "workers": workers,
        "threads": threads,
    }
    ctx.settings = ctx.settings.replace(**{k: v for k, v in overrides.items() if v is not None})
    database = ctx.database  # starts the embedded server if needed and applies migrations
    prepared = None
    if demo:
        with database.session() as session:
            prepared = prepare_demo(session, ctx.settings.secret)
            session.commit()
    init_dir = init_dir or ctx.settings.init_dir
    if init_dir:
        click.echo(describe(initialise(database, init_dir, ctx.settings.secret)))
    # Before any worker exists: every worker process writes its metrics under this directory.
    settings = ctx.settings.replace(metrics_dir=prepare_multiprocess_dir(ctx.settings.metrics_dir))
    ctx.close()  # workers open their own pools; nothing may be shared across fork()

    def announce(base_url: str) -> None:
        announce_ready(base_url)
        if prepared is not None:
            click.echo(instructions(base_url, prepared))
        sys.stdout.flush()

    make_server(
        settings, app_factory=create_app, certfile=certfile, keyfile=keyfile, on_ready=announce
    ).run()
