"""`POST /ingest` and `POST /v2/ingest`: Tecton's Stream Ingest API (reference §8).

Order of checks: the key (401/429) before the body is read; the body (400 `requestError`);
the role on the workspace (403: Editor, or Viewer for `dry_run`) before anything is looked up;
then the workspace, push sources and subscribed views (404); then every record (400
`recordErrors`). A request is one transaction: all its records are written or none, and 200 is
sent only after the commit.

Choices where Tecton's behaviour is not documented (README, "Differences from Tecton"):
- a development workspace answers 404 when `dry_run` is false, as serving does;
- `dry_run` validates everything and reports the counts that would have been written;
- `onlineRecordIngestCount` counts the records accepted for the view, including those that
  lost to a newer stored row (last-write-wins makes them no-ops, not errors);
- `featureViewId` is a stable hash of the workspace and view names (`TargetView.public_id`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import get_session
from app.errors import BadRequest, NotFound
from app.ingest import bp
from app.ingest.schemas import (
    RequestValidationError,
    check_columns,
    event_time,
    key_converter,
    native_converter,
    parse_request,
)
from app.ingest.writer import TargetView, ValueRow, features_json, load_target_views, upsert_rows
from app.jsonio import json_response, read_json_body
from app.models import FeatureView, PushSource, Workspace
from app.observability import note_ingest, note_target
from app.online_store import entity_key
from app.security import authenticate, require_permission
from app.types import ValueTypeError, parse_type
from auth.permissions import INGEST, INGEST_DRY_RUN

MAX_RECORD_ERRORS = 100
TTL_MESSAGE = "timestamp value is outside of the serving TTL defined for Feature View {view}"


@bp.post("/ingest")
def ingest_v1() -> Response:
    return _ingest(camel_case=False)


@bp.post("/v2/ingest")
def ingest_v2() -> Response:
    return _ingest(camel_case=True)


def _ingest(*, camel_case: bool) -> Response:
    authenticate()
    try:
        request = parse_request(read_json_body(), camel_case=camel_case)
    except (BadRequest, RequestValidationError) as exc:
        return _request_error(str(exc))
    require_permission(request.workspace, INGEST_DRY_RUN if request.dry_run else INGEST)

    session = get_session()
    workspace = session.scalars(
        select(Workspace).where(Workspace.name == request.workspace)
    ).one_or_none()
    if workspace is None:
        raise NotFound(f"Workspace `{request.workspace}` not found.")
    note_target(request.workspace, exists=True)
    if not workspace.live and not request.dry_run:
        raise NotFound(
            f"Workspace `{request.workspace}` is not a live workspace; the Stream Ingest API "
            "writes only to live workspaces."
        )
    plans = _plan_sources(session, workspace, list(request.records))

    rows: list[ValueRow] = []
    errors: list[dict[str, str]] = []
    now = datetime.now(UTC)
    for plan in plans:
        for index, record in enumerate(request.records[plan.name]):
            plan.convert(index, record, now, rows, errors)
            if len(errors) >= MAX_RECORD_ERRORS:
                break
    received = sum(len(records) for records in request.records.values())
    if errors:
        note_ingest(request.workspace, rejected=received)
        body = {"workspaceName": request.workspace, "recordErrors": errors[:MAX_RECORD_ERRORS]}
        return json_response(body, status=400)

    if not request.dry_run:
        upsert_rows(session, rows)
        session.commit()  # acknowledged only once durable and visible to every reader
    note_ingest(request.workspace, dry_run=received if request.dry_run else 0,
                written=0 if request.dry_run else received)  # fmt: skip
    metrics = [
        {
            "featureViewName": view.name,
            "onlineRecordIngestCount": str(len(request.records[plan.name])),
            "featureViewId": view.public_id,
        }
        for plan in plans
        for view in plan.views
    ]
    return json_response(
        {
            "workspaceName": request.workspace,
            "ingestMetrics": {"featureViewIngestMetrics": metrics},
        }
    )


def _request_error(message: str) -> Response:
    body = {"requestError": {"errorMessage": message, "errorType": "RequestValidationError"}}
    return json_response(body, status=400)


@dataclass
class _SourcePlan:
    """One push source of the request: its schema, converters and the views it feeds."""

    name: str
    timestamp_field: str
    columns: list[str]
    converters: dict[str, Callable[[Any], Any]]
    key_converters: dict[str, Callable[[Any], str]]
    views: list[TargetView]

    def convert(
        self,
        index: int,
        record: dict[str, Any],
        now: datetime,
        rows: list[ValueRow],
        errors: list[dict[str, str]],
    ) -> None:
        """Append the record's rows (one per view) to `rows`, or its problems to `errors`."""
        try:
            problem = check_columns(record, self.columns, allow_missing=set())
            if problem is not None:
                raise ValueTypeError(problem)
            timestamp, wire, keys = self._values(record)
        except ValueTypeError as exc:
            for view in self.views:
                errors.append(self._error(view, f"record {index}: {exc}"))
            return
        for view in self.views:
            if view.ttl_seconds is not None and timestamp < now - timedelta(
                seconds=view.ttl_seconds
            ):
                errors.append(self._error(view, TTL_MESSAGE.format(view=view.name)))
                continue
            rows.append(
                ValueRow(
                    view.id,
                    entity_key([keys[name] for name, _ in view.join_keys]),
                    timestamp,
                    features_json({name: wire[name] for name, _ in view.features}),
                )
            )

    def _error(self, view: TargetView, message: str) -> dict[str, str]:
        return {
            "featureViewName": view.name,
            "pushSourceName": self.name,
            "errorType": "TectonObjectValidationError",
            "errorMessage": message,
        }

    def _values(self, record: dict[str, Any]) -> tuple[datetime, dict[str, Any], dict[str, str]]:
        column = self.timestamp_field
        try:
            timestamp = event_time(record[column])
            wire = {}
            for column, convert in self.converters.items():
                wire[column] = convert(record[column])
            keys = {}
            for column, convert_key in self.key_converters.items():
                keys[column] = convert_key(record[column])
        except ValueTypeError as exc:
            raise ValueTypeError(f"column `{column}`: {exc}") from None
        return timestamp, wire, keys


# (workspace id, definitions version, push source) -> plan. Every apply that changes a
# workspace bumps its version in the same transaction, so a cached plan is never stale; ids are
# never reused. Bounded by clearing: plans are cheap to rebuild.
_PLANS: dict[tuple[int, int, str], _SourcePlan] = {}
_MAX_PLANS = 1024


def _plan_sources(session: Session, workspace: Workspace, names: list[str]) -> list[_SourcePlan]:
    """The requested push sources and their online views; 404 when one is unknown or unfed."""
    version = (workspace.id, workspace.definitions_version)
    cached = [_PLANS.get((*version, name)) for name in names]
    if all(plan is not None for plan in cached):
        return cached  # type: ignore[return-value]
    plans = _load_plans(session, workspace, names)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    for plan in plans:
        _PLANS[(*version, plan.name)] = plan
    return plans


def _load_plans(session: Session, workspace: Workspace, names: list[str]) -> list[_SourcePlan]:
    if not names:
        return []
    sources = {
        source.name: source
        for source in session.scalars(
            select(PushSource).where(
                PushSource.workspace_id == workspace.id, PushSource.name.in_(names)
            )
        )
    }
    views_by_source: dict[int, list[FeatureView]] = {}
    for view in session.scalars(
        select(FeatureView)
        .where(
            FeatureView.workspace_id == workspace.id,
            FeatureView.source_id.in_([s.id for s in sources.values()]),
            FeatureView.online.is_(True),
        )
        .order_by(FeatureView.name)
    ):
        views_by_source.setdefault(view.source_id or 0, []).append(view)

    plans = []
    for name in names:
        source = sources.get(name)
        if source is None:
            raise NotFound(f"Push source `{name}` not found in workspace `{workspace.name}`.")
        views = views_by_source.get(source.id)
        if not views:
            raise NotFound(
                f"No online stream feature view in workspace `{workspace.name}` is subscribed "
                f"to push source `{name}`."
            )
        targets = load_target_views(session, workspace.name, views)
        plans.append(
            _SourcePlan(
                name=name,
                timestamp_field=source.timestamp_field,
                columns=[f.name for f in source.fields],
                converters={
                    f.name: native_converter(parse_type(f.type))
                    for f in source.fields
                    if f.name != source.timestamp_field
                },
                key_converters={
                    key: key_converter(key_type, text=False)
                    for view in targets
                    for key, key_type in view.join_keys
                },
                views=targets,
            )
        )
    return plans
