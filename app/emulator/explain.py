"""`explain`: per feature of a get-features request, the value and status it would get now, why.

It follows the serving path's rules (same validation and messages, same ttl test, same cache
keys) but only reads: nothing is written to the feature-service cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.emulator.clock import ClockState
from app.repo.definitions import format_duration
from app.serving.assembly import _run_transform
from app.serving.cache import FeatureCacheEntry, FeatureCacheKey, ServingState
from app.serving.model import RequestInput, ResolvedService, StoreRead, ViewOutput
from app.serving.params import FeaturesRequest
from app.serving.statuses import CACHED, StoredStatus
from app.serving.validation import join_key_parts, request_context, store_key
from app.store import Lookup, OnlineStore
from app.types import ValueTypeError, coerce_value, decode_value, encode_value, format_timestamp

CachePeek = Callable[[FeatureCacheKey], FeatureCacheEntry | None]
PRESENT: StoredStatus = "PRESENT"
MISSING_DATA: StoredStatus = "MISSING_DATA"


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
    stored = store.read_rows(Lookup.of_pairs(wanted)).values if wanted else {}
    facts = []
    for read, key in zip(resolved.reads, keys, strict=True):
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
        items.extend(_view_features(resolved, request, view, facts[view.read], now, cache_peek))
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
