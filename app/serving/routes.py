"""The FeatureService endpoints (v1 and the workspace-scoped v2 paths).

Every endpoint follows the same short path: key check (401) → body parsing (400) → role check
on the workspace (403, before anything is looked up) → the resolved service from the
per-process cache (404) → one store read → orjson encoding.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from flask import Response

from app.db import get_database
from app.errors import NotFound
from app.jsonio import json_response, read_json_body
from app.observability import note_served, note_target
from app.security import authenticate, require_permission
from app.serving import bp
from app.serving.assembly import Served, serve
from app.serving.bodies import batch_body, single_body
from app.serving.cache import SERVING
from app.serving.model import ResolvedService, resolve_view
from app.serving.params import (
    FeaturesRequest,
    Row,
    checked_name,
    features_request,
    locator_of,
    params_of,
)
from app.serving.validation import KeyParts, partial_key_parts
from app.store import OnlineStore, get_store
from auth.permissions import READ_FEATURES, VIEW_METADATA

V2 = "/v2/workspaces/<workspace>/feature-services/<service>"


def unable_to_query(service: str, workspace: str) -> NotFound:
    return NotFound(
        f"Unable to query FeatureService `{service}` for workspace `{workspace}`. "
        "Newly created feature services may take up to 60 seconds to query. "
        "Also, ensure that the workspace is a live workspace."
    )


def servable_service(workspace: str, service: str, *, by_view: bool = False) -> ResolvedService:
    """The service (or, `by_view`, the view served as a service) a request names; 404 unless
    it exists and may be served."""
    if by_view:
        return _servable_view(workspace, service)
    resolved = SERVING.get().services.get(get_database().session, workspace, service)
    if resolved is None or not resolved.servable:
        raise unable_to_query(service, workspace)
    note_target(workspace, service, exists=True)
    return resolved


def _servable_view(workspace: str, view: str) -> ResolvedService:
    resolved = SERVING.get().services.get(
        get_database().session, workspace, view, resolve=resolve_view, kind="view"
    )
    if resolved is None:
        raise NotFound(f"Unknown feature_view_name: {view} for workspace: {workspace}")
    if not resolved.servable:
        raise NotFound(
            f"Unable to query FeatureView `{view}` for workspace `{workspace}`. Ensure that the "
            "feature view is online and that the workspace is a live workspace."
        )
    note_target(workspace, exists=True)
    return resolved


def _features(batch: bool, workspace: str | None = None, service: str | None = None) -> Response:
    started = time.perf_counter()
    authenticate()
    request = features_request(read_json_body(), batch=batch, workspace=workspace, service=service)
    require_permission(request.workspace, READ_FEATURES)
    resolved = servable_service(request.workspace, request.service, by_view=request.by_view)
    served = serve(resolved, request, SERVING.get(), get_store())
    note_served(resolved, served)
    body = (batch_body if batch else single_body)(resolved, request, served, started)
    return json_response(body)


@bp.post("/v1/feature-service/get-features")
def get_features() -> Response:
    """One feature vector."""
    return _features(batch=False)


@bp.post("/v1/feature-service/get-features-batch")
def get_features_batch() -> Response:
    """Up to ten feature vectors, served by one store read."""
    return _features(batch=True)


@bp.post(f"{V2}/get-features")
def get_features_v2(workspace: str, service: str) -> Response:
    return _features(batch=False, workspace=workspace, service=service)


@bp.post(f"{V2}/get-features-batch")
def get_features_batch_v2(workspace: str, service: str) -> Response:
    return _features(batch=True, workspace=workspace, service=service)


# --------------------------------------------------------------------------- metadata


def _metadata(workspace: str, service: str) -> Response:
    require_permission(workspace, VIEW_METADATA)
    resolved = SERVING.get().services.get(get_database().session, workspace, service)
    if resolved is None:
        raise NotFound(f"Unknown feature_service_name: {service} for workspace: {workspace}")
    if not resolved.servable:
        raise unable_to_query(service, workspace)
    note_target(workspace, service, exists=True)
    body: dict[str, Any] = {"featureServiceType": "DEFAULT"}
    if resolved.join_keys:
        body["inputJoinKeys"] = [
            {"name": k.name, "dataType": k.data_type} for k in resolved.join_keys
        ]
    if resolved.request_context_keys:
        body["inputRequestContextKeys"] = [
            {"name": k.name, "dataType": k.data_type} for k in resolved.request_context_keys
        ]
    body["featureValues"] = [{"name": f.name, "dataType": f.data_type} for f in resolved.features]
    return json_response(body)


@bp.post("/v1/feature-service/metadata")
def metadata() -> Response:
    """The service's join keys, request-context keys and features, in response order."""
    authenticate()
    workspace, service = locator_of(params_of(read_json_body()))
    return _metadata(workspace, service)


@bp.get(f"{V2}/metadata")
def metadata_v2(workspace: str, service: str) -> Response:
    authenticate()
    return _metadata(
        checked_name(workspace, "workspaceName"), checked_name(service, "featureServiceName")
    )


# --------------------------------------------------------------------------- query-features


@bp.post("/v1/feature-service/query-features")
def query_features() -> Response:
    """Feature vectors for every stored entity matching a partial set of join keys."""
    started = time.perf_counter()
    authenticate()
    request = features_request(read_json_body(), batch=False)
    require_permission(request.workspace, READ_FEATURES)
    resolved = servable_service(request.workspace, request.service, by_view=request.by_view)
    # Canonical values ("007" is 7 for an Int64 key); a null key stays null and matches nothing.
    supplied = partial_key_parts(resolved, request.rows[0].join_keys)
    key_names = [k.name for k in resolved.join_keys]
    store = get_store()
    candidates = _matching_entities(store, resolved, supplied)
    rows = tuple(Row(keys, request.rows[0].request_context) for keys in candidates)
    results: list[dict[str, Any]] = []
    served: Served | None = None
    if rows:
        batch = FeaturesRequest(
            request.workspace,
            request.service,
            rows,
            request.metadata,
            request.options,
            True,
            request.by_view,
        )
        served = serve(resolved, batch, SERVING.get(), store)
        note_served(resolved, served)
        for row, row_result in zip(rows, served.rows, strict=True):
            results.append(
                {
                    "features": row_result.values,
                    "joinKeys": [_wire_key(row.join_keys.get(n)) for n in key_names],
                }
            )
    body: dict[str, Any] = {"results": results}
    if request.metadata.any:
        single = single_body(resolved, request, served, started) if served else {}
        metadata = dict(single.get("metadata", {}))
        metadata["joinKeys"] = [
            {"name": k.name, "dataType": k.data_type} for k in resolved.join_keys
        ]
        body["metadata"] = metadata
    return json_response(body)


def _wire_key(value: Any) -> Any:
    return None if value is None else str(value)


def _matching_entities(
    store: OnlineStore, resolved: ResolvedService, supplied: KeyParts
) -> list[dict[str, Any]]:
    """Full join-key maps of stored entities whose keys start with the supplied ones (canonical
    values; a null one matches no stored entity)."""
    if all(k.name in supplied for k in resolved.join_keys):
        return [dict(supplied)]
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for read in resolved.reads:
        leading = [n for n in read.key_names if n in supplied]
        if read.key_names[: len(leading)] != tuple(leading) or len(leading) == len(read.key_names):
            continue  # this view is either fully keyed or not a prefix match
        leading_parts = [supplied[n] for n in leading]
        if None in leading_parts:
            continue  # no stored entity has a null key
        aggregate = read.aggregation is not None
        scanned = store.read_prefix(
            read.feature_view_id, [p for p in leading_parts if p is not None], aggregate=aggregate
        )
        for parts in scanned:
            full = dict(zip(read.key_names, parts, strict=True))
            merged = {**supplied, **full}
            marker = orjson.dumps(merged, option=orjson.OPT_SORT_KEYS).decode()
            if marker not in seen:
                seen.add(marker)
                found.append(merged)
    return [{k.name: m.get(k.name) for k in resolved.join_keys} for m in found]
