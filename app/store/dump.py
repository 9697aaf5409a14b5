"""Every stored row of a feature view, for `tectonite export` (off the serving path)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.aggregates import decoded_values
from app.store.tables import AggregationEvent, OnlineValue

DUMP_BATCH = 5000


def iter_view_rows(session: Session, view_id: int) -> Iterator[tuple[str, datetime, Any]]:
    """(stored entity key, event time, wire-encoded features) of every row, by entity key;
    fetched in batches, so memory does not grow with the view."""
    statement = (
        select(OnlineValue.entity_key, OnlineValue.event_time, OnlineValue.features)
        .where(OnlineValue.feature_view_id == view_id)
        .order_by(OnlineValue.entity_key)
        .execution_options(yield_per=DUMP_BATCH)
    )
    for key, event_time, features in session.execute(statement):
        yield str(key), event_time, features


def iter_view_events(
    session: Session, view_id: int, since: datetime | None = None
) -> Iterator[tuple[str, datetime, dict[str, Any]]]:
    """(stored entity key, event time, Python values) of an aggregate view's events with
    `event_time >= since` (None: all), per entity in ingestion order (time, then sequence),
    so loading them in this order again gives every tie the same winner."""
    statement = (
        select(AggregationEvent.entity_key, AggregationEvent.event_time, AggregationEvent.values)
        .where(AggregationEvent.feature_view_id == view_id)
        .order_by(
            AggregationEvent.entity_key, AggregationEvent.event_time, AggregationEvent.sequence
        )
        .execution_options(yield_per=DUMP_BATCH)
    )
    if since is not None:
        statement = statement.where(AggregationEvent.event_time >= since)
    for key, event_time, values in session.execute(statement):
        yield str(key), event_time, decoded_values(values)


def has_events(session: Session, view_id: int) -> bool:
    """Whether an aggregate view holds any event."""
    found = session.scalar(
        select(AggregationEvent.feature_view_id)
        .where(AggregationEvent.feature_view_id == view_id)
        .limit(1)
    )
    return found is not None
