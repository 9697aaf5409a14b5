"""Building aggregation specs and events for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.aggregation import AggregationSpec, Event, build_aggregation

COLUMNS = {
    "amt": "Float64",
    "qty": "Int64",
    "small": "Int32",
    "f32": "Float32",
    "merchant": "String",
    "flag": "Bool",
    "tags": "Array(String)",
    "ts": "Timestamp",
}


def at(text: str) -> datetime:
    """`2024-07-29T13:05:00` (UTC) → datetime; fractional seconds allowed."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spec_of(
    features: list[dict[str, Any]], interval: str | None = "1h", mode: str | None = None
) -> AggregationSpec:
    spec, _, problems = build_aggregation(interval, mode, features, COLUMNS)
    assert problems == [] and spec is not None, problems
    return spec


def events(*rows: tuple[str, dict[str, Any]]) -> list[Event]:
    """Events in ingestion order: (timestamp, values) → sequence 0, 1, 2, ..."""
    return [Event(at(ts), i, values) for i, (ts, values) in enumerate(rows)]


def tiles_of(spec: AggregationSpec, evs: list[Event]) -> list[tuple[datetime, dict[str, Any]]]:
    """Fold events into their tiles, one event at a time, as ingest would."""
    tiles: dict[datetime, dict[str, Any]] = {}
    for event in evs:
        start = spec.tile_start(event.timestamp)
        tiles[start] = spec.merge_into_tile(tiles.get(start), [event])
    return sorted(tiles.items())


def read(spec: AggregationSpec, now: str, evs: list[Event]) -> dict[str, Any]:
    """Values at `now` from tiles only (time_interval) or tiles + raw ends (continuous)."""
    return spec.compute(at(now), tiles_of(spec, evs), evs)
