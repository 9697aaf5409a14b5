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


class SettingsError(ValueError):
    """An environment variable holds a value Tectonite cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed configuration. Built from the environment by `from_env`; CLI flags override it."""

    database_url: str | None = None
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
        if "database_url" in changes:
            changes["database_url"] = _normalise_url(changes["database_url"])  # type: ignore[arg-type]  # a URL or None, as the field
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
        return self.sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _normalise_url(url: str | None) -> str | None:
    """Accept `postgresql://` and `postgres://` as well as `postgresql+psycopg://`."""
    if url is None:
        return None
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise SettingsError(
        f"DATABASE_URL must start with postgresql:// (got {url.split(':', 1)[0]}://)"
    )


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
