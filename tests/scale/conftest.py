"""Real PostgreSQL machinery for the scale-out tests: Debian's PgBouncer in front of the test
database, and throwaway clusters (a primary and its streaming replica) made with initdb and
pg_basebackup. Every process started here is stopped by its fixture."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from app.cli import CliContext, cli
from app.config import Settings

INSTALL_HINT = "apt-get install pgbouncer (.ci/run installs it where it is missing)"

# A push source feeding a latest-value view and a continuous aggregate, served together.
DEFINITIONS = """
entities:
  - name: user
    join_keys: [{name: user_id, type: String}]
push_sources:
  - name: events
    timestamp_field: ts
    schema:
      - {name: user_id, type: String}
      - {name: amount, type: Float64}
      - {name: ts, type: Timestamp}
feature_views:
  - name: user_last
    entities: [user]
    source: events
    ttl: 30d
    features:
      - {name: amount, type: Float64}
  - name: user_totals
    entities: [user]
    source: events
    features:
      - {function: sum, column: amount, window: 1d, name: amount_sum}
feature_services:
  - name: svc
    features: [user_last, user_totals]
"""


@dataclass
class OwnCli:
    """The CLI in-process as a user runs it: its own engine on `settings`, closed after each
    command."""

    settings: Settings
    runner: CliRunner = field(default_factory=CliRunner)

    def ok(self, *args: str) -> Result:
        context = CliContext(self.settings)
        try:
            result = self.runner.invoke(cli, list(args), obj=context, catch_exceptions=False)
        finally:
            context.close()
        assert result.exit_code == 0, (result.exit_code, result.output)
        return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


def unprivileged_user(owner_of: Path | None = None) -> str | None:
    """The user to run PostgreSQL tools as: None when we are not root (they refuse root)."""
    if os.geteuid() != 0:
        return None
    if owner_of is not None and owner_of.is_dir():
        return pwd.getpwuid(owner_of.stat().st_uid).pw_name
    for name in ("postgres", "pgserver", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    pytest.skip("running as root and no unprivileged user to run PostgreSQL tools as")


def give_to(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)


# --------------------------------------------------------------------------- PgBouncer


@dataclass
class Bouncer:
    process: subprocess.Popen[bytes]
    url: str  # the test database through PgBouncer (SQLAlchemy spelling)
    admin_url: str  # PgBouncer's admin console

    def transactions(self, database: str) -> int:
        """Transactions PgBouncer has pooled for `database` so far (SHOW STATS)."""
        with psycopg.connect(self.admin_url, autocommit=True, prepare_threshold=None) as admin:
            cursor = admin.cursor()
            cursor.execute("SHOW STATS")
            names = [c.name for c in cursor.description or ()]
            for row in cursor.fetchall():
                stats = dict(zip(names, row, strict=True))
                if stats["database"] == database:
                    return int(stats["total_xact_count"])
        return 0


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )
    if found is None:
        pytest.skip(f"pgbouncer is not installed: {INSTALL_HINT}")
    return found


@pytest.fixture(scope="module")
def pgbouncer(database_url: str) -> Iterator[Bouncer]:
    """PgBouncer in transaction mode in front of the test database, with fewer server
    connections (3) than the servers and CLI open client connections, so they are shared."""
    binary = pgbouncer_binary()
    url = make_url(database_url)
    host = url.query.get("host") or url.host or "localhost"
    host = host if isinstance(host, str) else host[0]
    user, password = url.username or "postgres", url.password or ""
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="tectonite-pgbouncer-"))
    (directory / "users.txt").write_text(f'"{user}" "{password}"\n')
    (directory / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={host} port={url.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "users.txt"}
admin_users = {user}
pool_mode = transaction
default_pool_size = 3
max_client_conn = 500
server_reset_query =
logfile = {directory / "pgbouncer.log"}
"""
    )
    run_as = unprivileged_user(Path(host) if host.startswith("/") else None)
    give_to(directory, run_as)
    command = [binary, *(["-u", run_as] if run_as else []), str(directory / "pgbouncer.ini")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        through = url.set(host="127.0.0.1", port=port, query={})
        admin = through.set(database="pgbouncer", drivername="postgresql")
        yield Bouncer(
            process,
            through.render_as_string(hide_password=False),
            admin.render_as_string(hide_password=False),
        )
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- clusters


def postgres_bin_dir() -> Path:
    """Debian's PostgreSQL binaries (newest), else the embedded server's."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all(os.path.exists(f"{candidate}/{tool}") for tool in ("initdb", "pg_basebackup")):
            return Path(candidate)
    with contextlib.suppress(ImportError):
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (bundled / "pg_basebackup").exists():
            return bundled
    pytest.skip("no PostgreSQL binaries (initdb, pg_basebackup) to make a replica with")


@dataclass
class Cluster:
    """One throwaway PostgreSQL server listening on a unix socket only."""

    bin_dir: Path
    data_dir: Path
    socket_dir: Path
    port: int
    user: str | None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / tool), *args],
            check=True, capture_output=True, user=self.user, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-k {self.socket_dir} -p {self.port} -c listen_addresses=''"
        log = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")


@dataclass
class Replicated:
    primary: Cluster
    replica: Cluster
    database: str

    @property
    def primary_url(self) -> str:
        return self.primary.url(self.database)

    @property
    def replica_url(self) -> str:
        return self.replica.url(self.database)


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    """A primary with the Tectonite schema and a streaming replica of it (pg_basebackup -R)."""
    from sqlalchemy import create_engine

    from app import migrate

    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="tectonite-replica-"))
    user = unprivileged_user()
    give_to(root, user)
    primary = Cluster(bin_dir, root / "primary", root, 5432, user)
    replica = Cluster(bin_dir, root / "replica", root, 5433, user)
    started: list[Cluster] = []
    try:
        primary.run("initdb", "-D", str(primary.data_dir), "-U", "postgres", "--auth=trust",
                    "--no-sync", "--no-instructions")  # fmt: skip
        with (primary.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("shared_buffers = 16MB\nfsync = off\nmax_connections = 60\n")
        primary.start()
        started.append(primary)
        with psycopg.connect(primary.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE tectonite")
        engine = create_engine(
            primary.url("tectonite").replace("postgresql://", "postgresql+psycopg://")
        )
        migrate.upgrade(engine)
        engine.dispose()
        primary.run("pg_basebackup", "-h", str(root), "-p", "5432", "-U", "postgres",
                    "-D", str(replica.data_dir), "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        replica.start()
        started.append(replica)
        yield Replicated(primary, replica, "tectonite")
    finally:
        for cluster in reversed(started):
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
