"""Every stored row of a feature view, for `tectonite export` (off the serving path)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.tables import OnlineValue

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
