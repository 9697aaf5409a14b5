"""Runs the app under gunicorn with gthread workers and HTTP keep-alive (`tectonite serve`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from app.config import Settings

# Clients keep connections open (the Java client for 5 minutes); a short keep-alive would make
# them reconnect constantly. 75 s outlasts common load balancers' idle timeouts.
KEEPALIVE_SECONDS = 75
# In-flight requests get this long to finish after SIGTERM.
GRACEFUL_TIMEOUT_SECONDS = 30


class TectoniteServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application whose workers each build their own app from `settings`."""

    def __init__(
        self,
        settings: Settings,
        *,
        app_factory: Callable[[Settings], Flask],
        certfile: str | None = None,
        keyfile: str | None = None,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.app_factory = app_factory
        self.options: dict[str, Any] = {
            "bind": [f"{_bracket(settings.host)}:{settings.port}"],
            "workers": settings.workers,
            "threads": settings.threads,
            "worker_class": "gthread",
            "keepalive": KEEPALIVE_SECONDS,
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
        self.on_ready = on_ready
        self.scheme = "https" if certfile else "http"
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            if value is not None:
                self.cfg.set(name, value)

    def load(self) -> Flask:
        return self.app_factory(self.settings)

    def _when_ready(self, server: Any) -> None:
        if self.on_ready is None:
            return
        host, port = server.LISTENERS[0].sock.getsockname()[:2]
        self.on_ready(f"{self.scheme}://{_bracket(host)}:{port}")


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
