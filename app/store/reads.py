"""Reading the online store: the serving read (one statement for a whole request) and the
partial-key scan of `query-features`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg

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

PREFIX_QUERY = (
    "SELECT DISTINCT entity_key FROM online_values "
    "WHERE feature_view_id = %s AND entity_key LIKE %s LIMIT %s"
)
PREFIX_LIMIT = 1000


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

    @classmethod
    def of_pairs(cls, pairs: set[tuple[int, str]]) -> Lookup:
        """The lookup covering every (view id, entity key) pair, in a stable order."""
        return cls(sorted({v for v, _ in pairs}), sorted({k for _, k in pairs}))


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One stored row: its event time and its {feature: wire value} object."""

    event_time: datetime
    features: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What a `Lookup` found, by (feature view id, entity key)."""

    values: dict[tuple[int, str], StoredRow]

    def response_bytes(self, wanted: Sequence[tuple[int, str]]) -> int:
        """The size of the wanted rows' features as JSON (`storeResponseSizeBytes`)."""
        return sum(
            len(orjson.dumps(self.values[pair].features)) for pair in wanted if pair in self.values
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
        rows = self._fetch(STORE_QUERY, (lookup.feature_view_ids, lookup.entity_keys))
        return StoreResult(
            {
                (view_id, key): StoredRow(event_time, features)
                for view_id, key, event_time, features in rows
            }
        )

    def read_prefix(self, feature_view_id: int, leading_parts: Sequence[str]) -> list[list[str]]:
        """The canonical join-key values of (up to 1000) stored entities of the view whose first
        keys are `leading_parts`."""
        prefix = entity_key_prefix(leading_parts)
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._fetch(PREFIX_QUERY, (feature_view_id, like, PREFIX_LIMIT))
        return [orjson.loads(key) for (key,) in rows]

    def _fetch(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run `query`; a connection that broke (e.g. PostgreSQL restarted) is replaced and the
        read retried once: reads are idempotent."""
        for attempt in (1, 2):
            try:
                cursor = self.connections.cursor()
                cursor.execute(query, params, prepare=True)
                return cursor.fetchall()
            except psycopg.OperationalError:
                self.connections.discard()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.connections.close()
