"""What an API request is about: its endpoint name, workspace, feature service and join keys.

Fault rules match on these and the journal records them. Endpoint names come from the URL
rule's last segment, so they do not depend on view function names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from app.serving.params import DEFAULT_WORKSPACE, get

GET_FEATURES = "get-features"
GET_FEATURES_BATCH = "get-features-batch"
METADATA = "metadata"
QUERY_FEATURES = "query-features"
INGEST = "ingest"
SERVICE_STATE = "get-feature-service-state"
ANY = "*"

# Endpoints a fault rule may name; the journal also knows get-feature-service-state.
FAULT_ENDPOINTS = (GET_FEATURES, GET_FEATURES_BATCH, METADATA, QUERY_FEATURES, INGEST, ANY)
JOURNAL_ENDPOINTS = (GET_FEATURES, GET_FEATURES_BATCH, METADATA, QUERY_FEATURES, INGEST,
                     SERVICE_STATE)  # fmt: skip
_API_ENDPOINTS = frozenset(JOURNAL_ENDPOINTS) - {INGEST}
_INGEST_RULES = frozenset({"/ingest", "/v2/ingest"})

# Paths that are neither journaled nor subject to fault rules (the console's pages are not API
# requests; the get-features calls its "Try it" sends are, and are journaled as such).
EXEMPT_PREFIXES = ("/_emulator", "/healthz", "/readyz", "/console")


def is_exempt(path: str) -> bool:
    return path.startswith(EXEMPT_PREFIXES)


def endpoint_of(url_rule: str | None) -> str | None:
    """`/api/v1/feature-service/get-features` → `get-features`; None for unknown paths."""
    if url_rule is None:
        return None
    if url_rule in _INGEST_RULES:
        return INGEST
    if url_rule.startswith("/api/"):
        last = url_rule.rsplit("/", 1)[-1]
        if last in _API_ENDPOINTS:
            return last
    return None


@dataclass(frozen=True, slots=True)
class RequestTarget:
    workspace: str | None = None
    feature_service: str | None = None
    # One join-key map per row (get-features: one; batch: each row; ingest: each record).
    join_keys: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def parse_body(data: bytes) -> Any:
    """The body as JSON, or None when it is empty or not JSON."""
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def target_of(endpoint: str | None, view_args: dict[str, Any] | None, body: Any) -> RequestTarget:
    """Workspace, service and join keys, from the path (v2) or the body; lenient: a request
    whose body is malformed simply has fewer known parts."""
    view_args = view_args or {}
    body = _dict(body)
    if endpoint == INGEST:
        records = _dict(body.get("records"))
        rows = tuple(
            _dict(item.get("record"))
            for items in records.values()
            if isinstance(items, list)
            for item in items
            if isinstance(item, dict)
        )
        workspace = _name(body.get("workspace_name")) or _name(body.get("workspaceName"))
        return RequestTarget(workspace, None, rows)
    if endpoint == SERVICE_STATE:
        locator = _dict(get(body, "featureServiceLocator"))
        return RequestTarget(
            _name(get(locator, "workspaceName")), _name(get(locator, "featureServiceName"))
        )
    params = _dict(body.get("params"))
    workspace = _name(view_args.get("workspace")) or _name(get(params, "workspaceName"))
    service = _name(view_args.get("service")) or _name(get(params, "featureServiceName"))
    if endpoint is not None and workspace is None and service is not None:
        workspace = DEFAULT_WORKSPACE
    if endpoint == GET_FEATURES_BATCH:
        data = get(params, "requestData")
        rows = (
            tuple(_dict(get(row, "joinKeyMap")) for row in data or () if isinstance(row, dict))
            if isinstance(data, list)
            else ()
        )
    else:
        rows = (_dict(get(params, "joinKeyMap")),)
    return RequestTarget(workspace, service, rows)
