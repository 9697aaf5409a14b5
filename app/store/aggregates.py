"""Writing events into an aggregate view: each event is kept (aggregation_events) and folded
into its tile's partial aggregates (aggregation_tiles), in the caller's transaction.

One call per view and request (or bulk-load chunk), a few set-based statements whatever the
number of events:
1. sequence numbers for the events (they order events ingested at the same instant);
2. continuous mode only: the stored events with the same key and timestamp are deleted (last
   write wins) and their tiles marked for a rebuild;
3. the events are inserted;
4. every affected tile is created or locked, in primary-key order (so concurrent writers cannot
   deadlock), by one `INSERT … ON CONFLICT DO UPDATE … RETURNING` that hands back the tile's
   current partials: a tile nobody has yet is created empty and locked by the same statement;
5. tiles to rebuild re-read their events; each affected tile is merged once in Python
   (`AggregationSpec.merge_into_tile`) and written back by one UPDATE.

So a 100-record request touches each of its tiles once. Nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from app.aggregation import CONTINUOUS, AggregationSpec, Event
from app.aggregation.partials import decode_value, encode_value


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event for an aggregate view: the entity, the event time and the values of the
    columns the view aggregates (Python values as the push source types them; None for null)."""

    entity_key: str
    timestamp: datetime
    values: dict[str, Any]


_SEQUENCES = text("SELECT nextval('aggregation_event_sequence') FROM generate_series(1, :n)")

_DELETE_REPLACED = text(
    """
DELETE FROM aggregation_events AS e
 USING unnest(CAST(:entity_keys AS text[]), CAST(:event_times AS timestamptz[])) AS r(k, t)
 WHERE e.feature_view_id = :feature_view_id AND e.entity_key = r.k AND e.event_time = r.t
RETURNING e.entity_key, e.event_time
"""
)

_INSERT_EVENTS = text(
    """
INSERT INTO aggregation_events (feature_view_id, entity_key, event_time, sequence, "values")
SELECT :feature_view_id, r.k, r.t, r.s, r.v::jsonb
  FROM unnest(CAST(:entity_keys AS text[]), CAST(:event_times AS timestamptz[]),
              CAST(:sequences AS bigint[]), CAST(:values AS text[])) AS r(k, t, s, v)
"""
)

_LOCK_TILES = text(
    """
INSERT INTO aggregation_tiles (feature_view_id, entity_key, tile_start, partials)
SELECT :feature_view_id, r.k, r.s, '{}'::jsonb
  FROM unnest(CAST(:entity_keys AS text[]), CAST(:tile_starts AS timestamptz[])) AS r(k, s)
 ORDER BY r.k COLLATE "C", r.s
ON CONFLICT (feature_view_id, entity_key, tile_start)
   DO UPDATE SET partials = aggregation_tiles.partials
RETURNING entity_key, tile_start, partials
"""
)

_TILE_EVENTS = text(
    """
SELECT e.entity_key, r.s, e.event_time, e.sequence, e."values"
  FROM unnest(CAST(:entity_keys AS text[]), CAST(:tile_starts AS timestamptz[]),
              CAST(:tile_ends AS timestamptz[])) AS r(k, s, x)
  JOIN aggregation_events AS e
    ON e.feature_view_id = :feature_view_id AND e.entity_key = r.k
   AND e.event_time >= r.s AND e.event_time < r.x
"""
)

_UPDATE_TILES = text(
    """
UPDATE aggregation_tiles AS t SET partials = r.p::jsonb
  FROM unnest(CAST(:entity_keys AS text[]), CAST(:tile_starts AS timestamptz[]),
              CAST(:partials AS text[])) AS r(k, s, p)
 WHERE t.feature_view_id = :feature_view_id AND t.entity_key = r.k AND t.tile_start = r.s
"""
)

TileKey = tuple[str, datetime]


def add_events(
    connection: Connection | Session,
    feature_view_id: int,
    spec: AggregationSpec,
    rows: Sequence[EventRow],
) -> int:
    """Store `rows` (in ingestion order) and fold them into their tiles; return how many."""
    if not rows:
        return 0
    if spec.mode == CONTINUOUS:
        rows = _last_per_instant(rows)
    sequences = sorted(connection.execute(_SEQUENCES, {"n": len(rows)}).scalars())
    columns = sorted({f.column for f in spec.features})
    events: dict[TileKey, list[Event]] = defaultdict(list)
    for row, sequence in zip(rows, sequences, strict=True):
        event = Event(row.timestamp, sequence, row.values)
        events[(row.entity_key, spec.tile_start(row.timestamp))].append(event)

    rebuild: set[TileKey] = set()
    if spec.mode == CONTINUOUS:
        replaced = connection.execute(
            _DELETE_REPLACED,
            {
                "feature_view_id": feature_view_id,
                "entity_keys": [r.entity_key for r in rows],
                "event_times": [r.timestamp for r in rows],
            },
        )
        rebuild = {(key, spec.tile_start(at)) for key, at in replaced}

    connection.execute(
        _INSERT_EVENTS,
        {
            "feature_view_id": feature_view_id,
            "entity_keys": [r.entity_key for r in rows],
            "event_times": [r.timestamp for r in rows],
            "sequences": sequences,
            "values": [_values_json(r.values, columns) for r in rows],
        },
    )

    tiles = sorted(events)
    locked = connection.execute(
        _LOCK_TILES,
        {
            "feature_view_id": feature_view_id,
            "entity_keys": [k for k, _ in tiles],
            "tile_starts": [s for _, s in tiles],
        },
    )
    stored: dict[TileKey, dict[str, Any]] = {(k, s): p for k, s, p in locked}

    merged: dict[TileKey, dict[str, Any]] = {}
    if rebuild:
        merged.update(_rebuilt(connection, feature_view_id, spec, sorted(rebuild)))
    for tile in tiles:
        if tile not in rebuild:
            merged[tile] = spec.merge_into_tile(stored.get(tile) or None, events[tile])
    order = sorted(merged)
    connection.execute(
        _UPDATE_TILES,
        {
            "feature_view_id": feature_view_id,
            "entity_keys": [k for k, _ in order],
            "tile_starts": [s for _, s in order],
            "partials": [orjson.dumps(merged[t]).decode() for t in order],
        },
    )
    return len(rows)


def _last_per_instant(rows: Sequence[EventRow]) -> list[EventRow]:
    """Continuous mode: of records with the same key and timestamp, the last one."""
    kept: dict[tuple[str, datetime], EventRow] = {}
    for row in rows:
        kept.pop((row.entity_key, row.timestamp), None)
        kept[(row.entity_key, row.timestamp)] = row
    return list(kept.values())


def _rebuilt(
    connection: Connection | Session,
    feature_view_id: int,
    spec: AggregationSpec,
    tiles: list[TileKey],
) -> dict[TileKey, dict[str, Any]]:
    """Tiles recomputed from every event they now hold (after a replacement)."""
    size = timedelta(microseconds=spec.tile_us)
    found = connection.execute(
        _TILE_EVENTS,
        {
            "feature_view_id": feature_view_id,
            "entity_keys": [k for k, _ in tiles],
            "tile_starts": [s for _, s in tiles],
            "tile_ends": [s + size for _, s in tiles],
        },
    )
    events: dict[TileKey, list[Event]] = defaultdict(list)
    for key, start, at, sequence, values in found:
        events[(key, start)].append(Event(at, sequence, decoded_values(values)))
    return {tile: spec.merge_into_tile(None, events[tile]) for tile in tiles}


def _values_json(values: dict[str, Any], columns: list[str]) -> str:
    return orjson.dumps({c: encode_value(values.get(c)) for c in columns}).decode()


def decoded_values(stored: dict[str, Any]) -> dict[str, Any]:
    """An event's stored values back to Python (non-finite floats are tagged in JSON)."""
    return {column: decode_value(value) for column, value in stored.items()}
