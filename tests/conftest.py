"""Test harness: a real PostgreSQL, migrations applied once, and every test isolated.

The server is TEST_DATABASE_URL or DATABASE_URL when set, otherwise a throwaway embedded
PostgreSQL (pgserver). Each run creates its own database on it, so runs never see each other.
In-process tests run inside one outer transaction per test, rolled back at the end; tests that
need a real server process use committed data and `clean_database` truncates it afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from app import create_app, migrate
from app.cli import CliContext, cli
from app.config import SERVERS, Settings
from app.db import Database

# pytester runs pytest-tectonite (clients/pytest-tectonite) in child pytest sessions.
pytest_plugins = ["pytester"]

# --------------------------------------------------------------------------- the database server


def _server_url(tmp_root: Path) -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    server = pgserver.get_server(tmp_root / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database for this run, migrated to head (which also tests the migrations)."""
    # Outside pytest's temp root: nested pytest runs prune old run folders there.
    server_urls = _server_url(Path(tempfile.mkdtemp(prefix="tectonite-test-pg-")))
    server_url = Settings().replace(database_url=next(server_urls)).sqlalchemy_url
    name = f"tectonite_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        next(server_urls, None)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        threads=2,
        secret="test-secret-not-for-production",
        listen_for_changes=False,
    )


@pytest.fixture(scope="session")
def engine_database(settings: Settings) -> Iterator[Database]:
    database = Database.from_settings(settings)
    yield database
    database.dispose()


# --------------------------------------------------------------------------- per-test isolation
# Caches belong to the app (`create_app`), and each test builds its own: nothing to flush.


@pytest.fixture
def connection(engine_database: Database) -> Iterator[Connection]:
    """A connection inside an outer transaction that is rolled back after the test."""
    with engine_database.engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            outer.rollback()


@pytest.fixture
def database(connection: Connection) -> Database:
    """The app's Database, bound to the test's connection (commits become savepoints)."""
    return Database.bound_to(connection)


@pytest.fixture
def app(settings: Settings, database: Database) -> Flask:
    return create_app(settings, database=database)


# --------------------------------------------------------------------------- the CLI


@dataclass
class Cli:
    """Invokes `tectonite` in-process against the test's database."""

    settings: Settings
    database: Database | None
    runner: CliRunner = field(default_factory=CliRunner)

    def invoke(self, *args: str, input: str | None = None) -> Result:
        context = CliContext(self.settings, injected_database=self.database)
        return self.runner.invoke(cli, list(args), obj=context, input=input, catch_exceptions=False)

    def ok(self, *args: str, input: str | None = None) -> Result:
        """Invoke and require exit status 0."""
        result = self.invoke(*args, input=input)
        assert result.exit_code == 0, (result.exit_code, result.output, result.stderr)
        return result


@pytest.fixture
def runner(settings: Settings, database: Database) -> Cli:
    return Cli(settings, database)


# ------------------------------------------------------------ committed data + live server

DOMAIN_TABLES_SQL = """
SELECT string_agg(format('%I', tablename), ', ')
FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'
"""


@pytest.fixture
def clean_database(engine_database: Database) -> Iterator[Database]:
    """A Database whose writes really commit (visible to server processes); emptied afterwards."""
    yield engine_database
    with engine_database.engine.begin() as conn:
        tables = conn.execute(text(DOMAIN_TABLES_SQL)).scalar_one()
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
        # Server processes keep copies of the emulator's clock and fault rules: drop them too.
        conn.execute(text("SELECT pg_notify('tectonite_changes', 'emulator:')"))


@pytest.fixture
def committed_runner(settings: Settings, clean_database: Database) -> Cli:
    """The CLI on committed data, as a user runs it next to a server."""
    return Cli(settings, clean_database)


@dataclass
class ServerProcess:
    """A `tectonite serve` child process and what it printed."""

    process: subprocess.Popen[str]
    base_url: str
    output: list[str]
    reader: threading.Thread

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        status = self.process.wait(timeout=timeout)
        self.reader.join(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return status


def start_server(
    env_overrides: dict[str, str], *args: str, ready_timeout: float = 60
) -> ServerProcess:
    """Start `tectonite serve --port 0` and wait for the line that announces its URL."""
    env = {**os.environ, **env_overrides}
    env.setdefault("PYTHONUNBUFFERED", "1")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    ready = threading.Event()
    found: dict[str, str] = {}

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if "is serving the Tecton API at " in line and not ready.is_set():
                found["url"] = line.rsplit(" at ", 1)[1].strip().removesuffix("/api")
                ready.set()
        ready.set()  # the process ended: wake the waiter

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if not ready.wait(ready_timeout) or "url" not in found:
        process.kill()
        ServerProcess(process, "", output, reader).stop()
        raise AssertionError("server did not start:\n" + "".join(output))
    return ServerProcess(process, found["url"], output, reader)


@pytest.fixture(scope="session", params=SERVERS)
def server_name(request: pytest.FixtureRequest) -> str:
    """Each HTTP server `tectonite serve` supports: end-to-end tests run against every one."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def server(database_url: str, settings: Settings, server_name: str) -> Iterator[ServerProcess]:
    """One real `tectonite serve` (2 workers x 4 threads) per HTTP server for the session."""
    proc = start_server(
        {
            "TECTONITE_SERVER": server_name,
            "DATABASE_URL": database_url,
            "WEB_CONCURRENCY": "2",
            "TECTONITE_THREADS": "4",
            "TECTONITE_SECRET": settings.secret or "",
            "TECTONITE_DATA_DIR": str(settings.data_dir),
        }
    )
    yield proc
    proc.stop()


@pytest.fixture
def temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


def pg_connect(url: str) -> psycopg.Connection:
    """A plain psycopg connection from a SQLAlchemy-style URL."""
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
