"""The console's view of the emulator controls: the request journal, the clock, fault rules.

Everything goes through the app's own `/_emulator` HTTP endpoints (paths and bodies fixed by
SPEC §10), called in-process with the signed-in admin's principal, so the console can never do
more than that key could over HTTP and never needs the key itself. When the endpoints are not
part of this build (or `TECTONITE_EMULATOR_API=off` removed them) every call raises
`EmulatorUnavailable` and the pages say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from flask import current_app, request

from app.security import PRINCIPAL_ENVIRON_KEY
from auth.permissions import Principal

PREFIX = "/_emulator"


class EmulatorUnavailable(Exception):
    """This build (or this deployment) has no `/_emulator` endpoints."""


class EmulatorRejected(Exception):
    """The endpoint refused the call (400/403/404…); `message` is its Tecton-style message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class JournalFilters:
    limit: int = 200
    endpoint: str = ""
    workspace: str = ""
    feature_service: str = ""
    status: str = ""

    def query(self) -> dict[str, str]:
        pairs = {
            "limit": str(self.limit),
            "endpoint": self.endpoint,
            "workspace": self.workspace,
            "featureService": self.feature_service,
            "status": self.status,
        }
        return {name: value for name, value in pairs.items() if value}


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One recorded request (field names as SPEC §10 lists them, camelCase on the wire)."""

    time: datetime | None
    method: str
    path: str
    endpoint: str
    workspace: str
    feature_service: str
    api_key_id: str
    status: int | None
    error: str
    duration_ms: float | None
    body: Any

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> JournalEntry:
        def pick(*names: str) -> Any:
            for name in names:
                if raw.get(name) is not None:
                    return raw[name]
            return None

        duration = pick("durationMs", "duration_ms")
        if duration is None and pick("durationSeconds", "duration_seconds") is not None:
            duration = float(pick("durationSeconds", "duration_seconds")) * 1000
        status = pick("status", "statusCode")
        return cls(
            time=_parse_time(pick("time", "timestamp", "receivedAt")),
            method=str(pick("method") or ""),
            path=str(pick("path") or ""),
            endpoint=str(pick("endpoint") or ""),
            workspace=str(pick("workspace", "workspaceName") or ""),
            feature_service=str(pick("featureService", "feature_service") or ""),
            api_key_id=str(pick("apiKeyId", "api_key_id") or ""),
            status=int(status) if isinstance(status, int | str) and str(status).isdigit() else None,
            error=str(pick("error", "errorMessage", "message") or ""),
            duration_ms=float(duration) if isinstance(duration, int | float) else None,
            body=pick("body", "requestBody", "request"),
        )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def available() -> bool:
    """Whether this app serves `/_emulator` at all (routes removed or not built: False)."""
    return any(rule.rule.startswith(PREFIX) for rule in current_app.url_map.iter_rules())


def _call(
    principal: Principal,
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Any:
    if not available():
        raise EmulatorUnavailable(path)
    client = current_app.test_client()
    response = client.open(
        PREFIX + path,
        method=method,
        query_string=query,
        data=orjson.dumps(body) if body is not None else None,
        content_type="application/json" if body is not None else None,
        environ_overrides={
            PRINCIPAL_ENVIRON_KEY: principal,
            "REMOTE_ADDR": request.remote_addr or "127.0.0.1",
        },
    )
    try:
        payload = orjson.loads(response.get_data()) if response.get_data() else None
    except orjson.JSONDecodeError:
        payload = None
    if response.status_code == 404 and method == "GET":
        raise EmulatorUnavailable(path)
    if response.status_code >= 400:
        message = payload.get("message") if isinstance(payload, dict) else None
        raise EmulatorRejected(response.status_code, str(message or response.status))
    return payload


# --------------------------------------------------------------------------- the journal


def list_requests(principal: Principal, filters: JournalFilters) -> list[JournalEntry]:
    """The journal, newest first, filtered as `GET /_emulator/requests` filters it."""
    payload = _call(principal, "GET", "/requests", query=filters.query())
    return [JournalEntry.from_wire(e) for e in _list_in(payload, "requests") if isinstance(e, dict)]


def clear_requests(principal: Principal) -> None:
    _call(principal, "DELETE", "/requests")


# --------------------------------------------------------------------------- the clock


def read_clock(principal: Principal) -> dict[str, Any]:
    """`{"now": RFC 3339, "frozen": bool, "offsetSeconds": n}`."""
    payload = _call(principal, "GET", "/clock")
    return payload if isinstance(payload, dict) else {}


def change_clock(principal: Principal, change: dict[str, Any]) -> dict[str, Any]:
    """One of `{"freezeAt": T}`, `{"advance": "90m"}`, `{"resume": true}`, `{"reset": true}`."""
    payload = _call(principal, "POST", "/clock", body=change)
    return payload if isinstance(payload, dict) else {}


# --------------------------------------------------------------------------- fault rules


def list_faults(principal: Principal) -> list[dict[str, Any]]:
    payload = _call(principal, "GET", "/faults")
    return [rule for rule in _list_in(payload, "faults", "rules") if isinstance(rule, dict)]


def add_fault(principal: Principal, rule: dict[str, Any]) -> str:
    payload = _call(principal, "POST", "/faults", body=rule)
    return str(payload.get("id", "")) if isinstance(payload, dict) else ""


def remove_fault(principal: Principal, rule_id: str) -> None:
    _call(principal, "DELETE", f"/faults/{rule_id}")


def _list_in(payload: Any, *names: str) -> list[Any]:
    """A list answer, bare or wrapped in an object under one of `names`."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for name in names:
            if isinstance(payload.get(name), list):
                return list(payload[name])
    return []
