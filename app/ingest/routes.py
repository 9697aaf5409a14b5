"""`POST /ingest` and `POST /v2/ingest`: Tecton's Stream Ingest API (reference §8).

Order of checks: the key (401/429) before the body is read; the body (400 `requestError`);
the role on the workspace (403: Editor, or Viewer for `dry_run`) before anything is looked up;
then the workspace, push sources and subscribed views (404); then every record (400
`recordErrors`). A request is one transaction: all its records are written or none, and 200 is
sent only after the commit.

Choices where Tecton's behaviour is not documented (README, "Differences from Tecton"):
- a development workspace answers 404 when `dry_run` is false, as serving does;
- `dry_run` validates everything and reports the counts that would have been written; like a
  development workspace, a push source no online view subscribes to is only refused (404) when
  `dry_run` is false (Tecton's documented precondition); a dry run checks its records against
  the source's schema and reports no view;
- `onlineRecordIngestCount` counts the records accepted for the view, including those that
  lost to a newer stored row (last-write-wins makes them no-ops, not errors);
- `featureViewId` is a stable hash of the workspace and view names (`TargetView.public_id`).
"""

from __future__ import annotations

from collections import Counter

from flask import Response
from sqlalchemy import select

from app.db import get_session
from app.errors import BadRequest, NotFound
from app.ingest import PLANS, bp
from app.ingest.schemas import RequestValidationError, parse_request
from app.ingest.service import UnknownSource
from app.jsonio import json_response, read_json_body
from app.models import Workspace
from app.observability import note_ingest, note_ingest_events, note_target
from app.security import authenticate, require_permission
from app.serving import clock
from app.store import EventRow, ValueRow, add_events, put_values
from auth.permissions import INGEST, INGEST_DRY_RUN

MAX_RECORD_ERRORS = 100


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

    # Before the request's session exists: a clock reload takes a pooled connection of its own.
    now = clock.now()  # ttl checks follow the emulator's clock
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
    try:
        plans = PLANS.get().plans(
            session, workspace, list(request.records), require_views=not request.dry_run
        )
    except UnknownSource as exc:
        raise NotFound(exc.message) from None

    rows: list[ValueRow] = []
    events: dict[int, list[EventRow]] = {}
    errors: list[dict[str, str]] = []
    for plan in plans:
        for index, record in enumerate(request.records[plan.name]):
            plan.convert(index, record, now, rows, errors, events)
            if len(errors) >= MAX_RECORD_ERRORS:
                break
    received = sum(len(records) for records in request.records.values())
    # Every record is one event of each aggregate view its push source feeds.
    carried = Counter[str]()
    for plan in plans:
        for view in plan.views:
            if view.aggregation is not None:
                carried[view.name] += len(request.records[plan.name])
    if errors:
        note_ingest(request.workspace, rejected=received)
        note_ingest_events(request.workspace, "rejected", carried)
        body = {"workspaceName": request.workspace, "recordErrors": errors[:MAX_RECORD_ERRORS]}
        return json_response(body, status=400)

    if not request.dry_run:
        put_values(session, rows)
        specs = {view.id: view.aggregation for plan in plans for view in plan.views}
        for view_id, view_events in sorted(events.items()):
            spec = specs[view_id]
            if spec is not None:
                add_events(session, view_id, spec, view_events)
        session.commit()  # acknowledged only once durable and visible to every reader
    if request.dry_run:
        note_ingest(request.workspace, dry_run=received)
        note_ingest_events(request.workspace, "dry_run", carried)
    else:
        note_ingest(request.workspace, written=received)
        note_ingest_events(request.workspace, "written", carried)
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
