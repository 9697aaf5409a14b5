"""Computes feature vectors for a resolved service: validation, one store read, assembly.

The whole request (one row or a batch of ten, every view of the service) is served by one
statement over the online store's primary key, on an autocommit connection (no BEGIN/ROLLBACK).
Stored values are already in wire encoding, so assembling the response copies them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app import deadline
from app.errors import BadRequest
from app.observability import note_transform_error
from app.repo.transforms import TransformError, describe_exception
from app.serving import clock
from app.serving.cache import ServingState
from app.serving.model import (
    OutputFeature,
    RealtimeOutput,
    ResolvedService,
    StoredInput,
    StoreRead,
)
from app.serving.params import FeaturesRequest
from app.serving.statuses import CACHED, ServingStatus, StoredStatus
from app.serving.validation import join_key_parts, request_context, store_key
from app.store import Lookup, OnlineStore, StoredRow, StoreResult, TimeRange
from app.types import ValueTypeError, coerce_value, decode_value, encode_value


@dataclass(slots=True)
class RowResult:
    values: list[Any]
    statuses: list[ServingStatus]
    effective_times: list[datetime | None]
    seconds: float  # time spent assembling this row (plus its transforms)
    transform_seconds: float


@dataclass(slots=True)
class Served:
    rows: list[RowResult]
    store_seconds: float
    store_bytes: int
    cache_hits: int = 0  # feature-cache lookups (one per cached view and row) that found values
    cache_misses: int = 0


def serve(
    resolved: ResolvedService, request: FeaturesRequest, state: ServingState, store: OnlineStore
) -> Served:
    """Validate every row, read the store once, and assemble each row's feature vector."""
    now = clock.now()  # the one "now" of this request: ttl, windows and the feature cache
    key_parts = [join_key_parts(resolved, row) for row in request.rows]
    contexts = [
        request_context(resolved, row, request.options.ignore_extra_request_context_fields)
        for row in request.rows
    ]
    store_keys = [[store_key(read, parts) for read in resolved.reads] for parts in key_parts]

    use_cache = resolved.enable_online_caching
    cached: list[dict[int, tuple[list[Any], StoredStatus]]] = [{} for _ in request.rows]
    needed_reads: set[int] = {
        source.read
        for realtime in resolved.realtime
        for source in realtime.inputs
        if isinstance(source, StoredInput)
    }
    cache_hits = cache_misses = 0
    for index, view in enumerate(resolved.views):
        for row_index, keys in enumerate(store_keys):
            hit = None
            if use_cache and view.cache_max_age_seconds and request.options.read_from_cache:
                key = keys[view.read]
                if key is not None:
                    hit = state.features.get(
                        (resolved.workspace, resolved.name, view.namespace, key), now
                    )
                if hit is None:
                    cache_misses += 1
                else:
                    cache_hits += 1
            if hit is not None:
                cached[row_index][index] = hit
            else:
                needed_reads.add(view.read)

    wanted: set[tuple[int, str]] = set()
    for keys in store_keys:
        for read in needed_reads:
            key = keys[read]
            if key is not None:
                wanted.add((resolved.reads[read].feature_view_id, key))
    stored = StoreResult({})
    store_seconds = 0.0
    store_bytes = 0
    if wanted:
        started = time.perf_counter()
        stored = store.read_rows(store_lookup(resolved, needed_reads, wanted, now))
        store_seconds = time.perf_counter() - started
        if stored.values and request.metadata.slo_info:
            store_bytes = stored.response_bytes(sorted(wanted))

    def assemble() -> list[RowResult]:
        try:
            return [
                _assemble(
                    resolved, request, state, store_keys[i], contexts[i], cached[i], stored, now
                )
                for i in range(len(request.rows))
            ]
        except Exception:
            raise
        except BaseException as exc:  # only user code raises these: SystemExit, ...
            raise TransformFailed(
                f"{describe_exception(exc)} (when evaluating a realtime transform's output)"
            ) from None

    if resolved.realtime:
        # User code: off the request thread, given up on at the request's deadline (504).
        try:
            rows = state.pool.run(assemble, deadline.current())
        except TransformFailed:
            note_transform_error(resolved.workspace)
            raise
    else:
        rows = assemble()
    return Served(rows, store_seconds, store_bytes, cache_hits, cache_misses)


def store_lookup(
    resolved: ResolvedService, needed_reads: set[int], wanted: set[tuple[int, str]], now: datetime
) -> Lookup:
    """The one-statement lookup of the reads `needed_reads` (indexes into `resolved.reads`)
    for the (view id, entity key) pairs `wanted`: plain views' rows, aggregate views' tiles
    and raw events at `now`."""
    tile_ranges: list[TimeRange] = []
    event_ranges: list[TimeRange] = []
    planned: set[int] = set()
    for index in sorted(needed_reads):
        read = resolved.reads[index]
        if read.aggregation is None or read.feature_view_id in planned:
            continue
        planned.add(read.feature_view_id)
        plan = read.aggregation.read_plan(now)
        tile_ranges.append(TimeRange(read.feature_view_id, plan.tiles_from, plan.tiles_before))
        event_ranges.extend(TimeRange(read.feature_view_id, a, b) for a, b in plan.raw_ranges)
    return Lookup.of_pairs(wanted, tile_ranges, event_ranges)


def aggregate_values(
    read: StoreRead, key: str | None, stored: StoreResult, now: datetime
) -> dict[str, tuple[Any, bool]]:
    """An aggregate view's features at `now` for one entity: (value, window had values)."""
    assert read.aggregation is not None  # noqa: S101 (callers check)
    if key is None:
        return dict.fromkeys(read.feature_types, (None, False))
    pair = (read.feature_view_id, key)
    return read.aggregation.evaluate(now, stored.tiles.get(pair, ()), stored.events.get(pair, ()))


def _fresh(read: StoreRead, row: StoredRow | None, now: datetime) -> StoredRow | None:
    """`row` if it is within the view's ttl, else None."""
    if row is None:
        return None
    if read.ttl_seconds is None or row.event_time >= now - timedelta(seconds=read.ttl_seconds):
        return row
    return None


def _assemble(
    resolved: ResolvedService,
    request: FeaturesRequest,
    state: ServingState,
    keys: list[str | None],
    context: dict[str, Any],
    cached: dict[int, tuple[list[Any], StoredStatus]],
    stored: StoreResult,
    now: datetime,
) -> RowResult:
    started = time.perf_counter()
    values: list[Any] = []
    statuses: list[ServingStatus] = []
    effective: list[datetime | None] = []

    def stored_row(read_index: int) -> StoredRow | None:
        key = keys[read_index]
        if key is None:
            return None
        return stored.values.get((resolved.reads[read_index].feature_view_id, key))

    computed: dict[int, dict[str, tuple[Any, bool]]] = {}

    def aggregates(read_index: int) -> dict[str, tuple[Any, bool]]:
        if read_index not in computed:
            read = resolved.reads[read_index]
            computed[read_index] = aggregate_values(read, keys[read_index], stored, now)
        return computed[read_index]

    transform_seconds = 0.0
    for realtime in resolved.realtime:
        inputs: list[dict[str, Any]] = []
        for source in realtime.inputs:
            if not isinstance(source, StoredInput):
                inputs.append({f.name: context[f.name] for f in source.fields})
                continue
            read = resolved.reads[source.read]
            if read.aggregation is not None:
                inputs.append({name: v for name, (v, _) in aggregates(source.read).items()})
                continue
            fresh = _fresh(read, stored_row(source.read), now)
            features = fresh.features if fresh is not None else {}
            inputs.append(
                {
                    name: decode_value(t, features.get(name))
                    for name, t in read.feature_types.items()
                }
            )
        transform_started = time.perf_counter()
        output = _run_transform(state, realtime, inputs)
        transform_seconds += time.perf_counter() - transform_started
        for feature in realtime.features:
            try:
                value = encode_value(
                    feature.type, coerce_value(feature.type, output.get(feature.feature))
                )
            except ValueTypeError as exc:
                raise TransformFailed(
                    f"TypeError: output {feature.feature!r}: {exc} "
                    f"(when evaluating UDF {realtime.view_name})"
                ) from None
            except Exception as exc:  # a returned object's own methods (__float__, ...) raised
                raise TransformFailed(
                    f"{describe_exception(exc)} (output {feature.feature!r} of UDF "
                    f"{realtime.view_name})"
                ) from None
            values.append(value)
            statuses.append("PRESENT")
            effective.append(None)

    for index, view in enumerate(resolved.views):
        hit = cached.get(index)
        if hit is not None:
            values.extend(hit[0])
            statuses.extend([CACHED[hit[1]]] * len(view.features))
            effective.extend([None] * len(view.features))
            continue
        read = resolved.reads[view.read]
        status: StoredStatus
        if read.aggregation is not None:
            view_values, status = _aggregate_outputs(
                read,
                view.features,
                aggregates(view.read),
                request,
                now,
                values,
                statuses,
                effective,
            )
        else:
            row = stored_row(view.read)
            fresh = _fresh(read, row, now)
            if fresh is not None:
                view_values = [fresh.features.get(f.feature) for f in view.features]
                status = "PRESENT"
            else:
                view_values = [None] * len(view.features)
                status = "MISSING_DATA"
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
            state.features.put(
                (resolved.workspace, resolved.name, view.namespace, key),
                view.cache_max_age_seconds,
                view_values,
                status,
                now,
            )
    return RowResult(values, statuses, effective, time.perf_counter() - started, transform_seconds)


def _aggregate_outputs(
    read: StoreRead,
    features: tuple[OutputFeature, ...],
    computed: dict[str, tuple[Any, bool]],
    request: FeaturesRequest,
    now: datetime,
    values: list[Any],
    statuses: list[ServingStatus],
    effective: list[datetime | None],
) -> tuple[list[Any], StoredStatus]:
    """An aggregate view's part of a row: an empty window (no value of the column) is null and
    MISSING_DATA (a count with `coerceNullCountsToZero`: "0" and PRESENT); a window with values
    is PRESENT, even when its result is null (var_samp of one value); `effectiveTime` is the
    view's, for every feature (reference §4.4).

    Returns the view's wire values and the one status the feature cache keeps for them (Tecton
    caches a view's features together): PRESENT when any window held values."""
    assert read.aggregation is not None  # noqa: S101 (callers check)
    coerce = request.options.coerce_null_counts_to_zero
    counts = read.count_features if coerce else frozenset()
    at = read.aggregation.effective_time(now)
    view_values: list[Any] = []
    any_present = False
    for feature in features:
        value, present = computed.get(feature.feature, (None, False))
        if not present and feature.feature in counts:
            value, present = 0, True
        view_values.append(encode_value(feature.type, value))
        statuses.append("PRESENT" if present else "MISSING_DATA")
        effective.append(at)
        any_present = any_present or present
    values.extend(view_values)
    return view_values, "PRESENT" if any_present else "MISSING_DATA"


class TransformFailed(BadRequest):
    """A realtime transform raised, or returned something unusable (400, Tecton's message)."""


def _run_transform(
    state: ServingState, realtime: RealtimeOutput, inputs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The transform's output as a plain dict; TransformFailed for whatever it raised (even
    SystemExit or KeyboardInterrupt: nothing the user's code does may end the process)."""
    label = realtime.view_name
    try:
        function = state.transforms.compiled(
            realtime.transform_source, realtime.transform_function, label, state.pool.user_code
        )
        with state.pool.user_code():
            output = function(*inputs)
            if isinstance(output, dict):
                output = dict(output)  # a dict subclass's own methods run here, not later
    except TransformError as exc:
        raise TransformFailed(f"TransformError: {exc} (when evaluating UDF {label})") from None
    except BaseException as exc:  # the user's code may raise anything; Tecton answers 400
        raise TransformFailed(f"{describe_exception(exc)} (when evaluating UDF {label})") from None
    if not isinstance(output, dict):
        raise TransformFailed(
            f"TypeError: the transform returned {type(output).__name__}, expected a dict "
            f"(when evaluating UDF {label})"
        )
    return output
