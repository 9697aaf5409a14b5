"""`explain`: per feature of a get-features request, the value and status it would get now, why.

It follows the serving path's rules (same validation and messages, same ttl test, same cache
keys) but only reads: nothing is written to the feature-service cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.aggregation import AggregateFeature, AggregationSpec, Event
from app.aggregation.durations import from_us, human_readable, to_us
from app.emulator.clock import ClockState
from app.repo.definitions import format_duration
from app.serving.assembly import _run_transform, aggregate_values, store_lookup
from app.serving.cache import FeatureCacheEntry, FeatureCacheKey, ServingState
from app.serving.model import OutputFeature, RequestInput, ResolvedService, StoreRead, ViewOutput
from app.serving.params import FeaturesRequest
from app.serving.statuses import CACHED, StoredStatus
from app.serving.validation import join_key_parts, request_context, store_key
from app.store import OnlineStore, StoreResult
from app.types import (
    ValueTypeError,
    coerce_value,
    decode_value,
    encode_value,
    format_timestamp,
    parse_type,
)

CachePeek = Callable[[FeatureCacheKey], FeatureCacheEntry | None]
PRESENT: StoredStatus = "PRESENT"
MISSING_DATA: StoredStatus = "MISSING_DATA"
EVENTS_SHOWN = 100  # events listed per aggregate feature (all are counted)
EVENTS_READ = 10_000  # events read per aggregate view and entity for the explanation


@dataclass(frozen=True, slots=True)
class ReadFacts:
    """What the store holds for one view and entity, judged against `now`."""

    read: StoreRead
    entity_key: str | None
    event_time: datetime | None
    features: dict[str, Any] | None
    now: datetime

    @property
    def found(self) -> bool:
        return self.event_time is not None

    @property
    def deadline(self) -> datetime | None:
        if self.event_time is None or self.read.ttl_seconds is None:
            return None
        return self.event_time + timedelta(seconds=self.read.ttl_seconds)

    @property
    def fresh(self) -> bool:
        deadline = self.deadline
        return self.found and (deadline is None or deadline >= self.now)

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "featureView": self.read.view_name,
            "entityKey": self.entity_key,
            "rowFound": self.found,
        }
        if self.event_time is not None:
            out["eventTime"] = format_timestamp(self.event_time)
        out["ttl"] = format_duration(self.read.ttl_seconds)
        if self.deadline is not None:
            out["ttlDeadline"] = format_timestamp(self.deadline)
        if self.found:
            out["expired"] = not self.fresh
        return out

    def reason(self) -> str:
        view = self.read.view_name
        if self.entity_key is None:
            nulls = ", ".join(self.read.key_names)
            return f"a join key of {view} ({nulls}) is null, so no row can match"
        if not self.found:
            return f"no row for entity key {self.entity_key} in {view}"
        event = format_timestamp(self.event_time)  # type: ignore[arg-type]
        if self.deadline is None:
            return f"row found in {view} with event time {event}; the view has no ttl"
        ttl = format_duration(self.read.ttl_seconds)
        deadline, now = format_timestamp(self.deadline), format_timestamp(self.now)
        if self.fresh:
            return (
                f"row found in {view} with event time {event}, within its ttl of {ttl} "
                f"until {deadline} (now {now})"
            )
        return (
            f"row found in {view} with event time {event}, but its ttl of {ttl} ran out "
            f"at {deadline} (now {now})"
        )


@dataclass(frozen=True, slots=True)
class AggregateFacts:
    """An aggregate view's values for one entity at `now`, and the events behind them."""

    read: StoreRead
    entity_key: str | None
    now: datetime
    values: dict[str, tuple[Any, bool]]  # feature → (Python value, window held values)
    tiles: dict[str, int]  # feature → stored tiles its window folded
    events: list[Event]  # the entity's events that any window may hold, newest first
    events_complete: bool  # False when more events than EVENTS_READ lie in the windows

    @classmethod
    def of(
        cls,
        read: StoreRead,
        key: str | None,
        result: StoreResult,
        store: OnlineStore,
        now: datetime,
    ) -> AggregateFacts:
        spec = read.aggregation
        assert spec is not None  # noqa: S101 (callers check)
        values = aggregate_values(read, key, result, now)
        reads = spec.window_reads(now)
        tiles: dict[str, int] = {}
        events: list[Event] = []
        if key is not None:
            stored_tiles = result.tiles.get((read.feature_view_id, key), [])
            for feature in spec.features:
                window = reads[feature.name]
                tiles[feature.name] = sum(
                    1
                    for start, tile in stored_tiles
                    if feature.partial_key in tile and window.has_tile(start)
                )
            lowest = [w.events.start for w in reads.values()]
            lower = None if None in lowest else min(s for s in lowest if s is not None)
            upper = max(w.events.end for w in reads.values())
            events = store.read_events(
                read.feature_view_id,
                key,
                None if lower is None else from_us(lower),
                from_us(upper),
                EVENTS_READ + 1,
            )
        complete = len(events) <= EVENTS_READ
        return cls(read, key, now, values, tiles, events[:EVENTS_READ], complete)

    @property
    def spec(self) -> AggregationSpec:
        assert self.read.aggregation is not None  # noqa: S101 (built for aggregate views)
        return self.read.aggregation

    def python_values(self) -> dict[str, Any]:
        return {name: value for name, (value, _) in self.values.items()}

    def input_description(self) -> dict[str, Any]:
        """How a realtime view's input from this aggregate view looks."""
        present = any(p for _, p in self.values.values())
        return {
            "status": PRESENT if present else MISSING_DATA,
            "features": {
                f.name: encode_value(parse_type(f.output_type), self.values[f.name][0])
                for f in self.spec.features
            },
            "featureView": self.read.view_name,
            "entityKey": self.entity_key,
            "reason": f"aggregates of {self.read.view_name}'s events at {_ts(self.now)}",
        }

    def feature(self, output: OutputFeature, coerce_counts: bool) -> dict[str, Any]:
        """The explanation fields of one served aggregate feature."""
        spec = self.spec
        feature = next(f for f in spec.features if f.name == output.feature)
        value, present = self.values.get(feature.name, (None, False))
        coerced = not present and coerce_counts and feature.function.is_count
        if coerced:
            value = 0
        window = spec.window_reads(self.now)[feature.name]
        bounds = window.events
        in_window = [e for e in self.events if bounds.contains(to_us(e.timestamp))]
        with_value = [e for e in in_window if e.values.get(feature.column) is not None]
        column_type = parse_type(feature.input_type)
        start = "-∞" if bounds.start is None else _ts(from_us(bounds.start))
        end = _ts(from_us(bounds.end))
        shown = f"({start}, {end}]" if bounds.closed_end else f"[{start}, {end})"
        aggregation: dict[str, Any] = {
            "function": feature.function.spelling,
            "column": feature.column,
            "mode": spec.mode,
            "interval": human_readable(spec.interval_us) if spec.interval_us else None,
            "window": _window_text(feature),
            "windowStart": None if bounds.start is None else _ts(from_us(bounds.start)),
            "windowEnd": end,
            "windowBounds": shown,
            "effectiveTime": _ts(spec.effective_time(self.now)),
            "tilesRead": self.tiles.get(feature.name, 0),
            "eventCount": len(in_window),
            "eventsWithValue": len(with_value),
            "events": [
                {
                    "timestamp": _ts(e.timestamp),
                    "value": encode_value(column_type, e.values.get(feature.column)),
                }
                for e in in_window[:EVENTS_SHOWN]
            ],
        }
        if not self.events_complete:
            aggregation["note"] = f"only the newest {EVENTS_READ} events were read"
        if self.entity_key is None:
            nulls = ", ".join(self.read.key_names)
            reason = f"a join key of {self.read.view_name} ({nulls}) is null, so no event can match"
        elif present:
            reason = (
                f"{feature.function.spelling} of {len(with_value)} value(s) of "
                f"{feature.column} from {len(in_window)} event(s) in {shown}"
            )
        elif coerced:
            reason = f"no event in {shown}; coerceNullCountsToZero gives 0"
        else:
            reason = f"no value of {feature.column} in {shown}" + (
                f" ({len(in_window)} event(s), all null)" if in_window else ""
            )
        if spec.mode == "time_interval":
            reason += f"; complete {aggregation['interval']} tiles only (now {_ts(self.now)})"
        else:
            reason += f"; continuous window ending at now ({_ts(self.now)})"
        return {
            "value": encode_value(output.type, value),
            "status": PRESENT if present or coerced else MISSING_DATA,
            "source": "store",
            "featureView": self.read.view_name,
            "entityKey": self.entity_key,
            "reason": reason,
            "aggregation": aggregation,
        }


def _ts(moment: datetime) -> str:
    return format_timestamp(moment)


def _window_text(feature: AggregateFeature) -> str:
    window = feature.window
    if window.size_us is None:
        return "lifetime"
    text = human_readable(window.size_us)
    if window.offset_us:
        text += f", offset -{human_readable(window.offset_us)}"
    return text


def explain(
    resolved: ResolvedService,
    request: FeaturesRequest,
    clock: ClockState,
    store: OnlineStore,
    state: ServingState,
    cache_peek: CachePeek | None,
) -> dict[str, Any]:
    """The explanation body; raises BadRequest exactly where get-features would.

    `state` compiles the realtime transforms; `cache_peek` (None: the cache is not visible, as
    from the CLI) shows this process's feature-cache entries."""
    now = clock.now()
    row = request.rows[0]
    parts = join_key_parts(resolved, row)
    context = request_context(resolved, row, request.options.ignore_extra_request_context_fields)
    keys = [store_key(read, parts) for read in resolved.reads]
    wanted = {(r.feature_view_id, k) for r, k in zip(resolved.reads, keys, strict=True) if k}
    result = (
        store.read_rows(store_lookup(resolved, set(range(len(resolved.reads))), wanted, now))
        if wanted
        else StoreResult({})
    )
    stored = result.values
    facts = []
    aggregates: dict[int, AggregateFacts] = {}
    for index, (read, key) in enumerate(zip(resolved.reads, keys, strict=True)):
        hit = stored.get((read.feature_view_id, key)) if key else None
        facts.append(
            ReadFacts(
                read,
                key,
                hit.event_time if hit else None,
                hit.features if hit else None,
                now,
            )
        )
        if read.aggregation is not None:
            aggregates[index] = AggregateFacts.of(read, key, result, store, now)

    items: list[dict[str, Any]] = []
    for realtime in resolved.realtime:
        inputs: list[dict[str, Any]] = []
        described: dict[str, Any] = {}
        for source in realtime.inputs:
            if isinstance(source, RequestInput):
                inputs.append({f.name: context[f.name] for f in source.fields})
                described["request"] = {
                    f.name: encode_value(f.type, context[f.name]) for f in source.fields
                }
                continue
            if source.read in aggregates:
                facts_of = aggregates[source.read]
                inputs.append(facts_of.python_values())
                described[facts_of.read.view_name] = facts_of.input_description()
                continue
            fact = facts[source.read]
            values = fact.features if fact.fresh and fact.features is not None else {}
            inputs.append(
                {n: decode_value(t, values.get(n)) for n, t in fact.read.feature_types.items()}
            )
            described[fact.read.view_name] = {
                "status": PRESENT if fact.fresh else MISSING_DATA,
                "features": {n: values.get(n) for n in fact.read.feature_types},
                "reason": fact.reason(),
                **fact.fields(),
            }
        output = _run_transform(state, realtime, inputs)
        for feature in realtime.features:
            try:
                coerced = coerce_value(feature.type, output.get(feature.feature))
                value = encode_value(feature.type, coerced)
            except ValueTypeError as exc:
                value = f"invalid output: {exc}"
            items.append(
                {
                    "name": feature.name,
                    "value": value,
                    "status": PRESENT,
                    "source": "realtime",
                    "featureView": realtime.view_name,
                    "reason": f"computed by realtime view {realtime.view_name} from its inputs",
                    "inputs": described,
                }
            )
    for view in resolved.views:
        items.extend(
            _view_features(
                resolved,
                request,
                view,
                facts[view.read],
                now,
                cache_peek,
                aggregates.get(view.read),
            )
        )
    return {
        "workspace": resolved.workspace,
        "featureService": resolved.name,
        "now": format_timestamp(now),
        "frozen": clock.frozen,
        "features": items,
    }


def _view_features(
    resolved: ResolvedService,
    request: FeaturesRequest,
    view: ViewOutput,
    fact: ReadFacts,
    now: datetime,
    cache_peek: CachePeek | None,
    aggregate: AggregateFacts | None = None,
) -> list[dict[str, Any]]:
    cache: dict[str, Any] | None = None
    cached: tuple[list[Any], StoredStatus] | None = None
    if resolved.enable_online_caching and view.cache_max_age_seconds:
        cache = {"maxAgeSeconds": view.cache_max_age_seconds}
        if not request.options.read_from_cache:
            cache["note"] = "readFromCache is false: the cache is not consulted"
        elif fact.entity_key is None:
            cache["note"] = "no entity key: the cache is not consulted"
        elif cache_peek is None:
            cache["note"] = "each server process has its own cache; the CLI cannot see it"
        else:
            entry = cache_peek((resolved.workspace, resolved.name, view.namespace, fact.entity_key))
            if entry is None:
                cache["entry"] = False
            else:
                cache.update(
                    entry=True,
                    ageSeconds=round((now - entry.stored_at).total_seconds(), 3),
                    expired=entry.expires_at < now,
                )
                if entry.expires_at >= now:
                    cached = (entry.values, entry.status)
    items = []
    for index, feature in enumerate(view.features):
        item: dict[str, Any] = {"name": feature.name}
        if cached is not None:
            item.update(value=cached[0][index], status=CACHED[cached[1]], source="cache")
            age = cache["ageSeconds"] if cache else 0
            item["reason"] = (
                f"served from this process's feature-service cache, stored {age} s ago "
                f"(max age {view.cache_max_age_seconds} s)"
            )
        elif aggregate is not None:
            item.update(aggregate.feature(feature, request.options.coerce_null_counts_to_zero))
            if cache is not None:
                item["cache"] = cache
            items.append(item)
            continue
        elif fact.fresh and fact.features is not None:
            item.update(value=fact.features.get(feature.feature), status=PRESENT, source="store")
            item["reason"] = fact.reason()
        else:
            item.update(value=None, status=MISSING_DATA, source="store")
            item["reason"] = fact.reason()
        item.update(fact.fields())
        if cache is not None:
            item["cache"] = cache
        items.append(item)
    return items
