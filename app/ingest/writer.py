"""The one way feature values enter the online store: a guarded, last-write-wins upsert.

Semantics (SPEC §5), per (feature view, entity key):
- the row with the newest event time is kept; an older record never overwrites a newer one;
- on equal event time the later write wins (`<=` in the guard; reliability.md suggests `<`,
  the spec decides otherwise), so replaying the same records is idempotent;
- within one batch the same key may appear several times: the newest event time wins, the last
  in input order on ties. Duplicates are removed before the statement runs, because
  `ON CONFLICT DO UPDATE` may not touch one row twice in one statement.

Rows are inserted in primary-key order, so concurrent writers lock rows in the same order and
cannot deadlock on each other. Nothing here commits: callers (the ingest view, the CLI command)
own the transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from app.models import Entity, FeatureView
from app.types import FeatureType, parse_type

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


@dataclass(frozen=True, slots=True)
class ValueRow:
    """One row for the online store; `features` is the JSON text of the wire-encoded values."""

    feature_view_id: int
    entity_key: str
    event_time: datetime
    features: str


@dataclass(frozen=True, slots=True)
class TargetView:
    """What a writer needs to know about one feature view: its keys, features and ttl."""

    id: int
    name: str
    workspace: str
    kind: str
    join_keys: tuple[tuple[str, str], ...]  # (name, "String" | "Int64"), in key order
    features: tuple[tuple[str, FeatureType], ...]
    ttl_seconds: int | None

    @property
    def public_id(self) -> str:
        """A stable 32-lowercase-hex id for `featureViewId`.

        The BLAKE2b-128 digest of `<workspace>/<view>`: it survives re-applies and restarts, and
        is the same on every server process, without storing anything extra.
        """
        name = f"{self.workspace}/{self.name}".encode()
        return hashlib.blake2b(name, digest_size=16).hexdigest()


def load_target_views(
    session: Session, workspace: str, views: Sequence[FeatureView]
) -> list[TargetView]:
    """`TargetView`s for `views` (all of one workspace), with their entities' join keys."""
    entity_ids = {link.entity_id for view in views for link in view.entities}
    entities = {
        entity.id: entity
        for entity in session.scalars(select(Entity).where(Entity.id.in_(entity_ids)))
    }
    return [
        TargetView(
            id=view.id,
            name=view.name,
            workspace=workspace,
            kind=view.kind,
            join_keys=tuple(
                (key.name, key.type)
                for link in view.entities
                for key in entities[link.entity_id].join_keys
            ),
            features=tuple((f.name, parse_type(f.type)) for f in view.features),
            ttl_seconds=view.ttl_seconds,
        )
        for view in views
    ]


def features_json(values: dict[str, Any]) -> str:
    """The stored text of a {feature: wire value} object."""
    return orjson.dumps(values).decode()


def dedupe(rows: Iterable[ValueRow]) -> list[ValueRow]:
    """One row per (view, key): the newest event time, the last in order on ties."""
    newest: dict[tuple[int, str], ValueRow] = {}
    for row in rows:
        key = (row.feature_view_id, row.entity_key)
        current = newest.get(key)
        if current is None or current.event_time <= row.event_time:
            newest[key] = row
    return list(newest.values())


def upsert_rows(connection: Connection | Session, rows: Iterable[ValueRow]) -> int:
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
    return int(result.rowcount)  # type: ignore[attr-defined]


def upsert_from_staging(
    connection: Connection | Session, staging_table: str, feature_view_id: int
) -> int:
    """Move a bulk load's staging table into the store in one set-based statement.

    The staging table has columns (line, entity_key, event_time, features); `DISTINCT ON`
    keeps, per key, the newest event time and on ties the latest line. Returns rows changed.
    """
    statement = text(
        f"""
INSERT INTO online_values (feature_view_id, entity_key, event_time, features)
SELECT DISTINCT ON (s.entity_key) :feature_view_id, s.entity_key, s.event_time, s.features::json
  FROM {staging_table} AS s
 ORDER BY s.entity_key, s.event_time DESC, s.line DESC
"""  # noqa: S608  (the table name is ours, never user input)
        + _ON_CONFLICT
    )
    result = connection.execute(statement, {"feature_view_id": feature_view_id})
    return int(result.rowcount)  # type: ignore[attr-defined]
