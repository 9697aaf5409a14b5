"""The HTTP servers `tectonite serve` runs the app under: granian (default) or gunicorn.

Both give the same properties: `workers` processes x `threads` request threads, HTTP/1.1
keep-alive, optional TLS, a graceful SIGTERM drain, JSON log lines with LOG_FORMAT=json and
every worker building its own app (and database pool) from the settings after fork().
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from flask import Flask

from app.config import Settings

# In-flight requests get this long to finish after SIGTERM.
GRACEFUL_TIMEOUT_SECONDS = 30
# Request line plus headers may take this many bytes (granian's read buffer; gunicorn's own
# limits are 4 KiB per request line and 8 KiB per header field, 100 fields).
MAX_HEADER_BYTES = 64 * 1024

AppFactory = Callable[[Settings], Flask]


class Runnable(Protocol):
    def run(self) -> None: ...


def make_server(
    settings: Settings,
    *,
    app_factory: AppFactory,
    certfile: str | None = None,
    keyfile: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> Runnable:
    """The server `settings.server` names, ready to `run()` until SIGTERM."""
    server_class = GunicornServer if settings.server == "gunicorn" else GranianServer
    return server_class(
        settings, app_factory=app_factory, certfile=certfile, keyfile=keyfile, on_ready=on_ready
    )


# --------------------------------------------------------------------------- granian


class GranianServer:
    """granian's WSGI interface: a Rust HTTP/1.1 server calling the app on blocking threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        app_factory: AppFactory,
        certfile: str | None = None,
        keyfile: str | None = None,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.app_factory = app_factory
        self.certfile = certfile
        self.keyfile = keyfile
        self.on_ready = on_ready

    def run(self) -> None:
        from granian.constants import HTTPModes, Interfaces, SSLProtocols
        from granian.http import HTTP1Settings
        from granian.log import LogLevels

        settings = self.settings
        port = claim_port(settings.host, settings.port)
        server = _granian_server_class()(
            "tectonite",  # a name only: the app comes from `target_loader` below
            address=settings.host,
            port=port,
            interface=Interfaces.WSGI,
            workers=settings.workers,
            blocking_threads=settings.threads,
            http=HTTPModes.http1,
            http1_settings=HTTP1Settings(
                # The request head must arrive within the read timeout (hyper's one timer also
                # closes idle kept-alive connections after it); the body: `slow_body_guard`.
                header_read_timeout=settings.read_timeout_s * 1000,
                keep_alive=True,
                max_buffer_size=MAX_HEADER_BYTES,
            ),
            log_level=LogLevels(settings.log_level),
            log_dictconfig=(
                granian_json_logging(settings.log_level) if settings.log_format == "json" else None
            ),
            ssl_cert=Path(self.certfile) if self.certfile else None,
            ssl_key=Path(self.keyfile) if self.keyfile else None,
            # TLS 1.2 too, as gunicorn (and older Java clients) expect.
            ssl_protocol_min=SSLProtocols.tls12,
            workers_kill_timeout=GRACEFUL_TIMEOUT_SECONDS,
            # gunicorn replaces a worker that dies; so does this server.
            respawn_failed_workers=True,
        )
        scheme = "https" if self.certfile else "http"
        server.tectonite_ready = (
            None
            if self.on_ready is None
            else (
                settings.host,
                port,
                f"{scheme}://{_bracket(settings.host)}:{port}",
                self.on_ready,
            )
        )
        # A forked worker inherits the main process's SIGTERM handler, which only sets a flag
        # in the worker's copy of the main's state: a SIGTERM that arrives while the worker is
        # still loading the app would be lost and the worker would serve on until killed 30 s
        # later. Until granian installs its worker handlers, a stop signal simply ends the
        # worker (it holds no requests yet).
        os.register_at_fork(after_in_child=_default_stop_signals)
        server.serve(target_loader=self._load, wrap_loader=False)

    def _load(self) -> Flask:
        """Runs in each worker after fork(): every worker owns its app and its pool."""
        return self.app_factory(self.settings)


def _granian_server_class() -> type:
    from granian import Granian

    class AnnouncingGranian(Granian):  # type: ignore[misc,valid-type]
        """Announces readiness once the workers are forked and one of them accepts.

        The watcher thread must not exist while workers are forked (a thread inside
        getaddrinfo or a lock at fork() time can deadlock the child), hence after startup.
        """

        tectonite_ready: tuple[str, int, str, Callable[[str], None]] | None = None

        def startup(self, *args: Any) -> None:
            super().startup(*args)
            if self.tectonite_ready is not None:
                threading.Thread(
                    target=_announce_when_listening, args=self.tectonite_ready, daemon=True
                ).start()

    return AnnouncingGranian


def _default_stop_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def claim_port(host: str, port: int) -> int:
    """Check that nobody listens on `host:port` and resolve port 0 to a free port.

    granian's workers each bind with SO_REUSEPORT, which would silently share the port with
    another server already on it; a plain bind here refuses that, as gunicorn does.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                message = f"cannot listen on {host}:{port}: address already in use"
                raise SystemExit(message) from None
            raise
        bound: int = probe.getsockname()[1]
        return bound


def _announce_when_listening(
    host: str, port: int, url: str, announce: Callable[[str], None]
) -> None:
    """Announce once a worker accepts connections (workers bind after loading the app)."""
    deadline = time.monotonic() + 120
    connect_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host.strip("[]"))  # noqa: S104
    while time.monotonic() < deadline:
        try:
            socket.create_connection((connect_host, port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
            continue
        announce(url)
        return


def granian_json_logging(level: str) -> dict[str, Any]:
    """A logging config for granian's loggers using Tectonite's JSON formatter."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    logger = {"level": level.upper(), "handlers": ["console"], "propagate": False}
    return {
        "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
        "handlers": {"console": handler},
        "loggers": {"_granian": logger, "granian.access": logger},
    }


# --------------------------------------------------------------------------- gunicorn


def _gunicorn_application() -> type:
    from gunicorn.app.base import BaseApplication

    class GunicornApplication(BaseApplication):  # type: ignore[misc]
        def __init__(self, options: dict[str, Any], load: Callable[[], Flask]) -> None:
            self.options = options
            self._load = load
            super().__init__()

        def load_config(self) -> None:
            for name, value in self.options.items():
                if value is not None:
                    self.cfg.set(name, value)

        def load(self) -> Flask:
            return self._load()

    return GunicornApplication


class GunicornServer:
    """gunicorn with Tectonite's gthread workers (app/gunicorn_worker.py: requests read by the
    event loop before a thread serves them, JSON refusals), each building its own app."""

    def __init__(
        self,
        settings: Settings,
        *,
        app_factory: AppFactory,
        certfile: str | None = None,
        keyfile: str | None = None,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.app_factory = app_factory
        self.on_ready = on_ready
        self.scheme = "https" if certfile else "http"
        self.options: dict[str, Any] = {
            "bind": [f"{_bracket(settings.host)}:{settings.port}"],
            "workers": settings.workers,
            "threads": settings.threads,
            "worker_class": _gunicorn_worker_class(settings),
            "keepalive": settings.read_timeout_s,
            "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
            "timeout": 30,
            "loglevel": settings.log_level,
            "accesslog": None,
            "control_socket_disable": True,
            "certfile": certfile,
            "keyfile": keyfile,
            "when_ready": self._when_ready,
        }
        if settings.log_format == "json":
            # gunicorn's own lines (booting, worker exits) as JSON too: one object per line.
            self.options["logconfig_dict"] = gunicorn_json_logging(settings.log_level)

    def run(self) -> None:
        application = _gunicorn_application()(self.options, lambda: self.app_factory(self.settings))
        application.run()

    def _when_ready(self, server: Any) -> None:
        if self.on_ready is None:
            return
        host, port = server.LISTENERS[0].sock.getsockname()[:2]
        self.on_ready(f"{self.scheme}://{_bracket(host)}:{port}")


def _gunicorn_worker_class(settings: Settings) -> type:
    from app.gunicorn_worker import TectoniteWorker

    return type(
        "TectoniteWorker",
        (TectoniteWorker,),
        {"read_timeout": float(settings.read_timeout_s), "max_body_bytes": settings.max_body_bytes},
    )


def gunicorn_json_logging(level: str) -> dict[str, Any]:
    """A logging config for gunicorn's loggers using Tectonite's JSON formatter."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    logger = {"level": level.upper(), "handlers": ["console"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
        "handlers": {"console": handler},
        "loggers": {"gunicorn.error": logger, "gunicorn.access": logger},
        "root": {"level": level.upper(), "handlers": ["console"]},
    }


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
