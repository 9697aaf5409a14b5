"""Observability: request ids, Prometheus metrics and the access log.

`init_app` registers the app's `Observability` (its `Metrics`, when TECTONITE_METRICS is on) and
one `before_request` / `after_request` pair. Views add what only they know with the small
`note_*` calls below (which workspace and service a request reached, the feature statuses it
served); each is a dictionary write or a few counter increments.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, Response, request

from app import changes
from app.config import Settings
from app.extensions import Slot
from app.observability import access_log, metrics, request_ids
from app.observability.metrics import NO_WORKSPACE, UNMATCHED, Metrics
from app.security import WORKSPACE_ENVIRON_KEY

if TYPE_CHECKING:
    from app.serving.assembly import Served
    from app.serving.model import ResolvedService

# Request-scoped values live in the WSGI environ (as the principal does in app.security).
STARTED = "tectonite.started"
WORKSPACE = WORKSPACE_ENVIRON_KEY  # as the request named it (access log)
KNOWN_WORKSPACE = "tectonite.known_workspace"  # a workspace that exists (metric label)
SERVICE = access_log.SERVICE_ENVIRON_KEY

__all__ = [
    "OBSERVABILITY",
    "Metrics",
    "Observability",
    "init_app",
    "note_ingest",
    "note_ingest_events",
    "note_served",
    "note_target",
    "note_transform_error",
]


@dataclass(frozen=True, slots=True)
class Observability:
    """One app's observability state."""

    metrics: Metrics | None  # None with TECTONITE_METRICS=off
    access_log: bool


OBSERVABILITY = Slot[Observability]("tectonite.observability")


def init_app(app: Flask) -> Observability:
    settings: Settings = app.extensions["tectonite.settings"]
    request_ids.init_app(app)
    recorder = (
        metrics.init_app(app, changes.get_feed(app), settings.metrics_dir)
        if settings.metrics
        else None
    )
    state = OBSERVABILITY.register(app, Observability(recorder, settings.access_log))
    if recorder is None and not settings.access_log:
        return state
    perf_counter = time.perf_counter
    write_access_log = access_log.writer() if settings.access_log else None

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
        if write_access_log is not None:
            write_access_log(environ, endpoint, status, seconds)
        return response

    app.before_request(started)
    app.after_request(finished)
    return state


def note_target(workspace: str, service: str | None = None, *, exists: bool = False) -> None:
    """The workspace (and service) this request is about; `exists` once a view has found it."""
    environ = request.environ
    environ[WORKSPACE] = workspace
    if service is not None:
        environ[SERVICE] = service
    if exists:
        environ[KNOWN_WORKSPACE] = workspace


def note_served(resolved: ResolvedService, served: Served) -> None:
    """Count the statuses, cache lookups and store read of a served request."""
    recorder = OBSERVABILITY.get().metrics
    if recorder is not None:
        recorder.observe_served(resolved, served)


def note_ingest(workspace: str, *, written: int = 0, rejected: int = 0, dry_run: int = 0) -> None:
    """Count Stream Ingest records of an existing workspace by outcome."""
    recorder = OBSERVABILITY.get().metrics
    if recorder is None:
        return
    for outcome, count in (("written", written), ("rejected", rejected), ("dry_run", dry_run)):
        if count:
            recorder.ingest_records.labels(workspace, outcome).inc(count)


def note_ingest_events(workspace: str, outcome: str, events: Mapping[str, int]) -> None:
    """Count the events of a Stream Ingest request for each aggregate view (name -> count) by
    outcome: written, rejected or dry_run."""
    recorder = OBSERVABILITY.get().metrics
    if recorder is None:
        return
    for view, count in events.items():
        if count:
            recorder.ingest_events.labels(workspace, view, outcome).inc(count)


def note_transform_error(workspace: str) -> None:
    """A realtime transform raised or returned something unusable."""
    recorder = OBSERVABILITY.get().metrics
    if recorder is not None:
        recorder.transform_errors.labels(workspace).inc()
