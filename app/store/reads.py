"""Reading the online store: the serving read (one statement for a whole request) and the
partial-key scan of `query-features`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from app.aggregation import Event, TileJson
from app.deadline import DeadlineReached, NotConnectedInTime
from app.store.aggregates import decoded_values
from app.store.connection import CursorSource
from app.store.keys import entity_key_prefix

# One index scan over the primary key: each wanted view crossed with each wanted key. When a
# service's views are keyed differently this also probes pairs nobody asked for; those are cheap
# misses (or rows the caller ignores, as it picks results by the wanted pairs). Measured against
# a join with unnest() or json_to_recordset(), this form costs half as much in PostgreSQL.
STORE_QUERY = (
    "SELECT feature_view_id, entity_key, event_time, features FROM online_values "
    "WHERE feature_view_id = ANY(%s::int[]) AND entity_key = ANY(%s::text[])"
)

# A request that reads aggregate views adds two branches: the tiles of each view's read plan
# (per view and entity one row holding every stored tile of its longest window, as a JSON
# array of [start in µs since the epoch, partials], aggregated by a LATERAL index scan per
# pair: PostgreSQL builds it faster than the driver turns tile rows into Python ones, and
# faster than a GROUP BY over the tiles) and the raw events of continuous windows' ragged
# ends. Each range is (view id, lower bound, upper bound); the statement's text is fixed, so
# it stays prepared whatever the request.
_AGGREGATE_QUERY = (
    "SELECT 0, feature_view_id, entity_key, event_time, NULL::bigint, features "
    "FROM online_values "
    "WHERE feature_view_id = ANY(%(views)s::int[]) AND entity_key = ANY(%(keys)s::text[]) "
    "UNION ALL "
    "SELECT 1, r.v, k.k, NULL::timestamptz, NULL::bigint, a.tiles "
    "FROM unnest(%(tile_views)s::int[], %(tile_lows)s::timestamptz[], "
    "%(tile_highs)s::timestamptz[]) AS r(v, lo, hi) "
    "CROSS JOIN unnest(%(keys)s::text[]) AS k(k) "
    "CROSS JOIN LATERAL (SELECT json_agg(json_build_array("
    "(extract(epoch FROM t.tile_start) * 1000000)::bigint, t.partials)) AS tiles "
    "FROM aggregation_tiles AS t WHERE t.feature_view_id = r.v AND t.entity_key = k.k "
    "AND t.tile_start >= r.lo AND t.tile_start < r.hi) AS a "
    "WHERE a.tiles IS NOT NULL "
    "UNION ALL "
    'SELECT 2, e.feature_view_id, e.entity_key, e.event_time, e.sequence, e."values"::json '
    "FROM unnest(%(event_views)s::int[], %(event_lows)s::timestamptz[], "
    "%(event_highs)s::timestamptz[]) AS r(v, lo, hi) "
    "JOIN aggregation_events AS e ON e.feature_view_id = r.v "
    "AND e.event_time > r.lo AND e.event_time <= r.hi "
    "WHERE e.entity_key = ANY(%(keys)s::text[])"
)
# The lower bound of a lifetime window.
BEGINNING = datetime(1, 1, 1, tzinfo=UTC)

PREFIX_QUERY = (
    "SELECT DISTINCT entity_key FROM online_values "
    "WHERE feature_view_id = %s AND entity_key LIKE %s LIMIT %s"
)
TILE_PREFIX_QUERY = (
    "SELECT DISTINCT entity_key FROM aggregation_tiles "
    "WHERE feature_view_id = %s AND entity_key LIKE %s LIMIT %s"
)
PREFIX_LIMIT = 1000

# explain: an aggregate view's events for one entity in a time range, newest first.
EVENTS_QUERY = (
    'SELECT event_time, sequence, "values"::json FROM aggregation_events '
    "WHERE feature_view_id = %s AND entity_key = %s AND event_time >= %s AND event_time <= %s "
    "ORDER BY event_time DESC, sequence DESC LIMIT %s"
)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Rows of one aggregate view between two instants (see `Lookup`)."""

    feature_view_id: int
    lower: datetime | None  # None: from the beginning
    upper: datetime


@dataclass(frozen=True, slots=True)
class Lookup:
    """Everything one request reads, answered by one statement.

    The statement probes every view of `feature_view_ids` with every key of `entity_keys`;
    callers pick what they asked for from the result by (view id, key). A table added beside
    `online_values` (aggregation tiles, events) adds its own fields here, a `UNION ALL` branch
    to the statement and its rows to `StoreResult`, so a request still costs one round trip.
    """

    feature_view_ids: Sequence[int]
    entity_keys: Sequence[str]
    # Aggregate views: tiles with `lower <= tile_start < upper`, and raw events with
    # `lower < event_time <= upper` (`AggregationSpec.read_plan`), for every key above.
    tile_ranges: Sequence[TimeRange] = ()
    event_ranges: Sequence[TimeRange] = ()

    @classmethod
    def of_pairs(
        cls,
        pairs: set[tuple[int, str]],
        tile_ranges: Sequence[TimeRange] = (),
        event_ranges: Sequence[TimeRange] = (),
    ) -> Lookup:
        """The lookup covering every (view id, entity key) pair, in a stable order."""
        return cls(
            sorted({v for v, _ in pairs}),
            sorted({k for _, k in pairs}),
            tile_ranges,
            event_ranges,
        )


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One stored row: its event time and its {feature: wire value} object."""

    event_time: datetime
    features: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What a `Lookup` found, by (feature view id, entity key)."""

    values: dict[tuple[int, str], StoredRow]
    # Aggregate views: the tiles (start in µs since the epoch, partials) and raw events read,
    # by (view id, key).
    tiles: dict[tuple[int, str], list[tuple[int, TileJson]]] = field(default_factory=dict)
    events: dict[tuple[int, str], list[Event]] = field(default_factory=dict)

    def response_bytes(self, wanted: Sequence[tuple[int, str]]) -> int:
        """The size of the wanted rows' features as JSON (`storeResponseSizeBytes`)."""
        return sum(
            len(orjson.dumps(self.values[pair].features)) for pair in wanted if pair in self.values
        )


def _array_literal(items: Sequence[str]) -> str:
    """A PostgreSQL array literal of `items`, each quoted (backslashes and quotes escaped)."""
    return (
        "{"
        + ",".join('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
        + "}"
    )


class OnlineStore:
    """The store's read side, on the app's `CursorSource` (per-thread autocommit connections).

    Writes are functions in `app.store.writes` that take the caller's transaction instead:
    they must commit with the rest of the request or command.
    """

    def __init__(self, connections: CursorSource) -> None:
        self.connections = connections

    def read_rows(self, lookup: Lookup) -> StoreResult:
        """One prepared statement on this thread's store connection, outside any transaction."""
        if not lookup.tile_ranges and not lookup.event_ranges:
            rows = self._fetch(STORE_QUERY, (lookup.feature_view_ids, lookup.entity_keys))
            return StoreResult(
                {
                    (view_id, key): StoredRow(event_time, features)
                    for view_id, key, event_time, features in rows
                }
            )
        # Arrays travel as array literals built here, and the keys once (a named parameter used
        # three times is sent once): the driver's list dumping costs more than the statement.
        tiles, events = lookup.tile_ranges, lookup.event_ranges
        params = {
            "views": _array_literal([str(v) for v in lookup.feature_view_ids]),
            "keys": _array_literal(lookup.entity_keys),
            "tile_views": _array_literal([str(r.feature_view_id) for r in tiles]),
            "tile_lows": _array_literal([(r.lower or BEGINNING).isoformat() for r in tiles]),
            "tile_highs": _array_literal([r.upper.isoformat() for r in tiles]),
            "event_views": _array_literal([str(r.feature_view_id) for r in events]),
            "event_lows": _array_literal([(r.lower or BEGINNING).isoformat() for r in events]),
            "event_highs": _array_literal([r.upper.isoformat() for r in events]),
        }
        result = StoreResult({})
        for kind, view_id, key, moment, sequence, payload in self._fetch(_AGGREGATE_QUERY, params):
            if kind == 0:
                result.values[(view_id, key)] = StoredRow(moment, payload)
            elif kind == 1:  # every tile of the entity: [[start µs, partials], ...]
                result.tiles[(view_id, key)] = [(start, tile) for start, tile in payload]
            else:
                event = Event(moment, sequence, decoded_values(payload))
                result.events.setdefault((view_id, key), []).append(event)
        return result

    def read_prefix(
        self, feature_view_id: int, leading_parts: Sequence[str], *, aggregate: bool = False
    ) -> list[list[str]]:
        """The canonical join-key values of (up to 1000) stored entities of the view whose first
        keys are `leading_parts` (`aggregate`: entities with tiles)."""
        prefix = entity_key_prefix(leading_parts)
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = TILE_PREFIX_QUERY if aggregate else PREFIX_QUERY
        rows = self._fetch(query, (feature_view_id, like, PREFIX_LIMIT))
        return [orjson.loads(key) for (key,) in rows]

    def read_events(
        self,
        feature_view_id: int,
        entity_key: str,
        lower: datetime | None,
        upper: datetime,
        limit: int,
    ) -> list[Event]:
        """Up to `limit` stored events of one entity with `lower <= event_time <= upper`
        (`lower` None: from the beginning), newest first; for explain, off the hot path."""
        rows = self._fetch(
            EVENTS_QUERY, (feature_view_id, entity_key, lower or BEGINNING, upper, limit)
        )
        return [Event(at, sequence, decoded_values(values)) for at, sequence, values in rows]

    def _fetch(self, query: str, params: tuple[Any, ...] | dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run `query`; a connection that broke (e.g. PostgreSQL restarted) is replaced and the
        read retried once: reads are idempotent. Past the request's deadline nothing is retried."""
        for attempt in (1, 2):
            try:
                return self.connections.fetch(query, params)
            except (DeadlineReached, NotConnectedInTime):
                self.connections.discard()
                raise
            except psycopg.OperationalError:
                self.connections.discard()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.connections.close()
