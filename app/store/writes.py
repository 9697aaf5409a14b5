"""The one way feature values enter the online store: a guarded, last-write-wins upsert.

Semantics (SPEC §5), per (feature view, entity key):
- the row with the newest event time is kept; an older record never overwrites a newer one;
- on equal event time the later write wins (`<=` in the guard; reliability.md suggests `<`,
  the spec decides otherwise), so replaying the same records is idempotent;
- within one batch the same key may appear several times: the newest event time wins, the last
  in input order on ties. Duplicates are removed before the statement runs, because
  `ON CONFLICT DO UPDATE` may not touch one row twice in one statement.

Rows are inserted in primary-key order, so concurrent writers lock rows in the same order and
cannot deadlock on each other. Nothing here commits: callers (the ingest view, the CLI command,
the demo) own the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Select, delete, text
from sqlalchemy.orm import Session

from app.store.tables import OnlineValue

# The guard shared by both paths: an update only when the stored row is not newer.
_ON_CONFLICT = """
ON CONFLICT (feature_view_id, entity_key) DO UPDATE
   SET event_time = EXCLUDED.event_time, features = EXCLUDED.features
 WHERE online_values.event_time <= EXCLUDED.event_time
"""

_UPSERT_ARRAYS = text(
    """
INSERT INTO online_values (feature_view_id, entity_key, event_time, features)
SELECT v.feature_view_id, v.entity_key, v.event_time, v.features::json
  FROM unnest(CAST(:feature_view_ids AS integer[]), CAST(:entity_keys AS text[]),
              CAST(:event_times AS timestamptz[]), CAST(:features AS text[]))
       AS v(feature_view_id, entity_key, event_time, features)
 ORDER BY v.feature_view_id, v.entity_key COLLATE "C"
"""
    + _ON_CONFLICT
)

STAGING_TABLE = "tectonite_ingest_staging"

# (line, entity key, event time, features JSON text): one row of a bulk load's staging table.
StagedRow = tuple[int, str, datetime, str]


@dataclass(frozen=True, slots=True)
class ValueRow:
    """One row for the online store; `features` is the JSON text of the wire-encoded values."""

    feature_view_id: int
    entity_key: str
    event_time: datetime
    features: str


def features_json(values: dict[str, Any]) -> str:
    """The stored text of a {feature: wire value} object."""
    return orjson.dumps(values).decode()


def dedupe(rows: Iterable[ValueRow]) -> list[ValueRow]:
    """One row per (view, key): the newest event time, the last in order on ties."""
    newest: dict[tuple[int, str], ValueRow] = {}
    for row in rows:
        key = (row.feature_view_id, row.entity_key)
        kept = newest.get(key)
        if kept is None or row.event_time >= kept.event_time:
            newest[key] = row
    return list(newest.values())


def put_values(connection: Connection | Session, rows: Iterable[ValueRow]) -> int:
    """Write `rows` with last-write-wins in one statement; return how many rows changed.

    Rows that lost to a newer stored row (or to a newer duplicate in `rows`) are not counted.
    """
    unique = dedupe(rows)
    if not unique:
        return 0
    result = connection.execute(
        _UPSERT_ARRAYS,
        {
            "feature_view_ids": [r.feature_view_id for r in unique],
            "entity_keys": [r.entity_key for r in unique],
            "event_times": [r.event_time for r in unique],
            "features": [r.features for r in unique],
        },
    )
    return int(result.rowcount)  # type: ignore[attr-defined]  # DML results have a rowcount


class Staging:
    """A bulk load's temporary table in the caller's transaction: rows are COPYed in, then
    `merge` moves them into the store with the same guard as `put_values`.

    Creating it creates the table; `drop()` (or the end of the transaction) removes it.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        connection.execute(text("SET LOCAL work_mem = '64MB'"))
        connection.execute(
            text(
                f'CREATE TEMP TABLE {STAGING_TABLE} (line bigint, entity_key text COLLATE "C",'
                " event_time timestamptz, features text) ON COMMIT DROP"
            )
        )

    def copy(self, rows: Iterable[StagedRow]) -> None:
        """Stream `rows` into the staging table with COPY (memory does not grow with them)."""
        raw = self.connection.connection.driver_connection
        if raw is None:  # pragma: no cover (a checked-out connection always has one)
            raise RuntimeError("no driver connection")
        with (
            raw.cursor() as cursor,
            cursor.copy(
                f"COPY {STAGING_TABLE} (line, entity_key, event_time, features) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def merge(self, feature_view_id: int) -> int:
        """Move the staged rows into the store in one set-based statement.

        `DISTINCT ON` keeps, per key, the newest event time and on ties the latest line.
        Returns the rows changed.
        """
        statement = text(
            f"""
INSERT INTO online_values (feature_view_id, entity_key, event_time, features)
SELECT DISTINCT ON (s.entity_key) :feature_view_id, s.entity_key, s.event_time, s.features::json
  FROM {STAGING_TABLE} AS s
 ORDER BY s.entity_key, s.event_time DESC, s.line DESC
"""  # noqa: S608  (the table name is ours, never user input)
            + _ON_CONFLICT
        )
        result = self.connection.execute(statement, {"feature_view_id": feature_view_id})
        return int(result.rowcount)

    def drop(self) -> None:
        self.connection.execute(text(f"DROP TABLE {STAGING_TABLE}"))


def delete_values(session: Session, feature_view_ids: Sequence[int] | Select[Any]) -> int:
    """Forget every stored row of the views (a view was deleted or changed destructively, or an
    emulator reset); returns how many rows went."""
    result = session.execute(
        delete(OnlineValue).where(OnlineValue.feature_view_id.in_(feature_view_ids))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]  # a DML result has a rowcount


def analyze(session: Session) -> None:
    """Refresh the planner's statistics of the store in the caller's transaction, so the first
    reads after a large load are planned on the table as it now is, not as autovacuum last saw
    it."""
    session.execute(text(f"ANALYZE {OnlineValue.__tablename__}"))


def vacuum(engine: Engine) -> None:
    """VACUUM the store (outside any transaction) after a large committed load: it sets the new
    rows' hint bits and visibility, which the first reads would otherwise do one page at a time,
    and leaves autovacuum nothing to start on the same table while they run."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM {OnlineValue.__tablename__}")
