"""Computes feature vectors for a resolved service: validation, one store read, assembly.

The whole request (one row or a batch of ten, every view of the service) is served by one
statement over the online store's primary key, on an autocommit connection (no BEGIN/ROLLBACK).
Stored values are already in wire encoding, so assembling the response copies them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from app import changes
from app.db import get_database
from app.errors import BadRequest
from app.observability import note_transform_error
from app.online_store import canonical_key_part, entity_key
from app.repo.resolved import ResolvedService, StoreRead
from app.repo.service import DEFINITIONS_TOPIC
from app.repo.transforms import TransformError, compiled_transform
from app.serving.params import FeaturesRequest, Row
from app.types import ValueTypeError, coerce_value, decode_value, encode_value, format_timestamp

# One index scan over the primary key: each wanted view crossed with each wanted key. When a
# service's views are keyed differently this also probes pairs nobody asked for; those are cheap
# misses (or rows the caller ignores, as it picks results by the wanted pairs). Measured against
# a join with unnest() or json_to_recordset(), this form costs half as much in PostgreSQL.
STORE_QUERY = (
    "SELECT feature_view_id, entity_key, event_time, features FROM online_values "
    "WHERE feature_view_id = ANY(%s::int[]) AND entity_key = ANY(%s::text[])"
)

PRESENT, MISSING_DATA = "PRESENT", "MISSING_DATA"
CACHED = {PRESENT: "CACHED_PRESENT", MISSING_DATA: "CACHED_MISSING_DATA"}


@dataclass(slots=True)
class StoredRow:
    event_time: datetime
    features: dict[str, Any]
    size: int = 0


@dataclass(slots=True)
class RowResult:
    values: list[Any]
    statuses: list[str]
    effective_times: list[datetime | None]
    seconds: float  # time spent assembling this row (plus its transforms)
    transform_seconds: float


@dataclass(slots=True)
class Served:
    rows: list[RowResult]
    store_seconds: float
    store_bytes: int


# --------------------------------------------------------------------------- the serving cache


class FeatureCache(changes.WorkspaceCache):
    """Tecton's feature-service cache: per (workspace, service, namespace, entity) values, kept
    for the view's `cache_max_age`. Realtime results are never cached."""

    def __init__(self) -> None:
        super().__init__(DEFINITIONS_TOPIC)

    def get(self, key: tuple[str, str, str, str]) -> tuple[list[Any], str] | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1], entry[2]

    def put(
        self, key: tuple[str, str, str, str], max_age: float, values: list[Any], status: str
    ) -> None:
        with self.lock:
            self.entries[key] = (time.monotonic() + max_age, values, status)


feature_cache = FeatureCache()


# --------------------------------------------------------------------------- validation


def _join_key_parts(resolved: ResolvedService, row: Row) -> dict[str, str | None]:
    """Canonical join-key values of one row; Tecton's 400 messages for bad ones."""
    expected = resolved.join_keys
    names = [k.name for k in expected]
    for supplied in row.join_keys:
        if supplied not in names:
            raise BadRequest(f"Unknown join key: {supplied}, expected one of: [{' '.join(names)}]")
    parts: dict[str, str | None] = {}
    for key in expected:
        if key.name not in row.join_keys:
            raise BadRequest(f"Missing required join key: `{key.name}`")
        value = row.join_keys[key.name]
        if value is None:
            parts[key.name] = None
            continue
        if key.type.kind == "Int64":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise BadRequest(
                    f"Unexpected JSON type for {key.name} in joinKeyMap. Expected int64 or null."
                )
            try:
                parts[key.name] = canonical_key_part("Int64", coerce_value(key.type, value))
            except ValueTypeError:
                raise BadRequest(
                    f"Unexpected JSON type for {key.name} in joinKeyMap. Expected int64 or null."
                ) from None
        else:
            if not isinstance(value, str) or "\x00" in value:
                raise BadRequest(
                    f"Unexpected JSON type for {key.name} in joinKeyMap. Expected string or null."
                )
            parts[key.name] = value
    return parts


def _request_context(resolved: ResolvedService, row: Row, ignore_extra: bool) -> dict[str, Any]:
    """The request-context values the service's realtime views take, as Python values."""
    expected = resolved.request_context_keys
    missing = [k.name for k in expected if row.request_context.get(k.name) is None]
    if missing:
        raise BadRequest(f"Expected key not found: [{' '.join(missing)}] in requestContextMap")
    context: dict[str, Any] = {}
    for key in expected:
        value = row.request_context[key.name]
        if ignore_extra and key.type.kind == "Struct" and isinstance(value, dict):
            declared = {name for name, _ in key.type.fields}
            value = {k: v for k, v in value.items() if k in declared}
        try:
            context[key.name] = coerce_value(key.type, value)
        except ValueTypeError as exc:
            raise BadRequest(f"Invalid value for {key.name} in requestContextMap: {exc}") from None
    return context


def _store_key(read: StoreRead, parts: dict[str, str | None]) -> str | None:
    values = [parts[name] for name in read.key_names]
    if any(v is None for v in values):
        return None
    return entity_key(values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- serving


def serve(resolved: ResolvedService, request: FeaturesRequest) -> Served:
    """Validate every row, read the store once, and assemble each row's feature vector."""
    key_parts = [_join_key_parts(resolved, row) for row in request.rows]
    contexts = [
        _request_context(resolved, row, request.options.ignore_extra_request_context_fields)
        for row in request.rows
    ]
    store_keys = [[_store_key(read, parts) for read in resolved.reads] for parts in key_parts]

    use_cache = resolved.enable_online_caching
    cached: list[dict[int, tuple[list[Any], str]]] = [{} for _ in request.rows]
    needed_reads: set[int] = {
        i.read for rt in resolved.realtime for i in rt.inputs if i.kind == "read"
    }
    for index, view in enumerate(resolved.views):
        for row_index, keys in enumerate(store_keys):
            hit = None
            if use_cache and view.cache_max_age_seconds and request.options.read_from_cache:
                key = keys[view.read]
                if key is not None:
                    hit = feature_cache.get(
                        (resolved.workspace, resolved.name, view.namespace, key)
                    )
            if hit is not None:
                cached[row_index][index] = hit
            else:
                needed_reads.add(view.read)

    wanted = sorted(
        {
            (resolved.reads[read].feature_view_id, keys[read])
            for keys in store_keys
            for read in needed_reads
            if keys[read] is not None
        }
    )
    stored: dict[tuple[int, str], StoredRow] = {}
    store_seconds = 0.0
    store_bytes = 0
    if wanted:
        started = time.perf_counter()
        result = _read_store(
            sorted({view_id for view_id, _ in wanted}), sorted({key for _, key in wanted})
        )
        store_seconds = time.perf_counter() - started
        for view_id, key, event_time, features in result:
            stored[(view_id, key)] = StoredRow(event_time, features)
        if result and request.metadata.slo_info:
            store_bytes = sum(len(orjson.dumps(stored[w].features)) for w in wanted if w in stored)

    now = datetime.now(UTC)
    rows = [
        _assemble(resolved, request, store_keys[i], contexts[i], cached[i], stored, now)
        for i in range(len(request.rows))
    ]
    return Served(rows, store_seconds, store_bytes)


def _read_store(view_ids: list[int], keys: list[str]) -> list[tuple[Any, ...]]:
    """One prepared statement on this thread's store connection; a connection that broke
    (e.g. PostgreSQL restarted) is replaced and the read retried once: reads are idempotent."""
    database = get_database()
    for attempt in (1, 2):
        try:
            cursor = database.store_cursor()
            cursor.execute(STORE_QUERY, (view_ids, keys), prepare=True)
            return cursor.fetchall()
        except psycopg.OperationalError:
            database.discard_store_connection()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _fresh(read: StoreRead, row: StoredRow | None, now: datetime) -> bool:
    if row is None:
        return False
    return read.ttl_seconds is None or row.event_time >= now - timedelta(seconds=read.ttl_seconds)


def _assemble(
    resolved: ResolvedService,
    request: FeaturesRequest,
    keys: list[str | None],
    context: dict[str, Any],
    cached: dict[int, tuple[list[Any], str]],
    stored: dict[tuple[int, str], StoredRow],
    now: datetime,
) -> RowResult:
    started = time.perf_counter()
    values: list[Any] = []
    statuses: list[str] = []
    effective: list[datetime | None] = []

    def stored_row(read_index: int) -> StoredRow | None:
        key = keys[read_index]
        if key is None:
            return None
        return stored.get((resolved.reads[read_index].feature_view_id, key))

    transform_seconds = 0.0
    for realtime in resolved.realtime:
        inputs: list[dict[str, Any]] = []
        for source in realtime.inputs:
            if source.kind == "request":
                inputs.append({f.name: context[f.name] for f in source.fields})
                continue
            read = resolved.reads[source.read]
            row = stored_row(source.read)
            features = row.features if _fresh(read, row, now) else {}  # type: ignore[union-attr]
            inputs.append(
                {
                    name: decode_value(t, features.get(name))
                    for name, t in read.feature_types.items()
                }
            )
        transform_started = time.perf_counter()
        try:
            output = _run_transform(realtime, inputs)
        except BadRequest:
            note_transform_error(resolved.workspace)
            raise
        transform_seconds += time.perf_counter() - transform_started
        for feature in realtime.features:
            try:
                value = coerce_value(feature.type, output.get(feature.feature))
            except ValueTypeError as exc:
                note_transform_error(resolved.workspace)
                raise BadRequest(
                    f"TypeError: output {feature.feature!r}: {exc} "
                    f"(when evaluating UDF {realtime.view_name})"
                ) from None
            values.append(encode_value(feature.type, value))
            statuses.append(PRESENT)
            effective.append(None)

    for index, view in enumerate(resolved.views):
        hit = cached.get(index)
        if hit is not None:
            values.extend(hit[0])
            statuses.extend([CACHED[hit[1]]] * len(view.features))
            effective.extend([None] * len(view.features))
            continue
        read = resolved.reads[view.read]
        row = stored_row(view.read)
        if _fresh(read, row, now):
            view_values = [row.features.get(f.feature) for f in view.features]  # type: ignore[union-attr]
            status = PRESENT
        else:
            view_values = [None] * len(view.features)
            status = MISSING_DATA
        values.extend(view_values)
        statuses.extend([status] * len(view.features))
        effective.extend([row.event_time if row is not None else None] * len(view.features))
        key = keys[view.read]
        if (
            resolved.enable_online_caching
            and view.cache_max_age_seconds
            and request.options.write_to_cache
            and key is not None
        ):
            feature_cache.put(
                (resolved.workspace, resolved.name, view.namespace, key),
                view.cache_max_age_seconds,
                view_values,
                status,
            )
    return RowResult(values, statuses, effective, time.perf_counter() - started, transform_seconds)


def _run_transform(realtime: Any, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    label = realtime.view_name
    try:
        function = compiled_transform(realtime.transform_source, realtime.transform_function, label)
        output = function(*inputs)
    except TransformError as exc:
        raise BadRequest(f"TransformError: {exc} (when evaluating UDF {label})") from None
    except Exception as exc:  # the user's code may raise anything; Tecton answers 400
        raise BadRequest(f"{type(exc).__name__}: {exc} (when evaluating UDF {label})") from None
    if not isinstance(output, dict):
        raise BadRequest(
            f"TypeError: the transform returned {type(output).__name__}, expected a dict "
            f"(when evaluating UDF {label})"
        )
    return output


# --------------------------------------------------------------------------- response bodies


def _item(
    feature: Any, request: FeaturesRequest, status: Any, effective: datetime | None
) -> dict[str, Any]:
    md = request.metadata
    item: dict[str, Any] = {}
    if md.names:
        item["name"] = feature.name
    if md.effective_times and effective is not None:
        item["effectiveTime"] = format_timestamp(effective)
    if md.data_types:
        item["dataType"] = feature.data_type
    if md.serving_status:
        item["status"] = status
    if md.descriptions and feature.description:
        item["description"] = feature.description
    if md.tags and feature.tags:
        item["tags"] = feature.tags
    return item


def _slo(
    server_seconds: float, slo_seconds: float, store_seconds: float, store_bytes: int
) -> dict[str, Any]:
    return {
        "sloEligible": True,
        "sloServerTimeSeconds": round(slo_seconds, 9),
        "serverTimeSeconds": round(server_seconds, 9),
        "storeMaxLatency": round(store_seconds, 9),
        "storeResponseSizeBytes": store_bytes,
    }


def single_body(
    resolved: ResolvedService, request: FeaturesRequest, served: Served, started: float
) -> dict[str, Any]:
    row = served.rows[0]
    body: dict[str, Any] = {"result": {"features": row.values}}
    md = request.metadata
    if not md.any:
        return body
    metadata: dict[str, Any] = {}
    if md.per_feature:
        metadata["features"] = [
            _item(feature, request, row.statuses[i], row.effective_times[i])
            for i, feature in enumerate(resolved.features)
        ]
    if md.slo_info:
        elapsed = time.perf_counter() - started
        metadata["sloInfo"] = _slo(
            elapsed, elapsed - row.transform_seconds, served.store_seconds, served.store_bytes
        )
    body["metadata"] = metadata
    return body


def batch_body(
    resolved: ResolvedService, request: FeaturesRequest, served: Served, started: float
) -> dict[str, Any]:
    rows = served.rows
    body: dict[str, Any] = {"result": [{"features": row.values} for row in rows]}
    md = request.metadata
    if not md.any:
        return body
    metadata: dict[str, Any] = {}
    if md.per_feature:
        items = []
        for i, feature in enumerate(resolved.features):
            times = [row.effective_times[i] for row in rows if row.effective_times[i] is not None]
            items.append(
                _item(feature, request, [row.statuses[i] for row in rows], max(times, default=None))
            )
        metadata["features"] = items
    if md.slo_info:
        elapsed = time.perf_counter() - started
        per_row = [
            _slo(
                served.store_seconds + row.seconds,
                served.store_seconds + row.seconds - row.transform_seconds,
                served.store_seconds,
                served.store_bytes,
            )
            for row in rows
        ]
        metadata["sloInfo"] = per_row
        metadata["batchSloInfo"] = {
            "sloEligible": True,
            "sloServerTimeSeconds": max(s["sloServerTimeSeconds"] for s in per_row),
            "serverTimeSeconds": round(elapsed, 9),
            "storeMaxLatency": round(served.store_seconds, 9),
        }
    body["metadata"] = metadata
    return body
