"""`/_emulator`: the admin-only controls (clock, reset, faults, journal, explain).

Every call needs an `admin` key (401/16 without a valid key, 403/7 with another one). Writes
commit before the answer, and their change notices reach every process through the feed.
"""

from __future__ import annotations

from flask import Response, request

from app.db import get_database, get_session
from app.emulator import bp
from app.emulator.clock import (
    CLOCK,
    change_clock,
    read_clock,
)
from app.emulator.explain import explain as explain_request
from app.emulator.faults import add_rule, clear_rules, list_rules
from app.emulator.journal import JOURNAL, clear_journal, read_journal
from app.emulator.reset import UnknownWorkspace, reset
from app.emulator.schemas import (
    load_clock_change,
    load_fault_rule,
    load_journal_query,
    load_reset,
)
from app.errors import NotFound, PermissionDenied
from app.jsonio import json_response, read_json_body
from app.security import authenticate
from app.serving import SERVING
from app.serving.params import features_request
from app.serving.routes import servable_service
from app.store import get_store
from auth.errors import PermissionDeniedError


@bp.before_request
def _admin_only() -> None:
    if not authenticate().is_admin:
        raise PermissionDenied(PermissionDeniedError.message)


# --------------------------------------------------------------------------- clock


@bp.get("/clock")
def clock_show() -> Response:
    with get_database().read() as connection:
        return json_response(read_clock(connection).describe())


@bp.post("/clock")
def clock_change() -> Response:
    change = load_clock_change(read_json_body())
    session = get_session()
    state = change_clock(session, change.action, change.at, change.seconds)
    session.commit()
    return json_response(state.describe())


# --------------------------------------------------------------------------- reset


@bp.post("/reset")
def reset_state() -> Response:
    body = read_json_body() if request.get_data(cache=True).strip() else {}
    scope, workspace = load_reset(body)
    session = get_session()
    try:
        result = reset(session, scope=scope, workspace=workspace)
    except UnknownWorkspace:
        raise NotFound(f"Workspace `{workspace}` not found.") from None
    session.commit()
    return json_response(result.to_json())


# --------------------------------------------------------------------------- faults


@bp.post("/faults")
def fault_add() -> Response:
    spec = load_fault_rule(read_json_body())
    session = get_session()
    rule_id = add_rule(session, spec)
    session.commit()
    return json_response({"id": rule_id})


@bp.get("/faults")
def fault_list() -> Response:
    return json_response({"faults": [r.to_json() for r in list_rules(get_session())]})


@bp.delete("/faults")
def fault_clear_all() -> Response:
    session = get_session()
    removed = clear_rules(session)
    session.commit()
    return json_response({"removed": removed})


@bp.delete("/faults/<int:rule_id>")
def fault_clear(rule_id: int) -> Response:
    session = get_session()
    removed = clear_rules(session, rule_id)
    if not removed:
        raise NotFound(f"Fault rule {rule_id} not found.")
    session.commit()
    return json_response({"removed": removed})


# --------------------------------------------------------------------------- journal


@bp.get("/requests")
def journal_list() -> Response:
    query = load_journal_query(request.args.to_dict())
    writer = JOURNAL.get()
    if writer is not None:
        writer.flush()
    cap = writer.cap if writer is not None else None
    return json_response({"requests": read_journal(get_session(), query, cap)})


@bp.delete("/requests")
def journal_clear() -> Response:
    writer = JOURNAL.get()
    if writer is not None:
        writer.flush()
    session = get_session()
    removed = clear_journal(session)
    session.commit()
    return json_response({"removed": removed})


# --------------------------------------------------------------------------- explain


@bp.post("/explain")
def explain() -> Response:
    parsed = features_request(read_json_body(), batch=False)
    resolved = servable_service(parsed.workspace, parsed.service, by_view=parsed.by_view)
    serving = SERVING.get()
    body = explain_request(
        resolved, parsed, CLOCK.get().state, get_store(), serving, serving.features.peek
    )
    return json_response(body)
