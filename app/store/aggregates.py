"""Writing events into an aggregate view: each event is kept (aggregation_events) and folded
into its tile's partial aggregates (aggregation_tiles), in the caller's transaction.

One call per view and request (or bulk-load chunk), two set-based statements whatever the
number of events (three in continuous mode):
1. continuous mode only: the stored events with the same key and timestamp are deleted (last
   write wins) and their tiles marked for a rebuild;
2. the events are inserted, with sequence numbers that order events ingested at the same
   instant, and, in the same statement, every affected tile is created or locked, in
   primary-key order (so concurrent writers cannot deadlock), by an `INSERT … ON CONFLICT DO
   UPDATE … RETURNING` that hands back the tile's current partials: a tile nobody has yet is
   created empty and locked by the same statement;
3. each affected tile is merged once in Python (`AggregationSpec.merge_into_tile`; tiles to
   rebuild re-read their events first) and written back by one UPDATE.

So a 100-record request touches each of its tiles once. Nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection
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


# Statements run on the driver connection with psycopg's prepared statements (SQLAlchemy's
# compilation and parameter conversion cost more than the statements themselves here).
# Sequence numbers: one nextval per call, times 2^20, plus the event's index in the call, so
# they grow with ingestion order across calls and need no round trip of their own.
SEQUENCE_BLOCK = 1 << 20

_DELETE_REPLACED = """
DELETE FROM aggregation_events AS e
 USING unnest(%(keys)b::text[], %(times)b::timestamptz[]) AS r(k, t)
 WHERE e.feature_view_id = %(view)b AND e.entity_key = r.k AND e.event_time = r.t
RETURNING e.entity_key, e.event_time
"""

# The events are inserted and their tiles created or locked by one statement (one round trip
# less per request than two: on a busy machine each round trip waits for a core). `block` is
# referenced twice, so it runs once.
_INSERT_EVENTS_AND_LOCK_TILES = """
WITH block AS (SELECT nextval('aggregation_event_sequence') * 1048576 AS base),
     inserted AS (
       INSERT INTO aggregation_events
              (feature_view_id, entity_key, event_time, sequence, "values")
       SELECT %(view)b, r.k, r.t, block.base + r.i, r.v::jsonb
         FROM block, unnest(%(keys)b::text[], %(times)b::timestamptz[], %(indexes)b::bigint[],
                            %(values)b::text[]) AS r(k, t, i, v)
     ),
     locked AS (
       INSERT INTO aggregation_tiles (feature_view_id, entity_key, tile_start, partials)
       SELECT %(view)b, r.k, r.s, '{}'::jsonb
         FROM unnest(%(tile_keys)b::text[], %(starts)b::timestamptz[]) AS r(k, s)
        ORDER BY r.k COLLATE "C", r.s
       ON CONFLICT (feature_view_id, entity_key, tile_start)
          DO UPDATE SET partials = aggregation_tiles.partials
       RETURNING entity_key, tile_start, partials
     )
SELECT block.base, locked.entity_key, locked.tile_start, locked.partials
  FROM block LEFT JOIN locked ON true
"""

_TILE_EVENTS = """
SELECT e.entity_key, r.s, e.event_time, e.sequence, e."values"
  FROM unnest(%(keys)b::text[], %(starts)b::timestamptz[], %(ends)b::timestamptz[]) AS r(k, s, x)
  JOIN aggregation_events AS e
    ON e.feature_view_id = %(view)b AND e.entity_key = r.k
   AND e.event_time >= r.s AND e.event_time < r.x
"""

_UPDATE_TILES = """
UPDATE aggregation_tiles AS t SET partials = r.p::jsonb
  FROM unnest(%(keys)b::text[], %(starts)b::timestamptz[], %(partials)b::text[]) AS r(k, s, p)
 WHERE t.feature_view_id = %(view)b AND t.entity_key = r.k AND t.tile_start = r.s
"""

TileKey = tuple[str, datetime]


def add_events(
    connection: Connection | Session,
    feature_view_id: int,
    spec: AggregationSpec,
    rows: Sequence[EventRow],
) -> int:
    """Store `rows` (in ingestion order; at most 2^20) and fold them into their tiles; return
    how many events were stored."""
    if not rows:
        return 0
    if len(rows) > SEQUENCE_BLOCK:
        raise ValueError(f"at most {SEQUENCE_BLOCK} events per call")
    if spec.mode == CONTINUOUS:
        rows = _last_per_instant(rows)
    cursor = _cursor(connection)
    view = feature_view_id
    keys = [r.entity_key for r in rows]
    times = [r.timestamp for r in rows]

    rebuild: set[TileKey] = set()
    if spec.mode == CONTINUOUS:
        cursor.execute(
            _DELETE_REPLACED,
            {"view": view, "keys": keys, "times": times},
            prepare=True,
        )
        rebuild = {(key, spec.tile_start(at)) for key, at in cursor.fetchall()}

    columns = sorted({f.column for f in spec.features})
    starts = [spec.tile_start(r.timestamp) for r in rows]
    tiles = sorted(set(zip(keys, starts, strict=True)) | rebuild)
    cursor.execute(
        _INSERT_EVENTS_AND_LOCK_TILES,
        {
            "view": view,
            "keys": keys,
            "times": times,
            "indexes": list(range(len(rows))),
            "values": [_values_json(r.values, columns) for r in rows],
            "tile_keys": [k for k, _ in tiles],
            "starts": [s for _, s in tiles],
        },
        prepare=True,
    )
    result = cursor.fetchall()
    base = int(result[0][0])
    stored: dict[TileKey, dict[str, Any]] = {(k, s): p for _, k, s, p in result if k is not None}
    events: dict[TileKey, list[Event]] = defaultdict(list)
    for index, (event_row, start) in enumerate(zip(rows, starts, strict=True)):
        event = Event(event_row.timestamp, base + index, event_row.values)
        events[(event_row.entity_key, start)].append(event)

    merged: dict[TileKey, dict[str, Any]] = {}
    if rebuild:
        merged.update(_rebuilt(cursor, view, spec, sorted(rebuild)))
    for tile in tiles:
        if tile not in rebuild:
            merged[tile] = spec.merge_into_tile(stored.get(tile) or None, events[tile])
    cursor.execute(
        _UPDATE_TILES,
        {
            "view": view,
            "keys": [k for k, _ in tiles],
            "starts": [s for _, s in tiles],
            "partials": [orjson.dumps(merged[t]).decode() for t in tiles],
        },
        prepare=True,
    )
    return len(rows)


def _cursor(connection: Connection | Session) -> psycopg.Cursor[Any]:
    """A cursor of the caller's transaction on its psycopg connection."""
    bound = connection.connection() if isinstance(connection, Session) else connection
    raw = bound.connection.driver_connection
    if raw is None:  # pragma: no cover (a checked-out connection always has one)
        raise RuntimeError("no driver connection")
    return raw.cursor()  # type: ignore[no-any-return]


def _last_per_instant(rows: Sequence[EventRow]) -> list[EventRow]:
    """Continuous mode: of records with the same key and timestamp, the last one."""
    kept: dict[tuple[str, datetime], EventRow] = {}
    for row in rows:
        kept.pop((row.entity_key, row.timestamp), None)
        kept[(row.entity_key, row.timestamp)] = row
    return list(kept.values())


def _rebuilt(
    cursor: psycopg.Cursor[Any], view: int, spec: AggregationSpec, tiles: list[TileKey]
) -> dict[TileKey, dict[str, Any]]:
    """Tiles recomputed from every event they now hold (after a replacement)."""
    size = timedelta(microseconds=spec.tile_us)
    params = {
        "view": view,
        "keys": [k for k, _ in tiles],
        "starts": [s for _, s in tiles],
        "ends": [s + size for _, s in tiles],
    }
    cursor.execute(_TILE_EVENTS, params, prepare=True)
    events: dict[TileKey, list[Event]] = defaultdict(list)
    for key, start, at, sequence, values in cursor.fetchall():
        events[(key, start)].append(Event(at, sequence, decoded_values(values)))
    return {tile: spec.merge_into_tile(None, events[tile]) for tile in tiles}


def _values_json(values: dict[str, Any], columns: list[str]) -> str:
    return orjson.dumps({c: encode_value(values.get(c)) for c in columns}).decode()


def decoded_values(stored: dict[str, Any]) -> dict[str, Any]:
    """An event's stored values back to Python (non-finite floats are tagged in JSON)."""
    return {column: decode_value(value) for column, value in stored.items()}
