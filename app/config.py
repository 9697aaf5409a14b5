"""Settings: the one place where Tectonite reads its environment."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
SERVERS = ("granian", "gunicorn")
# What sits between Tectonite and PostgreSQL: nothing, or PgBouncer (transaction pooling).
POOLERS = ("none", "pgbouncer")


class SettingsError(ValueError):
    """An environment variable holds a value Tectonite cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed configuration. Built from the environment by `from_env`; CLI flags override it."""

    database_url: str | None = None
    # LISTEN/NOTIFY needs a session of its own: behind PgBouncer, a direct URL to the primary.
    database_listen_url: str | None = None
    # Streaming read replicas for the feature-value reads of the serving endpoints.
    database_replica_urls: tuple[str, ...] = ()
    # "pgbouncer": no server-side prepared statements and no startup `options` (PgBouncer
    # before 1.21 supports neither in transaction mode); the read deadline is set per statement.
    database_pooler: str = "none"
    # A replica further behind the primary than this (seconds), or failing, is skipped.
    replica_max_lag_s: float = 1.0
    data_dir: Path = Path(".tectonite")
    host: str = "127.0.0.1"
    port: int = 8328
    # The HTTP server `tectonite serve` runs: granian (Rust HTTP, WSGI) or gunicorn (gthread).
    server: str = "granian"
    workers: int = 2
    threads: int = 8
    # Seconds a client has to send a whole request (head and body), counted from the connection
    # opening or, on a kept-alive connection, from the request's first byte; idle kept-alive
    # connections are closed after as long. Slow clients then cost a socket for a few seconds,
    # never a request thread for long (see the README's "Reliability").
    read_timeout_s: int = 5
    log_level: str = "info"
    log_format: str = "text"
    # Server-wide HMAC key for API-key hashes; when unset one is generated and kept in the database.
    secret: str | None = None
    # Bodies larger than this are answered 413 before they are read.
    max_body_bytes: int = 8 * 1024 * 1024
    # Tecton's serving backend gives up after 2 s (504); reads use the same deadline.
    request_timeout_ms: int = 2000
    # Server processes LISTEN for definition and key changes; in-process tests turn this off.
    listen_for_changes: bool = True
    # The admin-only `/_emulator` HTTP API (the CLI twins always work); off for production traffic.
    emulator_api: bool = True
    # The request journal (`/_emulator/requests`): on/off and how many entries it keeps.
    journal: bool = True
    journal_size: int = 1000
    # The web console at /console (TECTONITE_CONSOLE=off removes it).
    console: bool = True
    # `GET /metrics` (Prometheus text format), unauthenticated on the serving port.
    metrics: bool = True
    # Where worker processes keep their metric files (prometheus-client's multiprocess mode);
    # `tectonite serve` prepares a fresh one when unset. None: single-process metrics.
    metrics_dir: Path | None = None
    # One log line per request (logger `tectonite.access`).
    access_log: bool = True
    # An init directory `serve` brings the database to before it answers (TECTONITE_INIT_DIR).
    init_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            database_url=_normalise_url(env.get("DATABASE_URL") or None),
            database_listen_url=_normalise_url(
                env.get("DATABASE_LISTEN_URL") or None, "DATABASE_LISTEN_URL"
            ),
            database_replica_urls=_url_list(env.get("DATABASE_REPLICA_URL") or ""),
            database_pooler=_choice(
                env, "TECTONITE_DATABASE_POOLER", defaults.database_pooler, POOLERS
            ),
            replica_max_lag_s=_seconds(
                env, "TECTONITE_REPLICA_MAX_LAG", defaults.replica_max_lag_s
            ),
            data_dir=Path(env.get("TECTONITE_DATA_DIR") or defaults.data_dir),
            host=env.get("TECTONITE_HOST") or defaults.host,
            port=_int(env, "PORT", defaults.port, minimum=0),
            server=_choice(env, "TECTONITE_SERVER", defaults.server, SERVERS),
            workers=_int(env, "WEB_CONCURRENCY", defaults.workers, minimum=1),
            threads=_int(env, "TECTONITE_THREADS", defaults.threads, minimum=1),
            read_timeout_s=_int(env, "TECTONITE_READ_TIMEOUT", defaults.read_timeout_s, minimum=1),
            log_level=_choice(env, "LOG_LEVEL", defaults.log_level, LOG_LEVELS),
            log_format=_choice(env, "LOG_FORMAT", defaults.log_format, LOG_FORMATS),
            secret=env.get("TECTONITE_SECRET") or None,
            emulator_api=_switch(env, "TECTONITE_EMULATOR_API", defaults.emulator_api),
            journal=_switch(env, "TECTONITE_JOURNAL", defaults.journal),
            journal_size=_int(env, "TECTONITE_JOURNAL_SIZE", defaults.journal_size, minimum=1),
            console=_switch(env, "TECTONITE_CONSOLE", defaults.console),
            metrics=_switch(env, "TECTONITE_METRICS", defaults.metrics),
            metrics_dir=_path(env, "PROMETHEUS_MULTIPROC_DIR"),
            access_log=_switch(env, "TECTONITE_ACCESS_LOG", defaults.access_log),
            init_dir=Path(env["TECTONITE_INIT_DIR"]) if env.get("TECTONITE_INIT_DIR") else None,
        )

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (CLI flags, tests)."""
        for name in ("database_url", "database_listen_url"):
            if name in changes:
                changes[name] = _normalise_url(changes[name])  # type: ignore[arg-type]  # a URL or None, as the field
        if "database_replica_urls" in changes:
            changes["database_replica_urls"] = tuple(
                _libpq(_normalise_url(url))
                for url in changes["database_replica_urls"]  # type: ignore[attr-defined]  # a sequence of URLs, as the field
            )
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]  # fields checked by replace()

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with SQLAlchemy's psycopg 3 driver name."""
        if not self.database_url:
            raise SettingsError("no database URL: set DATABASE_URL or start the embedded database")
        return self.database_url

    @property
    def libpq_url(self) -> str:
        """The database URL as libpq/psycopg spell it (no SQLAlchemy driver name)."""
        return _libpq(self.sqlalchemy_url)

    @property
    def listen_libpq_url(self) -> str:
        """Where the change listener LISTENs: DATABASE_LISTEN_URL, else DATABASE_URL."""
        return _libpq(self.database_listen_url) if self.database_listen_url else self.libpq_url

    @property
    def behind_pgbouncer(self) -> bool:
        return self.database_pooler == "pgbouncer"


def _libpq(url: str | None) -> str:
    """A normalised URL as libpq/psycopg spell it."""
    return (url or "").replace("postgresql+psycopg://", "postgresql://", 1)


def _url_list(raw: str) -> tuple[str, ...]:
    """Comma-separated database URLs, as libpq URLs (DATABASE_REPLICA_URL)."""
    parts = (part.strip() for part in raw.split(","))
    return tuple(_libpq(_normalise_url(p, "DATABASE_REPLICA_URL")) for p in parts if p)


def _normalise_url(url: str | None, name: str = "DATABASE_URL") -> str | None:
    """Accept `postgresql://` and `postgres://` as well as `postgresql+psycopg://`."""
    if url is None:
        return None
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise SettingsError(f"{name} must start with postgresql:// (got {url.split(':', 1)[0]}://)")


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    text = raw.strip().lower()
    scale = 1.0
    if text.endswith("ms"):
        text, scale = text[:-2], 0.001
    elif text.endswith("s"):
        text = text[:-1]
    try:
        value = float(text) * scale
    except ValueError:
        raise SettingsError(
            f"{name} must be a number of seconds (e.g. 1, 0.5, 500ms), got {raw!r}"
        ) from None
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{name} must be more than 0 seconds, got {raw!r}")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise SettingsError(f"{name} must be on or off, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None
