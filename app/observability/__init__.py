"""Observability: request ids, Prometheus metrics and the access log.

`init_app` registers one `before_request` and one `after_request` hook. Views add what only they
know with the small `note_*` calls below (which workspace and service a request reached, the
feature statuses it served); each is a dictionary write or a few counter increments.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flask import Flask, Response, current_app, request

from app.config import Settings
from app.observability import access_log, metrics, request_ids
from app.observability.metrics import NO_WORKSPACE, UNMATCHED, Metrics, get_metrics
from app.security import WORKSPACE_ENVIRON_KEY

if TYPE_CHECKING:
    from app.repo.resolved import ResolvedService
    from app.serving.engine import Served
    from app.serving.params import FeaturesRequest

# Request-scoped values live in the WSGI environ (as the principal does in app.security).
STARTED = "tectonite.started"
WORKSPACE = WORKSPACE_ENVIRON_KEY  # as the request named it (access log)
KNOWN_WORKSPACE = "tectonite.known_workspace"  # a workspace that exists (metric label)
SERVICE = "tectonite.service"

__all__ = [
    "Metrics",
    "get_metrics",
    "init_app",
    "note_ingest",
    "note_served",
    "note_target",
    "note_transform_error",
]


def init_app(app: Flask) -> None:
    settings: Settings = app.extensions["tectonite.settings"]
    request_ids.init_app(app)
    recorder = metrics.init_app(app, settings.metrics_dir) if settings.metrics else None
    database = app.extensions.get("tectonite.db")
    if recorder is not None and database is not None:
        recorder.watch_pool(database.engine)
    log_requests = settings.access_log
    if recorder is None and not log_requests:
        return
    perf_counter = time.perf_counter

    def started() -> None:
        request.environ[STARTED] = perf_counter()

    def finished(response: Response) -> Response:
        environ = request.environ
        seconds = perf_counter() - environ.get(STARTED, perf_counter())
        rule = request.url_rule
        endpoint = rule.rule if rule is not None else UNMATCHED
        status = response.status_code
        if recorder is not None:
            recorder.observe_request(
                endpoint, environ.get(KNOWN_WORKSPACE, NO_WORKSPACE), status, seconds
            )
            if status == 401:
                recorder.auth_failures.inc()
            elif status == 429 and "WWW-Authenticate" in response.headers:
                recorder.auth_throttled.inc()
        if log_requests:
            access_log.write(endpoint, status, seconds)
        return response

    app.before_request(started)
    app.after_request(finished)


def note_target(workspace: str, service: str | None = None, *, exists: bool = False) -> None:
    """The workspace (and service) this request is about; `exists` once a view has found it."""
    environ = request.environ
    environ[WORKSPACE] = workspace
    if service is not None:
        environ[SERVICE] = service
    if exists:
        environ[KNOWN_WORKSPACE] = workspace


def note_served(resolved: ResolvedService, request: FeaturesRequest, served: Served) -> None:
    """Count the statuses, cache lookups and store read of a served request."""
    recorder = get_metrics()
    if recorder is not None:
        recorder.observe_served(resolved, request, served)


def note_ingest(workspace: str, *, written: int = 0, rejected: int = 0, dry_run: int = 0) -> None:
    """Count Stream Ingest records of an existing workspace by outcome."""
    recorder = get_metrics()
    if recorder is None:
        return
    for outcome, count in (("written", written), ("rejected", rejected), ("dry_run", dry_run)):
        if count:
            recorder.ingest_records.labels(workspace, outcome).inc(count)


def note_transform_error(workspace: str) -> None:
    """A realtime transform raised or returned something unusable."""
    recorder = current_app.extensions.get(metrics.EXTENSION_KEY)
    if recorder is not None:
        recorder.transform_errors.labels(workspace).inc()
