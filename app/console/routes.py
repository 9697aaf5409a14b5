"""The console's pages. Every view asks `_viewer()` who is signed in and `_workspace()` whether
they may see the workspace, before it looks anything else up."""

from __future__ import annotations

import logging
import statistics
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from flask import g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from app.console import bp, charts, emulator, tryit
from app.console.access import Viewer, load_signed_in, sign_in, sign_out
from app.console.session import csrf_token, csrf_valid, session_available
from app.db import get_database, get_session
from app.models import Entity, FeatureService, FeatureView, PushSource, Workspace
from app.serving.model import resolve_service
from app.store import inspection
from app.types import parse_type
from auth.errors import AuthenticationFailed, TooManyFailures
from auth.store import list_api_keys, list_role_bindings, list_service_accounts

logger = logging.getLogger("tectonite.console")

PUBLIC_ENDPOINTS = {"console.sign_in", "console.static"}
NUMERIC_KINDS = {"Int32", "Int64", "Float32", "Float64"}
JOURNAL_WINDOW_SECONDS = 300
JOURNAL_BUCKET_SECONDS = 10
FAULT_ENDPOINTS = (
    "get-features",
    "get-features-batch",
    "metadata",
    "query-features",
    "ingest",
    "*",
)
FAULT_STATUSES = ("", "429", "500", "503", "504")


class ConsoleError(Exception):
    """Answered with the console's own HTML error page."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail


def forbidden() -> ConsoleError:
    return ConsoleError(403, "Not allowed", "Your key's roles do not let it see this page.")


def not_found() -> ConsoleError:
    return ConsoleError(404, "Not found", "Nothing by that name here.")


# --------------------------------------------------------------------------- plumbing


@bp.before_request
def _before() -> ResponseReturnValue | None:
    if not session_available():
        raise ConsoleError(503, "Database unavailable", "The console cannot reach PostgreSQL.")
    if request.endpoint == "console.static":
        return None
    g.console_viewer = load_signed_in()
    if request.method == "POST" and not csrf_valid(request.form):
        raise ConsoleError(
            400, "Form expired", "The form was not sent from this session; reload and retry."
        )
    if g.console_viewer is None and request.endpoint not in PUBLIC_ENDPOINTS:
        return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "viewer": g.get("console_viewer")}


@bp.errorhandler(ConsoleError)
def _console_error(error: ConsoleError) -> ResponseReturnValue:
    return render_template("error.html", error=error), error.status


@bp.errorhandler(SQLAlchemyError)
def _database_error(error: SQLAlchemyError) -> ResponseReturnValue:
    logger.warning("console: database error: %s", type(error).__name__)
    page = ConsoleError(503, "Database unavailable", "The console cannot reach PostgreSQL.")
    return render_template("error.html", error=page), 503


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> ResponseReturnValue:
    if isinstance(error, HTTPException):
        return error
    request_id = g.get("request_id", "-")
    logger.error("console: unexpected error (request id %s)", request_id, exc_info=error)
    page = ConsoleError(500, "Something went wrong", f"Request id {request_id}; see the log.")
    return render_template("error.html", error=page), 500


def _viewer() -> Viewer:
    viewer: Viewer = g.console_viewer
    return viewer


def _admin() -> Viewer:
    viewer = _viewer()
    if not viewer.is_admin:
        raise forbidden()
    return viewer


def _workspace(name: str) -> Workspace:
    """The workspace, if the viewer may see it: 403 otherwise, whether or not it exists."""
    if not _viewer().sees(name):
        raise forbidden()
    workspace = get_session().scalars(select(Workspace).where(Workspace.name == name)).first()
    if workspace is None:
        raise not_found()
    return workspace


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/console"):
            return target
    return url_for("console.workspaces")


def _when(value: datetime | float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


bp.add_app_template_filter(_when, "when")


def _duration(seconds: int | None) -> str:
    """`7776000` → `90d`, `5400` → `1h30m`; None → `none` (values never expire)."""
    if not seconds:
        return "none"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


bp.add_app_template_filter(_duration, "duration")


def _type_label(data_type: dict[str, Any]) -> str:
    """`dataType` as one short line: `array<string>`, `struct<lat: float64, …>`."""
    kind = str(data_type.get("type", "?"))
    if kind == "array":
        return f"array<{_type_label(data_type.get('elementType', {}))}>"
    if kind == "map":
        return f"map<string, {_type_label(data_type.get('valueType', {}))}>"
    if kind == "struct":
        fields = ", ".join(
            f"{f.get('name')}: {_type_label(f.get('dataType', {}))}"
            for f in data_type.get("fields", [])
        )
        return f"struct<{fields}>"
    return kind


bp.add_app_template_filter(_type_label, "type_label")
bp.add_app_template_filter(lambda data_type: orjson.dumps(data_type).decode(), "compact_json")


# --------------------------------------------------------------------------- sign-in


@bp.route("/sign-in", methods=["GET", "POST"], endpoint="sign_in")
def sign_in_view() -> ResponseReturnValue:
    error = ""
    status = 200
    if request.method == "POST":
        key = request.form.get("api_key", "").strip()
        try:
            sign_in(key)
        except TooManyFailures as exc:
            error = f"Too many failed sign-ins; retry in {exc.retry_after_seconds} s."
            status = 429
        except (AuthenticationFailed, LookupError):
            error = "That key is not valid (unknown, deleted, expired or mistyped)."
            status = 401
        else:
            return redirect(_safe_next(request.args.get("next")))
    elif _viewer_or_none() is not None:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("sign_in.html", error=error), status


def _viewer_or_none() -> Viewer | None:
    viewer: Viewer | None = g.get("console_viewer")
    return viewer


@bp.post("/sign-out")
def sign_out_view() -> ResponseReturnValue:
    sign_out()
    return redirect(url_for("console.sign_in"))


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("console.workspaces"))


# --------------------------------------------------------------------------- workspaces


@bp.get("/workspaces")
def workspaces() -> ResponseReturnValue:
    viewer = _viewer()
    rows = get_session().scalars(select(Workspace).order_by(Workspace.name)).all()
    visible = [w for w in rows if viewer.sees(w.name)]
    return render_template("workspaces.html", workspaces=visible)


@bp.get("/workspaces/<workspace>")
def workspace(workspace: str) -> ResponseReturnValue:
    found = _workspace(workspace)
    session = get_session()
    entities = session.scalars(
        select(Entity).where(Entity.workspace_id == found.id).order_by(Entity.name)
    ).all()
    views = session.scalars(
        select(FeatureView).where(FeatureView.workspace_id == found.id).order_by(FeatureView.name)
    ).all()
    services = session.scalars(
        select(FeatureService)
        .where(FeatureService.workspace_id == found.id)
        .order_by(FeatureService.name)
    ).all()
    sources = session.scalars(
        select(PushSource).where(PushSource.workspace_id == found.id).order_by(PushSource.name)
    ).all()
    entity_names = {e.id: e for e in entities}
    source_names = {s.id: s.name for s in sources}
    view_names = {v.id: v.name for v in views}
    return render_template(
        "workspace.html",
        workspace=found,
        entities=entities,
        entity_by_id=entity_names,
        views=[v for v in views if v.kind != "realtime"],
        realtime_views=[v for v in views if v.kind == "realtime"],
        services=services,
        sources=sources,
        source_names=source_names,
        view_names=view_names,
        parse_type=parse_type,
    )


@bp.get("/workspaces/<workspace>/feature-views/<name>")
def feature_view(workspace: str, name: str) -> ResponseReturnValue:
    found = _workspace(workspace)
    session = get_session()
    view = session.scalars(
        select(FeatureView).where(FeatureView.workspace_id == found.id, FeatureView.name == name)
    ).first()
    if view is None:
        raise not_found()
    entities = {
        e.id: e for e in session.scalars(select(Entity).where(Entity.workspace_id == found.id))
    }
    view_names = {
        v.id: v.name
        for v in session.scalars(select(FeatureView).where(FeatureView.workspace_id == found.id))
    }
    features = [(f, parse_type(f.type)) for f in view.features]
    context: dict[str, Any] = {
        "workspace": found,
        "view": view,
        "features": features,
        "entities": [entities[link.entity_id] for link in view.entities],
        "view_names": view_names,
        "may_read": _viewer().reads(found.name),
    }
    if view.kind != "realtime" and context["may_read"]:
        stats = inspection.view_stats(get_database(), view.id)
        buckets = inspection.event_time_histogram(get_database(), view.id, stats)
        context["stats"] = stats
        context["freshness_chart"] = charts.bar_chart(
            [
                charts.Bar(b.count, f"{_when(b.low)} to {_when(b.high)}: {b.count} rows")
                for b in buckets
            ],
            title=f"Stored rows of {view.name} by event time",
            x_left=_when(stats.oldest),
            x_right=_when(stats.newest),
        )
        context["samples"] = _sample_table(view, inspection.sample_rows(get_database(), view.id))
        context["distributions"] = _distributions(view.id, features)
    return render_template("feature_view.html", **context)


def _sample_table(view: FeatureView, rows: list[tuple[str, datetime, Any]]) -> list[Any]:
    names = [f.name for f in view.features]
    table = []
    for key, event_time, values in rows:
        keys = orjson.loads(key)
        cells = [orjson.dumps(values.get(n)).decode() if n in values else "" for n in names]
        table.append({"keys": keys, "event_time": event_time, "cells": cells})
    return table


def _distributions(view_id: int, features: list[Any]) -> list[tuple[str, Any]]:
    charts_by_feature = []
    for feature, feature_type in features:
        if feature_type.kind not in NUMERIC_KINDS:
            continue
        buckets = inspection.numeric_distribution(get_database(), view_id, feature.name)
        if not buckets:
            continue
        chart = charts.bar_chart(
            [charts.Bar(b.count, f"{b.low:.4g} to {b.high:.4g}: {b.count} rows") for b in buckets],
            title=f"Distribution of {feature.name}",
            x_left=f"{buckets[0].low:.4g}",
            x_right=f"{buckets[-1].high:.4g}",
        )
        charts_by_feature.append((feature.name, chart))
    return charts_by_feature


@bp.route("/workspaces/<workspace>/feature-services/<name>", methods=["GET", "POST"])
def feature_service(workspace: str, name: str) -> ResponseReturnValue:
    found = _workspace(workspace)
    resolved = resolve_service(get_session(), found.name, name)
    if resolved is None:
        raise not_found()
    service = (
        get_session()
        .scalars(
            select(FeatureService).where(
                FeatureService.workspace_id == found.id, FeatureService.name == name
            )
        )
        .one()
    )
    viewer = _viewer()
    may_try = viewer.reads(found.name) and resolved.servable
    result = None
    form_error = ""
    if request.method == "POST":
        if not may_try:
            raise forbidden()
        try:
            body = tryit.request_body(resolved, request.form)
        except tryit.FormError as exc:
            form_error = str(exc)
        else:
            result = tryit.run(viewer.principal, resolved, body)
    return render_template(
        "feature_service.html",
        workspace=found,
        service=service,
        resolved=resolved,
        may_read=viewer.reads(found.name),
        may_try=may_try,
        result=result,
        form=request.form,
        form_error=form_error,
        metadata_options=tryit.METADATA_OPTIONS,
    )


# --------------------------------------------------------------------------- admin pages


@bp.get("/access")
def access() -> ResponseReturnValue:
    _admin()
    session = get_session()
    accounts = list_service_accounts(session)
    bindings = {a.id: list_role_bindings(session, a.id) for a in accounts}
    names = {a.id: a.name for a in accounts}
    return render_template(
        "access.html",
        accounts=accounts,
        bindings=bindings,
        keys=list_api_keys(session),
        account_names=names,
    )


def _journal_filters() -> emulator.JournalFilters:
    try:
        limit = max(1, min(int(request.args.get("limit") or 200), 1000))
    except ValueError:
        limit = 200
    return emulator.JournalFilters(
        limit=limit,
        endpoint=request.args.get("endpoint", "").strip(),
        workspace=request.args.get("workspace", "").strip(),
        feature_service=request.args.get("featureService", "").strip(),
        status=request.args.get("status", "").strip(),
    )


@bp.get("/journal")
def journal() -> ResponseReturnValue:
    viewer = _admin()
    filters = _journal_filters()
    try:
        entries = emulator.list_requests(viewer.principal, filters)
    except emulator.EmulatorUnavailable:
        return render_template("unavailable.html", title="Request journal"), 200
    except emulator.EmulatorRejected as exc:
        return render_template("journal.html", filters=filters, entries=[], error=exc.message)
    rate_chart, latency_chart = _journal_charts(entries)
    return render_template(
        "journal.html",
        filters=filters,
        entries=entries,
        error="",
        rate_chart=rate_chart,
        latency_chart=latency_chart,
        endpoints=FAULT_ENDPOINTS[:-1],
    )


def _journal_charts(entries: list[emulator.JournalEntry]) -> tuple[Any, Any]:
    """Requests per second and latency (p50, max) in 10 s buckets over the last 5 minutes."""
    now = time.time()
    count = JOURNAL_WINDOW_SECONDS // JOURNAL_BUCKET_SECONDS
    start = now - JOURNAL_WINDOW_SECONDS
    durations: list[list[float]] = [[] for _ in range(count)]
    hits = [0] * count
    for entry in entries:
        if entry.time is None:
            continue
        offset = entry.time.timestamp() - start
        if 0 <= offset < JOURNAL_WINDOW_SECONDS:
            index = int(offset // JOURNAL_BUCKET_SECONDS)
            hits[index] += 1
            if entry.duration_ms is not None:
                durations[index].append(entry.duration_ms)
    labels = [_when(start + i * JOURNAL_BUCKET_SECONDS) for i in range(count)]
    rate = charts.bar_chart(
        [
            charts.Bar(h / JOURNAL_BUCKET_SECONDS, f"{labels[i]}: {h} requests")
            for i, h in enumerate(hits)
        ],
        title="Requests per second, last 5 minutes",
        x_left="5 min ago",
        x_right="now",
    )
    latency = charts.line_chart(
        {
            "p50 ms": [statistics.median(d) if d else None for d in durations],
            "max ms": [max(d) if d else None for d in durations],
        },
        title="Latency (ms), last 5 minutes",
        x_left="5 min ago",
        x_right="now",
        hovers=labels,
    )
    return rate, latency


@bp.post("/journal/clear")
def journal_clear() -> ResponseReturnValue:
    viewer = _admin()
    try:
        emulator.clear_requests(viewer.principal)
    except emulator.EmulatorUnavailable:
        return render_template("unavailable.html", title="Request journal"), 200
    return redirect(url_for("console.journal"))


@bp.route("/clock", methods=["GET", "POST"])
def clock() -> ResponseReturnValue:
    viewer = _admin()
    error = ""
    try:
        if request.method == "POST":
            change = _clock_change(request.form)
            if change is None:
                error = "Choose what to do with the clock."
            else:
                try:
                    emulator.change_clock(viewer.principal, change)
                except emulator.EmulatorRejected as exc:
                    error = exc.message
                else:
                    return redirect(url_for("console.clock"))
        state = emulator.read_clock(viewer.principal)
    except emulator.EmulatorUnavailable:
        return render_template("unavailable.html", title="Emulator clock"), 200
    return render_template("clock.html", clock=state, error=error, form=request.form)


def _clock_change(form: Any) -> dict[str, Any] | None:
    action = form.get("action")
    if action == "freeze":
        return {"freezeAt": form.get("freeze_at", "").strip()}
    if action == "advance":
        return {"advance": form.get("advance", "").strip()}
    if action == "resume":
        return {"resume": True}
    if action == "reset":
        return {"reset": True}
    return None


@bp.route("/faults", methods=["GET", "POST"])
def faults() -> ResponseReturnValue:
    viewer = _admin()
    error = ""
    try:
        if request.method == "POST":
            try:
                rule = _fault_rule(request.form)
                emulator.add_fault(viewer.principal, rule)
            except ValueError as exc:
                error = str(exc)
            except emulator.EmulatorRejected as exc:
                error = exc.message
            else:
                return redirect(url_for("console.faults"))
        rules = emulator.list_faults(viewer.principal)
    except emulator.EmulatorUnavailable:
        return render_template("unavailable.html", title="Fault rules"), 200
    return render_template(
        "faults.html",
        rules=rules,
        error=error,
        form=request.form,
        endpoints=FAULT_ENDPOINTS,
        statuses=FAULT_STATUSES,
    )


def _fault_rule(form: Any) -> dict[str, Any]:
    """The rule body from the form; the endpoint validates it (400 messages shown as is)."""
    rule: dict[str, Any] = {"endpoint": form.get("endpoint", "*")}
    for field in ("workspace", "featureService"):
        if form.get(field, "").strip():
            rule[field] = form[field].strip()
    if form.get("joinKeys", "").strip():
        try:
            rule["joinKeys"] = orjson.loads(form["joinKeys"])
        except orjson.JSONDecodeError:
            raise ValueError('joinKeys must be a JSON object, e.g. {"user_id": "u1"}') from None
    for field, convert in (
        ("status", int),
        ("delayMs", int),
        ("times", int),
        ("probability", float),
        ("seed", int),
    ):
        raw = form.get(field, "").strip()
        if raw:
            try:
                rule[field] = convert(raw)
            except ValueError:
                raise ValueError(f"{field} must be a number, got {raw!r}") from None
    return rule


@bp.post("/faults/<rule_id>/delete")
def fault_delete(rule_id: str) -> ResponseReturnValue:
    viewer = _admin()
    try:
        emulator.remove_fault(viewer.principal, rule_id)
    except emulator.EmulatorUnavailable:
        return render_template("unavailable.html", title="Fault rules"), 200
    except emulator.EmulatorRejected as exc:
        raise ConsoleError(exc.status, "Could not remove the rule", exc.message) from None
    return redirect(url_for("console.faults"))


@bp.route("/<path:rest>", methods=["GET", "POST"])
def unknown(rest: str) -> ResponseReturnValue:
    raise not_found()
