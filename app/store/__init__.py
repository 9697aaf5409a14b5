"""The online store: the one package that reads and writes feature values.

- keys: `entity_key`, `entity_key_prefix`, `canonical_key_part` (the stored key encoding);
- writes, in the caller's transaction (nothing here commits): `put_values` (the guarded
  last-write-wins upsert), `Staging` (bulk loads: COPY into a temporary table, then one merge),
  `delete_values`; `add_events` (aggregate views: events folded into their tiles);
- reads, outside any transaction on the app's per-thread autocommit connections:
  `OnlineStore.read_rows(Lookup)` (a whole request in one statement) and
  `OnlineStore.read_prefix` (partial keys). The app's store is `get_store()`;
- read replicas (`app.store.replicas`): with DATABASE_REPLICA_URL, the store's reads go to a
  replica within TECTONITE_REPLICA_MAX_LAG of the primary, else to the primary;
- inspection (the console, off the serving path): `app.store.inspection`;
- `iter_view_rows`, `iter_view_events`, `has_events`: a view's rows or events, for
  `tectonite export` and init directories.

No other module runs SQL on the store's tables (`app.store.tables`).
"""

from __future__ import annotations

from flask import Flask

from app.config import Settings
from app.db import Database
from app.extensions import Slot
from app.store.aggregates import EventRow, add_events
from app.store.connection import BoundConnection, CursorSource, ThreadConnections
from app.store.dump import has_events, iter_view_events, iter_view_rows
from app.store.keys import canonical_key_part, entity_key, entity_key_prefix
from app.store.reads import Lookup, OnlineStore, StoredRow, StoreResult, TimeRange
from app.store.replicas import LagMonitor, ReplicaRouter
from app.store.writes import (
    StagedRow,
    Staging,
    ValueRow,
    analyze,
    delete_values,
    features_json,
    put_values,
    vacuum,
)

STORE = Slot[OnlineStore]("tectonite.store")

__all__ = [
    "STORE",
    "CursorSource",
    "EventRow",
    "Lookup",
    "OnlineStore",
    "StagedRow",
    "Staging",
    "StoreResult",
    "StoredRow",
    "TimeRange",
    "ValueRow",
    "add_events",
    "analyze",
    "canonical_key_part",
    "delete_values",
    "entity_key",
    "entity_key_prefix",
    "features_json",
    "get_store",
    "has_events",
    "init_app",
    "iter_view_events",
    "iter_view_rows",
    "open_store",
    "put_values",
    "vacuum",
]


def open_store(database: Database, settings: Settings, *, use_replicas: bool = True) -> OnlineStore:
    """The store's read side for `database`: its own per-thread autocommit connections (on the
    read replicas of `settings`, when there are any and `use_replicas`), or the database's bound
    test connection."""
    if database.bound_connection is not None:
        return OnlineStore(BoundConnection(database.bound_connection))
    timeout, pooled = settings.request_timeout_ms, settings.behind_pgbouncer
    primary = ThreadConnections(database.libpq_url, statement_timeout_ms=timeout, pooled=pooled)
    if not (use_replicas and settings.database_replica_urls):
        return OnlineStore(primary)
    replicas = [
        ThreadConnections(url, statement_timeout_ms=timeout, pooled=pooled)
        for url in settings.database_replica_urls
    ]
    monitor = LagMonitor(
        database.libpq_url,
        settings.database_replica_urls,
        max_lag_s=settings.replica_max_lag_s,
    )
    return OnlineStore(ReplicaRouter(primary, replicas, monitor))


def init_app(app: Flask, store: OnlineStore) -> None:
    STORE.register(app, store)


def get_store(app: Flask | None = None) -> OnlineStore:
    return STORE.get(app)
