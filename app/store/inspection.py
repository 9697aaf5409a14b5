"""Reads for looking at what a feature view holds (the web console): counts, event-time
ranges and histograms, the freshest rows, distributions of numeric features.

Not on the serving path: they run on the database's ordinary read connections. Samples and
distributions look at a capped number of rows, never the whole of a large view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from app.db import Database

SAMPLE_ROWS = 20
DISTRIBUTION_ROWS = 10_000
HISTOGRAM_BUCKETS = 24

_STATS = text(
    "SELECT count(*), min(event_time), max(event_time) "
    "FROM online_values WHERE feature_view_id = :view"
)
_HISTOGRAM = text(
    "SELECT least(width_bucket(extract(epoch FROM event_time), :low, :high, :buckets), :buckets)"
    " AS bucket, count(*) FROM online_values WHERE feature_view_id = :view"
    " GROUP BY bucket ORDER BY bucket"
)
_SAMPLE = text(
    "SELECT entity_key, event_time, features FROM online_values"
    " WHERE feature_view_id = :view ORDER BY event_time DESC, entity_key LIMIT :limit"
)
_FEATURE_VALUES = text(
    "SELECT features ->> :feature FROM online_values WHERE feature_view_id = :view LIMIT :limit"
)


@dataclass(frozen=True, slots=True)
class ViewStats:
    entities: int
    oldest: datetime | None
    newest: datetime | None


@dataclass(frozen=True, slots=True)
class Bucket:
    low: float
    high: float
    count: int


def view_stats(database: Database, view_id: int) -> ViewStats:
    with database.read() as connection:
        count, oldest, newest = connection.execute(_STATS, {"view": view_id}).one()
    return ViewStats(int(count), oldest, newest)


def event_time_histogram(database: Database, view_id: int, stats: ViewStats) -> list[Bucket]:
    """Stored rows by event time, in equal-width buckets between the oldest and the newest."""
    if stats.oldest is None or stats.newest is None:
        return []
    low, high = stats.oldest.timestamp(), stats.newest.timestamp()
    if high <= low:
        return [Bucket(low, high, stats.entities)]
    parameters = {"view": view_id, "low": low, "high": high, "buckets": HISTOGRAM_BUCKETS}
    with database.read() as connection:
        counts: dict[int, int] = dict(connection.execute(_HISTOGRAM, parameters).all())
    width = (high - low) / HISTOGRAM_BUCKETS
    return [
        Bucket(low + (i - 1) * width, low + i * width, int(counts.get(i, 0)))
        for i in range(1, HISTOGRAM_BUCKETS + 1)
    ]


def sample_rows(
    database: Database, view_id: int, limit: int = SAMPLE_ROWS
) -> list[tuple[str, datetime, Any]]:
    """The freshest rows: (stored entity key, event time, wire-encoded features)."""
    with database.read() as connection:
        rows = connection.execute(_SAMPLE, {"view": view_id, "limit": limit}).all()
    return [(key, event_time, features) for key, event_time, features in rows]


def numeric_distribution(
    database: Database, view_id: int, feature: str, buckets: int = 12
) -> list[Bucket]:
    """A histogram of a numeric feature's finite values over at most DISTRIBUTION_ROWS rows."""
    parameters = {"view": view_id, "feature": feature, "limit": DISTRIBUTION_ROWS}
    with database.read() as connection:
        raw = connection.execute(_FEATURE_VALUES, parameters).scalars().all()
    values = []
    for text_value in raw:
        try:
            number = float(text_value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            values.append(number)
    if not values:
        return []
    low, high = min(values), max(values)
    if high == low:
        return [Bucket(low, high, len(values))]
    width = (high - low) / buckets
    counts = [0] * buckets
    for number in values:
        counts[min(int((number - low) / width), buckets - 1)] += 1
    return [Bucket(low + i * width, low + (i + 1) * width, c) for i, c in enumerate(counts)]
